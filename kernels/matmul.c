#include "kernels/matmul.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

#include "common/error.h"

// One packed GEMM serves the forward and both backward products:
//     Y[R, M] (+)= alpha * sum_k A(r, k) * B(k, m)
// with A and B read through (row, column) strides, so transposed operands are never copied
// whole. Y is cut into MC x NC tiles spread over the threads (each tile has one writer: no
// races, and the same bits on every run). Per tile and per KC-slice of k, the A and B blocks are
// packed into contiguous panels, and a 6 x 16 micro-kernel keeps its output in 12 AVX registers
// while k streams through (the classic register blocking of BLIS-like GEMMs).

enum { MR = 6, NR = 16, MC = 96, NC = 128, KC = 256 };

typedef struct {
    const float *p;
    size_t rs, cs;  // element (i, j) at p[i * rs + j * cs]
} View;

static inline float at(View v, size_t i, size_t j) { return v.p[i * v.rs + j * v.cs]; }

// A block [mc, kc] -> panels of MR rows, k-major: a[(panel * kc + k) * MR + r]. Rows past mc are 0.
static void pack_a(float *dst, View A, int r0, int mc, int k0, int kc) {
    for (int p = 0; p < mc; p += MR, dst += (size_t)kc * MR) {
        int rows = mc - p < MR ? mc - p : MR;
        if (A.cs == 1) {
            // Rows are contiguous along k: read each row once, scatter into the panel.
            for (int r = 0; r < MR; r++) {
                const float *src = A.p + (size_t)(r0 + p + r) * A.rs + k0;
                if (r < rows)
                    for (int k = 0; k < kc; k++) dst[(size_t)k * MR + r] = src[k];
                else
                    for (int k = 0; k < kc; k++) dst[(size_t)k * MR + r] = 0.0f;
            }
        } else {
            for (int k = 0; k < kc; k++)
                for (int r = 0; r < MR; r++) dst[(size_t)k * MR + r] = r < rows ? at(A, (size_t)(r0 + p + r), (size_t)(k0 + k)) : 0.0f;
        }
    }
}

// B block [kc, nc] -> panels of NR columns, k-major: b[(panel * kc + k) * NR + j]. Columns past nc are 0.
static void pack_b(float *dst, View B, int k0, int kc, int c0, int nc) {
    for (int p = 0; p < nc; p += NR, dst += (size_t)kc * NR) {
        int cols = nc - p < NR ? nc - p : NR;
        if (B.cs == 1) {
            for (int k = 0; k < kc; k++) {
                const float *src = B.p + (size_t)(k0 + k) * B.rs + (c0 + p);
                float *d = dst + (size_t)k * NR;
                memcpy(d, src, sizeof(float) * (size_t)cols);
                for (int j = cols; j < NR; j++) d[j] = 0.0f;
            }
        } else if (B.rs == 1) {
            // Columns are contiguous along k (B is a transposed weight): read each once.
            for (int j = 0; j < NR; j++) {
                const float *src = B.p + (size_t)(c0 + p + j) * B.cs + k0;
                if (j < cols)
                    for (int k = 0; k < kc; k++) dst[(size_t)k * NR + j] = src[k];
                else
                    for (int k = 0; k < kc; k++) dst[(size_t)k * NR + j] = 0.0f;
            }
        } else {
            for (int k = 0; k < kc; k++)
                for (int j = 0; j < NR; j++) dst[(size_t)k * NR + j] = j < cols ? at(B, (size_t)(k0 + k), (size_t)(c0 + p + j)) : 0.0f;
        }
    }
}

// c[MR][NR] (row stride ldc) = sum_k a[k][r] * b[k][j] over kc steps.
static void kernel_6x16(int kc, const float *a, const float *b, float *c, size_t ldc) {
#if defined(__AVX2__) && defined(__FMA__)
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps(), c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps(), c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps(), c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
    for (int k = 0; k < kc; k++, a += MR, b += NR) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8), x;
        x = _mm256_broadcast_ss(a + 0), c00 = _mm256_fmadd_ps(x, b0, c00), c01 = _mm256_fmadd_ps(x, b1, c01);
        x = _mm256_broadcast_ss(a + 1), c10 = _mm256_fmadd_ps(x, b0, c10), c11 = _mm256_fmadd_ps(x, b1, c11);
        x = _mm256_broadcast_ss(a + 2), c20 = _mm256_fmadd_ps(x, b0, c20), c21 = _mm256_fmadd_ps(x, b1, c21);
        x = _mm256_broadcast_ss(a + 3), c30 = _mm256_fmadd_ps(x, b0, c30), c31 = _mm256_fmadd_ps(x, b1, c31);
        x = _mm256_broadcast_ss(a + 4), c40 = _mm256_fmadd_ps(x, b0, c40), c41 = _mm256_fmadd_ps(x, b1, c41);
        x = _mm256_broadcast_ss(a + 5), c50 = _mm256_fmadd_ps(x, b0, c50), c51 = _mm256_fmadd_ps(x, b1, c51);
    }
    _mm256_storeu_ps(c + 0 * ldc, c00), _mm256_storeu_ps(c + 0 * ldc + 8, c01);
    _mm256_storeu_ps(c + 1 * ldc, c10), _mm256_storeu_ps(c + 1 * ldc + 8, c11);
    _mm256_storeu_ps(c + 2 * ldc, c20), _mm256_storeu_ps(c + 2 * ldc + 8, c21);
    _mm256_storeu_ps(c + 3 * ldc, c30), _mm256_storeu_ps(c + 3 * ldc + 8, c31);
    _mm256_storeu_ps(c + 4 * ldc, c40), _mm256_storeu_ps(c + 4 * ldc + 8, c41);
    _mm256_storeu_ps(c + 5 * ldc, c50), _mm256_storeu_ps(c + 5 * ldc + 8, c51);
#else
    float acc[MR][NR] = {{0}};
    for (int k = 0; k < kc; k++, a += MR, b += NR)
        for (int r = 0; r < MR; r++)
            for (int j = 0; j < NR; j++) acc[r][j] += a[r] * b[j];
    for (int r = 0; r < MR; r++)
        for (int j = 0; j < NR; j++) c[r * ldc + j] = acc[r][j];
#endif
}

static void gemm(float *Y, int R, int M, View A, View B, int K, float alpha, int accumulate) {
    if (R <= 0 || M <= 0) return;
    if (K <= 0) {
        if (!accumulate)
            for (int r = 0; r < R; r++) memset(Y + (size_t)r * M, 0, sizeof(float) * (size_t)M);
        return;
    }
    int nrt = (R + MC - 1) / MC, nct = (M + NC - 1) / NC;
    long work = (long)R * M * K;
#pragma omp parallel if (work > 65536)
    {
        float *pa = xmalloc(sizeof(float) * MC * KC), *pb = xmalloc(sizeof(float) * KC * NC);
        float tile[MR * NR];
#pragma omp for collapse(2) schedule(dynamic, 1)
        for (int ti = 0; ti < nrt; ti++) {
            for (int tj = 0; tj < nct; tj++) {
                int r0 = ti * MC, mc = R - r0 < MC ? R - r0 : MC;
                int c0 = tj * NC, nc = M - c0 < NC ? M - c0 : NC;
                for (int k0 = 0; k0 < K; k0 += KC) {
                    int kc = K - k0 < KC ? K - k0 : KC;
                    // The first k-slice overwrites (or scales into) Y, later slices add.
                    int add = accumulate || k0 > 0;
                    pack_a(pa, A, r0, mc, k0, kc);
                    pack_b(pb, B, k0, kc, c0, nc);
                    for (int i = 0; i < mc; i += MR) {
                        for (int j = 0; j < nc; j += NR) {
                            kernel_6x16(kc, pa + (size_t)i * kc, pb + (size_t)j * kc, tile, NR);
                            int rows = mc - i < MR ? mc - i : MR, cols = nc - j < NR ? nc - j : NR;
                            for (int r = 0; r < rows; r++) {
                                float *y = Y + (size_t)(r0 + i + r) * M + (c0 + j);
                                const float *t = tile + r * NR;
                                if (add)
                                    for (int q = 0; q < cols; q++) y[q] += alpha * t[q];
                                else
                                    for (int q = 0; q < cols; q++) y[q] = alpha * t[q];
                            }
                        }
                    }
                }
            }
        }
        free(pa);
        free(pb);
    }
}

// Few rows (decoding): packing would cost more than it saves; dot products read each weight row once.
static float dot(const float *a, const float *b, int n) {
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static void gemv_rows(float *out, const float *inp, const float *weight, int N, int C, int OC, float alpha, int acc) {
#pragma omp parallel for schedule(static) if ((long)N * C * OC > 65536)
    for (int o = 0; o < OC; o++) {
        const float *w = weight + (size_t)o * C;
        for (int n = 0; n < N; n++) {
            float v = alpha * dot(inp + (size_t)n * C, w, C);
            float *d = out + (size_t)n * OC + o;
            *d = acc ? *d + v : v;
        }
    }
}

void matmul_forward(float *out, const float *inp, const float *weight, int N, int C, int OC) {
    if (N < MR) {
        gemv_rows(out, inp, weight, N, C, OC, 1.0f, 0);
        return;
    }
    // B(k, m) = weight[m, k]
    gemm(out, N, OC, (View){inp, (size_t)C, 1}, (View){weight, 1, (size_t)C}, C, 1.0f, 0);
}

void matmul_forward_acc(float *out, const float *inp, const float *weight, int N, int C, int OC, float alpha) {
    if (N < MR) {
        gemv_rows(out, inp, weight, N, C, OC, alpha, 1);
        return;
    }
    gemm(out, N, OC, (View){inp, (size_t)C, 1}, (View){weight, 1, (size_t)C}, C, alpha, 1);
}

void matmul_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight, int N, int C,
                     int OC) {
    // dinp[N, C] += dout[N, OC] @ weight[OC, C]
    if (dinp) gemm(dinp, N, C, (View){dout, (size_t)OC, 1}, (View){weight, (size_t)C, 1}, OC, 1.0f, 1);
    // dweight[OC, C] += dout^T[OC, N] @ inp[N, C]
    if (dweight) gemm(dweight, OC, C, (View){dout, 1, (size_t)OC}, (View){inp, (size_t)C, 1}, N, 1.0f, 1);
}
