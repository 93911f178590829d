#include "model/config.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileio.h"
#include "common/json.h"

static int get_int(const cJSON *root, const char *key, int *out, int required, const char *path) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!it || cJSON_IsNull(it)) {
        if (required) return paw_error("%s: missing required field \"%s\"", path, key);
        return 1;
    }
    if (!paw_json_is_int_in(it, -2147483648.0, 2147483647.0))
        return paw_error("%s: field \"%s\" must be an integer", path, key);
    *out = (int)it->valuedouble;
    return 0;
}

static int get_float(const cJSON *root, const char *key, double *out, int required, const char *path) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!it || cJSON_IsNull(it)) {
        if (required) return paw_error("%s: missing required field \"%s\"", path, key);
        return 1;
    }
    if (!cJSON_IsNumber(it)) return paw_error("%s: field \"%s\" must be a number", path, key);
    *out = it->valuedouble;
    return 0;
}

static int refuse_true(const cJSON *root, const char *key, const char *path) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
    if (it && cJSON_IsTrue(it)) return paw_error("%s: \"%s\": true is not supported", path, key);
    return 0;
}

int qwen3_config_validate(const Qwen3Config *c, const char *path) {
    if (c->hidden_size <= 0) return paw_error("%s: hidden_size must be positive, found %d", path, c->hidden_size);
    if (c->intermediate_size <= 0)
        return paw_error("%s: intermediate_size must be positive, found %d", path, c->intermediate_size);
    if (c->num_layers <= 0) return paw_error("%s: num_hidden_layers must be positive, found %d", path, c->num_layers);
    if (c->num_heads <= 0) return paw_error("%s: num_attention_heads must be positive, found %d", path, c->num_heads);
    if (c->num_kv_heads <= 0 || c->num_heads % c->num_kv_heads != 0)
        return paw_error("%s: num_key_value_heads (%d) must divide num_attention_heads (%d)", path, c->num_kv_heads,
                         c->num_heads);
    if (c->head_dim <= 0 || c->head_dim % 2 != 0)
        return paw_error("%s: head_dim must be positive and even, found %d", path, c->head_dim);
    if (c->vocab_size <= 0) return paw_error("%s: vocab_size must be positive, found %d", path, c->vocab_size);
    if (c->max_position_embeddings <= 0)
        return paw_error("%s: max_position_embeddings must be positive, found %d", path, c->max_position_embeddings);
    if (!(c->rope_theta > 0)) return paw_error("%s: rope_theta must be positive", path);
    if (!(c->rms_norm_eps > 0)) return paw_error("%s: rms_norm_eps must be positive", path);
    return 0;
}

int qwen3_config_parse(Qwen3Config *c, const char *json, const char *path) {
    memset(c, 0, sizeof *c);
    cJSON *root = cJSON_Parse(json);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return paw_error("%s: not a JSON object (malformed config.json)", path);
    }
    int rc = -1;
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (!cJSON_IsString(mt)) {
        paw_error("%s: missing \"model_type\"", path);
        goto done;
    }
    if (strcmp(mt->valuestring, "qwen3") != 0) {
        paw_error("%s: model_type \"%s\" is not supported (only \"qwen3\")", path, mt->valuestring);
        goto done;
    }
    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    if (arch) {
        const cJSON *a;
        if (!cJSON_IsArray(arch)) {
            paw_error("%s: \"architectures\" must be a list", path);
            goto done;
        }
        cJSON_ArrayForEach(a, arch) {
            if (!cJSON_IsString(a) || strcmp(a->valuestring, "Qwen3ForCausalLM") != 0) {
                paw_error("%s: architecture \"%s\" is not supported (only Qwen3ForCausalLM)", path,
                          cJSON_IsString(a) ? a->valuestring : "?");
                goto done;
            }
        }
    }
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    if (act && (!cJSON_IsString(act) || strcmp(act->valuestring, "silu") != 0)) {
        paw_error("%s: hidden_act \"%s\" is not supported (only \"silu\")", path,
                  cJSON_IsString(act) ? act->valuestring : "?");
        goto done;
    }
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    if (rs && !cJSON_IsNull(rs)) {
        const cJSON *ty = cJSON_IsObject(rs) ? cJSON_GetObjectItemCaseSensitive(rs, "rope_type") : NULL;
        if (!(ty && cJSON_IsString(ty) && strcmp(ty->valuestring, "default") == 0)) {
            paw_error("%s: \"rope_scaling\" is not supported", path);
            goto done;
        }
    }
    if (refuse_true(root, "attention_bias", path) || refuse_true(root, "use_sliding_window", path)) goto done;
    const cJSON *lt = cJSON_GetObjectItemCaseSensitive(root, "layer_types");
    if (cJSON_IsArray(lt)) {
        const cJSON *a;
        cJSON_ArrayForEach(a, lt) if (!cJSON_IsString(a) || strcmp(a->valuestring, "full_attention") != 0) {
            paw_error("%s: \"layer_types\" entry \"%s\" is not supported (only full_attention)", path,
                      cJSON_IsString(a) ? a->valuestring : "?");
            goto done;
        }
    }
    if (get_int(root, "hidden_size", &c->hidden_size, 1, path) < 0) goto done;
    if (get_int(root, "intermediate_size", &c->intermediate_size, 1, path) < 0) goto done;
    if (get_int(root, "num_hidden_layers", &c->num_layers, 1, path) < 0) goto done;
    if (get_int(root, "num_attention_heads", &c->num_heads, 1, path) < 0) goto done;
    c->num_kv_heads = c->num_heads;
    if (get_int(root, "num_key_value_heads", &c->num_kv_heads, 0, path) < 0) goto done;
    c->head_dim = 128;  // transformers' Qwen3Config default when the field is absent
    if (get_int(root, "head_dim", &c->head_dim, 0, path) < 0) goto done;
    if (get_int(root, "vocab_size", &c->vocab_size, 1, path) < 0) goto done;
    c->max_position_embeddings = 32768;
    if (get_int(root, "max_position_embeddings", &c->max_position_embeddings, 0, path) < 0) goto done;
    c->rope_theta = 10000.0;
    if (get_float(root, "rope_theta", &c->rope_theta, 0, path) < 0) goto done;
    // transformers >= 5 writes rope settings as "rope_parameters": {"rope_type", "rope_theta"}.
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
    if (rp && !cJSON_IsNull(rp)) {
        const cJSON *ty = cJSON_IsObject(rp) ? cJSON_GetObjectItemCaseSensitive(rp, "rope_type") : NULL;
        if (!cJSON_IsObject(rp) || (ty && !(cJSON_IsString(ty) && strcmp(ty->valuestring, "default") == 0))) {
            paw_error("%s: \"rope_parameters\" with a rope_type other than \"default\" is not supported", path);
            goto done;
        }
        if (get_float(rp, "rope_theta", &c->rope_theta, 0, path) < 0) goto done;
    }
    c->rms_norm_eps = 1e-6;
    if (get_float(root, "rms_norm_eps", &c->rms_norm_eps, 0, path) < 0) goto done;
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(root, "tie_word_embeddings");
    if (tie && !cJSON_IsBool(tie)) {
        paw_error("%s: field \"tie_word_embeddings\" must be true or false", path);
        goto done;
    }
    c->tie_word_embeddings = tie ? cJSON_IsTrue(tie) : 0;  // transformers' default is false for Qwen3
    c->bos_token_id = c->eos_token_id = -1;
    if (get_int(root, "bos_token_id", &c->bos_token_id, 0, path) < 0) goto done;
    const cJSON *eos = cJSON_GetObjectItemCaseSensitive(root, "eos_token_id");
    if (cJSON_IsArray(eos) && cJSON_GetArraySize(eos) > 0 && cJSON_IsNumber(cJSON_GetArrayItem(eos, 0)))
        c->eos_token_id = cJSON_GetArrayItem(eos, 0)->valueint;
    else if (get_int(root, "eos_token_id", &c->eos_token_id, 0, path) < 0)
        goto done;
    rc = qwen3_config_validate(c, path);
done:
    cJSON_Delete(root);
    return rc;
}

int qwen3_config_load(Qwen3Config *cfg, const char *path) {
    char *text = paw_read_file(path, NULL);
    if (!text) return -1;
    int rc = qwen3_config_parse(cfg, text, path);
    free(text);
    return rc;
}

int qwen3_config_save(const Qwen3Config *c, const char *path, const char *torch_dtype) {
    cJSON *r = cJSON_CreateObject();
    cJSON *arch = cJSON_AddArrayToObject(r, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString("Qwen3ForCausalLM"));
    cJSON_AddStringToObject(r, "model_type", "qwen3");
    cJSON_AddBoolToObject(r, "attention_bias", 0);
    cJSON_AddNumberToObject(r, "attention_dropout", 0.0);
    if (c->bos_token_id >= 0) cJSON_AddNumberToObject(r, "bos_token_id", c->bos_token_id);
    if (c->eos_token_id >= 0) cJSON_AddNumberToObject(r, "eos_token_id", c->eos_token_id);
    cJSON_AddNumberToObject(r, "head_dim", c->head_dim);
    cJSON_AddStringToObject(r, "hidden_act", "silu");
    cJSON_AddNumberToObject(r, "hidden_size", c->hidden_size);
    cJSON_AddNumberToObject(r, "initializer_range", 0.02);
    cJSON_AddNumberToObject(r, "intermediate_size", c->intermediate_size);
    cJSON_AddNumberToObject(r, "max_position_embeddings", c->max_position_embeddings);
    cJSON_AddNumberToObject(r, "num_attention_heads", c->num_heads);
    cJSON_AddNumberToObject(r, "num_hidden_layers", c->num_layers);
    cJSON_AddNumberToObject(r, "num_key_value_heads", c->num_kv_heads);
    cJSON_AddNumberToObject(r, "rms_norm_eps", c->rms_norm_eps);
    cJSON_AddNullToObject(r, "rope_scaling");
    cJSON_AddNumberToObject(r, "rope_theta", c->rope_theta);
    cJSON_AddBoolToObject(r, "tie_word_embeddings", c->tie_word_embeddings);
    cJSON_AddStringToObject(r, "torch_dtype", torch_dtype ? torch_dtype : "float32");
    cJSON_AddBoolToObject(r, "use_cache", 1);
    cJSON_AddBoolToObject(r, "use_sliding_window", 0);
    cJSON_AddNumberToObject(r, "vocab_size", c->vocab_size);
    char *s = cJSON_Print(r);
    cJSON_Delete(r);
    if (!s) return paw_error("%s: cannot render config JSON", path);
    size_t n = strlen(s);
    s = xrealloc(s, n + 2);
    s[n] = '\n';
    s[n + 1] = 0;
    int rc = paw_write_file_atomic(path, s, n + 1);
    free(s);
    return rc;
}
