// One block per row: a single pass keeps a running (max, sum of exp) per thread (online softmax),
// the block combines them, then a second pass writes dlogits. Where V % 4 == 0 and the rows are
// aligned (the real vocabulary), four logits at a time: 16-byte loads, 8-byte bf16 stores, one
// rescale of the running sum per four values instead of a branch per value.
#include "kernels/crossentropy_cuda.h"
#include "kernels/cuda_common.cuh"
#include "kernels/matmul_cuda.h"

#define CE_THREADS 512

// Merges (m2, s2) into (m, s): s = sum exp(x - m) over both sets.
__device__ __forceinline__ void merge_max_sum(float &m, float &s, float m2, float s2) {
    float M = fmaxf(m, m2);
    if (M == -INFINITY) return;  // both empty
    s = s * __expf(m - M) + s2 * __expf(m2 - M);
    m = M;
}

template <int VEC>
__global__ void __launch_bounds__(CE_THREADS)
    crossentropy_kernel(float *nll, float *lse_out, __nv_bfloat16 *dlogits, const float *logits, const int *targets,
                        const float *weights, int V, float scale) {
    __shared__ float sm[32], ss[32];
    __shared__ float row_lse;
    const int row = blockIdx.x, tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    const float *x = logits + (size_t)row * V;
    float m = -INFINITY, s = 0.0f;
    if (VEC == 4) {
        const float4 *x4 = reinterpret_cast<const float4 *>(x);
        for (int i = tid; i < V / 4; i += CE_THREADS) {
            float4 v = x4[i];
            float M = fmaxf(fmaxf(v.x, v.y), fmaxf(v.z, v.w));
            if (M > m) {
                s *= __expf(m - M);
                m = M;
            }
            s += __expf(v.x - m) + __expf(v.y - m) + __expf(v.z - m) + __expf(v.w - m);
        }
    } else {
        for (int i = tid; i < V; i += CE_THREADS) {
            float v = x[i];
            if (v > m) {
                s = s * __expf(m - v) + 1.0f;
                m = v;
            } else {
                s += __expf(v - m);
            }
        }
    }
    for (int o = 16; o > 0; o >>= 1) {
        float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
        merge_max_sum(m, s, m2, s2);
    }
    if (lane == 0) {
        sm[warp] = m;
        ss[warp] = s;
    }
    __syncthreads();
    if (warp == 0) {
        m = lane < CE_THREADS / 32 ? sm[lane] : -INFINITY;
        s = lane < CE_THREADS / 32 ? ss[lane] : 0.0f;
        for (int o = 16; o > 0; o >>= 1) {
            float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
            merge_max_sum(m, s, m2, s2);
        }
        if (lane == 0) row_lse = m + logf(s);
    }
    __syncthreads();
    const float lse = row_lse;
    const int target = targets ? targets[row] : -1;
    const float w = weights ? weights[row] : 1.0f;
    const bool counts = w != 0.0f && target >= 0 && target < V;
    if (tid == 0) {
        nll[row] = counts ? lse - x[target] : 0.0f;
        if (lse_out) lse_out[row] = lse;
    }
    if (dlogits) {
        __nv_bfloat16 *d = dlogits + (size_t)row * V;
        const float coef = counts ? scale * w : 0.0f;
        if (VEC == 4) {
            const float4 *x4 = reinterpret_cast<const float4 *>(x);
            for (int i = tid; i < V / 4; i += CE_THREADS) {
                float p[4] = {0.0f, 0.0f, 0.0f, 0.0f};
                if (coef != 0.0f) {
                    float4 v = x4[i];
                    const float xs[4] = {v.x, v.y, v.z, v.w};
                    for (int k = 0; k < 4; k++) p[k] = coef * (__expf(xs[k] - lse) - (4 * i + k == target ? 1.0f : 0.0f));
                }
                __nv_bfloat162 lo = __floats2bfloat162_rn(p[0], p[1]), hi = __floats2bfloat162_rn(p[2], p[3]);
                reinterpret_cast<uint2 *>(d)[i] =
                    make_uint2(*reinterpret_cast<unsigned *>(&lo), *reinterpret_cast<unsigned *>(&hi));
            }
        } else {
            for (int i = tid; i < V; i += CE_THREADS) {
                float p = coef == 0.0f ? 0.0f : coef * (__expf(x[i] - lse) - (i == target ? 1.0f : 0.0f));
                d[i] = __float2bfloat16_rn(p);
            }
        }
    }
}

extern "C" void crossentropy_cuda(float *nll, float *lse, paw_bf16 *dlogits, const float *logits, const int *targets,
                                  const float *weights, int N, int V, float scale) {
    if (N <= 0) return;
    const bool vec4 = V % 4 == 0 && (uintptr_t)logits % 16 == 0 && (!dlogits || (uintptr_t)dlogits % 8 == 0);
    if (vec4)
        crossentropy_kernel<4><<<N, CE_THREADS, 0, paw_cuda_stream()>>>(nll, lse, dlogits, logits, targets, weights, V,
                                                                        scale);
    else
        crossentropy_kernel<1><<<N, CE_THREADS, 0, paw_cuda_stream()>>>(nll, lse, dlogits, logits, targets, weights, V,
                                                                        scale);
    CUDA_CHECK_LAUNCH();
}

extern "C" void lmhead_ce_cuda(float *nll, paw_bf16 *dx, float *dW, const paw_bf16 *x, const paw_bf16 *W,
                               const int *targets, const float *weights, int N, int C, int V, float scale,
                               float *logits_ws, paw_bf16 *dlogits_ws, int chunk_rows) {
    for (int r0 = 0; r0 < N; r0 += chunk_rows) {
        int n = N - r0 < chunk_rows ? N - r0 : chunk_rows;
        const paw_bf16 *xc = x + (size_t)r0 * C;
        matmul_cuda_forward(logits_ws, PAW_OUT_F32, xc, W, NULL, n, C, V, 1.0f, 0.0f);
        crossentropy_cuda(nll + r0, NULL, dx ? dlogits_ws : NULL, logits_ws, targets + r0,
                          weights ? weights + r0 : NULL, n, V, scale);
        if (!dx) continue;
        matmul_cuda_backward_input(dx + (size_t)r0 * C, dlogits_ws, W, n, C, V, 0.0f);
        if (dW) matmul_cuda_backward_weight(dW, dlogits_ws, xc, n, C, V);
    }
}
