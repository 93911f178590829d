// One warp per (token, head). Rotate-half pairs element i with i + HD/2; each lane holds up to
// four pairs in registers (HD <= 256), so the row is read once and written once.
#include "kernels/cuda_common.cuh"
#include "kernels/rope_cuda.h"

#define WARPS 4
#define MAXP 4  // pairs per lane: HD/2 <= 32 * MAXP

// The element of the first half that slot p of a lane holds. PAIRS (HD % 4 == 0, rows 4-byte
// aligned): lanes hold two neighbours, so that every access is a 4-byte bf16 pair (a warp moves
// 128 bytes per access instead of 64); otherwise one element per slot.
template <bool PAIRS>
__device__ __forceinline__ int elem(int lane, int p) {
    return PAIRS ? 2 * (lane + 32 * (p / 2)) + (p & 1) : lane + 32 * p;
}

// Slots p (and p + 1 with PAIRS) of a lane: the elements from i (and i + 1) of a half row.
template <bool PAIRS>
__device__ __forceinline__ void load_slots(float *f, int p, const __nv_bfloat16 *row, int i) {
    if (PAIRS) {
        float2 v = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(row + i));
        f[p] = v.x, f[p + 1] = v.y;
    } else {
        f[p] = __bfloat162float(row[i]);
    }
}
template <bool PAIRS>
__device__ __forceinline__ void store_slots(__nv_bfloat16 *row, int i, float x0, float x1) {
    if (PAIRS) *reinterpret_cast<__nv_bfloat162 *>(row + i) = __floats2bfloat162_rn(x0, x1);
    else row[i] = __float2bfloat16_rn(x0);
}

template <bool PAIRS>
__global__ void __launch_bounds__(32 * WARPS)
    qknorm_rope_fwd_kernel(__nv_bfloat16 *out, const __nv_bfloat16 *inp, const __nv_bfloat16 *qnw,
                           const __nv_bfloat16 *knw, const float *cos_t, const float *sin_t, const int *pos, int N,
                           int NH, int NKV, int HD, float eps, RopeCacheDst cache) {
    pdl_enter();
    constexpr int STEP = PAIRS ? 2 : 1;
    int heads = NH + 2 * NKV;
    long item = (long)blockIdx.x * WARPS + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (item >= (long)N * heads) return;
    int n = (int)(item / heads), h = (int)(item % heads), half = HD / 2;
    size_t base = (size_t)n * heads * HD + (size_t)h * HD;
    const __nv_bfloat16 *x = inp + base;
    __nv_bfloat16 *y = out + base;
    // Key and value heads also go to the KV cache, at row len + t of their sequence's cache row
    // (never past its capacity), in the [rows, cap, NKV * HD] layout of each layer's cache.
    __nv_bfloat16 *cy = NULL;
    if (cache.k && h >= NH) {
        int b = n / cache.T, t = n % cache.T;
        if (cache.seq_row) b = cache.seq_row[b];
        int len = cache.len[cache.per_row ? b : 0];
        if (len + t < cache.cap) {
            size_t row = ((size_t)b * cache.cap + len + t) * NKV * HD;
            cy = h < NH + NKV ? cache.k + row + (size_t)(h - NH) * HD : cache.v + row + (size_t)(h - NH - NKV) * HD;
        }
    }
    if (h >= NH + NKV) {  // value head: copy
        for (int i = STEP * lane; i < HD; i += 32 * STEP) {
            if (PAIRS) {
                __nv_bfloat162 v = *reinterpret_cast<const __nv_bfloat162 *>(x + i);
                *reinterpret_cast<__nv_bfloat162 *>(y + i) = v;
                if (cy) *reinterpret_cast<__nv_bfloat162 *>(cy + i) = v;
            } else {
                y[i] = x[i];
                if (cy) cy[i] = x[i];
            }
        }
        return;
    }
    const __nv_bfloat16 *w = h < NH ? qnw : knw;
    float a[MAXP], b[MAXP], ss = 0;
#pragma unroll
    for (int p = 0; p < MAXP; p += STEP) {
        int i = elem<PAIRS>(lane, p);
        a[p] = b[p] = 0.0f;
        if (PAIRS) a[p + 1] = b[p + 1] = 0.0f;
        if (i < half) load_slots<PAIRS>(a, p, x, i), load_slots<PAIRS>(b, p, x + half, i);
    }
#pragma unroll
    for (int p = 0; p < MAXP; p++) ss += a[p] * a[p] + b[p] * b[p];
    ss = warp_sum(ss);
    float r = rsqrtf(ss / (float)HD + eps);
    const float *c = cos_t + (size_t)pos[n] * half, *s = sin_t + (size_t)pos[n] * half;
#pragma unroll
    for (int p = 0; p < MAXP; p += STEP) {
        int i = elem<PAIRS>(lane, p);
        if (i < half) {
            float lo[2] = {0.0f, 0.0f}, hi[2] = {0.0f, 0.0f};
            for (int e = 0; e < STEP; e++) {
                int j = i + e;
                float u = a[p + e] * r * __bfloat162float(w[j]), v = b[p + e] * r * __bfloat162float(w[j + half]);
                // rounded here, as stored: the cache copy is the same bits as the output
                lo[e] = __bfloat162float(__float2bfloat16_rn(u * c[j] - v * s[j]));
                hi[e] = __bfloat162float(__float2bfloat16_rn(v * c[j] + u * s[j]));
            }
            store_slots<PAIRS>(y, i, lo[0], lo[STEP - 1]), store_slots<PAIRS>(y + half, i, hi[0], hi[STEP - 1]);
            if (cy) store_slots<PAIRS>(cy, i, lo[0], lo[STEP - 1]), store_slots<PAIRS>(cy + half, i, hi[0], hi[STEP - 1]);
        }
    }
}

static bool pairs_ok(int HD, const void *a, const void *b, const void *c, const void *d) {
    return HD % 4 == 0 && (((uintptr_t)a | (uintptr_t)b | (uintptr_t)c | (uintptr_t)d) & 3) == 0;
}

extern "C" void qknorm_rope_cuda_forward(paw_bf16 *out, const paw_bf16 *inp, const paw_bf16 *qnormw,
                                         const paw_bf16 *knormw, const float *cos_t, const float *sin_t,
                                         const int *pos, int N, int NH, int NKV, int HD, float eps) {
    qknorm_rope_cuda_forward_cache(out, inp, qnormw, knormw, cos_t, sin_t, pos, N, NH, NKV, HD, eps, NULL);
}

extern "C" void qknorm_rope_cuda_forward_cache(paw_bf16 *out, const paw_bf16 *inp, const paw_bf16 *qnormw,
                                               const paw_bf16 *knormw, const float *cos_t, const float *sin_t,
                                               const int *pos, int N, int NH, int NKV, int HD, float eps,
                                               const RopeCacheDst *cache) {
    long items = (long)N * (NH + 2 * NKV);
    if (items <= 0) return;
    RopeCacheDst dst = {};
    if (cache) dst = *cache;
    dim3 grid(paw_ceil_div(items, WARPS)), block(32 * WARPS);
    if (pairs_ok(HD, out, inp, dst.k, dst.v))
        paw_launch(qknorm_rope_fwd_kernel<true>, grid, block, 0, out, inp, qnormw, knormw, cos_t, sin_t, pos, N, NH,
                   NKV, HD, eps, dst);
    else
        paw_launch(qknorm_rope_fwd_kernel<false>, grid, block, 0, out, inp, qnormw, knormw, cos_t, sin_t, pos, N, NH,
                   NKV, HD, eps, dst);
    CUDA_CHECK_LAUNCH();
}

// Backward: g = R^T dy (the inverse rotation), then the RMSNorm backward over the head:
// dx_i = r w_i g_i - x_i r^3 / HD * sum_j w_j g_j x_j, dw_i += g_i x_i r.
template <bool PAIRS>
__global__ void __launch_bounds__(32 * WARPS)
    qknorm_rope_bwd_kernel(__nv_bfloat16 *dinp, float *dqw, float *dkw, const __nv_bfloat16 *dout,
                           const __nv_bfloat16 *inp, const __nv_bfloat16 *qnw, const __nv_bfloat16 *knw,
                           const float *cos_t, const float *sin_t, const int *pos, int N, int NH, int NKV, int HD,
                           float eps) {
    extern __shared__ float dw_acc[];  // [2][HD]: query and key norm weights
    constexpr int STEP = PAIRS ? 2 : 1;
    int heads = NH + 2 * NKV, lane = threadIdx.x % 32, half = HD / 2;
    bool want_dw = dqw != NULL;
    if (want_dw) {
        for (int i = threadIdx.x; i < 2 * HD; i += blockDim.x) dw_acc[i] = 0;
        __syncthreads();
    }
    long total = (long)N * heads;
    for (long item = (long)blockIdx.x * WARPS + threadIdx.x / 32; item < total; item += (long)gridDim.x * WARPS) {
        int n = (int)(item / heads), h = (int)(item % heads);
        size_t base = (size_t)n * heads * HD + (size_t)h * HD;
        const __nv_bfloat16 *x = inp + base, *dy = dout + base;
        __nv_bfloat16 *dx = dinp + base;
        if (h >= NH + NKV) {
            for (int i = STEP * lane; i < HD; i += 32 * STEP) {
                if (PAIRS) *reinterpret_cast<__nv_bfloat162 *>(dx + i) = *reinterpret_cast<const __nv_bfloat162 *>(dy + i);
                else dx[i] = dy[i];
            }
            continue;
        }
        const __nv_bfloat16 *w = h < NH ? qnw : knw;
        float *acc = dw_acc + (h < NH ? 0 : HD);
        const float *c = cos_t + (size_t)pos[n] * half, *s = sin_t + (size_t)pos[n] * half;
        float xa[MAXP], xb[MAXP], ga[MAXP], gb[MAXP], ss = 0, dot = 0;
#pragma unroll
        for (int p = 0; p < MAXP; p += STEP) {
            int i = elem<PAIRS>(lane, p);
            float da[2] = {0.0f, 0.0f}, db[2] = {0.0f, 0.0f};
            for (int e = 0; e < STEP; e++) xa[p + e] = xb[p + e] = ga[p + e] = gb[p + e] = 0.0f;
            if (i < half) {
                load_slots<PAIRS>(xa, p, x, i), load_slots<PAIRS>(xb, p, x + half, i);
                load_slots<PAIRS>(da, 0, dy, i), load_slots<PAIRS>(db, 0, dy + half, i);
                for (int e = 0; e < STEP; e++) {
                    int j = i + e;
                    ga[p + e] = da[e] * c[j] + db[e] * s[j];
                    gb[p + e] = db[e] * c[j] - da[e] * s[j];
                    dot += __bfloat162float(w[j]) * ga[p + e] * xa[p + e] +
                           __bfloat162float(w[j + half]) * gb[p + e] * xb[p + e];
                }
            }
        }
#pragma unroll
        for (int p = 0; p < MAXP; p++) ss += xa[p] * xa[p] + xb[p] * xb[p];
        ss = warp_sum(ss);
        dot = warp_sum(dot);
        float r = rsqrtf(ss / (float)HD + eps);
        float k = dot * r * r * r / (float)HD;
#pragma unroll
        for (int p = 0; p < MAXP; p += STEP) {
            int i = elem<PAIRS>(lane, p);
            if (i < half) {
                float lo[2] = {0.0f, 0.0f}, hi[2] = {0.0f, 0.0f};
                for (int e = 0; e < STEP; e++) {
                    int j = i + e;
                    lo[e] = r * __bfloat162float(w[j]) * ga[p + e] - k * xa[p + e];
                    hi[e] = r * __bfloat162float(w[j + half]) * gb[p + e] - k * xb[p + e];
                    if (want_dw) {
                        atomicAdd(&acc[j], ga[p + e] * xa[p + e] * r);
                        atomicAdd(&acc[j + half], gb[p + e] * xb[p + e] * r);
                    }
                }
                store_slots<PAIRS>(dx, i, lo[0], lo[STEP - 1]), store_slots<PAIRS>(dx + half, i, hi[0], hi[STEP - 1]);
            }
        }
    }
    if (want_dw) {
        __syncthreads();
        for (int i = threadIdx.x; i < HD; i += blockDim.x) {
            atomicAdd(&dqw[i], dw_acc[i]);
            atomicAdd(&dkw[i], dw_acc[HD + i]);
        }
    }
}

extern "C" void qknorm_rope_cuda_backward(paw_bf16 *dinp, float *dqnormw, float *dknormw, const paw_bf16 *dout,
                                          const paw_bf16 *inp, const paw_bf16 *qnormw, const paw_bf16 *knormw,
                                          const float *cos_t, const float *sin_t, const int *pos, int N, int NH,
                                          int NKV, int HD, float eps) {
    long items = (long)N * (NH + 2 * NKV);
    if (items <= 0) return;
    unsigned blocks = paw_ceil_div(items, WARPS);
    bool want_dw = dqnormw && dknormw;
    if (want_dw) {
        unsigned cap = (unsigned)paw_cuda_sm_count() * 8;
        if (blocks > cap) blocks = cap;
    }
    size_t smem = want_dw ? sizeof(float) * 2 * HD : 0;
    float *dq = want_dw ? dqnormw : NULL, *dk = want_dw ? dknormw : NULL;
    if (pairs_ok(HD, dinp, dout, inp, NULL))
        qknorm_rope_bwd_kernel<true><<<blocks, 32 * WARPS, smem, paw_cuda_stream()>>>(
            dinp, dq, dk, dout, inp, qnormw, knormw, cos_t, sin_t, pos, N, NH, NKV, HD, eps);
    else
        qknorm_rope_bwd_kernel<false><<<blocks, 32 * WARPS, smem, paw_cuda_stream()>>>(
            dinp, dq, dk, dout, inp, qnormw, knormw, cos_t, sin_t, pos, N, NH, NKV, HD, eps);
    CUDA_CHECK_LAUNCH();
}
