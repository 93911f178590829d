// One warp per (token, head). Rotate-half pairs element i with i + HD/2; each lane holds up to
// four pairs in registers (HD <= 256), so the row is read once and written once.
#include "kernels/cuda_common.cuh"
#include "kernels/rope_cuda.h"

#define WARPS 4
#define MAXP 4  // pairs per lane: HD/2 <= 32 * MAXP

__global__ void __launch_bounds__(32 * WARPS)
    qknorm_rope_fwd_kernel(__nv_bfloat16 *out, const __nv_bfloat16 *inp, const __nv_bfloat16 *qnw,
                           const __nv_bfloat16 *knw, const float *cos_t, const float *sin_t, const int *pos, int N,
                           int NH, int NKV, int HD, float eps, RopeCacheDst cache) {
    pdl_enter();
    int heads = NH + 2 * NKV;
    long item = (long)blockIdx.x * WARPS + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (item >= (long)N * heads) return;
    int n = (int)(item / heads), h = (int)(item % heads), half = HD / 2;
    size_t base = (size_t)n * heads * HD + (size_t)h * HD;
    const __nv_bfloat16 *x = inp + base;
    __nv_bfloat16 *y = out + base;
    // Key and value heads also go to the KV cache, at row len + t of their sequence (never past
    // its capacity), in the [B, cap, NKV * HD] layout of each layer's cache.
    __nv_bfloat16 *cy = NULL;
    if (cache.k && h >= NH) {
        int b = n / cache.T, t = n % cache.T, len = cache.len[cache.per_row ? b : 0];
        if (len + t < cache.cap) {
            size_t row = ((size_t)b * cache.cap + len + t) * NKV * HD;
            cy = h < NH + NKV ? cache.k + row + (size_t)(h - NH) * HD : cache.v + row + (size_t)(h - NH - NKV) * HD;
        }
    }
    if (h >= NH + NKV) {  // value head: copy
        for (int i = lane; i < HD; i += 32) {
            y[i] = x[i];
            if (cy) cy[i] = x[i];
        }
        return;
    }
    const __nv_bfloat16 *w = h < NH ? qnw : knw;
    float a[MAXP], b[MAXP], ss = 0;
#pragma unroll
    for (int p = 0; p < MAXP; p++) {
        int i = lane + 32 * p;
        a[p] = i < half ? __bfloat162float(x[i]) : 0.0f;
        b[p] = i < half ? __bfloat162float(x[i + half]) : 0.0f;
        ss += a[p] * a[p] + b[p] * b[p];
    }
    ss = warp_sum(ss);
    float r = rsqrtf(ss / (float)HD + eps);
    const float *c = cos_t + (size_t)pos[n] * half, *s = sin_t + (size_t)pos[n] * half;
#pragma unroll
    for (int p = 0; p < MAXP; p++) {
        int i = lane + 32 * p;
        if (i < half) {
            float u = a[p] * r * __bfloat162float(w[i]), v = b[p] * r * __bfloat162float(w[i + half]);
            __nv_bfloat16 lo = __float2bfloat16_rn(u * c[i] - v * s[i]), hi = __float2bfloat16_rn(v * c[i] + u * s[i]);
            y[i] = lo, y[i + half] = hi;
            if (cy) cy[i] = lo, cy[i + half] = hi;
        }
    }
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
    paw_launch(qknorm_rope_fwd_kernel, dim3(paw_ceil_div(items, WARPS)), dim3(32 * WARPS), 0, out, inp, qnormw, knormw,
               cos_t, sin_t, pos, N, NH, NKV, HD, eps, dst);
    CUDA_CHECK_LAUNCH();
}

// Backward: g = R^T dy (the inverse rotation), then the RMSNorm backward over the head:
// dx_i = r w_i g_i - x_i r^3 / HD * sum_j w_j g_j x_j, dw_i += g_i x_i r.
__global__ void __launch_bounds__(32 * WARPS)
    qknorm_rope_bwd_kernel(__nv_bfloat16 *dinp, float *dqw, float *dkw, const __nv_bfloat16 *dout,
                           const __nv_bfloat16 *inp, const __nv_bfloat16 *qnw, const __nv_bfloat16 *knw,
                           const float *cos_t, const float *sin_t, const int *pos, int N, int NH, int NKV, int HD,
                           float eps) {
    extern __shared__ float dw_acc[];  // [2][HD]: query and key norm weights
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
            for (int i = lane; i < HD; i += 32) dx[i] = dy[i];
            continue;
        }
        const __nv_bfloat16 *w = h < NH ? qnw : knw;
        float *acc = dw_acc + (h < NH ? 0 : HD);
        const float *c = cos_t + (size_t)pos[n] * half, *s = sin_t + (size_t)pos[n] * half;
        float xa[MAXP], xb[MAXP], ga[MAXP], gb[MAXP], ss = 0, dot = 0;
#pragma unroll
        for (int p = 0; p < MAXP; p++) {
            int i = lane + 32 * p;
            xa[p] = xb[p] = ga[p] = gb[p] = 0.0f;
            if (i < half) {
                xa[p] = __bfloat162float(x[i]);
                xb[p] = __bfloat162float(x[i + half]);
                float da = __bfloat162float(dy[i]), db = __bfloat162float(dy[i + half]);
                ga[p] = da * c[i] + db * s[i];
                gb[p] = db * c[i] - da * s[i];
                dot += __bfloat162float(w[i]) * ga[p] * xa[p] + __bfloat162float(w[i + half]) * gb[p] * xb[p];
            }
            ss += xa[p] * xa[p] + xb[p] * xb[p];
        }
        ss = warp_sum(ss);
        dot = warp_sum(dot);
        float r = rsqrtf(ss / (float)HD + eps);
        float k = dot * r * r * r / (float)HD;
#pragma unroll
        for (int p = 0; p < MAXP; p++) {
            int i = lane + 32 * p;
            if (i < half) {
                dx[i] = __float2bfloat16_rn(r * __bfloat162float(w[i]) * ga[p] - k * xa[p]);
                dx[i + half] = __float2bfloat16_rn(r * __bfloat162float(w[i + half]) * gb[p] - k * xb[p]);
                if (want_dw) {
                    atomicAdd(&acc[i], ga[p] * xa[p] * r);
                    atomicAdd(&acc[i + half], gb[p] * xb[p] * r);
                }
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
    qknorm_rope_bwd_kernel<<<blocks, 32 * WARPS, want_dw ? sizeof(float) * 2 * HD : 0, paw_cuda_stream()>>>(
        dinp, want_dw ? dqnormw : NULL, want_dw ? dknormw : NULL, dout, inp, qnormw, knormw, cos_t, sin_t, pos, N, NH,
        NKV, HD, eps);
    CUDA_CHECK_LAUNCH();
}
