#include "kernels/rmsnorm.h"

#include <math.h>
#include <stddef.h>

void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N, int C, float eps) {
#pragma omp parallel for if (N >= 64)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *y = out + (size_t)n * C;
        float ss = 0;
        for (int i = 0; i < C; i++) ss += x[i] * x[i];
        float r = 1.0f / sqrtf(ss / (float)C + eps);
        for (int i = 0; i < C; i++) y[i] = weight[i] * (x[i] * r);
        if (rstd) rstd[n] = r;
    }
}

void rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight,
                      const float *rstd, int N, int C) {
    // y_i = w_i x_i r with r = (mean(x^2)+eps)^-1/2, so
    // dx_i = r w_i dy_i - x_i r^3 / C * sum_j w_j dy_j x_j.
#pragma omp parallel for if (N >= 64)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
        float *dx = dinp + (size_t)n * C;
        float r = rstd[n], dot = 0;
        for (int i = 0; i < C; i++) dot += weight[i] * dy[i] * x[i];
        float k = dot * r * r * r / (float)C;
        for (int i = 0; i < C; i++) dx[i] += r * weight[i] * dy[i] - k * x[i];
    }
    if (dweight) {
        // Serial over rows so that every dweight element has one writer; parallel over C instead.
#pragma omp parallel for if ((long)N * C >= 65536)
        for (int i = 0; i < C; i++) {
            float s = 0;
            for (int n = 0; n < N; n++) s += dout[(size_t)n * C + i] * inp[(size_t)n * C + i] * rstd[n];
            dweight[i] += s;
        }
    }
}
