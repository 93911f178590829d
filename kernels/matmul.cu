// cuBLASLt GEMMs. cuBLASLt is column-major: a row-major [R, K] matrix is a column-major [K, R]
// one, so every product below is written for the transposes (out^T = W * inp^T, and so on).
#include <stdint.h>

#include "kernels/cuda_common.cuh"
#include "kernels/gemm_batched.cuh"
#include "kernels/matmul_cuda.h"

// D (column-major, ldd) = alpha * op(A) op(B) + beta * Cm with bf16 A and B; C and D share dtype dt.
static void lt_gemm(void *D, cudaDataType_t dt, const void *Cm, const void *A, int ta, const void *B, int tb, int m,
                    int n, int k, int lda, int ldb, int ldd, float alpha, float beta) {
    paw_gemm_lt(D, dt, Cm, A, ta, B, tb, CUDA_R_16BF, m, n, k, lda, ldb, ldd, 0, 0, 0, 1, alpha, beta);
}

// One input row (decoding): out[o] = alpha * W[o] . x + beta * res[o] streams the weights once, so
// it is bound by memory bandwidth. cuBLASLt's small-N kernels reach about a third of it here; this
// one gives each warp whole weight rows, 16-byte loads unrolled four deep, x staged in shared memory.
#define GEMV_WARPS 8
template <typename T>
__global__ void __launch_bounds__(32 * GEMV_WARPS)
    gemv_kernel(T *out, const T *res, const __nv_bfloat16 *x, const __nv_bfloat16 *W, int C, int OC, float alpha,
                float beta) {
    const int lane = threadIdx.x % 32, o = blockIdx.x * GEMV_WARPS + threadIdx.x / 32;
    const __nv_bfloat16 *w = W + (size_t)o * C;
    // The weights do not depend on the kernel before this one: under a programmatic launch their
    // lines are asked for while it still runs (pdl_enter waits only before reading x).
#ifdef __CUDA_ARCH__
    if (o < OC)
        for (int i = lane * 64; i < C; i += 32 * 64) asm volatile("prefetch.global.L2 [%0];" ::"l"(w + i));
#endif
    pdl_enter();
    extern __shared__ __align__(16) __nv_bfloat16 xs[];
    for (int i = threadIdx.x * 8; i < C; i += blockDim.x * 8)
        *reinterpret_cast<uint4 *>(xs + i) = *reinterpret_cast<const uint4 *>(x + i);
    __syncthreads();
    if (o >= OC) return;
    float acc = 0.0f;
#pragma unroll 4
    for (int i = lane * 8; i < C; i += 256) {
        uint4 wr = *reinterpret_cast<const uint4 *>(w + i), xr = *reinterpret_cast<const uint4 *>(xs + i);
        const __nv_bfloat162 *w2 = reinterpret_cast<const __nv_bfloat162 *>(&wr);
        const __nv_bfloat162 *x2 = reinterpret_cast<const __nv_bfloat162 *>(&xr);
#pragma unroll
        for (int e = 0; e < 4; e++) {
            float2 wf = __bfloat1622float2(w2[e]), xf = __bfloat1622float2(x2[e]);
            acc += wf.x * xf.x + wf.y * xf.y;
        }
    }
    acc = warp_sum(acc) * alpha;
    if (lane == 0) {
        if (beta != 0.0f) acc += beta * (float)res[o];
        out[o] = (T)acc;
    }
}

static bool gemv_fits(const paw_bf16 *inp, const paw_bf16 *weight, int C) {
    return C % 8 == 0 && (((uintptr_t)inp | (uintptr_t)weight) & 15) == 0 && (size_t)C * 2 <= 48 * 1024;
}

extern "C" void matmul_cuda_forward(void *out, PawOutType out_type, const paw_bf16 *inp, const paw_bf16 *weight,
                                    const void *res, int N, int C, int OC, float alpha, float beta) {
    if (N == 1 && gemv_fits(inp, weight, C)) {
        unsigned blocks = paw_ceil_div(OC, GEMV_WARPS);
        size_t smem = (size_t)C * 2;
        if (out_type == PAW_OUT_F32)
            paw_launch(gemv_kernel<float>, dim3(blocks), dim3(32 * GEMV_WARPS), smem, (float *)out,
                       (const float *)(beta != 0.0f ? res : out), inp, weight, C, OC, alpha, beta);
        else
            paw_launch(gemv_kernel<__nv_bfloat16>, dim3(blocks), dim3(32 * GEMV_WARPS), smem, (__nv_bfloat16 *)out,
                       (const __nv_bfloat16 *)(beta != 0.0f ? res : out), inp, weight, C, OC, alpha, beta);
        CUDA_CHECK_LAUNCH();
        return;
    }
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
