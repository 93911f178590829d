// AdamW (decoupled weight decay, bias-corrected moments) in fp32, and the global gradient
// norm used for clipping. The sums are computed in a fixed order so that a run and its resumed
// continuation produce the same bits.
#ifndef PAW_KERNELS_ADAMW_H
#define PAW_KERNELS_ADAMW_H

#include <stddef.h>

typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
} AdamWParams;

// t: 1-based step count. grad_scale multiplies the gradient first (clipping, loss scaling).
void adamw_update(float *param, const float *grad, float *m, float *v, size_t n, const AdamWParams *hp, long t,
                  float grad_scale);

// sum of squares in double, deterministic for a given n (fixed chunks, combined in order).
double sum_squares(const float *x, size_t n);

#endif
