// Loading and saving Qwen3 checkpoints as Hugging Face directories: config.json plus
// model.safetensors, or shards listed in model.safetensors.index.json. Tensors are converted
// from bf16/f16/f32 into the fp32 parameter block (or, for inference, the matrices into bf16 or
// Q8; BF16 ones are read in place from the mapped files); every name, shape and dtype is checked.
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileio.h"
#include "model/qwen3.h"
#include "model/safetensors.h"

typedef struct {
    int nfiles;
    SafeTensors *files;
} Shards;

static void shards_close(Shards *s) {
    for (int i = 0; i < s->nfiles; i++) st_close(&s->files[i]);
    free(s->files);
    s->files = NULL;
    s->nfiles = 0;
}

// Opens model.safetensors, or every shard named in model.safetensors.index.json.
static int shards_open(Shards *s, const char *dir) {
    memset(s, 0, sizeof *s);
    char *single = paw_path_join(dir, "model.safetensors");
    char *index = paw_path_join(dir, "model.safetensors.index.json");
    int rc = -1;
    if (paw_file_exists(single)) {
        s->files = xcalloc(1, sizeof(SafeTensors));
        if (st_open(&s->files[0], single) == 0) {
            s->nfiles = 1;
            rc = 0;
        }
    } else if (paw_file_exists(index)) {
        char *text = paw_read_file(index, NULL);
        cJSON *root = text ? cJSON_Parse(text) : NULL;
        const cJSON *wm = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
        if (!text) {
            // message already set
        } else if (!cJSON_IsObject(wm)) {
            paw_error("%s: malformed index (no \"weight_map\" object)", index);
        } else {
            // Distinct shard file names, in order of first appearance.
            int cap = cJSON_GetArraySize(wm), n = 0;
            const char **names = xcalloc((size_t)cap + 1, sizeof(char *));
            const cJSON *it;
            rc = 0;
            cJSON_ArrayForEach(it, wm) {
                if (!cJSON_IsString(it) || strchr(it->valuestring, '/')) {
                    rc = paw_error("%s: weight_map entry \"%s\" must name a shard file in the directory", index,
                                   it->string);
                    break;
                }
                int seen = 0;
                for (int k = 0; k < n; k++) seen |= strcmp(names[k], it->valuestring) == 0;
                if (!seen) names[n++] = it->valuestring;
            }
            if (rc == 0) {
                s->files = xcalloc((size_t)n + 1, sizeof(SafeTensors));
                for (int k = 0; k < n && rc == 0; k++) {
                    char *path = paw_path_join(dir, names[k]);
                    if (st_open(&s->files[k], path) == 0) s->nfiles++;
                    else rc = -1;
                    free(path);
                }
            }
            free(names);
        }
        cJSON_Delete(root);
        free(text);
    } else {
        paw_error("%s: no model.safetensors or model.safetensors.index.json", dir);
    }
    free(single);
    free(index);
    if (rc != 0) shards_close(s);
    return rc;
}

static const StTensor *shards_find(const Shards *s, const char *name, const SafeTensors **file) {
    for (int i = 0; i < s->nfiles; i++) {
        const StTensor *t = st_find(&s->files[i], name);
        if (t) {
            *file = &s->files[i];
            return t;
        }
    }
    return NULL;
}

// Finds tensor name and checks its shape against config.json and its dtype.
static const StTensor *find_checked(const Shards *s, const char *dir, const char *name, int ndim, const int *shape,
                                    const SafeTensors **f) {
    const StTensor *t = shards_find(s, name, f);
    if (!t) {
        paw_error("%s: missing tensor \"%s\"", dir, name);
        return NULL;
    }
    int ok = t->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++) ok = t->shape[d] == shape[d];
    if (!ok) {
        char want[64], got[128];
        if (ndim == 2) snprintf(want, sizeof want, "[%d, %d]", shape[0], shape[1]);
        else snprintf(want, sizeof want, "[%d]", shape[0]);
        int k = snprintf(got, sizeof got, "[");
        for (int d = 0; d < t->ndim && k < 100; d++) k += snprintf(got + k, sizeof got - (size_t)k, d ? ", %lld" : "%lld", (long long)t->shape[d]);
        snprintf(got + k, sizeof got - (size_t)k, "]");
        paw_error("%s: tensor \"%s\" has shape %s, expected %s from config.json", (*f)->path, name, got, want);
        return NULL;
    }
    if (t->dtype != ST_F32 && t->dtype != ST_BF16 && t->dtype != ST_F16) {
        paw_error("%s: tensor \"%s\" has dtype %s, expected F32, BF16 or F16", (*f)->path, name, st_dtype_name(t->dtype));
        return NULL;
    }
    return t;
}

static int load_tensor(const Shards *s, const char *dir, const char *name, int ndim, const int *shape, float *dst) {
    const SafeTensors *f = NULL;
    const StTensor *t = find_checked(s, dir, name, ndim, shape, &f);
    return t ? st_to_f32(f, t, dst) : -1;
}

// Into bf16: BF16 bytes as they are (little-endian on disk and here), others rounded to nearest even.
static int load_tensor_bf16(const Shards *s, const char *dir, const char *name, int ndim, const int *shape,
                            uint16_t *dst) {
    const SafeTensors *f = NULL;
    const StTensor *t = find_checked(s, dir, name, ndim, shape, &f);
    if (!t) return -1;
    if (t->dtype == ST_BF16) {
        memcpy(dst, t->data, t->nbytes);
        return 0;
    }
    float *tmp = xmalloc(sizeof(float) * (size_t)t->numel);
    int rc = st_to_f32(f, t, tmp);
    for (int64_t i = 0; rc == 0 && i < t->numel; i++) dst[i] = st_f32_to_bf16(tmp[i]);
    free(tmp);
    return rc;
}

// Whether every weight matrix the model loads is stored as BF16 (a missing one is reported by
// the load itself). aligned: also at an even address, so that the model can read it in place.
static int matrices_all_bf16(const Shards *s, const Qwen3Config *cfg, int aligned) {
    char name[256];
    for (int i = 0; i < QWEN3_NUM_PARAMS; i++) {
        Qwen3ParamInfo info = qwen3_param_info(cfg, i);
        if (info.numel == 0 || info.ndim != 2) continue;
        for (int l = 0; l < (info.per_layer ? cfg->num_layers : 1); l++) {
            const SafeTensors *f;
            snprintf(name, sizeof name, info.hf_name, l);
            const StTensor *t = shards_find(s, name, &f);
            if (!t && aligned) return 0;
            if (t && (t->dtype != ST_BF16 || (aligned && ((uintptr_t)t->data & 1)))) return 0;
        }
    }
    return 1;
}

void qwen3_close_mapped_files(Qwen3 *m) {
    if (!m->mapped_files) return;
    shards_close(m->mapped_files);
    free(m->mapped_files);
    m->mapped_files = NULL;
}

int qwen3_weights_from_name(const char *name) {
    if (strcmp(name, "auto") == 0) return QWEN3_WEIGHTS_AUTO;
    if (strcmp(name, "f32") == 0 || strcmp(name, "float32") == 0) return QWEN3_WEIGHTS_F32;
    if (strcmp(name, "bf16") == 0 || strcmp(name, "bfloat16") == 0) return QWEN3_WEIGHTS_BF16;
    if (strcmp(name, "q8") == 0 || strcmp(name, "q8_0") == 0) return QWEN3_WEIGHTS_Q8;
    return paw_error("weights \"%s\": expected auto, f32, bf16 or q8", name);
}

int qwen3_weights_for_device(const char *name, int cuda) {
    int w = qwen3_weights_from_name(name);
    if (w < 0) return -1;
    if (cuda && (w == QWEN3_WEIGHTS_BF16 || w == QWEN3_WEIGHTS_Q8))
        return paw_error("weights %s: only the CPU path reads bf16 or q8 weights (the GPU path converts f32 ones itself)",
                         name);
    return cuda ? QWEN3_WEIGHTS_F32 : w;
}

int qwen3_load(Qwen3 *m, const char *dir, int frozen) { return qwen3_load_ex(m, dir, frozen, QWEN3_WEIGHTS_F32); }

int qwen3_load_ex(Qwen3 *m, const char *dir, int frozen, int weights) {
    memset(m, 0, sizeof *m);
    if ((weights == QWEN3_WEIGHTS_BF16 || weights == QWEN3_WEIGHTS_Q8) && !frozen)
        return paw_error("%s: %s weights are for inference; a trained model needs f32 weights", dir,
                         weights == QWEN3_WEIGHTS_Q8 ? "q8" : "bf16");
    char *cfg_path = paw_path_join(dir, "config.json");
    Qwen3Config cfg;
    int rc = qwen3_config_load(&cfg, cfg_path);
    free(cfg_path);
    if (rc != 0) return -1;
    Shards s;
    if (shards_open(&s, dir) != 0) return -1;
    if (weights == QWEN3_WEIGHTS_AUTO)
        weights = frozen && matrices_all_bf16(&s, &cfg, 0) ? QWEN3_WEIGHTS_BF16 : QWEN3_WEIGHTS_F32;
    // BF16 matrices are read where they lie in the mapped files; the model keeps the files open.
    int mapped = weights == QWEN3_WEIGHTS_BF16 && matrices_all_bf16(&s, &cfg, 1);
    if (weights == QWEN3_WEIGHTS_BF16) qwen3_create_bf16(m, &cfg, !mapped);
    else if (weights == QWEN3_WEIGHTS_Q8) {
        if (qwen3_create_q8(m, &cfg) != 0) {
            shards_close(&s);
            return paw_error_context("%s", dir);
        }
    } else qwen3_create(m, &cfg, frozen);
    float *tmp = NULL;  // q8: one layer's matrix in fp32, quantized from there
    char name[256];
    for (int i = 0; i < QWEN3_NUM_PARAMS && rc == 0; i++) {
        Qwen3ParamInfo info = qwen3_param_info(&cfg, i);
        if (info.numel == 0) continue;  // tied lm_head: a stored copy is ignored, as transformers does
        float *dst = *qwen3_param_slot(&m->params, i);
        const int bf16 = !dst && m->w16[i];
        int layers = info.per_layer ? cfg.num_layers : 1;
        size_t per = info.numel / (size_t)layers;
        if (!dst && m->q8[i]) tmp = xmalloc(sizeof(float) * per);
        for (int l = 0; l < layers && rc == 0; l++) {
            snprintf(name, sizeof name, info.hf_name, l);
            if (bf16 && mapped) {
                const SafeTensors *f;
                const StTensor *t = find_checked(&s, dir, name, info.ndim, info.shape, &f);
                if (t) m->w16[i][l] = (const uint16_t *)(const void *)t->data;
                else rc = -1;
            } else if (bf16) {
                rc = load_tensor_bf16(&s, dir, name, info.ndim, info.shape, qwen3_w16_held(m, i, l));
            } else if (!dst) {
                rc = load_tensor(&s, dir, name, info.ndim, info.shape, tmp);
                if (rc == 0) qwen3_set_q8(m, i, (size_t)l * per, tmp, per);
            } else rc = load_tensor(&s, dir, name, info.ndim, info.shape, dst + (size_t)l * per);
        }
        free(tmp);  // the next matrix may be larger
        tmp = NULL;
    }
    if (mapped && rc == 0) {
        m->mapped_files = xmalloc(sizeof s);
        memcpy(m->mapped_files, &s, sizeof s);
    } else {
        shards_close(&s);
    }
    if (rc != 0) qwen3_free(m);
    return rc;
}

int qwen3_save(const Qwen3 *m, const char *dir, const char *dtype) {
    if (m->inference_only)
        return paw_error("save %s: the model holds %s inference weights (load it with f32 weights)", dir,
                         qwen3_weights_kind(m));
    int bf16 = 0;
    if (strcmp(dtype, "bfloat16") == 0) bf16 = 1;
    else if (strcmp(dtype, "float32") != 0) return paw_error("save: dtype \"%s\" (expected float32 or bfloat16)", dtype);
    if (paw_mkdir_p(dir) != 0) return -1;
    const Qwen3Config *c = &m->cfg;
    int n = 0, cap = 3 + 11 * c->num_layers;
    StWriteTensor *ts = xcalloc((size_t)cap, sizeof *ts);
    char **names = xcalloc((size_t)cap, sizeof(char *));
    uint16_t *conv = bf16 ? xmalloc(sizeof(uint16_t) * m->num_params) : NULL;
    if (conv) {
#pragma omp parallel for
        for (size_t k = 0; k < m->num_params; k++) conv[k] = st_f32_to_bf16(m->params_memory[k]);
    }
    for (int i = 0; i < QWEN3_NUM_PARAMS; i++) {
        Qwen3ParamInfo info = qwen3_param_info(c, i);
        if (info.numel == 0) continue;
        const float *src = *qwen3_param_slot((Qwen3Params *)&m->params, i);
        int layers = info.per_layer ? c->num_layers : 1;
        size_t per = info.numel / (size_t)layers;
        for (int l = 0; l < layers; l++) {
            char buf[256];
            snprintf(buf, sizeof buf, info.hf_name, l);
            names[n] = xstrdup(buf);
            StWriteTensor *t = &ts[n];
            t->name = names[n];
            t->dtype = bf16 ? ST_BF16 : ST_F32;
            t->ndim = info.ndim;
            t->shape[0] = info.shape[0];
            t->shape[1] = info.shape[1];
            size_t off = (size_t)(src - m->params_memory) + (size_t)l * per;
            t->data = bf16 ? (const void *)(conv + off) : (const void *)(m->params_memory + off);
            n++;
        }
    }
    const char *meta[] = {"format", "pt"};
    char *path = paw_path_join(dir, "model.safetensors");
    int rc = st_write(path, ts, n, meta, 1);
    free(path);
    if (rc == 0) {
        char *cp = paw_path_join(dir, "config.json");
        rc = qwen3_config_save(c, cp, dtype);
        free(cp);
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    free(ts);
    free(conv);
    return rc;
}
