// CPU kernels against plain definitions: blocked matmul against the triple loop on sizes that
// are not multiples of the blocks, attention against the explicit T x T softmax, and every
// backward against central finite differences in double of its own forward.
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>

#include "common/error.h"
#include "common/rng.h"
#include "kernels/attention.h"
#include "kernels/crossentropy.h"
#include "kernels/embedding.h"
#include "kernels/lora.h"
#include "kernels/matmul.h"
#include "kernels/quant.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"
#include "model/safetensors.h"
#include "tests/testutil.h"

static float *randn(size_t n, unsigned long long seed, float scale) {
    PawRng r = {seed};
    float *v = xmalloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) v[i] = scale * paw_rng_normal(&r);
    return v;
}

Test(kernels, matmul_matches_triple_loop_on_awkward_sizes) {
    // The last four cross the GEMM's blocks: over 1152 rows, over 2048 columns, and k over one
    // 256-slice in the forward (and in dinp's and dweight's sums).
    int sizes[][3] = {{1, 1, 1},    {3, 5, 7},     {4, 4, 4},    {5, 17, 65},
                      {13, 64, 130}, {129, 33, 67}, {1200, 40, 20}, {40, 20, 2100},
                      {50, 600, 70}, {300, 30, 50}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int N = sizes[s][0], C = sizes[s][1], OC = sizes[s][2];
        float *x = randn((size_t)N * C, 1 + s, 1), *w = randn((size_t)OC * C, 2 + s, 1);
        float *out = xmalloc(sizeof(float) * (size_t)N * OC), *ref = xmalloc(sizeof(float) * (size_t)N * OC);
        for (size_t i = 0; i < (size_t)N * OC; i++) out[i] = NAN;  // an unwritten element fails
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OC; o++) {
                double acc = 0;
                for (int c = 0; c < C; c++) acc += (double)x[n * C + c] * w[o * C + c];
                ref[n * OC + o] = (float)acc;
            }
        matmul_forward(out, x, w, N, C, OC);
        cr_assert(rel_max(out, ref, (size_t)N * OC) < 1e-5, "forward %dx%dx%d: %g", N, C, OC,
                  rel_max(out, ref, (size_t)N * OC));
        matmul_forward_acc(out, x, w, N, C, OC, -1.0f);  // out - ref == 0
        for (size_t i = 0; i < (size_t)N * OC; i++) cr_assert(fabsf(out[i]) < 1e-4f);
        // Backward against the definitions.
        float *dout = randn((size_t)N * OC, 9 + s, 1);
        float *dx = xcalloc((size_t)N * C, sizeof(float)), *dw = xcalloc((size_t)OC * C, sizeof(float));
        matmul_backward(dx, dw, dout, x, w, N, C, OC);
        for (int n = 0; n < N; n++)
            for (int c = 0; c < C; c++) {
                double acc = 0;
                for (int o = 0; o < OC; o++) acc += (double)dout[n * OC + o] * w[o * C + c];
                cr_assert(fabs(dx[n * C + c] - acc) < 1e-4 * (1 + fabs(acc)));
            }
        for (int o = 0; o < OC; o++)
            for (int c = 0; c < C; c++) {
                double acc = 0;
                for (int n = 0; n < N; n++) acc += (double)dout[n * OC + o] * x[n * C + c];
                cr_assert(fabs(dw[o * C + c] - acc) < 1e-4 * (1 + fabs(acc)));
            }
        free(x), free(w), free(out), free(ref), free(dout), free(dx), free(dw);
    }
}

// bf16 weights: the fp32 products on the exactly widened weights (the definition), bit for bit,
// on sizes that cover the one-row path (N <= MATMUL_GEMV_MAX_ROWS: its 16-wide body, the scalar
// tail, groups of 1 to 4 rows) and the packed GEMM above it. Up to MATMUL_GEMV_MAX_ROWS, every
// row's result is also the bits of that row alone, with either weight type (a decoding batch
// gives each sequence what it would get by itself).
Test(kernels, matmul_bf16_weights_match_fp32_on_widened_weights) {
    int sizes[][3] = {{1, 1, 1},   {1, 15, 3},  {1, 16, 5},  {2, 17, 9},   {3, 48, 7},    {4, 40, 5},
                      {5, 100, 37}, {1, 1024, 33}, {6, 33, 17}, {7, 64, 19}, {9, 50, 11}, {13, 64, 130},
                      {31, 47, 9}, {32, 80, 21}, {33, 40, 9},  {129, 47, 67}, {40, 600, 40}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int N = sizes[s][0], C = sizes[s][1], OC = sizes[s][2];
        size_t nw = (size_t)OC * C, no = (size_t)N * OC;
        float *x = randn((size_t)N * C, 21 + s, 1), *w = randn(nw, 22 + s, 1), *b = randn(no, 23 + s, 1);
        uint16_t *w16 = xmalloc(sizeof(uint16_t) * nw);
        for (size_t i = 0; i < nw; i++) {
            w16[i] = st_f32_to_bf16(w[i]);
            w[i] = st_bf16_to_f32(w16[i]);
        }
        float *out = xmalloc(sizeof(float) * no), *ref = xmalloc(sizeof(float) * no);
        for (size_t i = 0; i < no; i++) out[i] = NAN;  // an unwritten element fails
        matmul_forward(ref, x, w, N, C, OC);
        matmul_forward_bf16w(out, x, w16, N, C, OC);
        cr_assert(memcmp(out, ref, sizeof(float) * no) == 0, "forward %dx%dx%d: %g", N, C, OC, rel_max(out, ref, no));
        // Accumulating with a scale: out = b + alpha * x @ w^T.
        memcpy(out, b, sizeof(float) * no);
        memcpy(ref, b, sizeof(float) * no);
        matmul_forward_acc(ref, x, w, N, C, OC, -0.5f);
        matmul_forward_bf16w_acc(out, x, w16, N, C, OC, -0.5f);
        cr_assert(memcmp(out, ref, sizeof(float) * no) == 0, "acc %dx%dx%d: %g", N, C, OC, rel_max(out, ref, no));
        if (N <= MATMUL_GEMV_MAX_ROWS)
            for (int k = 0; k < 2; k++) {
                if (k) matmul_forward(out, x, w, N, C, OC);
                else matmul_forward_bf16w(out, x, w16, N, C, OC);
                for (int n = 0; n < N; n++) {
                    if (k) matmul_forward(ref, x + (size_t)n * C, w, 1, C, OC);
                    else matmul_forward_bf16w(ref, x + (size_t)n * C, w16, 1, C, OC);
                    cr_assert(memcmp(out + (size_t)n * OC, ref, sizeof(float) * (size_t)OC) == 0, "%s row %d of %d",
                              k ? "f32" : "bf16", n, N);
                }
            }
        free(x), free(w), free(b), free(w16), free(out), free(ref);
    }
}

// The one-row products take several output columns at a time: short weight rows (a LoRA's B: rows
// of r) eight columns at a time, reduced together, and Q8 rows against one or two input rows four
// or two weight rows at a time, read side by side. Each column must still get the bits of the
// product with its weight row alone, for every weight type, row count, remainder of columns past
// the groups, and split of the columns between the threads.
Test(kernels, matmul_rows_grouped_columns_match_each_column_alone) {
    int sizes[][3] = {{1, 64, 8},   {1, 64, 19},  {4, 32, 24},  {3, 96, 17}, {5, 128, 9},
                      {1, 256, 40}, {7, 160, 15}, {1, 288, 11}, {2, 320, 7}, {1, 1024, 6},
                      {2, 1024, 5}, {1, 3072, 9}, {2, 2048, 19}, {3, 1024, 5}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int N = sizes[s][0], C = sizes[s][1], OC = sizes[s][2];
        size_t nw = (size_t)OC * C, no = (size_t)N * OC;
        float *x = randn((size_t)N * C, 61 + s, 1), *w = randn(nw, 62 + s, 1), *b = randn(no, 63 + s, 1);
        uint16_t *w16 = xmalloc(sizeof(uint16_t) * nw);
        for (size_t i = 0; i < nw; i++) w16[i] = st_f32_to_bf16(w[i]);
        int8_t *q = xmalloc(nw);
        float *d = xmalloc(sizeof(float) * (nw / 32));
        for (size_t i = 0; i < nw; i++) q[i] = (int8_t)(((i * 37u) % 255) - 127);
        for (size_t i = 0; i < nw / 32; i++) d[i] = 0.01f * (float)(i % 7 + 1);
        float *out = xmalloc(sizeof(float) * no), *col = xmalloc(sizeof(float) * N);
        for (int t = 0; t < 3; t++) {
            memcpy(out, b, sizeof(float) * no);
            if (t == 0) matmul_forward_acc(out, x, w, N, C, OC, 0.75f);
            else if (t == 1) matmul_forward_bf16w_acc(out, x, w16, N, C, OC, 0.75f);
            else matmul_forward_q8w_acc(out, x, q, d, N, C, OC, 0.75f);
            for (int o = 0; o < OC; o++) {
                size_t e = (size_t)o * C;
                for (int n = 0; n < N; n++) col[n] = b[(size_t)n * OC + o];
                if (t == 0) matmul_forward_acc(col, x, w + e, N, C, 1, 0.75f);
                else if (t == 1) matmul_forward_bf16w_acc(col, x, w16 + e, N, C, 1, 0.75f);
                else matmul_forward_q8w_acc(col, x, q + e, d + e / 32, N, C, 1, 0.75f);
                for (int n = 0; n < N; n++)
                    cr_assert(memcmp(&out[(size_t)n * OC + o], &col[n], sizeof(float)) == 0,
                              "type %d, %dx%dx%d: row %d column %d: %.9g vs %.9g alone", t, N, C, OC, n, o,
                              out[(size_t)n * OC + o], col[n]);
            }
        }
        free(x), free(w), free(b), free(w16), free(q), free(d), free(out), free(col);
    }
}

// Q8 weights (int8 in blocks of 32 along each row, one scale each, as ggml's Q8_0): bit for bit the
// fp32 products on the dequantized weights, one-row path and packed GEMM, and every row of up to
// MATMUL_GEMV_MAX_ROWS the bits of that row alone. The lookup from a Q8 table is exact.
static void q8_split(const float *w, size_t n, int8_t *q, float *d, float *deq) {
    uint8_t blk[Q8_0_BLOCK_BYTES];
    for (size_t b = 0; b < n / 32; b++) {
        quantize_q8_0(w + b * 32, blk, 32);
        dequantize_q8_0(blk, deq + b * 32, 32);  // the reference values
        uint16_t h;
        memcpy(&h, blk, 2);
        d[b] = st_f16_to_f32(h);
        memcpy(q + b * 32, blk + 2, 32);
    }
}

Test(kernels, matmul_q8_weights_match_fp32_on_dequantized_weights) {
    int sizes[][3] = {{1, 32, 1}, {1, 64, 5}, {2, 96, 9}, {3, 32, 7}, {4, 128, 5}, {5, 1024, 33},
                      {7, 64, 19}, {9, 160, 11}, {32, 96, 21}, {33, 64, 9}, {129, 96, 67}, {40, 640, 40}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int N = sizes[s][0], C = sizes[s][1], OC = sizes[s][2];
        size_t nw = (size_t)OC * C, no = (size_t)N * OC;
        float *x = randn((size_t)N * C, 41 + s, 1), *w = randn(nw, 42 + s, 1), *b = randn(no, 43 + s, 1);
        int8_t *q = xmalloc(nw);
        float *d = xmalloc(sizeof(float) * (nw / 32)), *deq = xmalloc(sizeof(float) * nw);
        q8_split(w, nw, q, d, deq);
        float *out = xmalloc(sizeof(float) * no), *ref = xmalloc(sizeof(float) * no);
        for (size_t i = 0; i < no; i++) out[i] = NAN;
        matmul_forward(ref, x, deq, N, C, OC);
        matmul_forward_q8w(out, x, q, d, N, C, OC);
        cr_assert(memcmp(out, ref, sizeof(float) * no) == 0, "forward %dx%dx%d: %g", N, C, OC, rel_max(out, ref, no));
        memcpy(out, b, sizeof(float) * no);
        memcpy(ref, b, sizeof(float) * no);
        matmul_forward_acc(ref, x, deq, N, C, OC, -0.5f);
        matmul_forward_q8w_acc(out, x, q, d, N, C, OC, -0.5f);
        cr_assert(memcmp(out, ref, sizeof(float) * no) == 0, "acc %dx%dx%d: %g", N, C, OC, rel_max(out, ref, no));
        if (N <= MATMUL_GEMV_MAX_ROWS) {
            matmul_forward_q8w(out, x, q, d, N, C, OC);
            for (int n = 0; n < N; n++) {
                matmul_forward_q8w(ref, x + (size_t)n * C, q, d, 1, C, OC);
                cr_assert(memcmp(out + (size_t)n * OC, ref, sizeof(float) * (size_t)OC) == 0, "row %d of %d", n, N);
            }
        }
        free(x), free(w), free(b), free(q), free(d), free(deq), free(out), free(ref);
    }
    // The lookup.
    int V = 7, C = 64, ids[4] = {3, -1, 6, 0};
    float *t = randn((size_t)V * C, 49, 1), *deq = xmalloc(sizeof(float) * V * C), *d = xmalloc(sizeof(float) * V * C / 32);
    int8_t *q = xmalloc((size_t)V * C);
    q8_split(t, (size_t)V * C, q, d, deq);
    float out[4 * 64];
    for (int i = 0; i < 4 * 64; i++) out[i] = -7.0f;
    embedding_forward_q8(out, ids, q, d, 4, C);
    for (int n = 0; n < 4; n++)
        for (int c = 0; c < C; c++)
            cr_assert_eq(out[n * C + c], ids[n] < 0 ? -7.0f : deq[ids[n] * C + c], "token %d, element %d", n, c);
    free(t), free(deq), free(d), free(q);
}

// Q8 weights against inputs rounded to Q8 blocks (matmul_forward_q8q, the products of a
// QWEN3_WEIGHTS_Q8 model). The rounding: every element within half a step of its block's scale,
// the block's largest magnitude at +-127, an all-zero block scale 0. The products: up to
// MATMUL_GEMV_MAX_ROWS rows, each output the bits of matmul_q8q_dot_reference and of its row
// alone; more rows, the bits of the fp32 GEMM on the rounded inputs' values; every output within
// fp32 rounding of the exact product of the rounded values (in double), and within the inputs'
// rounding (half a step times the weights' magnitudes) of the product with unrounded inputs.
Test(kernels, matmul_q8q_rounds_inputs_to_q8_blocks) {
    int sizes[][3] = {{1, 32, 1},    {1, 64, 5},  {2, 96, 9},  {3, 32, 7},     {4, 128, 5},   {5, 1024, 33},
                      {7, 64, 19},   {9, 160, 11}, {32, 96, 21}, {33, 64, 9},   {129, 96, 67}, {40, 640, 40},
                      {1, 3072, 13}, {6, 2048, 17}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int N = sizes[s][0], C = sizes[s][1], OC = sizes[s][2], nb = C / 32;
        size_t nw = (size_t)OC * C, no = (size_t)N * OC, nx = (size_t)N * C;
        float *x = randn(nx, 71 + s, 1), *w = randn(nw, 72 + s, 1), *b = randn(no, 73 + s, 1);
        if (C >= 64) {  // an all-zero block and an outlier in row 0
            memset(x, 0, sizeof(float) * 32);
            x[40] = 40.0f;
        }
        int8_t *q = xmalloc(nw), *qx = xmalloc(nx);
        float *d = xmalloc(sizeof(float) * (nw / 32)), *deq = xmalloc(sizeof(float) * nw);
        float *dx = xmalloc(sizeof(float) * (nx / 32)), *xr = xmalloc(sizeof(float) * nx);
        q8_split(w, nw, q, d, deq);
        for (int n = 0; n < N; n++) matmul_q8_round_row(x + (size_t)n * C, C, qx + (size_t)n * C, dx + (size_t)n * nb);
        for (size_t blk = 0; blk < nx / 32; blk++) {
            int top = 0;
            for (size_t i = blk * 32; i < blk * 32 + 32; i++) {
                xr[i] = dx[blk] * (float)qx[i];
                cr_assert(qx[i] >= -127 && qx[i] <= 127);
                cr_assert(fabs((double)x[i] - (double)xr[i]) <= dx[blk] * (0.5 + 1e-4), "case %zu element %zu", s, i);
                if (abs(qx[i]) == 127) top = 1;
            }
            cr_assert(dx[blk] == 0.0f ? !top : top, "case %zu block %zu: scale %g", s, blk, dx[blk]);
        }
        if (C >= 64) cr_assert(dx[0] == 0.0f && dx[1] > 40.0f / 127.0f * 0.999f, "zero block / outlier");
        float *out = xmalloc(sizeof(float) * no), *ref = xmalloc(sizeof(float) * no);
        for (size_t i = 0; i < no; i++) out[i] = NAN;
        matmul_forward_q8q(out, x, q, d, N, C, OC);
        if (N > MATMUL_GEMV_MAX_ROWS) {
            matmul_forward(ref, xr, deq, N, C, OC);
            cr_assert(memcmp(out, ref, sizeof(float) * no) == 0, "GEMM %dx%dx%d: %g", N, C, OC, rel_max(out, ref, no));
        }
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OC; o++) {
                double exact = 0, mag = 0, unrounded = 0, step = 0;
                for (int i = 0; i < C; i++) {
                    double wi = deq[(size_t)o * C + i], t = wi * xr[(size_t)n * C + i];
                    exact += t, mag += fabs(t), unrounded += wi * x[(size_t)n * C + i];
                    step += fabs(wi) * dx[(size_t)n * nb + i / 32] * (0.5 + 1e-4);
                }
                const float got = out[(size_t)n * OC + o];
                const double fp32 = (C + 8) * (double)FLT_EPSILON * mag;
                cr_assert(fabs(got - exact) <= fp32, "case %zu (%d, %d): %g vs exact %g", s, n, o, got, exact);
                cr_assert(fabs(got - unrounded) <= step + fp32, "case %zu (%d, %d): %g vs unrounded %g, bound %g", s, n,
                          o, got, unrounded, step);
                if (N > MATMUL_GEMV_MAX_ROWS) continue;
                float r = matmul_q8q_dot_reference(q + (size_t)o * C, d + (size_t)o * nb, qx + (size_t)n * C,
                                                   dx + (size_t)n * nb, C);
                cr_assert(memcmp(&got, &r, sizeof r) == 0, "case %zu (%d, %d): %.9g vs reference %.9g", s, n, o, got, r);
            }
        // Accumulating (the GEMM: the bits of fp32's accumulating GEMM on the rounded values), and
        // each row alone.
        memcpy(out, b, sizeof(float) * no);
        matmul_forward_q8q_acc(out, x, q, d, N, C, OC, -0.5f);
        if (N > MATMUL_GEMV_MAX_ROWS) {
            memcpy(ref, b, sizeof(float) * no);
            matmul_forward_acc(ref, xr, deq, N, C, OC, -0.5f);
            cr_assert(memcmp(out, ref, sizeof(float) * no) == 0, "GEMM acc %dx%dx%d", N, C, OC);
        }
        matmul_forward_q8q(ref, x, q, d, N, C, OC);
        for (size_t i = 0; N <= MATMUL_GEMV_MAX_ROWS && i < no; i++) {
            float want = b[i] + -0.5f * ref[i];
            cr_assert(memcmp(&out[i], &want, sizeof want) == 0, "acc case %zu element %zu", s, i);
        }
        if (N <= MATMUL_GEMV_MAX_ROWS)
            for (int n = 0; n < N; n++) {
                matmul_forward_q8q(out, x + (size_t)n * C, q, d, 1, C, OC);
                cr_assert(memcmp(out, ref + (size_t)n * OC, sizeof(float) * (size_t)OC) == 0, "row %d of %d", n, N);
            }
        free(x), free(w), free(b), free(q), free(qx), free(d), free(deq), free(dx), free(xr), free(out), free(ref);
    }
    // Blocks of tiny values: under 127 x FLT_MIN the scale would be subnormal and its inverse
    // overflow, so they round to zero; just above it they round as any block.
    {
        float x[96], dx[3];
        int8_t qx[96];
        for (int i = 0; i < 96; i++) x[i] = (i % 3 - 1) * (i < 32 ? 1e-38f : i < 64 ? 3e-36f : 1e-30f) * (1 + i % 5);
        matmul_q8_round_row(x, 96, qx, dx);
        cr_assert(dx[0] == 0.0f && dx[1] >= FLT_MIN && dx[2] > 0, "%g %g %g", dx[0], dx[1], dx[2]);
        for (int i = 0; i < 96; i++) {
            cr_assert(qx[i] >= -127 && qx[i] <= 127 && (i >= 32 || qx[i] == 0), "element %d: %d", i, qx[i]);
            if (i >= 32) cr_assert(fabs((double)x[i] - (double)dx[i / 32] * qx[i]) <= dx[i / 32] * (0.5 + 1e-4));
        }
    }
    // A NaN or an infinity in a row makes that row's outputs NaN, as in fp32, and leaves the others.
    for (int k = 0; k < 2; k++) {
        int N = k ? 40 : 3, C = 96, OC = 5;  // one-row products, then the GEMM
        float *x = randn((size_t)N * C, 81 + k, 1), *w = randn((size_t)OC * C, 82, 1), *out = xmalloc(sizeof(float) * N * OC);
        int8_t *q = xmalloc((size_t)OC * C), qx[96];
        float *d = xmalloc(sizeof(float) * OC * 3), *deq = xmalloc(sizeof(float) * OC * C), dx[3];
        q8_split(w, (size_t)OC * C, q, d, deq);
        x[C + 50] = NAN, x[2 * C + 7] = -INFINITY;
        matmul_q8_round_row(x + C, C, qx, dx);
        cr_assert(dx[0] > 0 && isnan(dx[1]) && dx[2] > 0);
        for (int i = 32; i < 64; i++) cr_assert_eq(qx[i], 0);
        matmul_forward_q8q(out, x, q, d, N, C, OC);
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OC; o++)
                cr_assert(n == 1 || n == 2 ? isnan(out[n * OC + o]) : isfinite(out[n * OC + o]), "%d rows: (%d, %d) = %g",
                          N, n, o, out[n * OC + o]);
        free(x), free(w), free(out), free(q), free(d), free(deq);
    }
}

// The LoRA side path with Q8 adapters (Q4_0/Q8_0 programs on the CPU): bit for bit the fp32 path
// on the dequantized adapters, one adapter for many rows (paw run) and one per sequence, with
// rows for the one-row products and for the packed GEMM, and accumulating into y.
Test(kernels, lora_q8_adapters_match_fp32_on_dequantized_adapters) {
    int cases[][5] = {{1, 1, 64, 96, 32}, {1, 4, 96, 64, 64}, {3, 2, 64, 160, 32}, {1, 40, 128, 96, 32}, {2, 33, 64, 64, 64}};
    for (size_t s = 0; s < sizeof cases / sizeof cases[0]; s++) {
        int nb = cases[s][0], T = cases[s][1], din = cases[s][2], dout = cases[s][3], r = cases[s][4];
        size_t na = (size_t)nb * r * din, nbw = (size_t)nb * dout * r, nx = (size_t)nb * T * din, ny = (size_t)nb * T * dout;
        float *A = randn(na, 61 + s, 1), *Bw = randn(nbw, 62 + s, 1), *x = randn(nx, 63 + s, 1), *y0 = randn(ny, 64 + s, 1);
        int8_t *qa = xmalloc(na), *qb = xmalloc(nbw);
        float *da = xmalloc(sizeof(float) * na / 32), *db = xmalloc(sizeof(float) * nbw / 32);
        float *dqa = xmalloc(sizeof(float) * na), *dqb = xmalloc(sizeof(float) * nbw);
        q8_split(A, na, qa, da, dqa);
        q8_split(Bw, nbw, qb, db, dqb);
        float *y = xmalloc(sizeof(float) * ny), *yr = xmalloc(sizeof(float) * ny);
        float *u = xmalloc(sizeof(float) * (size_t)nb * T * r), *ur = xmalloc(sizeof(float) * (size_t)nb * T * r);
        memcpy(y, y0, sizeof(float) * ny), memcpy(yr, y0, sizeof(float) * ny);
        for (size_t i = 0; i < (size_t)nb * T * r; i++) u[i] = NAN;
        lora_forward(yr, ur, x, dqa, dqb, nb, T, din, dout, r, 0.25f);
        lora_forward_q8(y, u, x, qa, da, qb, db, nb, T, din, dout, r, 0.25f);
        cr_assert(memcmp(u, ur, sizeof(float) * (size_t)nb * T * r) == 0, "u, case %zu", s);
        cr_assert(memcmp(y, yr, sizeof(float) * ny) == 0, "y, case %zu: %g", s, rel_max(y, yr, ny));
        cr_assert(rel_max(y, y0, ny) > 0, "the side path added something");
        free(A), free(Bw), free(x), free(y0), free(qa), free(qb), free(da), free(db), free(dqa), free(dqb);
        free(y), free(yr), free(u), free(ur);
    }
}

Test(kernels, embedding_lookup_from_bf16_table_is_exact) {
    int V = 11, C = 37, N = 6, ids[6] = {3, 0, 10, -1, 3, 7};
    float *t = randn((size_t)V * C, 31, 1), *out = xmalloc(sizeof(float) * (size_t)N * C);
    uint16_t *t16 = xmalloc(sizeof(uint16_t) * (size_t)V * C);
    for (int i = 0; i < V * C; i++) t16[i] = st_f32_to_bf16(t[i]);
    for (int i = 0; i < N * C; i++) out[i] = -7.0f;
    embedding_forward_bf16(out, ids, t16, N, C);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            float want = ids[n] < 0 ? -7.0f : st_bf16_to_f32(t16[ids[n] * C + c]);  // rows with id -1 untouched
            cr_assert_eq(out[n * C + c], want, "row %d col %d", n, c);
        }
    free(t), free(out), free(t16);
}

// Explicit attention with the full score matrix, as the definition reads.
static void attention_naive(float *out, float *lse, const float *q, const float *k, const float *v, int B, int Tq, int Tk,
                            int Tcap, int NH, int NKV, int HD) {
    double *p = xmalloc(sizeof(double) * (size_t)Tk);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < Tq; t++) {
                int g = h / (NH / NKV), last = Tk - Tq + t;
                double mx = -1e300, sum = 0;
                for (int j = 0; j <= last; j++) {
                    double s = 0;
                    for (int d = 0; d < HD; d++)
                        s += (double)q[(((size_t)b * Tq + t) * NH + h) * HD + d] * k[(((size_t)b * Tcap + j) * NKV + g) * HD + d];
                    p[j] = s / sqrt((double)HD);
                    if (p[j] > mx) mx = p[j];
                }
                for (int j = 0; j <= last; j++) sum += (p[j] = exp(p[j] - mx));
                lse[((size_t)b * NH + h) * Tq + t] = (float)(mx + log(sum));
                for (int d = 0; d < HD; d++) {
                    double o = 0;
                    for (int j = 0; j <= last; j++) o += p[j] / sum * v[(((size_t)b * Tcap + j) * NKV + g) * HD + d];
                    out[(((size_t)b * Tq + t) * NH + h) * HD + d] = (float)o;
                }
            }
    free(p);
}

Test(kernels, attention_matches_explicit_softmax_with_gqa_and_cache_offsets) {
    // head_dim 12: the dot's 8-wide step and its scalar tail; 44: its 32-wide step as well.
    int B = 2, NH = 6, NKV = 2, Tcap = 19, dims[] = {12, 44};
    for (int di = 0; di < 2; di++) {
        int HD = dims[di];
        size_t nkv = (size_t)B * Tcap * NKV * HD;
        float *k = randn(nkv, 3, 1), *v = randn(nkv, 4, 1);
        // k and v again in the decoding caches' layout (attention.h), of capacity one key tile.
        size_t head = (size_t)ATT_KEY_TILE * HD, nc = (size_t)B * NKV * head;
        float *kc = xmalloc(sizeof(float) * nc), *vc = xmalloc(sizeof(float) * nc);
        for (size_t i = 0; i < nc; i++) kc[i] = vc[i] = NAN;  // past Tk: never read
        for (int b = 0; b < B; b++)
            for (int j = 0; j < Tcap; j++)
                for (int g = 0; g < NKV; g++)
                    for (int d = 0; d < HD; d++) {
                        size_t from = (((size_t)b * Tcap + j) * NKV + g) * HD + d, to = ((size_t)b * NKV + g) * head;
                        kc[to + attention_key_index(j, d, HD)] = k[from];
                        vc[to + (size_t)j * HD + d] = v[from];
                    }
        int cases[][2] = {{19, 19}, {1, 19}, {5, 13}, {1, 1}};  // (Tq, Tk)
        for (int c = 0; c < 4; c++) {
            int Tq = cases[c][0], Tk = cases[c][1];
            float *q = randn((size_t)B * Tq * NH * HD, 5 + c, 1);
            size_t n = (size_t)B * Tq * NH * HD;
            size_t nl = (size_t)B * NH * Tq;
            float *out = xmalloc(sizeof(float) * n), *ref = xmalloc(sizeof(float) * n);
            float *lse = xmalloc(sizeof(float) * nl), *ref_lse = xmalloc(sizeof(float) * nl);
            for (size_t i = 0; i < n; i++) out[i] = NAN;
            for (size_t i = 0; i < nl; i++) lse[i] = NAN;
            attention_forward(out, lse, q, k, v, B, Tq, Tk, Tcap, NH, NKV, HD);
            attention_naive(ref, ref_lse, q, k, v, B, Tq, Tk, Tcap, NH, NKV, HD);
            cr_assert(rel_max(out, ref, n) < 1e-5, "HD=%d Tq=%d Tk=%d: %g", HD, Tq, Tk, rel_max(out, ref, n));
            cr_assert(rel_max(lse, ref_lse, nl) < 1e-5, "lse, HD=%d Tq=%d Tk=%d: %g", HD, Tq, Tk,
                      rel_max(lse, ref_lse, nl));
            // The same keys and values in the decoding caches' layout: the same bits.
            float *outc = xmalloc(sizeof(float) * n);
            for (size_t i = 0; i < n; i++) outc[i] = NAN;
            attention_forward_cache(outc, q, kc, vc, B, Tq, Tk, ATT_KEY_TILE, NH, NKV, HD);
            for (size_t i = 0; i < n; i++)
                cr_assert(outc[i] == out[i], "cache layout, HD=%d Tq=%d Tk=%d: element %zu %g vs %g", HD, Tq, Tk, i,
                          outc[i], out[i]);
            free(q), free(out), free(ref), free(lse), free(ref_lse), free(outc);
        }
        // Decoding: query t alone against the first t + 1 cached positions, and a chunk of 5
        // queries after 8 cached ones, give the bits of those rows in the full forward.
        size_t row = (size_t)NH * HD, nf = (size_t)B * Tcap * row;
        float *q = randn(nf, 9, 1), *full = xmalloc(sizeof(float) * nf);
        float *qs = xmalloc(sizeof(float) * B * 5 * row), *os = xmalloc(sizeof(float) * B * 5 * row);
        attention_forward(full, NULL, q, k, v, B, Tcap, Tcap, Tcap, NH, NKV, HD);
        for (int t = 0; t < Tcap; t++) {
            for (int b = 0; b < B; b++) memcpy(qs + b * row, q + ((size_t)b * Tcap + t) * row, sizeof(float) * row);
            attention_forward_cache(os, qs, kc, vc, B, 1, t + 1, ATT_KEY_TILE, NH, NKV, HD);
            for (int b = 0; b < B; b++)
                for (size_t e = 0; e < row; e++)
                    cr_assert(os[b * row + e] == full[((size_t)b * Tcap + t) * row + e],
                              "decoding, HD=%d position %d sequence %d element %zu", HD, t, b, e);
        }
        for (int b = 0; b < B; b++) memcpy(qs + b * 5 * row, q + ((size_t)b * Tcap + 8) * row, sizeof(float) * 5 * row);
        attention_forward_cache(os, qs, kc, vc, B, 5, 13, ATT_KEY_TILE, NH, NKV, HD);
        for (int b = 0; b < B; b++)
            for (size_t e = 0; e < 5 * row; e++)
                cr_assert(os[b * 5 * row + e] == full[((size_t)b * Tcap + 8) * row + e],
                          "chunk of 5 after 8, HD=%d sequence %d element %zu", HD, b, e);
        free(q), free(full), free(qs), free(os);
        free(k), free(v), free(kc), free(vc);
    }
}

// The attention backward as the definition reads, in double, from the full T x T probabilities:
// dP = dO V^T, dS = P * (dP - rowsum(P * dP)) / sqrt(HD), dq = dS K, dk = dS^T Q, dv = P^T dO.
static void attention_backward_naive(double *dq, double *dk, double *dv, const float *dout, const float *q,
                                     const float *k, const float *v, int B, int T, int NH, int NKV, int HD) {
    double *p = xmalloc(sizeof(double) * (size_t)T), *dp = xmalloc(sizeof(double) * (size_t)T);
    double scale = 1 / sqrt((double)HD);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                int g = h / (NH / NKV);
                const float *qr = q + (((size_t)b * T + t) * NH + h) * HD, *dor = dout + (qr - q);
                double mx = -1e300, sum = 0, D = 0;
                for (int j = 0; j <= t; j++) {
                    const float *kr = k + (((size_t)b * T + j) * NKV + g) * HD, *vr = v + (kr - k);
                    double s = 0, e = 0;
                    for (int d = 0; d < HD; d++) s += (double)qr[d] * kr[d], e += (double)dor[d] * vr[d];
                    p[j] = s * scale, dp[j] = e;
                    if (p[j] > mx) mx = p[j];
                }
                for (int j = 0; j <= t; j++) sum += (p[j] = exp(p[j] - mx));
                for (int j = 0; j <= t; j++) D += (p[j] /= sum) * dp[j];
                for (int j = 0; j <= t; j++) {
                    size_t ki = (((size_t)b * T + j) * NKV + g) * HD, qi = (size_t)(qr - q);
                    double ds = p[j] * (dp[j] - D) * scale;
                    for (int d = 0; d < HD; d++) {
                        dq[qi + d] += ds * k[ki + d];
                        dk[ki + d] += ds * qr[d];
                        dv[ki + d] += p[j] * dor[d];
                    }
                }
            }
    free(p), free(dp);
}

Test(kernels, attention_backward_matches_explicit_definition_on_awkward_sizes) {
    // Lengths up to 100 cross several query blocks and leave partial ones; head_dim 12, 24 and 44
    // leave partial column blocks; 6 query heads on 2 KV heads make groups of 3. The gradients
    // accumulate into what dq, dk and dv already hold.
    int shapes[][5] = {{2, 19, 6, 2, 12}, {1, 100, 4, 2, 24}, {3, 53, 6, 2, 44}, {1, 1, 2, 1, 8}};  // B T NH NKV HD
    for (int s = 0; s < 4; s++) {
        int B = shapes[s][0], T = shapes[s][1], NH = shapes[s][2], NKV = shapes[s][3], HD = shapes[s][4];
        size_t nq = (size_t)B * T * NH * HD, nk = (size_t)B * T * NKV * HD;
        float *q = randn(nq, 61 + s, 1), *k = randn(nk, 62 + s, 1), *v = randn(nk, 63 + s, 1);
        float *dout = randn(nq, 64 + s, 1), *out = xmalloc(sizeof(float) * nq);
        float *lse = xmalloc(sizeof(float) * (size_t)B * NH * T);
        float *dq = randn(nq, 65 + s, 1), *dk = randn(nk, 66 + s, 1), *dv = randn(nk, 67 + s, 1);
        double *rq = xcalloc(nq, sizeof(double)), *rk = xcalloc(nk, sizeof(double)), *rv = xcalloc(nk, sizeof(double));
        for (size_t i = 0; i < nq; i++) rq[i] = dq[i];
        for (size_t i = 0; i < nk; i++) rk[i] = dk[i], rv[i] = dv[i];
        attention_forward(out, lse, q, k, v, B, T, T, T, NH, NKV, HD);
        attention_backward(dq, dk, dv, dout, q, k, v, out, lse, B, T, NH, NKV, HD);
        attention_backward_naive(rq, rk, rv, dout, q, k, v, B, T, NH, NKV, HD);
        // fp32 sums of up to T terms of unit size, against double: 1e-5 of the largest element.
        struct { const char *name; const float *got; const double *want; size_t n; } g[3] = {
            {"dq", dq, rq, nq}, {"dk", dk, rk, nk}, {"dv", dv, rv, nk}};
        for (int i = 0; i < 3; i++) {
            double num = 0, den = 0;
            for (size_t e = 0; e < g[i].n; e++) {
                double d = fabs(g[i].got[e] - g[i].want[e]);
                if (!(d <= num)) num = d;
                if (fabs(g[i].want[e]) > den) den = fabs(g[i].want[e]);
            }
            cr_assert(num <= 1e-5 * den, "%s, B=%d T=%d NH=%d NKV=%d HD=%d: max error %g of %g", g[i].name, B, T, NH,
                      NKV, HD, num, den);
        }
        free(q), free(k), free(v), free(dout), free(out), free(lse), free(dq), free(dk), free(dv);
        free(rq), free(rk), free(rv);
    }
}

// ---- finite differences ----------------------------------------------------------------------
// Each op is checked through a scalar loss L = sum(r * op(x)) with a fixed random r, so that
// (tolerance: fp32 rounding of L over 2h gives ~1e-4 noise, the O(h^2) truncation ~1e-4)
// dL/dx is the op's backward applied to r.

typedef void (*FwdFn)(void *ctx, const float *x, float *y);

static void fd_check(const char *what, FwdFn f, void *ctx, float *x, size_t nx, size_t ny, const float *analytic,
                     const float *r) {
    float *y = xmalloc(sizeof(float) * ny);
    for (size_t k = 0; k < nx; k += 1 + nx / 23) {
        float orig = x[k];
        double lp = 0, lm = 0, h = 1e-2;
        x[k] = orig + (float)h;
        f(ctx, x, y);
        for (size_t i = 0; i < ny; i++) lp += (double)r[i] * y[i];
        x[k] = orig - (float)h;
        f(ctx, x, y);
        for (size_t i = 0; i < ny; i++) lm += (double)r[i] * y[i];
        x[k] = orig;
        double fd = (lp - lm) / (2 * h);
        cr_assert(fabs(fd - analytic[k]) < 1e-3 + 3e-3 * fabs(fd), "%s[%zu]: fd %g vs analytic %g", what, k, fd,
                  analytic[k]);
    }
    free(y);
}

typedef struct {
    int N, C;
    const float *w;
    float *rstd;
} NormCtx;
static void norm_fwd(void *c, const float *x, float *y) {
    NormCtx *n = c;
    rmsnorm_forward(y, n->rstd, x, n->w, n->N, n->C, 1e-6f);
}
static void norm_fwd_w(void *c, const float *w, float *y) {
    NormCtx *n = c;
    rmsnorm_forward(y, n->rstd, n->w, w, n->N, n->C, 1e-6f);  // here n->w holds x
}

Test(kernels, rmsnorm_backward_matches_finite_differences) {
    int N = 5, C = 37;
    float *x = randn((size_t)N * C, 11, 1), *w = randn((size_t)C, 12, 1), *r = randn((size_t)N * C, 13, 1);
    float rstd[5], *dx = xcalloc((size_t)N * C, 4), *dw = xcalloc((size_t)C, 4), *y = xmalloc(4 * (size_t)N * C);
    rmsnorm_forward(y, rstd, x, w, N, C, 1e-6f);
    rmsnorm_backward(dx, dw, r, x, w, rstd, N, C);
    NormCtx ctx = {N, C, w, rstd};
    fd_check("rmsnorm dx", norm_fwd, &ctx, x, (size_t)N * C, (size_t)N * C, dx, r);
    NormCtx ctxw = {N, C, x, rstd};
    fd_check("rmsnorm dw", norm_fwd_w, &ctxw, w, (size_t)C, (size_t)N * C, dw, r);
    free(x), free(w), free(r), free(dx), free(dw), free(y);
}

typedef struct {
    int N, nh, hd;
    const float *w, *cs, *sn;
    const int *pos;
    float *rstd;
} QkCtx;
static void qk_fwd(void *c, const float *x, float *y) {
    QkCtx *q = c;
    qknorm_rope_forward(y, q->rstd, x, q->w, q->cs, q->sn, q->pos, q->N, q->nh, q->hd, 1e-6f);
}

Test(kernels, qknorm_rope_backward_matches_finite_differences) {
    int N = 4, nh = 3, hd = 10, maxp = 40;
    float cs[40 * 5], sn[40 * 5];
    rope_table(cs, sn, maxp, hd, 10000.0f);
    int pos[4] = {0, 7, 3, 39};
    size_t n = (size_t)N * nh * hd;
    float *x = randn(n, 21, 1), *w = randn((size_t)hd, 22, 1), *r = randn(n, 23, 1);
    float rstd[12], *y = xmalloc(4 * n), *dx = xcalloc(n, 4), *dw = xcalloc((size_t)hd, 4), *dy = xmalloc(4 * n);
    qknorm_rope_forward(y, rstd, x, w, cs, sn, pos, N, nh, hd, 1e-6f);
    memcpy(dy, r, 4 * n);
    qknorm_rope_backward(dx, dw, dy, x, w, rstd, cs, sn, pos, N, nh, hd);
    QkCtx ctx = {N, nh, hd, w, cs, sn, pos, rstd};
    fd_check("qknorm_rope dx", qk_fwd, &ctx, x, n, n, dx, r);
    // RoPE at position 0 is the identity; a rotation keeps norms.
    float v[10], v0[10];
    for (int i = 0; i < 10; i++) v[i] = v0[i] = (float)i - 4.5f;
    int p0 = 0, p5 = 5;
    rope_forward(v, cs, sn, &p0, 1, 1, 10);
    for (int i = 0; i < 10; i++) cr_assert_eq(v[i], v0[i]);
    rope_forward(v, cs, sn, &p5, 1, 1, 10);
    double a = 0, b = 0;
    for (int i = 0; i < 10; i++) a += v[i] * v[i], b += v0[i] * v0[i];
    cr_assert(fabs(a - b) < 1e-4 * b);
    free(x), free(w), free(r), free(y), free(dx), free(dw), free(dy);
}

typedef struct {
    size_t n;
    const float *other;
    int which;
} GluCtx;
static void glu_fwd(void *c, const float *x, float *y) {
    GluCtx *g = c;
    if (g->which == 0) swiglu_forward(y, x, g->other, g->n);
    else swiglu_forward(y, g->other, x, g->n);
}

Test(kernels, swiglu_backward_matches_finite_differences) {
    size_t n = 50;
    float *g = randn(n, 31, 2), *u = randn(n, 32, 1), *r = randn(n, 33, 1);
    float *dg = xcalloc(n, 4), *du = xcalloc(n, 4);
    swiglu_backward(dg, du, r, g, u, n);
    GluCtx c0 = {n, u, 0}, c1 = {n, g, 1};
    fd_check("swiglu dgate", glu_fwd, &c0, g, n, n, dg, r);
    fd_check("swiglu dup", glu_fwd, &c1, u, n, n, du, r);
    free(g), free(u), free(r), free(dg), free(du);
}

typedef struct {
    int B, T, NH, NKV, HD, which;
    float *q, *k, *v;
} AttCtx;
static void att_fwd(void *c, const float *x, float *y) {
    AttCtx *a = c;
    const float *q = a->which == 0 ? x : a->q, *k = a->which == 1 ? x : a->k, *v = a->which == 2 ? x : a->v;
    attention_forward(y, NULL, q, k, v, a->B, a->T, a->T, a->T, a->NH, a->NKV, a->HD);
}

Test(kernels, attention_backward_matches_finite_differences) {
    int B = 2, T = 7, NH = 4, NKV = 2, HD = 8;
    size_t nq = (size_t)B * T * NH * HD, nk = (size_t)B * T * NKV * HD;
    float *q = randn(nq, 41, 1), *k = randn(nk, 42, 1), *v = randn(nk, 43, 1), *r = randn(nq, 44, 1);
    float *out = xmalloc(4 * nq), *lse = xmalloc(4 * (size_t)B * NH * T);
    float *dq = xcalloc(nq, 4), *dk = xcalloc(nk, 4), *dv = xcalloc(nk, 4);
    attention_forward(out, lse, q, k, v, B, T, T, T, NH, NKV, HD);
    attention_backward(dq, dk, dv, r, q, k, v, out, lse, B, T, NH, NKV, HD);
    AttCtx c = {B, T, NH, NKV, HD, 0, q, k, v};
    fd_check("attention dq", att_fwd, &c, q, nq, nq, dq, r);
    c.which = 1;
    fd_check("attention dk", att_fwd, &c, k, nk, nq, dk, r);
    c.which = 2;
    fd_check("attention dv", att_fwd, &c, v, nk, nq, dv, r);
    free(q), free(k), free(v), free(r), free(out), free(lse), free(dq), free(dk), free(dv);
}

Test(kernels, crossentropy_matches_definition_and_masks) {
    int N = 4, V = 33;
    float *x = randn((size_t)N * V, 51, 3);
    int tg[4] = {0, 32, 7, 7};
    float w[4] = {1, 0, 2, 1}, nll[4], lse[4];
    int bad;
    double tot = crossentropy_forward(nll, lse, x, tg, w, N, V, &bad);
    cr_assert_eq(bad, 0);
    double want = 0;
    for (int n = 0; n < N; n++) {
        double s = 0;
        for (int i = 0; i < V; i++) s += exp((double)x[n * V + i]);
        double l = log(s) - x[n * V + tg[n]];
        if (w[n] != 0) cr_assert(fabs(nll[n] - l) < 1e-5 * (1 + l));
        else cr_assert_eq(nll[n], 0.0f);
        want += w[n] * l;
    }
    cr_assert(fabs(tot - want) < 1e-5 * want);
    crossentropy_backward_inplace(x, lse, tg, w, N, V, 0.5f);
    for (int i = 0; i < V; i++) cr_assert_eq(x[1 * V + i], 0.0f);  // weight 0 row
    double rowsum = 0;
    for (int i = 0; i < V; i++) rowsum += x[2 * V + i];
    cr_assert(fabs(rowsum) < 1e-6);  // softmax - onehot sums to zero
    int tg_bad[4] = {0, 32, 33, 7};
    crossentropy_forward(nll, lse, x, tg_bad, w, N, V, &bad);
    cr_assert_eq(bad, 1);
    free(x);
}
