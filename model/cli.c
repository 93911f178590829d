// `paw logits` and `paw generate`: inspect a checkpoint from the command line, no Python needed.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/args.h"
#include "common/commands.h"
#include "common/error.h"
#include "common/fileio.h"
#include "model/qwen3.h"
#ifdef PAW_CUDA
#include "model/qwen3_cuda.h"
#endif

// 0: cpu, 1: cuda. Only the CPU path exists in a build without CUDA; say so instead of silently
// ignoring --device.
static int check_device(const char *device) {
    if (strcmp(device, "cpu") == 0) return 0;
    if (strcmp(device, "cuda") == 0) {
#ifdef PAW_CUDA
        return 1;
#else
        fprintf(stderr, "paw: --device cuda: this binary was built without CUDA (rebuild where nvcc is present)\n");
        return -1;
#endif
    }
    fprintf(stderr, "paw: --device '%s': expected cpu or cuda\n", device);
    return -1;
}

int cmd_logits(int argc, char **argv) {
    const char *model = NULL, *ids_s = NULL, *out = NULL, *device = "cpu", *weights_s = "auto";
    PawOpt opts[] = {
        {"model", PAW_OPT_STR, &model, "checkpoint directory (config.json + safetensors)"},
        {"ids", PAW_OPT_STR, &ids_s, "comma-separated token ids"},
        {"out", PAW_OPT_STR, &out, "write all positions' logits here as raw little-endian float32, T x V"},
        {"device", PAW_OPT_STR, &device, "cpu or cuda"},
        {"weights", PAW_OPT_STR, &weights_s, QWEN3_WEIGHTS_HELP},
    };
    PawCommandSpec spec = {"paw logits --model DIR --ids 1,2,3 [--out FILE]",
                           "Runs the model forward on the ids and prints the top-5 token ids and logits of the last "
                           "position.",
                           opts, (int)(sizeof opts / sizeof opts[0]), 0};
    char *pos[1];
    int npos, rc = paw_parse_args(&spec, argc, argv, pos, &npos);
    if (rc) return rc > 0 ? 0 : 2;
    if (!model || !ids_s) {
        fprintf(stderr, "paw logits: --model and --ids are required\n");
        paw_print_usage(&spec, 1);
        return 2;
    }
    int use_cuda = check_device(device);
    if (use_cuda < 0) return 2;
    int weights = qwen3_weights_for_device(weights_s, use_cuda);
    if (weights < 0) {
        fprintf(stderr, "paw logits: --%s\n", paw_last_error());
        return 2;
    }
    int *ids, n;
    if (paw_parse_int_list(ids_s, &ids, &n) != 0) {
        fprintf(stderr, "paw logits: --ids: %s\n", paw_last_error());
        return 2;
    }
    Qwen3 m;
    if (qwen3_load_ex(&m, model, 1, weights) != 0) {
        fprintf(stderr, "paw logits: %s\n", paw_last_error());
        free(ids);
        return 1;
    }
    int status = 0;
    Qwen3Inputs in = {.ids = ids, .logits_mode = out ? QWEN3_LOGITS_ALL : QWEN3_LOGITS_LAST};
    int fwd = 0;
#ifdef PAW_CUDA
    float *gpu_logits = NULL;  // stands in for m.acts.logits when the forward ran on the GPU
    if (use_cuda && n <= m.cfg.max_position_embeddings) {
        fwd = qwen3_cuda_logits_once(&m, ids, n, out != NULL, &gpu_logits);
        m.acts.logits = gpu_logits;
    } else
#endif
    if (n <= m.cfg.max_position_embeddings) fwd = qwen3_forward(&m, &in, 1, n);
    if (n > m.cfg.max_position_embeddings) {
        fprintf(stderr, "paw logits: %d ids exceed max_position_embeddings %d\n", n, m.cfg.max_position_embeddings);
        status = 1;
    } else if (fwd != 0) {
        fprintf(stderr, "paw logits: %s\n", paw_last_error());
        status = 1;
    } else {
        int V = m.cfg.vocab_size;
        const float *last = m.acts.logits + (out ? (size_t)(n - 1) * V : 0);
        int top[5] = {-1, -1, -1, -1, -1};
        for (int i = 0; i < V; i++) {
            for (int k = 0; k < 5; k++) {
                if (top[k] < 0 || last[i] > last[top[k]]) {
                    memmove(top + k + 1, top + k, sizeof(int) * (size_t)(4 - k));
                    top[k] = i;
                    break;
                }
            }
        }
        printf("position %d top-5:\n", n - 1);
        for (int k = 0; k < 5 && top[k] >= 0; k++) printf("  %7d  %.6f\n", top[k], last[top[k]]);
        if (out && paw_write_file_atomic(out, m.acts.logits, sizeof(float) * (size_t)n * V) != 0) {
            fprintf(stderr, "paw logits: %s\n", paw_last_error());
            status = 1;
        }
    }
#ifdef PAW_CUDA
    free(gpu_logits);
#endif
    qwen3_free(&m);
    free(ids);
    return status;
}

int cmd_generate(int argc, char **argv) {
    const char *model = NULL, *ids_s = NULL, *device = "cpu", *weights_s = "auto";
    int max_new = 32, stop = -2;
    PawOpt opts[] = {
        {"model", PAW_OPT_STR, &model, "checkpoint directory"},
        {"ids", PAW_OPT_STR, &ids_s, "comma-separated prompt token ids"},
        {"max-new", PAW_OPT_INT, &max_new, "most new tokens"},
        {"stop", PAW_OPT_INT, &stop, "stop token id (-2: eos_token_id of config.json; -1: none)"},
        {"device", PAW_OPT_STR, &device, "cpu or cuda"},
        {"weights", PAW_OPT_STR, &weights_s, QWEN3_WEIGHTS_HELP},
    };
    PawCommandSpec spec = {"paw generate --model DIR --ids 1,2,3 [--max-new N] [--stop ID]",
                           "Greedy decoding with a KV cache; prints the new token ids.", opts,
                           (int)(sizeof opts / sizeof opts[0]), 0};
    char *pos[1];
    int npos, rc = paw_parse_args(&spec, argc, argv, pos, &npos);
    if (rc) return rc > 0 ? 0 : 2;
    if (!model || !ids_s) {
        fprintf(stderr, "paw generate: --model and --ids are required\n");
        paw_print_usage(&spec, 1);
        return 2;
    }
    int use_cuda = check_device(device);
    if (use_cuda < 0) return 2;
    int weights = qwen3_weights_for_device(weights_s, use_cuda);
    if (weights < 0) {
        fprintf(stderr, "paw generate: --%s\n", paw_last_error());
        return 2;
    }
    if (max_new < 0) {
        fprintf(stderr, "paw generate: --max-new must be >= 0\n");
        return 2;
    }
    int *ids, n;
    if (paw_parse_int_list(ids_s, &ids, &n) != 0) {
        fprintf(stderr, "paw generate: --ids: %s\n", paw_last_error());
        return 2;
    }
    Qwen3 m;
    if (qwen3_load_ex(&m, model, 1, weights) != 0) {
        fprintf(stderr, "paw generate: %s\n", paw_last_error());
        free(ids);
        return 1;
    }
    if (stop == -2) stop = m.cfg.eos_token_id;
    int *out = xmalloc(sizeof(int) * (size_t)(max_new + 1));
#ifdef PAW_CUDA
    int got = use_cuda ? qwen3_cuda_generate_once(&m, ids, n, max_new, stop, out)
                       : qwen3_generate(&m, NULL, ids, n, max_new, stop, out);
#else
    int got = qwen3_generate(&m, NULL, ids, n, max_new, stop, out);
#endif
    int status = 0;
    if (got < 0) {
        fprintf(stderr, "paw generate: %s\n", paw_last_error());
        status = 1;
    } else {
        for (int i = 0; i < got; i++) printf(i ? " %d" : "%d", out[i]);
        printf("\n");
    }
    free(out);
    free(ids);
    qwen3_free(&m);
    return status;
}
