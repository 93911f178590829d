#include "kernels/matmul.h"

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

#include "common/error.h"
#include "kernels/hsum.h"
#include "model/safetensors.h"

// One packed GEMM serves the forward and both backward products:
//     Y[R, M] (+)= alpha * sum_k A(r, k) * B(k, m)
// with A and B read through (row, column) strides, so transposed operands are never copied
// whole. The loops are BLIS's: for a block of up to RB rows and NC columns of Y and one KC-slice
// of k, the threads pack A's rows into MR-row panels and B's columns into NR-column panels, once
// for all of them (A's block, 1.2 MB at most, and B's, 2 MB, stay in L2/L3), then share out the
// block's tiles; a 6 x 16 micro-kernel keeps its output in 12 AVX registers while k streams
// through, B's panel in L1 across a tile's rows. Packing each operand once per block is what
// matters on two cores: re-packing both per small tile cost about as much as the arithmetic.
// Every output element has one writer and sums its k-slices in order with the same micro-kernel
// wherever it sits, so its bits depend on neither the thread count nor the tiling.

enum { MR = 6, NR = 16, KC = 256, MC = 144, NT = 256, RB = 1152, NC = 2048, KB = 16 };

typedef struct {
    const float *p;
    size_t rs, cs;     // element (i, j) at p[i * rs + j * cs]
    const uint16_t *h; // instead of p: bf16 elements, widened to fp32 as they are packed
    const int8_t *q;   // or Q8 elements: q[o] * qd[o / 32], dequantized as they are packed
    const float *qd;
} View;

static inline View fview(const float *p, size_t rs, size_t cs) { return (View){.p = p, .rs = rs, .cs = cs}; }
static inline View hview(const uint16_t *h, size_t rs, size_t cs) { return (View){.rs = rs, .cs = cs, .h = h}; }
static inline View qview(const int8_t *q, const float *qd, size_t rs, size_t cs) {
    return (View){.rs = rs, .cs = cs, .q = q, .qd = qd};
}

enum { W_F32, W_BF16, W_Q8 };  // weight element types

static inline float at_offset(View v, size_t o) {
    return v.h ? st_bf16_to_f32(v.h[o]) : v.q ? v.qd[o / 32] * (float)v.q[o] : v.p[o];
}

static inline float at(View v, size_t i, size_t j) { return at_offset(v, i * v.rs + j * v.cs); }

static inline int imin(int a, int b) { return a < b ? a : b; }

// Rows r .. r+rows-1 of A, k0 .. k0+kc-1 -> one panel, k-major: dst[k * MR + i]. Rows past
// `rows` are 0.
static void pack_a_panel(float *dst, View A, int r, int rows, int k0, int kc) {
    if (A.p && A.cs == 1) {  // rows contiguous along k (activations, dout): read each once
        for (int i = 0; i < MR; i++) {
            const float *src = A.p + (size_t)(r + i) * A.rs + k0;
            if (i < rows)
                for (int k = 0; k < kc; k++) dst[(size_t)k * MR + i] = src[k];
            else
                for (int k = 0; k < kc; k++) dst[(size_t)k * MR + i] = 0.0f;
        }
    } else if (A.p && A.rs == 1) {  // a transposed operand (dout^T): each k's rows are contiguous
        for (int k = 0; k < kc; k++) {
            const float *src = A.p + (size_t)(k0 + k) * A.cs + r;
            float *d = dst + (size_t)k * MR;
            for (int i = 0; i < MR; i++) d[i] = i < rows ? src[i] : 0.0f;
        }
    } else {
        for (int k = 0; k < kc; k++)
            for (int i = 0; i < MR; i++)
                dst[(size_t)k * MR + i] = i < rows ? at(A, (size_t)(r + i), (size_t)(k0 + k)) : 0.0f;
    }
}

#if defined(__AVX2__) && defined(__FMA__)
// In place: row i of r becomes column i.
static inline void transpose8(__m256 r[8]) {
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)), s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)), s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0)), s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0)), s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20), r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20), r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31), r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31), r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// Eight elements of B (of type wt) along k from offset o, widened to fp32 exactly as at() does.
static inline __attribute__((always_inline)) __m256 load8_along_k(View B, size_t o, int wt) {
    if (wt == W_BF16)
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(B.h + o))), 16));
    if (wt == W_Q8)
        return _mm256_mul_ps(_mm256_set1_ps(B.qd[o / 32]),
                             _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(B.q + o)))));
    return _mm256_loadu_ps(B.p + o);
}

// A full transposed panel, eight columns by eight k at a time, for one element type (a constant
// after inlining); returns the k it stopped at.
static inline __attribute__((always_inline)) int pack_bt_vector(float *dst, View B, int k0, int kc, int c, int wt) {
    int k = 0;
    for (; k + 8 <= kc; k += 8)
        for (int g = 0; g < NR; g += 8) {
            __m256 v[8];
            for (int i = 0; i < 8; i++) v[i] = load8_along_k(B, (size_t)(c + g + i) * B.cs + (size_t)(k0 + k), wt);
            transpose8(v);
            for (int i = 0; i < 8; i++) _mm256_storeu_ps(dst + (size_t)(k + i) * NR + g, v[i]);
        }
    return k;
}
#endif

// Rows k0+ka .. k0+ka+kn-1 of B (rows contiguous along m: dinp's weight, dweight's input), columns
// c0 .. c0+nc-1 -> those rows of every panel of the block: dst[q * kc * NR + k * NR + j]. Row by
// row, so that memory is read in order: a panel's rows are a weight's rows, kilobytes apart.
static void pack_b_rows(float *dst, View B, int k0, int kc, int c0, int nc, int ka, int kn) {
    for (int k = ka; k < ka + kn; k++) {
        const float *src = B.p + (size_t)(k0 + k) * B.rs + c0;
        for (int q = 0; q < nc; q += NR) {
            float *d = dst + (size_t)(q / NR) * kc * NR + (size_t)k * NR;
            int cols = imin(NR, nc - q);
#if defined(__AVX2__) && defined(__FMA__)
            if (cols == NR) {
                _mm256_storeu_ps(d, _mm256_loadu_ps(src + q));
                _mm256_storeu_ps(d + 8, _mm256_loadu_ps(src + q + 8));
                continue;
            }
#endif
            memcpy(d, src + q, sizeof(float) * (size_t)cols);
            for (int j = cols; j < NR; j++) d[j] = 0.0f;
        }
    }
}

// Columns c .. c+cols-1 of B, k0 .. k0+kc-1 -> one panel, k-major: dst[k * NR + j]. Columns past
// `cols` are 0.
static void pack_b_panel(float *dst, View B, int k0, int kc, int c, int cols) {
    if (B.rs == 1) {  // a transposed weight (the forward's W^T): columns contiguous along k
        int k = 0;
#if defined(__AVX2__) && defined(__FMA__)
        // A Q8 group of 8 must not straddle two scales: it cannot when every column starts on a
        // multiple of 8.
        if (cols == NR && B.h) k = pack_bt_vector(dst, B, k0, kc, c, W_BF16);
        else if (cols == NR && B.q && B.cs % 8 == 0 && k0 % 8 == 0) k = pack_bt_vector(dst, B, k0, kc, c, W_Q8);
        else if (cols == NR && B.p) k = pack_bt_vector(dst, B, k0, kc, c, W_F32);
#endif
        for (int j = 0; j < NR; j++) {
            size_t o = (size_t)(c + j) * B.cs + k0;
            for (int kk = k; kk < kc; kk++) dst[(size_t)kk * NR + j] = j < cols ? at_offset(B, o + kk) : 0.0f;
        }
        return;
    }
    for (int k = 0; k < kc; k++)
        for (int j = 0; j < NR; j++) dst[(size_t)k * NR + j] = j < cols ? at(B, (size_t)(k0 + k), (size_t)(c + j)) : 0.0f;
}

// The edge of Y: rows x cols of the tile t (row stride NR). The same two roundings as the full
// tiles' vector code: v = alpha * t, then y + v.
static void put_partial(float *c, size_t ldc, const float *t, int rows, int cols, float alpha, int add) {
    for (int r = 0; r < rows; r++)
        for (int q = 0; q < cols; q++) {
            float v = alpha * t[r * NR + q];
            c[r * ldc + q] = add ? c[r * ldc + q] + v : v;
        }
}

// Y tile [rows <= MR, cols <= NR] at c (row stride ldc) (+)= alpha * sum_k a[k][r] * b[k][j] over
// kc steps: overwritten unless `add`.
static void kernel_6x16(int kc, const float *a, const float *b, float *c, size_t ldc, int rows, int cols, float alpha,
                        int add) {
#if defined(__AVX2__) && defined(__FMA__)
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps(), c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps(), c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps(), c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
    if (add)  // Y's rows are read at the end (a weight gradient's, from memory): start early
        for (int r = 0; r < rows; r++) {
            _mm_prefetch((const char *)(c + r * ldc), _MM_HINT_T0);
            _mm_prefetch((const char *)(c + r * ldc + cols - 1), _MM_HINT_T0);
        }
    for (int k = 0; k < kc; k++, a += MR, b += NR) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8), x;
        x = _mm256_broadcast_ss(a + 0), c00 = _mm256_fmadd_ps(x, b0, c00), c01 = _mm256_fmadd_ps(x, b1, c01);
        x = _mm256_broadcast_ss(a + 1), c10 = _mm256_fmadd_ps(x, b0, c10), c11 = _mm256_fmadd_ps(x, b1, c11);
        x = _mm256_broadcast_ss(a + 2), c20 = _mm256_fmadd_ps(x, b0, c20), c21 = _mm256_fmadd_ps(x, b1, c21);
        x = _mm256_broadcast_ss(a + 3), c30 = _mm256_fmadd_ps(x, b0, c30), c31 = _mm256_fmadd_ps(x, b1, c31);
        x = _mm256_broadcast_ss(a + 4), c40 = _mm256_fmadd_ps(x, b0, c40), c41 = _mm256_fmadd_ps(x, b1, c41);
        x = _mm256_broadcast_ss(a + 5), c50 = _mm256_fmadd_ps(x, b0, c50), c51 = _mm256_fmadd_ps(x, b1, c51);
    }
    if (rows == MR && cols == NR) {
        const __m256 al = _mm256_set1_ps(alpha);
#define PUT(r, lo, hi)                                                                                   \
    do {                                                                                                 \
        __m256 vl = _mm256_mul_ps(al, lo), vh = _mm256_mul_ps(al, hi);                                   \
        if (add) vl = _mm256_add_ps(_mm256_loadu_ps(c + r * ldc), vl);                                   \
        if (add) vh = _mm256_add_ps(_mm256_loadu_ps(c + r * ldc + 8), vh);                               \
        _mm256_storeu_ps(c + r * ldc, vl), _mm256_storeu_ps(c + r * ldc + 8, vh);                        \
    } while (0)
        PUT(0, c00, c01);
        PUT(1, c10, c11);
        PUT(2, c20, c21);
        PUT(3, c30, c31);
        PUT(4, c40, c41);
        PUT(5, c50, c51);
#undef PUT
        return;
    }
    float t[MR * NR];
    _mm256_storeu_ps(t + 0 * NR, c00), _mm256_storeu_ps(t + 0 * NR + 8, c01);
    _mm256_storeu_ps(t + 1 * NR, c10), _mm256_storeu_ps(t + 1 * NR + 8, c11);
    _mm256_storeu_ps(t + 2 * NR, c20), _mm256_storeu_ps(t + 2 * NR + 8, c21);
    _mm256_storeu_ps(t + 3 * NR, c30), _mm256_storeu_ps(t + 3 * NR + 8, c31);
    _mm256_storeu_ps(t + 4 * NR, c40), _mm256_storeu_ps(t + 4 * NR + 8, c41);
    _mm256_storeu_ps(t + 5 * NR, c50), _mm256_storeu_ps(t + 5 * NR + 8, c51);
    put_partial(c, ldc, t, rows, cols, alpha, add);
#else
    float t[MR * NR] = {0};
    for (int k = 0; k < kc; k++, a += MR, b += NR)
        for (int r = 0; r < MR; r++)
            for (int j = 0; j < NR; j++) t[r * NR + j] += a[r] * b[j];
    put_partial(c, ldc, t, rows, cols, alpha, add);
#endif
}

static void gemm(float *Y, int R, int M, View A, View B, int K, float alpha, int accumulate) {
    if (R <= 0 || M <= 0) return;
    if (K <= 0) {
        if (!accumulate)
            for (int r = 0; r < R; r++) memset(Y + (size_t)r * M, 0, sizeof(float) * (size_t)M);
        return;
    }
    // Sized to the problem: small products take small buffers.
    const int kcmax = imin(K, KC), rbmax = (imin(R, RB) + MR - 1) / MR * MR, ncmax = (imin(M, NC) + NR - 1) / NR * NR;
    float *pa = xmalloc(sizeof(float) * (size_t)rbmax * kcmax), *pb = xmalloc(sizeof(float) * (size_t)kcmax * ncmax);
    const long work = (long)R * M * K;
    const int b_by_rows = B.p && B.cs == 1;
#pragma omp parallel if (work > 65536)
    for (int r0 = 0; r0 < R; r0 += RB) {
        const int rb = imin(R - r0, RB), npa = (rb + MR - 1) / MR, nti = (rb + MC - 1) / MC;
        for (int c0 = 0; c0 < M; c0 += NC) {
            const int nc = imin(M - c0, NC), npb = (nc + NR - 1) / NR;
            // Tiles of MC rows by tw columns, narrowed until there are a few per thread.
            int tw = NT;
            while (tw > NR && (long)nti * ((nc + tw - 1) / tw) < 4) tw /= 2;
            const int ntj = (nc + tw - 1) / tw;
            for (int k0 = 0; k0 < K; k0 += KC) {
                const int kc = imin(K - k0, KC), add = accumulate || k0 > 0;  // later slices add
                // Work units: A's panels, then B's panels, or B's rows KB at a time where they
                // are contiguous along m. Those row units cost about ten A panels each, so they
                // are dealt out in turn: in halves, the thread with all of B's rows would pack
                // most of the bytes while the other waits (dinp's products were 10% slower).
                // Panels of similar cost keep contiguous halves, which read W in fewer streams.
                const int nu = npa + (b_by_rows ? (kc + KB - 1) / KB : npb), nt = omp_get_num_threads();
                const int chunk = b_by_rows ? 1 : (nu + nt - 1) / nt;
#pragma omp for schedule(static, chunk)
                for (int p = 0; p < nu; p++) {
                    if (p < npa) pack_a_panel(pa + (size_t)p * kc * MR, A, r0 + p * MR, imin(MR, rb - p * MR), k0, kc);
                    else if (b_by_rows) pack_b_rows(pb, B, k0, kc, c0, nc, (p - npa) * KB, imin(KB, kc - (p - npa) * KB));
                    else pack_b_panel(pb + (size_t)(p - npa) * kc * NR, B, k0, kc, c0 + (p - npa) * NR, imin(NR, nc - (p - npa) * NR));
                }
#pragma omp for collapse(2) schedule(dynamic, 1)
                for (int ti = 0; ti < nti; ti++)
                    for (int tj = 0; tj < ntj; tj++) {
                        const int i1 = imin(rb, (ti + 1) * MC), j1 = imin(nc, (tj + 1) * tw);
                        for (int j = tj * tw; j < j1; j += NR)
                            for (int i = ti * MC; i < i1; i += MR)
                                kernel_6x16(kc, pa + (size_t)(i / MR) * kc * MR, pb + (size_t)(j / NR) * kc * NR,
                                            Y + (size_t)(r0 + i) * M + c0 + j, (size_t)M, imin(MR, rb - i),
                                            imin(NR, nc - j), alpha, add);
                    }
            }
        }
    }
    free(pa);
    free(pb);
}

// Few rows (decoding, short prompts): packing would cost more than it saves. Each weight row is
// read from memory once and used, from L1, by every input row, four rows at a time.
//
// Every row's dot product runs in one fixed order, whatever the weight type and however many rows
// are computed together: a row's result never depends on the rows beside it, and fp32 and bf16
// weights holding the same values give the same bits. The order is the one that widens bf16
// cheapest. A 32-bit lane of 16 loaded bf16 values holds an even element in its low half and the
// next odd one in its high half, so a shift and a mask give the even and the odd elements in two
// registers, matched by a pre-permuted input: ap[16j .. 16j+7] = a[16j + 0, 2, .., 14],
// ap[16j+8 .. 16j+15] = a[16j + 1, 3, .., 15]. Per row: two 8-lane accumulators (even, odd) of
// fused multiply-adds, their sum reduced across lanes, then the tail. fp32 weights are read in
// their natural order against the natural input instead (and Q8 ones, dequantized exactly, the
// same way): each lane then accumulates the same products in the same sequence, only in another
// lane, and the lanes are put in the bf16 order once, before the reduction. This differs from the
// packed GEMM's order within fp32 rounding.
static void permute_even_odd(float *ap, const float *a, int n) {
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 8; j++) ap[i + j] = a[i + 2 * j], ap[i + 8 + j] = a[i + 2 * j + 1];
    for (; i < n; i++) ap[i] = a[i];
}

#if defined(__AVX2__) && defined(__FMA__)
// Accumulators of elements 0..7 and 8..15 of each 16 -> of the even and of the odd elements, in
// the bf16 path's lanes: [x0 x2 x8 x10 | x4 x6 x12 x14] -> 64-bit pieces 0, 2, 1, 3.
static inline void even_odd_lanes(__m256 *lo, __m256 *hi) {
    __m256 e = _mm256_shuffle_ps(*lo, *hi, _MM_SHUFFLE(2, 0, 2, 0)), o = _mm256_shuffle_ps(*lo, *hi, _MM_SHUFFLE(3, 1, 3, 1));
    *lo = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0)));
    *hi = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), _MM_SHUFFLE(3, 1, 2, 0)));
}
#endif


// How far ahead of its loads a bf16 weight row is prefetched. With the hardware prefetcher alone,
// one decoding row of bf16 weights read at about 85% of the rate of f32 ones: a 2 KB row's loads
// end in a reduction that holds back the next row's. 1 KB ahead made `paw generate` 10% faster at
// the 0.6B shape on the CPU machine (2 KB gained nothing). f32 rows were slower with the hint, and
// q8w rows, bound by their dequantizing, no faster; q8q rows (one byte a weight, no widening) read
// 1.2x faster with it. A hint past a row's end only warms the next row (prefetches never fault).
#ifndef MATMUL_PREFETCH_BYTES
#define MATMUL_PREFETCH_BYTES 1024
#endif

static inline float weight_at(const void *w, const float *wd, int wt, int k) {
    return wt == W_BF16 ? st_bf16_to_f32(((const uint16_t *)w)[k])
           : wt == W_Q8 ? wd[k / 32] * (float)((const int8_t *)w)[k]
                        : ((const float *)w)[k];
}

#if defined(__AVX2__) && defined(__FMA__)
// The lanes of dot(ap + r * lda, w) over the whole 16-element chunks of n, for R input rows
// (1..4) and one weight row of type wt (wd: a Q8 row's scales), put in the bf16 order: v[r]'s
// hsum8 is the chunks' sum. R and wt are constants after inlining.
static inline __attribute__((always_inline)) void dot_lanes(__m256 *v, const float *ap, size_t lda, int R,
                                                            const void *w, const float *wd, int wt, int n) {
    const int bf16 = wt == W_BF16;
    __m256 e0 = _mm256_setzero_ps(), o0 = e0, e1 = e0, o1 = e0, e2 = e0, o2 = e0, e3 = e0, o3 = e0;
    const __m256i high = _mm256_set1_epi32((int)0xffff0000u);
    for (int i = 0; i + 16 <= n; i += 16) {
        __m256 we, wo;  // bf16: the even and the odd elements; fp32: elements 0..7 and 8..15
        if (bf16) {
            _mm_prefetch((const char *)w + (size_t)i * 2 + MATMUL_PREFETCH_BYTES, _MM_HINT_T0);
            __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)w + i));
            we = _mm256_castsi256_ps(_mm256_slli_epi32(h, 16));
            wo = _mm256_castsi256_ps(_mm256_and_si256(h, high));
        } else if (wt == W_Q8) {  // n is a multiple of 32: these 16 share one scale
            __m128i q = _mm_loadu_si128((const __m128i *)((const int8_t *)w + i));
            __m256 d = _mm256_set1_ps(wd[i / 32]);
            we = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), d);
            wo = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q, 8))), d);
        } else {
            we = _mm256_loadu_ps((const float *)w + i);
            wo = _mm256_loadu_ps((const float *)w + i + 8);
        }
        e0 = _mm256_fmadd_ps(_mm256_loadu_ps(ap + i), we, e0);
        o0 = _mm256_fmadd_ps(_mm256_loadu_ps(ap + i + 8), wo, o0);
        if (R > 1) {
            e1 = _mm256_fmadd_ps(_mm256_loadu_ps(ap + lda + i), we, e1);
            o1 = _mm256_fmadd_ps(_mm256_loadu_ps(ap + lda + i + 8), wo, o1);
        }
        if (R > 2) {
            e2 = _mm256_fmadd_ps(_mm256_loadu_ps(ap + 2 * lda + i), we, e2);
            o2 = _mm256_fmadd_ps(_mm256_loadu_ps(ap + 2 * lda + i + 8), wo, o2);
        }
        if (R > 3) {
            e3 = _mm256_fmadd_ps(_mm256_loadu_ps(ap + 3 * lda + i), we, e3);
            o3 = _mm256_fmadd_ps(_mm256_loadu_ps(ap + 3 * lda + i + 8), wo, o3);
        }
    }
    if (!bf16) {
        even_odd_lanes(&e0, &o0);
        if (R > 1) even_odd_lanes(&e1, &o1);
        if (R > 2) even_odd_lanes(&e2, &o2);
        if (R > 3) even_odd_lanes(&e3, &o3);
    }
    v[0] = _mm256_add_ps(e0, o0);
    if (R > 1) v[1] = _mm256_add_ps(e1, o1);
    if (R > 2) v[2] = _mm256_add_ps(e2, o2);
    if (R > 3) v[3] = _mm256_add_ps(e3, o3);
}

// dot_lanes of Q8 weights for W weight rows at once against R input rows, W * R = 4 (one input
// row against four weight rows, or two against two): v[j * R + r] is weight row j's lanes
// against input row r. One weight row against one or two input rows makes only two or four
// chains of dependent multiply-adds, each step waiting out the latency of the one before (4
// cycles), and Q8's dequantizing lengthens the loop: one row of Q8 weights was read at about half
// the memory's rate. Eight chains give the core independent work (one row 1.25x faster, two rows
// 1.1x). Each chain adds the same products in the same order as in dot_lanes: the same bits. (bf16 and f32 rows, bound by the memory already, read no
// faster this way: one or two bf16 rows 1.2x slower in the same scratch loop.)
static inline __attribute__((always_inline)) void q8_dot_lanes_wide(__m256 *v, const float *ap, size_t lda, int R,
                                                                    const int8_t *const *w, const float *const *wd,
                                                                    int W, int n) {
    __m256 e[4], o[4];
    for (int q = 0; q < 4; q++) e[q] = o[q] = _mm256_setzero_ps();
    for (int i = 0; i + 16 <= n; i += 16) {
        __m256 ae[2], ao[2];
#pragma GCC unroll 2
        for (int r = 0; r < R; r++)
            ae[r] = _mm256_loadu_ps(ap + r * lda + i), ao[r] = _mm256_loadu_ps(ap + r * lda + i + 8);
#pragma GCC unroll 4
        for (int j = 0; j < W; j++) {
            // The same place in the next W rows: read side by side, the rows are W short streams,
            // which the hardware prefetcher follows worse than the one long stream of one row
            // after the other (1.4x slower than this without the hint).
            _mm_prefetch((const char *)(w[j] + (size_t)W * n + i), _MM_HINT_T0);
            __m128i q = _mm_loadu_si128((const __m128i *)(w[j] + i));
            __m256 d = _mm256_set1_ps(wd[j][i / 32]);
            __m256 we = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), d);
            __m256 wo = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q, 8))), d);
#pragma GCC unroll 2
            for (int r = 0; r < R; r++) {
                e[j * R + r] = _mm256_fmadd_ps(ae[r], we, e[j * R + r]);
                o[j * R + r] = _mm256_fmadd_ps(ao[r], wo, o[j * R + r]);
            }
        }
    }
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++) {
        even_odd_lanes(&e[q], &o[q]);
        v[q] = _mm256_add_ps(e[q], o[q]);
    }
}

// Lane j of the result is hsum8(v[j]), in hsum8's order of additions: (v0 + v4) and (v2 + v6)
// first, then their sum with that of (v1 + v5) and (v3 + v7). Eight reductions in 11 shuffles
// and 7 additions instead of 8 x 5 instructions and 8 scalar stores.
static inline __m256 hsum8x8(const __m256 v[8]) {
    __m256 s[4];
    for (int p = 0; p < 4; p++)  // [v_2p lanes 0-3 + 4-7 | v_2p+1 lanes 0-3 + 4-7]
        s[p] = _mm256_add_ps(_mm256_permute2f128_ps(v[2 * p], v[2 * p + 1], 0x20),
                             _mm256_permute2f128_ps(v[2 * p], v[2 * p + 1], 0x31));
    // [v0: q0+q2, q1+q3, v2: .. | v1: .., v3: ..], and the same for v4..v7
    __m256 t0 = _mm256_add_ps(_mm256_shuffle_ps(s[0], s[1], _MM_SHUFFLE(1, 0, 1, 0)),
                              _mm256_shuffle_ps(s[0], s[1], _MM_SHUFFLE(3, 2, 3, 2)));
    __m256 t1 = _mm256_add_ps(_mm256_shuffle_ps(s[2], s[3], _MM_SHUFFLE(1, 0, 1, 0)),
                              _mm256_shuffle_ps(s[2], s[3], _MM_SHUFFLE(3, 2, 3, 2)));
    // [v0 v2 v4 v6 | v1 v3 v5 v7]
    __m256 z = _mm256_add_ps(_mm256_shuffle_ps(t0, t1, _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm256_shuffle_ps(t0, t1, _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm256_permutevar8x32_ps(z, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}
#endif

// s[r] = dot(ap + r * lda, w) for R input rows (1..4) and one weight row of n elements of type wt
// (wd: a Q8 row's scales). R and wt are constants after inlining.
static inline __attribute__((always_inline)) void dots(float *s, const float *ap, size_t lda, int R, const void *w,
                                                       const float *wd, int wt, int n) {
    int i = 0;
#if defined(__AVX2__) && defined(__FMA__)
    __m256 v[4];
    dot_lanes(v, ap, lda, R, w, wd, wt, n);
    for (int r = 0; r < R; r++) s[r] = hsum8(v[r]);
    i = n / 16 * 16;
#else
    for (int r = 0; r < R; r++) s[r] = 0;
    for (; i + 16 <= n; i += 16)
        for (int r = 0; r < R; r++)
            for (int j = 0; j < 8; j++)
                s[r] += ap[r * lda + i + j] * weight_at(w, wd, wt, i + 2 * j) +
                        ap[r * lda + i + 8 + j] * weight_at(w, wd, wt, i + 2 * j + 1);
#endif
    for (int r = 0; r < R; r++)
        for (int k = i; k < n; k++) s[r] += ap[r * lda + k] * weight_at(w, wd, wt, k);
}

// A weight row's start, and its Q8 scales (NULL for other types).
static inline const void *weight_row(const void *weight, const float *scales, int wt, size_t e, const float **wd) {
    *wd = wt == W_Q8 ? scales + e / 32 : NULL;
    return wt == W_BF16 ? (const void *)((const uint16_t *)weight + e)
           : wt == W_Q8 ? (const void *)((const int8_t *)weight + e)
                        : (const void *)((const float *)weight + e);
}

// Output column o of all N rows, four rows per read of weight row o.
static inline __attribute__((always_inline)) void gemv_column(float *out, const float *ap, const void *weight,
                                                              const float *scales, int wt, int N, int C, int OC,
                                                              float alpha, int acc, int o) {
    const float *wd;
    const void *w = weight_row(weight, scales, wt, (size_t)o * C, &wd);
    for (int n0 = 0; n0 < N; n0 += 4) {
        float v[4];
        const float *a = ap + (size_t)n0 * C;
        switch (N - n0 < 4 ? N - n0 : 4) {
        case 1: dots(v, a, (size_t)C, 1, w, wd, wt, C); break;
        case 2: dots(v, a, (size_t)C, 2, w, wd, wt, C); break;
        case 3: dots(v, a, (size_t)C, 3, w, wd, wt, C); break;
        default: dots(v, a, (size_t)C, 4, w, wd, wt, C); break;
        }
        for (int r = 0; r < 4 && n0 + r < N; r++) {
            float *d = out + (size_t)(n0 + r) * OC + o;
            *d = acc ? *d + alpha * v[r] : alpha * v[r];
        }
    }
}

#if defined(__AVX2__) && defined(__FMA__)
// Output columns o .. o + W - 1 of N = 4 / W rows (1 or 2), Q8 weights: gemv_column's bits, the
// weight rows read together (q8_dot_lanes_wide).
static inline __attribute__((always_inline)) void q8_gemv_columns_wide(float *out, const float *ap,
                                                                       const int8_t *weight, const float *scales,
                                                                       int N, int C, int OC, float alpha, int acc,
                                                                       int o, int W) {
    const int8_t *w[4];
    const float *wd[4];
    for (int j = 0; j < W; j++) w[j] = weight + (size_t)(o + j) * C, wd[j] = scales + (size_t)(o + j) * C / 32;
    __m256 v[4];
    q8_dot_lanes_wide(v, ap, (size_t)C, N, w, wd, W, C);
    for (int j = 0; j < W; j++)
        for (int r = 0; r < N; r++) {
            float s = hsum8(v[j * N + r]);  // then the tail, as dots() adds it
            for (int k = C / 16 * 16; k < C; k++) s += ap[(size_t)r * C + k] * weight_at(w[j], wd[j], W_Q8, k);
            float *d = out + (size_t)r * OC + o + j;
            *d = acc ? *d + alpha * s : alpha * s;
        }
}
#endif

// Below this many multiply-adds a product runs on one thread. A LoRA's products in a decoding step
// (64 x 1024 and the like) ran 1.4x faster on this machine at this limit than at 65536; 4096
// gained no more.
#define GEMV_PARALLEL_MIN 16384
// Weight rows up to this long with C % 16 == 0 (a LoRA's B, whose rows are r long) go eight at a
// time through hsum8x8: their reductions, not their few multiply-adds, were most of their cost.
#define GEMV_SHORT_C 256

#if defined(__AVX2__) && defined(__FMA__)
// Output columns 8 * ob .. 8 * ob + 7 of all N rows: gemv_column's bits, eight reductions at once.
static inline __attribute__((always_inline)) void gemv_eight_columns(float *out, const float *ap, const void *weight,
                                                                     const float *scales, int wt, int N, int C, int OC,
                                                                     float alpha, int acc, int ob) {
    for (int n0 = 0; n0 < N; n0 += 4) {
        const int R = N - n0 < 4 ? N - n0 : 4;
        const float *a = ap + (size_t)n0 * C;
        __m256 v[4][8];
        for (int j = 0; j < 8; j++) {
            const float *wd;
            const void *w = weight_row(weight, scales, wt, (size_t)(ob * 8 + j) * C, &wd);
            __m256 t[4];
            switch (R) {
            case 1: dot_lanes(t, a, (size_t)C, 1, w, wd, wt, C); break;
            case 2: dot_lanes(t, a, (size_t)C, 2, w, wd, wt, C); break;
            case 3: dot_lanes(t, a, (size_t)C, 3, w, wd, wt, C); break;
            default: dot_lanes(t, a, (size_t)C, 4, w, wd, wt, C); break;
            }
            for (int r = 0; r < R; r++) v[r][j] = t[r];
        }
        for (int r = 0; r < R; r++) {  // alpha * s, then the add, as gemv_column rounds them
            float *d = out + (size_t)(n0 + r) * OC + ob * 8;
            __m256 s = _mm256_mul_ps(_mm256_set1_ps(alpha), hsum8x8(v[r]));
            _mm256_storeu_ps(d, acc ? _mm256_add_ps(_mm256_loadu_ps(d), s) : s);
        }
    }
}
#endif

// One product of gemv_rows: out[N, OC] (+)= alpha * ap[N, C] @ weight^T.
typedef struct {
    float *out;
    const float *ap;
    const void *weight;
    const float *scales;
    const int8_t *qx;  // matmul_forward_q8q: the input rows rounded to Q8 blocks, and their scales
    const float *dx;
    int N, C, OC, acc;
    float alpha;
} Gemv;

// Output columns o0 .. o1 - 1 of a product, o0 a multiple of 8.
static inline __attribute__((always_inline)) void gemv_range(const Gemv *g, int wt, int o0, int o1) {
    float *out = g->out;
    const float *ap = g->ap;
    const void *weight = g->weight;
    const float *scales = g->scales;
    const int N = g->N, C = g->C, OC = g->OC, acc = g->acc;
    const float alpha = g->alpha;
    int o = o0;
#if defined(__AVX2__) && defined(__FMA__)
    if (C % 16 == 0 && C <= GEMV_SHORT_C)
        for (; o + 8 <= o1; o += 8) gemv_eight_columns(out, ap, weight, scales, wt, N, C, OC, alpha, acc, o / 8);
    else if (wt == W_Q8 && N == 1)
        for (; o + 4 <= o1; o += 4) q8_gemv_columns_wide(out, ap, weight, scales, 1, C, OC, alpha, acc, o, 4);
    else if (wt == W_Q8 && N == 2)
        for (; o + 2 <= o1; o += 2) q8_gemv_columns_wide(out, ap, weight, scales, 2, C, OC, alpha, acc, o, 2);
#endif
    for (; o < o1; o++) gemv_column(out, ap, weight, scales, wt, N, C, OC, alpha, acc, o);
}

// gemv_range for each weight type, wt a constant in each: the parallel region below is outlined
// once for all types, so the type must be fixed in the function it calls, not passed to it.
static void gemv_range_f32(const Gemv *g, int o0, int o1) { gemv_range(g, W_F32, o0, o1); }
static void gemv_range_bf16(const Gemv *g, int o0, int o1) { gemv_range(g, W_BF16, o0, o1); }
static void gemv_range_q8(const Gemv *g, int o0, int o1) { gemv_range(g, W_Q8, o0, o1); }

// Q8 weights against Q8-rounded input rows (matmul_forward_q8q): s[r] = the dot of weight row
// (w, wd) with rounded row r (qx + r * C, dx + r * C / 32), for R rows (1..4), in
// matmul_q8q_dot_reference's order. A block's 32 products are summed exactly in integers
// (maddubs: |w| as unsigned bytes times x carrying w's sign, pairs into 16 bits, at most 2 x 127 x
// 127; madd: pairs again into 32 bits, lane m holding elements 4m..4m+3), then scaled by
// wd[b] * dx[b] into accumulator b % 2: about half the instructions of widening each weight to
// fp32, which is what bound Q8's one-row products.
static inline __attribute__((always_inline)) void q8q_dots(float *s, const int8_t *w, const float *wd,
                                                           const int8_t *qx, const float *dx, int C, int R) {
    const int nb = C / 32;
#if defined(__AVX2__) && defined(__FMA__)
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 a[4][2];
    for (int r = 0; r < R; r++) a[r][0] = a[r][1] = _mm256_setzero_ps();
    for (int b0 = 0; b0 < nb; b0 += 2) {
#pragma GCC unroll 2
        for (int k = 0; k < 2; k++) {  // k is the accumulator, b % 2, once unrolled
            const int b = b0 + k;
            if (b == nb) break;
            if (k == 0) _mm_prefetch((const char *)(w + (size_t)b * 32 + MATMUL_PREFETCH_BYTES), _MM_HINT_T0);
            __m256i wv = _mm256_loadu_si256((const __m256i *)(w + (size_t)b * 32)), aw = _mm256_sign_epi8(wv, wv);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                __m256i xv = _mm256_loadu_si256((const __m256i *)(qx + (size_t)r * C + (size_t)b * 32));
                __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(xv, wv)), ones);
                a[r][k] = _mm256_fmadd_ps(_mm256_set1_ps(wd[b] * dx[(size_t)r * nb + b]), _mm256_cvtepi32_ps(p),
                                          a[r][k]);
            }
        }
    }
    for (int r = 0; r < R; r++) s[r] = hsum8(_mm256_add_ps(a[r][0], a[r][1]));
#else
    for (int r = 0; r < R; r++) s[r] = matmul_q8q_dot_reference(w, wd, qx + (size_t)r * C, dx + (size_t)r * nb, C);
#endif
}

// Output columns o0 .. o1 - 1 of a q8q product, each weight row read once for four input rows.
static void gemv_range_q8q(const Gemv *g, int o0, int o1) {
    const int N = g->N, C = g->C, OC = g->OC;
    for (int o = o0; o < o1; o++) {
        const int8_t *w = (const int8_t *)g->weight + (size_t)o * C;
        const float *wd = g->scales + (size_t)o * C / 32;
        for (int n0 = 0; n0 < N; n0 += 4) {
            float v[4];
            const int8_t *qx = g->qx + (size_t)n0 * C;
            const float *dx = g->dx + (size_t)n0 * C / 32;
            const int R = N - n0 < 4 ? N - n0 : 4;
            switch (R) {
            case 1: q8q_dots(v, w, wd, qx, dx, C, 1); break;
            case 2: q8q_dots(v, w, wd, qx, dx, C, 2); break;
            case 3: q8q_dots(v, w, wd, qx, dx, C, 3); break;
            default: q8q_dots(v, w, wd, qx, dx, C, 4); break;
            }
            for (int r = 0; r < R; r++) {
                float *d = g->out + (size_t)(n0 + r) * OC + o;
                *d = g->acc ? *d + g->alpha * v[r] : g->alpha * v[r];
            }
        }
    }
}

// The product's columns in eights shared out evenly (static) among the threads.
static void gemv_parallel(void (*range)(const Gemv *, int, int), const Gemv *g) {
    const int units = (g->OC + 7) / 8;
#pragma omp parallel if ((long)g->N * g->C * g->OC > GEMV_PARALLEL_MIN)
    {
        const int nt = omp_get_num_threads(), t = omp_get_thread_num();
        const int o0 = (int)((long)units * t / nt) * 8, o1 = (int)((long)units * (t + 1) / nt) * 8;
        if (o0 < g->OC) range(g, o0, o1 < g->OC ? o1 : g->OC);
    }
}

static void gemv_rows(float *out, const float *inp, const void *weight, const float *scales, int wt, int N, int C,
                      int OC, float alpha, int acc) {
    float *ap = NULL;  // the input permuted for the bf16 order, where the weights need it
#if defined(__AVX2__) && defined(__FMA__)
    if (wt == W_BF16)  // f32 and q8 weights are read in the natural order (see above)
#endif
    {
        ap = xmalloc_line(sizeof(float) * (size_t)N * C);
        for (int n = 0; n < N; n++) permute_even_odd(ap + (size_t)n * C, inp + (size_t)n * C, C);
    }
    Gemv g = {.out = out, .ap = ap ? ap : inp, .weight = weight, .scales = scales, .N = N, .C = C, .OC = OC,
              .acc = acc, .alpha = alpha};
    gemv_parallel(wt == W_BF16 ? gemv_range_bf16 : wt == W_Q8 ? gemv_range_q8 : gemv_range_f32, &g);
    free(ap);
}

// out (+= alpha * when acc, else =) inp[N, C] @ weight^T, weight [OC, C] of type wt: one-row
// products up to MATMUL_GEMV_MAX_ROWS rows, the packed GEMM above.
static void forward_products(float *out, const float *inp, const void *weight, const float *scales, int wt, int N,
                             int C, int OC, float alpha, int acc) {
    if (N <= MATMUL_GEMV_MAX_ROWS) {
        gemv_rows(out, inp, weight, scales, wt, N, C, OC, alpha, acc);
        return;
    }
    // B(k, m) = weight[m, k]
    View B = wt == W_BF16 ? hview(weight, 1, (size_t)C)
             : wt == W_Q8 ? qview(weight, scales, 1, (size_t)C)
                          : fview(weight, 1, (size_t)C);
    gemm(out, N, OC, fview(inp, (size_t)C, 1), B, C, alpha, acc);
}

void matmul_forward(float *out, const float *inp, const float *weight, int N, int C, int OC) {
    forward_products(out, inp, weight, NULL, W_F32, N, C, OC, 1.0f, 0);
}

void matmul_forward_acc(float *out, const float *inp, const float *weight, int N, int C, int OC, float alpha) {
    forward_products(out, inp, weight, NULL, W_F32, N, C, OC, alpha, 1);
}

void matmul_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight, int N, int C,
                     int OC) {
    // dinp[N, C] += dout[N, OC] @ weight[OC, C]
    if (dinp) gemm(dinp, N, C, fview(dout, (size_t)OC, 1), fview(weight, (size_t)C, 1), OC, 1.0f, 1);
    // dweight[OC, C] += dout^T[OC, N] @ inp[N, C]
    if (dweight) gemm(dweight, OC, C, fview(dout, 1, (size_t)OC), fview(inp, (size_t)C, 1), N, 1.0f, 1);
}

void matmul_forward_bf16w(float *out, const float *inp, const uint16_t *weight, int N, int C, int OC) {
    forward_products(out, inp, weight, NULL, W_BF16, N, C, OC, 1.0f, 0);
}

void matmul_forward_bf16w_acc(float *out, const float *inp, const uint16_t *weight, int N, int C, int OC, float alpha) {
    forward_products(out, inp, weight, NULL, W_BF16, N, C, OC, alpha, 1);
}

void matmul_forward_q8w(float *out, const float *inp, const int8_t *q, const float *d, int N, int C, int OC) {
    forward_products(out, inp, q, d, W_Q8, N, C, OC, 1.0f, 0);
}

void matmul_forward_q8w_acc(float *out, const float *inp, const int8_t *q, const float *d, int N, int C, int OC,
                            float alpha) {
    forward_products(out, inp, q, d, W_Q8, N, C, OC, alpha, 1);
}

void matmul_q8_round_row(const float *x, int C, int8_t *q, float *d) {
    for (int b = 0; b < C / 32; b++) {
        const float *xb = x + (size_t)b * 32;
        int8_t *qb = q + (size_t)b * 32;
        float amax = 0.0f;
        int bad = 0;  // a NaN or an infinity: the block's scale is NaN, so its products are too
#if defined(__AVX2__) && defined(__FMA__)
        const __m256 sign = _mm256_set1_ps(-0.0f), big = _mm256_set1_ps(FLT_MAX);
        __m256 m = _mm256_setzero_ps(), nf = m;
        for (int j = 0; j < 32; j += 8) {
            __m256 a = _mm256_andnot_ps(sign, _mm256_loadu_ps(xb + j));
            m = _mm256_max_ps(m, a);
            nf = _mm256_or_ps(nf, _mm256_cmp_ps(a, big, _CMP_NLE_UQ));
        }
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        amax = _mm_cvtss_f32(_mm_max_ss(h, _mm_movehdup_ps(h)));
        bad = _mm256_movemask_ps(nf) != 0;
#else
        for (int j = 0; j < 32; j++) {
            const float a = fabsf(xb[j]);
            if (!(a <= FLT_MAX)) bad = 1;
            else if (a > amax) amax = a;
        }
#endif
        if (bad) {
            d[b] = NAN;
            memset(qb, 0, 32);
            continue;
        }
        // A scale below FLT_MIN would make 1 / d overflow: such a block (largest magnitude under
        // 1.5e-36) rounds to zero, as an all-zero one.
        const float db = amax / 127.0f >= FLT_MIN ? amax / 127.0f : 0.0f, id = db != 0.0f ? 1.0f / db : 0.0f;
        d[b] = db;
        // |x * id| <= 127 * (1 + 2^-23), so the nearest integer is within int8's range.
#if defined(__AVX2__) && defined(__FMA__)
        const __m256 vid = _mm256_set1_ps(id);
        __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb), vid));  // nearest, ties to even
        __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb + 8), vid));
        __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb + 16), vid));
        __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb + 24), vid));
        // The packs interleave the 128-bit halves: 32-bit groups come out as 0 2 4 6 1 3 5 7.
        __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
        p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)qb, p);
#else
        for (int j = 0; j < 32; j++) qb[j] = (int8_t)lrintf(xb[j] * id);
#endif
    }
}

float matmul_q8q_dot_reference(const int8_t *q, const float *d, const int8_t *qx, const float *dx, int C) {
    float acc[2][8] = {{0}};
    for (int b = 0; b < C / 32; b++) {
        const float s = d[b] * dx[b];
        for (int m = 0; m < 8; m++) {
            int32_t isum = 0;
            for (int i = 4 * m; i < 4 * m + 4; i++) isum += (int32_t)q[(size_t)b * 32 + i] * qx[(size_t)b * 32 + i];
            acc[b & 1][m] = fmaf(s, (float)isum, acc[b & 1][m]);
        }
    }
    float v[8];
    for (int m = 0; m < 8; m++) v[m] = acc[0][m] + acc[1][m];
    return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
}

// The rounded rows as int8 values and scales, in one line-aligned buffer: qx then dx.
static int8_t *round_rows(const float *inp, int N, int C, float **dx) {
    const size_t nq = (size_t)N * C, head = (nq + 63) / 64 * 64;
    int8_t *qx = xmalloc_line(head + sizeof(float) * nq / 32);
    *dx = (float *)(qx + head);
    for (int n = 0; n < N; n++) matmul_q8_round_row(inp + (size_t)n * C, C, qx + (size_t)n * C, *dx + (size_t)n * C / 32);
    return qx;
}

static void q8q_products(float *out, const float *inp, const int8_t *q, const float *d, int N, int C, int OC,
                         float alpha, int acc) {
    if (C % 32) paw_die("matmul_forward_q8q: C = %d is not a multiple of 32", C);
    float *dx;
    int8_t *qx = round_rows(inp, N, C, &dx);
    if (N <= MATMUL_GEMV_MAX_ROWS) {
        Gemv g = {.out = out, .weight = q, .scales = d, .qx = qx, .dx = dx, .N = N, .C = C, .OC = OC, .acc = acc,
                  .alpha = alpha};
        gemv_parallel(gemv_range_q8q, &g);
    } else {  // the packed GEMM on the rounded inputs' values
        float *xr = xmalloc_big(sizeof(float) * (size_t)N * C);
        for (size_t i = 0; i < (size_t)N * C; i++) xr[i] = dx[i / 32] * (float)qx[i];
        gemm(out, N, OC, fview(xr, (size_t)C, 1), qview(q, d, 1, (size_t)C), C, alpha, acc);
        free(xr);
    }
    free(qx);
}

void matmul_forward_q8q(float *out, const float *inp, const int8_t *q, const float *d, int N, int C, int OC) {
    q8q_products(out, inp, q, d, N, C, OC, 1.0f, 0);
}

void matmul_forward_q8q_acc(float *out, const float *inp, const int8_t *q, const float *d, int N, int C, int OC,
                            float alpha) {
    q8q_products(out, inp, q, d, N, C, OC, alpha, 1);
}
