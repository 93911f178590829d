// The per-example LoRA side path of kernels/lora.h on the GPU, for a whole batch at once: the rows
// of example b (b*T .. b*T+T-1) use their own adapters A_b [r, d_in] and B_b [d_out, r]. Each
// product is one strided-batched cuBLASLt GEMM over the nb examples (four launches in the
// backward, two in the forward), never a loop of per-example launches.
//
// Dtypes follow kernels/matmul_cuda.h: activations bf16, fp32 accumulation, adapter gradients
// fp32 and always accumulated. The adapters themselves are bf16 on the GPU, because cuBLASLt
// multiplies bf16 only by bf16: the mapper mixes them in fp32 (kernels/mapper_mix_cuda.h) and
// paw_cuda_f32_to_bf16 makes the copy these GEMMs read (a few MB per batch, one pass).
#ifndef PAW_KERNELS_LORA_CUDA_H
#define PAW_KERNELS_LORA_CUDA_H

#include "kernels/cuda_common_cuda.h"
#include "kernels/matmul_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

// x [nb*T, d_in], A [nb, r, d_in], Bm [nb, d_out, r] (bf16, dense).
// u [nb*T, r] (bf16) = scale * x A_b^T, kept for the backward.
// y [nb*T rows of ld_y elements, first d_out used] += u B_b^T, bf16 or fp32 (y_type); ld_y >= d_out
// lets y be a column slice of a fused projection's output (q of the packed q/k/v, for instance).
void lora_cuda_forward(void *y, PawOutType y_type, int ld_y, paw_bf16 *u, const paw_bf16 *x, const paw_bf16 *A,
                       const paw_bf16 *Bm, int nb, int T, int d_in, int d_out, int r, float scale);

// dy: rows of ld_y elements like y. du: scratch [nb*T, r] bf16 (= scale * dy B_b).
// dB [nb, d_out, r] += dy^T u and dA [nb, r, d_in] += du^T x (fp32; either may be NULL);
// dx [nb*T, d_in] += du A_b (bf16 or fp32 per dx_type; NULL skips it), so the side path adds
// into the caller's input gradient on the GEMM epilogue.
void lora_cuda_backward(void *dx, PawOutType dx_type, float *dA, float *dB, const paw_bf16 *dy, int ld_y,
                        const paw_bf16 *x, const paw_bf16 *u, const paw_bf16 *A, const paw_bf16 *Bm, int nb, int T,
                        int d_in, int d_out, int r, float scale, paw_bf16 *du);

// Decoding (one token per example): up to LORA_TOKENS_MAX modules that read the same x [nb, d_in]
// in two launches for the group instead of two per module: u_i [nb, r] = bf16(scale * x A_i,b^T),
// then y_i rows (stride ld_y) += u_i B_i,b^T, bf16 (the products of lora_cuda_forward, each output
// element one warp's dot product). Launched through paw_launch (programmatic launch in a decoding
// step).
#define LORA_TOKENS_MAX 3
typedef struct {
    const paw_bf16 *A, *Bm;  // [nb, r, d_in], [nb, d_out, r]
    paw_bf16 *u;             // [nb, r] scratch
    paw_bf16 *y;             // row b at y + b * ld_y, first d_out used
    int d_out;
} LoraTokensModule;
void lora_cuda_forward_tokens(const LoraTokensModule *mods, int nmods, const paw_bf16 *x, int nb, int d_in, int r,
                              int ld_y, float scale);

#ifdef __cplusplus
}
#endif

#endif
