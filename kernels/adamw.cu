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

// One element's update, with every operation rounded on its own (no contraction into FMAs), so
// that the scalar and the 4-wide kernels below give the same bits wherever an element falls.
struct AdamHyper {
    float lr, beta1, beta2, eps, wd, bc1, bc2, clip;
};

__device__ __forceinline__ float adam_element(float w, float g, float *m, float *v, const AdamHyper &h) {
    g = __fmul_rn(g, h.clip);
    float mi = __fadd_rn(__fmul_rn(h.beta1, *m), __fmul_rn(1.0f - h.beta1, g));
    float vi = __fadd_rn(__fmul_rn(h.beta2, *v), __fmul_rn(__fmul_rn(1.0f - h.beta2, g), g));
    *m = mi, *v = vi;
    float step = __fdiv_rn(__fdiv_rn(mi, h.bc1), __fadd_rn(__fsqrt_rn(__fdiv_rn(vi, h.bc2)), h.eps));
    return __fsub_rn(w, __fmul_rn(h.lr, __fadd_rn(step, __fmul_rn(h.wd, w))));
}

__device__ __forceinline__ float clip_factor(const float *norm_sq, float max_norm) {
    if (!norm_sq || max_norm <= 0.0f) return 1.0f;
    return fminf(1.0f, max_norm / (sqrtf(*norm_sq) + 1e-6f));
}

template <typename G>
__global__ void adamw_kernel(__nv_bfloat16 *param, float *master, const G *grad, float *m, float *v, size_t n,
                             AdamHyper h, const float *norm_sq, float max_norm, unsigned long long seed) {
    h.clip = clip_factor(norm_sq, max_norm);
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float w = adam_element(master[i], load_f32(grad, i), &m[i], &v[i], h);
        master[i] = w;
        if (param) param[i] = stochastic_bf16(w, random_bits(seed, i));
    }
}

// Four gradients from element 4j on (16-byte fp32 or 8-byte bf16 loads).
__device__ __forceinline__ float4 load4(const float *g, size_t j) { return reinterpret_cast<const float4 *>(g)[j]; }
__device__ __forceinline__ float4 load4(const __nv_bfloat16 *g, size_t j) {
    uint2 u = reinterpret_cast<const uint2 *>(g)[j];
    return make_float4(__uint_as_float(u.x << 16), __uint_as_float(u.x & 0xffff0000u), __uint_as_float(u.y << 16),
                       __uint_as_float(u.y & 0xffff0000u));
}

// The same over n4 groups of four (all pointers aligned to their vector width): each thread has
// four elements' loads in flight per iteration, which is what fills the memory pipe (the scalar
// kernel reached about 70% of the copy bandwidth on the H100).
template <typename G>
__global__ void adamw_vec4_kernel(__nv_bfloat16 *param, float *master, const G *grad, float *m, float *v, size_t n4,
                                  AdamHyper h, const float *norm_sq, float max_norm, unsigned long long seed) {
    h.clip = clip_factor(norm_sq, max_norm);
    for (size_t j = blockIdx.x * (size_t)blockDim.x + threadIdx.x; j < n4; j += (size_t)gridDim.x * blockDim.x) {
        float4 w = reinterpret_cast<float4 *>(master)[j], mm = reinterpret_cast<float4 *>(m)[j];
        float4 vv = reinterpret_cast<float4 *>(v)[j], g = load4(grad, j);
        w.x = adam_element(w.x, g.x, &mm.x, &vv.x, h);
        w.y = adam_element(w.y, g.y, &mm.y, &vv.y, h);
        w.z = adam_element(w.z, g.z, &mm.z, &vv.z, h);
        w.w = adam_element(w.w, g.w, &mm.w, &vv.w, h);
        reinterpret_cast<float4 *>(master)[j] = w;
        reinterpret_cast<float4 *>(m)[j] = mm;
        reinterpret_cast<float4 *>(v)[j] = vv;
        if (param) {
            unsigned short b[4];
            const float ws[4] = {w.x, w.y, w.z, w.w};
            for (int k = 0; k < 4; k++) b[k] = __bfloat16_as_ushort(stochastic_bf16(ws[k], random_bits(seed, 4 * j + k)));
            reinterpret_cast<uint2 *>(param)[j] = make_uint2(b[0] | ((unsigned)b[1] << 16), b[2] | ((unsigned)b[3] << 16));
        }
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

static bool aligned(const void *p, size_t bytes) { return ((uintptr_t)p % bytes) == 0; }

template <typename G>
static void adamw_launch(paw_bf16 *param, float *master, const G *grad, float *m, float *v, size_t n, float lr,
                         float beta1, float beta2, float eps, float weight_decay, int step, const float *norm_sq,
                         float max_norm, unsigned long long seed) {
    if (!n) return;
    AdamHyper h = {lr, beta1, beta2, eps, weight_decay, 1.0f - powf(beta1, (float)step), 1.0f - powf(beta2, (float)step),
                   1.0f};
    // Four at a time where every pointer allows it, the rest one at a time with the same random
    // bits. The groups of a model start 256 bytes apart; a ZeRO run may start anywhere, but its
    // state is laid out with the weights' alignment (qwen3_cuda.cu, paw_step_cuda.cu), so a head of
    // up to three elements brings every pointer to its vector width together.
    size_t head = (size_t)(((16 - (uintptr_t)master % 16) % 16) / sizeof(float));
    if (head > n || (uintptr_t)master % sizeof(float)) head = n;
    size_t n4 = aligned(master + head, 16) && aligned(m + head, 16) && aligned(v + head, 16) &&
                        aligned(grad + head, 4 * sizeof(G)) && (!param || aligned(param + head, 8))
                    ? (n - head) / 4
                    : 0;
    if (!n4) head = n;  // all one at a time
    auto scalar = [&](size_t k, size_t cnt) {
        if (!cnt) return;
        adamw_kernel<<<grid_for(cnt), 256, 0, paw_cuda_stream()>>>(param ? param + k : NULL, master + k, grad + k,
                                                                   m + k, v + k, cnt, h, norm_sq, max_norm,
                                                                   adamw_seed_at(seed, k));
        CUDA_CHECK_LAUNCH();
    };
    scalar(0, head);
    if (n4) {
        adamw_vec4_kernel<<<grid_for(n4), 256, 0, paw_cuda_stream()>>>(param ? param + head : NULL, master + head,
                                                                       grad + head, m + head, v + head, n4, h, norm_sq,
                                                                       max_norm, adamw_seed_at(seed, head));
        CUDA_CHECK_LAUNCH();
    }
    scalar(head + 4 * n4, n - head - 4 * n4);
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
