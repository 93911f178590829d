// Per-example LoRA side path, unmerged: y = W x + scale * B_b (A_b x), where the rows of
// example b (rows b*T .. b*T+T-1) use their own A_b [r, d_in] and B_b [d_out, r]. The CPU
// reference loops over examples; the CUDA version runs them as one batched GEMM.
#ifndef PAW_KERNELS_LORA_H
#define PAW_KERNELS_LORA_H

// A: [nb, r, d_in], Bm: [nb, d_out, r]. y += scale * (x A_b^T) B_b^T.
// u [nb*T, r] keeps scale * x A_b^T for the backward.
void lora_forward(float *y, float *u, const float *x, const float *A, const float *Bm, int nb, int T, int d_in,
                  int d_out, int r, float scale);
// Accumulates dx (may be NULL), dA and dB (either may be NULL). du: scratch [T, r].
void lora_backward(float *dx, float *dA, float *dB, const float *dy, const float *x, const float *u, const float *A,
                   const float *Bm, int nb, int T, int d_in, int d_out, int r, float scale, float *du);

#endif
