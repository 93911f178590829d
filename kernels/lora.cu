// Per-example LoRA on the GPU as strided-batched GEMMs (one matrix per example). Row-major [R, K]
// is column-major [K, R], so each product is written for its transpose, as in matmul.cu.
#include "kernels/cuda_common.cuh"
#include "kernels/gemm_batched.cuh"
#include "kernels/lora_cuda.h"

static cudaDataType_t dtype_of(PawOutType t) { return t == PAW_OUT_F32 ? CUDA_R_32F : CUDA_R_16BF; }

extern "C" void lora_cuda_forward(void *y, PawOutType y_type, int ld_y, paw_bf16 *u, const paw_bf16 *x,
                                  const paw_bf16 *A, const paw_bf16 *Bm, int nb, int T, int d_in, int d_out, int r,
                                  float scale) {
    if (nb <= 0 || T <= 0 || r <= 0 || d_in <= 0 || d_out <= 0) return;
    const long long sx = (long long)T * d_in, su = (long long)T * r, sy = (long long)T * ld_y;
    // u_b^T [r, T] = scale * A_b (column-major [d_in, r], transposed) * x_b^T (column-major [d_in, T]).
    paw_gemm_batched(u, CUDA_R_16BF, A, 1, x, 0, CUDA_R_16BF, r, T, d_in, d_in, d_in, r, (long long)r * d_in, sx, su,
                     nb, scale, 0.0f);
    // y_b^T [d_out, T] += B_b (column-major [r, d_out], transposed) * u_b^T (column-major [r, T]).
    paw_gemm_batched(y, dtype_of(y_type), Bm, 1, u, 0, CUDA_R_16BF, d_out, T, r, r, r, ld_y, (long long)d_out * r, su,
                     sy, nb, 1.0f, 1.0f);
}

extern "C" void lora_cuda_backward(void *dx, PawOutType dx_type, float *dA, float *dB, const paw_bf16 *dy, int ld_y,
                                   const paw_bf16 *x, const paw_bf16 *u, const paw_bf16 *A, const paw_bf16 *Bm,
                                   int nb, int T, int d_in, int d_out, int r, float scale, paw_bf16 *du) {
    if (nb <= 0 || T <= 0 || r <= 0 || d_in <= 0 || d_out <= 0) return;
    const long long sx = (long long)T * d_in, su = (long long)T * r, sy = (long long)T * ld_y;
    const long long sa = (long long)r * d_in, sb = (long long)d_out * r;
    // u already carries the scale, so dB_b^T [r, d_out] += u_b^T (column-major [r, T]) * dy_b
    // (column-major [d_out, T], transposed).
    if (dB) paw_gemm_batched(dB, CUDA_R_32F, u, 0, dy, 1, CUDA_R_16BF, r, d_out, T, r, ld_y, r, su, sy, sb, nb, 1.0f,
                             1.0f);
    if (!dA && !dx) return;
    // du_b^T [r, T] = scale * B_b (column-major [r, d_out]) * dy_b^T (column-major [d_out, T]).
    paw_gemm_batched(du, CUDA_R_16BF, Bm, 0, dy, 0, CUDA_R_16BF, r, T, d_out, r, ld_y, r, sb, sy, su, nb, scale, 0.0f);
    // dA_b^T [d_in, r] += x_b^T (column-major [d_in, T]) * du_b (column-major [r, T], transposed).
    if (dA) paw_gemm_batched(dA, CUDA_R_32F, x, 0, du, 1, CUDA_R_16BF, d_in, r, T, d_in, r, d_in, sx, su, sa, nb, 1.0f,
                             1.0f);
    // dx_b^T [d_in, T] += A_b (column-major [d_in, r]) * du_b^T (column-major [r, T]).
    if (dx) paw_gemm_batched(dx, dtype_of(dx_type), A, 0, du, 0, CUDA_R_16BF, d_in, T, r, d_in, r, d_in, sa, su, sx,
                             nb, 1.0f, 1.0f);
}
