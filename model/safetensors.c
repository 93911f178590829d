#include "model/safetensors.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

// The format is little-endian; so is every machine this project targets.
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

// Same cap as the reference reader: a header larger than this is a corrupt length, not a model.
#define ST_MAX_HEADER ((uint64_t)100000000)
// Shapes and offsets travel as JSON numbers (doubles in cJSON): beyond 2^53 they are not exact.
#define ST_MAX_JSON_INT 9007199254740992.0

static const char *const dtype_names[ST_NDTYPES] = {"F32", "F16", "BF16", "I32", "I64", "U8", "I8", "F64", "BOOL"};
static const size_t dtype_sizes[ST_NDTYPES] = {4, 2, 2, 4, 8, 1, 1, 8, 1};

const char *st_dtype_name(StDtype d) { return (unsigned)d < ST_NDTYPES ? dtype_names[d] : "?"; }
size_t st_dtype_size(StDtype d) { return (unsigned)d < ST_NDTYPES ? dtype_sizes[d] : 0; }

static int dtype_from_name(const char *s, StDtype *out) {
    for (int i = 0; i < ST_NDTYPES; i++)
        if (strcmp(s, dtype_names[i]) == 0) {
            *out = (StDtype)i;
            return 0;
        }
    return -1;
}

// ---------------------------------------------------------------------------------------------
// Conversions

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t st_f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    // NaN: truncating could clear every mantissa bit and give inf, so force the quiet bit.
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u);
    // Round to nearest, ties to even; a carry into the exponent is the correct rounding (up to inf).
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}


uint16_t st_f32_to_f16(float f) {
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));  // NaN stays NaN
    if (a == 0x7f800000u) return (uint16_t)(sign | 0x7c00u);
    int exp = (int)(a >> 23) - 127 + 15;  // biased half exponent
    if (exp >= 31) return (uint16_t)(sign | 0x7c00u);
    if (exp <= 0) {
        // Half subnormal (unit 2^-24), or zero when below half of the smallest one.
        if (exp < -10) return sign;
        uint32_t m = (a & 0x7fffffu) | 0x800000u;
        int shift = 14 - exp;  // 14..24
        uint32_t h = m >> shift, rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1u))) h++;  // may become the smallest normal: still right
        return (uint16_t)(sign | h);
    }
    uint32_t h = ((uint32_t)exp << 10) | ((a >> 13) & 0x3ffu), rem = a & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;  // a carry rounds up to the next binade or inf
    return (uint16_t)(sign | h);
}

float st_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) {
        if (m == 0) return bits_f32(sign);
        // Subnormal: normalise so that it becomes an ordinary fp32 number.
        int ee = 1;
        while (!(m & 0x400u)) {
            m <<= 1;
            ee--;
        }
        return bits_f32(sign | ((uint32_t)(ee + 112) << 23) | ((m & 0x3ffu) << 13));
    }
    if (e == 31) return bits_f32(sign | 0x7f800000u | (m << 13));
    return bits_f32(sign | ((e + 112) << 23) | (m << 13));
}

int st_to_f32(const SafeTensors *st, const StTensor *t, float *dst) {
    const char *path = st && st->path ? st->path : "?";
    int64_t n = t->numel;
    const uint8_t *src = t->data;
    switch (t->dtype) {
    case ST_F32:
        if (t->nbytes) memcpy(dst, src, t->nbytes);
        return 0;
    case ST_F16:
#pragma omp parallel for schedule(static) if (n > (1 << 16))
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);  // the mapping gives no alignment guarantee
            dst[i] = st_f16_to_f32(h);
        }
        return 0;
    case ST_BF16:
#pragma omp parallel for schedule(static) if (n > (1 << 16))
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = st_bf16_to_f32(h);
        }
        return 0;
    default:
        return paw_error("%s: tensor '%s': cannot convert dtype %s to F32, expected F32, F16 or BF16", path,
                         t->name, st_dtype_name(t->dtype));
    }
}

// ---------------------------------------------------------------------------------------------
// Reading

static int json_nonneg_int(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0) || d > ST_MAX_JSON_INT || d != floor(d)) return -1;
    *out = (uint64_t)d;
    return 0;
}

static int cmp_offset(const void *a, const void *b) {
    const StTensor *x = a, *y = b;
    if (x->data != y->data) return x->data < y->data ? -1 : 1;
    if (x->nbytes != y->nbytes) return x->nbytes < y->nbytes ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int cmp_name_ptr(const void *a, const void *b) {
    const StTensor *x = *(const StTensor *const *)a, *y = *(const StTensor *const *)b;
    return strcmp(x->name, y->name);
}

// Parses one tensor entry; data is the start of the data section, data_size its length.
static int parse_tensor(const char *path, const cJSON *item, const uint8_t *data, size_t data_size, StTensor *t) {
    const char *name = item->string;
    if (!cJSON_IsObject(item)) return paw_error("%s: tensor '%s': entry is not a JSON object", path, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    if (!cJSON_IsString(dt)) return paw_error("%s: tensor '%s': missing or non-string \"dtype\"", path, name);
    if (dtype_from_name(dt->valuestring, &t->dtype) != 0)
        return paw_error("%s: tensor '%s': unknown dtype \"%.40s\", expected one of F32 F16 BF16 I32 I64 U8 I8 F64 BOOL",
                         path, name, dt->valuestring);

    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    if (!cJSON_IsArray(shape)) return paw_error("%s: tensor '%s': missing or non-array \"shape\"", path, name);
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > ST_MAX_DIMS)
        return paw_error("%s: tensor '%s': %d dimensions, at most %d supported", path, name, ndim, ST_MAX_DIMS);
    t->ndim = ndim;
    uint64_t numel = 1;
    int overflow = 0, k = 0;
    const cJSON *dim;
    cJSON_ArrayForEach(dim, shape) {
        uint64_t d;
        if (json_nonneg_int(dim, &d) != 0)
            return paw_error("%s: tensor '%s': shape[%d] is not a non-negative integer", path, name, k);
        t->shape[k++] = (int64_t)d;
        if (d != 0 && numel > (uint64_t)INT64_MAX / d) overflow = 1;
        else numel *= d;
    }
    // A zero dimension makes the tensor empty whatever the others are.
    for (int i = 0; i < ndim; i++)
        if (t->shape[i] == 0) numel = 0, overflow = 0;
    size_t esize = st_dtype_size(t->dtype);
    if (overflow || numel > SIZE_MAX / esize)
        return paw_error("%s: tensor '%s': element count of the shape overflows", path, name);
    t->numel = (int64_t)numel;

    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    uint64_t begin, end;
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 || json_nonneg_int(cJSON_GetArrayItem(offs, 0), &begin) ||
        json_nonneg_int(cJSON_GetArrayItem(offs, 1), &end))
        return paw_error("%s: tensor '%s': \"data_offsets\" missing or not 2 non-negative integers", path, name);
    if (begin > end)
        return paw_error("%s: tensor '%s': data_offsets begin %llu > end %llu", path, name, (unsigned long long)begin,
                         (unsigned long long)end);
    if (end - begin != numel * esize)
        return paw_error("%s: tensor '%s': data_offsets span %llu bytes, expected %llu for %s shape with %llu elements",
                         path, name, (unsigned long long)(end - begin), (unsigned long long)(numel * esize),
                         st_dtype_name(t->dtype), (unsigned long long)numel);
    if (end > data_size)
        return paw_error("%s: tensor '%s': data_offsets [%llu, %llu] past the end of the data section (%zu bytes)",
                         path, name, (unsigned long long)begin, (unsigned long long)end, data_size);
    t->data = data + begin;
    t->nbytes = (size_t)(end - begin);
    t->name = xstrdup(name);
    return 0;
}

static int parse_metadata(SafeTensors *st, const cJSON *meta) {
    if (!cJSON_IsObject(meta)) return paw_error("%s: \"__metadata__\" is not a JSON object", st->path);
    int n = cJSON_GetArraySize(meta);
    st->meta_keys = xcalloc((size_t)n + 1, sizeof(char *));
    st->meta_values = xcalloc((size_t)n + 1, sizeof(char *));
    const cJSON *kv;
    cJSON_ArrayForEach(kv, meta) {
        if (!cJSON_IsString(kv))
            return paw_error("%s: \"__metadata__\" value for key '%s' is not a string", st->path, kv->string);
        for (int i = 0; i < st->nmeta; i++)
            if (strcmp(st->meta_keys[i], kv->string) == 0)
                return paw_error("%s: \"__metadata__\" has duplicate key '%s'", st->path, kv->string);
        st->meta_keys[st->nmeta] = xstrdup(kv->string);
        st->meta_values[st->nmeta] = xstrdup(kv->valuestring);
        st->nmeta++;
    }
    return 0;
}

static int parse_header(SafeTensors *st, const char *json, const uint8_t *data, size_t data_size) {
    const char *path = st->path;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(json, &end, 1);
    if (!root) {
        size_t at = end ? (size_t)(end - json) : 0;
        return paw_error("%s: header is not valid JSON (error near byte %zu of the header)", path, at);
    }
    int rc = 0;
    if (!cJSON_IsObject(root)) {
        rc = paw_error("%s: header is not a JSON object", path);
        goto done;
    }
    int n = cJSON_GetArraySize(root);
    st->tensors = xcalloc((size_t)n + 1, sizeof(StTensor));
    int seen_meta = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, root) {
        if (strcmp(item->string, "__metadata__") == 0) {
            if (seen_meta++) {
                rc = paw_error("%s: duplicate \"__metadata__\"", path);
                goto done;
            }
            if ((rc = parse_metadata(st, item)) != 0) goto done;
            continue;
        }
        if ((rc = parse_tensor(path, item, data, data_size, &st->tensors[st->ntensors])) != 0) goto done;
        st->ntensors++;
    }

    // Duplicate names: cJSON keeps both entries, so look for equal neighbours in name order.
    if (st->ntensors > 1) {
        const StTensor **by_name = xmalloc((size_t)st->ntensors * sizeof *by_name);
        for (int i = 0; i < st->ntensors; i++) by_name[i] = &st->tensors[i];
        qsort(by_name, (size_t)st->ntensors, sizeof *by_name, cmp_name_ptr);
        for (int i = 1; i < st->ntensors && rc == 0; i++)
            if (strcmp(by_name[i - 1]->name, by_name[i]->name) == 0)
                rc = paw_error("%s: tensor '%s': duplicate tensor name", path, by_name[i]->name);
        free(by_name);
        if (rc) goto done;
    }

    // Like the reference reader: tensors must tile the data section exactly, in offset order,
    // with no overlap, no hole and nothing left over at the end.
    qsort(st->tensors, (size_t)st->ntensors, sizeof(StTensor), cmp_offset);
    size_t pos = 0;
    for (int i = 0; i < st->ntensors; i++) {
        const StTensor *t = &st->tensors[i];
        size_t b = (size_t)(t->data - data);
        if (b < pos) {
            rc = paw_error("%s: tensor '%s': data_offsets [%zu, %zu] overlap the previous tensor '%s' (ends at %zu)",
                           path, t->name, b, b + t->nbytes, st->tensors[i - 1].name, pos);
            goto done;
        }
        if (b > pos) {
            rc = paw_error("%s: tensor '%s': data_offsets begin %zu leaves a hole after byte %zu of the data section",
                           path, t->name, b, pos);
            goto done;
        }
        pos = b + t->nbytes;
    }
    if (pos != data_size)
        rc = paw_error("%s: data section is %zu bytes but the tensors cover %zu (trailing bytes)", path, data_size, pos);
done:
    cJSON_Delete(root);
    return rc;
}

int st_open(SafeTensors *st, const char *path) {
    memset(st, 0, sizeof *st);
    st->path = xstrdup(path);
    if (paw_map_file(path, &st->map) != 0) {
        free(st->path);
        st->path = NULL;
        return -1;
    }
    const uint8_t *buf = st->map.data;
    size_t size = st->map.size;
    int rc = 0;
    char *json = NULL;
    if (size < 8) {
        rc = paw_error("%s: file is %zu bytes, too short for the 8-byte header length", path, size);
        goto fail;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | buf[i];
    if (hlen > ST_MAX_HEADER) {
        rc = paw_error("%s: header length %llu is larger than the %llu-byte limit (corrupt file?)", path,
                       (unsigned long long)hlen, (unsigned long long)ST_MAX_HEADER);
        goto fail;
    }
    if (hlen > size - 8) {
        rc = paw_error("%s: header length %llu runs past the end of the file (%zu bytes)", path,
                       (unsigned long long)hlen, size);
        goto fail;
    }
    if (hlen < 2 || buf[8] != '{') {
        rc = paw_error("%s: header does not start with '{'", path);
        goto fail;
    }
    json = xmalloc((size_t)hlen + 1);
    memcpy(json, buf + 8, (size_t)hlen);
    json[hlen] = 0;
    if (strlen(json) != (size_t)hlen) {
        rc = paw_error("%s: header contains a NUL byte at offset %zu", path, strlen(json));
        goto fail;
    }
    if ((rc = parse_header(st, json, buf + 8 + hlen, size - 8 - (size_t)hlen)) != 0) goto fail;
    free(json);
    return 0;
fail:
    free(json);
    st_close(st);
    return rc;
}

void st_close(SafeTensors *st) {
    if (st->tensors)
        for (int i = 0; i < st->ntensors; i++) free(st->tensors[i].name);
    free(st->tensors);
    for (int i = 0; i < st->nmeta; i++) {
        free(st->meta_keys[i]);
        free(st->meta_values[i]);
    }
    free(st->meta_keys);
    free(st->meta_values);
    paw_unmap(&st->map);
    free(st->path);
    memset(st, 0, sizeof *st);
}

const StTensor *st_find(const SafeTensors *st, const char *name) {
    for (int i = 0; i < st->ntensors; i++)
        if (strcmp(st->tensors[i].name, name) == 0) return &st->tensors[i];
    return NULL;
}

const char *st_meta(const SafeTensors *st, const char *key) {
    for (int i = 0; i < st->nmeta; i++)
        if (strcmp(st->meta_keys[i], key) == 0) return st->meta_values[i];
    return NULL;
}

// ---------------------------------------------------------------------------------------------
// Writing

typedef struct {
    char *p;
    size_t n, cap;
} StrBuf;

static void sb_put(StrBuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        while (b->n + n + 1 > b->cap) b->cap = b->cap ? b->cap * 2 : 256;
        b->p = xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static void sb_str(StrBuf *b, const char *s) { sb_put(b, s, strlen(s)); }

// A JSON string literal: quotes, backslashes and control characters escaped, UTF-8 kept as is.
static void sb_json_string(StrBuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c;
            sb_put(b, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            sb_put(b, esc, 6);
        } else {
            sb_put(b, (const char *)&c, 1);
        }
    }
    sb_put(b, "\"", 1);
}

static void sb_u64(StrBuf *b, uint64_t v) {
    char tmp[24];
    snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
    sb_str(b, tmp);
}

int st_write(const char *path, const StWriteTensor *tensors, int n, const char *const *meta_kv, int n_meta) {
    if (n < 0 || n_meta < 0) return paw_error("%s: negative tensor or metadata count", path);
    size_t *nbytes = xcalloc((size_t)n + 1, sizeof(size_t));
    StrBuf h = {0};
    int rc = 0;
    sb_str(&h, "{");
    if (n_meta > 0) {
        sb_str(&h, "\"__metadata__\":{");
        for (int i = 0; i < n_meta; i++) {
            const char *k = meta_kv[2 * i], *v = meta_kv[2 * i + 1];
            if (!k || !v) {
                rc = paw_error("%s: metadata pair %d has a NULL key or value", path, i);
                goto out;
            }
            for (int j = 0; j < i; j++)
                if (strcmp(meta_kv[2 * j], k) == 0) {
                    rc = paw_error("%s: duplicate metadata key '%s'", path, k);
                    goto out;
                }
            if (i) sb_str(&h, ",");
            sb_json_string(&h, k);
            sb_str(&h, ":");
            sb_json_string(&h, v);
        }
        sb_str(&h, "}");
    }
    uint64_t offset = 0;
    for (int i = 0; i < n; i++) {
        const StWriteTensor *t = &tensors[i];
        if (!t->name || !*t->name || strcmp(t->name, "__metadata__") == 0) {
            rc = paw_error("%s: tensor %d has an empty or reserved name", path, i);
            goto out;
        }
        for (int j = 0; j < i; j++)
            if (strcmp(tensors[j].name, t->name) == 0) {
                rc = paw_error("%s: tensor '%s': duplicate tensor name", path, t->name);
                goto out;
            }
        if ((unsigned)t->dtype >= ST_NDTYPES) {
            rc = paw_error("%s: tensor '%s': invalid dtype %d", path, t->name, (int)t->dtype);
            goto out;
        }
        if (t->ndim < 0 || t->ndim > ST_MAX_DIMS) {
            rc = paw_error("%s: tensor '%s': %d dimensions, expected 0..%d", path, t->name, t->ndim, ST_MAX_DIMS);
            goto out;
        }
        uint64_t numel = 1;
        int overflow = 0, empty = 0;
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] < 0) {
                rc = paw_error("%s: tensor '%s': negative shape[%d] = %lld", path, t->name, d, (long long)t->shape[d]);
                goto out;
            }
            uint64_t s = (uint64_t)t->shape[d];
            if (s == 0) empty = 1;
            else if (numel > (uint64_t)INT64_MAX / s) overflow = 1;
            else numel *= s;
        }
        if (empty) numel = 0, overflow = 0;
        size_t es = st_dtype_size(t->dtype);
        if (overflow || numel > (SIZE_MAX - offset) / es || (double)(offset + numel * es) > ST_MAX_JSON_INT) {
            rc = paw_error("%s: tensor '%s': size overflows", path, t->name);
            goto out;
        }
        nbytes[i] = (size_t)(numel * es);
        if (nbytes[i] && !t->data) {
            rc = paw_error("%s: tensor '%s': NULL data", path, t->name);
            goto out;
        }
        if (h.n > 1) sb_str(&h, ",");
        sb_json_string(&h, t->name);
        sb_str(&h, ":{\"dtype\":\"");
        sb_str(&h, st_dtype_name(t->dtype));
        sb_str(&h, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            if (d) sb_str(&h, ",");
            sb_u64(&h, (uint64_t)t->shape[d]);
        }
        sb_str(&h, "],\"data_offsets\":[");
        sb_u64(&h, offset);
        sb_str(&h, ",");
        sb_u64(&h, offset + nbytes[i]);
        sb_str(&h, "]}");
        offset += nbytes[i];
    }
    sb_str(&h, "}");
    // Pad with spaces so the data section starts 8-byte aligned, as the reference writer does.
    while (h.n % 8) sb_str(&h, " ");

    uint8_t len_le[8];
    for (int i = 0; i < 8; i++) len_le[i] = (uint8_t)((uint64_t)h.n >> (8 * i));
    PawAtomicFile af;
    if ((rc = paw_atomic_open(&af, path)) != 0) goto out;
    rc = paw_atomic_write(&af, len_le, 8);
    if (rc == 0) rc = paw_atomic_write(&af, h.p, h.n);
    for (int i = 0; i < n && rc == 0; i++) rc = paw_atomic_write(&af, tensors[i].data, nbytes[i]);
    if (rc == 0) rc = paw_atomic_commit(&af);
    else paw_atomic_abort(&af);
out:
    free(h.p);
    free(nbytes);
    return rc;
}
