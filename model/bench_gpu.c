// `paw bench gpu`: the CUDA model on a random Qwen3-shaped network. Reports the median step time,
// tokens/s, peak memory and MFU against the H100's dense bf16 peak (989 TFLOP/s). Model FLOPs
// count the work the math needs (forward 1x, frozen backward +1x for activation gradients, full
// backward +2x), not what recomputation adds.
#ifdef PAW_CUDA
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/args.h"
#include "common/error.h"
#include "common/rng.h"
#include "kernels/cuda_common_cuda.h"
#include "interpreter/decoder_cuda.h"
#include "model/qwen3_cuda.h"

int bench_gpu(int argc, char **argv);
int paw_bench_shape_config(const char *name, Qwen3Config *c);

#define PEAK_TFLOPS 989.0

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static float median(float *v, int n) {
    qsort(v, (size_t)n, sizeof(float), cmp_float);
    return n % 2 ? v[n / 2] : 0.5f * (v[n / 2 - 1] + v[n / 2]);
}

// --mode batch: greedy decoding of B prompts (lengths T/2..T) with per-row adapters of `programs`
// random programs, as the GPU batch runner does (gather + prefill + steps, no stop token), against
// the same rows decoded one at a time through the same batched API with B = 1. Then the batch
// runner's scheduling on 4B jobs whose outputs end after 1..new tokens (uniform; imposed, since
// random weights never stop): continuous batching against fixed batches of B rows, and continuous
// batching with each program's prompts sharing their first T/2 tokens (as a program's template
// text before the input), computed once per program and copied into the rows.
static int bench_batch(Qwen3Cuda *g, const Qwen3Config *cfg, int B, int T, int new_tokens, int rank, int programs,
                       int iters, const char *shape) {
    const int L = cfg->num_layers;
    PawRng rng = {7};
    int *ids = xmalloc(sizeof(int) * (size_t)B * T), *lens = xmalloc(sizeof(int) * (size_t)B);
    const int vocab = cfg->vocab_size < 151643 ? cfg->vocab_size : 151643;
    for (int b = 0; b < B; b++) {
        lens[b] = T / 2 + (int)paw_rng_below(&rng, (uint64_t)(T - T / 2)) + 1;
        for (int t = 0; t < T; t++)  // the first T/2 tokens: program b % programs's (row b % programs's)
            ids[(size_t)b * T + t] = t < T / 2 && b >= programs ? ids[(size_t)(b % programs) * T + t]
                                                                 : (int)paw_rng_below(&rng, (uint64_t)vocab);
    }
    // Programs: random bf16 adapters (small values: the decode cost does not depend on them).
    Qwen3CudaLora *prog = xcalloc((size_t)programs, sizeof(Qwen3CudaLora));
    paw_bf16 *bA[LORA_NUM_MODULES], *bB[LORA_NUM_MODULES];
    for (int m = 0; m < LORA_NUM_MODULES; m++) {
        int din, dout;
        lora_module_dims(cfg, m, &din, &dout);
        size_t na = (size_t)L * rank * din, nbb = (size_t)L * dout * rank, big = na > nbb ? na : nbb;
        float *h = xmalloc(sizeof(float) * big);
        for (int p = 0; p < programs; p++) {
            prog[p].rank = rank, prog[p].nb = 1, prog[p].scale = 1.0f;
            for (size_t i = 0; i < big; i++) h[i] = 0.01f * paw_rng_normal(&rng);
            paw_bf16 *a = paw_cuda_malloc(sizeof(paw_bf16) * na), *bm = paw_cuda_malloc(sizeof(paw_bf16) * nbb);
            paw_cuda_upload_bf16(a, h, na);
            paw_cuda_upload_bf16(bm, h, nbb);
            prog[p].A[m] = a, prog[p].B[m] = bm;
        }
        free(h);
        bA[m] = paw_cuda_malloc(sizeof(paw_bf16) * na * B);
        bB[m] = paw_cuda_malloc(sizeof(paw_bf16) * nbb * B);
    }
    const Qwen3CudaLora **src = xmalloc(sizeof(Qwen3CudaLora *) * (size_t)B);
    int *out = xmalloc(sizeof(int) * (size_t)B * new_tokens), *counts = xmalloc(sizeof(int) * (size_t)B);
    PawCudaTimer *timer = paw_cuda_timer_create();
    double ms_batch = 0, ms_single = 0;
    long tok_batch = 0, tok_single = 0;
    Qwen3CudaLora bl = {.rank = rank, .nb = B, .scale = 1.0f};
    for (int m = 0; m < LORA_NUM_MODULES; m++) bl.A[m] = bA[m], bl.B[m] = bB[m];
    for (int it = -1; it < iters; it++) {  // one untimed round first (plans, graph capture)
        // Batched: all B rows at once.
        paw_cuda_timer_start(timer);
        for (int b = 0; b < B; b++) src[b] = &prog[b % programs];
        if (qwen3_cuda_lora_gather(g, bA, bB, rank, src, B) != 0 || qwen3_cuda_batch_set_lora(g, &bl) != 0 ||
            qwen3_cuda_batch_generate(g, ids, lens, B, T, new_tokens, -1, out, counts) != 0)
            paw_die("%s", paw_last_error());
        float ms = paw_cuda_timer_stop_ms(timer);
        if (it >= 0) {
            ms_batch += ms;
            for (int b = 0; b < B; b++) tok_batch += counts[b];
        }
        // One row at a time (B = 1), every row.
        paw_cuda_timer_start(timer);
        for (int b = 0; b < B; b++) {
            Qwen3CudaLora one = bl;
            one.nb = 1;
            src[0] = &prog[b % programs];
            if (qwen3_cuda_lora_gather(g, bA, bB, rank, src, 1) != 0 || qwen3_cuda_batch_set_lora(g, &one) != 0 ||
                qwen3_cuda_batch_generate(g, ids + (size_t)b * T, &lens[b], 1, lens[b], new_tokens, -1, out, counts) != 0)
                paw_die("%s", paw_last_error());
            if (it >= 0) tok_single += counts[0];
        }
        ms = paw_cuda_timer_stop_ms(timer);
        if (it >= 0) ms_single += ms;
    }
    double sb = ms_batch / 1e3, ss = ms_single / 1e3;
    printf("paw bench gpu: Qwen3-%s shape, %d layers, mode batch, B=%d rows, prompts %d..%d tokens, %d new tokens "
           "per row, rank-%d adapters of %d programs, %s\n", shape, L, B, T / 2 + 1, T, new_tokens, rank, programs,
           paw_cuda_device_name());
    printf("| decoding | rows/s | generated tokens/s | ms per batch of %d rows |\n|---|---|---|---|\n", B);
    printf("| batched (B=%d) | %.2f | %.1f | %.1f |\n", B, (double)B * iters / sb, tok_batch / sb, ms_batch / iters);
    printf("| one row at a time | %.2f | %.1f | %.1f |\n", (double)B * iters / ss, tok_single / ss, ms_single / iters);
    printf("speed-up of batching: %.2fx; peak alloc %.2f GiB\n", ss / sb, paw_cuda_peak_allocated_bytes() / 1073741824.0);

    // Outputs of varied length: refill vs fixed batches, the same jobs.
    const int NJ = 4 * B;
    int **pid = xmalloc(sizeof(int *) * (size_t)NJ), *plen = xmalloc(sizeof(int) * (size_t)NJ);
    int *order = xmalloc(sizeof(int) * (size_t)NJ), *starts = xmalloc(sizeof(int) * (size_t)(NJ + 1));
    PawDecodeJob *jobs = xmalloc(sizeof(PawDecodeJob) * (size_t)NJ);
    int *jout = xmalloc(sizeof(int) * (size_t)NJ * new_tokens), *jcounts = xmalloc(sizeof(int) * (size_t)NJ);
    for (int j = 0; j < NJ; j++) {
        pid[j] = ids + (size_t)(j % B) * T;
        plen[j] = lens[j % B];
        jobs[j] = (PawDecodeJob){pid[j], plen[j], &prog[(j % B) % programs],
                                 1 + (int)paw_rng_below(&rng, (uint64_t)new_tokens), NULL, 0};
    }
    paw_run_plan(plen, NJ, NJ, order, starts);
    PawGpuDecoder *dec = paw_gpu_decoder_create(g, cfg, B);
    if (!dec) paw_die("%s", paw_last_error());
    // Shared prefixes: each program's first T/2 tokens, made once (timed apart: a runner keeps them).
    Qwen3CudaPrefix *pre = xcalloc((size_t)programs, sizeof(Qwen3CudaPrefix));
    PawDecodeJob *pjobs = xmalloc(sizeof(PawDecodeJob) * (size_t)NJ);
    paw_cuda_timer_start(timer);
    for (int p = 0; p < programs && p < B && T / 2 > 0; p++)
        if (qwen3_cuda_prefix_create(g, ids + (size_t)p * T, T / 2, &prog[p], &pre[p]) != 0) paw_die("%s", paw_last_error());
    const float ms_prefixes = paw_cuda_timer_stop_ms(timer);
    int *prest = xmalloc(sizeof(int) * (size_t)NJ), *porder = xmalloc(sizeof(int) * (size_t)NJ);
    for (int j = 0; j < NJ; j++) {
        pjobs[j] = jobs[j];
        pjobs[j].prefix = T / 2 > 0 ? &pre[(j % B) % programs] : NULL, pjobs[j].keep = T / 2;
        prest[j] = plen[j] - T / 2;
    }
    paw_run_plan(prest, NJ, NJ, porder, starts);
    enum { FIXED, REFILL, SHARED, NMODES };
    double ms_mode[NMODES] = {0};
    PawDecodeStats dst[NMODES];
    long toks[NMODES] = {0};
    for (int it = -1; it < iters; it++)
        for (int mode = 0; mode < NMODES; mode++) {
            paw_gpu_decoder_set_refill(dec, mode != FIXED);
            paw_cuda_timer_start(timer);
            // Stop token -1: only the imposed ends (and --new) end a job.
            if (paw_gpu_decoder_run(dec, mode == SHARED ? pjobs : jobs, mode == SHARED ? porder : order, NJ, rank,
                                    new_tokens, -1, jout, jcounts, &dst[mode]) != 0)
                paw_die("%s", paw_last_error());
            float ms = paw_cuda_timer_stop_ms(timer);
            if (it < 0) continue;
            ms_mode[mode] += ms;
            for (int j = 0; j < NJ; j++) toks[mode] += jcounts[j];
        }
    printf("\n%d jobs (each prompt 4 times), outputs of 1..%d tokens, in %d rows:\n", NJ, new_tokens, B);
    printf("| scheduling | jobs/s | generated tokens/s | prefills | prompt tokens prefilled | steps | rows running |\n"
           "|---|---|---|---|---|---|---|\n");
    static const char *const names[NMODES] = {"fixed batches", "continuous (refill)",
                                              "continuous, shared prefixes of T/2 tokens"};
    for (int mode = 0; mode < NMODES; mode++) {
        double sec = ms_mode[mode] / 1e3;
        const PawDecodeStats *q = &dst[mode];
        printf("| %s | %.2f | %.1f | %ld | %ld | %ld | %.0f%% |\n", names[mode], (double)NJ * iters / sec,
               toks[mode] / sec, q->fills, q->prefill_tokens, q->steps,
               q->row_steps ? 100.0 * (q->row_steps - q->idle_rows) / q->row_steps : 0.0);
    }
    printf("speed-up of refilling: %.2fx; of shared prefixes on top: %.2fx (the %d prefixes took %.1f ms once)\n",
           ms_mode[FIXED] / ms_mode[REFILL], ms_mode[REFILL] / ms_mode[SHARED], programs < B ? programs : B, ms_prefixes);
    paw_gpu_decoder_free(dec);
    for (int p = 0; p < programs; p++) qwen3_cuda_prefix_free(&pre[p]);
    free(pre), free(pjobs), free(prest), free(porder);
    free(pid), free(plen), free(order), free(starts), free(jobs), free(jout), free(jcounts);
    paw_cuda_timer_free(timer);
    for (int p = 0; p < programs; p++)
        for (int m = 0; m < LORA_NUM_MODULES; m++) paw_cuda_free((void *)prog[p].A[m]), paw_cuda_free((void *)prog[p].B[m]);
    for (int m = 0; m < LORA_NUM_MODULES; m++) paw_cuda_free(bA[m]), paw_cuda_free(bB[m]);
    free(prog), free(src), free(out), free(counts), free(ids), free(lens);
    return 0;
}

int bench_gpu(int argc, char **argv) {
    const char *shape = "0.6b", *mode = "frozen";
    int B = 8, T = 1024, layers = 0, iters = 10, warmup = 2, recompute = 0, new_tokens = 128, rank = 64, programs = 4;
    int fp32_grads = 0, fused = 0, keep = 0, pdl = 0;
    PawOpt opts[] = {
        {"shape", PAW_OPT_STR, &shape, "model shape: 0.6b, 4b or a config.json path (random weights)"},
        {"B", PAW_OPT_INT, &B, "batch size (decode: 1)"},
        {"T", PAW_OPT_INT, &T, "sequence length (decode: prompt length)"},
        {"mode", PAW_OPT_STR, &mode, "frozen (fwd + activation gradients), full (fwd + bwd, then AdamW timed apart), "
                                     "decode, or batch (B rows with per-row adapters, batched vs one at a time)"},
        {"layers", PAW_OPT_INT, &layers, "override the layer count (0: the real one)"},
        {"iters", PAW_OPT_INT, &iters, "timed iterations (median reported)"},
        {"warmup", PAW_OPT_INT, &warmup, "untimed iterations first"},
        {"recompute", PAW_OPT_FLAG, &recompute, "recompute layer activations in the backward"},
        {"keep", PAW_OPT_INT, &keep, "with --recompute: the first N layers keep their activations"},
        {"new", PAW_OPT_INT, &new_tokens, "decode, batch: tokens generated per iteration (per row)"},
        {"rank", PAW_OPT_INT, &rank, "batch: adapter rank"},
        {"programs", PAW_OPT_INT, &programs, "batch: distinct programs (adapters) the rows cycle through"},
        {"fused", PAW_OPT_FLAG, &fused, "decode, batch: one-row steps with the norms and SwiGLU inside the products "
                                        "(kernels/matvec_cuda.h), adapters' side paths two launches per input"},
        {"pdl", PAW_OPT_FLAG, &pdl, "decode: the step's kernels launched programmatically (Hopper: each one's launch "
                                    "overlaps the previous one's end)"},
        {"fp32-grads", PAW_OPT_FLAG, &fp32_grads, "full: fp32 weight gradients for the layer matrices (default bf16, "
                                                  "as paw train)"},
    };
    PawCommandSpec spec = {"paw bench gpu [--shape 0.6b|4b] [--B 8] [--T 1024] [--mode frozen|full|decode|batch]",
                           "CUDA model speed on a random model of a real Qwen3 shape: median ms/step, tokens/s, "
                           "peak memory and MFU vs 989 TFLOP/s (dense bf16 H100 SXM).",
                           opts, (int)(sizeof opts / sizeof opts[0]), 0};
    char *pos[1];
    int npos, rc = paw_parse_args(&spec, argc, argv, pos, &npos);
    if (rc) return rc > 0 ? 0 : 2;
    Qwen3Config cfg;
    if (paw_bench_shape_config(shape, &cfg) != 0) {
        fprintf(stderr, "paw bench gpu: %s\n", paw_last_error());
        return 2;
    }
    int is_full = !strcmp(mode, "full"), is_decode = !strcmp(mode, "decode"), is_batch = !strcmp(mode, "batch");
    if (!is_full && !is_decode && !is_batch && strcmp(mode, "frozen") != 0) {
        fprintf(stderr, "paw bench gpu: --mode '%s': expected frozen, full, decode or batch\n", mode);
        return 2;
    }
    if (layers > 0) cfg.num_layers = layers;
    if (T <= 0 || B <= 0 || iters <= 0 || warmup < 0 || new_tokens <= 0) {
        fprintf(stderr, "paw bench gpu: --T, --B, --iters and --new must be positive\n");
        return 2;
    }
    if (is_batch && (rank <= 0 || programs <= 0 || T + new_tokens > cfg.max_position_embeddings)) {
        fprintf(stderr, "paw bench gpu: --rank and --programs must be positive and T + --new fit the context\n");
        return 2;
    }
    if (keep < 0 || (keep && !recompute)) {
        fprintf(stderr, "paw bench gpu: --keep is a layer count (>= 0) for --recompute\n");
        return 2;
    }
    if (is_decode) B = 1;
    Qwen3Cuda *g = qwen3_cuda_create_random(&cfg, !is_full, recompute || is_batch, 1234, 0.02f);
    if (!g) {
        fprintf(stderr, "paw bench gpu: %s\n", paw_last_error());
        return 1;
    }
    if (fused) qwen3_cuda_set_fused_decode(g, 1);
    const int pdl_on = pdl && qwen3_cuda_set_decode_pdl(g, 1);
    if (pdl && !pdl_on)
        fprintf(stderr, "paw bench gpu: --pdl: this GPU has no programmatic dependent launch (needs 9.0+); ignored\n");
    if (keep && qwen3_cuda_set_recompute_keep(g, keep) != 0) {
        fprintf(stderr, "paw bench gpu: %s\n", paw_last_error());
        qwen3_cuda_free(g);
        return 1;
    }
    if (is_full && !fp32_grads && qwen3_cuda_use_bf16_grads(g) != 0) {
        fprintf(stderr, "paw bench gpu: %s\n", paw_last_error());
        qwen3_cuda_free(g);
        return 1;
    }
    if (is_batch) {
        int brc = bench_batch(g, &cfg, B, T, new_tokens, rank, programs, iters, shape);
        qwen3_cuda_free(g);
        return brc;
    }
    int N = B * T;
    int *ids = xmalloc(sizeof(int) * (size_t)N), *tg = xmalloc(sizeof(int) * (size_t)N);
    PawRng rng = {42};
    for (int i = 0; i < N; i++) ids[i] = (int)paw_rng_below(&rng, (uint64_t)(cfg.vocab_size < 151643 ? cfg.vocab_size : 151643));
    for (int i = 0; i < N; i++) tg[i] = (i + 1 < N) ? ids[i + 1] : 0;
    float *times = xmalloc(sizeof(float) * (size_t)iters), *opt_times = xmalloc(sizeof(float) * (size_t)iters);
    PawCudaTimer *timer = paw_cuda_timer_create();
    Qwen3CudaAdamW opt = {1e-5f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f};
    double flops = 0;
    int tokens = 0;
    float loss = 0;
    for (int it = -warmup; it < iters; it++) {
        paw_cuda_timer_start(timer);
        if (is_decode) {
            if (qwen3_cuda_cache_reset(g, T + new_tokens) != 0 || qwen3_cuda_cache_forward(g, ids, T, NULL) != 0)
                paw_die("%s", paw_last_error());
            paw_cuda_sync();
            paw_cuda_timer_start(timer);  // the prompt is not part of the per-token figure
            int tok = ids[0];
            for (int k = 0; k < new_tokens; k++)
                if (qwen3_cuda_cache_forward(g, &tok, 1, NULL) != 0) paw_die("%s", paw_last_error());
        } else {
            Qwen3CudaInputs in = {.ids = ids, .targets = tg, .backward = 1};
            if (qwen3_cuda_forward(g, &in, B, T) != 0 || qwen3_cuda_backward(g) != 0) paw_die("%s", paw_last_error());
            loss = qwen3_cuda_loss(g);
        }
        float ms = paw_cuda_timer_stop_ms(timer);
        if (it >= 0) times[it] = ms;
        if (is_full) {  // the optimizer step, timed on its own (the baselines time fwd + bwd)
            paw_cuda_timer_start(timer);
            if (qwen3_cuda_adamw_step(g, &opt, NULL) != 0) paw_die("%s", paw_last_error());
            qwen3_cuda_zero_grad(g);
            float oms = paw_cuda_timer_stop_ms(timer);
            if (it >= 0) opt_times[it] = oms;
        }
    }
    float ms = median(times, iters);
    if (is_decode) {
        // Per new token: 2 FLOPs per weight read (LM head included) plus attention over the cache.
        flops = qwen3_forward_flops(&cfg, 1, 1, 1) * new_tokens;
        tokens = new_tokens;
    } else {
        flops = qwen3_forward_flops(&cfg, B, T, (double)B * T) * (is_full ? 3.0 : 2.0);
        tokens = N;
    }
    double s = ms / 1e3;
    char rdesc[64] = "";
    if (recompute && keep) snprintf(rdesc, sizeof rdesc, " (recompute all but the first %d layers)", keep);
    else if (recompute) snprintf(rdesc, sizeof rdesc, " (recompute)");
    printf("paw bench gpu: Qwen3-%s shape, %d layers, mode %s%s, B=%d T=%d, %s\n", shape, cfg.num_layers, mode, rdesc, B,
           T, paw_cuda_device_name());
    printf("| mode | ms/step | tokens/s | TFLOP/s | MFU | peak alloc GiB | device used GiB | loss |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    printf("| %s%s | %.3f | %.1f | %.1f | %.1f%% | %.2f | %.2f | %.4f |\n", mode,
           is_decode ? " (per step of --new)" : is_full ? " (fwd + bwd)" : "",
           ms, tokens / s, flops / s / 1e12, 100.0 * flops / s / 1e12 / PEAK_TFLOPS,
           paw_cuda_peak_allocated_bytes() / 1073741824.0, paw_cuda_used_device_bytes() / 1073741824.0, loss);
    if (is_full)
        printf("full: AdamW step %.3f ms (%s weight gradients); fwd + bwd + AdamW %.3f ms, %.1f tokens/s\n",
               median(opt_times, iters), fp32_grads ? "fp32" : "bf16", ms + median(opt_times, iters),
               tokens / ((ms + median(opt_times, iters)) / 1e3));
    if (is_decode)
        printf("decode: %.3f ms/token over %d tokens after a %d-token prompt%s%s\n", ms / new_tokens, new_tokens, T,
               fused ? " (fused one-row products)" : "", pdl_on ? " (programmatic launch)" : "");
    paw_cuda_timer_free(timer);
    free(times);
    free(opt_times);
    free(ids);
    free(tg);
    qwen3_cuda_free(g);
    return 0;
}
#else
typedef int paw_bench_gpu_needs_cuda;  // keeps the translation unit non-empty in CPU builds
#endif
