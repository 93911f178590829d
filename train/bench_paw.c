// `paw bench paw`: the PAW training step on the GPU at full size, with random weights of the real
// shapes (a Qwen3-4B-shaped compiler fully trained, the mapper, a frozen Qwen3-0.6B-shaped
// interpreter with per-example LoRA). One step = forward + backward + AdamW over every trainable
// tensor (fp32 master weights and moments). The batch matches ../shared/bench/paw_torch_step.py:
// B examples, a compiler sequence of Tc tokens whose last P are the prefix, an interpreter
// sequence of Ti tokens whose second half is the target.
#ifdef PAW_CUDA
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/args.h"
#include "common/error.h"
#include "common/rng.h"
#include "kernels/cuda_common_cuda.h"
#include "train/train_gpu.h"

int bench_paw(int argc, char **argv);
int paw_bench_shape_config(const char *name, Qwen3Config *c);

#define PEAK_TFLOPS 989.0

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

// --nccl: each gradient group's sum starts on NCCL as the backward reports it, as paw train does
// under mpirun ("gpu_comm": "nccl", overlap_comm).
typedef struct {
    PawStepCuda *s;
    PawComm *nccl;
    int rc;
} NcclSums;

static void nccl_on_grads_ready(void *ctx, int report) {
    NcclSums *h = ctx;
    Qwen3CudaGradSlice sl[8];
    int n = paw_step_cuda_report_grads(h->s, report, sl);
    if (h->rc == 0) h->rc = train_gpu_isum_slices(h->nccl, sl, n);
}

int bench_paw(int argc, char **argv) {
    const char *cshape = "4b", *ishape = "0.6b";
    int B = 8, Tc = 384, Ti = 384, P = 64, rank = 64, bases = 64, iters = 5, warmup = 2, recompute = 0, frozen = 0;
    int no_opt = 0, no_recompute = 0, use_nccl = 0, keep = 0, keep_interp = 0;
    const char *grads = "bf16";
    PawOpt opts[] = {
        {"compiler", PAW_OPT_STR, &cshape, "compiler shape: 4b or 0.6b (random weights)"},
        {"interpreter", PAW_OPT_STR, &ishape, "interpreter shape: 0.6b or 4b"},
        {"B", PAW_OPT_INT, &B, "examples per step"},
        {"Tc", PAW_OPT_INT, &Tc, "compiler tokens per example, prefix included"},
        {"Ti", PAW_OPT_INT, &Ti, "interpreter tokens per example (prompt + target, target = second half)"},
        {"P", PAW_OPT_INT, &P, "prefix length"},
        {"rank", PAW_OPT_INT, &rank, "LoRA rank (alpha = rank / 4)"},
        {"bases", PAW_OPT_INT, &bases, "mapper bases per module"},
        {"iters", PAW_OPT_INT, &iters, "timed steps (median reported)"},
        {"warmup", PAW_OPT_INT, &warmup, "untimed steps first"},
        {"recompute", PAW_OPT_FLAG, &recompute, "recompute layer activations in the backward (the default)"},
        {"no-recompute", PAW_OPT_FLAG, &no_recompute, "keep every layer's activations (the full-size step then "
                                                      "needs more than 80 GB)"},
        {"keep", PAW_OPT_INT, &keep, "with recompute: the first N compiler layers keep their activations"},
        {"keep-interp", PAW_OPT_INT, &keep_interp, "with recompute: the first N interpreter layers keep theirs"},
        {"freeze-compiler", PAW_OPT_FLAG, &frozen, "train the mapper and prefix only"},
        {"no-opt", PAW_OPT_FLAG, &no_opt, "leave AdamW out of the step"},
        {"grads", PAW_OPT_STR, &grads, "compiler weight gradients: bf16 (fits a 4B compiler in 80 GB) or fp32"},
        {"nccl", PAW_OPT_FLAG, &use_nccl, "under mpirun (make NCCL=1 build): every other step sums its gradients "
                                          "through NCCL during the backward; prints both medians and the overhead"},
    };
    PawCommandSpec spec = {"paw bench paw [--compiler 4b] [--interpreter 0.6b] [--B 8] [--Tc 384] [--Ti 384]",
                           "The full-size PAW training step on the GPU: median ms/step, examples/s, tokens/s, model "
                           "TFLOP/s, MFU vs 989 TFLOP/s (dense bf16 H100 SXM) and peak memory.",
                           opts, (int)(sizeof opts / sizeof opts[0]), 0};
    char *pos[1];
    int npos, rc = paw_parse_args(&spec, argc, argv, pos, &npos);
    if (rc) return rc > 0 ? 0 : 2;
    if (recompute && no_recompute) {
        fprintf(stderr, "paw bench paw: --recompute and --no-recompute exclude each other\n");
        return 2;
    }
    recompute = !no_recompute;
    if (keep < 0 || keep_interp < 0 || (!recompute && (keep || keep_interp))) {
        fprintf(stderr, "paw bench paw: --keep and --keep-interp are layer counts (>= 0) for the recompute mode\n");
        return 2;
    }
    Qwen3Config cc, ic;
    if (paw_bench_shape_config(cshape, &cc) != 0 || paw_bench_shape_config(ishape, &ic) != 0) {
        fprintf(stderr, "paw bench paw: %s\n", paw_last_error());
        return 2;
    }
    if (B <= 0 || P <= 0 || Tc <= P || Ti < 2 || rank <= 0 || bases <= 0 || iters <= 0 || warmup < 0) {
        fprintf(stderr, "paw bench paw: need positive --B --rank --bases --iters, --Tc > --P > 0 and --Ti >= 2\n");
        return 2;
    }
    if (strcmp(grads, "bf16") != 0 && strcmp(grads, "fp32") != 0) {
        fprintf(stderr, "paw bench paw: --grads '%s': expected bf16 or fp32\n", grads);
        return 2;
    }
    if (paw_cuda_init() != 0) {
        fprintf(stderr, "paw bench paw: %s\n", paw_last_error());
        return 1;
    }
    PawComm *host = NULL, *nccl = NULL;
    if (use_nccl) {
#ifdef PAW_NCCL
        host = paw_comm_open(NULL, NULL, 120);
        nccl = host ? paw_comm_nccl_open(host) : NULL;
        if (!nccl) {
            fprintf(stderr, "paw bench paw: --nccl: %s\n", paw_last_error());
            if (host) paw_comm_close(host);
            return 1;
        }
#else
        fprintf(stderr, "paw bench paw: --nccl needs a build with NCCL (make NCCL=1) started by mpirun\n");
        return 2;
#endif
    }
    MapperConfig mc = {.d = cc.hidden_size, .L = ic.num_layers, .nbases = bases, .rank = rank,
                       .alpha = rank / 4.0f, .icfg = ic};
    Mapper mapper;
    mapper_create(&mapper, &mc);
    mapper_init(&mapper, 7);
    // B bases start at zero in training; nonzero here so that the LoRA work is not trivially zero
    // in value (the timing does not depend on it).
    PawRng rng = {11};
    for (int m = 0; m < LORA_NUM_MODULES; m++) {
        int din, dout;
        lora_module_dims(&ic, m, &din, &dout);
        size_t n = (size_t)bases * dout * rank;
        for (size_t i = 0; i < n; i++) mapper.params.bbase[m][i] = 1e-3f * paw_rng_normal(&rng);
    }
    size_t np = (size_t)P * cc.hidden_size;
    float *prefix = xmalloc(sizeof(float) * np);
    for (size_t i = 0; i < np; i++) prefix[i] = 0.02f * paw_rng_normal(&rng);
    PawStepCuda *s = paw_step_cuda_create_random(&cc, &ic, prefix, P, &mapper, frozen, recompute, 1234, 0.02f);
    free(prefix);
    if (s && ((!strcmp(grads, "bf16") && paw_step_cuda_use_bf16_grads(s) != 0) ||
              (recompute && paw_step_cuda_set_recompute_keep(s, keep, keep_interp) != 0))) {
        paw_step_cuda_free(s);
        s = NULL;
    }
    if (!s) {
        fprintf(stderr, "paw bench paw: %s\n", paw_last_error());
        mapper_free(&mapper);
        return 1;
    }
    int comp_len = Tc - P, interp_len = Ti - Ti / 2, target_len = Ti / 2;
    int *toks = xmalloc(sizeof(int) * (size_t)B * (comp_len + Ti));
    for (size_t i = 0; i < (size_t)B * (comp_len + Ti); i++) toks[i] = (int)paw_rng_below(&rng, 151643);
    PawStepExample *ex = xmalloc(sizeof(PawStepExample) * (size_t)B);
    for (int b = 0; b < B; b++) {
        int *t = toks + (size_t)b * (comp_len + Ti);
        ex[b] = (PawStepExample){t, comp_len, t + comp_len, interp_len, t + comp_len + interp_len, target_len};
    }
    PawStepCudaAdamW opt = {1e-5f, {1.0f, 1.0f, 1.0f}, 0.9f, 0.95f, 1e-8f, 0.0f, 1.0f};
    // With --nccl the steps alternate between plain and NCCL-summed: iters of each.
    float *times = xmalloc(sizeof(float) * (size_t)iters), *ntimes = xmalloc(sizeof(float) * (size_t)iters), loss = 0;
    PawCudaTimer *timer = paw_cuda_timer_create();
    NcclSums sums = {s, nccl, 0};
    const int rounds = nccl ? 2 : 1;
    for (int it = -warmup; it < iters; it++)
        for (int r = 0; r < rounds; r++) {
            if (it == 0 && r == 0) paw_cuda_reset_peak();
            paw_cuda_timer_start(timer);
            PawStepStats st;
            paw_step_cuda_zero_grad(s);
            if (paw_step_cuda_forward_backward_ex(s, ex, B, 0, &st, r ? nccl_on_grads_ready : NULL, &sums) != 0)
                paw_die("%s", paw_last_error());
            if (r && (paw_comm_wait_all(nccl) != 0 || sums.rc != 0)) paw_die("NCCL sums: %s", paw_last_error());
            if (!no_opt && paw_step_cuda_adamw(s, &opt, (it + warmup) * rounds + r + 1, NULL) != 0)
                paw_die("%s", paw_last_error());
            float ms = paw_cuda_timer_stop_ms(timer);
            loss = st.loss;
            if (it >= 0) (r ? ntimes : times)[it] = ms;
        }
    qsort(times, (size_t)iters, sizeof(float), cmp_float);
    qsort(ntimes, (size_t)iters, sizeof(float), cmp_float);
    float ms = times[iters / 2], nms = ntimes[iters / 2];
    double flops = paw_step_flops(&cc, &ic, &mc, P, B, comp_len, Ti, (double)B * target_len, frozen), sec = ms / 1e3;
    char rdesc[96] = "";
    if (recompute && (keep || keep_interp))
        snprintf(rdesc, sizeof rdesc, ", recompute except the first %d compiler / %d interpreter layers", keep,
                 keep_interp);
    else if (recompute)
        snprintf(rdesc, sizeof rdesc, ", recompute");
    printf("paw bench paw: compiler %s (%s), mapper %zu params (N=%d, r=%d), interpreter %s frozen, B=%d Tc=%d "
           "(P=%d) Ti=%d%s, %s compiler gradients, %s\n",
           cshape, frozen ? "frozen" : "trained", mapper.num_params, bases, rank, ishape, B, Tc, P, Ti, rdesc, grads,
           paw_cuda_device_name());
    printf("| step | ms/step | examples/s | tokens/s | TFLOP/s | MFU | peak alloc GiB | device used GiB | loss |\n");
    printf("|---|---|---|---|---|---|---|---|---|\n");
    printf("| %s | %.1f | %.2f | %.0f | %.1f | %.1f%% | %.2f | %.2f | %.4f |\n",
           no_opt ? "fwd + bwd" : "fwd + bwd + AdamW", ms, B / sec, B * (double)(Tc + Ti) / sec, flops / sec / 1e12,
           100.0 * flops / sec / 1e12 / PEAK_TFLOPS, paw_cuda_peak_allocated_bytes() / 1073741824.0,
           paw_cuda_used_device_bytes() / 1073741824.0, loss);
    if (nccl)
        printf("| %s, gradient sums through NCCL (%d rank%s) | %.1f | %.2f | | | | | | |\n"
               "NCCL overhead: %+.2f%% of the step (medians of %d steps each, interleaved)\n",
               no_opt ? "fwd + bwd" : "fwd + bwd + AdamW", nccl->world, nccl->world > 1 ? "s" : "", nms, B / (nms / 1e3),
               100.0 * (nms / ms - 1.0), iters);
    paw_cuda_timer_free(timer);
    free(times), free(ntimes), free(toks), free(ex);
    if (nccl) paw_comm_close(nccl);
    if (host) paw_comm_close(host);
    paw_step_cuda_free(s);
    mapper_free(&mapper);
    return 0;
}
#else
typedef int paw_bench_paw_needs_cuda;  // keeps the translation unit non-empty in CPU builds
#endif
