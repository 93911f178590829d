// Per-example LoRA on the GPU as strided-batched GEMMs (one matrix per example). Row-major [R, K]
// is column-major [K, R], so each product is written for its transpose, as in matmul.cu.
#include <stdio.h>
#include <stdlib.h>

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

// ---- decoding: one token per example, the modules of one input together ----------------------

struct LoraTokensGroup {
    LoraTokensModule m[LORA_TOKENS_MAX];
    int n;
};

constexpr int TOKENS_WARPS = 8;

// Module i of the group, the table indexed only by constants: indexing the by-value kernel
// parameter with a run-time i makes every thread copy the whole table to local memory first.
__device__ __forceinline__ LoraTokensModule group_module(const LoraTokensGroup &g, int i) {
    LoraTokensModule m = g.m[0];
#pragma unroll
    for (int k = 1; k < LORA_TOKENS_MAX; k++)
        if (i == k) m = g.m[k];
    return m;
}

// Warp w of block (x, b) computes u[i][b][j] for item = x * 8 + w = i * r + j.
__global__ void __launch_bounds__(32 * TOKENS_WARPS)
    lora_tokens_u_kernel(LoraTokensGroup grp, const __nv_bfloat16 *x, int d_in, int r, float scale) {
    pdl_enter();
    const int item = blockIdx.x * TOKENS_WARPS + threadIdx.x / 32, lane = threadIdx.x % 32, b = blockIdx.y;
    if (item >= grp.n * r) return;
    const int j = item % r;
    const LoraTokensModule m = group_module(grp, item / r);
    const __nv_bfloat16 *a = m.A + ((size_t)b * r + j) * d_in, *xb = x + (size_t)b * d_in;
    float s = 0.0f;
    for (int k = lane; k < d_in; k += 32) s += __bfloat162float(a[k]) * __bfloat162float(xb[k]);
    s = warp_sum(s);
    if (lane == 0) m.u[(size_t)b * r + j] = __float2bfloat16_rn(scale * s);
}

// Warp w of block (x, b) adds output o of module i, item = x * 8 + w running over the modules'
// outputs in order.
__global__ void __launch_bounds__(32 * TOKENS_WARPS)
    lora_tokens_y_kernel(LoraTokensGroup grp, int r, int ld_y) {
    pdl_enter();
    int o = blockIdx.x * TOKENS_WARPS + threadIdx.x / 32, i = 0;
    const int lane = threadIdx.x % 32, b = blockIdx.y;
#pragma unroll
    for (int k = 0; k < LORA_TOKENS_MAX; k++)  // constant indices, as in group_module
        if (i == k && k < grp.n && o >= grp.m[k].d_out) o -= grp.m[k].d_out, i++;
    if (i >= grp.n) return;
    const LoraTokensModule m = group_module(grp, i);
    const __nv_bfloat16 *bm = m.Bm + ((size_t)b * m.d_out + o) * r, *u = m.u + (size_t)b * r;
    float s = 0.0f;
    for (int k = lane; k < r; k += 32) s += __bfloat162float(bm[k]) * __bfloat162float(u[k]);
    s = warp_sum(s);
    if (lane == 0) {
        __nv_bfloat16 *y = m.y + (size_t)b * ld_y + o;
        *y = __float2bfloat16_rn(__bfloat162float(*y) + s);
    }
}

extern "C" void lora_cuda_forward_tokens(const LoraTokensModule *mods, int nmods, const paw_bf16 *x, int nb, int d_in,
                                         int r, int ld_y, float scale) {
    if (nmods <= 0 || nb <= 0 || r <= 0 || d_in <= 0) return;
    if (nmods > LORA_TOKENS_MAX) {
        fprintf(stderr, "lora_cuda_forward_tokens: %d modules, at most %d\n", nmods, LORA_TOKENS_MAX);
        exit(1);
    }
    LoraTokensGroup grp = {};
    int outs = 0;
    for (int i = 0; i < nmods; i++) grp.m[i] = mods[i], outs += mods[i].d_out;
    grp.n = nmods;
    paw_launch(lora_tokens_u_kernel, dim3(paw_ceil_div(nmods * r, TOKENS_WARPS), nb), dim3(32 * TOKENS_WARPS), 0, grp,
               x, d_in, r, scale);
    CUDA_CHECK_LAUNCH();
    paw_launch(lora_tokens_y_kernel, dim3(paw_ceil_div(outs, TOKENS_WARPS), nb), dim3(32 * TOKENS_WARPS), 0, grp, r,
               ld_y);
    CUDA_CHECK_LAUNCH();
}
