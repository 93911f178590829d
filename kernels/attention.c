#include "kernels/attention.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

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

// C[m * ldc + n] += sum over k of A[m * am + k * ak] * B[k * ldb + n], for m < M, n < N, k < K: the
// small products of the attention backward, on one thread (a work item's). A is read through
// strides, so that a transposed operand needs no copy.
#if defined(__AVX2__) && defined(__FMA__)
enum { GEMM_MR = 6, GEMM_NR = 16 };

// One tile of mr <= 6 rows and nr <= 16 columns in 12 accumulators. Rows past mr repeat the last
// row (computed, not stored), so that the k loop has no branch; columns past nr are masked off
// (masked-off lanes are neither read nor written).
static inline __attribute__((always_inline)) void gemm_tile(float *C, size_t ldc, const float *A, size_t am, size_t ak,
                                                            const float *B, size_t ldb, int mr, int nr, int K,
                                                            const int masked) {
    const float *a[GEMM_MR];
    for (int r = 0; r < GEMM_MR; r++) a[r] = A + (size_t)(r < mr ? r : mr - 1) * am;
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr), lane);
    const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr - 8), lane);
    // Named accumulators and rows, written out: a loop over the rows keeps them in memory here.
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5];
    for (int k = 0; k < K; k++) {
        const float *b = B + (size_t)k * ldb;
        __m256 b0 = masked ? _mm256_maskload_ps(b, m0) : _mm256_loadu_ps(b);
        __m256 b1 = masked ? _mm256_maskload_ps(b + 8, m1) : _mm256_loadu_ps(b + 8);
        size_t o = (size_t)k * ak;
        __m256 x;
#define GEMM_ROW(r)                                \
    x = _mm256_broadcast_ss(a##r + o);             \
    c##r##0 = _mm256_fmadd_ps(x, b0, c##r##0);     \
    c##r##1 = _mm256_fmadd_ps(x, b1, c##r##1);
        GEMM_ROW(0) GEMM_ROW(1) GEMM_ROW(2) GEMM_ROW(3) GEMM_ROW(4) GEMM_ROW(5)
#undef GEMM_ROW
    }
    const __m256 c[GEMM_MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
    for (int r = 0; r < mr; r++) {
        float *cr = C + (size_t)r * ldc;
        if (masked) {
            _mm256_maskstore_ps(cr, m0, _mm256_add_ps(_mm256_maskload_ps(cr, m0), c[r][0]));
            _mm256_maskstore_ps(cr + 8, m1, _mm256_add_ps(_mm256_maskload_ps(cr + 8, m1), c[r][1]));
        } else {
            _mm256_storeu_ps(cr, _mm256_add_ps(_mm256_loadu_ps(cr), c[r][0]));
            _mm256_storeu_ps(cr + 8, _mm256_add_ps(_mm256_loadu_ps(cr + 8), c[r][1]));
        }
    }
}

static void gemm_acc(float *C, size_t ldc, const float *A, size_t am, size_t ak, const float *B, size_t ldb, int M,
                     int N, int K) {
    for (int n = 0; n < N; n += GEMM_NR)  // a 16-column panel of B stays in L1 across the row tiles
        for (int m = 0; m < M; m += GEMM_MR) {
            int mr = M - m < GEMM_MR ? M - m : GEMM_MR, nr = N - n < GEMM_NR ? N - n : GEMM_NR;
            float *c = C + (size_t)m * ldc + n;
            const float *a = A + (size_t)m * am, *b = B + n;
            if (nr == GEMM_NR) gemm_tile(c, ldc, a, am, ak, b, ldb, mr, nr, K, 0);
            else gemm_tile(c, ldc, a, am, ak, b, ldb, mr, nr, K, 1);
        }
}
#else
static void gemm_acc(float *C, size_t ldc, const float *A, size_t am, size_t ak, const float *B, size_t ldb, int M,
                     int N, int K) {
    for (int m = 0; m < M; m++)
        for (int k = 0; k < K; k++) {
            float x = A[(size_t)m * am + (size_t)k * ak], *c = C + (size_t)m * ldc;
            const float *b = B + (size_t)k * ldb;
            for (int n = 0; n < N; n++) c[n] += x * b[n];
        }
}
#endif

// Query rows per block of the backward. Each block's products run over the keys up to its last
// row, so the upper triangle of its diagonal square is computed and masked to zero: smaller
// blocks waste less of that, larger ones make longer sums in the dk and dv products.
enum { ATT_BWD_BLOCK = 48 };

void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                        const float *v, const float *out, const float *lse, int B, int T, int NH, int NKV, int HD) {
    const float scale = 1.0f / sqrtf((float)HD);
    const int group = NH / NKV;
    const size_t ldq = (size_t)NH * HD, ldk = (size_t)NKV * HD, th = (size_t)T * HD;
    // One work item per (sequence, KV head): all query heads of a group write the same dk/dv rows,
    // so they stay in one thread. Per block of query rows of one head, as products:
    //   S = Q K^T and dP = dO V^T over the keys the block sees; P = exp(S * scale - lse);
    //   dS = P * (dP - rowsum(dO * O)) * scale; dQ += dS K; dK += dS^T Q; dV += P^T dO.
#pragma omp parallel
    {
        // The KV head's keys and values gathered [T, HD] and transposed [HD, T], its dk and dv
        // [T, HD], and one block's P and dS [block, T]: O(T * HD) per thread, no T x T matrix.
        float *kg = xmalloc(sizeof(float) * (6 * th + 2 * (size_t)ATT_BWD_BLOCK * T));
        float *vg = kg + th, *kt = vg + th, *vt = kt + th, *dkg = vt + th, *dvg = dkg + th;
        float *P = dvg + th, *dS = P + (size_t)ATT_BWD_BLOCK * T;
#pragma omp for collapse(2) schedule(dynamic, 1)
        for (int b = 0; b < B; b++) {
            for (int g = 0; g < NKV; g++) {
                const float *kb = k + (size_t)b * T * ldk + (size_t)g * HD, *vb = v + (kb - k);
                for (int j = 0; j < T; j++)
                    for (int d = 0; d < HD; d++) {
                        kg[(size_t)j * HD + d] = kt[(size_t)d * T + j] = kb[(size_t)j * ldk + d];
                        vg[(size_t)j * HD + d] = vt[(size_t)d * T + j] = vb[(size_t)j * ldk + d];
                    }
                memset(dkg, 0, sizeof(float) * 2 * th);
                for (int h = g * group; h < (g + 1) * group; h++) {
                    for (int t0 = 0; t0 < T; t0 += ATT_BWD_BLOCK) {
                        int bq = T - t0 < ATT_BWD_BLOCK ? T - t0 : ATT_BWD_BLOCK, nk = t0 + bq;
                        size_t row0 = ((size_t)b * T + t0) * ldq + (size_t)h * HD;
                        const float *qb = q + row0, *dob = dout + row0, *ob = out + row0;
                        memset(P, 0, sizeof(float) * (size_t)bq * nk);
                        memset(dS, 0, sizeof(float) * (size_t)bq * nk);
                        gemm_acc(P, nk, qb, ldq, 1, kt, T, bq, nk, HD);
                        gemm_acc(dS, nk, dob, ldq, 1, vt, T, bq, nk, HD);
                        for (int i = 0; i < bq; i++) {
                            int t = t0 + i;
                            float L = lse[((size_t)b * NH + h) * T + t];
                            float D = dot(dob + i * ldq, ob + i * ldq, HD);  // sum_j p_j dP_j
                            float *pr = P + (size_t)i * nk, *sr = dS + (size_t)i * nk;
                            for (int j = 0; j <= t; j++) {
                                float p = expf(pr[j] * scale - L);
                                pr[j] = p;
                                sr[j] = p * (sr[j] - D) * scale;
                            }
                            for (int j = t + 1; j < nk; j++) pr[j] = sr[j] = 0;  // causal mask
                        }
                        gemm_acc(dq + row0, ldq, dS, nk, 1, kg, HD, bq, HD, nk);
                        gemm_acc(dkg, HD, dS, 1, nk, qb, ldq, nk, HD, bq);
                        gemm_acc(dvg, HD, P, 1, nk, dob, ldq, nk, HD, bq);
                    }
                }
                float *dkb = dk + (kb - k), *dvb = dv + (kb - k);
                for (int j = 0; j < T; j++)
                    for (int d = 0; d < HD; d++) {
                        dkb[(size_t)j * ldk + d] += dkg[(size_t)j * HD + d];
                        dvb[(size_t)j * ldk + d] += dvg[(size_t)j * HD + d];
                    }
            }
        }
        free(kg);
    }
}
