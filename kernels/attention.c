#include "kernels/attention.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#include "common/error.h"

static float dot(const float *a, const float *b, int n) {
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

void attention_forward(float *out, float *lse, const float *q, const float *k, const float *v, int B, int Tq, int Tk,
                       int Tcap, int NH, int NKV, int HD) {
    const float scale = 1.0f / sqrtf((float)HD);
    const int group = NH / NKV;
#pragma omp parallel
    {
        float *p = xmalloc(sizeof(float) * (size_t)Tk);  // one row of scores: O(T) per thread
#pragma omp for collapse(2) schedule(dynamic, 4)
        for (int bh = 0; bh < B * NH; bh++) {
            for (int t = 0; t < Tq; t++) {
                int b = bh / NH, h = bh % NH, g = h / group;
                int last = Tk - Tq + t;  // absolute position of this query
                const float *qr = q + (((size_t)b * Tq + t) * NH + h) * HD;
                float mx = -INFINITY;
                for (int j = 0; j <= last; j++) {
                    const float *kr = k + (((size_t)b * Tcap + j) * NKV + g) * HD;
                    p[j] = dot(qr, kr, HD) * scale;
                    if (p[j] > mx) mx = p[j];
                }
                float sum = 0;
                for (int j = 0; j <= last; j++) {
                    p[j] = expf(p[j] - mx);
                    sum += p[j];
                }
                float inv = 1.0f / sum;
                float *o = out + (((size_t)b * Tq + t) * NH + h) * HD;
                for (int d = 0; d < HD; d++) o[d] = 0;
                for (int j = 0; j <= last; j++) {
                    const float *vr = v + (((size_t)b * Tcap + j) * NKV + g) * HD;
                    float w = p[j] * inv;
#pragma omp simd
                    for (int d = 0; d < HD; d++) o[d] += w * vr[d];
                }
                if (lse) lse[((size_t)b * NH + h) * Tq + t] = mx + logf(sum);
            }
        }
        free(p);
    }
}

void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                        const float *v, const float *out, const float *lse, int B, int T, int NH, int NKV, int HD) {
    const float scale = 1.0f / sqrtf((float)HD);
    const int group = NH / NKV;
    // One work item per (sequence, KV head): all query heads of a group write the same dk/dv rows,
    // so they stay in one thread.
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
    for (int b = 0; b < B; b++) {
        for (int g = 0; g < NKV; g++) {
            for (int h = g * group; h < (g + 1) * group; h++) {
                for (int t = 0; t < T; t++) {
                    size_t qi = (((size_t)b * T + t) * NH + h) * HD;
                    const float *qr = q + qi, *dor = dout + qi, *orow = out + qi;
                    float *dqr = dq + qi;
                    float L = lse[((size_t)b * NH + h) * T + t];
                    float D = dot(dor, orow, HD);  // sum_j p_j dP_j
                    for (int j = 0; j <= t; j++) {
                        size_t ki = (((size_t)b * T + j) * NKV + g) * HD;
                        const float *kr = k + ki, *vr = v + ki;
                        float pj = expf(dot(qr, kr, HD) * scale - L);
                        float ds = pj * (dot(dor, vr, HD) - D) * scale;
                        float *dkr = dk + ki, *dvr = dv + ki;
#pragma omp simd
                        for (int d = 0; d < HD; d++) {
                            dqr[d] += ds * kr[d];
                            dkr[d] += ds * qr[d];
                            dvr[d] += pj * dor[d];
                        }
                    }
                }
            }
        }
    }
}
