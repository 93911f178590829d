// GPU tests: every CUDA op against its CPU reference on fresh random inputs of awkward sizes
// (not multiples of the kernels' tiles), and the CUDA model against the transformers fixtures.
// A plain C program (CUDA and Criterion's forked workers do not mix); the last line of output
// is "N passed, N failed". Run from the repository root: `make test-gpu`.
//
// Inputs are drawn in fp32, rounded to bf16, and the CPU reference runs in fp32 on the rounded
// values, so the comparison measures the GPU's arithmetic (bf16 outputs, fp32 accumulation):
// ||gpu - cpu|| / ||cpu|| below 1e-2 for the ops. Every output buffer is filled with NaN before
// the op runs, so an element the op failed to write fails the comparison.
//
// Model tolerances against the fp32 Hugging Face fixtures are looser because the GPU model rounds
// the weights and every activation to bf16 (as bf16 inference does): logits 3e-2, loss 1e-2
// relative, gradients 1e-1 relative L2 per tensor.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "common/rng.h"
#include "compiler/mapper.h"
#include "compiler/mapper_cuda.h"
#include "kernels/adamw_cuda.h"
#include "kernels/attention.h"
#include "kernels/attention_cuda.h"
#include "kernels/crossentropy.h"
#include "kernels/crossentropy_cuda.h"
#include "kernels/cuda_common_cuda.h"
#include "kernels/embedding.h"
#include "kernels/embedding_cuda.h"
#include "kernels/gemm_fallback_cuda.h"
#include "kernels/lora.h"
#include "kernels/lora_cuda.h"
#include "kernels/mapper_mix_cuda.h"
#include "kernels/matmul.h"
#include "kernels/matmul_cuda.h"
#include "kernels/matvec_cuda.h"
#include "kernels/rmsnorm.h"
#include "kernels/rmsnorm_cuda.h"
#include "kernels/rope.h"
#include "kernels/rope_cuda.h"
#include "kernels/swiglu.h"
#include "kernels/swiglu_cuda.h"
#include "model/qwen3_cuda.h"
#include "kernels/adamw.h"
#include "train/paw_step_cuda.h"
#include "train/comm.h"
#include "common/fileio.h"
#include "data/template.h"
#include "interpreter/decoder_cuda.h"
#include "interpreter/runner_cuda.h"
#include "compiler/trained.h"
#include "tests/interactive.h"
#include "tests/testutil.h"
#include <cjson/cJSON.h>

static int g_pass, g_fail;
static PawRng g_rng = {20261123};

#define CHECK(cond, ...)                                        \
    do {                                                        \
        if (cond) {                                             \
            g_pass++;                                           \
        } else {                                                \
            g_fail++;                                           \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);         \
            printf(__VA_ARGS__);                                \
            printf("\n");                                       \
        }                                                       \
    } while (0)

// ||a - b|| / ||b||, reported and checked against tol (NaN fails).
#define CHECK_CLOSE(name, got, ref, n, tol)                                          \
    do {                                                                             \
        double e_ = rel_l2((got), (ref), (n));                                       \
        CHECK(e_ < (tol), "%s: rel L2 error %.3g >= %.3g", (name), e_, (double)(tol)); \
    } while (0)

static float bf16_round(float x) { return st_bf16_to_f32(st_f32_to_bf16(x)); }

// n normal values times scale, rounded to bf16 (so CPU and GPU see the same inputs).
static float *rand_bf16(size_t n, float scale) {
    float *v = xmalloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) v[i] = bf16_round(scale * paw_rng_normal(&g_rng));
    return v;
}

static float *rand_f32(size_t n, float scale) {
    float *v = xmalloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) v[i] = scale * paw_rng_normal(&g_rng);
    return v;
}

static float *zeros(size_t n) { return xcalloc(n ? n : 1, sizeof(float)); }

static paw_bf16 *dev_bf16(const float *h, size_t n) {
    paw_bf16 *d = paw_cuda_malloc(sizeof(paw_bf16) * (n ? n : 1));
    paw_cuda_upload_bf16(d, h, n);
    return d;
}

static float *dev_f32(const float *h, size_t n) {
    float *d = paw_cuda_malloc(sizeof(float) * (n ? n : 1));
    paw_cuda_upload(d, h, sizeof(float) * n);
    return d;
}

static int *dev_i32(const int *h, size_t n) {
    int *d = paw_cuda_malloc(sizeof(int) * (n ? n : 1));
    paw_cuda_upload(d, h, sizeof(int) * n);
    return d;
}

// Output buffers: all-ones bytes are NaN in both bf16 and fp32.
static paw_bf16 *poisoned_bf16(size_t n) {
    paw_bf16 *d = paw_cuda_malloc(sizeof(paw_bf16) * (n ? n : 1));
    paw_cuda_memset(d, 0xFF, sizeof(paw_bf16) * n);
    return d;
}

static float *poisoned_f32(size_t n) {
    float *d = paw_cuda_malloc(sizeof(float) * (n ? n : 1));
    paw_cuda_memset(d, 0xFF, sizeof(float) * n);
    return d;
}

static float *host_bf16(const paw_bf16 *d, size_t n) {
    float *h = xmalloc(sizeof(float) * (n ? n : 1));
    paw_cuda_download_bf16(h, d, n);
    return h;
}

// recompute: 0 keeps every layer's activations, 1 recomputes all layers, 2 keeps layer 0 and
// recomputes the others (partial recomputation).
static const char *recompute_tag(int recompute) {
    return recompute == 1 ? " (recompute)" : recompute == 2 ? " (recompute, layer 0 kept)" : "";
}

static float *host_f32(const float *d, size_t n) {
    float *h = xmalloc(sizeof(float) * (n ? n : 1));
    paw_cuda_download(h, d, sizeof(float) * n);
    return h;
}

// ---------------------------------------------------------------------------------------------
static void test_matmul(int N, int C, int OC) {
    char name[128];
    float *x = rand_bf16((size_t)N * C, 1.0f), *w = rand_bf16((size_t)OC * C, 0.1f);
    float *res = rand_bf16((size_t)N * OC, 1.0f);
    paw_bf16 *dx = dev_bf16(x, (size_t)N * C), *dw = dev_bf16(w, (size_t)OC * C);

    // bf16 output, plain.
    float *ref = zeros((size_t)N * OC);
    matmul_forward(ref, x, w, N, C, OC);
    paw_bf16 *dout = poisoned_bf16((size_t)N * OC);
    matmul_cuda_forward(dout, PAW_OUT_BF16, dx, dw, NULL, N, C, OC, 1.0f, 0.0f);
    float *got = host_bf16(dout, (size_t)N * OC);
    snprintf(name, sizeof name, "matmul fwd bf16 %dx%dx%d", N, C, OC);
    CHECK_CLOSE(name, got, ref, (size_t)N * OC, 1e-2);
    free(got);

    // fp32 output with the residual riding on the epilogue (res in another buffer).
    float *ref2 = xmalloc(sizeof(float) * (size_t)N * OC);
    for (size_t i = 0; i < (size_t)N * OC; i++) ref2[i] = ref[i] + res[i];
    float *dres = dev_f32(res, (size_t)N * OC), *dout32 = poisoned_f32((size_t)N * OC);
    matmul_cuda_forward(dout32, PAW_OUT_F32, dx, dw, dres, N, C, OC, 1.0f, 1.0f);
    got = host_f32(dout32, (size_t)N * OC);
    snprintf(name, sizeof name, "matmul fwd fp32 + residual %dx%dx%d", N, C, OC);
    CHECK_CLOSE(name, got, ref2, (size_t)N * OC, 1e-3);
    free(got);

    // Backward: dinp (overwritten, bf16) and dweight (accumulated onto a random start, fp32).
    float *g = rand_bf16((size_t)N * OC, 1.0f), *dw0 = rand_f32((size_t)OC * C, 1.0f);
    float *ref_dx = zeros((size_t)N * C), *ref_dw = xmalloc(sizeof(float) * (size_t)OC * C);
    memcpy(ref_dw, dw0, sizeof(float) * (size_t)OC * C);
    matmul_backward(ref_dx, ref_dw, g, x, w, N, C, OC);
    paw_bf16 *dg = dev_bf16(g, (size_t)N * OC), *ddx = poisoned_bf16((size_t)N * C);
    float *ddw = dev_f32(dw0, (size_t)OC * C);
    matmul_cuda_backward_input(ddx, dg, dw, N, C, OC, 0.0f);
    matmul_cuda_backward_weight(ddw, dg, dx, N, C, OC);
    got = host_bf16(ddx, (size_t)N * C);
    snprintf(name, sizeof name, "matmul dinp %dx%dx%d", N, C, OC);
    CHECK_CLOSE(name, got, ref_dx, (size_t)N * C, 1e-2);
    free(got);
    got = host_f32(ddw, (size_t)OC * C);
    snprintf(name, sizeof name, "matmul dweight (accumulated) %dx%dx%d", N, C, OC);
    CHECK_CLOSE(name, got, ref_dw, (size_t)OC * C, 1e-3);
    free(got);

    paw_cuda_free(dx), paw_cuda_free(dw), paw_cuda_free(dout), paw_cuda_free(dres), paw_cuda_free(dout32);
    paw_cuda_free(dg), paw_cuda_free(ddx), paw_cuda_free(ddw);
    free(x), free(w), free(res), free(ref), free(ref2), free(g), free(dw0), free(ref_dx), free(ref_dw);
}

// The fused one-row products of decoding against RMSNorm / SwiGLU then the product on the CPU
// (the fused input rounded to bf16 as the GPU keeps it).
static void test_matvec_fused(int C, int OC) {
    char name[128];
    const float eps = 1e-6f;
    float *x = rand_bf16(C, 1.0f), *nw = rand_bf16(C, 1.0f), *w = rand_bf16((size_t)OC * C, 0.1f);
    float *res = rand_bf16(OC, 1.0f), *xn = zeros(C), *rstd = zeros(1), *ref = zeros(OC);
    rmsnorm_forward(xn, rstd, x, nw, 1, C, eps);
    for (int i = 0; i < C; i++) xn[i] = bf16_round(xn[i]);
    matmul_forward(ref, xn, w, 1, C, OC);
    for (int o = 0; o < OC; o++) ref[o] += res[o];
    paw_bf16 *d_x = dev_bf16(x, C), *d_nw = dev_bf16(nw, C), *d_w = dev_bf16(w, (size_t)OC * C);
    paw_bf16 *d_xf = poisoned_bf16(C);
    float *d_res = dev_f32(res, OC), *d_out = poisoned_f32(OC);
    CHECK(matvec_cuda_fits(d_x, d_w, C), "matvec_cuda_fits(C = %d)", C);
    matvec_cuda_rmsnorm(d_out, PAW_OUT_F32, d_x, d_nw, eps, d_xf, d_w, d_res, C, OC, 1.0f, 1.0f);
    float *got = host_f32(d_out, OC), *gotx = host_bf16(d_xf, C);
    snprintf(name, sizeof name, "matvec rmsnorm + product + residual, fp32 out, C%d OC%d", C, OC);
    CHECK_CLOSE(name, got, ref, OC, 1e-2);
    snprintf(name, sizeof name, "matvec rmsnorm: normalised row written back, C%d", C);
    CHECK_CLOSE(name, gotx, xn, C, 1e-2);
    free(got), free(gotx);

    // SwiGLU of [gate | up], then the product, bf16 out, no residual.
    float *gu = rand_bf16(2 * (size_t)C, 2.0f), *act = zeros(C), *ref2 = zeros(OC);
    swiglu_forward(act, gu, gu + C, (size_t)C);
    for (int i = 0; i < C; i++) act[i] = bf16_round(act[i]);
    matmul_forward(ref2, act, w, 1, C, OC);
    paw_bf16 *d_gu = dev_bf16(gu, 2 * (size_t)C), *d_out16 = poisoned_bf16(OC), *d_act = poisoned_bf16(C);
    matvec_cuda_swiglu(d_out16, PAW_OUT_BF16, d_gu, d_act, d_w, NULL, C, OC, 1.0f, 0.0f);
    got = host_bf16(d_out16, OC), gotx = host_bf16(d_act, C);
    snprintf(name, sizeof name, "matvec swiglu + product, bf16 out, C%d OC%d", C, OC);
    CHECK_CLOSE(name, got, ref2, OC, 1e-2);
    snprintf(name, sizeof name, "matvec swiglu: activation written back, C%d", C);
    CHECK_CLOSE(name, gotx, act, C, 1e-2);
    CHECK(!matvec_cuda_fits(d_x, d_w, C + 4), "matvec_cuda_fits accepts C = %d (not a multiple of 8)", C + 4);
    free(got), free(gotx);
    paw_cuda_free(d_x), paw_cuda_free(d_nw), paw_cuda_free(d_w), paw_cuda_free(d_xf), paw_cuda_free(d_res);
    paw_cuda_free(d_out), paw_cuda_free(d_gu), paw_cuda_free(d_out16), paw_cuda_free(d_act);
    free(x), free(nw), free(w), free(res), free(xn), free(rstd), free(ref), free(gu), free(act), free(ref2);
}

static void test_rmsnorm(int N, int C) {
    char name[96];
    const float eps = 1e-6f;
    size_t n = (size_t)N * C;
    float *x = rand_bf16(n, 2.0f), *w = rand_bf16((size_t)C, 1.0f), *y = rand_bf16(n, 1.0f);
    paw_bf16 *dx = dev_bf16(x, n), *dw = dev_bf16(w, (size_t)C), *dy = dev_bf16(y, n);

    float *ref = zeros(n), *ref_rstd = zeros((size_t)N);
    rmsnorm_forward(ref, ref_rstd, x, w, N, C, eps);
    paw_bf16 *dout = poisoned_bf16(n);
    float *drstd = poisoned_f32((size_t)N);
    rmsnorm_cuda_forward(dout, drstd, dx, dw, N, C, C, eps);
    float *got = host_bf16(dout, n), *got_r = host_f32(drstd, (size_t)N);
    snprintf(name, sizeof name, "rmsnorm fwd (C %d)", C);
    CHECK_CLOSE(name, got, ref, n, 1e-2);
    snprintf(name, sizeof name, "rmsnorm rstd (C %d)", C);
    CHECK_CLOSE(name, got_r, ref_rstd, (size_t)N, 1e-4);
    free(got), free(got_r);

    // Fused residual: res = bf16(x + y), out = rmsnorm(res).
    float *sum = xmalloc(sizeof(float) * n), *ref2 = zeros(n);
    for (size_t i = 0; i < n; i++) sum[i] = bf16_round(x[i] + y[i]);
    rmsnorm_forward(ref2, NULL, sum, w, N, C, eps);
    paw_bf16 *dres = poisoned_bf16(n), *dout2 = poisoned_bf16(n);
    residual_rmsnorm_cuda_forward(dres, dout2, NULL, dx, dy, dw, N, C, eps);
    got = host_bf16(dres, n);
    CHECK_CLOSE("residual add", got, sum, n, 1e-3);
    free(got);
    got = host_bf16(dout2, n);
    CHECK_CLOSE("residual + rmsnorm fwd", got, ref2, n, 1e-2);
    free(got);

    // Backward: dres (fp32) += ..., dres16 = copy, dweight accumulates onto a random start.
    float *d0 = rand_f32(n, 1.0f), *dw0 = rand_f32((size_t)C, 1.0f);
    float *ref_d = xmalloc(sizeof(float) * n), *ref_dw = xmalloc(sizeof(float) * (size_t)C);
    memcpy(ref_d, d0, sizeof(float) * n);
    memcpy(ref_dw, dw0, sizeof(float) * (size_t)C);
    rmsnorm_backward(ref_d, ref_dw, y, x, w, ref_rstd, N, C);
    float *dd = dev_f32(d0, n), *ddw = dev_f32(dw0, (size_t)C), *drstd_ref = dev_f32(ref_rstd, (size_t)N);
    paw_bf16 *dd16 = poisoned_bf16(n);
    rmsnorm_cuda_backward(dd, dd16, ddw, dy, dx, dw, drstd_ref, N, C);
    got = host_f32(dd, n);
    snprintf(name, sizeof name, "rmsnorm bwd dinp (fp32 residual) (C %d)", C);
    CHECK_CLOSE(name, got, ref_d, n, 1e-3);
    free(got);
    got = host_bf16(dd16, n);
    snprintf(name, sizeof name, "rmsnorm bwd dinp (bf16 copy) (C %d)", C);
    CHECK_CLOSE(name, got, ref_d, n, 1e-2);
    free(got);
    got = host_f32(ddw, (size_t)C);
    snprintf(name, sizeof name, "rmsnorm bwd dweight (C %d)", C);
    CHECK_CLOSE(name, got, ref_dw, (size_t)C, 1e-3);
    free(got);

    paw_cuda_free(dx), paw_cuda_free(dw), paw_cuda_free(dy), paw_cuda_free(dout), paw_cuda_free(drstd);
    paw_cuda_free(dres), paw_cuda_free(dout2), paw_cuda_free(dd), paw_cuda_free(ddw), paw_cuda_free(drstd_ref);
    paw_cuda_free(dd16);
    free(x), free(w), free(y), free(ref), free(ref_rstd), free(sum), free(ref2), free(d0), free(dw0), free(ref_d);
    free(ref_dw);
}

// Packed [N, (NH + 2 NKV) * HD] rows <-> separate q [N, NH*HD], k and v [N, NKV*HD].
static void unpack_qkv(const float *packed, float *q, float *k, float *v, int N, int NH, int NKV, int HD) {
    int Q = NH * HD, KV = NKV * HD, S = Q + 2 * KV;
    for (int n = 0; n < N; n++) {
        memcpy(q + (size_t)n * Q, packed + (size_t)n * S, sizeof(float) * Q);
        memcpy(k + (size_t)n * KV, packed + (size_t)n * S + Q, sizeof(float) * KV);
        memcpy(v + (size_t)n * KV, packed + (size_t)n * S + Q + KV, sizeof(float) * KV);
    }
}

static void test_qknorm_rope(int N, int NH, int NKV, int HD) {
    char name[128];
    const float eps = 1e-6f;
    const int Q = NH * HD, KV = NKV * HD, S = Q + 2 * KV, maxpos = 100;
    size_t n = (size_t)N * S;
    float *inp = rand_bf16(n, 1.5f), *qw = rand_bf16((size_t)HD, 1.0f), *kw = rand_bf16((size_t)HD, 1.0f);
    int *pos = xmalloc(sizeof(int) * (size_t)N);
    for (int i = 0; i < N; i++) pos[i] = (int)paw_rng_below(&g_rng, maxpos);
    float *cs = xmalloc(sizeof(float) * maxpos * (HD / 2)), *sn = xmalloc(sizeof(float) * maxpos * (HD / 2));
    rope_table(cs, sn, maxpos, HD, 1e6f);

    float *q = zeros((size_t)N * Q), *k = zeros((size_t)N * KV), *v = zeros((size_t)N * KV);
    float *rq = zeros((size_t)N * Q), *rk = zeros((size_t)N * KV);
    float *rstd_q = zeros((size_t)N * NH), *rstd_k = zeros((size_t)N * NKV);
    unpack_qkv(inp, q, k, v, N, NH, NKV, HD);
    qknorm_rope_forward(rq, rstd_q, q, qw, cs, sn, pos, N, NH, HD, eps);
    qknorm_rope_forward(rk, rstd_k, k, kw, cs, sn, pos, N, NKV, HD, eps);

    paw_bf16 *d_inp = dev_bf16(inp, n), *d_qw = dev_bf16(qw, (size_t)HD), *d_kw = dev_bf16(kw, (size_t)HD);
    float *d_cs = dev_f32(cs, (size_t)maxpos * (HD / 2)), *d_sn = dev_f32(sn, (size_t)maxpos * (HD / 2));
    int *d_pos = dev_i32(pos, (size_t)N);
    paw_bf16 *d_out = poisoned_bf16(n);
    qknorm_rope_cuda_forward(d_out, d_inp, d_qw, d_kw, d_cs, d_sn, d_pos, N, NH, NKV, HD, eps);
    float *got = host_bf16(d_out, n);
    float *gq = zeros((size_t)N * Q), *gk = zeros((size_t)N * KV), *gv = zeros((size_t)N * KV);
    unpack_qkv(got, gq, gk, gv, N, NH, NKV, HD);
    snprintf(name, sizeof name, "qknorm+rope fwd q (HD %d)", HD);
    CHECK_CLOSE(name, gq, rq, (size_t)N * Q, 1e-2);
    snprintf(name, sizeof name, "qknorm+rope fwd k (HD %d)", HD);
    CHECK_CLOSE(name, gk, rk, (size_t)N * KV, 1e-2);
    snprintf(name, sizeof name, "qknorm+rope fwd v copy (HD %d)", HD);
    CHECK_CLOSE(name, gv, v, (size_t)N * KV, 1e-6);
    // With a cache: the same output, and every token's key and value heads in its sequence's cache
    // row len + t, bit for bit; rows at or past the capacity are skipped. Four layouts: one
    // sequence of N tokens after 3 cached ones; N sequences of one token with their own lengths
    // (a batched decoding step); N / 4 sequences of 4 tokens with their own lengths (a batched
    // prefill, b = token / T and t = token % T), some running past the capacity; and the same
    // sequences sent to scattered rows of a larger cache (a refill of some rows of a running
    // batch), where the other rows must stay untouched.
    for (int layout = 0; layout <= 3; layout++) {
        const int per_row = layout != 0, T = layout == 0 ? N : layout == 1 ? 1 : 4, B = layout == 0 ? 1 : N / T;
        const int Nn = B * T, cap = layout == 0 ? N + 3 : layout == 1 ? 5 : 6, rows = layout == 3 ? B + 3 : B;
        const size_t nn = (size_t)Nn * S;
        int *len = xmalloc(sizeof(int) * (size_t)rows), *seq_row = xmalloc(sizeof(int) * (size_t)rows);
        for (int b = 0; b < rows; b++) len[b] = layout == 0 ? 3 : (int)paw_rng_below(&g_rng, (uint64_t)cap);
        for (int b = 0; b < rows; b++) seq_row[b] = b;
        for (int b = rows - 1; layout == 3 && b > 0; b--) {  // a random injective map: a shuffle's first B
            int j = (int)paw_rng_below(&g_rng, (uint64_t)b + 1), tmp = seq_row[b];
            seq_row[b] = seq_row[j], seq_row[j] = tmp;
        }
        if (layout == 1) len[0] = cap;   // one row already full: nothing stored
        if (layout >= 2) len[seq_row[0]] = cap - 2;  // its last two tokens fall past the end
        int *d_len = dev_i32(len, (size_t)rows), *d_seq_row = dev_i32(seq_row, (size_t)B);
        size_t cn = (size_t)rows * cap * KV;
        paw_bf16 *d_kc = poisoned_bf16(cn), *d_vc = poisoned_bf16(cn), *d_out2 = poisoned_bf16(nn);
        RopeCacheDst dst = {d_kc, d_vc, d_len, per_row, T, cap, layout == 3 ? d_seq_row : NULL};
        qknorm_rope_cuda_forward_cache(d_out2, d_inp, d_qw, d_kw, d_cs, d_sn, d_pos, Nn, NH, NKV, HD, eps, &dst);
        float *got2 = host_bf16(d_out2, nn), *kc = host_bf16(d_kc, cn), *vc = host_bf16(d_vc, cn);
        size_t bad = 0, stored = 0;
        for (size_t i = 0; i < nn; i++) bad += memcmp(&got2[i], &got[i], sizeof(float)) != 0;
        for (int tok = 0; tok < Nn; tok++) {
            int b = seq_row[tok / T], t = tok % T;
            if (len[b] + t >= cap) continue;
            stored++;
            const float *row = got + (size_t)tok * S;
            size_t at = ((size_t)b * cap + len[b] + t) * KV;
            bad += memcmp(kc + at, row + Q, sizeof(float) * KV) != 0;
            bad += memcmp(vc + at, row + Q + KV, sizeof(float) * KV) != 0;
        }
        size_t written = 0;  // the poisoned cache is NaN wherever nothing was stored
        for (size_t i = 0; i < cn; i++) written += !isnan(kc[i]) + !isnan(vc[i]);
        static const char *const layouts[] = {"one sequence", "per-row lengths, one token each",
                                              "per-row lengths, 4 tokens each", "4 tokens each into scattered rows"};
        CHECK(bad == 0 && stored > 0 && written == 2 * stored * KV,
              "qknorm+rope with cache (HD %d, %s): %zu mismatches, %zu rows stored, %zu values written (expected %zu)",
              HD, layouts[layout], bad, stored, written, 2 * stored * (size_t)KV);
        paw_cuda_free(d_len), paw_cuda_free(d_seq_row), paw_cuda_free(d_kc), paw_cuda_free(d_vc), paw_cuda_free(d_out2);
        free(len), free(seq_row), free(got2), free(kc), free(vc);
    }

    // Backward.
    float *dout = rand_bf16(n, 1.0f);
    float *dq = zeros((size_t)N * Q), *dk = zeros((size_t)N * KV), *dv = zeros((size_t)N * KV);
    unpack_qkv(dout, dq, dk, dv, N, NH, NKV, HD);
    float *rdq = zeros((size_t)N * Q), *rdk = zeros((size_t)N * KV), *rdqw = zeros((size_t)HD),
          *rdkw = zeros((size_t)HD);
    qknorm_rope_backward(rdq, rdqw, dq, q, qw, rstd_q, cs, sn, pos, N, NH, HD);
    qknorm_rope_backward(rdk, rdkw, dk, k, kw, rstd_k, cs, sn, pos, N, NKV, HD);
    paw_bf16 *d_dout = dev_bf16(dout, n), *d_din = poisoned_bf16(n);
    float *zhd = zeros((size_t)HD);
    float *d_dqw = dev_f32(zhd, (size_t)HD), *d_dkw = dev_f32(zhd, (size_t)HD);
    free(zhd);
    qknorm_rope_cuda_backward(d_din, d_dqw, d_dkw, d_dout, d_inp, d_qw, d_kw, d_cs, d_sn, d_pos, N, NH, NKV, HD, eps);
    float *gdin = host_bf16(d_din, n), *gdqw = host_f32(d_dqw, (size_t)HD), *gdkw = host_f32(d_dkw, (size_t)HD);
    unpack_qkv(gdin, gq, gk, gv, N, NH, NKV, HD);
    snprintf(name, sizeof name, "qknorm+rope bwd dq (HD %d)", HD);
    CHECK_CLOSE(name, gq, rdq, (size_t)N * Q, 1e-2);
    snprintf(name, sizeof name, "qknorm+rope bwd dk (HD %d)", HD);
    CHECK_CLOSE(name, gk, rdk, (size_t)N * KV, 1e-2);
    // dv is a copy of dout's value part (the CPU reference's dout was rotated in place: use dout).
    float *ov = zeros((size_t)N * KV), *oq = zeros((size_t)N * Q), *ok_ = zeros((size_t)N * KV);
    unpack_qkv(dout, oq, ok_, ov, N, NH, NKV, HD);
    snprintf(name, sizeof name, "qknorm+rope bwd dv copy (HD %d)", HD);
    CHECK_CLOSE(name, gv, ov, (size_t)N * KV, 1e-6);
    snprintf(name, sizeof name, "qknorm+rope bwd dqnorm (HD %d)", HD);
    CHECK_CLOSE(name, gdqw, rdqw, (size_t)HD, 1e-2);
    snprintf(name, sizeof name, "qknorm+rope bwd dknorm (HD %d)", HD);
    CHECK_CLOSE(name, gdkw, rdkw, (size_t)HD, 1e-2);

    paw_cuda_free(d_inp), paw_cuda_free(d_qw), paw_cuda_free(d_kw), paw_cuda_free(d_cs), paw_cuda_free(d_sn);
    paw_cuda_free(d_pos), paw_cuda_free(d_out), paw_cuda_free(d_dout), paw_cuda_free(d_din), paw_cuda_free(d_dqw);
    paw_cuda_free(d_dkw);
    free(inp), free(qw), free(kw), free(pos), free(cs), free(sn), free(q), free(k), free(v), free(rq), free(rk);
    free(rstd_q), free(rstd_k), free(got), free(gq), free(gk), free(gv), free(dout), free(dq), free(dk), free(dv);
    free(rdq), free(rdk), free(rdqw), free(rdkw), free(gdin), free(gdqw), free(gdkw), free(ov), free(oq), free(ok_);
}

// Full-sequence attention from a packed q/k/v buffer, with optional right padding (lens).
static void test_attention(int B, int T, int NH, int NKV, int HD, int padded) {
    char name[160];
    const int Q = NH * HD, KV = NKV * HD, S = Q + 2 * KV;
    const size_t N = (size_t)B * T;
    float *packed = rand_bf16(N * S, 1.0f);
    float *q = zeros(N * Q), *k = zeros(N * KV), *v = zeros(N * KV);
    unpack_qkv(packed, q, k, v, (int)N, NH, NKV, HD);
    int *lens = xmalloc(sizeof(int) * (size_t)B);
    for (int b = 0; b < B; b++) lens[b] = padded ? T - (int)paw_rng_below(&g_rng, (uint64_t)T / 2 + 1) - (b == 1) : T;
    if (padded && B > 1) lens[B - 1] = T;  // one full sequence too

    float *ref = zeros(N * Q), *ref_lse = zeros((size_t)B * NH * T);
    attention_forward(ref, ref_lse, q, k, v, B, T, T, T, NH, NKV, HD);
    // Padding rows: zero output and lse.
    for (int b = 0; b < B; b++)
        for (int t = lens[b]; t < T; t++) {
            memset(ref + ((size_t)b * T + t) * Q, 0, sizeof(float) * Q);
            for (int h = 0; h < NH; h++) ref_lse[((size_t)b * NH + h) * T + t] = 0.0f;
        }
    paw_bf16 *d_qkv = dev_bf16(packed, N * S), *d_out = poisoned_bf16(N * Q);
    float *d_lse = poisoned_f32((size_t)B * NH * T);
    int *d_lens = dev_i32(lens, (size_t)B);
    attention_cuda_forward(d_out, d_lse, d_qkv, d_qkv + Q, d_qkv + Q + KV, padded ? d_lens : NULL, NULL, B, T, T, NH,
                           NKV, HD, S, S, (long)T * S);
    float *got = host_bf16(d_out, N * Q), *got_lse = host_f32(d_lse, (size_t)B * NH * T);
    snprintf(name, sizeof name, "attention fwd B%d T%d NH%d NKV%d HD%d%s", B, T, NH, NKV, HD, padded ? " padded" : "");
    CHECK_CLOSE(name, got, ref, N * Q, 1e-2);
    snprintf(name, sizeof name, "attention lse B%d T%d HD%d%s", B, T, HD, padded ? " padded" : "");
    CHECK_CLOSE(name, got_lse, ref_lse, (size_t)B * NH * T, 1e-3);

    // Backward: dout zero on padding rows (nothing flows there), CPU from the CPU forward.
    float *dout = rand_bf16(N * Q, 1.0f);
    for (int b = 0; b < B; b++)
        for (int t = lens[b]; t < T; t++) memset(dout + ((size_t)b * T + t) * Q, 0, sizeof(float) * Q);
    float *rdq = zeros(N * Q), *rdk = zeros(N * KV), *rdv = zeros(N * KV);
    attention_backward(rdq, rdk, rdv, dout, q, k, v, ref, ref_lse, B, T, NH, NKV, HD);
    paw_bf16 *d_dout = dev_bf16(dout, N * Q), *d_dqkv = poisoned_bf16(N * S);
    float *d_dq32 = paw_cuda_malloc(sizeof(float) * N * Q), *d_dsum = paw_cuda_malloc(sizeof(float) * N * NH);
    attention_cuda_backward(d_dqkv, d_dqkv + Q, d_dqkv + Q + KV, S, S, d_dq32, d_dsum, d_dout, d_qkv, d_qkv + Q,
                            d_qkv + Q + KV, S, S, d_out, d_lse, padded ? d_lens : NULL, B, T, NH, NKV, HD);
    float *gd = host_bf16(d_dqkv, N * S), *gq = zeros(N * Q), *gk = zeros(N * KV), *gv = zeros(N * KV);
    unpack_qkv(gd, gq, gk, gv, (int)N, NH, NKV, HD);
    snprintf(name, sizeof name, "attention bwd dq HD%d%s", HD, padded ? " padded" : "");
    CHECK_CLOSE(name, gq, rdq, N * Q, 2e-2);
    snprintf(name, sizeof name, "attention bwd dk HD%d%s", HD, padded ? " padded" : "");
    CHECK_CLOSE(name, gk, rdk, N * KV, 2e-2);
    snprintf(name, sizeof name, "attention bwd dv HD%d%s", HD, padded ? " padded" : "");
    CHECK_CLOSE(name, gv, rdv, N * KV, 2e-2);

    paw_cuda_free(d_qkv), paw_cuda_free(d_out), paw_cuda_free(d_lse), paw_cuda_free(d_lens), paw_cuda_free(d_dout);
    paw_cuda_free(d_dqkv), paw_cuda_free(d_dq32), paw_cuda_free(d_dsum);
    free(packed), free(q), free(k), free(v), free(lens), free(ref), free(ref_lse), free(got), free(got_lse);
    free(dout), free(rdq), free(rdk), free(rdv), free(gd), free(gq), free(gk), free(gv);
}

// Decoding: Tq new queries against a cache of capacity cap holding Tk keys, Tk read on the device.
static void test_attention_cache(int B, int Tq, int Tk, int cap, int NH, int NKV, int HD) {
    char name[128];
    const int Q = NH * HD, KV = NKV * HD;
    float *q = rand_bf16((size_t)B * Tq * Q, 1.0f);
    float *kc = rand_bf16((size_t)B * cap * KV, 1.0f), *vc = rand_bf16((size_t)B * cap * KV, 1.0f);
    float *ref = zeros((size_t)B * Tq * Q);
    attention_forward(ref, NULL, q, kc, vc, B, Tq, Tk, cap, NH, NKV, HD);
    paw_bf16 *d_q = dev_bf16(q, (size_t)B * Tq * Q), *d_k = dev_bf16(kc, (size_t)B * cap * KV);
    paw_bf16 *d_v = dev_bf16(vc, (size_t)B * cap * KV), *d_out = poisoned_bf16((size_t)B * Tq * Q);
    int prev = Tk - Tq, *d_prev = dev_i32(&prev, 1);
    // Twice: the decoding kernel's block counts must be back at zero for the second call.
    for (int call = 1; call <= 2; call++) {
        if (call == 2) paw_cuda_memset(d_out, 0xff, sizeof(paw_bf16) * (size_t)B * Tq * Q);
        attention_cuda_forward(d_out, NULL, d_q, d_k, d_v, NULL, d_prev, B, Tq, 0, NH, NKV, HD, Q, KV,
                               (long)cap * KV);
        float *got = host_bf16(d_out, (size_t)B * Tq * Q);
        snprintf(name, sizeof name, "attention over a KV cache B%d Tq%d Tk%d HD%d (call %d)", B, Tq, Tk, HD, call);
        CHECK_CLOSE(name, got, ref, (size_t)B * Tq * Q, 1e-2);
        free(got);
    }
    paw_cuda_free(d_q), paw_cuda_free(d_k), paw_cuda_free(d_v), paw_cuda_free(d_out), paw_cuda_free(d_prev);
    free(q), free(kc), free(vc), free(ref);
}

// I % 8 == 0 runs the 8-wide kernels, other widths the scalar ones.
static void test_swiglu(int N, int I) {
    char name[96];
    size_t n = (size_t)N * I;
    float *gu = rand_bf16(2 * n, 2.0f), *gate = zeros(n), *up = zeros(n);
    for (int r = 0; r < N; r++) {
        memcpy(gate + (size_t)r * I, gu + (size_t)r * 2 * I, sizeof(float) * I);
        memcpy(up + (size_t)r * I, gu + (size_t)r * 2 * I + I, sizeof(float) * I);
    }
    float *ref = zeros(n);
    swiglu_forward(ref, gate, up, n);
    paw_bf16 *d_gu = dev_bf16(gu, 2 * n), *d_out = poisoned_bf16(n);
    swiglu_cuda_forward(d_out, d_gu, N, I);
    float *got = host_bf16(d_out, n);
    snprintf(name, sizeof name, "swiglu fwd (N %d, I %d)", N, I);
    CHECK_CLOSE(name, got, ref, n, 1e-2);

    float *dout = rand_bf16(n, 1.0f), *rdg = zeros(n), *rdu = zeros(n);
    swiglu_backward(rdg, rdu, dout, gate, up, n);
    paw_bf16 *d_dout = dev_bf16(dout, n), *d_dgu = poisoned_bf16(2 * n);
    swiglu_cuda_backward(d_dgu, d_dout, d_gu, N, I);
    float *gd = host_bf16(d_dgu, 2 * n), *gdg = zeros(n), *gdu = zeros(n);
    for (int r = 0; r < N; r++) {
        memcpy(gdg + (size_t)r * I, gd + (size_t)r * 2 * I, sizeof(float) * I);
        memcpy(gdu + (size_t)r * I, gd + (size_t)r * 2 * I + I, sizeof(float) * I);
    }
    snprintf(name, sizeof name, "swiglu bwd dgate (N %d, I %d)", N, I);
    CHECK_CLOSE(name, gdg, rdg, n, 1e-2);
    snprintf(name, sizeof name, "swiglu bwd dup (N %d, I %d)", N, I);
    CHECK_CLOSE(name, gdu, rdu, n, 1e-2);
    paw_cuda_free(d_gu), paw_cuda_free(d_out), paw_cuda_free(d_dout), paw_cuda_free(d_dgu);
    free(gu), free(gate), free(up), free(ref), free(got), free(dout), free(rdg), free(rdu), free(gd), free(gdg);
    free(gdu);
}

static void test_embedding(int N, int V, int C) {
    float *table = rand_bf16((size_t)V * C, 1.0f);
    int *ids = xmalloc(sizeof(int) * (size_t)N);
    for (int i = 0; i < N; i++) ids[i] = (int)paw_rng_below(&g_rng, (uint64_t)V / 4);  // many repeats
    ids[1] = -1, ids[N - 1] = -1;  // rows supplied by the caller
    float *pre = rand_bf16((size_t)N * C, 1.0f), *ref = xmalloc(sizeof(float) * (size_t)N * C);
    memcpy(ref, pre, sizeof(float) * (size_t)N * C);
    embedding_forward(ref, ids, table, N, C);
    paw_bf16 *d_table = dev_bf16(table, (size_t)V * C), *d_out = dev_bf16(pre, (size_t)N * C);
    int *d_ids = dev_i32(ids, (size_t)N);
    embedding_cuda_forward(d_out, d_ids, d_table, N, C);
    float *got = host_bf16(d_out, (size_t)N * C);
    CHECK_CLOSE("embedding fwd (caller rows kept)", got, ref, (size_t)N * C, 1e-6);

    float *dout = rand_f32((size_t)N * C, 1.0f), *dt0 = rand_f32((size_t)V * C, 1.0f);
    float *rdt = xmalloc(sizeof(float) * (size_t)V * C);
    memcpy(rdt, dt0, sizeof(float) * (size_t)V * C);
    embedding_backward(rdt, dout, ids, N, C);
    float *d_dout = dev_f32(dout, (size_t)N * C), *d_dt = dev_f32(dt0, (size_t)V * C);
    embedding_cuda_backward(d_dt, d_dout, d_ids, N, C);
    float *gdt = host_f32(d_dt, (size_t)V * C);
    CHECK_CLOSE("embedding bwd (scatter-add)", gdt, rdt, (size_t)V * C, 1e-6);
    paw_cuda_free(d_table), paw_cuda_free(d_out), paw_cuda_free(d_ids), paw_cuda_free(d_dout), paw_cuda_free(d_dt);
    free(table), free(ids), free(pre), free(ref), free(got), free(dout), free(dt0), free(rdt), free(gdt);
}

// V % 4 == 0 runs the four-wide kernel, other V the scalar one.
// The logits rise along each row, so that a thread's running maximum grows over its chunks (the
// rescale of its running sum) wherever V spans several chunks per thread (V / 4 > 512).
static void test_crossentropy(int N, int V) {
    char name[96];
    float *logits = rand_f32((size_t)N * V, 3.0f), *w = xmalloc(sizeof(float) * (size_t)N);
    for (size_t i = 0; i < (size_t)N * V; i++) logits[i] += 6.0f * (float)(i % (size_t)V) / (float)V;
    int *tg = xmalloc(sizeof(int) * (size_t)N);
    for (int i = 0; i < N; i++) {
        tg[i] = (int)paw_rng_below(&g_rng, (uint64_t)V);
        w[i] = (i % 4 == 1) ? 0.0f : 0.5f + paw_rng_uniform(&g_rng);
    }
    if (N > 3) tg[3] = -100, w[3] = 0.0f;  // ignored target on a zero-weight row
    const float scale = 0.37f;
    float *nll = zeros((size_t)N), *lse = zeros((size_t)N);
    int bad = 0;
    crossentropy_forward(nll, lse, logits, tg, w, N, V, &bad);
    float *dl = xmalloc(sizeof(float) * (size_t)N * V);
    memcpy(dl, logits, sizeof(float) * (size_t)N * V);
    crossentropy_backward_inplace(dl, lse, tg, w, N, V, scale);

    float *d_logits = dev_f32(logits, (size_t)N * V), *d_w = dev_f32(w, (size_t)N);
    int *d_tg = dev_i32(tg, (size_t)N);
    float *d_nll = poisoned_f32((size_t)N), *d_lse = poisoned_f32((size_t)N);
    paw_bf16 *d_dl = poisoned_bf16((size_t)N * V);
    crossentropy_cuda(d_nll, d_lse, d_dl, d_logits, d_tg, d_w, N, V, scale);
    float *gn = host_f32(d_nll, (size_t)N), *gl = host_f32(d_lse, (size_t)N), *gd = host_bf16(d_dl, (size_t)N * V);
    snprintf(name, sizeof name, "crossentropy nll (V %d)", V);
    CHECK_CLOSE(name, gn, nll, (size_t)N, 1e-4);
    snprintf(name, sizeof name, "crossentropy lse (V %d)", V);
    CHECK_CLOSE(name, gl, lse, (size_t)N, 1e-5);
    snprintf(name, sizeof name, "crossentropy dlogits (V %d)", V);
    CHECK_CLOSE(name, gd, dl, (size_t)N * V, 1e-2);
    paw_cuda_free(d_logits), paw_cuda_free(d_w), paw_cuda_free(d_tg), paw_cuda_free(d_nll), paw_cuda_free(d_lse);
    paw_cuda_free(d_dl);
    free(logits), free(w), free(tg), free(nll), free(lse), free(dl), free(gn), free(gl), free(gd);
}

// The fused LM head + loss in several row chunks against logits GEMM + loss + GEMM backward.
static void test_lmhead_ce(int N, int C, int V, int chunk) {
    char name[128];
    float *x = rand_bf16((size_t)N * C, 1.0f), *W = rand_bf16((size_t)V * C, 0.2f);
    float *w = xmalloc(sizeof(float) * (size_t)N);
    int *tg = xmalloc(sizeof(int) * (size_t)N);
    for (int i = 0; i < N; i++) tg[i] = (int)paw_rng_below(&g_rng, (uint64_t)V), w[i] = (i % 5 == 2) ? 0.0f : 1.0f;
    const float scale = 1.0f / (float)N;
    float *logits = zeros((size_t)N * V), *nll = zeros((size_t)N), *lse = zeros((size_t)N);
    matmul_forward(logits, x, W, N, C, V);
    crossentropy_forward(nll, lse, logits, tg, w, N, V, NULL);
    crossentropy_backward_inplace(logits, lse, tg, w, N, V, scale);
    float *rdx = zeros((size_t)N * C), *rdW = rand_f32((size_t)V * C, 0.01f);
    float *dW0 = xmalloc(sizeof(float) * (size_t)V * C);
    memcpy(dW0, rdW, sizeof(float) * (size_t)V * C);
    matmul_backward(rdx, rdW, logits, x, W, N, C, V);

    paw_bf16 *d_x = dev_bf16(x, (size_t)N * C), *d_W = dev_bf16(W, (size_t)V * C), *d_dx = poisoned_bf16((size_t)N * C);
    float *d_w = dev_f32(w, (size_t)N), *d_nll = poisoned_f32((size_t)N), *d_dW = dev_f32(dW0, (size_t)V * C);
    int *d_tg = dev_i32(tg, (size_t)N);
    float *ws = paw_cuda_malloc(sizeof(float) * (size_t)chunk * V);
    paw_bf16 *dws = paw_cuda_malloc(sizeof(paw_bf16) * (size_t)chunk * V);
    lmhead_ce_cuda(d_nll, d_dx, d_dW, d_x, d_W, d_tg, d_w, N, C, V, scale, ws, dws, chunk);
    float *gn = host_f32(d_nll, (size_t)N), *gdx = host_bf16(d_dx, (size_t)N * C), *gdW = host_f32(d_dW, (size_t)V * C);
    snprintf(name, sizeof name, "lm head + loss nll (N%d V%d chunk %d)", N, V, chunk);
    CHECK_CLOSE(name, gn, nll, (size_t)N, 1e-3);
    snprintf(name, sizeof name, "lm head + loss dx (N%d V%d chunk %d)", N, V, chunk);
    CHECK_CLOSE(name, gdx, rdx, (size_t)N * C, 2e-2);
    snprintf(name, sizeof name, "lm head + loss dW accumulated (N%d V%d chunk %d)", N, V, chunk);
    CHECK_CLOSE(name, gdW, rdW, (size_t)V * C, 1e-2);
    paw_cuda_free(d_x), paw_cuda_free(d_W), paw_cuda_free(d_dx), paw_cuda_free(d_w), paw_cuda_free(d_nll);
    paw_cuda_free(d_dW), paw_cuda_free(d_tg), paw_cuda_free(ws), paw_cuda_free(dws);
    free(x), free(W), free(w), free(tg), free(logits), free(nll), free(lse), free(rdx), free(rdW), free(dW0), free(gn);
    free(gdx), free(gdW);
}

static void test_adamw(size_t n) {
    // Moments small against the clipped gradient's share ((1 - beta) g, (1 - beta) g^2), so that an
    // error in the gradient's term shows; the clip is active (norm ~ 0.5 sqrt(n) > max_norm).
    float *p = rand_f32(n, 1.0f), *g = rand_f32(n, 0.5f), *m = rand_f32(n, 0.01f), *v = xmalloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) v[i] = fabsf(paw_rng_normal(&g_rng)) * 1e-4f;
    const float lr = 1e-2f, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f, wd = 0.1f, max_norm = 0.2f * sqrtf((float)n);
    const int step = 3;
    double sq = 0;
    for (size_t i = 0; i < n; i++) sq += (double)g[i] * g[i];
    float clip = (float)fmin(1.0, max_norm / (sqrt(sq) + 1e-6));
    float *rp = xmalloc(sizeof(float) * n), *rm = xmalloc(sizeof(float) * n), *rv = xmalloc(sizeof(float) * n);
    float bc1 = 1.0f - powf(b1, step), bc2 = 1.0f - powf(b2, step);
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] * clip;
        rm[i] = b1 * m[i] + (1 - b1) * gi;
        rv[i] = b2 * v[i] + (1 - b2) * gi * gi;
        rp[i] = p[i] - lr * ((rm[i] / bc1) / (sqrtf(rv[i] / bc2) + eps) + wd * p[i]);
    }
    float *d_p = dev_f32(p, n), *d_g = dev_f32(g, n), *d_m = dev_f32(m, n), *d_v = dev_f32(v, n);
    float zero = 0, *d_sq = dev_f32(&zero, 1);
    paw_bf16 *d_b = poisoned_bf16(n);
    grad_norm_sq_cuda(d_sq, d_g, n);
    float got_sq;
    paw_cuda_download(&got_sq, d_sq, sizeof got_sq);
    CHECK(fabs(got_sq - sq) < 1e-4 * sq, "grad norm^2 %g vs %g", got_sq, sq);
    adamw_cuda(d_b, d_p, d_g, d_m, d_v, n, lr, b1, b2, eps, wd, step, d_sq, max_norm, 99);
    float *gp = host_f32(d_p, n), *gm = host_f32(d_m, n), *gv = host_f32(d_v, n), *gb = host_bf16(d_b, n);
    CHECK_CLOSE("adamw master", gp, rp, n, 1e-5);
    CHECK_CLOSE("adamw m", gm, rm, n, 1e-5);
    CHECK_CLOSE("adamw v", gv, rv, n, 1e-5);
    // The bf16 copy is one of the two neighbours of the master value.
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        float lo = st_bf16_to_f32(st_f32_to_bf16(gp[i])), step_ = fabsf(lo) * (1.0f / 128.0f) + 1e-30f;
        if (!(fabsf(gb[i] - gp[i]) <= step_)) off++;
    }
    CHECK(off == 0, "adamw bf16 copy: %zu of %zu values not next to the master value", off, n);
    // The same update on buffers off their vector alignment must give the same bits as the
    // four-wide kernel above, as ZeRO runs may start anywhere: all state one float off (a head of
    // three one at a time, then four-wide), and the gradients off by another float (all one at a time).
    for (int grad_off = 1; grad_off <= 2; grad_off++) {
        float *u_p = paw_cuda_malloc(sizeof(float) * (n + 2)), *u_g = paw_cuda_malloc(sizeof(float) * (n + 2));
        float *u_m = paw_cuda_malloc(sizeof(float) * (n + 2)), *u_v = paw_cuda_malloc(sizeof(float) * (n + 2));
        paw_bf16 *u_b = poisoned_bf16(n + 2);
        paw_cuda_upload(u_p + 1, p, sizeof(float) * n), paw_cuda_upload(u_g + grad_off, g, sizeof(float) * n);
        paw_cuda_upload(u_m + 1, m, sizeof(float) * n), paw_cuda_upload(u_v + 1, v, sizeof(float) * n);
        adamw_cuda(u_b + 1, u_p + 1, u_g + grad_off, u_m + 1, u_v + 1, n, lr, b1, b2, eps, wd, step, d_sq, max_norm, 99);
        float *sp = host_f32(u_p + 1, n), *sm = host_f32(u_m + 1, n), *sv = host_f32(u_v + 1, n);
        float *sb = host_bf16(u_b + 1, n);
        size_t differ = 0;
        for (size_t i = 0; i < n; i++)
            differ += memcmp(&sp[i], &gp[i], 4) || memcmp(&sm[i], &gm[i], 4) || memcmp(&sv[i], &gv[i], 4) ||
                      memcmp(&sb[i], &gb[i], 4);
        CHECK(differ == 0, "adamw: %zu of %zu elements differ between the aligned run and one %s", differ, n,
              grad_off == 1 ? "a float off (head + four-wide)" : "with gradients two floats off (one at a time)");
        paw_cuda_free(u_p), paw_cuda_free(u_g), paw_cuda_free(u_m), paw_cuda_free(u_v), paw_cuda_free(u_b);
        free(sp), free(sm), free(sv), free(sb);
    }

    // Stochastic rounding is unbiased: x = 1 + 1/3 of a bf16 step rounds up a third of the time.
    size_t k = 1 << 16;
    float *x = xmalloc(sizeof(float) * k);
    for (size_t i = 0; i < k; i++) x[i] = 1.0f + (1.0f / 128.0f) / 3.0f;
    float *d_x = dev_f32(x, k);
    paw_bf16 *d_r = poisoned_bf16(k);
    stochastic_round_cuda(d_r, d_x, k, 12345);
    float *r = host_bf16(d_r, k);
    double mean = 0;
    int bad = 0;
    for (size_t i = 0; i < k; i++) {
        mean += r[i];
        bad += !(r[i] == 1.0f || r[i] == 1.0f + 1.0f / 128.0f);
    }
    mean /= (double)k;
    CHECK(bad == 0 && fabs(mean - x[0]) < 2e-4, "stochastic rounding: mean %.6f vs %.6f, %d off-grid", mean, x[0], bad);
    paw_cuda_free(d_p), paw_cuda_free(d_g), paw_cuda_free(d_m), paw_cuda_free(d_v), paw_cuda_free(d_sq);
    paw_cuda_free(d_b), paw_cuda_free(d_x), paw_cuda_free(d_r);
    free(p), free(g), free(m), free(v), free(rp), free(rm), free(rv), free(gp), free(gm), free(gv), free(gb), free(x);
    free(r);
}

// Per-example LoRA against lora_forward/lora_backward. y/dy are rows of ld_y elements (the first
// d_out used, like a column slice of a fused projection): the spare columns of y must come back
// untouched and those of dy hold NaN, so reading them fails. Accumulated outputs start from
// random values and the checks compare what the op added with the reference (computed from zero).
// The decoding form: one token per example, n modules reading the same x, their outputs side by
// side in rows of ld_y (the packed q/k/v layout), each against the CPU reference of its module;
// columns past the modules' outputs stay untouched.
static void test_lora_tokens(int nb, int d_in, int r, int n, const int *d_outs, int ld_y) {
    char name[160];
    const float scale = 2.0f / (float)r;
    const size_t nx = (size_t)nb * d_in, ny = (size_t)nb * ld_y, nu = (size_t)nb * r;
    float *x = rand_bf16(nx, 1.0f), *y0 = rand_bf16(ny, 0.1f);
    paw_bf16 *d_x = dev_bf16(x, nx), *d_y = dev_bf16(y0, ny);
    float *A[LORA_TOKENS_MAX], *Bm[LORA_TOKENS_MAX], *ref_y[LORA_TOKENS_MAX], *ref_u[LORA_TOKENS_MAX];
    LoraTokensModule m[LORA_TOKENS_MAX];
    int off = 0;
    for (int i = 0; i < n; i++) {
        const size_t na = (size_t)nb * r * d_in, nbm = (size_t)nb * d_outs[i] * r;
        A[i] = rand_bf16(na, 0.3f), Bm[i] = rand_bf16(nbm, 0.3f);
        ref_y[i] = zeros((size_t)nb * d_outs[i]), ref_u[i] = zeros(nu);
        lora_forward(ref_y[i], ref_u[i], x, A[i], Bm[i], nb, 1, d_in, d_outs[i], r, scale);
        m[i] = (LoraTokensModule){dev_bf16(A[i], na), dev_bf16(Bm[i], nbm), poisoned_bf16(nu), d_y + off, d_outs[i]};
        off += d_outs[i];
    }
    lora_cuda_forward_tokens(m, n, d_x, nb, d_in, r, ld_y, scale);
    float *got_y = host_bf16(d_y, ny);
    size_t spare_changed = 0;
    off = 0;
    for (int i = 0; i < n; i++) {
        float *added = xmalloc(sizeof(float) * (size_t)nb * d_outs[i]), *got_u = host_bf16(m[i].u, nu);
        for (int b = 0; b < nb; b++)
            for (int o = 0; o < d_outs[i]; o++)
                added[(size_t)b * d_outs[i] + o] = got_y[(size_t)b * ld_y + off + o] - y0[(size_t)b * ld_y + off + o];
        snprintf(name, sizeof name, "lora tokens u, module %d of %d, nb=%d %dx%d r=%d", i, n, nb, d_in, d_outs[i], r);
        CHECK_CLOSE(name, got_u, ref_u[i], nu, 1e-2);
        snprintf(name, sizeof name, "lora tokens y, module %d of %d, nb=%d %dx%d r=%d ld %d", i, n, nb, d_in, d_outs[i], r,
                 ld_y);
        CHECK_CLOSE(name, added, ref_y[i], (size_t)nb * d_outs[i], 1e-2);
        off += d_outs[i];
        free(added), free(got_u);
    }
    for (int b = 0; b < nb; b++)
        for (int j = off; j < ld_y; j++) spare_changed += !(got_y[(size_t)b * ld_y + j] == y0[(size_t)b * ld_y + j]);
    CHECK(spare_changed == 0, "lora tokens: %zu values of y past the modules' %d columns changed", spare_changed, off);
    for (int i = 0; i < n; i++) {
        paw_cuda_free((void *)m[i].A), paw_cuda_free((void *)m[i].Bm), paw_cuda_free(m[i].u);
        free(A[i]), free(Bm[i]), free(ref_y[i]), free(ref_u[i]);
    }
    paw_cuda_free(d_x), paw_cuda_free(d_y);
    free(x), free(y0), free(got_y);
}

static void test_lora(int nb, int T, int d_in, int d_out, int r, int ld_y, PawOutType type) {
    char name[160];
    const float scale = 2.0f / (float)r;
    const size_t N = (size_t)nb * T, nx = N * d_in, na = (size_t)nb * r * d_in, nbm = (size_t)nb * d_out * r;
    const size_t ny = N * ld_y, nyd = N * d_out, nu = N * r;
    const char *tname = type == PAW_OUT_F32 ? "fp32" : "bf16";
    float *x = rand_bf16(nx, 1.0f), *A = rand_bf16(na, 0.3f), *Bm = rand_bf16(nbm, 0.3f);
    float *y0 = rand_bf16(ny, 0.1f), *dy = rand_bf16(ny, 1.0f), *dy_dense = xmalloc(sizeof(float) * nyd);
    for (size_t i = 0; i < N; i++)
        for (int j = 0; j < ld_y; j++) {
            if (j < d_out) dy_dense[i * d_out + j] = dy[i * ld_y + j];
            else dy[i * ld_y + j] = NAN;
        }
    float *ref_y = zeros(nyd), *ref_u = zeros(nu);
    lora_forward(ref_y, ref_u, x, A, Bm, nb, T, d_in, d_out, r, scale);
    float *ref_dx = zeros(nx), *ref_dA = zeros(na), *ref_dB = zeros(nbm), *du_scratch = zeros((size_t)T * r);
    lora_backward(ref_dx, ref_dA, ref_dB, dy_dense, x, ref_u, A, Bm, nb, T, d_in, d_out, r, scale, du_scratch);

    paw_bf16 *d_x = dev_bf16(x, nx), *d_A = dev_bf16(A, na), *d_B = dev_bf16(Bm, nbm), *d_u = poisoned_bf16(nu);
    void *d_y = type == PAW_OUT_F32 ? (void *)dev_f32(y0, ny) : (void *)dev_bf16(y0, ny);
    lora_cuda_forward(d_y, type, ld_y, d_u, d_x, d_A, d_B, nb, T, d_in, d_out, r, scale);
    float *got_y = type == PAW_OUT_F32 ? host_f32((float *)d_y, ny) : host_bf16((paw_bf16 *)d_y, ny);
    float *added = xmalloc(sizeof(float) * nyd);
    size_t spare_changed = 0;
    for (size_t i = 0; i < N; i++)
        for (int j = 0; j < ld_y; j++) {
            if (j < d_out) added[i * d_out + j] = got_y[i * ld_y + j] - y0[i * ld_y + j];
            else spare_changed += !(got_y[i * ld_y + j] == y0[i * ld_y + j]);
        }
    float *got_u = host_bf16(d_u, nu);
    snprintf(name, sizeof name, "lora u nb=%d T=%d %dx%d r=%d", nb, T, d_in, d_out, r);
    CHECK_CLOSE(name, got_u, ref_u, nu, 1e-2);
    snprintf(name, sizeof name, "lora fwd (%s y, ld %d) nb=%d T=%d %dx%d r=%d", tname, ld_y, nb, T, d_in, d_out, r);
    CHECK_CLOSE(name, added, ref_y, nyd, 1e-2);
    CHECK(spare_changed == 0, "lora fwd: %zu values of y beyond column d_out=%d changed", spare_changed, d_out);

    // Backward onto random starting gradients; du is poisoned scratch.
    float *dx0 = rand_bf16(nx, 0.1f), *dA0 = rand_f32(na, 1.0f), *dB0 = rand_f32(nbm, 1.0f);
    void *d_dx = type == PAW_OUT_F32 ? (void *)dev_f32(dx0, nx) : (void *)dev_bf16(dx0, nx);
    float *d_dA = dev_f32(dA0, na), *d_dB = dev_f32(dB0, nbm);
    paw_bf16 *d_dy = dev_bf16(dy, ny), *d_du = poisoned_bf16(nu);
    lora_cuda_backward(d_dx, type, d_dA, d_dB, d_dy, ld_y, d_x, d_u, d_A, d_B, nb, T, d_in, d_out, r, scale, d_du);
    float *got_dx = type == PAW_OUT_F32 ? host_f32((float *)d_dx, nx) : host_bf16((paw_bf16 *)d_dx, nx);
    float *got_dA = host_f32(d_dA, na), *got_dB = host_f32(d_dB, nbm);
    for (size_t i = 0; i < nx; i++) got_dx[i] -= dx0[i];
    for (size_t i = 0; i < na; i++) got_dA[i] -= dA0[i];
    for (size_t i = 0; i < nbm; i++) got_dB[i] -= dB0[i];
    snprintf(name, sizeof name, "lora dx (%s, accumulated) nb=%d T=%d %dx%d r=%d", tname, nb, T, d_in, d_out, r);
    CHECK_CLOSE(name, got_dx, ref_dx, nx, 1e-2);
    snprintf(name, sizeof name, "lora dA (accumulated) nb=%d T=%d %dx%d r=%d", nb, T, d_in, d_out, r);
    CHECK_CLOSE(name, got_dA, ref_dA, na, 1e-2);
    snprintf(name, sizeof name, "lora dB (accumulated) nb=%d T=%d %dx%d r=%d", nb, T, d_in, d_out, r);
    CHECK_CLOSE(name, got_dB, ref_dB, nbm, 1e-2);

    // dB alone (dA and dx NULL): the early return must still have written it.
    paw_cuda_upload(d_dB, dB0, sizeof(float) * nbm);
    lora_cuda_backward(NULL, type, NULL, d_dB, d_dy, ld_y, d_x, d_u, d_A, d_B, nb, T, d_in, d_out, r, scale, d_du);
    free(got_dB);
    got_dB = host_f32(d_dB, nbm);
    for (size_t i = 0; i < nbm; i++) got_dB[i] -= dB0[i];
    snprintf(name, sizeof name, "lora dB alone nb=%d T=%d %dx%d r=%d", nb, T, d_in, d_out, r);
    CHECK_CLOSE(name, got_dB, ref_dB, nbm, 1e-2);

    paw_cuda_free(d_x), paw_cuda_free(d_A), paw_cuda_free(d_B), paw_cuda_free(d_u), paw_cuda_free(d_y);
    paw_cuda_free(d_dx), paw_cuda_free(d_dA), paw_cuda_free(d_dB), paw_cuda_free(d_dy), paw_cuda_free(d_du);
    free(x), free(A), free(Bm), free(y0), free(dy), free(dy_dense), free(ref_y), free(ref_u), free(ref_dx);
    free(ref_dA), free(ref_dB), free(du_scratch), free(got_y), free(added), free(got_u), free(dx0), free(dA0);
    free(dB0), free(got_dx), free(got_dA), free(got_dB);
}

// A mapper of d-wide compiler states for an interpreter of L layers (C, I, heads) with N bases of rank r.
static MapperConfig mapper_test_config(int L, int N, int r, int C, int I, int NH, int NKV, int HD, int d) {
    MapperConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.d = d, cfg.L = L, cfg.nbases = N, cfg.rank = r, cfg.alpha = 2.0f * (float)r;
    cfg.icfg.hidden_size = C, cfg.icfg.intermediate_size = I, cfg.icfg.num_layers = L;
    cfg.icfg.num_heads = NH, cfg.icfg.num_kv_heads = NKV, cfg.icfg.head_dim = HD;
    return cfg;
}

// The mapper's basis mixing against mapper_forward/mapper_backward: the CPU mapper runs whole,
// and its coefficients (mp.coef), adapters, coefficient gradients (mp.dcoef) and basis gradients
// are the references for pack -> mix -> (backward) -> unpack on the GPU. fp32 throughout.
static void test_mapper_mix(int nb, int L, int N, int r, int C, int I, int NH, int NKV, int HD, int d, int P) {
    char name[160];
    MapperConfig cfg = mapper_test_config(L, N, r, C, I, NH, NKV, HD, d);
    Mapper mp;
    mapper_create(&mp, &cfg);
    mapper_init(&mp, 4242);
    // mapper_init zeroes the B bases; random ones make the B side checkable.
    for (int i = 4 + LORA_NUM_MODULES; i < MAPPER_NUM_TENSORS; i++) {
        int nd, sh[3];
        size_t n = mapper_tensor_shape(&cfg, i, &nd, sh);
        float *p = *mapper_tensor_slot(&mp.params, i);
        for (size_t k = 0; k < n; k++) p[k] = 0.2f * paw_rng_normal(&g_rng);
    }
    Qwen3Lora lora;
    mapper_lora_alloc(&cfg, nb, 1, &lora);
    float *H = rand_f32((size_t)nb * L * P * d, 1.0f), *dH = zeros((size_t)nb * L * P * d);
    mapper_forward(&mp, H, nb, P, &lora);
    for (int mod = 0; mod < LORA_NUM_MODULES; mod++) {
        int din, dout;
        lora_module_dims(&cfg.icfg, mod, &din, &dout);
        size_t na = (size_t)L * nb * r * din, nbm = (size_t)L * nb * dout * r;
        for (size_t k = 0; k < na; k++) lora.dA[mod][k] = paw_rng_normal(&g_rng);
        for (size_t k = 0; k < nbm; k++) lora.dB[mod][k] = paw_rng_normal(&g_rng);
    }
    mapper_zero_grad(&mp);
    mapper_backward(&mp, P, &lora, dH);

    const size_t K = mapper_num_coef(&cfg), rows = (size_t)L * nb, slice = rows * N;
    float *d_coef = dev_f32(mp.coef, nb * K), *d_packed = poisoned_f32(14 * slice);
    float *d_dpacked = poisoned_f32(14 * slice), *d_dcoef = poisoned_f32(nb * K);
    mapper_coef_pack_cuda(d_packed, d_coef, nb, L, N);
    for (int mod = 0; mod < LORA_NUM_MODULES; mod++) {
        int din, dout;
        lora_module_dims(&cfg.icfg, mod, &din, &dout);
        for (int side = 0; side < 2; side++) {
            const int cols = side ? dout * r : r * din;
            const size_t nout = rows * cols, nbase = (size_t)N * cols, off = (size_t)(mod * 2 + side) * slice;
            const float *bases = side ? mp.params.bbase[mod] : mp.params.abase[mod];
            const float *ref = side ? lora.B[mod] : lora.A[mod], *grad_out = side ? lora.dB[mod] : lora.dA[mod];
            const float *ref_dbases = side ? mp.grads.bbase[mod] : mp.grads.abase[mod];
            float *d_bases = dev_f32(bases, nbase), *d_out = poisoned_f32(nout);
            mapper_mix_cuda_forward(d_out, d_packed + off, d_bases, (int)rows, N, cols);
            float *got = host_f32(d_out, nout);
            snprintf(name, sizeof name, "mapper mix %s.%c nb=%d L=%d N=%d [%zu, %d]", lora_module_names[mod],
                     side ? 'B' : 'A', nb, L, N, rows, cols);
            CHECK_CLOSE(name, got, ref, nout, 1e-4);
            free(got);

            float *g0 = rand_f32(nbase, 1.0f), *d_dbases = dev_f32(g0, nbase), *d_gout = dev_f32(grad_out, nout);
            mapper_mix_cuda_backward(d_dpacked + off, d_dbases, d_gout, d_packed + off, d_bases, (int)rows, N, cols);
            got = host_f32(d_dbases, nbase);
            for (size_t k = 0; k < nbase; k++) got[k] -= g0[k];
            snprintf(name, sizeof name, "mapper mix dbases %s.%c (accumulated) nb=%d L=%d N=%d",
                     lora_module_names[mod], side ? 'B' : 'A', nb, L, N);
            CHECK_CLOSE(name, got, ref_dbases, nbase, 1e-4);
            free(got), free(g0);
            paw_cuda_free(d_bases), paw_cuda_free(d_out), paw_cuda_free(d_dbases), paw_cuda_free(d_gout);
        }
    }
    mapper_coef_unpack_cuda(d_dcoef, d_dpacked, nb, L, N);
    float *got = host_f32(d_dcoef, nb * K);
    snprintf(name, sizeof name, "mapper mix dcoef nb=%d L=%d N=%d", nb, L, N);
    CHECK_CLOSE(name, got, mp.dcoef, nb * K, 1e-4);
    free(got);

    paw_cuda_free(d_coef), paw_cuda_free(d_packed), paw_cuda_free(d_dpacked), paw_cuda_free(d_dcoef);
    free(H), free(dH);
    mapper_lora_free(&lora);
    mapper_free(&mp);
}

// The whole GPU mapper (compiler/mapper_cuda.h) against mapper_forward/mapper_backward on the same
// parameters and states. Both sides compute in fp32: the GPU GEMMs (CUBLAS_COMPUTE_32F, no TF32)
// only add in another order, and the mean pool sums in double on both sides, so the adapters differ
// by a few ulps accumulated over reductions of at most d or N terms: ~1e-6 relative here. 1e-5
// leaves room for that, while a wrong index, transpose, missing bias or bf16/TF32 rounding (~1e-3)
// fails. The backward goes through two more GEMMs, CUDA's erff/expf in the GELU derivative (a few
// ulps from libm's) and basis gradients summed over L*nb adapters with cancellation: 1e-4.
static void test_mapper_cuda(int nb, int L, int N, int r, int C, int I, int NH, int NKV, int HD, int tied, int d,
                             int P) {
    char name[160];
    MapperConfig cfg = mapper_test_config(L, N, r, C, I, NH, NKV, HD, d);
    cfg.icfg.tie_word_embeddings = tied;
    Mapper mp, back;
    mapper_create(&mp, &cfg);
    mapper_create(&back, &cfg);
    mapper_init(&mp, 777);
    // mapper_init zeroes the B bases and both biases; random ones make those paths checkable.
    for (int i = 0; i < MAPPER_NUM_TENSORS; i++) {
        if (i != 1 && i != 3 && i < 4 + LORA_NUM_MODULES) continue;
        int nd, sh[3];
        size_t n = mapper_tensor_shape(&cfg, i, &nd, sh);
        float *p = *mapper_tensor_slot(&mp.params, i);
        for (size_t k = 0; k < n; k++) p[k] = 0.2f * paw_rng_normal(&g_rng);
    }
    MapperCuda *g = mapper_cuda_create(&mp);
    CHECK(g != NULL, "mapper_cuda_create: %s", paw_last_error());
    if (!g) {
        mapper_free(&mp), mapper_free(&back);
        return;
    }
    CHECK(mapper_cuda_num_params(g) == mp.num_params, "mapper_cuda: %zu parameters, expected %zu",
          mapper_cuda_num_params(g), mp.num_params);
    CHECK(mapper_cuda_get_params(g, &back) == 0 &&
              memcmp(back.params_memory, mp.params_memory, sizeof(float) * mp.num_params) == 0,
          "mapper_cuda: parameters do not survive the upload/download round trip");

    const size_t nH = (size_t)nb * L * P * d;
    float *H = rand_f32(nH, 1.0f);
    Qwen3Lora lora;
    mapper_lora_alloc(&cfg, nb, 1, &lora);
    MapperCudaLora gl;
    CHECK(mapper_cuda_lora_alloc(&cfg, nb, 1, &gl) == 0, "mapper_cuda_lora_alloc: %s", paw_last_error());
    Qwen3CudaLora view;
    mapper_cuda_lora_view(&gl, &view);
    CHECK(view.nb == nb && view.rank == r && view.scale == cfg.alpha / (float)r && view.A[LORA_V] == gl.A16[LORA_V] &&
              view.B[LORA_DOWN] == gl.B16[LORA_DOWN] && view.dB[LORA_Q] == gl.dB[LORA_Q],
          "mapper_cuda_lora_view does not point at the bf16 adapters and gradients");
    float *d_H = dev_f32(H, nH), *d_dH = poisoned_f32(nH);
    CHECK(mapper_cuda_backward(g, P, &gl, d_dH) == -1, "mapper_cuda_backward before any forward must fail");

    mapper_forward(&mp, H, nb, P, &lora);
    paw_cuda_memset(gl.f32_block, 0xFF, sizeof(float) * gl.numel);
    paw_cuda_memset(gl.bf16_block, 0xFF, sizeof(paw_bf16) * gl.numel);
    CHECK(mapper_cuda_forward(g, d_H, nb, P, &gl) == 0, "mapper_cuda_forward: %s", paw_last_error());
    for (int mod = 0; mod < LORA_NUM_MODULES; mod++) {
        int din, dout;
        lora_module_dims(&cfg.icfg, mod, &din, &dout);
        for (int side = 0; side < 2; side++) {
            const size_t n = side ? (size_t)L * nb * dout * r : (size_t)L * nb * r * din;
            const float *ref = side ? lora.B[mod] : lora.A[mod];
            float *got = host_f32(side ? gl.B[mod] : gl.A[mod], n);
            snprintf(name, sizeof name, "mapper cuda fwd %s.%c nb=%d L=%d N=%d d=%d P=%d", lora_module_names[mod],
                     side ? 'B' : 'A', nb, L, N, d, P);
            CHECK_CLOSE(name, got, ref, n, 1e-5);
            free(got);
            // The bf16 copy: one rounding (relative error <= 2^-9) away from the fp32 adapters.
            got = host_bf16(side ? gl.B16[mod] : gl.A16[mod], n);
            snprintf(name, sizeof name, "mapper cuda fwd %s.%c bf16 copy nb=%d", lora_module_names[mod],
                     side ? 'B' : 'A', nb);
            CHECK_CLOSE(name, got, ref, n, 5e-3);
            free(got);
        }
    }

    // Backward from random adapter gradients, the same on both sides.
    for (int mod = 0; mod < LORA_NUM_MODULES; mod++) {
        int din, dout;
        lora_module_dims(&cfg.icfg, mod, &din, &dout);
        size_t na = (size_t)L * nb * r * din, nbm = (size_t)L * nb * dout * r;
        for (size_t k = 0; k < na; k++) lora.dA[mod][k] = paw_rng_normal(&g_rng);
        for (size_t k = 0; k < nbm; k++) lora.dB[mod][k] = paw_rng_normal(&g_rng);
        paw_cuda_upload(gl.dA[mod], lora.dA[mod], sizeof(float) * na);
        paw_cuda_upload(gl.dB[mod], lora.dB[mod], sizeof(float) * nbm);
    }
    float *ref_dH = zeros(nH);
    mapper_zero_grad(&mp);
    mapper_backward(&mp, P, &lora, ref_dH);
    CHECK(mapper_cuda_backward(g, P, &gl, d_dH) == 0, "mapper_cuda_backward: %s", paw_last_error());
    float *got = host_f32(d_dH, nH);
    snprintf(name, sizeof name, "mapper cuda bwd dH nb=%d L=%d P=%d d=%d", nb, L, P, d);
    CHECK_CLOSE(name, got, ref_dH, nH, 1e-4);
    free(got);
    // Twice: the gradients accumulate (2x the reference), dH is overwritten.
    for (int pass = 1; pass <= 2; pass++) {
        if (pass == 2) {
            paw_cuda_memset(d_dH, 0xFF, sizeof(float) * nH);
            CHECK(mapper_cuda_backward(g, P, &gl, d_dH) == 0, "mapper_cuda_backward: %s", paw_last_error());
            got = host_f32(d_dH, nH);
            snprintf(name, sizeof name, "mapper cuda bwd dH (second pass) nb=%d", nb);
            CHECK_CLOSE(name, got, ref_dH, nH, 1e-4);
            free(got);
            for (size_t k = 0; k < mp.num_params; k++) mp.grads_memory[k] *= 2.0f;
        }
        CHECK(mapper_cuda_get_grads(g, &back) == 0, "mapper_cuda_get_grads: %s", paw_last_error());
        for (int i = 0; i < MAPPER_NUM_TENSORS; i++) {
            int nd, sh[3];
            char tname[64];
            size_t n = mapper_tensor_shape(&cfg, i, &nd, sh);
            snprintf(name, sizeof name, "mapper cuda bwd d%s%s nb=%d L=%d N=%d", mapper_tensor_name(i, tname, sizeof tname),
                     pass == 2 ? " (accumulated)" : "", nb, L, N);
            CHECK_CLOSE(name, *mapper_tensor_slot(&back.grads, i), *mapper_tensor_slot(&mp.grads, i), n, 1e-4);
        }
    }
    mapper_cuda_zero_grad(g);
    CHECK(mapper_cuda_get_grads(g, &back) == 0, "mapper_cuda_get_grads: %s", paw_last_error());
    size_t nonzero = 0;
    for (size_t k = 0; k < back.num_params; k++) nonzero += back.grads_memory[k] != 0.0f;
    CHECK(nonzero == 0, "mapper_cuda_zero_grad left %zu nonzero gradients", nonzero);

    paw_cuda_free(d_H), paw_cuda_free(d_dH);
    free(H), free(ref_dH);
    mapper_cuda_lora_free(&gl);
    mapper_cuda_free(g);
    mapper_lora_free(&lora);
    mapper_free(&mp), mapper_free(&back);
}

// ---------------------------------------------------------------------------------------------
#define FIX "tests/fixtures/qwen3/"

// Loads fixture model FIX<fixture> (frozen: no weight gradients); on failure records it and
// returns -1.
static int load_fixture(const char *fixture, int frozen, Qwen3 *m) {
    char dir[256];
    snprintf(dir, sizeof dir, FIX "%s", fixture);
    if (qwen3_load(m, dir, frozen) == 0) return 0;
    CHECK(0, "%s: %s", dir, paw_last_error());
    return -1;
}

static void test_model_fixture(const char *fixture) {
    char dir[256], path[300], key[300], name[400];
    snprintf(dir, sizeof dir, FIX "%s", fixture);
    snprintf(path, sizeof path, "%s/reference.safetensors", dir);
    Qwen3 cpu;
    if (qwen3_load(&cpu, dir, 0) != 0) {
        CHECK(0, "%s: %s", dir, paw_last_error());
        return;
    }
    SafeTensors ref;
    if (st_open(&ref, path) != 0) {
        CHECK(0, "%s", paw_last_error());
        qwen3_free(&cpu);
        return;
    }
    const StTensor *ti = st_find(&ref, "ids");
    int B = (int)ti->shape[0], T = (int)ti->shape[1], N = B * T, V = cpu.cfg.vocab_size, C = cpu.cfg.hidden_size;
    int *ids = ref_i32(&ref, "ids", NULL), *targets = ref_i32(&ref, "targets", NULL);
    float *weights = ref_f32(&ref, "weights", NULL);
    float *ref_logits = ref_f32(&ref, "logits", NULL), *ref_loss = ref_f32(&ref, "loss", NULL);
    float *ref_dx0 = ref_f32(&ref, "dx0", NULL);

    // 0: every layer keeps its activations; 1: all recomputed; 2: layer 0 kept, the rest recomputed.
    // Recomputation runs the same kernels again, so 1 and 2 must also agree closely with 0: up to
    // the order of the atomic adds in the attention backward, seen through bf16 activation
    // gradients (5e-3, against the 1e-1 that bf16 against fp32 transformers needs).
    float *base_dx0 = NULL, *base_grads = NULL;
    for (int recompute = 0; recompute <= 2; recompute++) {
        const char *tag = recompute_tag(recompute);
        Qwen3Cuda *g = qwen3_cuda_create(&cpu, 0, recompute != 0);
        if (!g) {
            CHECK(0, "create: %s", paw_last_error());
            break;
        }
        if (recompute == 2) CHECK(qwen3_cuda_set_recompute_keep(g, 1) == 0, "recompute_keep: %s", paw_last_error());
        // Logits.
        Qwen3CudaInputs in = {.ids = ids, .logits_mode = QWEN3_LOGITS_ALL};
        CHECK(qwen3_cuda_forward(g, &in, B, T) == 0, "forward: %s", paw_last_error());
        float *logits = xmalloc(sizeof(float) * (size_t)N * V);
        CHECK(qwen3_cuda_get_logits(g, logits) == 0, "get_logits");
        snprintf(name, sizeof name, "%s logits vs transformers", fixture);
        CHECK_CLOSE(name, logits, ref_logits, (size_t)N * V, 3e-2);
        // Loss and gradients.
        // Zeroed before the forward: with backward = 1 the loss pass already adds the LM head's gradient.
        qwen3_cuda_zero_grad(g);
        Qwen3CudaInputs tin = {.ids = ids, .targets = targets, .loss_weight = weights, .backward = 1};
        CHECK(qwen3_cuda_forward(g, &tin, B, T) == 0, "forward with loss: %s", paw_last_error());
        float loss = qwen3_cuda_loss(g);
        CHECK(fabsf(loss - ref_loss[0]) < 1e-2f * fabsf(ref_loss[0]), "%s loss %f vs %f", fixture, loss, ref_loss[0]);
        CHECK(qwen3_cuda_backward(g) == 0, "backward: %s", paw_last_error());
        float *dx0 = xmalloc(sizeof(float) * (size_t)N * C);
        CHECK(qwen3_cuda_get_input_grad(g, dx0) == 0, "input grad");
        snprintf(name, sizeof name, "%s dx0%s", fixture, tag);
        CHECK_CLOSE(name, dx0, ref_dx0, (size_t)N * C, 1e-1);
        Qwen3 grads;  // CPU-layout buffers for the GPU gradients
        qwen3_create(&grads, &cpu.cfg, 1);
        CHECK(qwen3_cuda_get_grads(g, &grads.params) == 0, "get_grads: %s", paw_last_error());
        int checked = 0;
        for (int i = 0; i < QWEN3_NUM_PARAMS; i++) {
            Qwen3ParamInfo info = qwen3_param_info(&cpu.cfg, i);
            if (info.numel == 0) continue;
            int layers = info.per_layer ? cpu.cfg.num_layers : 1;
            size_t per = info.numel / (size_t)layers;
            const float *gg = *qwen3_param_slot(&grads.params, i);
            for (int l = 0; l < layers; l++) {
                char hf[256];
                snprintf(hf, sizeof hf, info.hf_name, l);
                snprintf(key, sizeof key, "grad.%s", hf);
                float *rg = ref_f32(&ref, key, NULL);
                snprintf(name, sizeof name, "%s %s%s", fixture, key, tag);
                CHECK_CLOSE(name, gg + (size_t)l * per, rg, per, 1e-1);
                free(rg);
                checked++;
            }
        }
        CHECK(checked >= 3 + 11 * cpu.cfg.num_layers - 1, "%s: only %d gradient tensors compared", fixture, checked);
        if (recompute == 0) {
            base_dx0 = dx0, dx0 = NULL;
            base_grads = xmalloc(sizeof(float) * grads.num_params);
            memcpy(base_grads, grads.params_memory, sizeof(float) * grads.num_params);
        } else if (base_dx0) {
            snprintf(name, sizeof name, "%s dx0%s vs kept activations", fixture, tag);
            CHECK_CLOSE(name, dx0, base_dx0, (size_t)N * C, 5e-3);
            snprintf(name, sizeof name, "%s all gradients%s vs kept activations", fixture, tag);
            CHECK_CLOSE(name, grads.params_memory, base_grads, grads.num_params, 5e-3);
        }
        qwen3_free(&grads);
        free(dx0);
        free(logits);
        qwen3_cuda_free(g);
    }
    free(base_dx0), free(base_grads);

    // Frozen: no weight gradients, same input gradient.
    Qwen3Cuda *g = qwen3_cuda_create(&cpu, 1, 0);
    if (g) {
        Qwen3CudaInputs tin = {.ids = ids, .targets = targets, .loss_weight = weights, .backward = 1};
        CHECK(qwen3_cuda_forward(g, &tin, B, T) == 0 && qwen3_cuda_backward(g) == 0, "frozen fwd/bwd: %s",
              paw_last_error());
        float *dx0 = xmalloc(sizeof(float) * (size_t)N * C);
        CHECK(qwen3_cuda_get_input_grad(g, dx0) == 0, "frozen input grad");
        snprintf(name, sizeof name, "%s frozen dx0", fixture);
        CHECK_CLOSE(name, dx0, ref_dx0, (size_t)N * C, 1e-1);
        Qwen3 grads;
        qwen3_create(&grads, &cpu.cfg, 1);
        CHECK(qwen3_cuda_get_grads(g, &grads.params) != 0, "frozen model returned weight gradients");
        qwen3_free(&grads);
        free(dx0);
        qwen3_cuda_free(g);
    }
    free(ids), free(targets), free(weights), free(ref_logits), free(ref_loss), free(ref_dx0);
    st_close(&ref);
    qwen3_free(&cpu);
}

// Right padding: the valid rows of a padded batch equal the same rows without padding, the loss
// only counts valid rows, and padding rows get no input gradient.
static void test_model_padding(void) {
    Qwen3 cpu;
    if (qwen3_load(&cpu, FIX "tiny-gqa-tied", 0) != 0) {
        CHECK(0, "%s", paw_last_error());
        return;
    }
    const int B = 3, T = 37, N = B * T, V = cpu.cfg.vocab_size, C = cpu.cfg.hidden_size;
    int lens[3] = {37, 20, 1};
    int *ids = xmalloc(sizeof(int) * N), *tg = xmalloc(sizeof(int) * N);
    for (int i = 0; i < N; i++) ids[i] = (int)paw_rng_below(&g_rng, (uint64_t)V), tg[i] = (int)paw_rng_below(&g_rng, (uint64_t)V);
    Qwen3Cuda *g = qwen3_cuda_create(&cpu, 0, 0);
    if (!g) {
        CHECK(0, "%s", paw_last_error());
        qwen3_free(&cpu);
        return;
    }
    float *a = xmalloc(sizeof(float) * (size_t)N * V), *b = xmalloc(sizeof(float) * (size_t)N * V);
    Qwen3CudaInputs in = {.ids = ids, .logits_mode = QWEN3_LOGITS_ALL};
    CHECK(qwen3_cuda_forward(g, &in, B, T) == 0 && qwen3_cuda_get_logits(g, a) == 0, "unpadded forward");
    in.lens = lens;
    CHECK(qwen3_cuda_forward(g, &in, B, T) == 0 && qwen3_cuda_get_logits(g, b) == 0, "padded forward");
    double worst = 0;
    for (int s = 0; s < B; s++)
        for (int t = 0; t < lens[s]; t++) {
            size_t row = ((size_t)s * T + t) * V;
            double e = rel_max(b + row, a + row, (size_t)V);
            if (!(e <= worst)) worst = e;
        }
    CHECK(worst < 1e-6, "padded batch: valid rows differ from the unpadded run (rel max %g)", worst);
    // Loss with lens equals the loss with the padding rows' weights set to zero.
    float *w = xmalloc(sizeof(float) * N);
    for (int i = 0; i < N; i++) w[i] = (i % T) < lens[i / T] ? 1.0f : 0.0f;
    Qwen3CudaInputs t1 = {.ids = ids, .targets = tg, .lens = lens, .backward = 1};
    CHECK(qwen3_cuda_forward(g, &t1, B, T) == 0, "padded loss");
    float l1 = qwen3_cuda_loss(g);
    CHECK(qwen3_cuda_backward(g) == 0, "padded backward: %s", paw_last_error());
    float *dx = xmalloc(sizeof(float) * (size_t)N * C);
    CHECK(qwen3_cuda_get_input_grad(g, dx) == 0, "padded input grad");
    int nonzero = 0, nan = 0;
    for (int i = 0; i < N; i++)
        for (int c = 0; c < C; c++) {
            float d = dx[(size_t)i * C + c];
            nan += isnan(d);
            if ((i % T) >= lens[i / T] && d != 0.0f) nonzero++;
        }
    CHECK(nan == 0 && nonzero == 0, "padded backward: %d NaN, %d nonzero gradients on padding rows", nan, nonzero);
    Qwen3CudaInputs t2 = {.ids = ids, .targets = tg, .loss_weight = w};
    CHECK(qwen3_cuda_forward(g, &t2, B, T) == 0, "masked loss");
    float l2 = qwen3_cuda_loss(g);
    CHECK(fabsf(l1 - l2) < 1e-5f * fabsf(l2), "padded loss %f vs masked loss %f", l1, l2);
    free(a), free(b), free(w), free(dx), free(ids), free(tg);
    qwen3_cuda_free(g);
    qwen3_free(&cpu);
}

// Whether greedy decoding's token `chosen` agrees with `logits` of an independent full forward:
// the same argmax, or a near tie that bf16 decides either way. Two bf16 computations of the
// same logits in different orders (GEMM shapes, cache vs full attention) differ by up to about
// 1e-2 of their largest magnitude, the bf16 tolerance of the logit checks, so a runner-up within
// that of the best is undetermined; anything further below is a wrong token. Near ties are
// printed and counted in *ties.
static int greedy_agrees(const float *logits, int V, int chosen, const char *what, int *ties) {
    int best = 0;
    float top = 0.0f;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    if (best == chosen) return 1;
    for (int i = 0; i < V; i++) top = fmaxf(top, fabsf(logits[i]));
    float gap = (logits[best] - logits[chosen]) / top;
    printf("%s: greedy chose %d, the full forward %d, %.1e below it (of the largest logit): %s\n", what, chosen, best, gap,
           gap <= 1e-2f ? "a bf16 near tie" : "WRONG");
    if (gap > 1e-2f) return 0;
    (*ties)++;
    return 1;
}

// Prefill of ids[0, prefill) into a fresh cache, then one step per token up to n: the logits of
// the prefill's last row and of every step, (n - prefill + 1) rows of V.
static int decode_rows(Qwen3Cuda *g, const int *ids, int n, int prefill, int V, float *rows) {
    if (qwen3_cuda_cache_reset(g, n + 3) != 0 || qwen3_cuda_cache_forward(g, ids, prefill, rows) != 0) return -1;
    for (int t = prefill; t < n; t++)
        if (qwen3_cuda_cache_forward(g, &ids[t], 1, rows + (size_t)(t - prefill + 1) * V) != 0) return -1;
    return 0;
}

// KV-cache decoding (prefill, one eager step, then graph replays) against the full forward.
// pdl: the decoding steps' kernels launched programmatically (qwen3_cuda_set_decode_pdl), where
// the device supports it; the results must not change.
static void test_model_decode(const char *fixture, int fused, int pdl) {
    char name[256];
    Qwen3 cpu;
    if (load_fixture(fixture, 1, &cpu) != 0) return;
    const int n = 29, prefill = 11, V = cpu.cfg.vocab_size, nrows = n - prefill + 1;
    int ids[29];
    for (int i = 0; i < n; i++) ids[i] = (int)paw_rng_below(&g_rng, (uint64_t)V);
    Qwen3Cuda *g = qwen3_cuda_create(&cpu, 1, 0);
    if (!g) {
        CHECK(0, "%s", paw_last_error());
        qwen3_free(&cpu);
        return;
    }
    qwen3_cuda_set_fused_decode(g, fused);
    float *full = xmalloc(sizeof(float) * (size_t)n * V), *row = xmalloc(sizeof(float) * (size_t)V);
    float *rows = xmalloc(sizeof(float) * (size_t)nrows * V), *plain = NULL;
    // Programmatic launch changes when kernels start, not what they compute: the same steps
    // launched the ordinary way must give the same bits (a race would not).
    if (pdl) {
        plain = xmalloc(sizeof(float) * (size_t)nrows * V);
        qwen3_cuda_set_decode_pdl(g, 0);
        CHECK(decode_rows(g, ids, n, prefill, V, plain) == 0, "decode without programmatic launch: %s", paw_last_error());
    }
    int pdl_on = qwen3_cuda_set_decode_pdl(g, pdl);
    char tag[128];
    snprintf(tag, sizeof tag, "%s%s%s", fixture, fused ? " (fused decode)" : "",
             pdl_on ? " (programmatic launch)" : pdl ? " (programmatic launch unsupported here)" : "");
    Qwen3CudaInputs in = {.ids = ids, .logits_mode = QWEN3_LOGITS_ALL};
    CHECK(qwen3_cuda_forward(g, &in, 1, n) == 0 && qwen3_cuda_get_logits(g, full) == 0, "full forward");
    CHECK(decode_rows(g, ids, n, prefill, V, rows) == 0, "%s decode: %s", tag, paw_last_error());
    snprintf(name, sizeof name, "%s decode prefill row %d", tag, prefill - 1);
    CHECK_CLOSE(name, rows, full + (size_t)(prefill - 1) * V, (size_t)V, 2e-2);
    double worst = 0;
    for (int t = prefill; t < n; t++) {
        double e = rel_l2(rows + (size_t)(t - prefill + 1) * V, full + (size_t)t * V, (size_t)V);
        if (!(e <= worst)) worst = e;
    }
    CHECK(worst < 2e-2, "%s decode steps vs full forward: worst row rel L2 %g", tag, worst);
    if (plain) {
        int differ = 0;
        for (int r = 0; r < nrows; r++)
            differ += memcmp(rows + (size_t)r * V, plain + (size_t)r * V, sizeof(float) * V) != 0;
        CHECK(differ == 0, "%s: %d of %d rows differ from the same steps launched the ordinary way", tag, differ, nrows);
    }
    // Greedy generation equals argmax over successive full forwards (first 4 tokens). The prompt
    // is not the one decoded above, so a prefill that failed to write the cache would read the
    // other prompt's keys and values and show here.
    const int *prompt = ids + 12;
    int out[4], seq[40];
    memcpy(seq, prompt, sizeof(int) * 8);
    int got = qwen3_cuda_generate(g, prompt, 8, 4, -1, out);
    CHECK(got == 4, "generate returned %d", got);
    int agree = 0, ties = 0;
    for (int k = 0; k < 4 && got == 4; k++) {
        Qwen3CudaInputs li = {.ids = seq, .logits_mode = QWEN3_LOGITS_LAST};
        if (qwen3_cuda_forward(g, &li, 1, 8 + k) != 0 || qwen3_cuda_get_logits(g, row) != 0) break;
        char what[160];
        snprintf(what, sizeof what, "%s generate token %d", tag, k);
        agree += greedy_agrees(row, V, out[k], what, &ties);
        seq[8 + k] = out[k];
    }
    CHECK(agree == 4, "%s generate: %d of 4 tokens agree with full-forward argmax (%d near ties)", tag, agree, ties);
    free(full), free(row), free(rows), free(plain);
    qwen3_cuda_free(g);
    qwen3_free(&cpu);
}

// ---------------------------------------------------------------------------------------------
// Per-example LoRA and injected gradients in the CUDA model, against the fp32 CPU model
// (model/qwen3.c, itself checked against transformers and a PyTorch PAW step). Both see the same
// bf16-rounded adapters; the GPU additionally rounds weights and activations to bf16, hence the
// model-level tolerances of the fixture tests.

// A random adapter set for nb examples (bf16-rounded values, B large enough to matter).
static void rand_lora(const Qwen3Config *cfg, int nb, int r, Qwen3Lora *lo) {
    MapperConfig mc = {.d = 8, .L = cfg->num_layers, .nbases = 1, .rank = r, .alpha = 2.0f * r, .icfg = *cfg};
    mapper_lora_alloc(&mc, nb, 1, lo);
    for (int m = 0; m < LORA_NUM_MODULES; m++) {
        int din, dout;
        lora_module_dims(cfg, m, &din, &dout);
        size_t na = (size_t)cfg->num_layers * nb * r * din, nbb = (size_t)cfg->num_layers * nb * dout * r;
        for (size_t i = 0; i < na; i++) lo->A[m][i] = bf16_round(0.2f * paw_rng_normal(&g_rng) / sqrtf((float)din));
        for (size_t i = 0; i < nbb; i++) lo->B[m][i] = bf16_round(0.2f * paw_rng_normal(&g_rng) / sqrtf((float)r));
    }
}

typedef struct {
    Qwen3CudaLora lo;
    paw_bf16 *A[LORA_NUM_MODULES], *B[LORA_NUM_MODULES];
} DevLora;

static void dev_lora(const Qwen3Config *cfg, const Qwen3Lora *h, DevLora *d, int with_grads) {
    memset(d, 0, sizeof *d);
    d->lo.rank = h->rank, d->lo.nb = h->nb, d->lo.scale = h->scale;
    for (int m = 0; m < LORA_NUM_MODULES; m++) {
        int din, dout;
        lora_module_dims(cfg, m, &din, &dout);
        size_t na = (size_t)cfg->num_layers * h->nb * h->rank * din, nbb = (size_t)cfg->num_layers * h->nb * dout * h->rank;
        d->lo.A[m] = d->A[m] = dev_bf16(h->A[m], na);
        d->lo.B[m] = d->B[m] = dev_bf16(h->B[m], nbb);
        if (with_grads) {
            d->lo.dA[m] = poisoned_f32(na), d->lo.dB[m] = poisoned_f32(nbb);
            paw_cuda_memset(d->lo.dA[m], 0, sizeof(float) * na);  // accumulated: start from zero
            paw_cuda_memset(d->lo.dB[m], 0, sizeof(float) * nbb);
        }
    }
}

static void dev_lora_free(DevLora *d) {
    for (int m = 0; m < LORA_NUM_MODULES; m++)
        paw_cuda_free(d->A[m]), paw_cuda_free(d->B[m]), paw_cuda_free(d->lo.dA[m]), paw_cuda_free(d->lo.dB[m]);
}

static void test_model_lora(const char *fixture, int recompute) {
    char name[300];
    Qwen3 cpu;
    if (load_fixture(fixture, 1, &cpu) != 0) return;
    const Qwen3Config *cfg = &cpu.cfg;
    const int B = 3, T = 23, N = B * T, V = cfg->vocab_size, C = cfg->hidden_size, r = 5;
    int *ids = xmalloc(sizeof(int) * N), *tg = xmalloc(sizeof(int) * N);
    float *w = xmalloc(sizeof(float) * N);
    for (int i = 0; i < N; i++) {
        ids[i] = (int)paw_rng_below(&g_rng, (uint64_t)V);
        tg[i] = (int)paw_rng_below(&g_rng, (uint64_t)V);
        w[i] = (i % T) >= 9 ? 1.0f : 0.0f;  // loss on the tail only, like a PAW target
    }
    Qwen3Lora lo;
    rand_lora(cfg, B, r, &lo);
    Qwen3Inputs cin = {.ids = ids, .targets = tg, .loss_weight = w, .lora = &lo};
    CHECK(qwen3_forward(&cpu, &cin, B, T) == 0 && qwen3_backward(&cpu, 0) == 0, "cpu lora fwd/bwd: %s", paw_last_error());
    float ref_loss = cpu.loss;
    float *ref_dx = xmalloc(sizeof(float) * (size_t)N * C);
    memcpy(ref_dx, cpu.scratch.dx, sizeof(float) * (size_t)N * C);

    Qwen3Cuda *g = qwen3_cuda_create(&cpu, 1, recompute != 0);
    if (!g) {
        CHECK(0, "%s", paw_last_error());
        qwen3_free(&cpu);
        return;
    }
    if (recompute == 2) CHECK(qwen3_cuda_set_recompute_keep(g, 1) == 0, "recompute_keep: %s", paw_last_error());
    DevLora dl;
    dev_lora(cfg, &lo, &dl, 1);
    Qwen3CudaInputs in = {.ids = ids, .targets = tg, .loss_weight = w, .lora = &dl.lo, .backward = 1};
    CHECK(qwen3_cuda_forward(g, &in, B, T) == 0, "lora forward: %s", paw_last_error());
    float loss = qwen3_cuda_loss(g);
    CHECK(fabsf(loss - ref_loss) < 1e-2f * fabsf(ref_loss), "%s lora loss %f vs cpu %f", fixture, loss, ref_loss);
    CHECK(qwen3_cuda_backward(g) == 0, "lora backward: %s", paw_last_error());
    float *dx = xmalloc(sizeof(float) * (size_t)N * C);
    CHECK(qwen3_cuda_get_input_grad(g, dx) == 0, "lora input grad");
    snprintf(name, sizeof name, "%s lora dx0%s", fixture, recompute_tag(recompute));
    CHECK_CLOSE(name, dx, ref_dx, (size_t)N * C, 1e-1);
    for (int m = 0; m < LORA_NUM_MODULES; m++) {
        int din, dout;
        lora_module_dims(cfg, m, &din, &dout);
        size_t na = (size_t)cfg->num_layers * B * r * din, nbb = (size_t)cfg->num_layers * B * dout * r;
        float *ga = host_f32(dl.lo.dA[m], na), *gb = host_f32(dl.lo.dB[m], nbb);
        snprintf(name, sizeof name, "%s lora dA %s%s", fixture, lora_module_names[m], recompute_tag(recompute));
        CHECK_CLOSE(name, ga, lo.dA[m], na, 1e-1);
        snprintf(name, sizeof name, "%s lora dB %s%s", fixture, lora_module_names[m], recompute_tag(recompute));
        CHECK_CLOSE(name, gb, lo.dB[m], nbb, 1e-1);
        free(ga), free(gb);
    }
    // Logits with adapters, and the adapters must matter (else the checks above prove little).
    float *ref_logits = xmalloc(sizeof(float) * (size_t)N * V), *logits = xmalloc(sizeof(float) * (size_t)N * V);
    Qwen3Inputs cl = {.ids = ids, .logits_mode = QWEN3_LOGITS_ALL, .lora = &lo};
    CHECK(qwen3_forward(&cpu, &cl, B, T) == 0, "cpu lora logits");
    memcpy(ref_logits, cpu.acts.logits, sizeof(float) * (size_t)N * V);
    Qwen3CudaInputs gl = {.ids = ids, .logits_mode = QWEN3_LOGITS_ALL, .lora = &dl.lo};
    CHECK(qwen3_cuda_forward(g, &gl, B, T) == 0 && qwen3_cuda_get_logits(g, logits) == 0, "lora logits");
    snprintf(name, sizeof name, "%s lora logits", fixture);
    CHECK_CLOSE(name, logits, ref_logits, (size_t)N * V, 3e-2);
    Qwen3CudaInputs bare = {.ids = ids, .logits_mode = QWEN3_LOGITS_ALL};
    CHECK(qwen3_cuda_forward(g, &bare, B, T) == 0 && qwen3_cuda_get_logits(g, logits) == 0, "bare logits");
    double effect = rel_l2(logits, ref_logits, (size_t)N * V);
    CHECK(effect > 0.1, "%s: the adapters change the logits by only %g (test too weak)", fixture, effect);

    // Decoding with one adapter (example 1's) against the full forward with the same adapter.
    MapperConfig mc = {.d = 8, .L = cfg->num_layers, .nbases = 1, .rank = r, .alpha = 2.0f * r, .icfg = *cfg};
    Qwen3Lora one;
    mapper_lora_select(&mc, &lo, 1, &one);
    DevLora d1;
    dev_lora(cfg, &one, &d1, 0);
    const int n = 17, prefill = 6;
    float *full = xmalloc(sizeof(float) * (size_t)n * V), *row = xmalloc(sizeof(float) * (size_t)V);
    Qwen3CudaInputs fi = {.ids = ids, .logits_mode = QWEN3_LOGITS_ALL, .lora = &d1.lo};
    CHECK(qwen3_cuda_forward(g, &fi, 1, n) == 0 && qwen3_cuda_get_logits(g, full) == 0, "lora full forward");
    CHECK(qwen3_cuda_set_decode_lora(g, &d1.lo) == 0, "set decode lora: %s", paw_last_error());
    CHECK(qwen3_cuda_cache_reset(g, n) == 0 && qwen3_cuda_cache_forward(g, ids, prefill, row) == 0, "lora prefill");
    double worst = rel_l2(row, full + (size_t)(prefill - 1) * V, (size_t)V);
    for (int t = prefill; t < n; t++) {
        CHECK(qwen3_cuda_cache_forward(g, &ids[t], 1, row) == 0, "lora step %d: %s", t, paw_last_error());
        double e = rel_l2(row, full + (size_t)t * V, (size_t)V);
        if (!(e <= worst)) worst = e;
    }
    CHECK(worst < 2e-2, "%s lora decode vs full forward: worst row rel L2 %g", fixture, worst);
    CHECK(qwen3_cuda_set_decode_lora(g, NULL) == 0, "clear decode lora");

    free(full), free(row), free(ref_logits), free(logits), free(dx), free(ref_dx), free(ids), free(tg), free(w);
    dev_lora_free(&dl), dev_lora_free(&d1);
    mapper_lora_free(&lo), mapper_lora_free(&one);
    qwen3_cuda_free(g);
    qwen3_free(&cpu);
}

// Injected gradients (the compiler side of a PAW step): a forward without loss whose prefix rows
// come from device embeddings, then a backward from gradients on the final norm and on two
// hidden states; weight and input gradients against qwen3_backward_ex on the CPU.
static void test_model_inject(const char *fixture) {
    char name[300];
    Qwen3 cpu;
    if (load_fixture(fixture, 0, &cpu) != 0) return;
    const Qwen3Config *cfg = &cpu.cfg;
    const int B = 2, T = 19, N = B * T, V = cfg->vocab_size, C = cfg->hidden_size, L = cfg->num_layers;
    int *ids = xmalloc(sizeof(int) * N);
    float *emb = rand_bf16((size_t)N * C, 0.5f);
    for (int i = 0; i < N; i++) ids[i] = (i % T) >= 12 ? -1 : (int)paw_rng_below(&g_rng, (uint64_t)V);
    float *dlnf = rand_f32((size_t)N * C, 1e-2f), *dmid = rand_f32((size_t)N * C, 1e-2f),
          *dlast = rand_f32((size_t)N * C, 1e-2f);
    int mid = L / 2;
    const float *cinj[64] = {0};
    cinj[mid] = dmid, cinj[L] = dlast;
    Qwen3Inputs cin = {.ids = ids, .embeds = emb, .logits_mode = QWEN3_LOGITS_NONE};
    qwen3_zero_grad(&cpu);
    Qwen3BackwardArgs cargs = {.dlnf = dlnf, .dx_layer = cinj};
    CHECK(L < 63 && qwen3_forward(&cpu, &cin, B, T) == 0 && qwen3_backward_ex(&cpu, &cargs) == 0, "cpu inject: %s",
          paw_last_error());
    for (int recompute = 0; recompute <= 1; recompute++) {
        Qwen3Cuda *g = qwen3_cuda_create(&cpu, 0, recompute);
        if (!g) {
            CHECK(0, "%s", paw_last_error());
            break;
        }
        float *d_emb = dev_f32(emb, (size_t)N * C), *d_dlnf = dev_f32(dlnf, (size_t)N * C),
              *d_mid = dev_f32(dmid, (size_t)N * C), *d_last = dev_f32(dlast, (size_t)N * C);
        const float *ginj[64] = {0};
        ginj[mid] = d_mid, ginj[L] = d_last;
        Qwen3CudaInputs in = {.ids = ids, .embeds_dev = d_emb, .logits_mode = QWEN3_LOGITS_NONE};
        CHECK(qwen3_cuda_forward(g, &in, B, T) == 0, "inject forward: %s", paw_last_error());
        // The captured states: x[mid] and the final norm, against the CPU's.
        float *hx = host_bf16(qwen3_cuda_hidden(g, mid), (size_t)N * C), *hn = host_bf16(qwen3_cuda_final_norm(g), (size_t)N * C);
        snprintf(name, sizeof name, "%s hidden x[%d]", fixture, mid);
        CHECK_CLOSE(name, hx, cpu.acts.x + (size_t)mid * N * C, (size_t)N * C, 2e-2);
        snprintf(name, sizeof name, "%s final norm", fixture);
        CHECK_CLOSE(name, hn, cpu.acts.lnf, (size_t)N * C, 2e-2);
        Qwen3CudaBackwardArgs args = {.dlnf = d_dlnf, .dx_layer = ginj};
        qwen3_cuda_zero_grad(g);
        CHECK(qwen3_cuda_backward_ex(g, &args) == 0, "inject backward: %s", paw_last_error());
        float *dx = host_f32(qwen3_cuda_input_grad_dev(g), (size_t)N * C);
        snprintf(name, sizeof name, "%s inject dx0%s", fixture, recompute ? " (recompute)" : "");
        CHECK_CLOSE(name, dx, cpu.scratch.dx, (size_t)N * C, 1e-1);
        Qwen3 grads;
        qwen3_create(&grads, cfg, 1);
        CHECK(qwen3_cuda_get_grads(g, &grads.params) == 0, "get_grads");
        for (int i = 0; i < QWEN3_NUM_PARAMS; i++) {
            Qwen3ParamInfo info = qwen3_param_info(cfg, i);
            if (info.numel == 0) continue;
            snprintf(name, sizeof name, "%s inject grad %s%s", fixture, info.hf_name, recompute ? " (recompute)" : "");
            CHECK_CLOSE(name, *qwen3_param_slot(&grads.params, i), *qwen3_param_slot(&cpu.grads, i), info.numel, 1e-1);
        }
        CHECK(qwen3_cuda_backward_ex(g, &args) != 0, "a second backward without a forward was accepted");
        qwen3_free(&grads);
        free(dx), free(hx), free(hn);
        paw_cuda_free(d_emb), paw_cuda_free(d_dlnf), paw_cuda_free(d_mid), paw_cuda_free(d_last);
        qwen3_cuda_free(g);
    }
    free(ids), free(emb), free(dlnf), free(dmid), free(dlast);
    qwen3_free(&cpu);
}

// ---------------------------------------------------------------------------------------------
// The whole PAW step on the GPU against the PyTorch reference of tests/make_paw_fixtures.py (the
// fixture the CPU step matches within 1e-3): loss within 1e-2 relative, every gradient within
// 1e-1 relative L2 (the model tolerance: both Qwen3 models run in bf16 on the GPU; the mapper's
// fp32 arithmetic is not the limit). Then one AdamW step of the fp32 groups against the CPU
// optimizer on the GPU's own gradients.
#define PAWFIX "tests/fixtures/paw/"

static int load_paw_model(PawModel *pm, int freeze_compiler) {
    Qwen3 c, i;
    if (qwen3_load(&c, PAWFIX "compiler", 0) != 0 || qwen3_load(&i, PAWFIX "interpreter", 1) != 0) return -1;
    if (paw_model_init(pm, &c, &i, 5, 4, 8.0f, 3, freeze_compiler, 1) != 0) return -1;
    return paw_model_load_mapper(pm, PAWFIX "init.safetensors");
}

// The fixture's batch of two examples (the one the CPU and PyTorch steps use).
typedef struct {
    SafeTensors st;
    int *ids[3][2];
    PawStepExample ex[2];
} PawFixtureBatch;

static int load_paw_batch(PawFixtureBatch *fb) {
    if (st_open(&fb->st, PAWFIX "batch.safetensors") != 0) return -1;
    const char *parts[3] = {"comp_ids", "interp_ids", "target_ids"};
    int lens[3][2];
    for (int k = 0; k < 3; k++)
        for (int b = 0; b < 2; b++) {
            char name[64];
            int64_t n;
            snprintf(name, sizeof name, "%s.%d", parts[k], b);
            fb->ids[k][b] = ref_i32(&fb->st, name, &n);
            lens[k][b] = (int)n;
        }
    for (int b = 0; b < 2; b++)
        fb->ex[b] = (PawStepExample){fb->ids[0][b], lens[0][b], fb->ids[1][b], lens[1][b], fb->ids[2][b], lens[2][b]};
    return 0;
}

static void free_paw_batch(PawFixtureBatch *fb) {
    for (int k = 0; k < 3; k++)
        for (int b = 0; b < 2; b++) free(fb->ids[k][b]);
    st_close(&fb->st);
}

// The PAW fixture's model and batch; a failure is counted and leaves nothing to free.
static int load_paw_fixture(PawModel *pm, PawFixtureBatch *fb, int freeze_compiler) {
    if (load_paw_model(pm, freeze_compiler) != 0) {
        CHECK(0, "paw fixture: %s", paw_last_error());
        return -1;
    }
    if (load_paw_batch(fb) != 0) {
        CHECK(0, "%s", paw_last_error());
        paw_model_free(pm);
        return -1;
    }
    return 0;
}

static void test_paw_step(int freeze_compiler, int recompute) {
    char name[300];
    PawModel pm;
    if (load_paw_model(&pm, freeze_compiler) != 0) {
        CHECK(0, "paw fixture: %s", paw_last_error());
        return;
    }
    PawFixtureBatch fb;
    SafeTensors ref;
    if (load_paw_batch(&fb) != 0 || st_open(&ref, PAWFIX "reference.safetensors") != 0) {
        CHECK(0, "%s", paw_last_error());
        paw_model_free(&pm);
        return;
    }
    const PawStepExample *ex = fb.ex;
    PawStepCuda *s = paw_step_cuda_create(&pm, recompute != 0, 0, 1);
    if (s && recompute == 2 && paw_step_cuda_set_recompute_keep(s, 1, 1) != 0) {
        CHECK(0, "paw step recompute_keep: %s", paw_last_error());
        paw_step_cuda_free(s), s = NULL;
    }
    if (!s) {
        CHECK(0, "paw step create: %s", paw_last_error());
    } else {
        const char *tag = freeze_compiler ? " (frozen compiler)" : recompute_tag(recompute);
        paw_step_cuda_zero_grad(s);
        PawStepStats st;
        CHECK(paw_step_cuda_forward_backward(s, ex, 2, 0, &st) == 0, "paw step: %s", paw_last_error());
        float *loss = ref_f32(&ref, "loss", NULL);
        CHECK(fabsf(st.loss - loss[0]) < 1e-2f * loss[0] && st.target_tokens == 5.0, "paw step loss %f vs %f%s", st.loss,
              loss[0], tag);
        free(loss);
        size_t np = paw_step_cuda_group_size(s, PAW_GROUP_PREFIX), nm = paw_step_cuda_group_size(s, PAW_GROUP_MAPPER);
        float *gp = xmalloc(sizeof(float) * np), *gm = xmalloc(sizeof(float) * nm);
        CHECK(paw_step_cuda_get_grads(s, PAW_GROUP_PREFIX, gp) == 0 && paw_step_cuda_get_grads(s, PAW_GROUP_MAPPER, gm) == 0,
              "paw grads: %s", paw_last_error());
        float *want = ref_f32(&ref, "grad.prefix", NULL);
        snprintf(name, sizeof name, "paw step grad.prefix%s", tag);
        CHECK_CLOSE(name, gp, want, np, 1e-1);
        free(want);
        // The mapper's block is its tensors in mapper_tensor_slot order.
        size_t off = 0;
        for (int i = 0; i < MAPPER_NUM_TENSORS; i++) {
            char tn[64], key[96];
            int nd, sh[3];
            size_t n = mapper_tensor_shape(&pm.mapper.cfg, i, &nd, sh);
            snprintf(key, sizeof key, "grad.%s", mapper_tensor_name(i, tn, sizeof tn));
            want = ref_f32(&ref, key, NULL);
            snprintf(name, sizeof name, "paw step %s%s", key, tag);
            CHECK_CLOSE(name, gm + off, want, n, 1e-1);
            free(want);
            off += n;
        }
        CHECK(off == nm, "mapper block %zu floats, tensors %zu", nm, off);
        size_t nc = paw_step_cuda_group_size(s, PAW_GROUP_COMPILER);
        float *gc = NULL;
        if (!freeze_compiler) {
            gc = xmalloc(sizeof(float) * nc);
            CHECK(paw_step_cuda_get_grads(s, PAW_GROUP_COMPILER, gc) == 0, "compiler grads: %s", paw_last_error());
            const Qwen3Config *cc = &pm.comp.model.cfg;
            size_t coff = 0;
            for (int i = 0; i < QWEN3_NUM_PARAMS; i++) {
                Qwen3ParamInfo info = qwen3_param_info(cc, i);
                if (info.numel == 0) continue;
                int layers = info.per_layer ? cc->num_layers : 1;
                size_t per = info.numel / (size_t)layers;
                for (int l = 0; l < layers; l++) {
                    char hf[200], key[256];
                    snprintf(hf, sizeof hf, info.hf_name, l);
                    snprintf(key, sizeof key, "grad.compiler.%s", hf);
                    want = ref_f32(&ref, key, NULL);
                    snprintf(name, sizeof name, "paw step %s%s", key, tag);
                    CHECK_CLOSE(name, gc + coff + (size_t)l * per, want, per, 1e-1);
                    free(want);
                }
                coff += info.numel;
            }
        } else {
            CHECK(nc == 0 && paw_step_cuda_get_grads(s, PAW_GROUP_COMPILER, gm) != 0,
                  "a frozen compiler reported gradients");
        }
        // AdamW on the fp32 groups against the CPU optimizer, same gradients and clipping.
        double sq = sum_squares(gp, np) + sum_squares(gm, nm) + (gc ? sum_squares(gc, nc) : 0.0);
        float max_norm = 0.5f * (float)sqrt(sq);  // forces clipping
        float clip = (float)(max_norm / (sqrt(sq) + 1e-6));
        PawStepCudaAdamW opt = {1e-2f, {1.0f, 2.0f, 0.5f}, 0.9f, 0.95f, 1e-8f, 0.1f, max_norm};
        float *p0 = xmalloc(sizeof(float) * np), *m0 = zeros(np), *v0 = zeros(np);
        float *q0 = xmalloc(sizeof(float) * nm), *mq = zeros(nm), *vq = zeros(nm);
        CHECK(paw_step_cuda_get_state(s, PAW_GROUP_PREFIX, 0, p0) == 0 && paw_step_cuda_get_state(s, PAW_GROUP_MAPPER, 0, q0) == 0,
              "get state");
        AdamWParams hp = {opt.lr * opt.group_lr_scale[PAW_GROUP_PREFIX], opt.beta1, opt.beta2, opt.eps, opt.weight_decay};
        adamw_update(p0, gp, m0, v0, np, &hp, 1, clip);
        hp.lr = opt.lr * opt.group_lr_scale[PAW_GROUP_MAPPER];
        adamw_update(q0, gm, mq, vq, nm, &hp, 1, clip);
        float gnorm = 0;
        CHECK(paw_step_cuda_adamw(s, &opt, 1, &gnorm) == 0, "paw adamw: %s", paw_last_error());
        CHECK(fabs(gnorm - sqrt(sq)) < 1e-4 * sqrt(sq), "paw adamw: grad norm %g vs %g", gnorm, sqrt(sq));
        float *p1 = xmalloc(sizeof(float) * np), *q1 = xmalloc(sizeof(float) * nm), *mv = xmalloc(sizeof(float) * nm);
        CHECK(paw_step_cuda_get_state(s, PAW_GROUP_PREFIX, 0, p1) == 0 && paw_step_cuda_get_state(s, PAW_GROUP_MAPPER, 0, q1) == 0,
              "get state after step");
        snprintf(name, sizeof name, "paw adamw prefix%s", tag);
        CHECK_CLOSE(name, p1, p0, np, 1e-5);
        snprintf(name, sizeof name, "paw adamw mapper%s", tag);
        CHECK_CLOSE(name, q1, q0, nm, 1e-5);
        CHECK(paw_step_cuda_get_state(s, PAW_GROUP_MAPPER, 2, mv) == 0, "get v");
        snprintf(name, sizeof name, "paw adamw mapper second moment%s", tag);
        CHECK_CLOSE(name, mv, vq, nm, 1e-4);
        // State round trip: set then get gives the same bits.
        CHECK(paw_step_cuda_set_state(s, PAW_GROUP_MAPPER, 1, mq) == 0 && paw_step_cuda_get_state(s, PAW_GROUP_MAPPER, 1, mv) == 0 &&
                  memcmp(mv, mq, sizeof(float) * nm) == 0,
              "mapper moment set/get round trip");
        free(p0), free(m0), free(v0), free(q0), free(mq), free(vq), free(p1), free(q1), free(mv);
        free(gp), free(gm), free(gc);
        paw_step_cuda_free(s);
    }
    free_paw_batch(&fb);
    st_close(&ref);
    paw_model_free(&pm);
}

// Evaluation during GPU training: paw_step_cuda_generate decodes both fixture examples together,
// each with its own adapter from the forward before it. Checked token by token against the fp32
// CPU model with the CPU adapters, teacher-forced on the GPU's tokens: each GPU token must be the
// CPU's argmax or within 5% of the CPU logits' spread of it (bf16 activations move logits by
// about that much). A wiring check: swapped rows, a missing adapter or a wrong prompt length
// fail it; the adapters' values are checked by the forward's loss here and by the batched
// decoding tests (test_model_batch_decode).
static void test_paw_step_generate(void) {
    PawModel pm;
    PawFixtureBatch fb;
    if (load_paw_fixture(&pm, &fb, 0) != 0) return;
    const int B = 2, max_new = 6;
    PawStepCuda *s = paw_step_cuda_create(&pm, 1, 0, 1);
    PawStepStats st, cst;
    int out[2 * 6], counts[2];
    CHECK(s && paw_step_cuda_forward(s, fb.ex, B, &st) == 0, "paw step forward: %s", paw_last_error());
    CHECK(s && paw_step_cuda_generate(s, fb.ex, B, max_new, -1, out, counts) == 0, "paw step generate: %s",
          paw_last_error());
    CHECK(s && paw_step_cuda_generate(s, fb.ex, 1, max_new, -1, out, counts) != 0,
          "generation refused for another batch size than the forward's");
    CHECK(paw_forward(&pm, fb.ex, B, &cst) == 0, "cpu paw forward: %s", paw_last_error());
    CHECK(fabs(st.loss - cst.loss) < 1e-2 * fabs(cst.loss), "paw step eval loss %f vs cpu %f", st.loss, cst.loss);
    const int V = pm.interp.cfg.vocab_size;
    int far = 0, checked = 0;
    for (int j = 0; j < B && s; j++) {
        CHECK(counts[j] == max_new, "example %d: %d tokens, expected %d (no stop token)", j, counts[j], max_new);
        Qwen3Lora one;
        mapper_lora_select(&pm.mapper.cfg, &pm.lora, j, &one);
        int n0 = fb.ex[j].interp_len, *seq = xmalloc(sizeof(int) * (size_t)(n0 + max_new));
        memcpy(seq, fb.ex[j].interp_ids, sizeof(int) * (size_t)n0);
        for (int k = 0; k < counts[j] && k < max_new; k++) {
            Qwen3Inputs in = {.ids = seq, .logits_mode = QWEN3_LOGITS_LAST, .lora = &one};
            if (qwen3_forward(&pm.interp, &in, 1, n0 + k) != 0) break;
            const float *lg = pm.interp.acts.logits;
            float hi = lg[0], lo = lg[0];
            for (int v = 1; v < V; v++) hi = fmaxf(hi, lg[v]), lo = fminf(lo, lg[v]);
            int tok = out[j * max_new + k];
            far += !(tok >= 0 && tok < V && lg[tok] >= hi - 0.05f * (hi - lo));
            checked++;
            seq[n0 + k] = tok;
        }
        free(seq);
        mapper_lora_free(&one);
    }
    CHECK(checked == B * max_new && far == 0, "paw step generate: %d of %d tokens far from the CPU's argmax", far,
          checked);
    if (s) paw_step_cuda_free(s);
    free_paw_batch(&fb);
    paw_model_free(&pm);
}

// The PAW step's ZeRO-1 shards (paw_step_cuda_create with world > 1): each rank's update of its
// block of every group matches the CPU AdamW on that block with the same gradients, clipped by the
// norm of all blocks (what the trainer sums over the ranks), without weight decay (the CPU
// optimizer decays norm weights too), its moments are block-sized, its norm sums its blocks only, and nothing of
// the prefix and mapper outside its blocks changes (the trainer gathers those from their owners;
// the compiler's weights outside the shard are checked in test_model_zero_shards, since its
// master weights here exist for the block only).
static void test_paw_step_zero(int world) {
    char name[300];
    PawModel pm;
    PawFixtureBatch fb;
    if (load_paw_fixture(&pm, &fb, 0) != 0) return;
    for (int r = 0; r < world; r++) {
        PawStepCuda *s = paw_step_cuda_create(&pm, 0, r, world);
        if (!s) {
            CHECK(0, "zero paw step create: %s", paw_last_error());
            break;
        }
        paw_step_cuda_zero_grad(s);
        PawStepStats st;
        CHECK(paw_step_cuda_forward_backward(s, fb.ex, 2, 0, &st) == 0, "zero paw step: %s", paw_last_error());
        PawStepCudaAdamW opt = {1e-2f, {1.0f, 2.0f, 0.5f}, 0.9f, 0.95f, 1e-8f, 0.0f, 0.0f};
        float *before[PAW_NUM_GROUPS], *grads[PAW_NUM_GROUPS], *want[PAW_NUM_GROUPS], *vwant[PAW_NUM_GROUPS];
        float *mwant[PAW_NUM_GROUPS];
        size_t lo[PAW_NUM_GROUPS], hi[PAW_NUM_GROUPS], n[PAW_NUM_GROUPS];
        double sq = 0, sq_total = 0;
        for (int g = 0; g < PAW_NUM_GROUPS; g++) {
            n[g] = paw_step_cuda_group_size(s, g);
            grads[g] = xmalloc(sizeof(float) * n[g]);
            CHECK(paw_step_cuda_get_grads(s, g, grads[g]) == 0, "zero grads of group %d: %s", g, paw_last_error());
            sq_total += sum_squares(grads[g], n[g]);
        }
        // Clipping on, with the norm of all ranks' blocks (what the trainer sums): about half.
        opt.max_grad_norm = (float)(0.5 * sqrt(sq_total));
        const float clip = (float)fmin(1.0, opt.max_grad_norm / (sqrt((float)sq_total) + 1e-6));
        for (int g = 0; g < PAW_NUM_GROUPS; g++) {
            lo[g] = paw_shard_begin(n[g], world, r), hi[g] = paw_shard_begin(n[g], world, r + 1);
            before[g] = xmalloc(sizeof(float) * n[g]);
            // The compiler's master exists for this block only: the rest of `before` is the host's.
            if (g == PAW_GROUP_COMPILER) memcpy(before[g], pm.comp.model.params_memory, sizeof(float) * n[g]);
            CHECK(paw_step_cuda_get_state(s, g, 0, before[g]) == 0, "zero state of group %d: %s", g, paw_last_error());
            size_t k = hi[g] - lo[g];
            want[g] = xmalloc(sizeof(float) * n[g]);
            memcpy(want[g], before[g], sizeof(float) * n[g]);
            mwant[g] = zeros(k), vwant[g] = zeros(k);
            AdamWParams hp = {opt.lr * opt.group_lr_scale[g], opt.beta1, opt.beta2, opt.eps, 0.0f};
            adamw_update(want[g] + lo[g], grads[g] + lo[g], mwant[g], vwant[g], k, &hp, 1, clip);
            sq += sum_squares(grads[g] + lo[g], k);
        }
        double local = 0;
        CHECK(paw_step_cuda_grad_norm_sq(s, &local) == 0 && fabs(local - sq) <= 1e-4 * sq,
              "zero rank %d/%d: local squared norm %g, host %g", r, world, local, sq);
        CHECK(paw_step_cuda_adamw_apply(s, &opt, 1, sq_total) == 0, "zero adamw: %s", paw_last_error());
        const char *gname[PAW_NUM_GROUPS] = {"compiler", "prefix", "mapper"};
        for (int g = 0; g < PAW_NUM_GROUPS; g++) {
            size_t k = hi[g] - lo[g];
            float *after = xmalloc(sizeof(float) * n[g]), *m = zeros(k), *v = zeros(k);
            memcpy(after, before[g], sizeof(float) * n[g]);
            CHECK(paw_step_cuda_get_state(s, g, 0, after) == 0 && paw_step_cuda_get_state(s, g, 1, m) == 0 &&
                      paw_step_cuda_get_state(s, g, 2, v) == 0,
                  "zero state");
            snprintf(name, sizeof name, "zero rank %d/%d %s block (clipped)", r, world, gname[g]);
            CHECK_CLOSE(name, after + lo[g], want[g] + lo[g], k, 1e-5);
            snprintf(name, sizeof name, "zero rank %d/%d %s first moment", r, world, gname[g]);
            CHECK_CLOSE(name, m, mwant[g], k, 1e-4);
            snprintf(name, sizeof name, "zero rank %d/%d %s second moment", r, world, gname[g]);
            CHECK_CLOSE(name, v, vwant[g], k, 1e-4);
            if (g != PAW_GROUP_COMPILER) {
                size_t changed = 0;
                for (size_t i = 0; i < n[g]; i++)
                    if (i < lo[g] || i >= hi[g]) changed += memcmp(&after[i], &before[g][i], sizeof(float)) != 0;
                CHECK(changed == 0, "zero rank %d/%d %s: %zu values outside the block changed", r, world, gname[g],
                      changed);
            }
            free(after), free(m), free(v);
        }
        for (int g = 0; g < PAW_NUM_GROUPS; g++) free(before[g]), free(grads[g]), free(want[g]), free(mwant[g]), free(vwant[g]);
        paw_step_cuda_free(s);
    }
    free_paw_batch(&fb);
    paw_model_free(&pm);
}

// ---------------------------------------------------------------------------------------------
// Batched decoding: B sequences of different lengths, each with its own adapter, against the
// single-sequence decode path (itself checked against the full forward above) and greedy tokens
// against full-forward argmax; then the GPU batch runner against the CPU runner.

// Per-row cache lengths: each sequence attends over its own kv_prev[b] + Tq keys.
static void test_attention_rows(int B, int Tq, int cap, int NH, int NKV, int HD) {
    char name[128];
    const int Q = NH * HD, KV = NKV * HD;
    float *q = rand_bf16((size_t)B * Tq * Q, 1.0f);
    float *kc = rand_bf16((size_t)B * cap * KV, 1.0f), *vc = rand_bf16((size_t)B * cap * KV, 1.0f);
    float *ref = zeros((size_t)B * Tq * Q);
    int *prev = xmalloc(sizeof(int) * (size_t)B);
    for (int b = 0; b < B; b++) {
        prev[b] = (int)paw_rng_below(&g_rng, (uint64_t)(cap - Tq + 1));
        if (b == 0) prev[b] = 0;  // an empty cache too
        attention_forward(ref + (size_t)b * Tq * Q, NULL, q + (size_t)b * Tq * Q, kc + (size_t)b * cap * KV,
                          vc + (size_t)b * cap * KV, 1, Tq, prev[b] + Tq, cap, NH, NKV, HD);
    }
    paw_bf16 *d_q = dev_bf16(q, (size_t)B * Tq * Q), *d_k = dev_bf16(kc, (size_t)B * cap * KV);
    paw_bf16 *d_v = dev_bf16(vc, (size_t)B * cap * KV), *d_out = poisoned_bf16((size_t)B * Tq * Q);
    int *d_prev = dev_i32(prev, (size_t)B);
    attention_cuda_forward_rows(d_out, d_q, d_k, d_v, d_prev, NULL, NULL, B, Tq, NH, NKV, HD, Q, KV, (long)cap * KV);
    float *got = host_bf16(d_out, (size_t)B * Tq * Q);
    snprintf(name, sizeof name, "attention over per-row cache lengths B%d Tq%d cap%d HD%d", B, Tq, cap, HD);
    CHECK_CLOSE(name, got, ref, (size_t)B * Tq * Q, 1e-2);
    paw_cuda_free(d_q), paw_cuda_free(d_k), paw_cuda_free(d_v), paw_cuda_free(d_out), paw_cuda_free(d_prev);
    free(q), free(kc), free(vc), free(ref), free(got), free(prev);
}

// A prefill that continues chosen rows of a batch's cache: B sequences of lens[b] <= Tq valid
// queries (right padded) over cache rows seq_row[b] of `rows` rows, each after kv_prev of that
// row. The last row is filled to the end of the cache, so a read past its valid keys leaves the
// buffer; padding queries must come out zero.
static void test_attention_rows_map(int B, int Tq, int rows, int cap, int NH, int NKV, int HD) {
    char name[128];
    const int Q = NH * HD, KV = NKV * HD;
    float *q = rand_bf16((size_t)B * Tq * Q, 1.0f);
    float *kc = rand_bf16((size_t)rows * cap * KV, 1.0f), *vc = rand_bf16((size_t)rows * cap * KV, 1.0f);
    float *ref = zeros((size_t)B * Tq * Q);
    int *prev = xcalloc((size_t)rows, sizeof(int)), *lens = xmalloc(sizeof(int) * (size_t)B);
    int *map = xmalloc(sizeof(int) * (size_t)B), *used = xcalloc((size_t)rows, sizeof(int));
    for (int b = 0; b < B; b++) {
        int r;
        do r = b == 0 ? rows - 1 : (int)paw_rng_below(&g_rng, (uint64_t)rows);
        while (used[r]);
        used[r] = 1, map[b] = r;
        lens[b] = b == 0 ? 1 + (Tq - 1) / 2 : 1 + (int)paw_rng_below(&g_rng, (uint64_t)Tq);
        prev[r] = b == 0 ? cap - lens[b] : (int)paw_rng_below(&g_rng, (uint64_t)(cap - lens[b] + 1));
        attention_forward(ref + (size_t)b * Tq * Q, NULL, q + (size_t)b * Tq * Q, kc + (size_t)r * cap * KV,
                          vc + (size_t)r * cap * KV, 1, lens[b], prev[r] + lens[b], cap, NH, NKV, HD);
    }
    paw_bf16 *d_q = dev_bf16(q, (size_t)B * Tq * Q), *d_k = dev_bf16(kc, (size_t)rows * cap * KV);
    paw_bf16 *d_v = dev_bf16(vc, (size_t)rows * cap * KV), *d_out = poisoned_bf16((size_t)B * Tq * Q);
    int *d_prev = dev_i32(prev, (size_t)rows), *d_lens = dev_i32(lens, (size_t)B), *d_map = dev_i32(map, (size_t)B);
    attention_cuda_forward_rows(d_out, d_q, d_k, d_v, d_prev, d_lens, d_map, B, Tq, NH, NKV, HD, Q, KV,
                                (long)cap * KV);
    float *got = host_bf16(d_out, (size_t)B * Tq * Q);
    snprintf(name, sizeof name, "attention continuing mapped cache rows B%d Tq%d rows%d cap%d HD%d", B, Tq, rows, cap,
             HD);
    CHECK_CLOSE(name, got, ref, (size_t)B * Tq * Q, 1e-2);
    paw_cuda_free(d_q), paw_cuda_free(d_k), paw_cuda_free(d_v), paw_cuda_free(d_out), paw_cuda_free(d_prev);
    paw_cuda_free(d_lens), paw_cuda_free(d_map);
    free(q), free(kc), free(vc), free(ref), free(got), free(prev), free(lens), free(map), free(used);
}

// The device gather of per-program adapters into a batch's [L, nb, ...] layout (exact copy).
static void test_lora_gather(const char *fixture) {
    Qwen3 cpu;
    if (load_fixture(fixture, 1, &cpu) != 0) return;
    const Qwen3Config *cfg = &cpu.cfg;
    const int L = cfg->num_layers, r = 8, P = 2, nb = 4;
    Qwen3Cuda *g = qwen3_cuda_create(&cpu, 1, 1);
    if (!g) {
        CHECK(0, "%s", paw_last_error());
        qwen3_free(&cpu);
        return;
    }
    Qwen3Lora lo[2];
    DevLora dl[2];
    for (int p = 0; p < P; p++) rand_lora(cfg, 1, r, &lo[p]), dev_lora(cfg, &lo[p], &dl[p], 0);
    const Qwen3CudaLora *src[4] = {&dl[1].lo, NULL, &dl[0].lo, &dl[1].lo};  // program of each row
    paw_bf16 *bA[LORA_NUM_MODULES], *bB[LORA_NUM_MODULES];
    for (int m = 0; m < LORA_NUM_MODULES; m++) {
        int din, dout;
        lora_module_dims(cfg, m, &din, &dout);
        bA[m] = poisoned_bf16((size_t)L * nb * r * din);
        bB[m] = poisoned_bf16((size_t)L * nb * dout * r);
    }
    CHECK(qwen3_cuda_lora_gather(g, bA, bB, r, src, nb) == 0, "lora gather: %s", paw_last_error());
    size_t bad = 0;
    for (int m = 0; m < LORA_NUM_MODULES; m++) {
        int din, dout;
        lora_module_dims(cfg, m, &din, &dout);
        for (int side = 0; side < 2; side++) {
            size_t per = (size_t)r * (side ? dout : din);
            float *got = host_bf16(side ? bB[m] : bA[m], (size_t)L * nb * per);
            for (int l = 0; l < L; l++)
                for (int b = 0; b < nb; b++) {
                    const int p = b == 1 ? -1 : b == 2 ? 0 : 1;
                    for (size_t i = 0; i < per; i++) {
                        float want = p < 0 ? 0.0f : (side ? lo[p].B[m] : lo[p].A[m])[(size_t)l * per + i];
                        bad += got[((size_t)l * nb + b) * per + i] != want;
                    }
                }
            free(got);
        }
    }
    CHECK(bad == 0, "lora gather: %zu values differ from the programs' adapters", bad);
    // Into chosen rows: rows 3 and 0 get program 0 and none; rows 1 and 2 keep theirs.
    const Qwen3CudaLora *src2[2] = {&dl[0].lo, NULL};
    const int rows2[2] = {3, 0};
    CHECK(qwen3_cuda_lora_gather_rows(g, bA, bB, r, src2, 2, rows2, nb) == 0, "lora gather rows: %s", paw_last_error());
    bad = 0;
    for (int m = 0; m < LORA_NUM_MODULES; m++) {
        int din, dout;
        lora_module_dims(cfg, m, &din, &dout);
        for (int side = 0; side < 2; side++) {
            size_t per = (size_t)r * (side ? dout : din);
            float *got = host_bf16(side ? bB[m] : bA[m], (size_t)L * nb * per);
            for (int l = 0; l < L; l++)
                for (int b = 0; b < nb; b++) {
                    const int p = b <= 1 ? -1 : 0;
                    for (size_t i = 0; i < per; i++) {
                        float want = p < 0 ? 0.0f : (side ? lo[p].B[m] : lo[p].A[m])[(size_t)l * per + i];
                        bad += got[((size_t)l * nb + b) * per + i] != want;
                    }
                }
            free(got);
        }
    }
    CHECK(bad == 0, "lora gather into rows: %zu values differ", bad);
    const int twice[2] = {2, 2};
    CHECK(qwen3_cuda_lora_gather_rows(g, bA, bB, r, src2, 2, twice, nb) != 0, "lora gather rows: a row named twice accepted");
    for (int m = 0; m < LORA_NUM_MODULES; m++) paw_cuda_free(bA[m]), paw_cuda_free(bB[m]);
    for (int p = 0; p < P; p++) dev_lora_free(&dl[p]), mapper_lora_free(&lo[p]);
    qwen3_cuda_free(g);
    qwen3_free(&cpu);
}

// Batched prefill + steps (rows of different lengths and adapters, one row going inactive) vs
// each row decoded alone with its adapter; then batched greedy tokens vs full-forward argmax.
// recompute = 0 keeps every layer's LoRA side-path slot (the u buffer indexed per layer).
static void test_model_batch_decode(const char *fixture, int with_lora, int recompute, int fused) {
    char name[300];
    Qwen3 cpu;
    if (load_fixture(fixture, 1, &cpu) != 0) return;
    const Qwen3Config *cfg = &cpu.cfg;
    enum { B = 3, S = 5 };
    const int V = cfg->vocab_size, r = 4, lens[B] = {13, 5, 9}, T = 13, cap = T + S + 1;
    int ids[B * 13], cont[B][S];
    for (int i = 0; i < B * T; i++) ids[i] = (int)paw_rng_below(&g_rng, (uint64_t)V);
    for (int b = 0; b < B; b++)
        for (int k = 0; k < S; k++) cont[b][k] = (int)paw_rng_below(&g_rng, (uint64_t)V);
    Qwen3Cuda *g = qwen3_cuda_create(&cpu, 1, recompute);
    if (!g) {
        CHECK(0, "%s", paw_last_error());
        qwen3_free(&cpu);
        return;
    }
    MapperConfig mc = {.d = 8, .L = cfg->num_layers, .nbases = 1, .rank = r, .alpha = 2.0f * r, .icfg = *cfg};
    Qwen3Lora lo, one[B];
    DevLora dl, d1[B];
    if (with_lora) {
        rand_lora(cfg, B, r, &lo);
        dev_lora(cfg, &lo, &dl, 0);
        for (int b = 0; b < B; b++) mapper_lora_select(&mc, &lo, b, &one[b]), dev_lora(cfg, &one[b], &d1[b], 0);
    }
    // Reference: each row alone through the single-sequence cache, the same tokens fed.
    float *ref = xmalloc(sizeof(float) * (size_t)B * (S + 1) * V), *got = xmalloc(sizeof(float) * (size_t)B * V);
    for (int b = 0; b < B; b++) {
        CHECK(qwen3_cuda_set_decode_lora(g, with_lora ? &d1[b].lo : NULL) == 0, "set decode lora");
        CHECK(qwen3_cuda_cache_reset(g, cap) == 0 && qwen3_cuda_cache_forward(g, ids + b * T, lens[b], ref + (size_t)b * (S + 1) * V) == 0,
              "single prefill: %s", paw_last_error());
        for (int k = 0; k < S; k++)
            CHECK(qwen3_cuda_cache_forward(g, &cont[b][k], 1, ref + ((size_t)b * (S + 1) + k + 1) * V) == 0, "single step: %s",
                  paw_last_error());
    }
    CHECK(qwen3_cuda_set_decode_lora(g, NULL) == 0, "clear decode lora");
    qwen3_cuda_set_fused_decode(g, fused);  // the references above ran unfused
    CHECK(qwen3_cuda_batch_set_lora(g, with_lora ? &dl.lo : NULL) == 0, "batch set lora: %s", paw_last_error());
    CHECK(qwen3_cuda_batch_reset(g, B, cap) == 0, "batch reset: %s", paw_last_error());
    int next[B];
    CHECK(qwen3_cuda_batch_prefill(g, ids, lens, T, next, got) == 0, "batch prefill: %s", paw_last_error());
    double worst = 0;
    for (int b = 0; b < B; b++) {
        double e = rel_l2(got + (size_t)b * V, ref + (size_t)b * (S + 1) * V, (size_t)V);
        if (!(e <= worst)) worst = e;
        int best = 0;
        for (int i = 1; i < V; i++)
            if (got[(size_t)b * V + i] > got[(size_t)b * V + best]) best = i;
        CHECK(next[b] == best, "batch prefill row %d: next token %d, argmax of its logits %d", b, next[b], best);
    }
    snprintf(name, sizeof name, "%s batch prefill vs single%s%s", fixture, with_lora ? " (per-row lora)" : "",
             recompute ? " (recompute)" : "");
    CHECK(worst < 2e-2, "%s: worst row rel L2 %g", name, worst);
    // Steps (eager, captured, replays); row 1 stops after step 1: the others must not notice.
    worst = 0;
    for (int k = 0; k < S; k++) {
        int step_ids[B], active[B];
        for (int b = 0; b < B; b++) step_ids[b] = cont[b][k], active[b] = !(b == 1 && k >= 2);
        CHECK(qwen3_cuda_batch_step(g, step_ids, active, next, got) == 0, "batch step %d: %s", k, paw_last_error());
        for (int b = 0; b < B; b++) {
            if (!active[b]) continue;
            double e = rel_l2(got + (size_t)b * V, ref + ((size_t)b * (S + 1) + k + 1) * V, (size_t)V);
            if (!(e <= worst)) worst = e;
        }
    }
    snprintf(name, sizeof name, "%s batch steps vs single%s%s%s", fixture, with_lora ? " (per-row lora)" : "",
             recompute ? " (recompute)" : "", fused ? " (fused decode)" : "");
    CHECK(worst < 2e-2, "%s: worst row rel L2 %g", name, worst);
    // Greedy generation: each row's tokens equal argmax over successive full forwards with its adapter.
    enum { NEW = 4 };
    int out[B * NEW], counts[B];
    CHECK(qwen3_cuda_batch_generate(g, ids, lens, B, T, NEW, -1, out, counts) == 0, "batch generate: %s", paw_last_error());
    int agree = 0, ties = 0;
    for (int b = 0; b < B; b++) {
        CHECK(counts[b] == NEW, "batch generate row %d: %d tokens", b, counts[b]);
        int seq[32];
        memcpy(seq, ids + b * T, sizeof(int) * (size_t)lens[b]);
        for (int k = 0; k < NEW && counts[b] == NEW; k++) {
            Qwen3CudaInputs li = {.ids = seq, .logits_mode = QWEN3_LOGITS_LAST, .lora = with_lora ? &d1[b].lo : NULL};
            if (qwen3_cuda_forward(g, &li, 1, lens[b] + k) != 0 || qwen3_cuda_get_logits(g, got) != 0) break;
            char what[160];
            snprintf(what, sizeof what, "%s batch generate row %d token %d", fixture, b, k);
            agree += greedy_agrees(got, V, out[b * NEW + k], what, &ties);
            seq[lens[b] + k] = out[b * NEW + k];
        }
    }
    CHECK(agree == B * NEW, "%s batch generate: %d of %d tokens agree with full-forward argmax (%d near ties)", fixture,
          agree, B * NEW, ties);
    // A stop token ends its row only: stop at row 0's second token.
    int stop = out[1], out2[B * NEW], counts2[B];
    CHECK(qwen3_cuda_batch_generate(g, ids, lens, B, T, NEW, stop, out2, counts2) == 0, "batch generate with stop");
    for (int b = 0; b < B; b++) {
        int want = NEW;
        for (int k = 0; k < NEW; k++)
            if (out[b * NEW + k] == stop) {
                want = k + 1;
                break;
            }
        CHECK(counts2[b] == want && memcmp(out2 + b * NEW, out + b * NEW, sizeof(int) * (size_t)want) == 0,
              "batch generate with stop: row %d has %d tokens, expected %d", b, counts2[b], want);
    }
    free(ref), free(got);
    if (with_lora) {
        dev_lora_free(&dl), mapper_lora_free(&lo);
        for (int b = 0; b < B; b++) dev_lora_free(&d1[b]), mapper_lora_free(&one[b]);
    }
    qwen3_cuda_free(g);
    qwen3_free(&cpu);
}

// A right-padded batch with QWEN3_LOGITS_LAST: each row's logits are those of its own last token
// (the forward of that sequence alone); an empty sequence gets its first row's (finite) logits.
static void test_logits_last_lens(const char *fixture) {
    Qwen3 cpu;
    if (load_fixture(fixture, 1, &cpu) != 0) return;
    enum { B = 4, T = 11 };
    const int V = cpu.cfg.vocab_size, lens[B] = {11, 4, 0, 7};
    int ids[B * T];
    for (int i = 0; i < B * T; i++) ids[i] = (int)paw_rng_below(&g_rng, (uint64_t)V);
    Qwen3Cuda *g = qwen3_cuda_create(&cpu, 1, 0);
    if (!g) {
        CHECK(0, "%s", paw_last_error());
        qwen3_free(&cpu);
        return;
    }
    float *got = xmalloc(sizeof(float) * (size_t)B * V), *ref = xmalloc(sizeof(float) * (size_t)V);
    Qwen3CudaInputs in = {.ids = ids, .lens = lens, .logits_mode = QWEN3_LOGITS_LAST};
    CHECK(qwen3_cuda_forward(g, &in, B, T) == 0 && qwen3_cuda_logits_rows(g) == B && qwen3_cuda_get_logits(g, got) == 0,
          "padded forward: %s", paw_last_error());
    double worst = 0;
    for (int b = 0; b < B; b++) {
        if (lens[b] == 0) {
            size_t bad = 0;
            for (int i = 0; i < V; i++) bad += !isfinite(got[(size_t)b * V + i]);
            CHECK(bad == 0, "%s: the empty row's logits have %zu non-finite values", fixture, bad);
            continue;
        }
        Qwen3CudaInputs one = {.ids = ids + b * T, .logits_mode = QWEN3_LOGITS_LAST};
        CHECK(qwen3_cuda_forward(g, &one, 1, lens[b]) == 0 && qwen3_cuda_get_logits(g, ref) == 0, "row %d alone: %s", b,
              paw_last_error());
        double e = rel_l2(got + (size_t)b * V, ref, (size_t)V);
        if (!(e <= worst)) worst = e;
    }
    CHECK(worst < 2e-2, "%s logits of each padded row's last token vs the row alone: worst rel L2 %g", fixture, worst);
    free(got), free(ref);
    qwen3_cuda_free(g);
    qwen3_free(&cpu);
}

// Single-sequence decoding with an adapter (fused: the side paths two launches per input)
// against the full forward with the same adapter.
static void test_decode_lora(const char *fixture, int fused) {
    Qwen3 cpu;
    if (load_fixture(fixture, 1, &cpu) != 0) return;
    const int n = 21, prefill = 9, V = cpu.cfg.vocab_size, nrows = n - prefill + 1;
    int ids[21];
    for (int i = 0; i < n; i++) ids[i] = (int)paw_rng_below(&g_rng, (uint64_t)V);
    Qwen3Cuda *g = qwen3_cuda_create(&cpu, 1, 0);
    if (!g) {
        CHECK(0, "%s", paw_last_error());
        qwen3_free(&cpu);
        return;
    }
    Qwen3Lora lo;
    DevLora dl;
    rand_lora(&cpu.cfg, 1, 6, &lo);
    dev_lora(&cpu.cfg, &lo, &dl, 0);
    qwen3_cuda_set_fused_decode(g, fused);
    float *full = xmalloc(sizeof(float) * (size_t)n * V), *rows = xmalloc(sizeof(float) * (size_t)nrows * V);
    Qwen3CudaInputs in = {.ids = ids, .logits_mode = QWEN3_LOGITS_ALL, .lora = &dl.lo};
    CHECK(qwen3_cuda_forward(g, &in, 1, n) == 0 && qwen3_cuda_get_logits(g, full) == 0, "full forward: %s",
          paw_last_error());
    CHECK(qwen3_cuda_set_decode_lora(g, &dl.lo) == 0 && decode_rows(g, ids, n, prefill, V, rows) == 0, "decode: %s",
          paw_last_error());
    double worst = 0;
    for (int t = prefill - 1; t < n; t++) {
        double e = rel_l2(rows + (size_t)(t - prefill + 1) * V, full + (size_t)t * V, (size_t)V);
        if (!(e <= worst)) worst = e;
    }
    CHECK(worst < 2e-2, "%s decode with an adapter%s vs full forward: worst row rel L2 %g", fixture,
          fused ? " (fused)" : "", worst);
    qwen3_cuda_set_decode_lora(g, NULL);
    free(full), free(rows);
    dev_lora_free(&dl), mapper_lora_free(&lo);
    qwen3_cuda_free(g);
    qwen3_free(&cpu);
}

// Continuous batching: after two steps of a batch of three, rows 2 and 0 (in that order) get new
// sequences with their own adapters through qwen3_cuda_batch_refill, row 1 goes on. Every logit
// vector the batch produced (prefills and steps) against the same sequence decoded alone with the
// same tokens fed; the first step after the refill takes its tokens from the device (the
// refill's greedy tokens scattered into the rows it filled, row 1's own from its last step).
// prefix: the refilled sequences start from shared prefixes (qwen3_cuda_prefix_create with their
// own adapters): one whole, one of which the row takes all but the last token, only the rest of
// each prompt prefilled through qwen3_cuda_batch_refill_prefix.
static void test_model_batch_refill(const char *fixture, int with_lora, int prefix) {
    Qwen3 cpu;
    if (load_fixture(fixture, 1, &cpu) != 0) return;
    const Qwen3Config *cfg = &cpu.cfg;
    enum { B = 3, NSEQ = 5, S = 3, MAXF = 8 };  // S steps after the refill
    const int V = cfg->vocab_size, r = 4, T = 13, T2 = 11, cap = T + 2 + S + 1;
    const int lens[B] = {9, 5, 13}, lens2[2] = {7, 11}, fill_rows[2] = {2, 0}, seq_of_fill[2] = {3, 4};
    int ids[B * 13], ids2[2 * 11];
    for (int i = 0; i < B * T; i++) ids[i] = (int)paw_rng_below(&g_rng, (uint64_t)V);
    for (int i = 0; i < 2 * T2; i++) ids2[i] = (int)paw_rng_below(&g_rng, (uint64_t)V);
    Qwen3Cuda *g = qwen3_cuda_create(&cpu, 1, 0);
    if (!g) {
        CHECK(0, "%s", paw_last_error());
        qwen3_free(&cpu);
        return;
    }
    // Per-sequence adapters; the batch's [L, B, ...] buffers and the refill's [L, 2, ...] ones are
    // gathered from them as the runner does.
    MapperConfig mc = {.d = 8, .L = cfg->num_layers, .nbases = 1, .rank = r, .alpha = 2.0f * r, .icfg = *cfg};
    Qwen3Lora lo, one[NSEQ];
    DevLora d1[NSEQ];
    paw_bf16 *bA[LORA_NUM_MODULES], *bB[LORA_NUM_MODULES], *pA[LORA_NUM_MODULES], *pB[LORA_NUM_MODULES];
    Qwen3CudaLora batch_lo = {.rank = r, .nb = B}, fill_lo = {.rank = r, .nb = 2};
    if (with_lora) {
        rand_lora(cfg, NSEQ, r, &lo);
        for (int q = 0; q < NSEQ; q++) mapper_lora_select(&mc, &lo, q, &one[q]), dev_lora(cfg, &one[q], &d1[q], 0);
        batch_lo.scale = fill_lo.scale = lo.scale;
        for (int m = 0; m < LORA_NUM_MODULES; m++) {
            int din, dout;
            lora_module_dims(cfg, m, &din, &dout);
            batch_lo.A[m] = bA[m] = poisoned_bf16((size_t)cfg->num_layers * B * r * din);
            batch_lo.B[m] = bB[m] = poisoned_bf16((size_t)cfg->num_layers * B * dout * r);
            fill_lo.A[m] = pA[m] = poisoned_bf16((size_t)cfg->num_layers * 2 * r * din);
            fill_lo.B[m] = pB[m] = poisoned_bf16((size_t)cfg->num_layers * 2 * dout * r);
        }
        const Qwen3CudaLora *first[B] = {&d1[0].lo, &d1[1].lo, &d1[2].lo};
        CHECK(qwen3_cuda_lora_gather(g, bA, bB, r, first, B) == 0, "gather: %s", paw_last_error());
    }
    // The batch run, recording per sequence the tokens fed after its prompt and every logit row.
    float *got = xmalloc(sizeof(float) * (size_t)NSEQ * MAXF * V), *tmp = xmalloc(sizeof(float) * (size_t)B * V);
    int fed[NSEQ][MAXF], nlog[NSEQ] = {0}, row_seq[B] = {0, 1, 2}, next[B], next2[2], ok = 1;
    CHECK(qwen3_cuda_batch_set_lora(g, with_lora ? &batch_lo : NULL) == 0 && qwen3_cuda_batch_reset(g, B, cap) == 0 &&
              qwen3_cuda_batch_prefill(g, ids, lens, T, next, tmp) == 0,
          "prefill: %s", paw_last_error());
    for (int b = 0; b < B; b++) memcpy(got + ((size_t)b * MAXF + nlog[b]++) * V, tmp + (size_t)b * V, sizeof(float) * V);
    for (int k = 0; k < 2 + S && ok; k++) {
        if (k == 2) {  // the refill
            if (with_lora) {
                const Qwen3CudaLora *src[2] = {&d1[3].lo, &d1[4].lo};
                ok = qwen3_cuda_lora_gather(g, pA, pB, r, src, 2) == 0 &&
                     qwen3_cuda_lora_gather_rows(g, bA, bB, r, src, 2, fill_rows, B) == 0;
                CHECK(ok, "gather for the refill: %s", paw_last_error());
            }
            if (!prefix) {
                ok = ok && qwen3_cuda_batch_refill(g, fill_rows, 2, ids2, lens2, T2, with_lora ? &fill_lo : NULL,
                                                   next2, tmp) == 0;
            } else {  // prefixes of 4 and 6 tokens, the rows starting after 4 and 5 of them
                const int pn[2] = {4, 6}, start[2] = {4, 5}, rest[2] = {lens2[0] - 4, lens2[1] - 5}, Tr = 6;
                Qwen3CudaPrefix pre[2];
                const Qwen3CudaPrefix *pp[2] = {&pre[0], &pre[1]};
                int tail[2 * 6] = {0};
                for (int i = 0; i < 2; i++) {
                    memcpy(tail + i * Tr, ids2 + i * T2 + start[i], sizeof(int) * (size_t)rest[i]);
                    ok = ok && qwen3_cuda_prefix_create(g, ids2 + i * T2, pn[i], with_lora ? &d1[3 + i].lo : NULL,
                                                        &pre[i]) == 0;
                }
                CHECK(ok, "prefixes: %s", paw_last_error());
                ok = ok && qwen3_cuda_batch_refill_prefix(g, fill_rows, 2, pp, start, tail, rest, Tr,
                                                          with_lora ? &fill_lo : NULL, next2, tmp) == 0;
                // A start past its prefix, and a row that would overflow the cache, are refused.
                const int too_far[2] = {5, 5}, whole[2] = {cap, cap};
                int *zeros_ids = xcalloc((size_t)2 * cap, sizeof(int));
                CHECK(qwen3_cuda_batch_refill_prefix(g, fill_rows, 2, pp, too_far, tail, rest, Tr, NULL, NULL, NULL) != 0 &&
                          strstr(paw_last_error(), "prefix holds 4"),
                      "refill past a prefix: %s", paw_last_error());
                CHECK(qwen3_cuda_batch_refill_prefix(g, fill_rows, 2, pp, start, zeros_ids, whole, cap, NULL, NULL, NULL) != 0 &&
                          strstr(paw_last_error(), "exceed the cache capacity"),
                      "refill past the cache: %s", paw_last_error());
                free(zeros_ids);
                qwen3_cuda_prefix_free(&pre[0]), qwen3_cuda_prefix_free(&pre[1]);
            }
            CHECK(ok, "refill: %s", paw_last_error());
            for (int i = 0; ok && i < 2; i++) {
                int q = seq_of_fill[i], best = 0;
                row_seq[fill_rows[i]] = q;
                memcpy(got + ((size_t)q * MAXF + nlog[q]++) * V, tmp + (size_t)i * V, sizeof(float) * V);
                for (int j = 1; j < V; j++)
                    if (tmp[(size_t)i * V + j] > tmp[(size_t)i * V + best]) best = j;
                CHECK(next2[i] == best, "refill row %d: next token %d, argmax of its logits %d", fill_rows[i], next2[i], best);
                next[fill_rows[i]] = next2[i];
            }
        }
        int step_ids[B];
        for (int b = 0; b < B; b++) {
            int q = row_seq[b];
            step_ids[b] = k == 2 ? next[b] : (int)paw_rng_below(&g_rng, (uint64_t)V);
            fed[q][nlog[q] - 1] = step_ids[b];
        }
        // k == 2: the tokens come from the device (NULL), which must hold what next says.
        ok = ok && qwen3_cuda_batch_step(g, k == 2 ? NULL : step_ids, NULL, next, tmp) == 0;
        CHECK(ok, "step %d: %s", k, paw_last_error());
        for (int b = 0; ok && b < B; b++) {
            int q = row_seq[b];
            memcpy(got + ((size_t)q * MAXF + nlog[q]++) * V, tmp + (size_t)b * V, sizeof(float) * V);
        }
    }
    // Each sequence alone through the single-sequence cache, the same tokens fed.
    double worst = 0;
    float *ref = xmalloc(sizeof(float) * (size_t)V);
    for (int q = 0; q < NSEQ && ok; q++) {
        const int *prompt = q < B ? ids + q * T : ids2 + (q - B) * T2, n = q < B ? lens[q] : lens2[q - B];
        CHECK(qwen3_cuda_set_decode_lora(g, with_lora ? &d1[q].lo : NULL) == 0, "set decode lora");
        for (int j = 0; j < nlog[q]; j++) {
            int rc = j == 0 ? (qwen3_cuda_cache_reset(g, cap) || qwen3_cuda_cache_forward(g, prompt, n, ref))
                            : qwen3_cuda_cache_forward(g, &fed[q][j - 1], 1, ref);
            CHECK(rc == 0, "single sequence %d, logits %d: %s", q, j, paw_last_error());
            double e = rel_l2(got + ((size_t)q * MAXF + j) * V, ref, (size_t)V);
            if (!(e <= worst)) worst = e;
        }
    }
    CHECK(nlog[0] == 3 && nlog[1] == 3 + S && nlog[2] == 3 && nlog[3] == 1 + S && nlog[4] == 1 + S,
          "batch refill: logit rows per sequence %d %d %d %d %d", nlog[0], nlog[1], nlog[2], nlog[3], nlog[4]);
    char name[200];
    snprintf(name, sizeof name, "%s batch refill%s vs single%s", fixture, prefix ? " from shared prefixes" : "",
             with_lora ? " (per-row lora)" : "");
    CHECK(worst < 2e-2, "%s: worst rel L2 %g", name, worst);
    // Bad row maps are refused before any work.
    const int dup[2] = {1, 1}, out_of[1] = {B};
    CHECK(qwen3_cuda_batch_refill(g, dup, 2, ids2, lens2, T2, with_lora ? &fill_lo : NULL, NULL, NULL) != 0 &&
              strstr(paw_last_error(), "twice"),
          "refill with a row named twice: %s", paw_last_error());
    CHECK(qwen3_cuda_batch_refill(g, out_of, 1, ids2, lens2, T2, NULL, NULL, NULL) != 0 &&
              strstr(paw_last_error(), "outside the batch"),
          "refill of a row past the batch: %s", paw_last_error());
    free(got), free(tmp), free(ref);
    if (with_lora) {
        for (int m = 0; m < LORA_NUM_MODULES; m++)
            paw_cuda_free(bA[m]), paw_cuda_free(bB[m]), paw_cuda_free(pA[m]), paw_cuda_free(pB[m]);
        for (int q = 0; q < NSEQ; q++) dev_lora_free(&d1[q]), mapper_lora_free(&one[q]);
        mapper_lora_free(&lo);
    }
    qwen3_cuda_free(g);
    qwen3_free(&cpu);
}

// The runner's decoding (interpreter/decoder_cuda.h) with continuous batching, on jobs that end
// at different lengths (imposed ends: random weights rarely stop), each with one of three
// programs' adapters or none: every job's tokens against the same prompt generated alone through
// the single-sequence path with its adapter; then the same jobs as fixed batches and one row at
// a time. With 4 rows a refill is due at each free row; with 9 once two are free, and a refill of
// more than 3 rows (the prefill buffer's ceil(9 / 4)) is prefilled in pieces. The prompts of a
// program start with its 4-token prefix; in the last mode each job takes a random number of its
// prompt's first tokens (0 up to the shared ones, one left to prefill) from its program's prefix
// made once (qwen3_cuda_prefix_create) and copied into its row.
static void test_decoder_refill(const char *fixture, int batch) {
    Qwen3 cpu;
    if (load_fixture(fixture, 1, &cpu) != 0) return;
    const Qwen3Config *cfg = &cpu.cfg;
    enum { N = 23, MAXT = 9, MAX_NEW = 7, NPROG = 3 };
    const int V = cfg->vocab_size, r = 4;
    Qwen3Cuda *g = qwen3_cuda_create(&cpu, 1, 1);
    if (!g) {
        CHECK(0, "%s", paw_last_error());
        qwen3_free(&cpu);
        return;
    }
    Qwen3Lora lo;
    Qwen3Lora one[NPROG];
    DevLora dl[NPROG];
    MapperConfig mc = {.d = 8, .L = cfg->num_layers, .nbases = 1, .rank = r, .alpha = 2.0f * r, .icfg = *cfg};
    rand_lora(cfg, NPROG, r, &lo);
    for (int p = 0; p < NPROG; p++) {
        mapper_lora_select(&mc, &lo, p, &one[p]);
        one[p].scale = 1.0f;  // the decoder's adapters carry their scale in B
        dev_lora(cfg, &one[p], &dl[p], 0);
    }
    enum { PL = 4 };  // prefix tokens per program
    static int ids[N][MAXT], pre_ids[NPROG + 1][PL];
    PawDecodeJob jobs[N];
    int order[N], lens[N], starts[N + 1], prog[N];
    for (int p = 0; p <= NPROG; p++)
        for (int t = 0; t < PL; t++) pre_ids[p][t] = (int)paw_rng_below(&g_rng, (uint64_t)V);
    for (int j = 0; j < N; j++) {
        lens[j] = 2 + (int)paw_rng_below(&g_rng, MAXT - 1);
        int p = prog[j] = (int)paw_rng_below(&g_rng, NPROG + 1);  // NPROG: no adapter
        for (int t = 0; t < lens[j]; t++) ids[j][t] = t < PL ? pre_ids[p][t] : (int)paw_rng_below(&g_rng, (uint64_t)V);
        jobs[j] = (PawDecodeJob){ids[j], lens[j], p < NPROG ? &dl[p].lo : NULL, 1 + (int)paw_rng_below(&g_rng, MAX_NEW + 3),
                                 NULL, 0};
    }
    paw_run_plan(lens, N, N, order, starts);
    // Reference: each job alone, greedy through the single-sequence cache, with how close each
    // choice was (the runner-up's gap, of the largest logit).
    int ref[N][MAX_NEW], ref_n[N];
    float ref_gap[N][MAX_NEW];
    float *lg = xmalloc(sizeof(float) * (size_t)V);
    for (int j = 0; j < N; j++) {
        int want = jobs[j].end < MAX_NEW ? jobs[j].end : MAX_NEW;
        CHECK(qwen3_cuda_set_decode_lora(g, jobs[j].lora) == 0, "set decode lora: %s", paw_last_error());
        int rc = qwen3_cuda_cache_reset(g, lens[j] + want) || qwen3_cuda_cache_forward(g, ids[j], lens[j], lg);
        for (ref_n[j] = 0; rc == 0 && ref_n[j] < want; ref_n[j]++) {
            int best = 0, second = -1;
            float top = 0.0f;
            for (int i = 1; i < V; i++)
                if (lg[i] > lg[best]) best = i;
            for (int i = 0; i < V; i++) {
                top = fmaxf(top, fabsf(lg[i]));
                if (i != best && (second < 0 || lg[i] > lg[second])) second = i;
            }
            ref[j][ref_n[j]] = best;
            ref_gap[j][ref_n[j]] = second < 0 ? 1.0f : (lg[best] - lg[second]) / top;
            if (ref_n[j] + 1 < want) rc = qwen3_cuda_cache_forward(g, &best, 1, lg);
        }
        CHECK(rc == 0 && ref_n[j] == want, "single decode job %d: %d tokens, %d expected (%s)", j, ref_n[j], want,
              paw_last_error());
    }
    free(lg);
    qwen3_cuda_set_decode_lora(g, NULL);
    Qwen3CudaPrefix pre[NPROG + 1];
    for (int p = 0; p <= NPROG; p++)
        CHECK(qwen3_cuda_prefix_create(g, pre_ids[p], PL, p < NPROG ? &dl[p].lo : NULL, &pre[p]) == 0, "prefix: %s",
              paw_last_error());
    long kept_tokens = 0;
    static const char *const modes[4] = {"refill", "fixed batches", "one row at a time", "refill from shared prefixes"};
    for (int mode = 0; mode < 4; mode++) {
        if (mode == 3)
            for (int j = 0; j < N; j++) {
                int most = lens[j] - 1 < PL ? lens[j] - 1 : PL;
                jobs[j].keep = (int)paw_rng_below(&g_rng, (uint64_t)most + 1);
                jobs[j].prefix = jobs[j].keep > 0 ? &pre[prog[j]] : NULL;
                kept_tokens += jobs[j].keep;
            }
        PawGpuDecoder *d = paw_gpu_decoder_create(g, cfg, mode == 2 ? 1 : batch);
        paw_gpu_decoder_set_refill(d, mode != 1);
        int out[N * MAX_NEW], counts[N], bad = 0, ties = 0;
        PawDecodeStats st;
        CHECK(paw_gpu_decoder_run(d, jobs, order, N, r, MAX_NEW, -1, out, counts, &st) == 0, "decoder %s: %s", modes[mode],
              paw_last_error());
        for (int j = 0; j < N; j++) {
            bad += counts[j] != ref_n[j];
            for (int k = 0; k < counts[j] && k < ref_n[j]; k++) {
                // A job ended by its imposed end shows the stop token (-1 here) last.
                int last_imposed = k == counts[j] - 1 && jobs[j].end <= MAX_NEW;
                if (out[j * MAX_NEW + k] == (last_imposed ? -1 : ref[j][k])) continue;
                // A bf16 near tie (see greedy_agrees) may go either way; the job's tokens then
                // follow another sequence, so the comparison of this job ends there.
                if (!last_imposed && ref_gap[j][k] <= 1e-2f) {
                    ties++;
                    break;
                }
                bad++;
            }
        }
        if (ties) printf("decoder %s (%s): %d jobs left the reference at a bf16 near tie\n", modes[mode], fixture, ties);
        printf("decoder %s (%d rows, %s): %ld prefills, %ld steps, %.0f%% of rows running, %ld prompt tokens "
               "prefilled, %ld from prefixes\n", modes[mode], mode == 2 ? 1 : batch, fixture, st.fills, st.steps,
               st.row_steps ? 100.0 * (st.row_steps - st.idle_rows) / st.row_steps : 0.0, st.prefill_tokens,
               st.prefix_tokens);
        CHECK(bad == 0, "decoder %s (%d rows, %s): %d tokens or counts differ from each job decoded alone", modes[mode],
              batch, fixture, bad);
        if (mode == 0) CHECK(st.fills > (N + batch - 1) / batch, "decoder: %ld prefills, no refill happened", st.fills);
        if (mode == 3)
            CHECK(kept_tokens > 0 && st.prefix_tokens == kept_tokens,
                  "decoder: %ld prompt tokens from prefixes, %ld expected", st.prefix_tokens, kept_tokens);
        {
            long all = 0;
            for (int j = 0; j < N; j++) all += lens[j];
            CHECK(st.prefill_tokens + st.prefix_tokens == all, "decoder %s: %ld + %ld prompt tokens, %ld expected",
                  modes[mode], st.prefill_tokens, st.prefix_tokens, all);
        }
        // Bad input is refused before any work.
        PawDecodeJob wrong = jobs[order[0]];
        const int first = 0;
        wrong.lora = &dl[0].lo;
        CHECK(paw_gpu_decoder_run(d, &wrong, &first, 1, r + 1, MAX_NEW, -1, out, counts, NULL) != 0 &&
                  strstr(paw_last_error(), "rank"),
              "decoder: an adapter of another rank accepted (%s)", paw_last_error());
        if (mode == 3) {  // a job that claims more of a prefix than it holds
            wrong = jobs[order[0]];
            wrong.prefix = &pre[prog[order[0]]], wrong.keep = lens[order[0]];
            CHECK(paw_gpu_decoder_run(d, &wrong, &first, 1, r, MAX_NEW, -1, out, counts, NULL) != 0 &&
                      strstr(paw_last_error(), "from a prefix"),
                  "decoder: a job taking its whole prompt from a prefix accepted (%s)", paw_last_error());
        }
        paw_gpu_decoder_free(d);
    }
    for (int p = 0; p <= NPROG; p++) qwen3_cuda_prefix_free(&pre[p]);
    for (int p = 0; p < NPROG; p++) dev_lora_free(&dl[p]), mapper_lora_free(&one[p]);
    mapper_lora_free(&lo);
    qwen3_cuda_free(g);
    qwen3_free(&cpu);
}

// A GPU runner of `rows` rows holding the first n programs (each pseudo-program's template, with
// its adapter or none); NULL, counted as a failure, when it cannot be made.
static PawGpuRunner *runner_with_programs(Qwen3 *cpu, const PawTokenizer *tok, const PawVocabMap *vm, int stop, int rows,
                                          char *const *pseudo, const Qwen3Lora *const *lora, int n) {
    PawGpuRunner *gr = paw_gpu_runner_create(cpu, tok, vm, stop, rows);
    CHECK(gr != NULL, "gpu runner: %s", paw_last_error());
    for (int p = 0; gr && p < n; p++) {
        char *tmpl = paw_interpreter_prompt_template(pseudo[p]);
        CHECK(paw_gpu_runner_add_program(gr, tmpl, lora[p]) == p, "add program: %s", paw_last_error());
        free(tmpl);
    }
    return gr;
}

// The GPU batch runner against the CPU runner on a tiny trimmed-vocabulary interpreter made by
// ./paw (random weights), three programs (two random adapters of different rank and scale, one
// without), and inputs that include an empty one and one too long for the context.
//
// The CPU runs fp32, the GPU bf16 weights and activations; on a random model many greedy steps
// are near ties, so a flipped argmax (and a different continuation from there) is legitimate and
// the agreement with the CPU is printed as a figure, not required. What is checked: the same
// inputs are refused for the same reasons, every other job has an output, and the batched run
// (rows of different programs and lengths) gives what the same runner gives one row at a time,
// up to those same near ties (at least 75% of the outputs identical; the model-level tests above
// check the batched tokens exactly).
static void test_runner_batch(void) {
    char dir[] = "/tmp/paw_gpu_runner_XXXXXX", path[512];
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    const char *bin = getenv("PAW_BIN") ? getenv("PAW_BIN") : "./paw";
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "%s data synth -o %s/jsonl --seed 5 --train 8 --val 4 --test 8 --families first_word,parity,sentiment "
             "--pseudo-examples 1 >/dev/null 2>&1 && %s init --shape tests/fixtures/train/interp-shape.json --out %s/interp "
             "--vocab-from %s/jsonl/train.jsonl,%s/jsonl/val.jsonl,%s/jsonl/test.jsonl --seed 1 --std 0.1 >/dev/null 2>&1",
             bin, dir, bin, dir, dir, dir, dir);
    if (system(cmd) != 0) {
        CHECK(0, "could not make the tiny interpreter: %s", cmd);
        return;
    }
    snprintf(path, sizeof path, "%s/interp", dir);
    Qwen3 cpu;
    PawTokenizer *tok = NULL;
    PawVocabMap vm = {0};
    int stop;
    if (qwen3_load(&cpu, path, 1) != 0 || paw_runner_resources(path, &tok, &vm, &stop) != 0) {
        CHECK(0, "%s", paw_last_error());
        return;
    }
    // Inputs and pseudo-programs from the test split (their words are in the vocabulary).
    snprintf(path, sizeof path, "%s/jsonl/test.jsonl", dir);
    char *text = paw_read_file(path, NULL);
    enum { NIN = 10, NPROG = 3 };
    char *inputs[NIN] = {0}, *pseudo[NPROG] = {0};
    int nin = 0;
    for (char *line = text ? strtok(text, "\n") : NULL; line && nin < 8; line = strtok(NULL, "\n")) {
        cJSON *o = cJSON_Parse(line);
        const cJSON *in = cJSON_GetObjectItem(o, "input"), *pp = cJSON_GetObjectItem(o, "pseudo_program");
        if (cJSON_IsString(in)) inputs[nin++] = xstrdup(in->valuestring);
        for (int p = 0; p < NPROG; p++)
            if (!pseudo[p] && cJSON_IsString(pp) && (p == 0 || strcmp(pp->valuestring, pseudo[p - 1]))) {
                pseudo[p] = xstrdup(pp->valuestring);
                break;
            }
        cJSON_Delete(o);
    }
    free(text);
    inputs[nin++] = xstrdup("   ");  // empty: refused
    size_t long_n = 3000;
    inputs[nin] = xmalloc(long_n + 1);
    for (size_t i = 0; i < long_n; i++) inputs[nin][i] = "ab "[i % 3];
    inputs[nin++][long_n] = 0;  // longer than the 512-token context: refused
    for (int p = 0; p < NPROG; p++)
        if (!pseudo[p]) pseudo[p] = xstrdup(p ? "Answer with the first word." : "Say yes or no.");
    Qwen3Lora lo[2];
    rand_lora(&cpu.cfg, 1, 4, &lo[0]);
    rand_lora(&cpu.cfg, 1, 2, &lo[1]);
    lo[1].scale = 0.5f;  // another rank and scale: padded and folded on the GPU
    const Qwen3Lora *prog_lora[NPROG] = {&lo[0], NULL, &lo[1]};
    const int max_new = 12, njobs = NPROG * nin;
    PawRunJob jobs[NPROG * NIN];
    for (int j = 0; j < njobs; j++) jobs[j] = (PawRunJob){j % NPROG, inputs[(j * 7) % nin]};  // programs interleaved
    char *cpu_out[NPROG * NIN], *cpu_err[NPROG * NIN], *gpu_out[NPROG * NIN], *gpu_err[NPROG * NIN];
    char *one_out[NPROG * NIN], *one_err[NPROG * NIN], *fix_out[NPROG * NIN], *fix_err[NPROG * NIN];
    char *whole_out[NPROG * NIN], *whole_err[NPROG * NIN];
    PawRunner runners[NPROG];
    for (int p = 0; p < NPROG; p++) {
        char *tmpl = paw_interpreter_prompt_template(pseudo[p]);
        CHECK(paw_runner_init(&runners[p], &cpu, tok, &vm, stop, tmpl, prog_lora[p]) == 0, "cpu runner: %s", paw_last_error());
        free(tmpl);
    }
    for (int j = 0; j < njobs; j++) {
        cpu_out[j] = cpu_err[j] = NULL;
        if (paw_runner_run(&runners[jobs[j].program], jobs[j].input, max_new, &cpu_out[j]) != 0)
            cpu_err[j] = xstrdup(paw_last_error());
    }
    // Passes: 5 rows with refills, one row at a time, 5 rows as fixed batches, 5 rows with refills
    // and every prompt prefilled whole (no shared prefixes).
    PawRunStats st[4];
    char **pass_out[4] = {gpu_out, one_out, fix_out, whole_out}, **pass_err[4] = {gpu_err, one_err, fix_err, whole_err};
    for (int pass = 0; pass < 4; pass++) {
        PawGpuRunner *gr = runner_with_programs(&cpu, tok, &vm, stop, pass == 1 ? 1 : 5, pseudo, prog_lora, NPROG);
        if (!gr) break;
        if (gr) paw_gpu_runner_set_refill(gr, pass != 2);
        if (gr && pass == 3) paw_gpu_runner_set_prefix_budget(gr, 0);
        CHECK(paw_gpu_runner_run(gr, jobs, njobs, max_new, pass_out[pass], pass_err[pass], &st[pass]) == 0,
              "gpu runner run: %s", paw_last_error());
        paw_gpu_runner_free(gr);
    }
    int same_cpu = 0, same_one = 0, same_fix = 0, same_whole = 0, ran = 0, mismatch_err = 0, missing = 0;
    for (int j = 0; j < njobs; j++) {
        mismatch_err += (cpu_err[j] != NULL) != (gpu_err[j] != NULL) || (cpu_err[j] && strcmp(cpu_err[j], gpu_err[j]));
        missing += !cpu_err[j] && !gpu_out[j];
        if (cpu_out[j] && gpu_out[j]) {
            ran++;
            same_cpu += !strcmp(cpu_out[j], gpu_out[j]);
            same_one += one_out[j] && !strcmp(one_out[j], gpu_out[j]);
            same_fix += fix_out[j] && !strcmp(fix_out[j], gpu_out[j]);
            same_whole += whole_out[j] && !strcmp(whole_out[j], gpu_out[j]);
        }
    }
    printf("gpu runner: %d jobs (%d refused) in 5 rows, %ld prefills, %ld steps, %.0f%% of rows running (fixed "
           "batches: %ld prefills, %ld steps, %.0f%%); outputs equal to the CPU runner's: %d of %d; to one row at a "
           "time: %d of %d; to fixed batches: %d of %d; %.1f rows/s vs one at a time %.1f rows/s\n",
           njobs, njobs - ran, st[0].fills, st[0].steps, 100.0 * (st[0].row_steps - st[0].idle_rows) / st[0].row_steps,
           st[2].fills, st[2].steps, 100.0 * (st[2].row_steps - st[2].idle_rows) / st[2].row_steps, same_cpu, ran,
           same_one, ran, same_fix, ran, st[0].rows / st[0].seconds, st[1].rows / st[1].seconds);
    CHECK(mismatch_err == 0, "gpu runner: %d jobs refused differently from the CPU runner", mismatch_err);
    CHECK(missing == 0 && ran > 0, "gpu runner: %d jobs without output (%d ran)", missing, ran);
    CHECK(same_one * 4 >= ran * 3, "gpu runner: batched outputs equal batch-1 outputs for only %d of %d jobs", same_one, ran);
    CHECK(same_fix * 4 >= ran * 3, "gpu runner: refilled outputs equal fixed-batch outputs for only %d of %d jobs", same_fix,
          ran);
    CHECK(st[0].rows == ran && st[2].rows == ran, "gpu runner: %ld and %ld rows run, %d expected", st[0].rows, st[2].rows,
          ran);
    // Shared prefixes: every program has several jobs here, so each shares its template prefix.
    printf("gpu runner: prompt tokens prefilled %ld, from shared prefixes %ld; without sharing %ld; outputs equal to "
           "those without sharing: %d of %d\n", st[0].prefill_tokens, st[0].prefix_tokens, st[3].prefill_tokens,
           same_whole, ran);
    CHECK(st[0].prefix_tokens > 0 && st[3].prefix_tokens == 0 &&
              st[0].prefill_tokens + st[0].prefix_tokens == st[3].prefill_tokens,
          "gpu runner: %ld + %ld prompt tokens with shared prefixes, %ld + %ld without", st[0].prefill_tokens,
          st[0].prefix_tokens, st[3].prefill_tokens, st[3].prefix_tokens);
    CHECK(same_whole * 4 >= ran * 3, "gpu runner: outputs with shared prefixes equal those without for only %d of %d jobs",
          same_whole, ran);
    // One job a run (an interactive filter): the prefix is made at the program's second job and
    // serves every later run.
    PawGpuRunner *gr1 = runner_with_programs(&cpu, tok, &vm, stop, 4, pseudo, prog_lora, 1);
    if (gr1) {
        long shared[3] = {0, 0, 0};
        int same1 = 0;
        for (int k = 0; k < 3; k++) {
            PawRunJob one = {0, inputs[k]};
            char *o = NULL, *e = NULL;
            PawRunStats s1;
            CHECK(paw_gpu_runner_run(gr1, &one, 1, max_new, &o, &e, &s1) == 0 && o, "single-job run %d: %s", k,
                  e ? e : paw_last_error());
            shared[k] = s1.prefix_tokens;
            for (int j = 0; j < njobs; j++)
                if (jobs[j].program == 0 && jobs[j].input == inputs[k]) {
                    same1 += o && gpu_out[j] && !strcmp(o, gpu_out[j]);
                    break;
                }
            free(o), free(e);
        }
        CHECK(shared[0] == 0 && shared[1] > 0 && shared[2] > 0,
              "gpu runner, one job a run: %ld, %ld and %ld prompt tokens from the shared prefix (0, then the prefix)",
              shared[0], shared[1], shared[2]);
        printf("gpu runner, one job a run: %ld, %ld, %ld prompt tokens from the shared prefix; %d of 3 outputs equal the "
               "batched run's\n", shared[0], shared[1], shared[2], same1);
        paw_gpu_runner_free(gr1);
    }
    // The memory guard: no prefix takes more than an eighth of the free device memory. The
    // emulation reports less free memory where asked (PAW_EMU_REPORTED_FREE), which puts the
    // boundary at the test's choice: just under 8x the smallest prefix, no prefix is made; at 8x
    // the largest, every one is. The outputs are those of the runs without and with sharing.
    if (strstr(paw_cuda_device_name(), "emulation")) {
        const Qwen3Config *c = &cpu.cfg;
        size_t per_token = (size_t)2 * c->num_layers * c->num_kv_heads * c->head_dim * 2, lo_n = (size_t)-1, hi_n = 0;
        for (int p = 0; p < NPROG; p++) {
            size_t n = runners[p].prefix_ids.n;
            lo_n = n < lo_n ? n : lo_n, hi_n = n > hi_n ? n : hi_n;
        }
        for (int k = 0; k < 2; k++) {
            char freeb[32];
            snprintf(freeb, sizeof freeb, "%zu", k ? 8 * hi_n * per_token : 8 * lo_n * per_token - 1);
            setenv("PAW_EMU_REPORTED_FREE", freeb, 1);
            PawGpuRunner *gm = runner_with_programs(&cpu, tok, &vm, stop, 5, pseudo, prog_lora, NPROG);
            if (!gm) break;
            char *mo[NPROG * NIN], *me[NPROG * NIN];
            PawRunStats sm;
            CHECK(paw_gpu_runner_run(gm, jobs, njobs, max_new, mo, me, &sm) == 0, "gpu runner run: %s", paw_last_error());
            unsetenv("PAW_EMU_REPORTED_FREE");
            int same = 0;
            char **want = k ? gpu_out : whole_out;
            for (int j = 0; j < njobs; j++) same += (!mo[j] && !want[j]) || (mo[j] && want[j] && !strcmp(mo[j], want[j]));
            long want_prefix = k ? st[0].prefix_tokens : 0;
            printf("gpu runner, %s bytes reported free (prefixes of %zu..%zu tokens, %zu bytes a token): %ld prompt "
                   "tokens from shared prefixes, %d of %d outputs equal the run %s sharing\n",
                   freeb, lo_n, hi_n, per_token, sm.prefix_tokens, same, njobs, k ? "with" : "without");
            CHECK(sm.prefix_tokens == want_prefix, "memory guard at %s bytes free: %ld prompt tokens from prefixes, %ld "
                  "expected", freeb, sm.prefix_tokens, want_prefix);
            CHECK(same == njobs, "memory guard at %s bytes free: %d of %d outputs as expected", freeb, same, njobs);
            for (int j = 0; j < njobs; j++) free(mo[j]), free(me[j]);
            paw_gpu_runner_free(gm);
        }
    }
    for (int j = 0; j < njobs; j++)
        free(cpu_out[j]), free(cpu_err[j]), free(gpu_out[j]), free(gpu_err[j]), free(one_out[j]), free(one_err[j]),
            free(fix_out[j]), free(fix_err[j]), free(whole_out[j]), free(whole_err[j]);
    for (int p = 0; p < NPROG; p++) paw_runner_free(&runners[p]), free(pseudo[p]);
    for (int i = 0; i < nin; i++) free(inputs[i]);
    mapper_lora_free(&lo[0]), mapper_lora_free(&lo[1]);
    paw_tokenizer_free(tok);
    paw_vocab_map_free(&vm);
    qwen3_free(&cpu);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) printf("could not remove %s\n", dir);
}

// A fresh directory from the template dir with synthetic data (train, val, test JSONL; train and
// val shards) and tiny models; returns the paw binary to run there, or NULL (a failed check).
static const char *make_tiny_world(char *dir) {
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp %s", dir);
        return NULL;
    }
    const char *bin = getenv("PAW_BIN") ? getenv("PAW_BIN") : "./paw";
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "set -e; P=%s; D=%s; V=$D/jsonl/train.jsonl,$D/jsonl/val.jsonl,$D/jsonl/test.jsonl; "
             "$P data synth -o $D/jsonl --seed 5 --train 24 --val 4 --test 8 --families first_word,parity,sentiment "
             "--pseudo-examples 1 >/dev/null 2>&1; $P data build $D/jsonl/train.jsonl -o $D/train --quiet; "
             "$P data build $D/jsonl/val.jsonl -o $D/val --quiet; "
             "$P init --shape tests/fixtures/train/interp-shape.json --out $D/interp --vocab-from $V --seed 1 --std 0.1 "
             ">/dev/null 2>&1; $P init --shape tests/fixtures/train/comp-shape.json --out $D/comp --vocab-from $V "
             "--seed 2 --std 0.1 >/dev/null 2>&1",
             bin, dir);
    int rc = system(cmd);
    CHECK(rc == 0, "could not make the tiny models and data: %s", cmd);
    return rc == 0 ? bin : NULL;
}

// The trained compiler on the GPU (`paw compile/eval --device cuda`) against the same exported
// compiler on the CPU: a tiny compiler trained for 3 steps on the CPU, then its adapters for a
// few specs from both devices, then the whole `paw eval` (every condition) through both.
static void test_trained_compiler_gpu(void) {
    char dir[] = "/tmp/paw_gpu_compiler_XXXXXX", path[512], cmd[4096];
    const char *bin = make_tiny_world(dir);
    if (!bin) return;
    snprintf(path, sizeof path, "%s/paw.json", dir);
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "{\"compiler\":\"%s/comp\",\"interpreter\":\"%s/interp\",\"train_data\":\"%s/train\",\"out_dir\":\"%s/run\","
             "\"lora_rank\":4,\"lora_alpha\":8,\"mapper_bases\":3,\"prefix_steps\":4,\"steps\":3,"
             "\"max_batch_examples\":4,\"lr\":0.01}",
             dir, dir, dir, dir);
    if (paw_write_file_atomic(path, cfg, strlen(cfg)) != 0) {
        CHECK(0, "%s", paw_last_error());
        return;
    }
    snprintf(cmd, sizeof cmd, "%s train %s/paw.json >/dev/null 2>&1", bin, dir);
    if (system(cmd) != 0) {
        CHECK(0, "could not train the tiny compiler: %s", cmd);
        return;
    }
    // Adapters of three specs, computed in one batch of 2 and one of 1 on each device.
    PawTrainedCompiler cpu, gpu;
    snprintf(path, sizeof path, "%s/run/export", dir);
    if (paw_trained_compiler_load(&cpu, path, QWEN3_WEIGHTS_F32) != 0) {
        CHECK(0, "%s", paw_last_error());
        return;
    }
    if (paw_trained_compiler_load(&gpu, path, QWEN3_WEIGHTS_F32) != 0 || paw_trained_compiler_use_gpu(&gpu) != 0) {
        CHECK(0, "%s", paw_last_error());
        paw_trained_compiler_free(&cpu);
        return;
    }
    // The first three test examples' specs and pseudo-programs (the tiny vocabulary covers only
    // the data's tokens).
    const char *specs[3] = {"", "", ""}, *pseudo[3] = {"", "", ""};
    snprintf(path, sizeof path, "%s/jsonl/test.jsonl", dir);
    char *lines = paw_read_file(path, NULL);
    cJSON *row[3] = {NULL, NULL, NULL};
    char *line = lines;
    for (int i = 0; i < 3 && line && *line; i++) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        row[i] = cJSON_Parse(line);
        const cJSON *sp = cJSON_GetObjectItem(row[i], "spec"), *pp = cJSON_GetObjectItem(row[i], "pseudo_program");
        if (cJSON_IsString(sp) && cJSON_IsString(pp)) specs[i] = sp->valuestring, pseudo[i] = pp->valuestring;
        line = nl ? nl + 1 : NULL;
    }
    CHECK(*specs[2] != '\0', "%s: no spec and pseudo_program in the first three lines", path);
    Qwen3Lora a[3], b[3];
    int rc_a = paw_trained_compiler_adapters(&cpu, specs, pseudo, 3, 2, a);
    int rc_b = paw_trained_compiler_adapters(&gpu, specs, pseudo, 3, 2, b);
    for (int i = 0; i < 3; i++) cJSON_Delete(row[i]);
    free(lines);
    CHECK(rc_a == 0 && rc_b == 0, "trained compiler adapters: %s", paw_last_error());
    if (rc_a == 0 && rc_b == 0) {
        const Qwen3Config *icfg = &cpu.icfg;
        for (int i = 0; i < 3; i++)
            for (int m = 0; m < LORA_NUM_MODULES; m++) {
                int din, dout;
                lora_module_dims(icfg, m, &din, &dout);
                size_t na = (size_t)icfg->num_layers * a[i].rank * din, nbb = (size_t)icfg->num_layers * dout * a[i].rank;
                char name[160];
                // The compiler runs in bf16 on the GPU: the bf16 tolerance of the model tests.
                snprintf(name, sizeof name, "trained compiler on the GPU: spec %d %s A", i, lora_module_names[m]);
                CHECK_CLOSE(name, b[i].A[m], a[i].A[m], na, 1e-1);
                snprintf(name, sizeof name, "trained compiler on the GPU: spec %d %s B", i, lora_module_names[m]);
                CHECK_CLOSE(name, b[i].B[m], a[i].B[m], nbb, 1e-1);
            }
    }
    if (rc_a == 0)
        for (int i = 0; i < 3; i++) mapper_lora_free(&a[i]);
    if (rc_b == 0)
        for (int i = 0; i < 3; i++) mapper_lora_free(&b[i]);
    paw_trained_compiler_free(&gpu);
    paw_trained_compiler_free(&cpu);

    // `paw eval` on both devices: every example and condition gives an output, and most outputs
    // agree (bf16 may flip a near-tie argmax, as in test_runner_batch).
    snprintf(cmd, sizeof cmd,
             "set -e; P=%s; D=%s; for dev in cpu cuda; do $P eval --compiler $D/run/export --interpreter $D/interp "
             "--data $D/jsonl/test.jsonl --max-new 6 --device $dev --report $D/eval-$dev.json >/dev/null 2>&1; done",
             bin, dir);
    if (system(cmd) != 0) {
        CHECK(0, "paw eval on cpu and cuda: %s", cmd);
        return;
    }
    cJSON *rep[2] = {NULL, NULL};
    for (int d = 0; d < 2; d++) {
        snprintf(path, sizeof path, "%s/eval-%s.json", dir, d ? "cuda" : "cpu");
        char *text = paw_read_file(path, NULL);
        rep[d] = text ? cJSON_Parse(text) : NULL;
        free(text);
    }
    const cJSON *ex0 = rep[0] ? cJSON_GetObjectItem(rep[0], "examples") : NULL;
    const cJSON *ex1 = rep[1] ? cJSON_GetObjectItem(rep[1], "examples") : NULL;
    int n0 = cJSON_GetArraySize(ex0), n1 = cJSON_GetArraySize(ex1), same = 0, total = 0;
    CHECK(n0 == 8 && n1 == 8, "paw eval reports: %d (cpu) and %d (cuda) examples of 8", n0, n1);
    for (int i = 0; i < n0 && i < n1; i++) {
        const cJSON *o0 = cJSON_GetObjectItem(cJSON_GetArrayItem(ex0, i), "outputs");
        const cJSON *o1 = cJSON_GetObjectItem(cJSON_GetArrayItem(ex1, i), "outputs");
        const cJSON *c;
        cJSON_ArrayForEach(c, o0) {
            const cJSON *g = cJSON_GetObjectItem(o1, c->string);
            total++;
            same += cJSON_IsString(g) && !strcmp(g->valuestring, c->valuestring);
        }
    }
    CHECK(total >= 8 * 4 && same * 4 >= total * 3, "paw eval --device cuda: %d of %d outputs equal the CPU's", same,
          total);
    printf("paw eval: %d of %d outputs (examples x conditions) equal on cpu and cuda\n", same, total);
    cJSON_Delete(rep[0]);
    cJSON_Delete(rep[1]);

    // `paw run` as a filter on both devices: the first test example's program (its spec and
    // pseudo-program) over the 8 test inputs twice (16 lines), in 3 rows on the GPU so that rows are
    // refilled; --stats says how it went.
    snprintf(cmd, sizeof cmd,
             "set -e; P=%s; D=%s; head -1 $D/jsonl/test.jsonl | sed 's/}$/,\"out\":\"one.paw\"}/' > $D/spec1.jsonl; "
             "$P compile --compiler $D/run/export --specs $D/spec1.jsonl --out-dir $D > $D/compile.err 2>&1; "
             "cat $D/jsonl/test.jsonl $D/jsonl/test.jsonl > $D/in.jsonl; "
             "$P run $D/one.paw --interpreter $D/interp --jsonl --max-new 6 < $D/in.jsonl > $D/run-cpu.jsonl 2> $D/run-cpu.err; "
             "$P run $D/one.paw --interpreter $D/interp --jsonl --max-new 6 --device cuda --batch 3 --stats "
             "< $D/in.jsonl > $D/run-cuda.jsonl 2> $D/run-cuda.err",
             bin, dir);
    if (system(cmd) != 0) {
        char *why[3];
        static const char *const logs[3] = {"compile.err", "run-cpu.err", "run-cuda.err"};
        for (int k = 0; k < 3; k++) {
            snprintf(path, sizeof path, "%s/%s", dir, logs[k]);
            why[k] = paw_read_file(path, NULL);
        }
        CHECK(0, "paw compile + paw run on cpu and cuda: %s\ncompile: %s\ncpu run: %s\ncuda run: %s", cmd,
              why[0] ? why[0] : "", why[1] ? why[1] : "", why[2] ? why[2] : "");
        free(why[0]), free(why[1]), free(why[2]);
    } else {
        char *out[2], *err;
        for (int d = 0; d < 2; d++) {
            snprintf(path, sizeof path, "%s/run-%s.jsonl", dir, d ? "cuda" : "cpu");
            out[d] = paw_read_file(path, NULL);
        }
        snprintf(path, sizeof path, "%s/run-cuda.err", dir);
        err = paw_read_file(path, NULL);
        int lines = 0, equal = 0;
        char *save0 = NULL, *save1 = NULL;
        char *l0 = out[0] ? strtok_r(out[0], "\n", &save0) : NULL, *l1 = out[1] ? strtok_r(out[1], "\n", &save1) : NULL;
        for (; l0 && l1; l0 = strtok_r(NULL, "\n", &save0), l1 = strtok_r(NULL, "\n", &save1)) lines++, equal += !strcmp(l0, l1);
        CHECK(lines == 16 && !l0 && !l1 && equal * 4 >= lines * 3,
              "paw run --device cuda: %d of %d lines equal the CPU's (16 expected, both ending together)", equal, lines);
        CHECK(err && strstr(err, "16 inputs") && strstr(err, "prefills"), "paw run --stats: %s", err ? err : "(nothing)");
        printf("paw run: %d of %d lines equal on cpu and cuda; %s", equal, lines, err ? err : "\n");
        free(out[0]), free(out[1]), free(err);

        // Interactive: each line is answered before the next is typed (the reader runs what has
        // arrived instead of waiting for 8 x --batch lines), in the batch run's words.
        snprintf(path, sizeof path, "%s/in.jsonl", dir);
        char *in_text = paw_read_file(path, NULL), *in_save = NULL;
        snprintf(path, sizeof path, "%s/run-cuda.jsonl", dir);
        char *batch_text = paw_read_file(path, NULL), *batch_save = NULL;
        const char *typed[3];
        const char *batch_line[3];
        int nt = 0;
        for (char *l = in_text ? strtok_r(in_text, "\n", &in_save) : NULL; l && nt < 3; l = strtok_r(NULL, "\n", &in_save))
            typed[nt++] = l;
        int nb = 0;
        for (char *l = batch_text ? strtok_r(batch_text, "\n", &batch_save) : NULL; l && nb < 3;
             l = strtok_r(NULL, "\n", &batch_save))
            batch_line[nb++] = l;
        char prog[512], interp[512], *answers[3];
        snprintf(prog, sizeof prog, "%s/one.paw", dir);
        snprintf(interp, sizeof interp, "%s/interp", dir);
        char *argv[] = {(char *)bin, "run", prog, "--interpreter", interp, "--jsonl", "--max-new", "6",
                        "--device", "cuda", "--batch", "4", NULL};
        int got = nt == 3 && nb == 3 ? run_interactive(argv, typed, 3, 300, answers) : 0;
        int same_batch = 0;
        for (int i = 0; i < got; i++) same_batch += !strcmp(answers[i], batch_line[i]);
        CHECK(got == 3, "paw run --device cuda, interactive: %d of 3 lines answered before the next was typed", got);
        CHECK(same_batch * 3 >= got * 2, "paw run --device cuda, interactive: %d of %d answers equal the batch run's",
              same_batch, got);
        printf("paw run --device cuda, interactive: %d of 3 lines answered one at a time, %d equal to the batch run's\n",
               got, same_batch);
        for (int i = 0; i < got; i++) free(answers[i]);
        free(in_text), free(batch_text);
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

// `paw train` on the GPU (tiny models): six steps with checkpoints every three and an evaluation
// on the GPU every three, against the same run killed while writing its step-6 checkpoint and
// resumed from step 3. The emulation is deterministic, so there the losses must be equal bit for
// bit; a GPU's fp32 atomics (the attention backward's dQ, the squared norms) sum in varying order,
// a few ulps a step, so there within 1e-4 relative: a resume that lost the moments, the data
// position or the random stream moves the loss by more than 1e-3 at lr 0.01.
static void test_train_resume_gpu(void) {
    char dir[] = "/tmp/paw_gpu_resume_XXXXXX", path[512], cmd[2048];
    const char *bin = make_tiny_world(dir);
    if (!bin) return;
    for (int r = 0; r < 2; r++) {
        char cfg[1024];
        snprintf(path, sizeof path, "%s/%c.json", dir, "ab"[r]);
        snprintf(cfg, sizeof cfg,
                 "{\"mode\":\"paw\",\"device\":\"cuda\",\"compiler\":\"%s/comp\",\"interpreter\":\"%s/interp\","
                 "\"train_data\":\"%s/train\",\"val_data\":\"%s/val\",\"out_dir\":\"%s/run_%c\",\"lora_rank\":4,"
                 "\"lora_alpha\":8,\"mapper_bases\":3,\"prefix_steps\":4,\"steps\":6,\"max_batch_examples\":4,"
                 "\"lr\":0.01,\"warmup_steps\":2,\"save_every\":3,\"keep_last\":5,\"eval_every\":3,"
                 "\"eval_examples\":4,\"max_new_tokens\":4,\"seed\":3}",
                 dir, dir, dir, dir, dir, "ab"[r]);
        if (paw_write_file_atomic(path, cfg, strlen(cfg)) != 0) {
            CHECK(0, "%s", paw_last_error());
            return;
        }
    }
    snprintf(cmd, sizeof cmd, "%s train %s/a.json 2>%s/a.err", bin, dir, dir);
    int rc_a = system(cmd);
    CHECK(rc_a == 0, "uninterrupted GPU run: %s (see %s/a.err)", cmd, dir);
    snprintf(cmd, sizeof cmd, "PAW_TEST_KILL_DURING_SAVE=6 %s train %s/b.json 2>/dev/null", bin, dir);
    int rc_b = system(cmd);
    CHECK(WIFEXITED(rc_b) && WEXITSTATUS(rc_b) == 128 + 9, "GPU run killed in its step-6 save: status %d", rc_b);
    snprintf(cmd, sizeof cmd, "%s train %s/b.json --resume 2>%s/b.err", bin, dir, dir);
    int rc_r = system(cmd);
    CHECK(rc_r == 0, "resumed GPU run: %s (see %s/b.err)", cmd, dir);
    if (rc_a != 0 || rc_r != 0) return;
    double a[6], b[6];
    snprintf(path, sizeof path, "%s/run_a/log.jsonl", dir);
    int na = read_log_losses(path, a, 6);
    snprintf(path, sizeof path, "%s/run_b/log.jsonl", dir);
    int nb = read_log_losses(path, b, 6);
    CHECK(na == 6 && nb == 6, "GPU resume: %d and %d steps logged of 6", na, nb);
    int exact = strstr(paw_cuda_device_name(), "emulation") != NULL, ok = na == 6 && nb == 6;
    for (int i = 0; i < 6 && na == 6 && nb == 6; i++) {
        double d = fabs(a[i] - b[i]) / fabs(a[i]);
        int same = exact ? a[i] == b[i] : d <= 1e-4;
        ok &= same;
        CHECK(same, "GPU resume, step %d: loss %.17g uninterrupted, %.17g resumed (%s)", i + 1, a[i], b[i],
              exact ? "emulation: must be equal" : "bound 1e-4 relative");
    }
    if (!ok) return;
    snprintf(path, sizeof path, "%s/run_b/export/mapper.safetensors", dir);
    CHECK(paw_file_exists(path), "GPU resume: no export at %s", path);
    printf("GPU train resume: losses %s over 6 steps (killed in the step-6 save, resumed from step 3)\n",
           exact ? "equal bit for bit" : "compared at 1e-4");
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

// AdamW reading bf16 gradients equals AdamW reading the same values in fp32, bit for bit.
static void test_adamw_bf16_grad(size_t n) {
    float *g = rand_bf16(n, 1e-2f), *w = rand_f32(n, 0.1f), *m = rand_f32(n, 1e-3f), *v = rand_f32(n, 1e-6f);
    for (size_t i = 0; i < n; i++) v[i] = fabsf(v[i]);
    paw_bf16 *g16 = dev_bf16(g, n), *p1 = poisoned_bf16(n), *p2 = poisoned_bf16(n);
    float *g32 = dev_f32(g, n), *w1 = dev_f32(w, n), *w2 = dev_f32(w, n), *m1 = dev_f32(m, n), *m2 = dev_f32(m, n),
          *v1 = dev_f32(v, n), *v2 = dev_f32(v, n), *nsq = poisoned_f32(1), *nsq2 = poisoned_f32(1);
    paw_cuda_memset(nsq, 0, sizeof(float)), paw_cuda_memset(nsq2, 0, sizeof(float));
    grad_norm_sq_cuda(nsq, g32, n);
    grad_norm_sq_bf16_cuda(nsq2, g16, n);
    adamw_cuda(p1, w1, g32, m1, v1, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 3, nsq, 0.5f, 99);
    adamw_bf16_grad_cuda(p2, w2, g16, m2, v2, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 3, nsq2, 0.5f, 99);
    float *a = host_f32(w1, n), *b = host_f32(w2, n), *ma = host_f32(m1, n), *mb = host_f32(m2, n);
    float *pa = host_bf16(p1, n), *pb = host_bf16(p2, n), *na = host_f32(nsq, 1), *nb = host_f32(nsq2, 1);
    double rel = fabs((double)na[0] - nb[0]) / (na[0] > 0 ? na[0] : 1);
    CHECK(rel < 1e-5, "bf16 grad norm %g vs fp32 %g", nb[0], na[0]);
    // The norms may differ in their last bits (atomics order), so compare the updates with the
    // same clip: both runs above used their own norm; redo b with a's norm for a bitwise check.
    paw_cuda_upload(w2, w, sizeof(float) * n), paw_cuda_upload(m2, m, sizeof(float) * n);
    paw_cuda_upload(v2, v, sizeof(float) * n);
    adamw_bf16_grad_cuda(p2, w2, g16, m2, v2, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 3, nsq, 0.5f, 99);
    free(b), free(mb), free(pb);
    b = host_f32(w2, n), mb = host_f32(m2, n), pb = host_bf16(p2, n);
    CHECK(memcmp(a, b, sizeof(float) * n) == 0 && memcmp(ma, mb, sizeof(float) * n) == 0 &&
              memcmp(pa, pb, sizeof(float) * n) == 0,
          "adamw with bf16 gradients differs from fp32 gradients of the same values (n=%zu)", n);
    free(g), free(w), free(m), free(v), free(a), free(b), free(ma), free(mb), free(pa), free(pb), free(na), free(nb);
    paw_cuda_free(g16), paw_cuda_free(p1), paw_cuda_free(p2), paw_cuda_free(g32), paw_cuda_free(w1);
    paw_cuda_free(w2), paw_cuda_free(m1), paw_cuda_free(m2), paw_cuda_free(v1), paw_cuda_free(v2);
    paw_cuda_free(nsq), paw_cuda_free(nsq2);
}

// bf16 weight gradients for the layer matrices: the same gradients as the fp32 store up to one
// bf16 rounding (relative 2^-8 per element, so 1e-2 relative L2 is a loose bound), and the
// AdamW step's gradient norm equals the host's over the downloaded gradients.
static void test_model_bf16_grads(const char *fixture) {
    char name[300];
    Qwen3 cpu;
    if (load_fixture(fixture, 0, &cpu) != 0) return;
    const Qwen3Config *cfg = &cpu.cfg;
    const int B = 2, T = 21, N = B * T, V = cfg->vocab_size;
    int *ids = xmalloc(sizeof(int) * N), *tg = xmalloc(sizeof(int) * N);
    for (int i = 0; i < N; i++) ids[i] = (int)paw_rng_below(&g_rng, (uint64_t)V), tg[i] = (int)paw_rng_below(&g_rng, (uint64_t)V);
    Qwen3Cuda *a = qwen3_cuda_create(&cpu, 0, 0), *b = qwen3_cuda_create(&cpu, 0, 0);
    if (!a || !b) {
        CHECK(0, "%s", paw_last_error());
        qwen3_free(&cpu);
        return;
    }
    CHECK(qwen3_cuda_use_bf16_grads(b) == 0, "use_bf16_grads: %s", paw_last_error());
    Qwen3CudaInputs in = {.ids = ids, .targets = tg, .backward = 1};
    CHECK(qwen3_cuda_forward(a, &in, B, T) == 0 && qwen3_cuda_backward(a) == 0, "fp32-grad step");
    CHECK(qwen3_cuda_forward(b, &in, B, T) == 0 && qwen3_cuda_backward(b) == 0, "bf16-grad step: %s", paw_last_error());
    Qwen3 ga, gb;
    qwen3_create(&ga, cfg, 1), qwen3_create(&gb, cfg, 1);
    CHECK(qwen3_cuda_get_grads(a, &ga.params) == 0 && qwen3_cuda_get_grads(b, &gb.params) == 0, "get_grads");
    for (int i = 0; i < QWEN3_NUM_PARAMS; i++) {
        Qwen3ParamInfo info = qwen3_param_info(cfg, i);
        if (info.numel == 0) continue;
        snprintf(name, sizeof name, "%s bf16 grads %s", fixture, info.hf_name);
        CHECK_CLOSE(name, *qwen3_param_slot(&gb.params, i), *qwen3_param_slot(&ga.params, i), info.numel, 1e-2);
    }
    Qwen3CudaAdamW opt = {1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f};
    float nb = 0;
    CHECK(qwen3_cuda_adamw_step(b, &opt, &nb) == 0, "bf16-grad adamw: %s", paw_last_error());
    double sq = 0;
    for (size_t i = 0; i < cpu.num_params; i++) sq += (double)gb.params_memory[i] * gb.params_memory[i];
    CHECK(fabs(nb - sqrt(sq)) < 1e-3 * sqrt(sq), "bf16-grad norm %g vs host %g", nb, sqrt(sq));
    qwen3_free(&ga), qwen3_free(&gb);
    free(ids), free(tg);
    qwen3_cuda_free(a), qwen3_cuda_free(b);
    qwen3_free(&cpu);
}

// ZeRO-1 on the GPU (qwen3_cuda_shard_optimizer): W models, each keeping the optimizer state of
// one rank's block, given the same gradients as an unsharded model (uploaded into the gradient
// blocks, so both see identical values; a backward would differ by its atomics), together do
// exactly the unsharded update: the same master weights, moments and stochastically rounded bf16
// weights bit for bit on each shard over two clipped steps (each shard gets the unsharded model's
// norm, which the trainer's sum over ranks gives up to rounding), the other runs' weights untouched, and the shards' squared norms adding up to the whole one.
static void fill_grads(Qwen3Cuda *g, const float *h32, const float *h16) {
    float *f32;
    paw_bf16 *b16;
    size_t n32, n16;
    qwen3_cuda_grad_blocks(g, &f32, &n32, &b16, &n16);
    paw_cuda_upload(f32, h32, sizeof(float) * n32);
    if (n16) paw_cuda_upload_bf16(b16, h16, n16);
}

static void test_model_zero_shards(const char *fixture, int bf16, int world) {
    char name[300];
    Qwen3 cpu;
    if (load_fixture(fixture, 0, &cpu) != 0) return;
    Qwen3Cuda *a = qwen3_cuda_create(&cpu, 0, 0);
    if (!a) {
        CHECK(0, "%s", paw_last_error());
        qwen3_free(&cpu);
        return;
    }
    if (bf16) qwen3_cuda_use_bf16_grads(a);
    qwen3_cuda_set_adam_state(a, 0, cpu.params_memory);
    // Two steps of random gradients on every parameter, zeros in the padding (as a backward
    // leaves it), with clipping active: the sharded models below get the unsharded model's norm
    // (what the trainer's sum over ranks gives up to rounding), so the bits must agree.
    float *f32;
    paw_bf16 *b16;
    size_t n32, n16, total = cpu.num_params;
    qwen3_cuda_grad_blocks(a, &f32, &n32, &b16, &n16);
    float *h32[2] = {zeros(n32), zeros(n32)}, *h16[2] = {zeros(n16), zeros(n16)};
    int nr = qwen3_cuda_runs(a, 0, total, NULL, 0);
    Qwen3CudaRun *runs = xmalloc(sizeof *runs * (size_t)nr);
    qwen3_cuda_runs(a, 0, total, runs, nr);
    for (int st = 0; st < 2; st++)
        for (int k = 0; k < nr; k++) {
            float *h = runs[k].grad_bf16 ? h16[st] + ((paw_bf16 *)runs[k].grad - b16)
                                         : h32[st] + ((float *)runs[k].grad - f32);
            for (size_t i = 0; i < runs[k].n; i++) h[i] = bf16_round(1e-2f * paw_rng_normal(&g_rng));
        }
    float *d_sq = paw_cuda_malloc(sizeof(float)), sq_step[2] = {0, 0};
    Qwen3CudaAdamW opt = {1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.0f};
    for (int st = 0; st < 2; st++) {
        fill_grads(a, h32[st], h16[st]);
        paw_cuda_memset(d_sq, 0, sizeof(float));
        qwen3_cuda_grad_norm_sq(a, d_sq);
        paw_cuda_download(&sq_step[st], d_sq, sizeof(float));
        if (st == 0) opt.max_grad_norm = 0.5f * sqrtf(sq_step[0]);  // clips both steps by about half
        CHECK(qwen3_cuda_adamw_apply(a, &opt, st + 1, d_sq) == 0, "unsharded adamw: %s", paw_last_error());
    }
    const float sq_all = sq_step[0];
    float *ref[3], *got[3];
    for (int w = 0; w < 3; w++) {
        ref[w] = xmalloc(sizeof(float) * total), got[w] = xmalloc(sizeof(float) * total);
        qwen3_cuda_get_adam_state(a, w, ref[w]);
    }
    double sq_sum = 0;
    for (int r = 0; r < world; r++) {
        size_t lo = paw_shard_begin(total, world, r), hi = paw_shard_begin(total, world, r + 1);
        Qwen3Cuda *b = qwen3_cuda_create(&cpu, 0, 0);
        if (bf16) qwen3_cuda_use_bf16_grads(b);
        // Odd ranks shard existing state (which keeps its block), even ones shard first (the
        // trainer's way: the state is only ever made for the block).
        if (r % 2) qwen3_cuda_set_adam_state(b, 0, cpu.params_memory);
        CHECK(qwen3_cuda_shard_optimizer(b, lo, hi) == 0, "shard %d of %d: %s", r, world, paw_last_error());
        CHECK(qwen3_cuda_shard_optimizer(b, lo, hi) != 0, "a second sharding is refused");
        if (r % 2 == 0) qwen3_cuda_set_adam_state(b, 0, cpu.params_memory);
        for (int st = 0; st < 2; st++) {
            fill_grads(b, h32[st], h16[st]);
            if (st == 0) {
                float sq = 0;
                paw_cuda_memset(d_sq, 0, sizeof(float));
                qwen3_cuda_grad_norm_sq(b, d_sq);
                paw_cuda_download(&sq, d_sq, sizeof sq);
                sq_sum += sq;
            }
            paw_cuda_upload(d_sq, &sq_step[st], sizeof(float));
            CHECK(qwen3_cuda_adamw_apply(b, &opt, st + 1, d_sq) == 0, "sharded adamw: %s", paw_last_error());
        }
        qwen3_cuda_get_adam_state(b, 0, got[0]);
        qwen3_cuda_get_adam_state(b, 1, got[1]);
        qwen3_cuda_get_adam_state(b, 2, got[2]);
        const char *what[3] = {"master", "first moment", "second moment"};
        for (int w = 0; w < 3; w++) {
            const float *x = w == 0 ? got[0] + lo : got[w], *y = ref[w] + lo;
            size_t bad = 0;
            for (size_t i = 0; i < hi - lo; i++) bad += memcmp(&x[i], &y[i], sizeof(float)) != 0;
            snprintf(name, sizeof name, "%s%s zero shard %d/%d %s", fixture, bf16 ? " bf16" : "", r, world, what[w]);
            CHECK(bad == 0, "%s: %zu of %zu values differ from the unsharded update (two clipped steps)", name, bad,
                  hi - lo);
        }
        // bf16 weights: the shard's runs as the unsharded update rounded them, the others as loaded.
        Qwen3 wb;
        qwen3_create(&wb, &cpu.cfg, 1);
        Qwen3 wa;
        qwen3_create(&wa, &cpu.cfg, 1);
        qwen3_cuda_get_params(b, &wb.params);
        qwen3_cuda_get_params(a, &wa.params);
        size_t bad_in = 0, bad_out = 0;
        for (size_t i = 0; i < total; i++) {
            float loaded = bf16_round(cpu.params_memory[i]);
            if (i >= lo && i < hi) bad_in += memcmp(&wb.params_memory[i], &wa.params_memory[i], sizeof(float)) != 0;
            else bad_out += memcmp(&wb.params_memory[i], &loaded, sizeof(float)) != 0;
        }
        CHECK(bad_in == 0, "%s%s zero shard %d/%d: %zu bf16 weights of the shard differ from the unsharded update",
              fixture, bf16 ? " bf16" : "", r, world, bad_in);
        CHECK(bad_out == 0, "%s%s zero shard %d/%d: %zu bf16 weights outside the shard changed", fixture,
              bf16 ? " bf16" : "", r, world, bad_out);
        qwen3_free(&wa), qwen3_free(&wb);
        qwen3_cuda_free(b);
    }
    CHECK(fabs(sq_sum - sq_all) <= 1e-5 * sq_all, "%s zero: shard norms sum to %g, whole %g", fixture, sq_sum, sq_all);
    for (int w = 0; w < 3; w++) free(ref[w]), free(got[w]);
    for (int st = 0; st < 2; st++) free(h32[st]), free(h16[st]);
    free(runs);
    paw_cuda_free(d_sq);
    qwen3_cuda_free(a);
    qwen3_free(&cpu);
}

// Gradient reports of the CUDA backward (for overlapping the sums across GPUs): the order
// (head, layers L-1 .. 0, embeddings), each group's slices final at its report (a download in
// the report waits for the queued work; it must equal the value after the backward, bit for bit),
// and the groups covering every gradient element once.
typedef struct {
    Qwen3Cuda *g;
    int order[64], count;
    float *snap[64][8];
    size_t n[64][8];
    int nslices[64];
} ReportLog;

static float *download_slice(const Qwen3CudaGradSlice *sl) {
    float *h = xmalloc(sizeof(float) * (sl->n ? sl->n : 1));
    if (sl->bf16) paw_cuda_download_bf16(h, (const paw_bf16 *)sl->ptr, sl->n);
    else paw_cuda_download(h, sl->ptr, sizeof(float) * sl->n);
    return h;
}

static void on_report(void *ctx, int group) {
    ReportLog *r = ctx;
    if (r->count >= 64) return;
    Qwen3CudaGradSlice sl[8];
    int k = qwen3_cuda_group_grads(r->g, group, sl);
    r->order[r->count] = group;
    r->nslices[r->count] = k;
    for (int i = 0; i < k; i++) r->snap[r->count][i] = download_slice(&sl[i]), r->n[r->count][i] = sl[i].n;
    r->count++;
}

static void test_model_grad_reports(const char *fixture, int bf16) {
    Qwen3 cpu;
    if (load_fixture(fixture, 0, &cpu) != 0) return;
    const int B = 2, T = 13, N = B * T, V = cpu.cfg.vocab_size, L = cpu.cfg.num_layers;
    int *ids = xmalloc(sizeof(int) * N), *tg = xmalloc(sizeof(int) * N);
    for (int i = 0; i < N; i++) ids[i] = (int)paw_rng_below(&g_rng, (uint64_t)V), tg[i] = (int)paw_rng_below(&g_rng, (uint64_t)V);
    Qwen3Cuda *g = qwen3_cuda_create(&cpu, 0, 0);
    if (!g || (bf16 && qwen3_cuda_use_bf16_grads(g) != 0)) {
        CHECK(0, "%s", paw_last_error());
        qwen3_free(&cpu);
        return;
    }
    ReportLog *log = xcalloc(1, sizeof *log);
    log->g = g;
    Qwen3CudaInputs in = {.ids = ids, .targets = tg, .backward = 1};
    Qwen3CudaBackwardArgs args = {.on_grads_ready = on_report, .ctx = log};
    CHECK(L + 2 <= 64 && qwen3_cuda_forward(g, &in, B, T) == 0 && qwen3_cuda_backward_ex(g, &args) == 0,
          "reports: %s", paw_last_error());
    int ok_order = log->count == L + 2 && log->order[0] == QWEN3_GRADS_HEAD && log->order[L + 1] == QWEN3_GRADS_EMBED;
    for (int l = 0; ok_order && l < L; l++) ok_order = log->order[1 + l] == L - 1 - l;
    CHECK(ok_order, "%s: %d reports in the wrong order", fixture, log->count);
    size_t covered = 0;
    int final_ok = 1;
    for (int r = 0; r < log->count; r++) {
        Qwen3CudaGradSlice sl[8];
        int k = qwen3_cuda_group_grads(g, log->order[r], sl);
        for (int i = 0; i < k && i < log->nslices[r]; i++) {
            float *now = download_slice(&sl[i]);
            final_ok &= memcmp(now, log->snap[r][i], sizeof(float) * sl[i].n) == 0;
            covered += sl[i].n;
            free(now);
            free(log->snap[r][i]);
        }
    }
    CHECK(final_ok, "%s%s: a group's gradients changed after its report", fixture, bf16 ? " (bf16)" : "");
    CHECK(covered == qwen3_cuda_num_params(g), "%s: reports cover %zu of %zu gradient elements", fixture, covered,
          qwen3_cuda_num_params(g));
    free(log), free(ids), free(tg);
    qwen3_cuda_free(g);
    qwen3_free(&cpu);
}

// The PAW step's gradient reports (what the multi-GPU trainer sums during the backward): the
// backward's sequence (mapper, then the compiler's groups unless frozen, then the prefix) equals
// paw_step_cuda_report_all's (what a rank with an empty last micro-batch issues instead: a
// different sequence would leave the ranks' collectives unmatched), and the reported slices cover
// every trainable gradient element once (no slice overlaps another, the total is the groups' size).
// Also: the compiler's fp32 master weights start as the host's fp32 weights, bit for bit.
typedef struct {
    PawStepCuda *s;
    int order[128], count;
    Qwen3CudaGradSlice sl[128][8];
    int nsl[128];
} StepReportLog;

static void on_step_report(void *ctx, int report) {
    StepReportLog *r = ctx;
    if (r->count >= 128) return;
    r->order[r->count] = report;
    r->nsl[r->count] = paw_step_cuda_report_grads(r->s, report, r->sl[r->count]);
    r->count++;
}

static void test_paw_step_reports(int freeze_compiler, int bf16) {
    PawModel pm;
    PawFixtureBatch fb;
    if (load_paw_fixture(&pm, &fb, freeze_compiler) != 0) return;
    const PawStepExample *ex = fb.ex;
    PawStepCuda *s = paw_step_cuda_create(&pm, 0, 0, 1);
    StepReportLog *run = xcalloc(1, sizeof *run), *all = xcalloc(1, sizeof *all);
    if (!s || (bf16 && paw_step_cuda_use_bf16_grads(s) != 0)) {
        CHECK(0, "paw step create: %s", paw_last_error());
    } else {
        const char *tag = freeze_compiler ? " (frozen compiler)" : bf16 ? " (bf16 grads)" : "";
        run->s = all->s = s;
        if (!freeze_compiler) {  // the fp32 master weights are the host's fp32 values, not their bf16 rounding
            size_t nc = paw_step_cuda_group_size(s, PAW_GROUP_COMPILER);
            float *master = xmalloc(sizeof(float) * nc);
            CHECK(nc == pm.comp.model.num_params && paw_step_cuda_get_state(s, PAW_GROUP_COMPILER, 0, master) == 0 &&
                      memcmp(master, pm.comp.model.params_memory, sizeof(float) * nc) == 0,
                  "paw step%s: the compiler's master weights differ from the host's fp32 weights", tag);
            free(master);
        }
        paw_step_cuda_zero_grad(s);
        PawStepStats st;
        CHECK(paw_step_cuda_forward_backward_ex(s, ex, 2, 0, &st, on_step_report, run) == 0, "paw step reports: %s",
              paw_last_error());
        paw_step_cuda_report_all(s, on_step_report, all);
        int same = run->count == all->count && run->count > 0 && run->count < 128;
        for (int i = 0; same && i < run->count; i++) {
            same = run->order[i] == all->order[i] && run->nsl[i] == all->nsl[i];
            for (int k = 0; same && k < run->nsl[i]; k++)
                same = run->sl[i][k].ptr == all->sl[i][k].ptr && run->sl[i][k].n == all->sl[i][k].n &&
                       run->sl[i][k].bf16 == all->sl[i][k].bf16;
        }
        CHECK(same, "paw step%s: the backward made %d reports, report_all %d, or they differ", tag, run->count,
              all->count);
        size_t covered = 0, want = 0, nslices = 0;
        for (int g = 0; g < PAW_NUM_GROUPS; g++) want += paw_step_cuda_group_size(s, g);
        int disjoint = 1, bf16_seen = 0;
        for (int i = 0; i < run->count; i++)
            for (int k = 0; k < run->nsl[i]; k++) {
                const Qwen3CudaGradSlice *a = &run->sl[i][k];
                covered += a->n, nslices++;
                bf16_seen |= a->bf16;
                const char *a0 = a->ptr, *a1 = a0 + a->n * (a->bf16 ? 2 : 4);
                for (int j = 0; j <= i; j++)
                    for (int q = 0; q < (j == i ? k : run->nsl[j]); q++) {
                        const Qwen3CudaGradSlice *b = &run->sl[j][q];
                        const char *b0 = b->ptr, *b1 = b0 + b->n * (b->bf16 ? 2 : 4);
                        if (a0 < b1 && b0 < a1) disjoint = 0;
                    }
            }
        CHECK(disjoint, "paw step%s: two reported gradient slices overlap", tag);
        CHECK(covered == want, "paw step%s: %zu slices cover %zu of %zu gradient elements", tag, nslices, covered, want);
        CHECK(bf16_seen == (bf16 && !freeze_compiler), "paw step%s: bf16 slices %s", tag, bf16_seen ? "seen" : "missing");
    }
    free(run), free(all);
    paw_step_cuda_free(s);
    free_paw_batch(&fb);
    paw_model_free(&pm);
}

// The plain fallback GEMM (used where cuBLASLt has no algorithm) against a double-precision
// column-major reference: every transpose pair, leading dimensions larger than the rows, a batch
// with strides, beta on. fp32 inputs and output: 1e-5 (fp32 sums of k products); bf16 output:
// 1e-2 (one rounding of the result).
static void test_gemm_fallback(int m, int n, int k, int in_f32, int out_f32) {
    char name[200];
    const int batch = 2, pad = 3;
    for (int ta = 0; ta <= 1; ta++)
        for (int tb = 0; tb <= 1; tb++) {
            int lda = (ta ? k : m) + pad, ldb = (tb ? n : k) + pad, ldd = m + pad;
            long long sa = (long long)lda * (ta ? m : k) + 5, sb = (long long)ldb * (tb ? k : n) + 7,
                      sd = (long long)ldd * n + 1;
            size_t na = (size_t)sa * batch, nb = (size_t)sb * batch, nd = (size_t)sd * batch;
            float *A = rand_bf16(na, 1.0f), *B = rand_bf16(nb, 1.0f), *C = rand_bf16(nd, 1.0f);
            float *want = xmalloc(sizeof(float) * nd);
            memcpy(want, C, sizeof(float) * nd);
            const float alpha = 0.75f, beta = 0.5f;
            for (int b = 0; b < batch; b++)
                for (int j = 0; j < n; j++)
                    for (int i = 0; i < m; i++) {
                        double acc = 0;
                        for (int q = 0; q < k; q++) {
                            double a = A[b * sa + (ta ? (size_t)q + (size_t)i * lda : (size_t)i + (size_t)q * lda)];
                            double v = B[b * sb + (tb ? (size_t)j + (size_t)q * ldb : (size_t)q + (size_t)j * ldb)];
                            acc += a * v;
                        }
                        size_t o = b * sd + (size_t)i + (size_t)j * ldd;
                        want[o] = (float)(alpha * acc + beta * C[o]);
                    }
            void *dA = in_f32 ? (void *)dev_f32(A, na) : (void *)dev_bf16(A, na);
            void *dB = in_f32 ? (void *)dev_f32(B, nb) : (void *)dev_bf16(B, nb);
            void *dD = out_f32 ? (void *)dev_f32(C, nd) : (void *)dev_bf16(C, nd);
            paw_gemm_fallback(dD, out_f32, dD, dA, ta, dB, tb, in_f32, m, n, k, lda, ldb, ldd, sa, sb, sd, batch, alpha,
                              beta);
            float *got = out_f32 ? host_f32(dD, nd) : host_bf16(dD, nd);
            // Compare only the written elements (the rest keep C's values on both sides).
            snprintf(name, sizeof name, "gemm fallback %dx%dx%d op %c%c in %s out %s", m, n, k, ta ? 'T' : 'N',
                     tb ? 'T' : 'N', in_f32 ? "f32" : "bf16", out_f32 ? "f32" : "bf16");
            CHECK_CLOSE(name, got, want, nd, out_f32 ? 1e-5 : 1e-2);
            free(A), free(B), free(C), free(want), free(got);
            paw_cuda_free(dA), paw_cuda_free(dB), paw_cuda_free(dD);
        }
}

// PAW_GPU_TESTS=word runs only the calls below whose text contains it (e.g. "resume", "attention").
#define RUN(call)                                                               \
    do {                                                                        \
        const char *only_ = getenv("PAW_GPU_TESTS");                            \
        if (!only_ || strstr(#call, only_)) call;                               \
    } while (0)

int main(void) {
    if (paw_cuda_init() != 0) {
        printf("test_gpu: %s\n", paw_last_error());
        printf("0 passed, 1 failed\n");
        return 1;
    }
    printf("test_gpu on %s (%d SMs)\n", paw_cuda_device_name(), paw_cuda_sm_count());
    RUN(test_matmul(77, 96, 200));
    RUN(test_matmul(33, 75, 41));
    RUN(test_matmul(1, 64, 300));
    RUN(test_matmul(1, 1032, 1003));  // one row: the GEMV path, several unrolled steps per lane
    RUN(test_matmul(1, 75, 41));      // one row that the GEMV cannot take (C not a multiple of 8)
    RUN(test_matvec_fused(1024, 4096));
    RUN(test_matvec_fused(3072, 1001));  // more than the prefetched loads per lane, rows not a multiple of 8
    RUN(test_matvec_fused(40, 7));       // shorter than one lane's first load
    RUN(test_rmsnorm(37, 200));  // C % 8 == 0: the 8-wide kernels
    RUN(test_rmsnorm(11, 75));   // the scalar ones
    RUN(test_rmsnorm(5, 2560));
    RUN(test_qknorm_rope(19, 3, 1, 24));  // HD % 4 == 0: bf16 pairs per access
    RUN(test_qknorm_rope(7, 3, 1, 22));   // one element per access
    RUN(test_qknorm_rope(23, 4, 2, 128));
    RUN(test_attention(2, 70, 4, 2, 24, 0));
    RUN(test_attention(2, 70, 4, 2, 24, 1));
    RUN(test_attention(3, 131, 4, 1, 64, 1));
    RUN(test_attention(2, 100, 4, 2, 128, 0));
    RUN(test_attention(2, 157, 6, 2, 128, 1));
    RUN(test_attention(1, 1, 2, 1, 128, 0));
    RUN(test_attention(2, 45, 2, 1, 20, 1));    // head size not a multiple of 8: the element-wise tile loads
    RUN(test_attention(1, 333, 8, 2, 128, 1));  // many key tiles, group of 4
    RUN(test_attention_cache(1, 1, 50, 64, 4, 2, 128));
    RUN(test_attention_cache(2, 5, 93, 100, 3, 1, 24));
    // One query row: the split-KV decoding kernels (slices of 32 keys, groups of 1, 2, 4, 8).
    RUN(test_attention_cache(1, 1, 777, 800, 8, 2, 128));
    RUN(test_attention_cache(1, 1, 3001, 3100, 16, 8, 128));
    RUN(test_attention_cache(2, 1, 130, 140, 8, 1, 64));
    RUN(test_attention_cache(1, 1, 61, 64, 4, 4, 20));
    RUN(test_swiglu(33, 75));
    RUN(test_swiglu(33, 8));
    RUN(test_swiglu(7, 200));
    RUN(test_swiglu(1, 3072));
    RUN(test_embedding(41, 97, 72));
    RUN(test_crossentropy(13, 1001));  // one logit at a time
    RUN(test_crossentropy(5, 1004));   // four at a time
    RUN(test_crossentropy(3, 8196));   // four at a time, several chunks per thread
    RUN(test_lmhead_ce(50, 64, 1001, 16));
    RUN(test_lmhead_ce(7, 48, 300, 64));
    RUN(test_adamw(100003));
    RUN(test_lora(3, 7, 40, 24, 5, 24, PAW_OUT_F32));
    RUN(test_lora(3, 7, 40, 24, 5, 29, PAW_OUT_BF16));
    RUN(test_lora(4, 33, 72, 56, 8, 56, PAW_OUT_BF16));
    RUN(test_lora(1, 130, 96, 136, 16, 150, PAW_OUT_F32));
    {
        const int qkv[3] = {19, 7, 11}, one[1] = {45}, two[2] = {33, 33};
        RUN(test_lora_tokens(3, 37, 5, 3, qkv, 40));  // spare columns after the three
        RUN(test_lora_tokens(1, 64, 64, 1, one, 45));
        RUN(test_lora_tokens(5, 130, 36, 2, two, 66));  // rank past a warp's width
    }
    RUN(test_mapper_mix(3, 2, 3, 5, 40, 24, 2, 1, 8, 16, 3));
    RUN(test_mapper_mix(2, 3, 4, 8, 72, 56, 3, 1, 12, 24, 2));
    RUN(test_mapper_cuda(3, 3, 5, 6, 40, 56, 3, 1, 12, 1, 72, 7));
    RUN(test_mapper_cuda(1, 2, 3, 5, 36, 44, 2, 2, 9, 0, 40, 5));
    RUN(test_model_fixture("tiny-gqa-tied"));
    RUN(test_model_fixture("tiny-untied-bf16-sharded"));
    RUN(test_model_padding());
    RUN(test_model_decode("tiny-gqa-tied", 0, 0));
    RUN(test_model_decode("tiny-untied-bf16-sharded", 0, 0));
    RUN(test_model_decode("tiny-gqa-tied", 1, 0));
    RUN(test_model_decode("tiny-untied-bf16-sharded", 1, 0));
    RUN(test_model_decode("tiny-gqa-tied", 0, 1));
    RUN(test_model_decode("tiny-untied-bf16-sharded", 1, 1));
    RUN(test_model_decode("tiny-gqa-tied", 1, 1));  // group 2: the split-KV decode kernels with both
    RUN(test_model_lora("tiny-gqa-tied", 0));
    RUN(test_model_lora("tiny-untied-bf16-sharded", 1));
    RUN(test_model_lora("tiny-untied-bf16-sharded", 2));
    RUN(test_model_inject("tiny-gqa-tied"));
    RUN(test_model_inject("tiny-untied-bf16-sharded"));
    RUN(test_adamw_bf16_grad(70001));
    RUN(test_model_bf16_grads("tiny-gqa-tied"));
    RUN(test_model_bf16_grads("tiny-untied-bf16-sharded"));
    RUN(test_model_zero_shards("tiny-gqa-tied", 0, 3));
    RUN(test_model_zero_shards("tiny-untied-bf16-sharded", 1, 2));
    RUN(test_model_zero_shards("tiny-untied-bf16-sharded", 0, 5));
    RUN(test_model_grad_reports("tiny-gqa-tied", 0));
    RUN(test_model_grad_reports("tiny-untied-bf16-sharded", 1));
    RUN(test_paw_step(0, 0));
    RUN(test_paw_step(0, 1));
    RUN(test_paw_step(0, 2));
    RUN(test_paw_step(1, 0));
    RUN(test_paw_step_generate());
    RUN(test_paw_step_zero(2));
    RUN(test_paw_step_zero(3));
    RUN(test_attention_rows(3, 1, 70, 4, 2, 128));
    RUN(test_attention_rows(2, 3, 40, 3, 1, 24));
    RUN(test_attention_rows(5, 1, 900, 16, 8, 128));
    RUN(test_attention_rows_map(3, 37, 5, 100, 4, 2, 64));
    RUN(test_attention_rows_map(2, 1, 3, 20, 2, 1, 24));
    RUN(test_attention_rows_map(4, 70, 6, 150, 16, 8, 128));
    RUN(test_lora_gather("tiny-gqa-tied"));
    RUN(test_model_batch_decode("tiny-gqa-tied", 1, 1, 0));
    RUN(test_model_batch_decode("tiny-gqa-tied", 1, 0, 0));
    RUN(test_model_batch_decode("tiny-untied-bf16-sharded", 0, 0, 0));
    RUN(test_model_batch_decode("tiny-untied-bf16-sharded", 1, 1, 0));
    RUN(test_model_batch_decode("tiny-gqa-tied", 1, 0, 1));
    RUN(test_model_batch_decode("tiny-untied-bf16-sharded", 1, 1, 1));
    RUN(test_logits_last_lens("tiny-gqa-tied"));
    RUN(test_decode_lora("tiny-gqa-tied", 0));
    RUN(test_decode_lora("tiny-gqa-tied", 1));
    RUN(test_decode_lora("tiny-untied-bf16-sharded", 1));
    RUN(test_model_batch_refill("tiny-gqa-tied", 1, 0));
    RUN(test_model_batch_refill("tiny-untied-bf16-sharded", 0, 0));
    RUN(test_model_batch_refill("tiny-gqa-tied", 1, 1));
    RUN(test_model_batch_refill("tiny-untied-bf16-sharded", 0, 1));
    RUN(test_decoder_refill("tiny-gqa-tied", 4));
    RUN(test_decoder_refill("tiny-untied-bf16-sharded", 9));
    RUN(test_runner_batch());
    RUN(test_trained_compiler_gpu());
    RUN(test_train_resume_gpu());
    RUN(test_paw_step_reports(0, 0));
    RUN(test_paw_step_reports(0, 1));
    RUN(test_paw_step_reports(1, 0));
    // Sizes beyond one pass of the capped grids (SMs x 4 blocks of 4 rows for the RMSNorm backward,
    // SMs x 8 blocks of 4 heads for the q/k norm backward), so that warps loop over several rows and
    // each block flushes a weight-gradient sum of many rows; and the real Qwen3 vocabulary.
    RUN(test_rmsnorm(3001, 96));
    RUN(test_qknorm_rope(1100, 4, 2, 64));
    RUN(test_crossentropy(6, 151936));
    RUN(test_lmhead_ce(9, 64, 151936, 4));
    RUN(test_gemm_fallback(13, 7, 29, 0, 1));
    RUN(test_gemm_fallback(5, 17, 3, 1, 1));
    RUN(test_gemm_fallback(9, 11, 40, 0, 0));
    printf("%d passed, %d failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}
