#include "kernels/adamw.h"

#include <math.h>
#include <stdlib.h>

void adamw_update(float *param, const float *grad, float *m, float *v, size_t n, const AdamWParams *hp, long t,
                  float grad_scale) {
    const float b1 = hp->beta1, b2 = hp->beta2;
    const float c1 = 1.0f - powf(b1, (float)t), c2 = 1.0f - powf(b2, (float)t);
    const float lr = hp->lr, wd = hp->weight_decay, eps = hp->eps;
#pragma omp parallel for simd if (n >= 65536)
    for (size_t i = 0; i < n; i++) {
        float g = grad[i] * grad_scale;
        float mi = b1 * m[i] + (1.0f - b1) * g;
        float vi = b2 * v[i] + (1.0f - b2) * g * g;
        m[i] = mi;
        v[i] = vi;
        float upd = (mi / c1) / (sqrtf(vi / c2) + eps);
        param[i] -= lr * (upd + wd * param[i]);
    }
}

double sum_squares(const float *x, size_t n) {
    enum { CHUNK = 1 << 16 };
    size_t nchunks = (n + CHUNK - 1) / CHUNK;
    if (nchunks <= 1) {
        double s = 0;
        for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
        return s;
    }
    double *part = malloc(sizeof(double) * nchunks);
    if (!part) {
        double s = 0;
        for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
        return s;
    }
#pragma omp parallel for
    for (size_t c = 0; c < nchunks; c++) {
        size_t a = c * CHUNK, b = a + CHUNK < n ? a + CHUNK : n;
        double s = 0;
        for (size_t i = a; i < b; i++) s += (double)x[i] * x[i];
        part[c] = s;
    }
    double s = 0;
    for (size_t c = 0; c < nchunks; c++) s += part[c];
    free(part);
    return s;
}
