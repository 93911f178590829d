#include <math.h>

#include "kernels/adamw_cuda.h"
#include "kernels/cuda_common.cuh"

// A counter-based hash (splitmix64 finaliser): independent random bits per (seed, index).
__device__ __forceinline__ unsigned random_bits(unsigned long long seed, unsigned long long i) {
    unsigned long long z = seed + 0x9E3779B97F4A7C15ull * (i + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (unsigned)(z ^ (z >> 31));
}

// Adds 16 random bits below the bf16 mantissa and truncates: rounds away from zero with
// probability equal to the dropped fraction. Inf and NaN are rounded to nearest instead.
__device__ __forceinline__ __nv_bfloat16 stochastic_bf16(float x, unsigned bits) {
    unsigned u = __float_as_uint(x);
    if ((u & 0x7f800000u) == 0x7f800000u) return __float2bfloat16_rn(x);
    u += bits & 0xffffu;
    return __ushort_as_bfloat16((unsigned short)(u >> 16));
}

__device__ __forceinline__ float load_f32(const float *p, size_t i) { return p[i]; }
__device__ __forceinline__ float load_f32(const __nv_bfloat16 *p, size_t i) { return __bfloat162float(p[i]); }

// Gradients are fp32, or bf16 for models that store their weight gradients in bf16.
template <typename G>
__global__ void grad_norm_kernel(float *norm_sq, const G *g, size_t n) {
    __shared__ float part[32];
    float s = 0.0f;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float x = load_f32(g, i);
        s += x * x;
    }
    s = warp_sum(s);
    if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = s;
    __syncthreads();
    if (threadIdx.x < 32) {
        s = threadIdx.x < blockDim.x / 32 ? part[threadIdx.x] : 0.0f;
        s = warp_sum(s);
        if (threadIdx.x == 0) atomicAdd(norm_sq, s);
    }
}

template <typename G>
__global__ void adamw_kernel(__nv_bfloat16 *param, float *master, const G *grad, float *m, float *v, size_t n,
                             float lr, float beta1, float beta2, float eps, float wd, float bc1, float bc2,
                             const float *norm_sq, float max_norm, unsigned long long seed) {
    float clip = 1.0f;
    if (norm_sq && max_norm > 0.0f) {
        float norm = sqrtf(*norm_sq);
        clip = fminf(1.0f, max_norm / (norm + 1e-6f));
    }
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float g = load_f32(grad, i) * clip;
        float mi = beta1 * m[i] + (1.0f - beta1) * g;
        float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        float w = master[i];
        w -= lr * ((mi / bc1) / (sqrtf(vi / bc2) + eps) + wd * w);
        master[i] = w;
        if (param) param[i] = stochastic_bf16(w, random_bits(seed, i));
    }
}

__global__ void stochastic_round_kernel(__nv_bfloat16 *out, const float *x, size_t n, unsigned long long seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = stochastic_bf16(x[i], random_bits(seed, i));
}

static unsigned grid_for(size_t n) {
    unsigned blocks = paw_ceil_div(n, 256), cap = (unsigned)paw_cuda_sm_count() * 8;
    if (blocks > cap) blocks = cap;
    return blocks ? blocks : 1;
}

extern "C" void grad_norm_sq_cuda(float *norm_sq, const float *grad, size_t n) {
    if (!n) return;
    grad_norm_kernel<<<grid_for(n), 256, 0, paw_cuda_stream()>>>(norm_sq, grad, n);
    CUDA_CHECK_LAUNCH();
}

extern "C" void grad_norm_sq_bf16_cuda(float *norm_sq, const paw_bf16 *grad, size_t n) {
    if (!n) return;
    grad_norm_kernel<<<grid_for(n), 256, 0, paw_cuda_stream()>>>(norm_sq, grad, n);
    CUDA_CHECK_LAUNCH();
}

template <typename G>
static void adamw_launch(paw_bf16 *param, float *master, const G *grad, float *m, float *v, size_t n, float lr,
                         float beta1, float beta2, float eps, float weight_decay, int step, const float *norm_sq,
                         float max_norm, unsigned long long seed) {
    if (!n) return;
    float bc1 = 1.0f - powf(beta1, (float)step), bc2 = 1.0f - powf(beta2, (float)step);
    adamw_kernel<<<grid_for(n), 256, 0, paw_cuda_stream()>>>(param, master, grad, m, v, n, lr, beta1, beta2, eps,
                                                            weight_decay, bc1, bc2, norm_sq, max_norm, seed);
    CUDA_CHECK_LAUNCH();
}

extern "C" void adamw_cuda(paw_bf16 *param, float *master, const float *grad, float *m, float *v, size_t n, float lr,
                           float beta1, float beta2, float eps, float weight_decay, int step, const float *norm_sq,
                           float max_norm, unsigned long long seed) {
    adamw_launch(param, master, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, step, norm_sq, max_norm, seed);
}

extern "C" void adamw_bf16_grad_cuda(paw_bf16 *param, float *master, const paw_bf16 *grad, float *m, float *v,
                                     size_t n, float lr, float beta1, float beta2, float eps, float weight_decay,
                                     int step, const float *norm_sq, float max_norm, unsigned long long seed) {
    adamw_launch(param, master, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, step, norm_sq, max_norm, seed);
}

extern "C" void stochastic_round_cuda(paw_bf16 *out, const float *x, size_t n, unsigned long long seed) {
    if (!n) return;
    stochastic_round_kernel<<<grid_for(n), 256, 0, paw_cuda_stream()>>>(out, x, n, seed);
    CUDA_CHECK_LAUNCH();
}
