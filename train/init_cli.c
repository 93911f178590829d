// `paw init`: a new model directory with random weights, for pre-training a tiny interpreter,
// for a tiny compiler, or for benchmarks of the real shapes.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/args.h"
#include "common/commands.h"
#include "common/error.h"
#include "common/fileio.h"
#include <cjson/cJSON.h>

#include "data/loader.h"
#include "data/shard_build.h"
#include "data/template.h"
#include "data/tokenizer.h"
#include "data/vocab_map.h"
#include "model/qwen3.h"

// Every token id used by the datasets, plus the chat and stop tokens generation needs.
static int collect_ids(char **dirs, int ndirs, const PawTokenizer *tok, int32_t **out, int64_t *n) {
    int64_t cap = 1 << 16, k = 0;
    int32_t *ids = xmalloc(sizeof(int32_t) * (size_t)cap);
    const char *specials[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"};
    for (int i = 0; i < 5; i++) {
        int32_t id = paw_tokenizer_token_id(tok, specials[i]);
        if (id >= 0) ids[k++] = id;
    }
    for (int d = 0; d < ndirs; d++) {
        size_t plen = strlen(dirs[d]);
        if (plen > 6 && strcmp(dirs[d] + plen - 6, ".jsonl") == 0) {
            // FuzzyBench JSONL: every prompt a program or an evaluation may render, including the
            // no-compiler baseline that puts the raw spec where the pseudo-program goes.
            char *text = paw_read_file(dirs[d], NULL);
            if (!text) {
                free(ids);
                return paw_error_context("--vocab-from");
            }
            int line_no = 0, rc = 0;
            for (char *line = text; line && *line && rc == 0;) {
                char *nl = strchr(line, '\n');
                if (nl) *nl = 0;
                line_no++;
                cJSON *o = cJSON_Parse(line);
                const cJSON *sp = cJSON_GetObjectItem(o, "spec"), *in = cJSON_GetObjectItem(o, "input");
                const cJSON *out = cJSON_GetObjectItem(o, "output"), *pp = cJSON_GetObjectItem(o, "pseudo_program");
                if (o && cJSON_IsString(sp) && cJSON_IsString(in) && cJSON_IsString(out)) {
                    char *pseudo = cJSON_IsString(pp) ? xstrdup(pp->valuestring) : paw_default_pseudo_program(sp->valuestring);
                    char *texts[5] = {paw_compiler_prompt(sp->valuestring), xstrdup(pseudo),
                                      paw_interpreter_prompt(pseudo, in->valuestring),
                                      paw_interpreter_prompt(sp->valuestring, in->valuestring), xstrdup(out->valuestring)};
                    for (int j = 0; j < 5; j++) {
                        PawIds v = {0};
                        if (rc == 0 && paw_tokenizer_encode(tok, texts[j], strlen(texts[j]), 1, &v) != 0) rc = -1;
                        for (size_t t = 0; t < v.n; t++) {
                            if (k == cap) ids = xrealloc(ids, sizeof(int32_t) * (size_t)(cap *= 2));
                            ids[k++] = v.ids[t];
                        }
                        paw_ids_free(&v);
                        free(texts[j]);
                    }
                    free(pseudo);
                } else if (o || strspn(line, " \t\r") != strlen(line)) {
                    rc = paw_error("%s:%d: expected a JSON object with string spec, input and output", dirs[d], line_no);
                }
                cJSON_Delete(o);
                line = nl ? nl + 1 : NULL;
            }
            free(text);
            if (rc != 0) {
                free(ids);
                return -1;
            }
            continue;
        }
        PawDataset *ds = paw_dataset_open(dirs[d]);
        if (!ds) {
            free(ids);
            return paw_error_context("--vocab-from %s", dirs[d]);
        }
        uint64_t total = paw_dataset_size(ds);
        for (uint64_t i = 0; i < total; i++) {
            PawExample ex;
            if (paw_dataset_get(ds, i, &ex) != 0) {
                paw_dataset_close(ds);
                free(ids);
                return -1;
            }
            for (int s = 0; s < PAW_SEG_COUNT; s++)
                for (uint32_t t = 0; t < ex.len[s]; t++) {
                    if (k == cap) ids = xrealloc(ids, sizeof(int32_t) * (size_t)(cap *= 2));
                    ids[k++] = (int32_t)ex.seg[s][t];
                }
        }
        paw_dataset_close(ds);
    }
    *out = ids;
    *n = k;
    return 0;
}

int cmd_init(int argc, char **argv) {
    const char *shape = NULL, *out = NULL, *vocab_from = NULL, *tokenizer = NULL, *dtype = "float32";
    int seed = 1;
    float std = 0.02f;
    PawOpt opts[] = {
        {"shape", PAW_OPT_STR, &shape, "a Hugging Face style config.json (e.g. configs/tiny-interpreter.json)"},
        {"out", PAW_OPT_STR, &out, "the new model directory"},
        {"vocab-from", PAW_OPT_STR, &vocab_from, "comma-separated shard directories or JSONL files: trim the vocabulary to their ids"},
        {"tokenizer", PAW_OPT_STR, &tokenizer, "tokenizer.json copied into the directory (default $PAW_TOKENIZER)"},
        {"seed", PAW_OPT_INT, &seed, "random seed"},
        {"std", PAW_OPT_FLOAT, &std, "standard deviation of the weight matrices"},
        {"dtype", PAW_OPT_STR, &dtype, "float32 or bfloat16"},
    };
    PawCommandSpec spec = {"paw init --shape CONFIG.json --out DIR [--vocab-from SHARDS[,SHARDS...]]",
                           "Writes a randomly initialised Qwen3 checkpoint directory (config.json, model.safetensors, "
                           "tokenizer.json, and vocab_map.safetensors when the vocabulary is trimmed).",
                           opts, (int)(sizeof opts / sizeof opts[0]), 0};
    char *pos[1];
    int npos, rc = paw_parse_args(&spec, argc, argv, pos, &npos);
    if (rc) return rc > 0 ? 0 : 2;
    if (!shape || !out) {
        fprintf(stderr, "paw init: --shape and --out are required\n");
        return 2;
    }
    Qwen3Config cfg;
    if (qwen3_config_load(&cfg, shape) != 0) {
        fprintf(stderr, "paw init: %s\n", paw_last_error());
        return 2;
    }
    if (!tokenizer) tokenizer = paw_tokenizer_default_path();
    PawTokenizer *tok = paw_tokenizer_load(tokenizer);
    if (!tok) {
        fprintf(stderr, "paw init: %s\n", paw_last_error());
        return 1;
    }
    PawVocabMap vm = {0};
    int status = 0;
    if (vocab_from) {
        char *list = xstrdup(vocab_from), *dirs[64];
        int nd = 0;
        for (char *t = strtok(list, ","); t && nd < 64; t = strtok(NULL, ",")) dirs[nd++] = t;
        int32_t *ids = NULL;
        int64_t n = 0;
        if (collect_ids(dirs, nd, tok, &ids, &n) != 0 ||
            paw_vocab_map_build(&vm, ids, n, cfg.vocab_size) != 0) {
            fprintf(stderr, "paw init: %s\n", paw_last_error());
            status = 1;
        } else {
            free(ids);
            fprintf(stderr, "trimmed vocabulary: %d of %d ids\n", vm.n, cfg.vocab_size);
            cfg.vocab_size = vm.n;
        }
        free(list);
    }
    if (status == 0) {
        Qwen3 m;
        qwen3_create(&m, &cfg, 1);
        qwen3_init_random(&m, (unsigned long long)seed, std);
        char *tk = paw_path_join(out, "tokenizer.json");
        size_t tn;
        char *tdata = paw_read_file(tokenizer, &tn);
        if (qwen3_save(&m, out, dtype) != 0 || (vm.n && paw_vocab_map_save(&vm, out) != 0) || !tdata ||
            paw_write_file_atomic(tk, tdata, tn) != 0) {
            fprintf(stderr, "paw init: %s\n", paw_last_error());
            status = 1;
        } else {
            printf("%s: %.2fM parameters, %d layers, hidden %d, vocab %d\n", out, m.num_params / 1e6, cfg.num_layers,
                   cfg.hidden_size, cfg.vocab_size);
        }
        free(tdata);
        free(tk);
        qwen3_free(&m);
    }
    paw_vocab_map_free(&vm);
    paw_tokenizer_free(tok);
    return status;
}
