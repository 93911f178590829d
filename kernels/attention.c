#include "kernels/attention.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#include "common/error.h"

#include "kernels/hsum.h"

// One fixed summation order per build, used by the forward and by the backward's recomputation
// alike, so that probabilities recomputed from the saved log-sum-exp match the forward's. Four
// independent accumulators: a single one made each dot wait on its adds' latency.
static inline float dot(const float *a, const float *b, int n) {
    int i = 0;
    float s = 0;
#if defined(__AVX2__) && defined(__FMA__)
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s = hsum8(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
#endif
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

// In the projections' layout a KV head's rows lie NKV * HD floats apart (4 KiB at the 0.6B
// shape), too far apart for the hardware prefetcher here: rows a few positions ahead are
// prefetched by hand. (The decoding caches keep each KV head's positions contiguous instead.)
enum { ATT_PREFETCH_ROWS = 8 };

static inline void prefetch_row(const float *r, int HD) {
    for (int d = 0; d < HD; d += 16) __builtin_prefetch(r + d);
}

// K/V row of sequence b, KV head g, position j at k + b * seq + g * head + j * stride.
static void attention_strided(float *out, float *lse, const float *q, const float *k, const float *v, int B, int Tq,
                              int Tk, size_t seq, size_t head, size_t stride, int NH, int NKV, int HD) {
    const float scale = 1.0f / sqrtf((float)HD);
    const int group = NH / NKV;
    const int prefetch = stride > (size_t)HD;  // contiguous rows stream without the hint
    // One work item per (sequence, KV head, query): the group's query heads together, so that each
    // K and V row is read once for all of them (per head, the sums are the same as one at a time).
#pragma omp parallel
    {
        // The group's rows of scores, O(T) per thread, then its maxima and 1 / sums.
        float *p = xmalloc(sizeof(float) * (size_t)group * (Tk + 2)), *mx = p + (size_t)group * Tk, *inv = mx + group;
#pragma omp for collapse(2) schedule(dynamic, 4)
        for (int bg = 0; bg < B * NKV; bg++) {
            for (int t = 0; t < Tq; t++) {
                int b = bg / NKV, g = bg % NKV;
                int last = Tk - Tq + t;  // absolute position of this query
                const float *kg = k + b * seq + g * head, *vg = v + b * seq + g * head;
                const float *qg = q + (((size_t)b * Tq + t) * NH + (size_t)g * group) * HD;
                float *og = out + (((size_t)b * Tq + t) * NH + (size_t)g * group) * HD;
                for (int i = 0; i < group; i++) mx[i] = -INFINITY;
                for (int j = 0; j <= last; j++) {
                    const float *kr = kg + j * stride;
                    if (prefetch && j + ATT_PREFETCH_ROWS <= last) prefetch_row(kr + ATT_PREFETCH_ROWS * stride, HD);
                    for (int i = 0; i < group; i++) {
                        float s = dot(qg + (size_t)i * HD, kr, HD) * scale;
                        p[(size_t)i * Tk + j] = s;
                        if (s > mx[i]) mx[i] = s;
                    }
                }
                for (int i = 0; i < group; i++) {
                    float *pi = p + (size_t)i * Tk, sum = 0;
                    for (int j = 0; j <= last; j++) {
                        pi[j] = expf(pi[j] - mx[i]);
                        sum += pi[j];
                    }
                    inv[i] = 1.0f / sum;
                    if (lse) lse[((size_t)b * NH + (size_t)g * group + i) * Tq + t] = mx[i] + logf(sum);
                }
                for (int d = 0; d < group * HD; d++) og[d] = 0;
                for (int j = 0; j <= last; j++) {
                    const float *vr = vg + j * stride;
                    if (prefetch && j + ATT_PREFETCH_ROWS <= last) prefetch_row(vr + ATT_PREFETCH_ROWS * stride, HD);
                    for (int i = 0; i < group; i++) {
                        float w = p[(size_t)i * Tk + j] * inv[i], *o = og + (size_t)i * HD;
#pragma omp simd
                        for (int d = 0; d < HD; d++) o[d] += w * vr[d];
                    }
                }
            }
        }
        free(p);
    }
}

void attention_forward(float *out, float *lse, const float *q, const float *k, const float *v, int B, int Tq, int Tk,
                       int Tcap, int NH, int NKV, int HD) {
    attention_strided(out, lse, q, k, v, B, Tq, Tk, (size_t)Tcap * NKV * HD, (size_t)HD, (size_t)NKV * HD, NH, NKV, HD);
}

void attention_forward_cache(float *out, const float *q, const float *k, const float *v, int B, int Tq, int Tk, int Tcap,
                             int NH, int NKV, int HD) {
    attention_strided(out, NULL, q, k, v, B, Tq, Tk, (size_t)NKV * Tcap * HD, (size_t)Tcap * HD, (size_t)HD, NH, NKV, HD);
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
