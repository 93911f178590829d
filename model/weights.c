// Loading and saving Qwen3 checkpoints as Hugging Face directories: config.json plus
// model.safetensors, or shards listed in model.safetensors.index.json. Tensors are converted
// from bf16/f16/f32 into the fp32 parameter block; every name, shape and dtype is checked.
#include <cjson/cJSON.h>
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

static int load_tensor(const Shards *s, const char *dir, const char *name, int ndim, const int *shape, float *dst) {
    const SafeTensors *f = NULL;
    const StTensor *t = shards_find(s, name, &f);
    if (!t) return paw_error("%s: missing tensor \"%s\"", dir, name);
    int ok = t->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++) ok = t->shape[d] == shape[d];
    if (!ok) {
        char want[64], got[128];
        if (ndim == 2) snprintf(want, sizeof want, "[%d, %d]", shape[0], shape[1]);
        else snprintf(want, sizeof want, "[%d]", shape[0]);
        int k = snprintf(got, sizeof got, "[");
        for (int d = 0; d < t->ndim && k < 100; d++) k += snprintf(got + k, sizeof got - (size_t)k, d ? ", %lld" : "%lld", (long long)t->shape[d]);
        snprintf(got + k, sizeof got - (size_t)k, "]");
        return paw_error("%s: tensor \"%s\" has shape %s, expected %s from config.json", f->path, name, got, want);
    }
    if (t->dtype != ST_F32 && t->dtype != ST_BF16 && t->dtype != ST_F16)
        return paw_error("%s: tensor \"%s\" has dtype %s, expected F32, BF16 or F16", f->path, name,
                         st_dtype_name(t->dtype));
    return st_to_f32(f, t, dst);
}

int qwen3_load(Qwen3 *m, const char *dir, int frozen) {
    memset(m, 0, sizeof *m);
    char *cfg_path = paw_path_join(dir, "config.json");
    Qwen3Config cfg;
    int rc = qwen3_config_load(&cfg, cfg_path);
    free(cfg_path);
    if (rc != 0) return -1;
    Shards s;
    if (shards_open(&s, dir) != 0) return -1;
    qwen3_create(m, &cfg, frozen);
    char name[256];
    for (int i = 0; i < QWEN3_NUM_PARAMS && rc == 0; i++) {
        Qwen3ParamInfo info = qwen3_param_info(&cfg, i);
        if (info.numel == 0) continue;  // tied lm_head: a stored copy is ignored, as transformers does
        float *dst = *qwen3_param_slot(&m->params, i);
        int layers = info.per_layer ? cfg.num_layers : 1;
        size_t per = info.numel / (size_t)layers;
        for (int l = 0; l < layers && rc == 0; l++) {
            snprintf(name, sizeof name, info.hf_name, l);
            rc = load_tensor(&s, dir, name, info.ndim, info.shape, dst + (size_t)l * per);
        }
    }
    shards_close(&s);
    if (rc != 0) qwen3_free(m);
    return rc;
}

int qwen3_save(const Qwen3 *m, const char *dir, const char *dtype) {
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
