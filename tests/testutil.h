// Helpers shared by the C tests: reference tensors from fixtures and error measures.
#ifndef PAW_TESTS_TESTUTIL_H
#define PAW_TESTS_TESTUTIL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/error.h"
#include "common/fileio.h"
#include "model/safetensors.h"

// Reads an F32/BF16/F16 tensor as fp32 (caller frees); aborts the test on failure.
static inline float *ref_f32(const SafeTensors *st, const char *name, int64_t *numel) {
    const StTensor *t = st_find(st, name);
    if (!t) paw_die("fixture %s: missing tensor %s", st->path, name);
    float *v = xmalloc(sizeof(float) * (size_t)(t->numel ? t->numel : 1));
    if (st_to_f32(st, t, v) != 0) paw_die("%s", paw_last_error());
    if (numel) *numel = t->numel;
    return v;
}

static inline int *ref_i32(const SafeTensors *st, const char *name, int64_t *numel) {
    const StTensor *t = st_find(st, name);
    if (!t || t->dtype != ST_I32) paw_die("fixture %s: missing I32 tensor %s", st->path, name);
    int *v = xmalloc(sizeof(int) * (size_t)(t->numel ? t->numel : 1));
    memcpy(v, t->data, t->nbytes);
    if (numel) *numel = t->numel;
    return v;
}

// ||a - b|| / ||b|| in double.
static inline double rel_l2(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * (double)b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

// max |a - b| / max |b|.
static inline double rel_max(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= num)) num = d;  // NaN propagates
        if (fabs((double)b[i]) > den) den = fabs((double)b[i]);
    }
    return den > 0 ? num / den : num;
}

// Writes to PATH the JSON object TEXT with member KEY set to the number V (a corrupted file for
// refusal tests); aborts the test on failure.
static inline void write_json_with_number(const char *path, const char *text, const char *key, double v) {
    cJSON *o = cJSON_Parse(text);
    if (!o) paw_die("%s: not JSON", path);
    cJSON_ReplaceItemInObject(o, key, cJSON_CreateNumber(v));
    char *t = cJSON_Print(o);
    if (paw_write_file_atomic(path, t, strlen(t)) != 0) paw_die("%s", paw_last_error());
    free(t);
    cJSON_Delete(o);
}

// step -> loss from a training run's log.jsonl (loss[step - 1]; the last line of a step wins, as
// after a resume), steps 1..max. Returns the highest step found, or -1 when the log cannot be read.
static inline int read_log_losses(const char *log, double *loss, int max) {
    char *text = paw_read_file(log, NULL);
    if (!text) return -1;
    int n = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *o = cJSON_Parse(line);
        const cJSON *s = cJSON_GetObjectItem(o, "step"), *l = cJSON_GetObjectItem(o, "loss");
        if (cJSON_IsNumber(s) && cJSON_IsNumber(l) && s->valueint >= 1 && s->valueint <= max) {
            loss[s->valueint - 1] = l->valuedouble;
            if (s->valueint > n) n = s->valueint;
        }
        cJSON_Delete(o);
    }
    free(text);
    return n;
}

// Writes to path the JSON object base with the members of extra (",\"k\":v,..." or "") set, each
// replacing a member of the same name (a config refuses a key given twice). 0, or -1.
static inline int write_json_merged(const char *path, const char *base, const char *extra) {
    cJSON *o = cJSON_Parse(base);
    size_t n = strlen(extra);
    char *wrapped = (char *)malloc(n + 3);
    if (!o || !wrapped) return -1;
    snprintf(wrapped, n + 3, "{%s}", extra + (extra[0] == ','));
    cJSON *e = cJSON_Parse(wrapped);
    free(wrapped);
    if (!e) return -1;
    while (e->child) {
        cJSON *it = cJSON_DetachItemViaPointer(e, e->child);
        cJSON_DeleteItemFromObjectCaseSensitive(o, it->string);
        cJSON_AddItemToObject(o, it->string, it);
    }
    cJSON_Delete(e);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    int rc = text ? paw_write_file_atomic(path, text, strlen(text)) : -1;
    free(text);
    return rc;
}

#endif
