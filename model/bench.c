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
#include "model/qwen3.h"

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

static int bench_cpu(int argc, char **argv) {
    const char *shape = "0.6b";
    int T = 128, B = 1, layers = 0, iters = 2;
    PawOpt opts[] = {
        {"shape", PAW_OPT_STR, &shape, "model shape: 0.6b, 4b or a config.json path (random weights)"},
        {"T", PAW_OPT_INT, &T, "sequence length"},
        {"B", PAW_OPT_INT, &B, "batch size"},
        {"layers", PAW_OPT_INT, &layers, "override the layer count (0: the real one)"},
        {"iters", PAW_OPT_INT, &iters, "timed iterations of each measurement"},
    };
    PawCommandSpec spec = {"paw bench cpu [--shape 0.6b] [--T 128] [--B 1]",
                           "CPU reference speed: forward, forward+backward (trainable) and forward+backward "
                           "(frozen: activation gradients only) tokens/s on a random model of a real Qwen3 shape.",
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
    if (T <= 0 || B <= 0 || iters <= 0) {
        fprintf(stderr, "paw bench cpu: --T, --B and --iters must be positive\n");
        return 2;
    }
    Qwen3 m;
    qwen3_create(&m, &cfg, 0);
    fprintf(stderr, "initialising %s-shaped random model (%.2fB params, %d layers)...\n", shape, m.num_params / 1e9,
            cfg.num_layers);
    qwen3_init_random(&m, 1234, 0.02f);
    int N = B * T;
    int *ids = xmalloc(sizeof(int) * (size_t)N), *tg = xmalloc(sizeof(int) * (size_t)N);
    PawRng rng = {42};
    for (int i = 0; i < N; i++) ids[i] = (int)paw_rng_below(&rng, 151643);
    for (int i = 0; i < N; i++) tg[i] = (i + 1 < N) ? ids[i + 1] : 0;
    Qwen3Inputs in = {.ids = ids, .targets = tg};
    double fl = qwen3_forward_flops(&cfg, B, T, 1);

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
    printf("| pass | ms/step | tokens/s | GFLOP/s |\n|---|---|---|---|\n");
    printf("| forward | %.0f | %.1f | %.1f |\n", 1e3 * t_fwd, N / t_fwd, fl / t_fwd / 1e9);
    printf("| forward + backward (trainable) | %.0f | %.1f | %.1f |\n", 1e3 * t_fb, N / t_fb, 3 * fl / t_fb / 1e9);
    printf("| forward + backward (frozen) | %.0f | %.1f | %.1f |\n", 1e3 * t_frozen, N / t_frozen,
           2 * fl / t_frozen / 1e9);
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
