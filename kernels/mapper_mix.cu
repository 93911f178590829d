// Basis mixing as fp32 GEMMs (see mapper_mix_cuda.h). Row-major [R, K] is column-major [K, R],
// so each product is written for its transpose.
#include "kernels/cuda_common.cuh"
#include "kernels/gemm_batched.cuh"
#include "kernels/mapper_mix_cuda.h"

// 7 LoRA modules per layer (model/qwen3.h LORA_NUM_MODULES; that header is C only).
#define MIX_MODULES 7

extern "C" void mapper_mix_cuda_forward(float *out, const float *coef, const float *bases, int rows, int N,
                                        int cols) {
    if (rows <= 0 || N <= 0 || cols <= 0) return;
    // out^T [cols, rows] = bases^T (column-major [cols, N]) * coef^T (column-major [N, rows]).
    paw_gemm_batched(out, CUDA_R_32F, bases, 0, coef, 0, CUDA_R_32F, cols, rows, N, cols, N, cols, 0, 0, 0, 1, 1.0f,
                     0.0f);
}

extern "C" void mapper_mix_cuda_backward(float *dcoef, float *dbases, const float *dout, const float *coef,
                                         const float *bases, int rows, int N, int cols) {
    if (rows <= 0 || N <= 0 || cols <= 0) return;
    // dcoef^T [N, rows] = bases (column-major [cols, N], transposed) * dout^T (column-major [cols, rows]).
    if (dcoef) paw_gemm_batched(dcoef, CUDA_R_32F, bases, 1, dout, 0, CUDA_R_32F, N, rows, cols, cols, cols, N, 0, 0,
                                0, 1, 1.0f, 0.0f);
    // dbases^T [cols, N] += dout^T (column-major [cols, rows]) * coef (column-major [N, rows], transposed).
    if (dbases) paw_gemm_batched(dbases, CUDA_R_32F, dout, 0, coef, 1, CUDA_R_32F, cols, N, rows, cols, N, cols, 0, 0,
                                 0, 1, 1.0f, 1.0f);
}

// One thread per coefficient; i runs over the packed order [mod][side][l][b][n] and j is the same
// coefficient in the mapper's [nb, L*7*N*2] layout. Pack reads j and writes i (coalesced
// writes); unpack reads i and writes j.
__global__ void coef_pack_kernel(float *dst, const float *src, int nb, int L, int N, int unpack) {
    size_t total = (size_t)MIX_MODULES * 2 * L * nb * N, K = (size_t)L * MIX_MODULES * N * 2;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t t = i;
        int n = (int)(t % N);
        t /= N;
        int b = (int)(t % nb);
        t /= nb;
        int l = (int)(t % L);
        t /= L;
        int side = (int)(t % 2), mod = (int)(t / 2);
        size_t j = (size_t)b * K + (((size_t)l * MIX_MODULES + mod) * N + n) * 2 + side;
        if (unpack) dst[j] = src[i];
        else dst[i] = src[j];
    }
}

static void launch_pack(float *dst, const float *src, int nb, int L, int N, int unpack) {
    if (nb <= 0 || L <= 0 || N <= 0) return;
    size_t total = (size_t)MIX_MODULES * 2 * L * nb * N;
    unsigned blocks = paw_ceil_div(total, 256);
    if (blocks > 4096) blocks = 4096;
    coef_pack_kernel<<<blocks, 256, 0, paw_cuda_stream()>>>(dst, src, nb, L, N, unpack);
    CUDA_CHECK_LAUNCH();
}

extern "C" void mapper_coef_pack_cuda(float *packed, const float *coef, int nb, int L, int N) {
    launch_pack(packed, coef, nb, L, N, 0);
}

extern "C" void mapper_coef_unpack_cuda(float *dcoef, const float *dpacked, int nb, int L, int N) {
    launch_pack(dcoef, dpacked, nb, L, N, 1);
}
