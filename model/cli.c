// `paw logits` and `paw generate`: inspect a checkpoint from the command line, no Python needed.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/args.h"
#include "common/commands.h"
#include "common/error.h"
#include "common/fileio.h"
#include "common/progress.h"
#include "data/template.h"
#include "data/tokenizer.h"
#include "data/vocab_map.h"
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

// --prompt: the text in model ids, with the directory's tokenizer (or the default one) and its
// vocabulary map when the model's vocabulary is trimmed.
static int prompt_ids(const char *model, const char *text, int chat, PawTokenizer **tok, PawVocabMap *vm, int **ids,
                      int *n) {
    if (paw_vocab_map_load(vm, model) < 0) return -1;
    char *tk = paw_path_join(model, "tokenizer.json");
    *tok = paw_tokenizer_load(paw_file_exists(tk) ? tk : paw_tokenizer_default_path());
    free(tk);
    if (!*tok) return -1;
    char *full = chat ? paw_chat_user_turn(text, 1) : xstrdup(text);
    PawIds v = {0};
    int rc = paw_tokenizer_encode(*tok, full, strlen(full), 1, &v);
    free(full);
    if (rc == 0 && v.n == 0) rc = paw_error("the prompt is empty");
    if (rc == 0 && vm->n && paw_vocab_map_to_model(vm, v.ids, (int64_t)v.n) != 0)
        rc = paw_error_context("the prompt uses tokens outside the model's trimmed vocabulary");
    if (rc == 0) {
        *n = (int)v.n;
        *ids = xmalloc(sizeof(int) * v.n);
        for (size_t i = 0; i < v.n; i++) (*ids)[i] = v.ids[i];
    }
    paw_ids_free(&v);
    return rc;
}

int cmd_generate(int argc, char **argv) {
    const char *model = NULL, *ids_s = NULL, *prompt = NULL, *device = "cpu", *weights_s = "auto";
    int max_new = 32, stop = -2, chat = 0;
    PawOpt opts[] = {
        {"model", PAW_OPT_STR, &model, "checkpoint directory"},
        {"ids", PAW_OPT_STR, &ids_s, "comma-separated prompt token ids (model ids); prints the new ids"},
        {"prompt", PAW_OPT_STR, &prompt, "prompt text (special tokens such as <|im_end|> recognised); prints the new text"},
        {"chat", PAW_OPT_FLAG, &chat, "with --prompt: send it as a user turn of the Qwen3 chat template, thinking off"},
        {"max-new", PAW_OPT_INT, &max_new, "most new tokens"},
        {"stop", PAW_OPT_INT, &stop, "stop token id (-2: eos_token_id of config.json, else <|im_end|> with --prompt; -1: none)"},
        {"device", PAW_OPT_STR, &device, "cpu or cuda"},
        {"weights", PAW_OPT_STR, &weights_s, QWEN3_WEIGHTS_HELP},
    };
    PawCommandSpec spec = {"paw generate --model DIR (--ids 1,2,3 | --prompt TEXT [--chat]) [--max-new N] [--stop ID]",
                           "Greedy decoding with a KV cache. With --ids, prints the new token ids; with --prompt, the "
                           "new text (the stop token left out), and the speed on stderr.",
                           opts, (int)(sizeof opts / sizeof opts[0]), 0};
    char *pos[1];
    int npos, rc = paw_parse_args(&spec, argc, argv, pos, &npos);
    if (rc) return rc > 0 ? 0 : 2;
    if (!model || (ids_s != NULL) == (prompt != NULL) || (chat && !prompt)) {
        fprintf(stderr, "paw generate: --model and one of --ids or --prompt are required (--chat goes with --prompt)\n");
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
    int *ids = NULL, n = 0;
    PawTokenizer *tok = NULL;
    PawVocabMap vm = {0};
    if (ids_s && paw_parse_int_list(ids_s, &ids, &n) != 0) {
        fprintf(stderr, "paw generate: --ids: %s\n", paw_last_error());
        return 2;
    }
    if (prompt && prompt_ids(model, prompt, chat, &tok, &vm, &ids, &n) != 0) {
        fprintf(stderr, "paw generate: --prompt: %s\n", paw_last_error());
        if (tok) paw_tokenizer_free(tok);
        paw_vocab_map_free(&vm);
        return 1;
    }
    Qwen3 m;
    int status = 0, *out = NULL;
    if (qwen3_load_ex(&m, model, 1, weights) != 0) {
        fprintf(stderr, "paw generate: %s\n", paw_last_error());
        status = 1;
        goto done;
    }
    if (stop == -2) stop = m.cfg.eos_token_id;
    if (stop < 0 && tok && stop != -1) {  // a config with no eos: a chat turn ends with <|im_end|>
        int32_t id = paw_tokenizer_token_id(tok, "<|im_end|>");
        if (id >= 0 && (!vm.n || paw_vocab_map_to_model(&vm, &id, 1) == 0)) stop = id;
    }
    out = xmalloc(sizeof(int) * (size_t)(max_new + 1));
    double t0 = paw_now();
#ifdef PAW_CUDA
    int got = use_cuda ? qwen3_cuda_generate_once(&m, ids, n, max_new, stop, out)
                       : qwen3_generate(&m, NULL, ids, n, max_new, stop, out);
#else
    int got = qwen3_generate(&m, NULL, ids, n, max_new, stop, out);
#endif
    double dt = paw_now() - t0;
    if (got < 0) {
        fprintf(stderr, "paw generate: %s\n", paw_last_error());
        status = 1;
    } else if (!prompt) {
        for (int i = 0; i < got; i++) printf(i ? " %d" : "%d", out[i]);
        printf("\n");
    } else {
        int keep = got > 0 && out[got - 1] == stop ? got - 1 : got;
        int32_t *tids = xmalloc(sizeof(int32_t) * (size_t)(keep + 1));
        for (int i = 0; i < keep; i++) tids[i] = vm.n ? paw_vocab_map_to_tokenizer(&vm, out[i]) : out[i];
        size_t len;
        char *text = paw_tokenizer_decode(tok, tids, (size_t)keep, &len);
        if (!text) {
            fprintf(stderr, "paw generate: %s\n", paw_last_error());
            status = 1;
        } else {
            fwrite(text, 1, len, stdout);
            printf("\n");
            fprintf(stderr, "%d prompt tokens, %d new tokens%s in %.2f s (%.1f tokens/s with the prefill)\n", n, got,
                    keep < got ? " (the last one the stop token)" : "", dt, dt > 0 ? got / dt : 0.0);
        }
        free(text), free(tids);
    }
    qwen3_free(&m);
done:
    free(out);
    free(ids);
    if (tok) paw_tokenizer_free(tok);
    paw_vocab_map_free(&vm);
    return status;
}
