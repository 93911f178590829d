#include "kernels/rope.h"

#include <math.h>
#include <stddef.h>

#include "kernels/rmsnorm.h"

void rope_table(float *cos_t, float *sin_t, int max_pos, int hd, float theta) {
    int h = hd / 2;
    for (int i = 0; i < h; i++) {
        // transformers: inv_freq = 1 / theta ** (arange(0, hd, 2) / hd) in fp32, angle = pos * inv_freq in fp32.
        float inv_freq = 1.0f / powf(theta, (float)(2 * i) / (float)hd);
        for (int p = 0; p < max_pos; p++) {
            float a = (float)p * inv_freq;
            cos_t[(size_t)p * h + i] = cosf(a);
            sin_t[(size_t)p * h + i] = sinf(a);
        }
    }
}

static void rotate(float *x, const float *cos_t, const float *sin_t, const int *pos, int N, int nh, int hd, float sign) {
    int h = hd / 2;
#pragma omp parallel for if (N * nh >= 256)
    for (int n = 0; n < N; n++) {
        const float *c = cos_t + (size_t)pos[n] * h, *s = sin_t + (size_t)pos[n] * h;
        for (int head = 0; head < nh; head++) {
            float *v = x + ((size_t)n * nh + head) * hd;
            for (int i = 0; i < h; i++) {
                float a = v[i], b = v[i + h], si = sign * s[i];
                v[i] = a * c[i] - b * si;
                v[i + h] = b * c[i] + a * si;
            }
        }
    }
}

void rope_forward(float *x, const float *cos_t, const float *sin_t, const int *pos, int N, int nh, int hd) {
    rotate(x, cos_t, sin_t, pos, N, nh, hd, 1.0f);
}

void rope_backward(float *dx, const float *cos_t, const float *sin_t, const int *pos, int N, int nh, int hd) {
    rotate(dx, cos_t, sin_t, pos, N, nh, hd, -1.0f);  // the transpose of a rotation is the inverse rotation
}

void qknorm_rope_forward(float *out, float *rstd, const float *inp, const float *normw, const float *cos_t,
                         const float *sin_t, const int *pos, int N, int nh, int hd, float eps) {
    rmsnorm_forward(out, rstd, inp, normw, N * nh, hd, eps);
    rope_forward(out, cos_t, sin_t, pos, N, nh, hd);
}

void qknorm_rope_backward(float *dinp, float *dnormw, float *dout, const float *inp, const float *normw,
                          const float *rstd, const float *cos_t, const float *sin_t, const int *pos, int N, int nh,
                          int hd) {
    rope_backward(dout, cos_t, sin_t, pos, N, nh, hd);
    rmsnorm_backward(dinp, dnormw, dout, inp, normw, rstd, N * nh, hd);
}
