#include "kernels/cuda_common.cuh"
#include "kernels/embedding_cuda.h"

__global__ void embedding_fwd_kernel(__nv_bfloat16 *out, const int *ids, const __nv_bfloat16 *table, int C) {
    pdl_enter();
    int id = ids[blockIdx.x];
    if (id < 0) return;
    const __nv_bfloat16 *src = table + (size_t)id * C;
    __nv_bfloat16 *dst = out + (size_t)blockIdx.x * C;
    for (int i = threadIdx.x; i < C; i += blockDim.x) dst[i] = src[i];
}

__global__ void embedding_bwd_kernel(float *dtable, const float *dout, const int *ids, int C) {
    int id = ids[blockIdx.x];
    if (id < 0) return;
    const float *src = dout + (size_t)blockIdx.x * C;
    float *dst = dtable + (size_t)id * C;
    for (int i = threadIdx.x; i < C; i += blockDim.x) atomicAdd(&dst[i], src[i]);
}

extern "C" void embedding_cuda_forward(paw_bf16 *out, const int *ids, const paw_bf16 *table, int N, int C) {
    if (N <= 0) return;
    paw_launch(embedding_fwd_kernel, dim3(N), dim3(128), 0, out, ids, table, C);
    CUDA_CHECK_LAUNCH();
}

extern "C" void embedding_cuda_backward(float *dtable, const float *dout, const int *ids, int N, int C) {
    if (N <= 0) return;
    embedding_bwd_kernel<<<N, 128, 0, paw_cuda_stream()>>>(dtable, dout, ids, C);
    CUDA_CHECK_LAUNCH();
}
