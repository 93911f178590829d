#include "data/vocab_map.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileio.h"
#include "model/safetensors.h"

int paw_vocab_map_build(PawVocabMap *vm, const int32_t *ids, int64_t n, int orig_size) {
    memset(vm, 0, sizeof *vm);
    if (orig_size <= 0) return paw_error("vocab map: tokenizer vocabulary size must be positive");
    uint8_t *used = xcalloc((size_t)orig_size, 1);
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= orig_size) {
            free(used);
            return paw_error("vocab map: token id %d outside the tokenizer vocabulary [0, %d)", ids[i], orig_size);
        }
        used[ids[i]] = 1;
    }
    vm->orig_size = orig_size;
    vm->compact = xmalloc(sizeof(int32_t) * (size_t)orig_size);
    for (int i = 0; i < orig_size; i++) vm->n += used[i];
    vm->orig = xmalloc(sizeof(int32_t) * (size_t)(vm->n ? vm->n : 1));
    int k = 0;
    for (int i = 0; i < orig_size; i++) {
        vm->compact[i] = used[i] ? k : -1;
        if (used[i]) vm->orig[k++] = i;
    }
    free(used);
    return 0;
}

void paw_vocab_map_free(PawVocabMap *vm) {
    free(vm->orig);
    free(vm->compact);
    memset(vm, 0, sizeof *vm);
}

int paw_vocab_map_save(const PawVocabMap *vm, const char *dir) {
    char *path = paw_path_join(dir, "vocab_map.safetensors");
    char size[32];
    snprintf(size, sizeof size, "%d", vm->orig_size);
    const char *meta[] = {"format", "pt", "orig_vocab_size", size};
    StWriteTensor t = {.name = "orig_ids", .dtype = ST_I32, .ndim = 1, .shape = {vm->n}, .data = vm->orig};
    int rc = st_write(path, &t, 1, meta, 2);
    free(path);
    return rc;
}

int paw_vocab_map_load(PawVocabMap *vm, const char *dir) {
    memset(vm, 0, sizeof *vm);
    char *path = paw_path_join(dir, "vocab_map.safetensors");
    if (!paw_file_exists(path)) {
        free(path);
        return 1;
    }
    SafeTensors st;
    int rc = st_open(&st, path);
    free(path);
    if (rc != 0) return -1;
    const StTensor *t = st_find(&st, "orig_ids");
    const char *os = st_meta(&st, "orig_vocab_size");
    char *end = NULL;
    long orig = os ? strtol(os, &end, 10) : 0;
    int orig_size = os && end != os && !*end && orig > 0 && orig <= PAW_VOCAB_MAP_MAX_ORIG ? (int)orig : 0;
    if (!t || t->dtype != ST_I32 || t->ndim != 1) rc = paw_error("%s: needs an I32 vector \"orig_ids\"", st.path);
    else if (orig_size <= 0)
        rc = paw_error("%s: metadata \"orig_vocab_size\" is %s%s%s, expected an integer in [1, %d]", st.path, os ? "\"" : "",
                       os ? os : "missing", os ? "\"" : "", PAW_VOCAB_MAP_MAX_ORIG);
    else {
        int32_t *ids = xmalloc(t->nbytes ? t->nbytes : 1);
        memcpy(ids, t->data, t->nbytes);
        rc = paw_vocab_map_build(vm, ids, t->numel, orig_size);
        if (rc == 0 && vm->n != t->numel) rc = paw_error("%s: \"orig_ids\" holds repeated ids", st.path);
        free(ids);
        if (rc != 0) paw_error_context("%s", st.path);
    }
    st_close(&st);
    if (rc != 0) paw_vocab_map_free(vm);
    return rc;
}

int paw_vocab_map_equal(const PawVocabMap *a, const PawVocabMap *b) {
    if (a->n != b->n || a->orig_size != b->orig_size) return 0;
    return a->n == 0 || memcmp(a->orig, b->orig, sizeof(int32_t) * (size_t)a->n) == 0;
}

int paw_vocab_map_to_model(const PawVocabMap *vm, int32_t *ids, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= vm->orig_size || vm->compact[id] < 0)
            return paw_error("token id %d is not in the model's trimmed vocabulary (%d ids)", id, vm->n);
        ids[i] = vm->compact[id];
    }
    return 0;
}
