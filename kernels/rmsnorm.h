// RMSNorm as Hugging Face Qwen3 does it: y = weight * (x / sqrt(mean(x^2) + eps)), in fp32.
#ifndef PAW_KERNELS_RMSNORM_H
#define PAW_KERNELS_RMSNORM_H

// N rows of C. rstd[N] (may be NULL) keeps 1/sqrt(mean(x^2)+eps) for the backward.
void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N, int C, float eps);
// dinp += d/dx, dweight += d/dw (dweight may be NULL: frozen). dinp may alias nothing else.
void rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight,
                      const float *rstd, int N, int C);

#endif
