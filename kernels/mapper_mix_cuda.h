// The mapper's basis mixing (compiler/mapper.c) on the GPU, fp32: per module and side, every
// (layer, example) adapter is a combination of the N shared bases,
//   A [L*nb, r*d_in] = coef [L*nb, N] @ bases [N, r*d_in]      (B alike with [N, d_out*r]),
// and its backward dcoef = dA @ bases^T, dbases += coef^T @ dA. Each is one cuBLASLt GEMM.
//
// The mapper's fc2 output keeps the published coefficient layout [nb, L*7*N*2] (index
// ((l*7 + mod)*N + n)*2 + side, side 0 for A, 1 for B), in which a module's coefficients are
// not a plain matrix (n has stride 2), so pack/unpack convert to and from [7][2][L*nb][N] with
// rows in (layer, example) order, the order of the adapters (Qwen3Lora: [L, nb, ...]).
// It needs nothing of the Mapper struct (pointers and sizes only), so it sits with the other
// kernels; compiler/mapper_cuda.cu builds the whole GPU mapper on it.
#ifndef PAW_KERNELS_MAPPER_MIX_CUDA_H
#define PAW_KERNELS_MAPPER_MIX_CUDA_H

#ifdef __cplusplus
extern "C" {
#endif

// out [rows, cols] = coef [rows, N] @ bases [N, cols].
void mapper_mix_cuda_forward(float *out, const float *coef, const float *bases, int rows, int N, int cols);
// dcoef [rows, N] = dout @ bases^T (overwritten; NULL skips it);
// dbases [N, cols] += coef^T @ dout (accumulated; NULL skips it).
void mapper_mix_cuda_backward(float *dcoef, float *dbases, const float *dout, const float *coef, const float *bases,
                              int rows, int N, int cols);

// packed [7][2][L*nb][N] from coef [nb, L*7*N*2]; the slice of module mod, side s starts at
// packed + (mod*2 + s) * L*nb*N.
void mapper_coef_pack_cuda(float *packed, const float *coef, int nb, int L, int N);
// The inverse: dcoef [nb, L*7*N*2] from dpacked [7][2][L*nb][N] (every element written).
void mapper_coef_unpack_cuda(float *dcoef, const float *dpacked, int nb, int L, int N);

#ifdef __cplusplus
}
#endif

#endif
