// The optimizer on the GPU: AdamW (decoupled weight decay, as torch.optim.AdamW) over fp32 master
// weights and moments, writing the bf16 compute copy with stochastic rounding so that updates
// smaller than a bf16 step still move the weights on average; and the global gradient norm for
// clipping, read by the update on the device (no host round trip, so a step can be graph-captured).
#ifndef PAW_KERNELS_ADAMW_CUDA_H
#define PAW_KERNELS_ADAMW_CUDA_H

#include <stddef.h>

#include "kernels/cuda_common_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

// *norm_sq += sum grad^2 (fp32, device; the caller zeroes it before the first tensor).
void grad_norm_sq_cuda(float *norm_sq, const float *grad, size_t n);

// One step (step counts from 1) over n parameters:
//   g = grad * clip, clip = min(1, max_norm / (sqrt(*norm_sq) + 1e-6)) when norm_sq is given and
//   max_norm > 0, else 1;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
//   master -= lr * (m / (1-b1^step) / (sqrt(v / (1-b2^step)) + eps) + weight_decay * master);
//   param (bf16, may be NULL) = stochastic_round(master), random bits from (seed, index).
void adamw_cuda(paw_bf16 *param, float *master, const float *grad, float *m, float *v, size_t n, float lr,
                float beta1, float beta2, float eps, float weight_decay, int step, const float *norm_sq,
                float max_norm, unsigned long long seed);

// The seed under which a call over elements [off, off + n) of a tensor draws the same random
// bits as one call over the whole tensor with `seed` (the bits hash seed + 0x9E3779B97F4A7C15 *
// (index + 1)): a ZeRO shard rounds its part exactly as the whole update would.
static inline unsigned long long adamw_seed_at(unsigned long long seed, size_t off) {
    return seed + 0x9E3779B97F4A7C15ull * (unsigned long long)off;
}

// The same with bf16 gradients (models that keep their weight gradients in bf16 to save memory;
// the master weights and moments stay fp32).
void grad_norm_sq_bf16_cuda(float *norm_sq, const paw_bf16 *grad, size_t n);
void adamw_bf16_grad_cuda(paw_bf16 *param, float *master, const paw_bf16 *grad, float *m, float *v, size_t n,
                          float lr, float beta1, float beta2, float eps, float weight_decay, int step,
                          const float *norm_sq, float max_norm, unsigned long long seed);

// Stochastic rounding alone (exposed for tests): out[i] = bf16 of x[i] rounded up or down with
// probability given by the distance, random bits from (seed, i).
void stochastic_round_cuda(paw_bf16 *out, const float *x, size_t n, unsigned long long seed);

#ifdef __cplusplus
}
#endif

#endif
