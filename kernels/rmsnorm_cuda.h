// RMSNorm on the GPU (see kernels/rmsnorm.h): bf16 in and out, statistics and gradients in fp32.
#ifndef PAW_KERNELS_RMSNORM_CUDA_H
#define PAW_KERNELS_RMSNORM_CUDA_H

#include "kernels/cuda_common_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

// out[n] = weight * inp[n] / sqrt(mean(inp[n]^2) + eps) for N rows of C; input rows are in_stride
// elements apart (C for dense; T*C picks the last position of each sequence), out is dense.
// rstd[N] (fp32, may be NULL) keeps 1/sqrt(...) for the backward.
void rmsnorm_cuda_forward(paw_bf16 *out, float *rstd, const paw_bf16 *inp, const paw_bf16 *weight, int N, int C,
                          long in_stride, float eps);
// Residual add fused with the norm: res = a + b (rounded to bf16 once), out = rmsnorm(res).
void residual_rmsnorm_cuda_forward(paw_bf16 *res, paw_bf16 *out, float *rstd, const paw_bf16 *a, const paw_bf16 *b,
                                   const paw_bf16 *weight, int N, int C, float eps);
// Backward fused with the residual gradient: dres (fp32) += d loss / d inp; then dres16 (bf16,
// may be NULL) = dres, the copy the next GEMMs read. dweight (fp32, may be NULL) += d/dweight.
void rmsnorm_cuda_backward(float *dres, paw_bf16 *dres16, float *dweight, const paw_bf16 *dout, const paw_bf16 *inp,
                           const paw_bf16 *weight, const float *rstd, int N, int C);

#ifdef __cplusplus
}
#endif

#endif
