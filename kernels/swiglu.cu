#include "kernels/cuda_common.cuh"
#include "kernels/swiglu_cuda.h"

__global__ void swiglu_fwd_kernel(__nv_bfloat16 *out, const __nv_bfloat16 *gu, long N, int I) {
    pdl_enter();
    long total = N * I;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total; i += (long)gridDim.x * blockDim.x) {
        long n = i / I, c = i % I;
        float g = __bfloat162float(gu[n * 2 * I + c]), u = __bfloat162float(gu[n * 2 * I + I + c]);
        out[i] = __float2bfloat16_rn(g / (1.0f + __expf(-g)) * u);
    }
}

__global__ void swiglu_bwd_kernel(__nv_bfloat16 *dgu, const __nv_bfloat16 *dout, const __nv_bfloat16 *gu, long N,
                                  int I) {
    long total = N * I;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total; i += (long)gridDim.x * blockDim.x) {
        long n = i / I, c = i % I, gi = n * 2 * I + c;
        float g = __bfloat162float(gu[gi]), u = __bfloat162float(gu[gi + I]), d = __bfloat162float(dout[i]);
        float s = 1.0f / (1.0f + __expf(-g));
        dgu[gi] = __float2bfloat16_rn(d * u * s * (1.0f + g * (1.0f - s)));
        dgu[gi + I] = __float2bfloat16_rn(d * g * s);
    }
}

static unsigned grid_for(long n) {
    unsigned blocks = paw_ceil_div(n, 256), cap = (unsigned)paw_cuda_sm_count() * 16;
    return blocks < cap ? blocks : cap;
}

extern "C" void swiglu_cuda_forward(paw_bf16 *out, const paw_bf16 *gu, int N, int I) {
    if ((long)N * I <= 0) return;
    paw_launch(swiglu_fwd_kernel, dim3(grid_for((long)N * I)), dim3(256), 0, out, gu, (long)N, I);
    CUDA_CHECK_LAUNCH();
}

extern "C" void swiglu_cuda_backward(paw_bf16 *dgu, const paw_bf16 *dout, const paw_bf16 *gu, int N, int I) {
    if ((long)N * I <= 0) return;
    swiglu_bwd_kernel<<<grid_for((long)N * I), 256, 0, paw_cuda_stream()>>>(dgu, dout, gu, N, I);
    CUDA_CHECK_LAUNCH();
}
