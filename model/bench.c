// `paw bench ...`: benchmarks that print their figures (never asserted in tests).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "common/args.h"
#include "common/commands.h"
#include "common/error.h"
#include "common/progress.h"
#include "common/rng.h"
#include "kernels/matmul.h"
#include "kernels/quant.h"
#include "model/qwen3.h"
#include "model/safetensors.h"

// The released Qwen3 shapes (config.json of Qwen/Qwen3-0.6B and Qwen/Qwen3-4B).
static int shape_config(const char *name, Qwen3Config *c) {
    memset(c, 0, sizeof *c);
    c->head_dim = 128;
    c->vocab_size = 151936;
    c->max_position_embeddings = 40960;
    c->rope_theta = 1e6;
    c->rms_norm_eps = 1e-6;
    c->tie_word_embeddings = 1;
    c->bos_token_id = -1;
    c->eos_token_id = 151645;
    if (strcmp(name, "0.6b") == 0) {
        c->hidden_size = 1024, c->intermediate_size = 3072, c->num_layers = 28, c->num_heads = 16, c->num_kv_heads = 8;
    } else if (strcmp(name, "4b") == 0) {
        c->hidden_size = 2560, c->intermediate_size = 9728, c->num_layers = 36, c->num_heads = 32, c->num_kv_heads = 8;
    } else if (strlen(name) > 5 && !strcmp(name + strlen(name) - 5, ".json")) {
        return qwen3_config_load(c, name);  // any shape, e.g. configs/tiny-interpreter.json
    } else {
        return paw_error("unknown shape '%s' (expected 0.6b, 4b or a config.json path)", name);
    }
    return 0;
}

// Greedy decoding of n tokens after a T-token prompt for `rows` sequences together (row_caches,
// as paw run batches inputs; each sequence's prompt is the same ids shifted by its row): the best
// per-step time over iters + 1 runs (the first warms up), row 0's tokens of the last run in out.
static double decode_seconds(Qwen3 *m, const int *ids, int T, int n, int rows, int iters, int *out,
                             const Qwen3Lora *const *loras, int shared) {
    double best = 1e30;
    Qwen3KVCache *caches = xcalloc((size_t)rows, sizeof(Qwen3KVCache));
    Qwen3KVCache **live = xmalloc(sizeof(Qwen3KVCache *) * (size_t)rows);
    int *next = xmalloc(sizeof(int) * (size_t)rows), V = m->cfg.vocab_size;
    for (int it = 0; it <= iters; it++) {
        for (int b = 0; b < rows; b++) {
            qwen3_cache_create(&caches[b], &m->cfg, 1, T + n);
            live[b] = &caches[b];
            Qwen3Inputs in = {.ids = ids + b, .cache = &caches[b], .logits_mode = QWEN3_LOGITS_LAST,
                              .lora = loras ? loras[b] : NULL};
            if (qwen3_forward(m, &in, 1, T) != 0) paw_die("%s", paw_last_error());
            next[b] = qwen3_argmax(m->acts.logits, V);
        }
        double t0 = paw_now();
        for (int i = 0; i < n; i++) {
            out[i] = next[0];
            Qwen3Inputs in = {.ids = next, .row_caches = live, .logits_mode = QWEN3_LOGITS_LAST};
            if (loras && shared) in.lora = loras[0];  // one program's rows: its adapter read once
            else in.row_loras = loras;                // rows of different programs
            if (qwen3_forward(m, &in, rows, 1) != 0) paw_die("%s", paw_last_error());
            for (int b = 0; b < rows; b++) next[b] = qwen3_argmax(m->acts.logits + (size_t)b * V, V);
        }
        double dt = (paw_now() - t0) / n;
        for (int b = 0; b < rows; b++) qwen3_cache_free(&caches[b]);
        if (it > 0 && dt < best) best = dt;
    }
    free(caches), free(live), free(next);
    return best;
}

// Memory read ceiling: GB/s of summing a 1 GiB buffer on all threads (best of 3), the floor of
// decoding, which reads every weight once a token. On huge pages, as the weights are.
static double read_gbps(void) {
    size_t n = (size_t)1 << 28;
    float *buf = xmalloc_big(sizeof(float) * n);
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) buf[i] = (float)(i & 1023);
    double best = 0, sink = 0;
    for (int it = 0; it < 3; it++) {
        double t0 = paw_now();
        float s = 0;
#pragma omp parallel for simd reduction(+ : s)
        for (size_t i = 0; i < n; i++) s += buf[i];
        double gbps = sizeof(float) * n / (paw_now() - t0) / 1e9;
        sink += s;
        if (gbps > best) best = gbps;
    }
    free(buf);
    return sink == -1 ? 0 : best;  // sink keeps the sums from being optimised away
}

// Compute ceiling: GFLOP/s of a 1024 x 1024 x 1024 fp32 product on all threads, its 12 MB of
// operands in cache (best of 5): the rate of the model's products if their operands came from
// cache and nothing else ran.
static double gemm_gflops(void) {
    const int n = 1024;
    float *a = xmalloc(sizeof(float) * n * n), *b = xmalloc(sizeof(float) * n * n), *c = xmalloc(sizeof(float) * n * n);
    PawRng rng = {7};
    for (int i = 0; i < n * n; i++) a[i] = paw_rng_normal(&rng), b[i] = paw_rng_normal(&rng);
    double best = 1e30;
    for (int it = 0; it <= 5; it++) {  // iteration 0 warms up
        double t0 = paw_now();
        matmul_forward(c, a, b, n, n, n);
        double dt = paw_now() - t0;
        if (it > 0 && dt < best) best = dt;
    }
    free(a), free(b), free(c);
    return 2.0 * n * n * n / best / 1e9;
}

static int bench_cpu(int argc, char **argv) {
    const char *shape = "0.6b";
    int T = 128, B = 1, layers = 0, iters = 2, decode = 32, rows = 4, lora_rank = 64;
    PawOpt opts[] = {
        {"shape", PAW_OPT_STR, &shape, "model shape: 0.6b, 4b or a config.json path (random weights)"},
        {"T", PAW_OPT_INT, &T, "sequence length"},
        {"B", PAW_OPT_INT, &B, "batch size"},
        {"layers", PAW_OPT_INT, &layers, "override the layer count (0: the real one)"},
        {"iters", PAW_OPT_INT, &iters, "timed iterations of each measurement"},
        {"decode", PAW_OPT_INT, &decode, "tokens of greedy decoding after a T-token prompt, with f32 and bf16 weights (0: skip)"},
        {"rows", PAW_OPT_INT, &rows, "decoding also runs this many sequences together, as paw run batches inputs"},
        {"lora-rank", PAW_OPT_INT, &lora_rank, "then with programs' adapters of this rank: one program's rows, and rows "
                                               "of as many programs (0: skip)"},
    };
    PawCommandSpec spec = {"paw bench cpu [--shape 0.6b] [--T 128] [--B 1] [--decode 32]",
                           "CPU reference speed: forward, forward+backward (trainable) and forward+backward "
                           "(frozen: activation gradients only) tokens/s on a random model of a real Qwen3 shape; then "
                           "batch-1 greedy decoding with the weight matrices in f32 and in bf16 (the same bf16-rounded "
                           "values in both, as loaded from a bf16 checkpoint), with adapters, and in q8 (int8 weights and inputs, lossy).",
                           opts, (int)(sizeof opts / sizeof opts[0]), 0};
    char *pos[1];
    int npos, rc = paw_parse_args(&spec, argc, argv, pos, &npos);
    if (rc) return rc > 0 ? 0 : 2;
    Qwen3Config cfg;
    if (shape_config(shape, &cfg) != 0) {
        fprintf(stderr, "paw bench cpu: %s\n", paw_last_error());
        return 2;
    }
    if (layers > 0) cfg.num_layers = layers;
    if (T <= 0 || B <= 0 || iters <= 0 || decode < 0 || rows < 1 || rows > 64 || lora_rank < 0 ||
        T + decode > cfg.max_position_embeddings) {
        fprintf(stderr, "paw bench cpu: --T, --B and --iters must be positive, --decode >= 0, --rows in [1, 64], and T + "
                        "decode at most max_position_embeddings\n");
        return 2;
    }
    Qwen3 m;
    qwen3_create(&m, &cfg, 0);
    fprintf(stderr, "initialising %s-shaped random model (%.2fB params, %d layers)...\n", shape, m.num_params / 1e9,
            cfg.num_layers);
    qwen3_init_random(&m, 1234, 0.02f);
    int N = B * T;
    int *ids = xmalloc(sizeof(int) * (size_t)(N + rows)), *tg = xmalloc(sizeof(int) * (size_t)N);
    PawRng rng = {42};
    for (int i = 0; i < N + rows; i++) ids[i] = (int)paw_rng_below(&rng, cfg.vocab_size < 151643 ? cfg.vocab_size : 151643);
    for (int i = 0; i < N; i++) tg[i] = (i + 1 < N) ? ids[i + 1] : 0;
    Qwen3Inputs in = {.ids = ids, .targets = tg};
    double fl = qwen3_forward_flops(&cfg, B, T, (double)B * T);

    double t_fwd = 1e30, t_fb = 1e30, t_frozen = 1e30;
    for (int pass = 0; pass < 3; pass++) {
        if (pass == 2) qwen3_set_frozen(&m, 1);
        for (int it = 0; it <= iters; it++) {  // iteration 0 warms up
            double t0 = paw_now();
            if (qwen3_forward(&m, &in, B, T) != 0) paw_die("%s", paw_last_error());
            if (pass > 0 && qwen3_backward(&m, 0) != 0) paw_die("%s", paw_last_error());
            double dt = paw_now() - t0;
            if (it == 0) continue;
            double *best = pass == 0 ? &t_fwd : pass == 1 ? &t_fb : &t_frozen;
            if (dt < *best) *best = dt;
            fprintf(stderr, "  %s iter %d: %.3f s (loss %.4f)\n",
                    pass == 0 ? "forward" : pass == 1 ? "fwd+bwd" : "frozen fwd+bwd", it, dt, m.loss);
        }
    }
    printf("paw bench cpu: Qwen3-%s shape, %d layers, B=%d T=%d, fp32, %d threads\n", shape, cfg.num_layers, B, T,
#ifdef _OPENMP
           omp_get_max_threads()
#else
           1
#endif
    );
    double peak = gemm_gflops();
    printf("GEMM ceiling (1024^3 fp32 product, operands in cache): %.1f GFLOP/s\n", peak);
    printf("| pass | ms/step | tokens/s | GFLOP/s | of ceiling |\n|---|---|---|---|---|\n");
    printf("| forward | %.0f | %.1f | %.1f | %.0f%% |\n", 1e3 * t_fwd, N / t_fwd, fl / t_fwd / 1e9,
           100 * fl / t_fwd / 1e9 / peak);
    printf("| forward + backward (trainable) | %.0f | %.1f | %.1f | %.0f%% |\n", 1e3 * t_fb, N / t_fb,
           3 * fl / t_fb / 1e9, 100 * 3 * fl / t_fb / 1e9 / peak);
    printf("| forward + backward (frozen) | %.0f | %.1f | %.1f | %.0f%% |\n", 1e3 * t_frozen, N / t_frozen,
           2 * fl / t_frozen / 1e9, 100 * 2 * fl / t_frozen / 1e9 / peak);
    if (decode > 0) {
        // The f32 model rounded to bf16 values, against a bf16-weight model drawn from the same seed:
        // the same model, so the tokens should agree (a near tie may flip, the sums' order differing).
        for (int i = 0; i < QWEN3_NUM_PARAMS; i++) {
            Qwen3ParamInfo info = qwen3_param_info(&cfg, i);
            float *t = *qwen3_param_slot(&m.params, i);
            if (info.ndim == 2)
                for (size_t k = 0; k < info.numel; k++) t[k] = st_bf16_to_f32(st_f32_to_bf16(t[k]));
        }
        size_t mat = 0;  // weight-matrix elements each decoded token reads (the tied table once, as the LM head)
        for (int i = 1; i < QWEN3_NUM_PARAMS; i++) {
            Qwen3ParamInfo info = qwen3_param_info(&cfg, i);
            if (info.ndim == 2) mat += info.numel;
        }
        if (cfg.tie_word_embeddings) mat += (size_t)cfg.vocab_size * cfg.hidden_size;
        int *tok32 = xmalloc(sizeof(int) * (size_t)decode), *tok16 = xmalloc(sizeof(int) * (size_t)decode);
        int *tokr = xmalloc(sizeof(int) * (size_t)decode);
        double d[2][2];  // [f32, bf16][one sequence, rows together]: seconds a step
        int same = 0, same_rows = 0;
        double t_fwd16 = 1e30;
        for (int w = 0; w < 2; w++) {
            if (w == 1) {
                qwen3_free(&m);
                qwen3_create_bf16(&m, &cfg, 1);
                qwen3_init_random(&m, 1234, 0.02f);
                // The prefill (and paw compile's compiler forward): the f32 forward's GEMMs with the
                // B panels widened while packing.
                for (int it = 0; it <= iters; it++) {
                    double t0 = paw_now();
                    if (qwen3_forward(&m, &in, B, T) != 0) paw_die("%s", paw_last_error());
                    double dt = paw_now() - t0;
                    if (it > 0 && dt < t_fwd16) t_fwd16 = dt;
                }
            }
            int *tok = w ? tok16 : tok32;
            fprintf(stderr, "  decoding %d tokens, %s weights, 1 and %d rows...\n", decode, w ? "bf16" : "f32", rows);
            d[w][0] = decode_seconds(&m, ids, T, decode, 1, iters, tok, NULL, 0);
            d[w][1] = decode_seconds(&m, ids, T, decode, rows, iters, tokr, NULL, 0);
            int k = 0;
            while (k < decode && tok[k] == tokr[k]) k++;
            if (w == 1) same_rows = k;
        }
        while (same < decode && tok32[same] == tok16[same]) same++;
        double bw = read_gbps();
        printf("\ngreedy decoding after a %d-token prompt, %d new tokens (weights read per step: %.2f GB f32, "
               "%.2f GB bf16)\n", T, decode, mat * 4e-9, mat * 2e-9);
        printf("memory read ceiling (summing 1 GiB): %.1f GB/s\n", bw);
        printf("| weights | rows | ms/step | tokens/s | weight GB/s | floor ms/step | floor / time |\n"
               "|---|---|---|---|---|---|---|\n");
        for (int w = 0; w < 2; w++)
            for (int k = 0; k < 2; k++) {
                double bytes = mat * (w ? 2e-9 : 4e-9);
                printf("| %s | %d | %.1f | %.1f | %.1f | %.1f | %.0f%% |\n", w ? "bf16" : "f32", k ? rows : 1,
                       1e3 * d[w][k], (k ? rows : 1) / d[w][k], bytes / d[w][k], 1e3 * bytes / bw, 100 * bytes / bw / d[w][k]);
            }
        printf("bf16 / f32 speed, one sequence: %.2fx; %d rows / one sequence, tokens/s: %.2fx f32, %.2fx bf16\n",
               d[0][0] / d[1][0], rows, rows * d[0][0] / d[0][1], rows * d[1][0] / d[1][1]);
        printf("tokens equal: f32 vs bf16 the first %d of %d; bf16 row 0 of %d vs alone the first %d of %d\n", same, decode,
               rows, same_rows, decode);
        printf("forward of B=%d x T=%d (a prefill, or paw compile's compiler forward): %.0f ms f32, %.0f ms bf16 "
               "weights (%.2fx), weights %.2f GB and %.2f GB\n", B, T, 1e3 * t_fwd, 1e3 * t_fwd16, t_fwd / t_fwd16,
               4e-9 * (double)(m.num_params + m.num_w16), 2e-9 * (double)m.num_w16 + 4e-9 * (double)m.num_params);
        if (lora_rank > 0) {
            // Programs' adapters (random, rank lora_rank, fp32 as a .paw holds them) on the bf16 model:
            // one row with its adapter, rows of one program, rows of as many programs.
            Qwen3Lora *lo = xcalloc((size_t)rows, sizeof(Qwen3Lora));
            const Qwen3Lora **lp = xmalloc(sizeof(Qwen3Lora *) * (size_t)rows);
            size_t lbytes = 0;
            for (int b = 0; b < rows; b++) {
                PawRng lr = {500 + (unsigned long long)b};
                lo[b].rank = lora_rank, lo[b].nb = 1, lo[b].scale = 16.0f / lora_rank, lp[b] = &lo[b];
                for (int mod = 0; mod < LORA_NUM_MODULES; mod++) {
                    int din, dout;
                    lora_module_dims(&cfg, mod, &din, &dout);
                    size_t na = (size_t)cfg.num_layers * lora_rank * din, nb = (size_t)cfg.num_layers * dout * lora_rank;
                    lo[b].A[mod] = xmalloc(sizeof(float) * na), lo[b].B[mod] = xmalloc(sizeof(float) * nb);
                    for (size_t i = 0; i < na; i++) lo[b].A[mod][i] = 0.02f * paw_rng_normal(&lr);
                    for (size_t i = 0; i < nb; i++) lo[b].B[mod][i] = 0.02f * paw_rng_normal(&lr);
                    if (b == 0) lbytes += sizeof(float) * (na + nb);
                }
            }
            fprintf(stderr, "  decoding %d tokens, bf16 weights, rank-%d adapters...\n", decode, lora_rank);
            double a1 = decode_seconds(&m, ids, T, decode, 1, iters, tokr, lp, 1);
            double ashared = decode_seconds(&m, ids, T, decode, rows, iters, tokr, lp, 1);
            double amixed = decode_seconds(&m, ids, T, decode, rows, iters, tokr, lp, 0);
            printf("\nwith rank-%d adapters (%.1f MB each, fp32), bf16 weights:\n", lora_rank, lbytes / 1e6);
            printf("| rows | ms/step | tokens/s | vs one row |\n|---|---|---|---|\n");
            printf("| 1 | %.1f | %.1f | 1.00x |\n", 1e3 * a1, 1 / a1);
            printf("| %d of one program | %.1f | %.1f | %.2fx |\n", rows, 1e3 * ashared, rows / ashared, rows * a1 / ashared);
            printf("| %d of %d programs | %.1f | %.1f | %.2fx |\n", rows, rows, 1e3 * amixed, rows / amixed, rows * a1 / amixed);
            // Program 0's adapter through Q4_0, as paw compile writes it, held as Q8 blocks, as
            // paw run holds it on the CPU: against the same Q4_0 values in fp32.
            if (lora_rank % 32 == 0 && cfg.hidden_size % 32 == 0 && cfg.intermediate_size % 32 == 0) {
                Qwen3Lora lq = lo[0], lf = lo[0];
                const Qwen3Lora *lqp = &lq, *lfp = &lf;
                size_t qbytes = 0;
                for (int mod = 0; mod < LORA_NUM_MODULES; mod++) {
                    int din, dout;
                    lora_module_dims(&cfg, mod, &din, &dout);
                    size_t n[2] = {(size_t)cfg.num_layers * lora_rank * din, (size_t)cfg.num_layers * dout * lora_rank};
                    for (int ab = 0; ab < 2; ab++) {
                        float *src = ab ? lo[0].B[mod] : lo[0].A[mod], *deq = xmalloc(sizeof(float) * n[ab]);
                        uint8_t *blk = xmalloc(n[ab] / 32 * Q4_0_BLOCK_BYTES);
                        int8_t *q = xmalloc(n[ab]);
                        float *d = xmalloc(sizeof(float) * (n[ab] / 32));
                        quantize_q4_0(src, blk, (int64_t)n[ab]);
                        dequantize_q4_0(blk, deq, (int64_t)n[ab]);
                        q4_0_to_q8(blk, q, d, (int64_t)n[ab]);
                        free(blk);
                        if (ab) lf.B[mod] = deq, lq.qB[mod] = q, lq.qBd[mod] = d, lq.B[mod] = NULL;
                        else lf.A[mod] = deq, lq.qA[mod] = q, lq.qAd[mod] = d, lq.A[mod] = NULL;
                        qbytes += n[ab] + sizeof(float) * (n[ab] / 32);
                    }
                }
                int *tq = xmalloc(sizeof(int) * (size_t)decode), *tf = xmalloc(sizeof(int) * (size_t)decode);
                fprintf(stderr, "  decoding %d tokens, bf16 weights, a Q4_0 adapter as fp32 and as Q8...\n", decode);
                double f1 = decode_seconds(&m, ids, T, decode, 1, iters, tf, &lfp, 1);
                double q1 = decode_seconds(&m, ids, T, decode, 1, iters, tq, &lqp, 1);
                const Qwen3Lora *lqr[64], *lfr[64];
                for (int b = 0; b < rows; b++) lqr[b] = &lq, lfr[b] = &lf;
                double fr = decode_seconds(&m, ids, T, decode, rows, iters, tokr, lfr, 1);
                double qr = decode_seconds(&m, ids, T, decode, rows, iters, tokr, lqr, 1);
                int sameq = 0;
                while (sameq < decode && tq[sameq] == tf[sameq]) sameq++;
                printf("the first program's adapter through Q4_0 (paw compile's default), held in fp32 (%.1f MB) and as "
                       "Q8 blocks (%.1f MB; paw run on the CPU):\n", lbytes / 1e6, qbytes / 1e6);
                printf("| 1, fp32 | %.1f | %.1f | |\n| 1, Q8 | %.1f | %.1f | %.2fx fp32 |\n", 1e3 * f1, 1 / f1, 1e3 * q1,
                       1 / q1, f1 / q1);
                printf("| %d of one program, fp32 | %.1f | %.1f | |\n| %d of one program, Q8 | %.1f | %.1f | %.2fx fp32 |\n",
                       rows, 1e3 * fr, rows / fr, rows, 1e3 * qr, rows / qr, fr / qr);
                printf("tokens equal: Q8 vs fp32 adapter the first %d of %d (expected: all)\n", sameq, decode);
                for (int mod = 0; mod < LORA_NUM_MODULES; mod++) {
                    free(lf.A[mod]), free(lf.B[mod]);
                    free((void *)lq.qA[mod]), free((void *)lq.qB[mod]), free((void *)lq.qAd[mod]), free((void *)lq.qBd[mod]);
                }
                free(tq), free(tf);
            }
            for (int b = 0; b < rows; b++)
                for (int mod = 0; mod < LORA_NUM_MODULES; mod++) free(lo[b].A[mod]), free(lo[b].B[mod]);
            free(lo), free(lp);
        }
        // q8 weights (lossy: the same draws, quantized), one sequence and rows together.
        qwen3_free(&m);
        if (qwen3_create_q8(&m, &cfg) == 0) {
            qwen3_init_random(&m, 1234, 0.02f);
            fprintf(stderr, "  decoding %d tokens, q8 weights, 1 and %d rows...\n", decode, rows);
            int *tokq = xmalloc(sizeof(int) * (size_t)decode);
            double q1 = decode_seconds(&m, ids, T, decode, 1, iters, tokq, NULL, 0);
            double qr = decode_seconds(&m, ids, T, decode, rows, iters, tokr, NULL, 0);
            int sameq = 0;
            while (sameq < decode && tokq[sameq] == tok16[sameq]) sameq++;
            double qbytes = mat * 1.125e-9;  // an int8 and a 32nd of an fp32 scale per weight
            printf("\nq8 weights (int8, a scale per 32, inputs rounded likewise; %.2f GB read per step):\n", qbytes);
            printf("| rows | ms/step | tokens/s | weight GB/s | floor ms/step | floor / time | vs bf16 |\n"
                   "|---|---|---|---|---|---|---|\n");
            printf("| 1 | %.1f | %.1f | %.1f | %.1f | %.0f%% | %.2fx |\n", 1e3 * q1, 1 / q1, qbytes / q1, 1e3 * qbytes / bw,
                   100 * qbytes / bw / q1, d[1][0] / q1);
            printf("| %d | %.1f | %.1f | %.1f | %.1f | %.0f%% | %.2fx |\n", rows, 1e3 * qr, rows / qr, qbytes / qr,
                   1e3 * qbytes / bw, 100 * qbytes / bw / qr, d[1][1] / qr);
            printf("tokens equal: q8 vs bf16 the first %d of %d (quantization moves the logits)\n", sameq, decode);
            free(tokq);
        } else {
            printf("\nq8 weights: skipped (%s)\n", paw_last_error());
        }
        free(tokr);
        free(tok32);
        free(tok16);
    }
    free(ids);
    free(tg);
    qwen3_free(&m);
    return 0;
}

#ifdef PAW_CUDA
// paw bench gpu lives in model/bench_gpu.c and reuses the shapes above.
int bench_gpu(int argc, char **argv);
int bench_paw(int argc, char **argv);  // train/bench_paw.c
int paw_bench_shape_config(const char *name, Qwen3Config *c) { return shape_config(name, c); }
#endif

int bench_comm(int argc, char **argv);  // train/bench_comm.c

static const PawSubcommand benches[] = {
    {"cpu", bench_cpu, "CPU reference model: forward and backward tokens/s"},
    {"tokenizer", bench_tokenizer_main, "tokenizer encode MB/s on one core"},
    {"data", bench_data_main, "token shards: build and read examples/s"},
    {"comm", bench_comm, "collectives under mpirun (MPI, or NCCL with --device cuda): checked results, GB/s"},
#ifdef PAW_CUDA
    {"gpu", bench_gpu, "CUDA model: ms/step, tokens/s, peak memory, MFU (needs a GPU)"},
    {"paw", bench_paw, "full-size PAW training step on the GPU: ms/step, examples/s, MFU (needs a GPU)"},
#endif
};

int cmd_bench(int argc, char **argv) {
    return paw_dispatch("usage: paw bench WHAT [options]   (paw bench WHAT --help)", "benchmarks", benches,
                        (int)(sizeof benches / sizeof benches[0]), argc, argv);
}
