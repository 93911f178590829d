// Per-example LoRA side path, unmerged: y = W x + scale * B_b (A_b x), where the rows of
// example b (rows b*T .. b*T+T-1) use their own A_b [r, d_in] and B_b [d_out, r]. The CPU
// reference loops over examples; the CUDA version runs them as one batched GEMM.
#ifndef PAW_KERNELS_LORA_H
#define PAW_KERNELS_LORA_H

#include <stdint.h>

// A: [nb, r, d_in], Bm: [nb, d_out, r]. y += scale * (x A_b^T) B_b^T.
// u [nb*T, r] keeps scale * x A_b^T for the backward.
void lora_forward(float *y, float *u, const float *x, const float *A, const float *Bm, int nb, int T, int d_in,
                  int d_out, int r, float scale);
// The same with Q8 weights (inference: adapters read from Q4_0 or Q8_0 program files): int8
// values qA [nb, r, d_in], qB [nb, d_out, r] and their scales, one per 32 values along each row
// (qAd [nb * r * d_in / 32], qBd [nb * d_out * r / 32]); d_in and r multiples of 32. Bit for bit
// lora_forward on the dequantized weights (kernels/matmul.h).
void lora_forward_q8(float *y, float *u, const float *x, const int8_t *qA, const float *qAd, const int8_t *qB,
                     const float *qBd, int nb, int T, int d_in, int d_out, int r, float scale);
// Accumulates dx (may be NULL), dA and dB (either may be NULL). du: scratch [T, r].
void lora_backward(float *dx, float *dA, float *dB, const float *dy, const float *x, const float *u, const float *A,
                   const float *Bm, int nb, int T, int d_in, int d_out, int r, float scale, float *du);

#endif
