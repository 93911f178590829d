#include "model/gguf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "model/safetensors.h"

static const char *const kTypeNames[GGUF_TYPE_COUNT] = {
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
    "bool",  "string", "array", "uint64", "int64", "float64",
};
// Bytes of one scalar element; 0 for string and array.
static const int kTypeSize[GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *gguf_type_name(int type) {
    return type >= 0 && type < GGUF_TYPE_COUNT ? kTypeNames[type] : "invalid";
}

// ---------------------------------------------------------------------------------------------
// Little-endian loads from unaligned bytes.

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }

typedef struct {
    const uint8_t *p;
    size_t n, pos;
    const char *path;
} Cursor;

static int need(Cursor *c, size_t k, const char *what) {
    if (k > c->n - c->pos)
        return paw_error("%s: truncated GGUF: %s needs %zu bytes at offset %zu, only %zu left", c->path, what, k,
                         c->pos, c->n - c->pos);
    return 0;
}

static int rd_u32(Cursor *c, uint32_t *v, const char *what) {
    if (need(c, 4, what)) return -1;
    *v = le32(c->p + c->pos);
    c->pos += 4;
    return 0;
}

static int rd_u64(Cursor *c, uint64_t *v, const char *what) {
    if (need(c, 8, what)) return -1;
    *v = le64(c->p + c->pos);
    c->pos += 8;
    return 0;
}

// A GGUF string as a new NUL-terminated copy.
static int rd_str(Cursor *c, char **out, uint64_t *len_out, const char *what) {
    uint64_t len;
    if (rd_u64(c, &len, what)) return -1;
    if (len > c->n - c->pos)
        return paw_error("%s: truncated GGUF: %s claims %llu bytes at offset %zu, only %zu left", c->path, what,
                         (unsigned long long)len, c->pos, c->n - c->pos);
    char *s = xmalloc((size_t)len + 1);
    memcpy(s, c->p + c->pos, (size_t)len);
    s[len] = 0;
    c->pos += (size_t)len;
    *out = s;
    if (len_out) *len_out = len;
    return 0;
}

// Reads one scalar of type t into kv's numeric members.
static void decode_scalar(GgufKV *kv, int t, const uint8_t *p) {
    switch (t) {
    case GGUF_TYPE_UINT8: kv->u64 = p[0]; kv->i64 = p[0]; kv->f64 = p[0]; break;
    case GGUF_TYPE_INT8: kv->i64 = (int8_t)p[0]; kv->f64 = (double)kv->i64; break;
    case GGUF_TYPE_UINT16: kv->u64 = le16(p); kv->i64 = (int64_t)kv->u64; kv->f64 = (double)kv->u64; break;
    case GGUF_TYPE_INT16: kv->i64 = (int16_t)le16(p); kv->f64 = (double)kv->i64; break;
    case GGUF_TYPE_UINT32: kv->u64 = le32(p); kv->i64 = (int64_t)kv->u64; kv->f64 = (double)kv->u64; break;
    case GGUF_TYPE_INT32: kv->i64 = (int32_t)le32(p); kv->f64 = (double)kv->i64; break;
    case GGUF_TYPE_FLOAT32: {
        uint32_t u = le32(p);
        float f;
        memcpy(&f, &u, 4);
        kv->f64 = f;
        break;
    }
    case GGUF_TYPE_BOOL: kv->u64 = p[0] != 0; kv->i64 = p[0] != 0; kv->f64 = p[0] != 0; break;
    case GGUF_TYPE_UINT64: kv->u64 = le64(p); kv->i64 = (int64_t)kv->u64; kv->f64 = (double)kv->u64; break;
    case GGUF_TYPE_INT64: kv->i64 = (int64_t)le64(p); kv->f64 = (double)kv->i64; break;
    case GGUF_TYPE_FLOAT64: {
        uint64_t u = le64(p);
        memcpy(&kv->f64, &u, 8);
        break;
    }
    }
    if (t == GGUF_TYPE_INT8 || t == GGUF_TYPE_INT16 || t == GGUF_TYPE_INT32 || t == GGUF_TYPE_INT64)
        kv->u64 = kv->i64 >= 0 ? (uint64_t)kv->i64 : 0;
}

static int parse_kv(Cursor *c, GgufKV *kv, int index) {
    char what[96];
    snprintf(what, sizeof what, "key of key/value %d", index);
    if (rd_str(c, &kv->key, NULL, what)) return -1;
    uint32_t t;
    if (rd_u32(c, &t, "value type")) return paw_error_context("key '%s'", kv->key);
    if (t >= GGUF_TYPE_COUNT)
        return paw_error("%s: key '%s': invalid value type %u, expected 0..%d", c->path, kv->key, t,
                         GGUF_TYPE_COUNT - 1);
    kv->type = (int)t;
    if (t == GGUF_TYPE_STRING) {
        if (rd_str(c, &kv->str, &kv->str_len, "string value")) return paw_error_context("key '%s'", kv->key);
        return 0;
    }
    if (t != GGUF_TYPE_ARRAY) {
        if (need(c, (size_t)kTypeSize[t], "value")) return paw_error_context("key '%s'", kv->key);
        decode_scalar(kv, (int)t, c->p + c->pos);
        c->pos += (size_t)kTypeSize[t];
        return 0;
    }
    uint32_t et;
    uint64_t n;
    if (rd_u32(c, &et, "array element type") || rd_u64(c, &n, "array length"))
        return paw_error_context("key '%s'", kv->key);
    if (et >= GGUF_TYPE_COUNT || et == GGUF_TYPE_ARRAY)
        return paw_error("%s: key '%s': invalid array element type %u (%s)", c->path, kv->key, et,
                         et == GGUF_TYPE_ARRAY ? "nested arrays are not supported" : "unknown type");
    kv->arr_type = (int)et;
    kv->arr_n = n;
    if (et == GGUF_TYPE_STRING) {
        // Each string takes at least its 8-byte length: bound n before allocating.
        if (n > (c->n - c->pos) / 8)
            return paw_error("%s: key '%s': array of %llu strings does not fit in the %zu bytes left", c->path,
                             kv->key, (unsigned long long)n, c->n - c->pos);
        kv->arr_str = xcalloc((size_t)n ? (size_t)n : 1, sizeof(char *));
        for (uint64_t i = 0; i < n; i++)
            if (rd_str(c, &kv->arr_str[i], NULL, "array string"))
                return paw_error_context("key '%s' element %llu", kv->key, (unsigned long long)i);
        return 0;
    }
    size_t es = (size_t)kTypeSize[et];
    if (n > (c->n - c->pos) / es)
        return paw_error("%s: key '%s': array of %llu %s does not fit in the %zu bytes left", c->path, kv->key,
                         (unsigned long long)n, kTypeNames[et], c->n - c->pos);
    kv->arr_data = c->p + c->pos;
    c->pos += (size_t)n * es;
    return 0;
}

static void free_kv(GgufKV *kv) {
    free(kv->key);
    free(kv->str);
    if (kv->arr_str)
        for (uint64_t i = 0; i < kv->arr_n; i++) free(kv->arr_str[i]);
    free(kv->arr_str);
}

void gguf_close(Gguf *g) {
    if (!g) return;
    for (int i = 0; i < g->nkv; i++) free_kv(&g->kv[i]);
    free(g->kv);
    for (int i = 0; i < g->ntensors; i++) free(g->tensors[i].name);
    free(g->tensors);
    paw_unmap(&g->map);
    free(g->path);
    memset(g, 0, sizeof *g);
}

static int parse_tensor_info(Cursor *c, GgufTensor *t, int index) {
    char what[96];
    snprintf(what, sizeof what, "name of tensor %d", index);
    if (rd_str(c, &t->name, NULL, what)) return -1;
    uint32_t nd, type;
    if (rd_u32(c, &nd, "n_dims")) return paw_error_context("tensor '%s'", t->name);
    if (nd < 1 || nd > GGUF_MAX_DIMS)
        return paw_error("%s: tensor '%s': %u dimensions, expected 1..%d", c->path, t->name, nd, GGUF_MAX_DIMS);
    t->ndim = (int)nd;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    int64_t numel = 1;
    for (uint32_t d = 0; d < nd; d++) {
        uint64_t ne;
        if (rd_u64(c, &ne, "dimension")) return paw_error_context("tensor '%s'", t->name);
        if (ne > (uint64_t)INT64_MAX)
            return paw_error("%s: tensor '%s': dimension %u is %llu, too large", c->path, t->name, d,
                             (unsigned long long)ne);
        t->ne[d] = (int64_t)ne;
        if (ne && numel > INT64_MAX / (int64_t)ne)
            return paw_error("%s: tensor '%s': element count overflows", c->path, t->name);
        numel *= (int64_t)ne;
    }
    t->numel = numel;
    if (rd_u32(c, &type, "tensor type")) return paw_error_context("tensor '%s'", t->name);
    t->type = (int)type;
    int bs, bb;
    if (ggml_type_layout((int)type, &bs, &bb) != 0)
        return paw_error("%s: tensor '%s': unknown ggml type %u", c->path, t->name, type);
    if (t->ne[0] % bs)
        return paw_error("%s: tensor '%s': type %s needs ne[0] a multiple of %d, found %lld", c->path, t->name,
                         ggml_type_name(t->type), bs, (long long)t->ne[0]);
    if (numel / bs > (int64_t)(SIZE_MAX / 2) / bb)
        return paw_error("%s: tensor '%s': byte size overflows", c->path, t->name);
    t->nbytes = ggml_type_nbytes(t->type, numel);
    if (rd_u64(c, &t->offset, "tensor offset")) return paw_error_context("tensor '%s'", t->name);
    return 0;
}

int gguf_parse(Gguf *g, const uint8_t *data, size_t size, const char *name) {
    memset(g, 0, sizeof *g);
    g->path = xstrdup(name ? name : "?");
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    Cursor c = {data, size, 0, g->path};
    if (size < 4 || memcmp(data, "GGUF", 4) != 0) {
        paw_error("%s: not a GGUF file (expected magic 'GGUF' in the first 4 bytes)", g->path);
        goto fail;
    }
    c.pos = 4;
    uint64_t nt, nkv;
    if (rd_u32(&c, &g->version, "version")) goto fail;
    if (g->version != 2 && g->version != 3) {
        if ((g->version & 0xffff) == 0 && g->version)
            paw_error("%s: big-endian GGUF (version field %u) is not supported", g->path, g->version);
        else
            paw_error("%s: GGUF version %u is not supported, expected 2 or 3", g->path, g->version);
        goto fail;
    }
    if (rd_u64(&c, &nt, "tensor count") || rd_u64(&c, &nkv, "key/value count")) goto fail;
    // Every key/value takes at least 12 bytes and every tensor info at least 24: bound the counts
    // by the file size before allocating.
    if (nkv > (size - c.pos) / 12 || nt > (size - c.pos) / 24 || nkv > INT32_MAX || nt > INT32_MAX) {
        paw_error("%s: GGUF header claims %llu key/values and %llu tensors, more than the %zu-byte file can hold",
                  g->path, (unsigned long long)nkv, (unsigned long long)nt, size);
        goto fail;
    }
    g->kv = xcalloc((size_t)nkv ? (size_t)nkv : 1, sizeof(GgufKV));
    for (uint64_t i = 0; i < nkv; i++) {
        g->nkv = (int)i + 1;  // so that gguf_close frees a partly parsed entry
        if (parse_kv(&c, &g->kv[i], (int)i)) goto fail;
        for (uint64_t j = 0; j < i; j++)
            if (strcmp(g->kv[j].key, g->kv[i].key) == 0) {
                paw_error("%s: duplicate key '%s'", g->path, g->kv[i].key);
                goto fail;
            }
    }
    const GgufKV *al = gguf_find_kv(g, "general.alignment");
    if (al) {
        if (al->type != GGUF_TYPE_UINT32 || al->u64 == 0 || (al->u64 & (al->u64 - 1))) {
            paw_error("%s: general.alignment must be a uint32 power of two, found %s %llu", g->path,
                      gguf_type_name(al->type), (unsigned long long)al->u64);
            goto fail;
        }
        g->alignment = (uint32_t)al->u64;
    }
    g->tensors = xcalloc((size_t)nt ? (size_t)nt : 1, sizeof(GgufTensor));
    for (uint64_t i = 0; i < nt; i++) {
        g->ntensors = (int)i + 1;
        if (parse_tensor_info(&c, &g->tensors[i], (int)i)) goto fail;
        for (uint64_t j = 0; j < i; j++)
            if (strcmp(g->tensors[j].name, g->tensors[i].name) == 0) {
                paw_error("%s: duplicate tensor '%s'", g->path, g->tensors[i].name);
                goto fail;
            }
    }
    // The data section starts at the next multiple of the alignment (it may be absent when
    // there are no tensors).
    size_t rem = c.pos % g->alignment;
    g->data_offset = c.pos + (rem ? g->alignment - rem : 0);
    if (nt && g->data_offset > size) {
        paw_error("%s: truncated GGUF: data section starts at %zu, file has %zu bytes", g->path, g->data_offset, size);
        goto fail;
    }
    size_t avail = nt ? size - g->data_offset : 0;
    for (int i = 0; i < g->ntensors; i++) {
        GgufTensor *t = &g->tensors[i];
        if (t->offset % g->alignment) {
            paw_error("%s: tensor '%s': data offset %llu is not a multiple of the alignment %u", g->path, t->name,
                      (unsigned long long)t->offset, g->alignment);
            goto fail;
        }
        if (t->offset > avail || t->nbytes > avail - t->offset) {
            paw_error("%s: tensor '%s': data [%llu, %llu) lies outside the %zu-byte data section (truncated file?)",
                      g->path, t->name, (unsigned long long)t->offset,
                      (unsigned long long)(t->offset + t->nbytes), avail);
            goto fail;
        }
        t->data = data + g->data_offset + t->offset;
    }
    return 0;
fail:
    gguf_close(g);  // the mapping is attached by gguf_open only after a successful parse
    return -1;
}

int gguf_open(Gguf *g, const char *path) {
    PawMap map;
    memset(g, 0, sizeof *g);
    if (paw_map_file(path, &map) != 0) return -1;
    if (gguf_parse(g, map.data, map.size, path) != 0) {
        paw_unmap(&map);
        return -1;
    }
    g->map = map;
    return 0;
}

const GgufKV *gguf_find_kv(const Gguf *g, const char *key) {
    for (int i = 0; i < g->nkv; i++)
        if (strcmp(g->kv[i].key, key) == 0) return &g->kv[i];
    return NULL;
}

const GgufTensor *gguf_find_tensor(const Gguf *g, const char *name) {
    for (int i = 0; i < g->ntensors; i++)
        if (strcmp(g->tensors[i].name, name) == 0) return &g->tensors[i];
    return NULL;
}

const char *gguf_get_str(const Gguf *g, const char *key) {
    const GgufKV *kv = gguf_find_kv(g, key);
    return kv && kv->type == GGUF_TYPE_STRING ? kv->str : NULL;
}

int gguf_get_number(const Gguf *g, const char *key, double *out) {
    const GgufKV *kv = gguf_find_kv(g, key);
    if (!kv) return paw_error("%s: missing key '%s'", g->path, key);
    if (kv->type == GGUF_TYPE_STRING || kv->type == GGUF_TYPE_ARRAY)
        return paw_error("%s: key '%s' is a %s, expected a number", g->path, key, gguf_type_name(kv->type));
    *out = kv->f64;
    return 0;
}

int gguf_tensor_to_f32(const Gguf *g, const GgufTensor *t, float *dst) {
    const uint8_t *src = t->data;
    int64_t n = t->numel;
    switch (t->type) {
    case GGML_TYPE_F32:
        if (t->nbytes) memcpy(dst, src, t->nbytes);  // little-endian host
        return 0;
    case GGML_TYPE_F16:
        for (int64_t i = 0; i < n; i++) dst[i] = st_f16_to_f32(le16(src + 2 * i));
        return 0;
    case GGML_TYPE_BF16:
        for (int64_t i = 0; i < n; i++) dst[i] = st_bf16_to_f32(le16(src + 2 * i));
        return 0;
    case GGML_TYPE_Q8_0: dequantize_q8_0(src, dst, n); return 0;
    case GGML_TYPE_Q4_0: dequantize_q4_0(src, dst, n); return 0;
    default:
        return paw_error("%s: tensor '%s': cannot convert type %s to F32, expected F32, F16, BF16, Q8_0 or Q4_0",
                         g && g->path ? g->path : "?", t->name, ggml_type_name(t->type));
    }
}

int gguf_tensor_to_q8(const Gguf *g, const GgufTensor *t, int8_t *q, float *d) {
    switch (t->type) {
    case GGML_TYPE_Q8_0: q8_0_to_q8(t->data, q, d, t->numel); return 0;
    case GGML_TYPE_Q4_0: q4_0_to_q8(t->data, q, d, t->numel); return 0;
    default:
        return paw_error("%s: tensor '%s': type %s is not held as Q8 blocks, expected Q8_0 or Q4_0",
                         g && g->path ? g->path : "?", t->name, ggml_type_name(t->type));
    }
}

// ---------------------------------------------------------------------------------------------
// Writer

typedef struct {
    uint8_t *p;
    size_t n, cap;
} Buf;

static void buf_put(Buf *b, const void *data, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        b->p = xrealloc(b->p, cap);
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, data, n);
    b->n += n;
}
static void buf_u32(Buf *b, uint32_t v) {
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    buf_put(b, x, 4);
}
static void buf_u64(Buf *b, uint64_t v) {
    buf_u32(b, (uint32_t)v);
    buf_u32(b, (uint32_t)(v >> 32));
}
static void buf_str(Buf *b, const char *s) {
    size_t n = strlen(s);
    buf_u64(b, n);
    buf_put(b, s, n);
}

struct GgufWriteKV {
    char *key;
    Buf value;  // u32 type + encoded value
};

struct GgufWriteTensor {
    char *name;
    int type, ndim;
    int64_t ne[GGUF_MAX_DIMS];
    uint8_t *data;
    size_t nbytes;
};

void gguf_writer_init(GgufWriter *w) {
    memset(w, 0, sizeof *w);
    w->alignment = GGUF_DEFAULT_ALIGNMENT;
}

void gguf_writer_free(GgufWriter *w) {
    for (int i = 0; i < w->nkv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].value.p);
    }
    free(w->kv);
    for (int i = 0; i < w->nt; i++) {
        free(w->t[i].name);
        free(w->t[i].data);
    }
    free(w->t);
    memset(w, 0, sizeof *w);
}

// Starts a key/value entry; NULL (+ paw_error) on a repeated or empty key.
static Buf *new_kv(GgufWriter *w, const char *key, uint32_t type) {
    if (!key || !*key) {
        paw_error("GGUF writer: empty key");
        return NULL;
    }
    for (int i = 0; i < w->nkv; i++)
        if (strcmp(w->kv[i].key, key) == 0) {
            paw_error("GGUF writer: key '%s' set twice", key);
            return NULL;
        }
    if (w->nkv == w->cap_kv) {
        w->cap_kv = w->cap_kv ? 2 * w->cap_kv : 16;
        w->kv = xrealloc(w->kv, (size_t)w->cap_kv * sizeof *w->kv);
    }
    struct GgufWriteKV *kv = &w->kv[w->nkv++];
    kv->key = xstrdup(key);
    kv->value = (Buf){0};
    buf_u32(&kv->value, type);
    return &kv->value;
}

int gguf_writer_set_str(GgufWriter *w, const char *key, const char *value) {
    Buf *b = new_kv(w, key, GGUF_TYPE_STRING);
    if (!b) return -1;
    buf_str(b, value ? value : "");
    return 0;
}

int gguf_writer_set_u32(GgufWriter *w, const char *key, uint32_t value) {
    Buf *b = new_kv(w, key, GGUF_TYPE_UINT32);
    if (!b) return -1;
    buf_u32(b, value);
    return 0;
}

int gguf_writer_set_i32(GgufWriter *w, const char *key, int32_t value) {
    Buf *b = new_kv(w, key, GGUF_TYPE_INT32);
    if (!b) return -1;
    buf_u32(b, (uint32_t)value);
    return 0;
}

int gguf_writer_set_u64(GgufWriter *w, const char *key, uint64_t value) {
    Buf *b = new_kv(w, key, GGUF_TYPE_UINT64);
    if (!b) return -1;
    buf_u64(b, value);
    return 0;
}

int gguf_writer_set_f32(GgufWriter *w, const char *key, float value) {
    Buf *b = new_kv(w, key, GGUF_TYPE_FLOAT32);
    if (!b) return -1;
    uint32_t u;
    memcpy(&u, &value, 4);
    buf_u32(b, u);
    return 0;
}

int gguf_writer_set_f64(GgufWriter *w, const char *key, double value) {
    Buf *b = new_kv(w, key, GGUF_TYPE_FLOAT64);
    if (!b) return -1;
    uint64_t u;
    memcpy(&u, &value, 8);
    buf_u64(b, u);
    return 0;
}

int gguf_writer_set_bool(GgufWriter *w, const char *key, int value) {
    Buf *b = new_kv(w, key, GGUF_TYPE_BOOL);
    if (!b) return -1;
    uint8_t v = value != 0;
    buf_put(b, &v, 1);
    return 0;
}

int gguf_writer_set_array(GgufWriter *w, const char *key, int elem_type, const void *data, uint64_t n) {
    if (elem_type < 0 || elem_type >= GGUF_TYPE_COUNT || kTypeSize[elem_type] == 0)
        return paw_error("GGUF writer: key '%s': array element type %s is not a number or bool", key,
                         gguf_type_name(elem_type));
    Buf *b = new_kv(w, key, GGUF_TYPE_ARRAY);
    if (!b) return -1;
    buf_u32(b, (uint32_t)elem_type);
    buf_u64(b, n);
    buf_put(b, data, (size_t)n * (size_t)kTypeSize[elem_type]);  // host is little-endian
    return 0;
}

int gguf_writer_set_str_array(GgufWriter *w, const char *key, const char *const *values, uint64_t n) {
    Buf *b = new_kv(w, key, GGUF_TYPE_ARRAY);
    if (!b) return -1;
    buf_u32(b, GGUF_TYPE_STRING);
    buf_u64(b, n);
    for (uint64_t i = 0; i < n; i++) buf_str(b, values[i] ? values[i] : "");
    return 0;
}

int gguf_writer_set_alignment(GgufWriter *w, uint32_t alignment) {
    if (alignment == 0 || (alignment & (alignment - 1)))
        return paw_error("GGUF writer: alignment %u is not a power of two", alignment);
    if (gguf_writer_set_u32(w, "general.alignment", alignment)) return -1;
    w->alignment = alignment;
    return 0;
}

// Validates name and shape; returns the byte size for type, or -1.
static int check_tensor(const GgufWriter *w, const char *name, int type, int ndim, const int64_t *ne,
                        size_t *nbytes) {
    if (!name || !*name || strlen(name) >= GGUF_MAX_NAME)
        return paw_error("GGUF writer: tensor name '%s' must have 1..%d bytes", name ? name : "", GGUF_MAX_NAME - 1);
    for (int i = 0; i < w->nt; i++)
        if (strcmp(w->t[i].name, name) == 0) return paw_error("GGUF writer: tensor '%s' added twice", name);
    if (ndim < 1 || ndim > GGUF_MAX_DIMS)
        return paw_error("GGUF writer: tensor '%s': %d dimensions, expected 1..%d", name, ndim, GGUF_MAX_DIMS);
    int bs, bb;
    if (ggml_type_layout(type, &bs, &bb) != 0) return paw_error("GGUF writer: tensor '%s': unknown type %d", name, type);
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        if (ne[d] < 0 || (ne[d] && numel > INT64_MAX / ne[d]))
            return paw_error("GGUF writer: tensor '%s': bad dimension %lld", name, (long long)ne[d]);
        numel *= ne[d];
    }
    if (ne[0] % bs)
        return paw_error("GGUF writer: tensor '%s': type %s needs ne[0] a multiple of %d, found %lld", name,
                         ggml_type_name(type), bs, (long long)ne[0]);
    *nbytes = ggml_type_nbytes(type, numel);
    return 0;
}

static void push_tensor(GgufWriter *w, const char *name, int type, int ndim, const int64_t *ne, uint8_t *data,
                        size_t nbytes) {
    if (w->nt == w->cap_t) {
        w->cap_t = w->cap_t ? 2 * w->cap_t : 64;
        w->t = xrealloc(w->t, (size_t)w->cap_t * sizeof *w->t);
    }
    struct GgufWriteTensor *t = &w->t[w->nt++];
    t->name = xstrdup(name);
    t->type = type;
    t->ndim = ndim;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = d < ndim ? ne[d] : 1;
    t->data = data;
    t->nbytes = nbytes;
}

int gguf_writer_add_tensor(GgufWriter *w, const char *name, int type, int ndim, const int64_t *ne, const void *data,
                           size_t nbytes) {
    size_t want;
    if (check_tensor(w, name, type, ndim, ne, &want)) return -1;
    if (nbytes != want)
        return paw_error("GGUF writer: tensor '%s': %zu bytes given, type %s and shape need %zu", name, nbytes,
                         ggml_type_name(type), want);
    uint8_t *copy = xmalloc(nbytes);
    if (nbytes) memcpy(copy, data, nbytes);
    push_tensor(w, name, type, ndim, ne, copy, nbytes);
    return 0;
}

int gguf_writer_add_tensor_f32(GgufWriter *w, const char *name, int type, int ndim, const int64_t *ne,
                               const float *x) {
    size_t nbytes;
    if (check_tensor(w, name, type, ndim, ne, &nbytes)) return -1;
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= ne[d];
    uint8_t *out = xmalloc(nbytes);
    switch (type) {
    case GGML_TYPE_F32: if (nbytes) memcpy(out, x, nbytes); break;
    case GGML_TYPE_F16: f32_to_f16_array(x, (uint16_t *)(void *)out, n); break;
    case GGML_TYPE_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = st_f32_to_bf16(x[i]);
            memcpy(out + 2 * i, &h, 2);
        }
        break;
    case GGML_TYPE_Q8_0: quantize_q8_0(x, out, n); break;
    case GGML_TYPE_Q4_0: quantize_q4_0(x, out, n); break;
    default:
        free(out);
        return paw_error("GGUF writer: tensor '%s': cannot convert F32 to %s, expected F32, F16, BF16, Q8_0 or Q4_0",
                         name, ggml_type_name(type));
    }
    push_tensor(w, name, type, ndim, ne, out, nbytes);
    return 0;
}

static size_t pad_to(size_t n, size_t a) { return (n + a - 1) / a * a; }

int gguf_writer_serialize(const GgufWriter *w, uint8_t **out, size_t *size) {
    Buf b = {0};
    buf_put(&b, "GGUF", 4);
    buf_u32(&b, 3);
    buf_u64(&b, (uint64_t)w->nt);
    buf_u64(&b, (uint64_t)w->nkv);
    for (int i = 0; i < w->nkv; i++) {
        buf_str(&b, w->kv[i].key);
        buf_put(&b, w->kv[i].value.p, w->kv[i].value.n);
    }
    size_t offset = 0;
    for (int i = 0; i < w->nt; i++) {
        const struct GgufWriteTensor *t = &w->t[i];
        buf_str(&b, t->name);
        buf_u32(&b, (uint32_t)t->ndim);
        for (int d = 0; d < t->ndim; d++) buf_u64(&b, (uint64_t)t->ne[d]);
        buf_u32(&b, (uint32_t)t->type);
        buf_u64(&b, offset);
        offset += pad_to(t->nbytes, w->alignment);
    }
    static const uint8_t zeros[256] = {0};
    size_t total = pad_to(b.n, w->alignment) + offset;
    // Reserve once: adapters are tens of MB.
    if (total > b.cap) {
        b.p = xrealloc(b.p, total);
        b.cap = total;
    }
    for (size_t pad = pad_to(b.n, w->alignment) - b.n; pad;) {
        size_t k = pad < sizeof zeros ? pad : sizeof zeros;
        buf_put(&b, zeros, k);
        pad -= k;
    }
    for (int i = 0; i < w->nt; i++) {
        buf_put(&b, w->t[i].data, w->t[i].nbytes);
        for (size_t pad = pad_to(w->t[i].nbytes, w->alignment) - w->t[i].nbytes; pad;) {
            size_t k = pad < sizeof zeros ? pad : sizeof zeros;
            buf_put(&b, zeros, k);
            pad -= k;
        }
    }
    *out = b.p;
    *size = b.n;
    return 0;
}

int gguf_writer_write(const GgufWriter *w, const char *path) {
    uint8_t *data;
    size_t n;
    if (gguf_writer_serialize(w, &data, &n)) return -1;
    int rc = paw_write_file_atomic(path, data, n);
    free(data);
    return rc;
}
