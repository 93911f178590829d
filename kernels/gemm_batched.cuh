// The cuBLASLt GEMM every GPU product goes through: the model's matmuls (kernels/matmul.cu, a
// batch of one), the LoRA side path (kernels/lora.cu, bf16 inputs) and the mapper's basis mixing
// (kernels/mapper_mix.cu, fp32 inputs), where one strided-batched launch covers every matrix.
// Column-major like cuBLASLt; callers write row-major products as their transposes.
#ifndef PAW_KERNELS_GEMM_BATCHED_CUH
#define PAW_KERNELS_GEMM_BATCHED_CUH

#include <cuda_runtime.h>
#include <library_types.h>

// For i < batch: D_i[m, n] (ldd) = alpha * op(A_i) op(B_i) + beta * D_i, with op(A_i) [m, k] and
// op(B_i) [k, n]; X_i = X + i * stride_x elements. A and B have type in_type (bf16 or fp32), D has
// out_type (fp32, or bf16 with bf16 inputs); compute is fp32. beta == 0 ignores D's contents
// (NaN included). m, n or batch <= 0 is a no-op; k must be >= 1 (callers check their sizes).
// The same with a separate C of D's layout (C may be D): D_i = alpha op(A_i) op(B_i) + beta C_i.
void paw_gemm_lt(void *D, cudaDataType_t out_type, const void *C, const void *A, int ta, const void *B, int tb,
                 cudaDataType_t in_type, int m, int n, int k, int lda, int ldb, int ldd, long long stride_a,
                 long long stride_b, long long stride_d, int batch, float alpha, float beta);

void paw_gemm_batched(void *D, cudaDataType_t out_type, const void *A, int ta, const void *B, int tb,
                      cudaDataType_t in_type, int m, int n, int k, int lda, int ldb, int ldd, long long stride_a,
                      long long stride_b, long long stride_d, int batch, float alpha, float beta);

#endif
