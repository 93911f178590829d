// A plain GEMM for the shapes cuBLASLt has no algorithm for (odd leading dimensions with
// unaligned pointers, say): one thread per output element, fp32 sums. Correct, not fast;
// kernels/gemm_batched.cu (every cuBLASLt product) uses it instead of stopping, and say so once per
// shape on stderr. Column-major like cuBLASLt: for i < batch,
//   D_i[m, n] (ldd) = alpha * op(A_i) op(B_i) + beta * C_i, op(A_i) [m, k], op(B_i) [k, n],
// X_i = X + i * stride_x elements; C has D's layout (it may be D). A and B are bf16, or fp32 when
// in_f32; C and D are bf16, or fp32 when out_f32. beta == 0 ignores C.
#ifndef PAW_KERNELS_GEMM_FALLBACK_CUDA_H
#define PAW_KERNELS_GEMM_FALLBACK_CUDA_H

#ifdef __cplusplus
extern "C" {
#endif

void paw_gemm_fallback(void *D, int out_f32, const void *C, const void *A, int ta, const void *B, int tb, int in_f32,
                       int m, int n, int k, int lda, int ldb, int ldd, long long stride_a, long long stride_b,
                       long long stride_d, int batch, float alpha, float beta);

#ifdef __cplusplus
}
#endif

#endif
