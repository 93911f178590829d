// SwiGLU on the GPU (see kernels/swiglu.h) over the packed output of the fused gate/up projection:
// row n of gu holds gate[n, 0..I) then up[n, 0..I).
#ifndef PAW_KERNELS_SWIGLU_CUDA_H
#define PAW_KERNELS_SWIGLU_CUDA_H

#include "kernels/cuda_common_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

// out[N, I] = silu(gate) * up.
void swiglu_cuda_forward(paw_bf16 *out, const paw_bf16 *gu, int N, int I);
// dgu[N, 2I] = (dout * up * silu'(gate), dout * silu(gate)), overwritten.
void swiglu_cuda_backward(paw_bf16 *dgu, const paw_bf16 *dout, const paw_bf16 *gu, int N, int I);

#ifdef __cplusplus
}
#endif

#endif
