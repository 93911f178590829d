#include "kernels/lora.h"

#include <stddef.h>
#include <string.h>

#include "kernels/matmul.h"

void lora_forward(float *y, float *u, const float *x, const float *A, const float *Bm, int nb, int T, int d_in,
                  int d_out, int r, float scale) {
    for (int b = 0; b < nb; b++) {
        const float *xb = x + (size_t)b * T * d_in;
        float *ub = u + (size_t)b * T * r;
        matmul_forward(ub, xb, A + (size_t)b * r * d_in, T, d_in, r);
        for (size_t i = 0; i < (size_t)T * r; i++) ub[i] *= scale;
        matmul_forward_acc(y + (size_t)b * T * d_out, ub, Bm + (size_t)b * d_out * r, T, r, d_out, 1.0f);
    }
}

void lora_forward_q8(float *y, float *u, const float *x, const int8_t *qA, const float *qAd, const int8_t *qB,
                     const float *qBd, int nb, int T, int d_in, int d_out, int r, float scale) {
    for (int b = 0; b < nb; b++) {
        const size_t a0 = (size_t)b * r * d_in, b0 = (size_t)b * d_out * r;
        float *ub = u + (size_t)b * T * r;
        matmul_forward_q8w(ub, x + (size_t)b * T * d_in, qA + a0, qAd + a0 / 32, T, d_in, r);
        for (size_t i = 0; i < (size_t)T * r; i++) ub[i] *= scale;
        matmul_forward_q8w_acc(y + (size_t)b * T * d_out, ub, qB + b0, qBd + b0 / 32, T, r, d_out, 1.0f);
    }
}

void lora_backward(float *dx, float *dA, float *dB, const float *dy, const float *x, const float *u, const float *A,
                   const float *Bm, int nb, int T, int d_in, int d_out, int r, float scale, float *du) {
    for (int b = 0; b < nb; b++) {
        const float *dyb = dy + (size_t)b * T * d_out, *xb = x + (size_t)b * T * d_in;
        // u holds scale * A x, so dB += dy^T u directly; du = scale * dy B.
        memset(du, 0, sizeof(float) * (size_t)T * r);
        matmul_backward(du, dB ? dB + (size_t)b * d_out * r : NULL, dyb, u + (size_t)b * T * r,
                        Bm + (size_t)b * d_out * r, T, r, d_out);
        for (size_t i = 0; i < (size_t)T * r; i++) du[i] *= scale;
        matmul_backward(dx ? dx + (size_t)b * T * d_in : NULL, dA ? dA + (size_t)b * r * d_in : NULL, du, xb,
                        A + (size_t)b * r * d_in, T, d_in, r);
    }
}
