// bf16 matrix multiplies on the GPU through cuBLASLt, fp32 accumulation, in the nn.Linear layout
// of kernels/matmul.h: out[N, OC] = inp[N, C] @ weight[OC, C]^T. All matrices are dense row-major.
// Weight gradients are fp32 (the optimizer's master precision) and always accumulate, so
// gradients of several micro-batches, and the tied embedding's two uses, add up without bf16
// rounding. The handle and a 32 MiB workspace are created on first use.
#ifndef PAW_KERNELS_MATMUL_CUDA_H
#define PAW_KERNELS_MATMUL_CUDA_H

#include "kernels/cuda_common_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { PAW_OUT_BF16 = 0, PAW_OUT_F32 = 1 } PawOutType;

// out = alpha * inp @ weight^T + beta * res. out is bf16 or fp32 (out_type); res has the same
// type and may be out itself or another buffer (the residual add rides on the GEMM epilogue);
// res is ignored when beta == 0.
void matmul_cuda_forward(void *out, PawOutType out_type, const paw_bf16 *inp, const paw_bf16 *weight,
                         const void *res, int N, int C, int OC, float alpha, float beta);
// dinp[N, C] = dout[N, OC] @ weight[OC, C] (+ beta * dinp), bf16.
void matmul_cuda_backward_input(paw_bf16 *dinp, const paw_bf16 *dout, const paw_bf16 *weight, int N, int C, int OC,
                                float beta);
// dweight[OC, C] (fp32) += dout[N, OC]^T @ inp[N, C].
void matmul_cuda_backward_weight(float *dweight, const paw_bf16 *dout, const paw_bf16 *inp, int N, int C, int OC);
// The same into a bf16 gradient (the sum is fp32 inside the GEMM, rounded once per call).
void matmul_cuda_backward_weight_bf16(paw_bf16 *dweight, const paw_bf16 *dout, const paw_bf16 *inp, int N, int C,
                                      int OC);

#ifdef __cplusplus
}
#endif

#endif
