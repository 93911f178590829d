#include "kernels/attention.h"

#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

#include "kernels/hsum.h"

// The backward's rowsum(dO * O), in four independent accumulators: a single one made each dot
// wait on its adds' latency.
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

// C[m * ldc + n] += sum over k of A[m * am + k * ak] * B(k, n), for m < M, n < N, k < K: the small
// products of the attention, on one thread (a work item's). A is read through strides, so that a
// transposed operand needs no copy. B is stored in column tiles bw wide (bw a multiple of 48, or
// at least N), bt floats apart: B(k, n) = B[(n / bw) * bt + k * ldb + n % bw]. Each element's
// sum runs over k in order, from zero, and is then added to C, whatever the tiles, so the
// backward's recomputed scores are the forward's bits and its probabilities, recomputed from the
// saved log-sum-exp, match the forward's.
#if defined(__AVX2__) && defined(__FMA__)
// One tile of mr <= MR rows and nr <= 8 * NV columns in MR * NV accumulators (12: 6 x 16 or
// 2 x 48 floats). Rows past mr repeat the last row (computed, not stored), so that the k loop
// has no branch; columns past nr are masked off (masked-off lanes are neither read nor written).
// MR, NV and masked are constants at each call, so the loops unroll and the accumulators stay in
// registers (every index is a constant).
static inline __attribute__((always_inline)) void gemm_tile(float *C, size_t ldc, const float *A, size_t am, size_t ak,
                                                            const float *B, size_t ldb, int mr, int nr, int K,
                                                            const int MR, const int NV, const int masked) {
    const float *a[6];
    __m256 c[6][6], bv[6];
    __m256i mask[6];
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
#pragma GCC unroll 6
    for (int v = 0; v < NV; v++) mask[v] = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr - 8 * v), lane);
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++) {
        a[r] = A + (size_t)(r < mr ? r : mr - 1) * am;
#pragma GCC unroll 6
        for (int v = 0; v < NV; v++) c[r][v] = _mm256_setzero_ps();
    }
    for (int k = 0; k < K; k++) {
        const float *b = B + (size_t)k * ldb;
        size_t o = (size_t)k * ak;
#pragma GCC unroll 6
        for (int v = 0; v < NV; v++) bv[v] = masked ? _mm256_maskload_ps(b + 8 * v, mask[v]) : _mm256_loadu_ps(b + 8 * v);
#pragma GCC unroll 6
        for (int r = 0; r < MR; r++) {
            __m256 x = _mm256_broadcast_ss(a[r] + o);
#pragma GCC unroll 6
            for (int v = 0; v < NV; v++) c[r][v] = _mm256_fmadd_ps(x, bv[v], c[r][v]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++) {
        if (r >= mr) break;
        float *cr = C + (size_t)r * ldc;
#pragma GCC unroll 6
        for (int v = 0; v < NV; v++) {
            if (masked) _mm256_maskstore_ps(cr + 8 * v, mask[v], _mm256_add_ps(_mm256_maskload_ps(cr + 8 * v, mask[v]), c[r][v]));
            else _mm256_storeu_ps(cr + 8 * v, _mm256_add_ps(_mm256_loadu_ps(cr + 8 * v), c[r][v]));
        }
    }
}

// Columns [n, n + nr) of C in tiles of MR rows (nr <= 8 * NV; the columns lie in one of B's
// column tiles).
static inline __attribute__((always_inline)) void gemm_panel(float *C, size_t ldc, const float *A, size_t am, size_t ak,
                                                             const float *B, size_t ldb, int bw, size_t bt, int M, int n,
                                                             int nr, int K, const int MR, const int NV,
                                                             const int masked) {
    const float *b = B + (size_t)(n / bw) * bt + n % bw;
    for (int m = 0; m < M; m += MR)  // the panel of B stays in L1 across the row tiles
        gemm_tile(C + (size_t)m * ldc + n, ldc, A + (size_t)m * am, am, ak, b, ldb, M - m < MR ? M - m : MR, nr, K, MR,
                  NV, masked);
}

// Panels of 8 * NV columns, then the whole vectors left in one narrower panel, then the last
// columns masked, one vector wide (a mask per vector of a wide tile would not fit the registers).
// Every element's sum runs over k in order whatever the tile.
static inline __attribute__((always_inline)) void gemm_tiles(float *C, size_t ldc, const float *A, size_t am,
                                                             size_t ak, const float *B, size_t ldb, int bw, size_t bt,
                                                             int M, int N, int K, const int MR, const int NV) {
    int n = 0;
    for (; n + 8 * NV <= N; n += 8 * NV) gemm_panel(C, ldc, A, am, ak, B, ldb, bw, bt, M, n, 8 * NV, K, MR, NV, 0);
    int nv = (N - n) / 8;
    switch (nv) {  // nv < NV <= 6
    case 1: gemm_panel(C, ldc, A, am, ak, B, ldb, bw, bt, M, n, 8, K, MR, 1, 0); break;
    case 2: gemm_panel(C, ldc, A, am, ak, B, ldb, bw, bt, M, n, 16, K, MR, 2, 0); break;
    case 3: gemm_panel(C, ldc, A, am, ak, B, ldb, bw, bt, M, n, 24, K, MR, 3, 0); break;
    case 4: gemm_panel(C, ldc, A, am, ak, B, ldb, bw, bt, M, n, 32, K, MR, 4, 0); break;
    case 5: gemm_panel(C, ldc, A, am, ak, B, ldb, bw, bt, M, n, 40, K, MR, 5, 0); break;
    }
    n += 8 * nv;
    if (n < N) gemm_panel(C, ldc, A, am, ak, B, ldb, bw, bt, M, n, N - n, K, MR, 1, 1);
}

// The tile's shape follows M: decoding has one row per query head of a group (2 or 4 at the
// Qwen3 shapes), where 6-row tiles would mostly compute repeated rows; 2 x 48 tiles also read a
// whole 48-key tile of the caches' keys in one stream (a second pair of rows finds it in L1).
static void gemm_acc_tiled(float *C, size_t ldc, const float *A, size_t am, size_t ak, const float *B, size_t ldb,
                           int bw, size_t bt, int M, int N, int K) {
    if (M <= 4) gemm_tiles(C, ldc, A, am, ak, B, ldb, bw, bt, M, N, K, 2, 6);
    else gemm_tiles(C, ldc, A, am, ak, B, ldb, bw, bt, M, N, K, 6, 2);
}
#else
static void gemm_acc_tiled(float *C, size_t ldc, const float *A, size_t am, size_t ak, const float *B, size_t ldb,
                           int bw, size_t bt, int M, int N, int K) {
    for (int m = 0; m < M; m++)
        for (int k = 0; k < K; k++) {
            float x = A[(size_t)m * am + (size_t)k * ak], *c = C + (size_t)m * ldc;
            for (int n = 0; n < N; n++) c[n] += x * B[(size_t)(n / bw) * bt + (size_t)k * ldb + n % bw];
        }
}
#endif

// B plain row-major: one column tile as wide as any N.
static void gemm_acc(float *C, size_t ldc, const float *A, size_t am, size_t ak, const float *B, size_t ldb, int M,
                     int N, int K) {
    gemm_acc_tiled(C, ldc, A, am, ak, B, ldb, INT_MAX, 0, M, N, K);
}

// In the projections' layout a KV head's rows lie NKV * HD floats apart (4 KiB at the 0.6B
// shape), too far apart for the hardware prefetcher here: rows a few positions ahead are
// prefetched by hand while they are gathered.
enum { ATT_PREFETCH_ROWS = 8 };

// Rows 0..n-1 of one KV head, src[j * stride + d], into rows [n, HD] (may be NULL) and into the
// caches' transposed key tiles, tiles[attention_key_index(j, d, HD)] (may be NULL).
static void gather_head(float *rows, float *tiles, const float *src, size_t stride, int n, int HD) {
    for (int j = 0; j < n; j++) {
        const float *r = src + (size_t)j * stride;
        if (j + ATT_PREFETCH_ROWS < n)
            for (int d = 0; d < HD; d += 16) __builtin_prefetch(r + ATT_PREFETCH_ROWS * stride + d);
        if (rows) memcpy(rows + (size_t)j * HD, r, sizeof(float) * (size_t)HD);
        if (tiles)
            for (int d = 0; d < HD; d++) tiles[attention_key_index(j, d, HD)] = r[d];
    }
}

// S[M, nk] = q rows (ld apart) times the transposed tiles kt of nk keys (or values, in the
// backward's dP): the forward's scores and the backward's recomputed ones, one order for both.
static void scores(float *S, const float *q, size_t ld, const float *kt, int M, int nk, int HD) {
    memset(S, 0, sizeof(float) * (size_t)M * nk);
    gemm_acc_tiled(S, nk, q, ld, 1, kt, ATT_KEY_TILE, ATT_KEY_TILE, (size_t)ATT_KEY_TILE * HD, M, nk, HD);
}

// Query rows per block: the forward's rows of one head, and the backward's. Each block's
// products run over the keys up to its last row, so the upper triangle of its diagonal square
// is computed and masked to zero: smaller blocks waste less of that, larger ones make longer sums
// in the backward's dk and dv products.
enum { ATT_BLOCK = 48 };

// M query rows of one KV head against its keys in the caches' tiles (attention_key_index) and its
// values vr[j * HD + d]. Row r reads q + r * ld, writes out + r * ld and lse[r * lse_step] (lse
// may be NULL), and sees keys 0..last0 + r * dlast: rows are either consecutive queries of one
// head (dlast 1) or the group's heads at one query (dlast 0). S: M x (keys) floats of scratch.
// Every element's sums run in one order whatever the rows and the keys past a row's last (its
// masked zeros add exact zeros), so a query decoded against the cache gets the bits it gets in
// the full forward.
static void attend_rows(float *out, float *lse, size_t lse_step, const float *q, size_t ld, int M, int last0,
                        int dlast, const float *kt, const float *vr, int HD, float *S) {
    const float scale = 1.0f / sqrtf((float)HD);
    const int nk = last0 + (M - 1) * dlast + 1;
    scores(S, q, ld, kt, M, nk, HD);
    for (int r = 0; r < M; r++) {
        float *s = S + (size_t)r * nk, mx = -INFINITY, sum = 0;
        int last = last0 + r * dlast;
        for (int j = 0; j <= last; j++) {
            s[j] *= scale;
            if (s[j] > mx) mx = s[j];
        }
        for (int j = 0; j <= last; j++) {
            s[j] = expf(s[j] - mx);
            sum += s[j];
        }
        float inv = 1.0f / sum;
        for (int j = 0; j <= last; j++) s[j] *= inv;
        for (int j = last + 1; j < nk; j++) s[j] = 0;  // causal mask
        if (lse) lse[(size_t)r * lse_step] = mx + logf(sum);
        memset(out + (size_t)r * ld, 0, sizeof(float) * (size_t)HD);
    }
    gemm_acc(out, ld, S, nk, 1, vr, HD, M, HD, nk);
}

// KV head g of sequence b starts at k + b * seq + g * head (v likewise). cache == 0: the
// projections' layout, rows j * stride apart, gathered into the caches' layout; cache == 1: the
// caches' layout (attention.h). One work item per (sequence, KV head, block of queries); a single
// query takes its group's heads together as rows, so that each key and value is read once for
// all of them.
static void attention_any(float *out, float *lse, const float *q, const float *k, const float *v, int B, int Tq, int Tk,
                          size_t seq, size_t head, size_t stride, int cache, int NH, int NKV, int HD) {
    const int group = NH / NKV, blocks = (Tq + ATT_BLOCK - 1) / ATT_BLOCK, rows = Tq == 1 ? group : ATT_BLOCK;
    const size_t ldq = (size_t)NH * HD, tiled = (size_t)(Tk + ATT_KEY_TILE - 1) / ATT_KEY_TILE * ATT_KEY_TILE * HD;
#pragma omp parallel
    {
        // Gathered keys and values, and one block's scores: O(T * HD) per thread.
        float *kt = NULL, *vr = NULL;
        if (!cache) kt = xmalloc_line(sizeof(float) * (tiled + (size_t)Tk * HD)), vr = kt + tiled;
        float *S = xmalloc_line(sizeof(float) * (size_t)rows * Tk);
#pragma omp for collapse(3) schedule(dynamic, 1)
        for (int b = 0; b < B; b++)
            for (int g = 0; g < NKV; g++)
                for (int blk = 0; blk < blocks; blk++) {
                    int t0 = blk * ATT_BLOCK, bq = Tq - t0 < ATT_BLOCK ? Tq - t0 : ATT_BLOCK;
                    int nk = Tk - Tq + t0 + bq;  // keys the block's last query sees
                    const float *kh = k + b * seq + g * head, *vh = v + b * seq + g * head;
                    if (!cache) {
                        gather_head(NULL, kt, kh, stride, nk, HD);
                        gather_head(vr, NULL, vh, stride, nk, HD);
                        kh = kt, vh = vr;
                    }
                    size_t qrow = ((size_t)b * Tq + t0) * ldq + (size_t)g * group * HD;
                    float *lrow = lse ? lse + ((size_t)b * NH + (size_t)g * group) * Tq + t0 : NULL;
                    if (Tq == 1)
                        attend_rows(out + qrow, lrow, Tq, q + qrow, HD, group, nk - 1, 0, kh, vh, HD, S);
                    else
                        for (int i = 0; i < group; i++)
                            attend_rows(out + qrow + (size_t)i * HD, lrow ? lrow + (size_t)i * Tq : NULL, 1,
                                        q + qrow + (size_t)i * HD, ldq, bq, Tk - Tq + t0, 1, kh, vh, HD, S);
                }
        free(kt);
        free(S);
    }
}

void attention_forward(float *out, float *lse, const float *q, const float *k, const float *v, int B, int Tq, int Tk,
                       int Tcap, int NH, int NKV, int HD) {
    attention_any(out, lse, q, k, v, B, Tq, Tk, (size_t)Tcap * NKV * HD, (size_t)HD, (size_t)NKV * HD, 0, NH, NKV, HD);
}

void attention_forward_cache(float *out, const float *q, const float *k, const float *v, int B, int Tq, int Tk, int Tcap,
                             int NH, int NKV, int HD) {
    if (Tcap % ATT_KEY_TILE) paw_die("attention_forward_cache: capacity %d is not a multiple of %d", Tcap, ATT_KEY_TILE);
    attention_any(out, NULL, q, k, v, B, Tq, Tk, (size_t)NKV * Tcap * HD, (size_t)Tcap * HD, 0, 1, NH, NKV, HD);
}

void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                        const float *v, const float *out, const float *lse, int B, int T, int NH, int NKV, int HD) {
    const float scale = 1.0f / sqrtf((float)HD);
    const int group = NH / NKV;
    const size_t ldq = (size_t)NH * HD, ldk = (size_t)NKV * HD, th = (size_t)T * HD;
    const size_t tiled = (size_t)(T + ATT_KEY_TILE - 1) / ATT_KEY_TILE * ATT_KEY_TILE * HD;
    // One work item per (sequence, KV head): all query heads of a group write the same dk/dv rows,
    // so they stay in one thread. Per block of query rows of one head, as products:
    //   S = Q K^T and dP = dO V^T over the keys the block sees; P = exp(S * scale - lse);
    //   dS = P * (dP - rowsum(dO * O)) * scale; dQ += dS K; dK += dS^T Q; dV += P^T dO.
#pragma omp parallel
    {
        // The KV head's keys and values gathered [T, HD] and in transposed tiles (the caches'
        // key layout), its dk and dv [T, HD], and one block's P and dS [block, T]: O(T * HD) per
        // thread, no T x T matrix.
        float *kg = xmalloc_line(sizeof(float) * (4 * th + 2 * tiled + 2 * (size_t)ATT_BLOCK * T));
        float *vg = kg + th, *dkg = vg + th, *dvg = dkg + th, *kt = dvg + th, *vt = kt + tiled;
        float *P = vt + tiled, *dS = P + (size_t)ATT_BLOCK * T;
#pragma omp for collapse(2) schedule(dynamic, 1)
        for (int b = 0; b < B; b++) {
            for (int g = 0; g < NKV; g++) {
                const float *kb = k + (size_t)b * T * ldk + (size_t)g * HD, *vb = v + (kb - k);
                gather_head(kg, kt, kb, ldk, T, HD);
                gather_head(vg, vt, vb, ldk, T, HD);
                memset(dkg, 0, sizeof(float) * 2 * th);  // dkg and dvg
                for (int h = g * group; h < (g + 1) * group; h++) {
                    for (int t0 = 0; t0 < T; t0 += ATT_BLOCK) {
                        int bq = T - t0 < ATT_BLOCK ? T - t0 : ATT_BLOCK, nk = t0 + bq;
                        size_t row0 = ((size_t)b * T + t0) * ldq + (size_t)h * HD;
                        const float *qb = q + row0, *dob = dout + row0, *ob = out + row0;
                        scores(P, qb, ldq, kt, bq, nk, HD);
                        scores(dS, dob, ldq, vt, bq, nk, HD);
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
