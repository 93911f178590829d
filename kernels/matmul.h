// Matrix multiply in the nn.Linear layout: out[N, OC] = inp[N, C] @ weight[OC, C]^T.
// CPU reference in fp32 (OpenMP over both cores); the CUDA version sits beside it.
#ifndef PAW_KERNELS_MATMUL_H
#define PAW_KERNELS_MATMUL_H

#include <stdint.h>

// Up to this many rows (decoding steps, short prompts) the forward products are one-row dot
// products in a fixed order: each row's result is the same bits whatever rows are computed with
// it, and the same for fp32 and bf16 weights holding the same values. More rows run a packed GEMM
// (again the same bits for both weight types), whose sums differ within fp32 rounding.
#define MATMUL_GEMV_MAX_ROWS 32

// out = inp @ weight^T (overwrites out).
void matmul_forward(float *out, const float *inp, const float *weight, int N, int C, int OC);
// Same, accumulating: out += alpha * inp @ weight^T.
void matmul_forward_acc(float *out, const float *inp, const float *weight, int N, int C, int OC, float alpha);
// The forward products with a bf16 weight (inference from a bf16 checkpoint: half the bytes read
// per decoded token). Each weight is widened to fp32 exactly as it is read and the sums stay in
// fp32: bit for bit the fp32 functions on the widened weight, for any number of rows.
void matmul_forward_bf16w(float *out, const float *inp, const uint16_t *weight, int N, int C, int OC);
void matmul_forward_bf16w_acc(float *out, const float *inp, const uint16_t *weight, int N, int C, int OC, float alpha);
// The same with a Q8 weight (program adapters held as Q8 blocks; QWEN3_WEIGHTS_Q8 models use
// matmul_forward_q8q below): int8 values q[OC, C] and one scale per 32 of them along each row,
// d[OC * C / 32]; C a multiple of 32. Bit for bit the fp32 functions on the dequantized weight
// d * q (exact in fp32 when d is an fp16 value, as a Q8_0 scale is).
void matmul_forward_q8w(float *out, const float *inp, const int8_t *q, const float *d, int N, int C, int OC);
void matmul_forward_q8w_acc(float *out, const float *inp, const int8_t *q, const float *d, int N, int C, int OC,
                            float alpha);
// Q8 weights against inputs rounded to Q8 blocks as well, as ggml multiplies Q8_0 by Q8_0
// (QWEN3_WEIGHTS_Q8 models; C a multiple of 32). Each input row's blocks of 32 are rounded as
// matmul_q8_round_row does, and out = alpha * (rounded inputs) @ (q, d)^T. Up to
// MATMUL_GEMV_MAX_ROWS rows each output is matmul_q8q_dot_reference, bit for bit, whatever rows
// are computed with it: a block's products are exact integer sums, about half the instructions
// of the q8w products, which are bound by widening each weight to fp32. More rows run the packed
// GEMM on the rounded inputs' fp32 values (the same values; sums within fp32 rounding).
void matmul_forward_q8q(float *out, const float *inp, const int8_t *q, const float *d, int N, int C, int OC);
void matmul_forward_q8q_acc(float *out, const float *inp, const int8_t *q, const float *d, int N, int C, int OC,
                            float alpha);
// One row rounded to Q8 blocks (C a multiple of 32): per block d = max|x| / 127 (kept in fp32) and
// q = x * (1 / d) rounded to the nearest integer, ties to even; d = 0 and q = 0 for a block whose
// d would be below FLT_MIN (all zero, or under 1.5e-36). A block holding a NaN or an infinity
// gets d = NaN and q = 0, so that the products it enters are NaN.
void matmul_q8_round_row(const float *x, int C, int8_t *q, float *d);
// The plain-C reference of one q8q output: the dot of weight row (q, d) with a rounded row (qx,
// dx). Lane m of block b is the exact integer sum of its elements 4m..4m+3, added as
// acc[b % 2][m] = fmaf(d[b] * dx[b], lane, acc[b % 2][m]); then v = acc[0] + acc[1] and
// ((v0 + v4) + (v2 + v6)) + ((v1 + v5) + (v3 + v7)).
float matmul_q8q_dot_reference(const int8_t *q, const float *d, const int8_t *qx, const float *dx, int C);
// Gradients, accumulated (+=) like every backward here: dinp += dout @ weight,
// dweight += dout^T @ inp. Either output may be NULL (frozen weights: no dweight).
void matmul_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight, int N, int C,
                     int OC);

#endif
