// cuBLASLt GEMMs. cuBLASLt is column-major: a row-major [R, K] matrix is a column-major [K, R]
// one, so every product below is written for the transposes (out^T = W * inp^T, and so on).
#include "kernels/cuda_common.cuh"
#include "kernels/gemm_batched.cuh"
#include "kernels/matmul_cuda.h"

// D (column-major, ldd) = alpha * op(A) op(B) + beta * Cm with bf16 A and B; C and D share dtype dt.
static void lt_gemm(void *D, cudaDataType_t dt, const void *Cm, const void *A, int ta, const void *B, int tb, int m,
                    int n, int k, int lda, int ldb, int ldd, float alpha, float beta) {
    paw_gemm_lt(D, dt, Cm, A, ta, B, tb, CUDA_R_16BF, m, n, k, lda, ldb, ldd, 0, 0, 0, 1, alpha, beta);
}

extern "C" void matmul_cuda_forward(void *out, PawOutType out_type, const paw_bf16 *inp, const paw_bf16 *weight,
                                    const void *res, int N, int C, int OC, float alpha, float beta) {
    // out^T [OC, N] = W^T... : W row-major [OC, C] is column-major [C, OC]; transposed it is [OC, C].
    lt_gemm(out, out_type == PAW_OUT_F32 ? CUDA_R_32F : CUDA_R_16BF, beta != 0.0f ? res : out, weight, 1, inp, 0, OC,
            N, C, C, C, OC, alpha, beta);
}

extern "C" void matmul_cuda_backward_input(paw_bf16 *dinp, const paw_bf16 *dout, const paw_bf16 *weight, int N, int C,
                                           int OC, float beta) {
    // dinp^T [C, N] = W (column-major [C, OC]) * dout^T (column-major [OC, N]).
    lt_gemm(dinp, CUDA_R_16BF, dinp, weight, 0, dout, 0, C, N, OC, C, OC, C, 1.0f, beta);
}

extern "C" void matmul_cuda_backward_weight(float *dweight, const paw_bf16 *dout, const paw_bf16 *inp, int N, int C,
                                            int OC) {
    // dW^T [C, OC] += inp^T (column-major [C, N]) * dout (column-major [OC, N], transposed to [N, OC]).
    if (N <= 0) return;
    lt_gemm(dweight, CUDA_R_32F, dweight, inp, 0, dout, 1, C, OC, N, C, OC, C, 1.0f, 1.0f);
}

extern "C" void matmul_cuda_backward_weight_bf16(paw_bf16 *dweight, const paw_bf16 *dout, const paw_bf16 *inp, int N,
                                                 int C, int OC) {
    if (N <= 0 || C <= 0 || OC <= 0) return;
    lt_gemm(dweight, CUDA_R_16BF, dweight, inp, 0, dout, 1, C, OC, N, C, OC, C, 1.0f, 1.0f);
}
