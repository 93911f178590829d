// One warp per row: the row's sum of squares is a warp reduction, no shared memory or block
// barrier. The backward also sums the weight gradient of its rows in shared memory and adds it to
// the global fp32 buffer once per block.
#include <stdint.h>

#include "kernels/cuda_common.cuh"
#include "kernels/rmsnorm_cuda.h"

#define ROWS_PER_BLOCK 4

// 8 bf16 <-> 8 floats through one 16-byte access.
__device__ __forceinline__ void load8(float f[8], const __nv_bfloat16 *p) {
    uint4 raw = *reinterpret_cast<const uint4 *>(p);
    const __nv_bfloat16 *h = reinterpret_cast<const __nv_bfloat16 *>(&raw);
#pragma unroll
    for (int e = 0; e < 8; e++) f[e] = __bfloat162float(h[e]);
}
__device__ __forceinline__ void store8(__nv_bfloat16 *p, const float f[8]) {
    uint4 raw;
    __nv_bfloat16 *h = reinterpret_cast<__nv_bfloat16 *>(&raw);
#pragma unroll
    for (int e = 0; e < 8; e++) h[e] = __float2bfloat16_rn(f[e]);
    *reinterpret_cast<uint4 *>(p) = raw;
}

// vec: C, the row strides and the pointers are 16-byte multiples, so each lane moves 8 values per
// access (unrolled: several loads in flight, which matters when only a few rows run, as in decoding).
template <bool VEC>
__global__ void __launch_bounds__(32 * ROWS_PER_BLOCK)
    rmsnorm_fwd_kernel(__nv_bfloat16 *res, __nv_bfloat16 *out, float *rstd, const __nv_bfloat16 *a,
                       const __nv_bfloat16 *b, const __nv_bfloat16 *w, int N, int C, long in_stride, float eps) {
    pdl_enter();
    int row = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;
    const __nv_bfloat16 *x = a + (size_t)row * in_stride;
    const __nv_bfloat16 *y = b ? b + (size_t)row * C : NULL;
    __nv_bfloat16 *r = res ? res + (size_t)row * C : NULL;
    __nv_bfloat16 *o = out + (size_t)row * C;
    float ss = 0;
    if (VEC) {
#pragma unroll 4
        for (int i = lane * 8; i < C; i += 256) {
            float v[8];
            load8(v, x + i);
            if (y) {
                // The residual stream is stored in bf16: normalise the rounded value that is kept.
                float u[8];
                load8(u, y + i);
#pragma unroll
                for (int e = 0; e < 8; e++) v[e] = __bfloat162float(__float2bfloat16_rn(v[e] + u[e]));
                store8(r + i, v);
            }
#pragma unroll
            for (int e = 0; e < 8; e++) ss += v[e] * v[e];
        }
    } else {
#pragma unroll 4
        for (int i = lane; i < C; i += 32) {
            float v = __bfloat162float(x[i]);
            if (y) {
                __nv_bfloat16 s = __float2bfloat16_rn(v + __bfloat162float(y[i]));
                r[i] = s;
                v = __bfloat162float(s);
            }
            ss += v * v;
        }
    }
    ss = warp_sum(ss);
    float k = rsqrtf(ss / (float)C + eps);
    if (rstd && lane == 0) rstd[row] = k;
    const __nv_bfloat16 *src = y ? r : x;  // the lane reads back only what it wrote itself
    if (VEC) {
#pragma unroll 4
        for (int i = lane * 8; i < C; i += 256) {
            float v[8], wf[8];
            load8(v, src + i);
            load8(wf, w + i);
#pragma unroll
            for (int e = 0; e < 8; e++) v[e] = wf[e] * (v[e] * k);
            store8(o + i, v);
        }
    } else {
#pragma unroll 4
        for (int i = lane; i < C; i += 32) o[i] = __float2bfloat16_rn(__bfloat162float(w[i]) * (__bfloat162float(src[i]) * k));
    }
}

static bool fwd_vec(const void *res, const void *out, const void *a, const void *b, const void *w, int C, long stride) {
    uintptr_t any = (uintptr_t)res | (uintptr_t)out | (uintptr_t)a | (uintptr_t)b | (uintptr_t)w;
    return (any & 15) == 0 && C % 8 == 0 && stride % 8 == 0;
}

static void launch_fwd(__nv_bfloat16 *res, __nv_bfloat16 *out, float *rstd, const __nv_bfloat16 *a,
                       const __nv_bfloat16 *b, const __nv_bfloat16 *w, int N, int C, long in_stride, float eps) {
    unsigned blocks = paw_ceil_div(N, ROWS_PER_BLOCK);
    if (fwd_vec(res, out, a, b, w, C, in_stride))
        paw_launch(rmsnorm_fwd_kernel<true>, dim3(blocks), dim3(32 * ROWS_PER_BLOCK), 0, res, out, rstd, a, b, w, N, C,
                   in_stride, eps);
    else
        paw_launch(rmsnorm_fwd_kernel<false>, dim3(blocks), dim3(32 * ROWS_PER_BLOCK), 0, res, out, rstd, a, b, w, N, C,
                   in_stride, eps);
    CUDA_CHECK_LAUNCH();
}

extern "C" void rmsnorm_cuda_forward(paw_bf16 *out, float *rstd, const paw_bf16 *inp, const paw_bf16 *weight, int N,
                                     int C, long in_stride, float eps) {
    if (N <= 0) return;
    launch_fwd(NULL, out, rstd, inp, NULL, weight, N, C, in_stride, eps);
}

extern "C" void residual_rmsnorm_cuda_forward(paw_bf16 *res, paw_bf16 *out, float *rstd, const paw_bf16 *a,
                                              const paw_bf16 *b, const paw_bf16 *weight, int N, int C, float eps) {
    if (N <= 0) return;
    launch_fwd(res, out, rstd, a, b, weight, N, C, C, eps);
}

// y_i = w_i x_i r, r = (mean(x^2)+eps)^-1/2:  dx_i = r w_i dy_i - x_i r^3 / C * sum_j w_j dy_j x_j.
// VEC as in the forward: each lane moves 8 values per access (16-byte bf16, two 16-byte fp32).
template <bool VEC>
__global__ void __launch_bounds__(32 * ROWS_PER_BLOCK)
    rmsnorm_bwd_kernel(float *dres, __nv_bfloat16 *dres16, float *dweight, const __nv_bfloat16 *dout,
                       const __nv_bfloat16 *inp, const __nv_bfloat16 *w, const float *rstd, int N, int C) {
    extern __shared__ float dw_acc[];  // [C] when dweight is wanted
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (dweight) {
        for (int i = threadIdx.x; i < C; i += blockDim.x) dw_acc[i] = 0;
        __syncthreads();
    }
    for (int row = blockIdx.x * ROWS_PER_BLOCK + warp; row < N; row += gridDim.x * ROWS_PER_BLOCK) {
        const __nv_bfloat16 *x = inp + (size_t)row * C, *dy = dout + (size_t)row * C;
        float r = rstd[row], dot = 0;
        if (VEC) {
#pragma unroll 4
            for (int i = lane * 8; i < C; i += 256) {
                float wf[8], g[8], xv[8];
                load8(wf, w + i), load8(g, dy + i), load8(xv, x + i);
#pragma unroll
                for (int e = 0; e < 8; e++) dot += wf[e] * g[e] * xv[e];
            }
        } else {
            for (int i = lane; i < C; i += 32)
                dot += __bfloat162float(w[i]) * __bfloat162float(dy[i]) * __bfloat162float(x[i]);
        }
        dot = warp_sum(dot);
        float k = dot * r * r * r / (float)C;
        float *d = dres + (size_t)row * C;
        __nv_bfloat16 *d16 = dres16 ? dres16 + (size_t)row * C : NULL;
        if (VEC) {
#pragma unroll 2
            for (int i = lane * 8; i < C; i += 256) {
                float wf[8], g[8], xv[8], v[8];
                load8(wf, w + i), load8(g, dy + i), load8(xv, x + i);
                float4 d0 = *reinterpret_cast<const float4 *>(d + i), d1 = *reinterpret_cast<const float4 *>(d + i + 4);
                const float dv[8] = {d0.x, d0.y, d0.z, d0.w, d1.x, d1.y, d1.z, d1.w};
#pragma unroll
                for (int e = 0; e < 8; e++) v[e] = dv[e] + r * wf[e] * g[e] - k * xv[e];
                *reinterpret_cast<float4 *>(d + i) = make_float4(v[0], v[1], v[2], v[3]);
                *reinterpret_cast<float4 *>(d + i + 4) = make_float4(v[4], v[5], v[6], v[7]);
                if (d16) store8(d16 + i, v);
                if (dweight)
#pragma unroll
                    for (int e = 0; e < 8; e++) atomicAdd(&dw_acc[i + e], g[e] * xv[e] * r);
            }
        } else {
            for (int i = lane; i < C; i += 32) {
                float xi = __bfloat162float(x[i]), gi = __bfloat162float(dy[i]);
                float v = d[i] + r * __bfloat162float(w[i]) * gi - k * xi;
                d[i] = v;
                if (d16) d16[i] = __float2bfloat16_rn(v);
                if (dweight) atomicAdd(&dw_acc[i], gi * xi * r);
            }
        }
    }
    if (dweight) {
        __syncthreads();
        for (int i = threadIdx.x; i < C; i += blockDim.x) atomicAdd(&dweight[i], dw_acc[i]);
    }
}

extern "C" void rmsnorm_cuda_backward(float *dres, paw_bf16 *dres16, float *dweight, const paw_bf16 *dout,
                                      const paw_bf16 *inp, const paw_bf16 *weight, const float *rstd, int N, int C) {
    if (N <= 0) return;
    unsigned blocks = paw_ceil_div(N, ROWS_PER_BLOCK);
    size_t smem = 0;
    const bool vec = (((uintptr_t)dres | (uintptr_t)dres16 | (uintptr_t)dout | (uintptr_t)inp | (uintptr_t)weight) & 15) == 0 &&
                     C % 8 == 0;
    void (*kernel)(float *, __nv_bfloat16 *, float *, const __nv_bfloat16 *, const __nv_bfloat16 *,
                   const __nv_bfloat16 *, const float *, int, int) =
        vec ? rmsnorm_bwd_kernel<true> : rmsnorm_bwd_kernel<false>;
    if (dweight) {
        // Few blocks, many rows each: the per-block weight-gradient flush then costs little.
        unsigned cap = (unsigned)paw_cuda_sm_count() * 4;
        if (blocks > cap) blocks = cap;
        smem = sizeof(float) * (size_t)C;
        if (smem > 48 * 1024) CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    }
    kernel<<<blocks, 32 * ROWS_PER_BLOCK, smem, paw_cuda_stream()>>>(dres, dres16, dweight, dout, inp, weight, rstd, N, C);
    CUDA_CHECK_LAUNCH();
}
