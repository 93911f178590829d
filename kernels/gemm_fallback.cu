#include "kernels/cuda_common.cuh"
#include "kernels/gemm_fallback_cuda.h"

__device__ __forceinline__ float load_elem(const void *p, size_t i, int f32) {
    return f32 ? ((const float *)p)[i] : __bfloat162float(((const __nv_bfloat16 *)p)[i]);
}

__global__ void gemm_fallback_kernel(void *D, int out_f32, const void *C, const void *A, int ta, const void *B, int tb,
                                     int in_f32, int m, int n, int k, int lda, int ldb, int ldd, long long sa,
                                     long long sb, long long sd, int batch, float alpha, float beta) {
    size_t total = (size_t)m * n * batch;
    for (size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x; idx < total; idx += (size_t)gridDim.x * blockDim.x) {
        int i = (int)(idx % m);
        size_t rest = idx / m;
        int j = (int)(rest % n), b = (int)(rest / n);
        size_t oa = (size_t)b * sa, ob = (size_t)b * sb, od = (size_t)b * sd;
        float acc = 0.0f;
        for (int p = 0; p < k; p++) {
            // op(A)[i, p] and op(B)[p, j] of column-major storage.
            float a = load_elem(A, oa + (ta ? (size_t)p + (size_t)i * lda : (size_t)i + (size_t)p * lda), in_f32);
            float v = load_elem(B, ob + (tb ? (size_t)j + (size_t)p * ldb : (size_t)p + (size_t)j * ldb), in_f32);
            acc += a * v;
        }
        size_t o = od + (size_t)i + (size_t)j * ldd;
        float r = alpha * acc + (beta != 0.0f ? beta * load_elem(C, o, out_f32) : 0.0f);
        if (out_f32) ((float *)D)[o] = r;
        else ((__nv_bfloat16 *)D)[o] = __float2bfloat16_rn(r);
    }
}

extern "C" void paw_gemm_fallback(void *D, int out_f32, const void *C, const void *A, int ta, const void *B, int tb,
                                  int in_f32, int m, int n, int k, int lda, int ldb, int ldd, long long stride_a,
                                  long long stride_b, long long stride_d, int batch, float alpha, float beta) {
    if (m <= 0 || n <= 0 || batch <= 0) return;
    size_t total = (size_t)m * n * batch;
    unsigned blocks = paw_ceil_div(total, 256), cap = (unsigned)paw_cuda_sm_count() * 32;
    if (blocks > cap) blocks = cap;
    gemm_fallback_kernel<<<blocks ? blocks : 1, 256, 0, paw_cuda_stream()>>>(D, out_f32, C, A, ta, B, tb, in_f32, m, n,
                                                                            k, lda, ldb, ldd, stride_a, stride_b,
                                                                            stride_d, batch, alpha, beta);
    CUDA_CHECK_LAUNCH();
}
