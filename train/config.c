#include "train/config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>

#include "common/error.h"
#include "common/fileio.h"

void train_config_defaults(TrainConfig *c) {
    memset(c, 0, sizeof *c);
    c->mode = TRAIN_MODE_PAW;
    c->lora_rank = 64, c->lora_alpha = 16, c->mapper_bases = 64, c->prefix_steps = 64;
    c->steps = 1000, c->grad_accum = 1, c->max_batch_examples = 8, c->batch_tokens = 8 * 768;
    c->lr = 1e-4f, c->mapper_lr_scale = 1.0f, c->min_lr_ratio = 0.1f, c->weight_decay = 0.0f;
    c->beta1 = 0.9f, c->beta2 = 0.999f, c->eps = 1e-8f, c->grad_clip = 1.0f;
    c->warmup_steps = 0, c->schedule = SCHED_COSINE, c->step_every = 1000, c->step_factor = 0.1f;
    c->eval_every = 0, c->eval_examples = 64, c->max_new_tokens = 32;
    c->log_every = 1, c->save_every = 0, c->keep_last = 3;
    c->seed = 1;
    c->sort_window = 0;
    c->zero = 0, c->comm_timeout_s = 60, c->overlap_comm = 1;
    c->recompute = 0, c->bf16_grads = 1;
}

void train_config_free(TrainConfig *c) {
    free(c->compiler), free(c->interpreter), free(c->train_data), free(c->val_data), free(c->out_dir);
    free(c->mapper_init), free(c->device), free(c->gpu_comm), free(c->export_dtype);
    memset(c, 0, sizeof *c);
}

typedef enum { K_INT, K_FLOAT, K_BOOL, K_STR, K_PATH_DIR, K_PATH_FILE } KeyType;
typedef struct {
    const char *key;
    KeyType type;
    size_t offset;
    double lo, hi;  // range for numbers
} KeySpec;

#define OFF(f) offsetof(TrainConfig, f)
static const KeySpec keys[] = {
    {"mode", K_STR, 0, 0, 0},  // handled specially
    {"compiler", K_PATH_DIR, OFF(compiler), 0, 0},
    {"interpreter", K_PATH_DIR, OFF(interpreter), 0, 0},
    {"train_data", K_PATH_DIR, OFF(train_data), 0, 0},
    {"val_data", K_PATH_DIR, OFF(val_data), 0, 0},
    {"out_dir", K_STR, OFF(out_dir), 0, 0},
    {"lora_rank", K_INT, OFF(lora_rank), 1, 4096},
    {"lora_alpha", K_FLOAT, OFF(lora_alpha), 1e-6, 1e6},
    {"mapper_bases", K_INT, OFF(mapper_bases), 1, 4096},
    {"prefix_steps", K_INT, OFF(prefix_steps), 1, 4096},
    {"freeze_compiler", K_BOOL, OFF(freeze_compiler), 0, 0},
    {"mapper_init", K_PATH_FILE, OFF(mapper_init), 0, 0},
    {"loss_on_prompt", K_BOOL, OFF(loss_on_prompt), 0, 0},
    {"steps", K_INT, OFF(steps), 1, 1e9},
    {"grad_accum", K_INT, OFF(grad_accum), 1, 1e6},
    {"max_batch_examples", K_INT, OFF(max_batch_examples), 1, 1e6},
    {"batch_tokens", K_INT, OFF(batch_tokens), 1, 1e9},
    {"lr", K_FLOAT, OFF(lr), 0, 10},
    {"mapper_lr_scale", K_FLOAT, OFF(mapper_lr_scale), 0, 1e6},
    {"min_lr_ratio", K_FLOAT, OFF(min_lr_ratio), 0, 1},
    {"weight_decay", K_FLOAT, OFF(weight_decay), 0, 10},
    {"beta1", K_FLOAT, OFF(beta1), 0, 0.999999},
    {"beta2", K_FLOAT, OFF(beta2), 0, 0.9999999},  // 1 - beta2^t must not round to 0 in float
    {"eps", K_FLOAT, OFF(eps), 1e-30, 1},          // 0 would make a zero gradient's update 0/0
    {"grad_clip", K_FLOAT, OFF(grad_clip), 0, 1e9},
    {"warmup_steps", K_INT, OFF(warmup_steps), 0, 1e9},
    {"schedule", K_STR, 0, 0, 0},  // handled specially
    {"step_every", K_INT, OFF(step_every), 1, 1e9},
    {"step_factor", K_FLOAT, OFF(step_factor), 0, 1},
    {"eval_every", K_INT, OFF(eval_every), 0, 1e9},
    {"eval_examples", K_INT, OFF(eval_examples), 0, 1e9},
    {"max_new_tokens", K_INT, OFF(max_new_tokens), 1, 1e6},
    {"log_every", K_INT, OFF(log_every), 1, 1e9},
    {"save_every", K_INT, OFF(save_every), 0, 1e9},
    {"keep_last", K_INT, OFF(keep_last), 1, 1e6},
    {"seed", K_INT, OFF(seed), 0, 2147483647.0},
    {"device", K_STR, OFF(device), 0, 0},
    {"peak_tflops", K_FLOAT, OFF(peak_tflops), 0, 1e9},
    {"sort_window", K_INT, OFF(sort_window), 0, 1e9},
    {"zero", K_INT, OFF(zero), 0, 1},
    {"comm_timeout_s", K_FLOAT, OFF(comm_timeout_s), 0.1, 1e6},
    {"overlap_comm", K_BOOL, OFF(overlap_comm), 0, 0},
    {"recompute", K_BOOL, OFF(recompute), 0, 0},
    {"recompute_keep", K_INT, OFF(recompute_keep), 0, 1e6},
    {"recompute_keep_interpreter", K_INT, OFF(recompute_keep_interpreter), 0, 1e6},
    {"bf16_grads", K_BOOL, OFF(bf16_grads), 0, 0},
    {"gpu_comm", K_STR, OFF(gpu_comm), 0, 0},
    {"export_dtype", K_STR, OFF(export_dtype), 0, 0},
};
#define NKEYS ((int)(sizeof keys / sizeof keys[0]))

int train_config_parse(TrainConfig *c, const char *json, const char *path) {
    train_config_defaults(c);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(json, &end, 0);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return paw_error("%s: not a JSON object (malformed JSON)", path);
    }
    if (end && end[strspn(end, " \t\r\n")]) {
        cJSON_Delete(root);
        return paw_error("%s: text after the JSON object", path);
    }
    int rc = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, root) {
        for (const cJSON *prev = root->child; prev != it; prev = prev->next)
            if (strcmp(prev->string, it->string) == 0) rc = paw_error("%s: key \"%s\" given twice", path, it->string);
        if (rc) break;
        const KeySpec *k = NULL;
        for (int i = 0; i < NKEYS; i++)
            if (strcmp(keys[i].key, it->string) == 0) k = &keys[i];
        if (!k) {
            rc = paw_error("%s: unknown key \"%s\"", path, it->string);
            break;
        }
        char *base = (char *)c;
        if (k->type == K_INT || k->type == K_FLOAT) {
            if (!cJSON_IsNumber(it)) {
                rc = paw_error("%s: key \"%s\" must be a number", path, k->key);
                break;
            }
            double v = it->valuedouble;
            if (k->type == K_INT && v != floor(v)) {
                rc = paw_error("%s: key \"%s\" must be an integer, found %g", path, k->key, v);
                break;
            }
            if (v < k->lo || v > k->hi) {
                rc = paw_error("%s: key \"%s\" = %g is outside [%g, %g]", path, k->key, v, k->lo, k->hi);
                break;
            }
            if (k->type == K_INT) *(int *)(base + k->offset) = (int)v;
            else *(float *)(base + k->offset) = (float)v;
        } else if (k->type == K_BOOL) {
            if (!cJSON_IsBool(it)) {
                rc = paw_error("%s: key \"%s\" must be true or false", path, k->key);
                break;
            }
            *(int *)(base + k->offset) = cJSON_IsTrue(it);
        } else {
            if (!cJSON_IsString(it)) {
                rc = paw_error("%s: key \"%s\" must be a string", path, k->key);
                break;
            }
            const char *s = it->valuestring;
            if (strcmp(k->key, "mode") == 0) {
                if (!strcmp(s, "paw")) c->mode = TRAIN_MODE_PAW;
                else if (!strcmp(s, "pretrain")) c->mode = TRAIN_MODE_PRETRAIN;
                else {
                    rc = paw_error("%s: key \"mode\" must be \"paw\" or \"pretrain\", found \"%s\"", path, s);
                    break;
                }
                continue;
            }
            if (strcmp(k->key, "schedule") == 0) {
                if (!strcmp(s, "cosine")) c->schedule = SCHED_COSINE;
                else if (!strcmp(s, "step")) c->schedule = SCHED_STEP;
                else if (!strcmp(s, "constant")) c->schedule = SCHED_CONSTANT;
                else {
                    rc = paw_error("%s: key \"schedule\" must be cosine, step or constant, found \"%s\"", path, s);
                    break;
                }
                continue;
            }
            if (k->type == K_PATH_DIR && !paw_is_dir(s)) {
                rc = paw_error("%s: key \"%s\": directory \"%s\" does not exist", path, k->key, s);
                break;
            }
            if (k->type == K_PATH_FILE && !paw_file_exists(s)) {
                rc = paw_error("%s: key \"%s\": file \"%s\" does not exist", path, k->key, s);
                break;
            }
            char **dst = (char **)(base + k->offset);
            free(*dst);
            *dst = xstrdup(s);
        }
    }
    cJSON_Delete(root);
    if (rc == 0) {
        if (!c->interpreter) rc = paw_error("%s: missing required key \"interpreter\"", path);
        else if (c->mode == TRAIN_MODE_PAW && !c->compiler) rc = paw_error("%s: missing required key \"compiler\" (mode paw)", path);
        else if (!c->train_data) rc = paw_error("%s: missing required key \"train_data\"", path);
        else if (!c->out_dir || !*c->out_dir) rc = paw_error("%s: missing required key \"out_dir\" (or it is empty)", path);
        else if (c->mode == TRAIN_MODE_PRETRAIN && c->compiler)
            rc = paw_error("%s: key \"compiler\" has no meaning in mode pretrain", path);
        else if (c->device && strcmp(c->device, "cpu") && strcmp(c->device, "cuda"))
            rc = paw_error("%s: key \"device\" must be \"cpu\" or \"cuda\", found \"%s\"", path, c->device);
        else if (c->gpu_comm && strcmp(c->gpu_comm, "nccl") && strcmp(c->gpu_comm, "mpi"))
            rc = paw_error("%s: key \"gpu_comm\" must be \"nccl\" or \"mpi\", found \"%s\"", path, c->gpu_comm);
        else if (c->export_dtype && strcmp(c->export_dtype, "float32") && strcmp(c->export_dtype, "bfloat16"))
            rc = paw_error("%s: key \"export_dtype\" must be \"float32\" or \"bfloat16\", found \"%s\"", path,
                           c->export_dtype);
        else if (c->mode == TRAIN_MODE_PRETRAIN && c->recompute_keep_interpreter)
            rc = paw_error("%s: key \"recompute_keep_interpreter\" has no meaning in mode pretrain (use \"recompute_keep\")",
                           path);
        else if (!c->recompute && (c->recompute_keep || c->recompute_keep_interpreter))
            rc = paw_error("%s: key \"%s\" needs \"recompute\": true", path,
                           c->recompute_keep ? "recompute_keep" : "recompute_keep_interpreter");
        else if (c->eval_every > 0 && !c->val_data)
            rc = paw_error("%s: key \"eval_every\" needs \"val_data\" (or 0: no evaluation)", path);
        else if (c->eval_every > 0 && c->eval_examples == 0)
            rc = paw_error("%s: key \"eval_examples\" is 0 with \"eval_every\" %d: nothing would be measured", path,
                           c->eval_every);
        else if (c->warmup_steps > c->steps)
            rc = paw_error("%s: key \"warmup_steps\" (%d) exceeds \"steps\" (%d)", path, c->warmup_steps, c->steps);
    }
    if (!c->device && rc == 0) c->device = xstrdup("cpu");
    if (!c->gpu_comm && rc == 0) c->gpu_comm = xstrdup("nccl");
    if (!c->export_dtype && rc == 0) c->export_dtype = xstrdup("float32");
    if (rc != 0) train_config_free(c);
    return rc;
}

int train_config_load(TrainConfig *c, const char *path) {
    char *text = paw_read_file(path, NULL);
    if (!text) return -1;
    int rc = train_config_parse(c, text, path);
    free(text);
    return rc;
}

float train_lr_at(const TrainConfig *c, int step) {
    if (c->warmup_steps > 0 && step < c->warmup_steps) return c->lr * (float)(step + 1) / (float)c->warmup_steps;
    int after = step - c->warmup_steps, span = c->steps - c->warmup_steps;
    switch (c->schedule) {
    case SCHED_CONSTANT: return c->lr;
    case SCHED_STEP: return c->lr * powf(c->step_factor, (float)(after / c->step_every));
    case SCHED_COSINE:
    default: {
        float frac = span > 1 ? (float)after / (float)(span - 1) : 1.0f;
        if (frac > 1) frac = 1;
        float minlr = c->lr * c->min_lr_ratio;
        return minlr + 0.5f * (c->lr - minlr) * (1.0f + cosf(3.14159265358979f * frac));
    }
    }
}
