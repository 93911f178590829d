// One-row products for decoding with the element-wise step before them fused in: out = alpha *
// f(x) @ W^T + beta * res for a single row x, where f is the RMSNorm of x (matvec_cuda_rmsnorm)
// or SwiGLU of a [gate | up] row (matvec_cuda_swiglu). A product with nothing fused is
// matmul_cuda_forward's one-row GEMV. Each block computes f(x) into shared memory
// itself (x is a few KB), so the separate norm or activation launch disappears from the decode
// step. f(x) is rounded to bf16 as the separate kernels round it, and also written to xf (when
// not NULL) for what reads it afterwards (the LoRA side paths). Numerically this is
// kernels/rmsnorm.h or kernels/swiglu.h followed by kernels/matmul.h (the CPU references).
#ifndef PAW_KERNELS_MATVEC_CUDA_H
#define PAW_KERNELS_MATVEC_CUDA_H

#include "kernels/matmul_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

// 1 when the fused kernels take this shape: C a multiple of 8, at most 12288, pointers 16-byte aligned.
int matvec_cuda_fits(const paw_bf16 *x, const paw_bf16 *weight, int C);
// x [C], norm_weight [C], weight [OC, C]; res like out ([OC], out_type), ignored when beta == 0.
void matvec_cuda_rmsnorm(void *out, PawOutType out_type, const paw_bf16 *x, const paw_bf16 *norm_weight, float eps,
                         paw_bf16 *xf, const paw_bf16 *weight, const void *res, int C, int OC, float alpha,
                         float beta);
// gu [2C]: gate then up; weight [OC, C].
void matvec_cuda_swiglu(void *out, PawOutType out_type, const paw_bf16 *gu, paw_bf16 *xf, const paw_bf16 *weight,
                        const void *res, int C, int OC, float alpha, float beta);

#ifdef __cplusplus
}
#endif

#endif
