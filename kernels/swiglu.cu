#include "kernels/cuda_common.cuh"
#include "kernels/swiglu_cuda.h"

// One element: out = silu(g) * u, and the two input gradients of it. Shared by the scalar and the
// 8-wide kernels, so both compute the same thing.
__device__ __forceinline__ float swiglu_value(float g, float u) { return g / (1.0f + __expf(-g)) * u; }
__device__ __forceinline__ void swiglu_grads(float g, float u, float d, float *dg, float *du) {
    float s = 1.0f / (1.0f + __expf(-g));
    *dg = d * u * s * (1.0f + g * (1.0f - s));
    *du = d * g * s;
}

__global__ void swiglu_fwd_kernel(__nv_bfloat16 *out, const __nv_bfloat16 *gu, long N, int I) {
    pdl_enter();
    long total = N * I;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total; i += (long)gridDim.x * blockDim.x) {
        long n = i / I, c = i % I;
        float g = __bfloat162float(gu[n * 2 * I + c]), u = __bfloat162float(gu[n * 2 * I + I + c]);
        out[i] = __float2bfloat16_rn(swiglu_value(g, u));
    }
}

__global__ void swiglu_bwd_kernel(__nv_bfloat16 *dgu, const __nv_bfloat16 *dout, const __nv_bfloat16 *gu, long N,
                                  int I) {
    long total = N * I;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total; i += (long)gridDim.x * blockDim.x) {
        long n = i / I, c = i % I, gi = n * 2 * I + c;
        float dg, du;
        swiglu_grads(__bfloat162float(gu[gi]), __bfloat162float(gu[gi + I]), __bfloat162float(dout[i]), &dg, &du);
        dgu[gi] = __float2bfloat16_rn(dg);
        dgu[gi + I] = __float2bfloat16_rn(du);
    }
}

// Eight bf16 in one 16-byte word.
union Bf16x8 {
    uint4 u;
    __nv_bfloat162 h[4];
};

// The same eight elements at a time (I8 = I / 8 words per half row; every pointer 16-byte
// aligned): one 16-byte load or store per tensor and one index division per eight elements,
// where the scalar kernels spend 2-byte accesses and a 64-bit division per element.
__global__ void swiglu_fwd_vec8_kernel(uint4 *out, const uint4 *gu, long N, int I8) {
    pdl_enter();
    long total = N * I8;
    for (long j = blockIdx.x * (long)blockDim.x + threadIdx.x; j < total; j += (long)gridDim.x * blockDim.x) {
        long n = j / I8, c = j % I8;
        Bf16x8 g, u, o;
        g.u = gu[n * 2 * I8 + c], u.u = gu[n * 2 * I8 + I8 + c];
        for (int k = 0; k < 4; k++) {
            float2 gf = __bfloat1622float2(g.h[k]), uf = __bfloat1622float2(u.h[k]);
            o.h[k] = __floats2bfloat162_rn(swiglu_value(gf.x, uf.x), swiglu_value(gf.y, uf.y));
        }
        out[j] = o.u;
    }
}

__global__ void swiglu_bwd_vec8_kernel(uint4 *dgu, const uint4 *dout, const uint4 *gu, long N, int I8) {
    long total = N * I8;
    for (long j = blockIdx.x * (long)blockDim.x + threadIdx.x; j < total; j += (long)gridDim.x * blockDim.x) {
        long n = j / I8, c = j % I8, gj = n * 2 * I8 + c;
        Bf16x8 g, u, d, dg, du;
        g.u = gu[gj], u.u = gu[gj + I8], d.u = dout[j];
        for (int k = 0; k < 4; k++) {
            float2 gf = __bfloat1622float2(g.h[k]), uf = __bfloat1622float2(u.h[k]), df = __bfloat1622float2(d.h[k]);
            float dg0, du0, dg1, du1;
            swiglu_grads(gf.x, uf.x, df.x, &dg0, &du0);
            swiglu_grads(gf.y, uf.y, df.y, &dg1, &du1);
            dg.h[k] = __floats2bfloat162_rn(dg0, dg1), du.h[k] = __floats2bfloat162_rn(du0, du1);
        }
        dgu[gj] = dg.u, dgu[gj + I8] = du.u;
    }
}

static unsigned grid_for(long n) {
    unsigned blocks = paw_ceil_div(n, 256), cap = (unsigned)paw_cuda_sm_count() * 16;
    return blocks < cap ? blocks : cap;
}

static bool vec8(int I, const void *a, const void *b, const void *c) {
    return I % 8 == 0 && (uintptr_t)a % 16 == 0 && (uintptr_t)b % 16 == 0 && (!c || (uintptr_t)c % 16 == 0);
}

extern "C" void swiglu_cuda_forward(paw_bf16 *out, const paw_bf16 *gu, int N, int I) {
    if ((long)N * I <= 0) return;
    if (vec8(I, out, gu, NULL))
        paw_launch(swiglu_fwd_vec8_kernel, dim3(grid_for((long)N * I / 8)), dim3(256), 0, (uint4 *)out,
                   (const uint4 *)gu, (long)N, I / 8);
    else
        paw_launch(swiglu_fwd_kernel, dim3(grid_for((long)N * I)), dim3(256), 0, out, gu, (long)N, I);
    CUDA_CHECK_LAUNCH();
}

extern "C" void swiglu_cuda_backward(paw_bf16 *dgu, const paw_bf16 *dout, const paw_bf16 *gu, int N, int I) {
    if ((long)N * I <= 0) return;
    if (vec8(I, dgu, dout, gu))
        swiglu_bwd_vec8_kernel<<<grid_for((long)N * I / 8), 256, 0, paw_cuda_stream()>>>(
            (uint4 *)dgu, (const uint4 *)dout, (const uint4 *)gu, (long)N, I / 8);
    else
        swiglu_bwd_kernel<<<grid_for((long)N * I), 256, 0, paw_cuda_stream()>>>(dgu, dout, gu, N, I);
    CUDA_CHECK_LAUNCH();
}
