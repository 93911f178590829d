#include "interpreter/program.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zip.h>

#include "common/error.h"
#include "common/fileio.h"
#include "common/json.h"
#include "common/sha256.h"
#include "data/template.h"
#include "kernels/quant.h"
#include "model/gguf.h"

#define MEMBER_ADAPTER "adapter.gguf"
#define MEMBER_TEMPLATE "prompt_template.txt"
#define MEMBER_META "meta.json"
#define MEMBER_PEFT "adapter_config.json"

// Size limits on what a bundle member may claim before we allocate for it.
#define MAX_TEXT_MEMBER ((zip_uint64_t)256 << 20)
#define MAX_ADAPTER_MEMBER ((zip_uint64_t)16 << 30)

// llama.cpp's tensor names for Qwen3's projections, in our module order (sorted HF names).
static const char *const kGgufModule[LORA_NUM_MODULES] = {
    "ffn_down", "ffn_gate", "attn_k", "attn_output", "attn_q", "ffn_up", "attn_v",
};

void paw_lora_gguf_name(int l, int m, const char *suffix, char *buf, size_t n) {
    snprintf(buf, n, "blk.%d.%s.weight%s", l, kGgufModule[m], suffix ? suffix : "");
}

void paw_program_free(PawProgram *p) {
    if (!p) return;
    free(p->spec);
    free(p->interpreter);
    free(p->template_text);
    free(p->pseudo_program);
    free(p->compiler);
    free(p->created_at);
    free(p->program_id);
    for (int m = 0; m < LORA_NUM_MODULES; m++) {
        free(p->A[m]);
        free(p->B[m]);
        free(p->qA[m]);
        free(p->qB[m]);
        free(p->qAd[m]);
        free(p->qBd[m]);
    }
    memset(p, 0, sizeof *p);
}

void paw_program_lora_view(const PawProgram *p, Qwen3Lora *lora) {
    memset(lora, 0, sizeof *lora);
    lora->rank = p->rank;
    lora->scale = p->rank > 0 ? p->alpha / (float)p->rank : 0.0f;
    lora->nb = 1;
    for (int m = 0; m < LORA_NUM_MODULES; m++) {
        lora->A[m] = p->A[m];
        lora->B[m] = p->B[m];
        lora->qA[m] = p->qA[m], lora->qAd[m] = p->qAd[m];
        lora->qB[m] = p->qB[m], lora->qBd[m] = p->qBd[m];
    }
}

// Fields of the interpreter shape recorded in meta.json, by their config.json names.
typedef struct {
    const char *name;
    size_t offset;
} ShapeField;
static const ShapeField kShapeFields[] = {
    {"num_hidden_layers", offsetof(Qwen3Config, num_layers)},
    {"hidden_size", offsetof(Qwen3Config, hidden_size)},
    {"intermediate_size", offsetof(Qwen3Config, intermediate_size)},
    {"num_attention_heads", offsetof(Qwen3Config, num_heads)},
    {"num_key_value_heads", offsetof(Qwen3Config, num_kv_heads)},
    {"head_dim", offsetof(Qwen3Config, head_dim)},
    {"vocab_size", offsetof(Qwen3Config, vocab_size)},
};
#define NUM_SHAPE_FIELDS ((int)(sizeof kShapeFields / sizeof kShapeFields[0]))
static int *shape_field(Qwen3Config *c, int i) { return (int *)(void *)((char *)c + kShapeFields[i].offset); }
static int shape_value(const Qwen3Config *c, int i) {
    return *(const int *)(const void *)((const char *)c + kShapeFields[i].offset);
}

// ---------------------------------------------------------------------------------------------
// Writing

// Builds adapter.gguf in memory.
static int build_adapter(const PawProgram *p, int dtype, uint8_t **out, size_t *size, int *n_fallback) {
    const Qwen3Config *c = &p->shape;
    int L = c->num_layers, r = p->rank;
    GgufWriter w;
    gguf_writer_init(&w);
    int rc = gguf_writer_set_str(&w, "general.architecture", "qwen3");
    rc |= gguf_writer_set_str(&w, "general.type", "adapter");
    rc |= gguf_writer_set_str(&w, "general.name", "paw program");
    rc |= gguf_writer_set_str(&w, "adapter.type", "lora");
    rc |= gguf_writer_set_f32(&w, "adapter.lora.alpha", p->alpha);
    // The interpreter's shape, as convert_lora_to_gguf.py also records it (llama.cpp ignores it).
    rc |= gguf_writer_set_u32(&w, "qwen3.block_count", (uint32_t)L);
    rc |= gguf_writer_set_u32(&w, "qwen3.embedding_length", (uint32_t)c->hidden_size);
    rc |= gguf_writer_set_u32(&w, "qwen3.feed_forward_length", (uint32_t)c->intermediate_size);
    rc |= gguf_writer_set_u32(&w, "qwen3.attention.head_count", (uint32_t)c->num_heads);
    rc |= gguf_writer_set_u32(&w, "qwen3.attention.head_count_kv", (uint32_t)c->num_kv_heads);
    rc |= gguf_writer_set_u32(&w, "qwen3.attention.key_length", (uint32_t)c->head_dim);
    rc |= gguf_writer_set_u32(&w, "qwen3.attention.value_length", (uint32_t)c->head_dim);
    *n_fallback = 0;
    for (int l = 0; l < L && rc == 0; l++) {
        for (int m = 0; m < LORA_NUM_MODULES && rc == 0; m++) {
            int din, dout;
            lora_module_dims(c, m, &din, &dout);
            char name[GGUF_MAX_NAME];
            // lora_a: A [r, d_in] row-major = ggml ne [d_in, r]; lora_b: B [d_out, r] = ne [r, d_out].
            int64_t ne_a[2] = {din, r}, ne_b[2] = {r, dout};
            int ta = dtype, tb = dtype;
            if ((dtype == GGML_TYPE_Q4_0 || dtype == GGML_TYPE_Q8_0)) {
                if (din % 32) ta = GGML_TYPE_F16, ++*n_fallback;
                if (r % 32) tb = GGML_TYPE_F16, ++*n_fallback;
            }
            paw_lora_gguf_name(l, m, ".lora_a", name, sizeof name);
            rc = gguf_writer_add_tensor_f32(&w, name, ta, 2, ne_a, p->A[m] + (size_t)l * r * din);
            if (rc) break;
            paw_lora_gguf_name(l, m, ".lora_b", name, sizeof name);
            rc = gguf_writer_add_tensor_f32(&w, name, tb, 2, ne_b, p->B[m] + (size_t)l * dout * r);
        }
    }
    if (rc == 0) rc = gguf_writer_serialize(&w, out, size);
    gguf_writer_free(&w);
    return rc ? -1 : 0;
}

static void content_hash(const uint8_t *adapter, size_t na, const char *tmpl, size_t nt, char hex[65]) {
    PawSha256 s;
    uint8_t d[32];
    paw_sha256_init(&s);
    paw_sha256_update(&s, adapter, na);
    paw_sha256_update(&s, tmpl, nt);
    paw_sha256_final(&s, d);
    paw_sha256_hex(d, hex);
}

static char *now_iso8601(void) {
    time_t t = time(NULL);
    struct tm tm;
    char buf[32];
    gmtime_r(&t, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return xstrdup(buf);
}

static char *build_meta(const PawProgram *p, int dtype, int n_fallback, const char *hash) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "format", "paw-program");
    cJSON_AddNumberToObject(o, "format_version", PAW_PROGRAM_FORMAT_VERSION);
    cJSON_AddStringToObject(o, "program_id", hash);
    cJSON_AddStringToObject(o, "content_sha256", hash);
    cJSON_AddStringToObject(o, "spec", p->spec ? p->spec : "");
    if (p->pseudo_program) cJSON_AddStringToObject(o, "pseudo_program", p->pseudo_program);
    cJSON_AddStringToObject(o, "interpreter", p->interpreter);
    cJSON_AddNumberToObject(o, "lora_rank", p->rank);
    cJSON_AddNumberToObject(o, "lora_alpha", p->alpha);
    cJSON_AddNumberToObject(o, "prefix_steps", p->prefix_steps);
    cJSON_AddStringToObject(o, "compiler", p->compiler ? p->compiler : "");
    char *created = p->created_at ? xstrdup(p->created_at) : now_iso8601();
    cJSON_AddStringToObject(o, "created_at", created);
    free(created);
    cJSON_AddStringToObject(o, "adapter_format", "gguf_lora");
    cJSON_AddStringToObject(o, "adapter_dtype", ggml_type_name(dtype));
    if (n_fallback) {
        char note[160];
        snprintf(note, sizeof note, "%d tensors stored as F16: their rows are not a multiple of 32 values", n_fallback);
        cJSON_AddStringToObject(o, "adapter_dtype_note", note);
    }
    cJSON *shape = cJSON_AddObjectToObject(o, "interpreter_config");
    cJSON_AddStringToObject(shape, "model_type", "qwen3");
    for (int i = 0; i < NUM_SHAPE_FIELDS; i++)
        if (shape_value(&p->shape, i) > 0) cJSON_AddNumberToObject(shape, kShapeFields[i].name, shape_value(&p->shape, i));
    cJSON *mods = cJSON_AddArrayToObject(o, "target_modules");
    for (int m = 0; m < LORA_NUM_MODULES; m++) cJSON_AddItemToArray(mods, cJSON_CreateString(lora_module_names[m]));
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    if (!s) paw_die("out of memory printing meta.json");
    return s;
}

static char *build_peft_config(const PawProgram *p) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "base_model_name_or_path", p->interpreter);
    cJSON_AddStringToObject(o, "peft_type", "LORA");
    cJSON_AddStringToObject(o, "task_type", "CAUSAL_LM");
    cJSON_AddNumberToObject(o, "r", p->rank);
    cJSON_AddNumberToObject(o, "lora_alpha", p->alpha);
    cJSON_AddNumberToObject(o, "lora_dropout", 0.0);
    cJSON_AddStringToObject(o, "bias", "none");
    cJSON_AddBoolToObject(o, "fan_in_fan_out", 0);
    cJSON_AddBoolToObject(o, "inference_mode", 1);
    cJSON *mods = cJSON_AddArrayToObject(o, "target_modules");
    for (int m = 0; m < LORA_NUM_MODULES; m++) cJSON_AddItemToArray(mods, cJSON_CreateString(lora_module_names[m]));
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    if (!s) paw_die("out of memory printing adapter_config.json");
    return s;
}

static int zip_fail(const char *path, const char *what, zip_error_t *ze) {
    return paw_error("%s: %s: %s", path, what, zip_error_strerror(ze));
}

typedef struct {
    const char *name;
    const void *data;
    size_t size;
    int store;  // 1: no compression
} Member;

// Builds the ZIP in memory so that the file itself goes through the atomic writer.
static int build_zip(const char *path, const Member *mem, int n, uint8_t **out, size_t *size) {
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(NULL, 0, 0, &ze);
    if (!src) return zip_fail(path, "cannot create ZIP buffer", &ze);
    zip_t *za = zip_open_from_source(src, ZIP_TRUNCATE, &ze);
    if (!za) {
        int rc = zip_fail(path, "cannot open ZIP buffer", &ze);
        zip_source_free(src);
        zip_error_fini(&ze);
        return rc;
    }
    zip_source_keep(src);  // read the archive back after zip_close
    for (int i = 0; i < n; i++) {
        zip_source_t *s = zip_source_buffer(za, mem[i].data, mem[i].size, 0);
        zip_int64_t idx = s ? zip_file_add(za, mem[i].name, s, ZIP_FL_ENC_UTF_8 | ZIP_FL_OVERWRITE) : -1;
        if (idx < 0) {
            if (s) zip_source_free(s);
            int rc = paw_error("%s: cannot add %s: %s", path, mem[i].name, zip_strerror(za));
            zip_discard(za);
            zip_source_free(src);
            return rc;
        }
        if (mem[i].store) zip_set_file_compression(za, (zip_uint64_t)idx, ZIP_CM_STORE, 0);
    }
    if (zip_close(za) != 0) {
        int rc = paw_error("%s: cannot write ZIP: %s", path, zip_strerror(za));
        zip_discard(za);
        zip_source_free(src);
        return rc;
    }
    zip_stat_t st;
    if (zip_source_stat(src, &st) != 0 || !(st.valid & ZIP_STAT_SIZE) || zip_source_open(src) != 0) {
        int rc = paw_error("%s: cannot read back the ZIP buffer: %s", path, zip_error_strerror(zip_source_error(src)));
        zip_source_free(src);
        return rc;
    }
    uint8_t *buf = xmalloc(st.size ? (size_t)st.size : 1);
    zip_int64_t got = zip_source_read(src, buf, st.size);
    zip_source_close(src);
    zip_source_free(src);
    if (got < 0 || (zip_uint64_t)got != st.size) {
        free(buf);
        return paw_error("%s: short read of the ZIP buffer", path);
    }
    *out = buf;
    *size = (size_t)st.size;
    return 0;
}

// Adapter values the file can hold: finite, and for F16, Q8_0 and Q4_0 (whose fp16 block scales
// end at 65504 too, and which may fall back to F16) within fp16's range, not written as infinity.
static int check_writable(const char *path, int m, const char *ab, const float *v, size_t n, int dtype) {
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(v[i]))
            return paw_error("%s: module %s: %s holds a non-finite value at index %zu", path, lora_module_names[m], ab, i);
        if (dtype != GGML_TYPE_F32 && fabsf(v[i]) > 65504.0f)
            return paw_error("%s: module %s: %s holds %g, past fp16's range: write it with --adapter-dtype f32", path,
                             lora_module_names[m], ab, (double)v[i]);
    }
    return 0;
}

int paw_program_write(const char *path, const PawProgram *p, int adapter_dtype) {
    const Qwen3Config *c = &p->shape;
    if (adapter_dtype != GGML_TYPE_Q4_0 && adapter_dtype != GGML_TYPE_Q8_0 && adapter_dtype != GGML_TYPE_F16 &&
        adapter_dtype != GGML_TYPE_F32)
        return paw_error("%s: adapter dtype %s is not supported, expected Q4_0, Q8_0, F16 or F32", path,
                         ggml_type_name(adapter_dtype));
    if (!p->interpreter || !*p->interpreter) return paw_error("%s: program has no interpreter id", path);
    if (!p->template_text) return paw_error("%s: program has no prompt template", path);
    char *pre, *suf;
    if (paw_prompt_template_split(p->template_text, &pre, &suf) != 0) return paw_error_context("%s", path);
    free(pre);
    free(suf);
    if (p->rank <= 0 || p->rank > 4096) return paw_error("%s: LoRA rank %d, expected 1..4096", path, p->rank);
    if (!isfinite(p->alpha) || p->alpha == 0.0f) return paw_error("%s: LoRA alpha %g must be finite and non-zero", path, p->alpha);
    if (p->prefix_steps < 0) return paw_error("%s: prefix_steps %d must be >= 0", path, p->prefix_steps);
    if (c->num_layers <= 0 || c->hidden_size <= 0 || c->intermediate_size <= 0 || c->num_heads <= 0 ||
        c->num_kv_heads <= 0 || c->head_dim <= 0)
        return paw_error("%s: interpreter shape is incomplete (layers %d, hidden %d, intermediate %d, heads %d, "
                         "kv heads %d, head_dim %d)",
                         path, c->num_layers, c->hidden_size, c->intermediate_size, c->num_heads, c->num_kv_heads,
                         c->head_dim);
    if (p->L && p->L != c->num_layers)
        return paw_error("%s: program L = %d but the interpreter shape has %d layers", path, p->L, c->num_layers);
    for (int m = 0; m < LORA_NUM_MODULES; m++) {
        int din, dout;
        lora_module_dims(c, m, &din, &dout);
        if ((p->d_in[m] && p->d_in[m] != din) || (p->d_out[m] && p->d_out[m] != dout))
            return paw_error("%s: module %s is %dx%d, the interpreter shape needs d_in %d, d_out %d", path,
                             lora_module_names[m], p->d_in[m], p->d_out[m], din, dout);
        if (p->qA[m]) return paw_error("%s: module %s is held as Q8 blocks for inference, not fp32", path, lora_module_names[m]);
        if (!p->A[m] || !p->B[m]) return paw_error("%s: module %s has no A or B weights", path, lora_module_names[m]);
        size_t na = (size_t)c->num_layers * p->rank * din, nb = (size_t)c->num_layers * dout * p->rank;
        if (check_writable(path, m, "A", p->A[m], na, adapter_dtype) != 0 ||
            check_writable(path, m, "B", p->B[m], nb, adapter_dtype) != 0)
            return -1;
    }

    uint8_t *adapter = NULL, *zipbuf = NULL;
    size_t nadapter = 0, nzip = 0;
    int n_fallback = 0;
    if (build_adapter(p, adapter_dtype, &adapter, &nadapter, &n_fallback) != 0) return paw_error_context("%s", path);
    char hash[65];
    size_t ntmpl = strlen(p->template_text);
    content_hash(adapter, nadapter, p->template_text, ntmpl, hash);
    char *meta = build_meta(p, adapter_dtype, n_fallback, hash);
    char *peft = build_peft_config(p);
    Member mem[4] = {
        {MEMBER_ADAPTER, adapter, nadapter, 1},
        {MEMBER_TEMPLATE, p->template_text, ntmpl, 0},
        {MEMBER_META, meta, strlen(meta), 0},
        {MEMBER_PEFT, peft, strlen(peft), 0},
    };
    int rc = build_zip(path, mem, 4, &zipbuf, &nzip);
    if (rc == 0) rc = paw_write_file_atomic(path, zipbuf, nzip);
    free(adapter);
    free(zipbuf);
    free(meta);
    free(peft);
    return rc;
}

// ---------------------------------------------------------------------------------------------
// Reading

// Reads a member fully (NUL-terminated); CRC errors surface from the final read. *out NULL and
// return 1 when the member is absent and optional.
static int read_member(zip_t *za, const char *path, const char *name, int required, zip_uint64_t limit,
                       uint8_t **out, size_t *size) {
    *out = NULL;
    *size = 0;
    zip_int64_t idx = zip_name_locate(za, name, 0);
    if (idx < 0) idx = zip_name_locate(za, name, ZIP_FL_NODIR);  // published bundles may use a folder
    if (idx < 0) {
        if (!required) return 1;
        return paw_error("%s: missing member %s (a program bundle holds %s, %s and %s)", path, name, MEMBER_ADAPTER,
                         MEMBER_TEMPLATE, MEMBER_META);
    }
    zip_stat_t st;
    if (zip_stat_index(za, (zip_uint64_t)idx, 0, &st) != 0 || !(st.valid & ZIP_STAT_SIZE))
        return paw_error("%s: %s: cannot stat member: %s", path, name, zip_strerror(za));
    if (st.size > limit)
        return paw_error("%s: %s: member claims %llu bytes, more than the %llu allowed", path, name,
                         (unsigned long long)st.size, (unsigned long long)limit);
    // Deflate expands at most about 1032:1 (stored members not at all): a claim past that is a
    // lie, refused before it is allocated.
    if ((st.valid & ZIP_STAT_COMP_SIZE) && st.size > st.comp_size * 1032 + 1024)
        return paw_error("%s: %s: member claims %llu bytes from %llu compressed, more than deflate can give", path, name,
                         (unsigned long long)st.size, (unsigned long long)st.comp_size);
    zip_file_t *zf = zip_fopen_index(za, (zip_uint64_t)idx, 0);
    if (!zf) return paw_error("%s: %s: cannot open member: %s", path, name, zip_strerror(za));
    uint8_t *buf = xmalloc((size_t)st.size + 1);
    zip_uint64_t done = 0;
    int rc = 0;
    while (done < st.size) {
        zip_int64_t k = zip_fread(zf, buf + done, st.size - done);
        if (k <= 0) {
            rc = paw_error("%s: %s: read failed after %llu of %llu bytes: %s", path, name, (unsigned long long)done,
                           (unsigned long long)st.size, k < 0 ? zip_error_strerror(zip_file_get_error(zf)) : "end of data");
            break;
        }
        done += (zip_uint64_t)k;
    }
    if (rc == 0) {
        uint8_t extra;
        zip_int64_t k = zip_fread(zf, &extra, 1);  // reaching the end checks the CRC
        if (k != 0)
            rc = paw_error("%s: %s: %s", path, name,
                           k < 0 ? zip_error_strerror(zip_file_get_error(zf)) : "member is longer than its stated size");
    }
    zip_fclose(zf);
    if (rc) {
        free(buf);
        return rc;
    }
    buf[st.size] = 0;
    *out = buf;
    *size = (size_t)st.size;
    return 0;
}

static char *json_str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) && v->valuestring ? xstrdup(v->valuestring) : NULL;
}

// Optional integer field: 0 absent, 1 present (in *out), -1 present but not an integer in range.
static int json_int(const cJSON *o, const char *key, int lo, int hi, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!paw_json_is_int_in(v, lo, hi)) return -1;
    *out = (int)v->valuedouble;
    return 1;
}

// Parses "blk.<l>.<module>.weight.lora_a|b": 0 ok, 1 a norm tensor to ignore, -1 not a LoRA name.
static int parse_tensor_name(const char *name, int *layer, int *module, int *is_b) {
    size_t n = strlen(name);
    if (n > 12 && strcmp(name + n - 12, "_norm.weight") == 0) return 1;  // llama.cpp skips these too
    if (strncmp(name, "blk.", 4) != 0) return -1;
    const char *s = name + 4;
    long l = 0;
    int digits = 0;
    for (; *s >= '0' && *s <= '9' && digits < 7; s++, digits++) l = l * 10 + (*s - '0');
    if (!digits || *s != '.') return -1;
    s++;
    for (int m = 0; m < LORA_NUM_MODULES; m++) {
        size_t k = strlen(kGgufModule[m]);
        if (strncmp(s, kGgufModule[m], k) != 0) continue;
        const char *rest = s + k;
        if (strcmp(rest, ".weight.lora_a") == 0 || strcmp(rest, ".weight.lora_b") == 0) {
            *layer = (int)l;
            *module = m;
            *is_b = rest[13] == 'b';
            return 0;
        }
    }
    return -1;
}

typedef struct {
    const GgufTensor *a, *b;
} Pair;

static int is_q8_type(const GgufTensor *t) { return t->type == GGML_TYPE_Q4_0 || t->type == GGML_TYPE_Q8_0; }

static int load_adapter(PawProgram *p, const Gguf *g, const char *where, int meta_rank, int have_meta_rank,
                        float meta_alpha, int have_meta_alpha, int q8) {
    const char *type = gguf_get_str(g, "general.type");
    if (!type || strcmp(type, "adapter") != 0)
        return paw_error("%s: general.type is '%s', expected 'adapter'", where, type ? type : "(missing)");
    const char *atype = gguf_get_str(g, "adapter.type");
    if (!atype || strcmp(atype, "lora") != 0)
        return paw_error("%s: adapter.type is '%s', expected 'lora'", where, atype ? atype : "(missing)");
    const char *arch = gguf_get_str(g, "general.architecture");
    if (!arch || strcmp(arch, "qwen3") != 0)
        return paw_error("%s: general.architecture is '%s', expected 'qwen3'", where, arch ? arch : "(missing)");
    double alpha;
    if (gguf_find_kv(g, "adapter.lora.alpha")) {
        if (gguf_get_number(g, "adapter.lora.alpha", &alpha) != 0) return -1;
        if (have_meta_alpha && fabs(alpha - meta_alpha) > 1e-5 * fmax(1.0, fabs(alpha)))
            return paw_error("%s: adapter.lora.alpha is %g but meta.json lora_alpha is %g", where, alpha,
                             (double)meta_alpha);
    } else if (have_meta_alpha) {
        alpha = meta_alpha;
    } else {
        return paw_error("%s: no LoRA alpha: adapter.lora.alpha and meta.json lora_alpha are both missing", where);
    }
    if (!isfinite(alpha) || alpha == 0) return paw_error("%s: adapter.lora.alpha is %g, expected a finite non-zero value", where, alpha);
    p->alpha = (float)alpha;

    // Layers: the recorded shape when there is one, else the highest block index seen.
    int max_layer = -1;
    for (int i = 0; i < g->ntensors; i++) {
        int l, m, b;
        int k = parse_tensor_name(g->tensors[i].name, &l, &m, &b);
        if (k < 0)
            return paw_error("%s: tensor '%s' is not a supported LoRA tensor, expected "
                             "blk.N.{attn_q|attn_k|attn_v|attn_output|ffn_gate|ffn_up|ffn_down}.weight.lora_a|lora_b",
                             where, g->tensors[i].name);
        if (k == 0 && l > max_layer) max_layer = l;
    }
    if (max_layer < 0) return paw_error("%s: no LoRA tensors", where);
    int L = p->shape.num_layers > 0 ? p->shape.num_layers : max_layer + 1;
    if (max_layer >= L)
        return paw_error("%s: tensor for layer %d but the interpreter has %d layers (meta.json interpreter_config)",
                         where, max_layer, L);
    Pair *pairs = xcalloc((size_t)L * LORA_NUM_MODULES, sizeof(Pair));
    int rc = 0, r = -1;
    for (int i = 0; i < g->ntensors && rc == 0; i++) {
        const GgufTensor *t = &g->tensors[i];
        int l, m, b;
        if (parse_tensor_name(t->name, &l, &m, &b) != 0) continue;
        Pair *pr = &pairs[(size_t)l * LORA_NUM_MODULES + m];
        if (b) pr->b = t; else pr->a = t;
        for (int d = 2; d < t->ndim; d++)
            if (t->ne[d] != 1) rc = paw_error("%s: tensor '%s' has %d dimensions, expected 2", where, t->name, t->ndim);
        // lora_a ne [d_in, r], lora_b ne [r, d_out]
        int64_t tr = b ? t->ne[0] : t->ne[1];
        if (rc == 0 && (tr <= 0 || tr > 4096))
            rc = paw_error("%s: tensor '%s' has rank %lld, expected 1..4096", where, t->name, (long long)tr);
        if (rc == 0 && r < 0) r = (int)tr;
        if (rc == 0 && tr != r)
            rc = paw_error("%s: tensor '%s' has rank %lld, other tensors have %d (shape [%lld, %lld])", where, t->name,
                           (long long)tr, r, (long long)t->ne[0], (long long)t->ne[1]);
        int64_t dim = b ? t->ne[1] : t->ne[0];
        int *slot = b ? &p->d_out[m] : &p->d_in[m];
        if (rc == 0 && (dim <= 0 || dim > (1 << 20)))
            rc = paw_error("%s: tensor '%s' has dimension %lld, out of range", where, t->name, (long long)dim);
        if (rc == 0 && *slot == 0) *slot = (int)dim;
        if (rc == 0 && dim != *slot)
            rc = paw_error("%s: tensor '%s' has %s %lld, other layers have %d", where, t->name, b ? "d_out" : "d_in",
                           (long long)dim, *slot);
    }
    if (rc == 0 && have_meta_rank && meta_rank != r)
        rc = paw_error("%s: tensors have rank %d but meta.json lora_rank is %d", where, r, meta_rank);
    for (int i = 0; i < L * LORA_NUM_MODULES && rc == 0; i++)
        if (!pairs[i].a != !pairs[i].b)
            rc = paw_error("%s: LoRA pair for 'blk.%d.%s.weight' is missing its %s", where, i / LORA_NUM_MODULES,
                           kGgufModule[i % LORA_NUM_MODULES], pairs[i].a ? "lora_b" : "lora_a");
    // Module dims against the recorded shape, and for modules absent everywhere.
    int shape_known = p->shape.hidden_size > 0 && p->shape.intermediate_size > 0 && p->shape.num_heads > 0 &&
                      p->shape.num_kv_heads > 0 && p->shape.head_dim > 0;
    for (int m = 0; m < LORA_NUM_MODULES && rc == 0; m++) {
        int din = 0, dout = 0;
        if (shape_known) lora_module_dims(&p->shape, m, &din, &dout);
        if (p->d_in[m] == 0 && p->d_out[m] == 0) {
            if (!shape_known)
                rc = paw_error("%s: module %s has no tensors and meta.json has no interpreter_config to size it", where,
                               kGgufModule[m]);
            p->d_in[m] = din;
            p->d_out[m] = dout;
        } else if (shape_known && (p->d_in[m] != din || p->d_out[m] != dout)) {
            rc = paw_error("%s: %s tensors are d_in %d, d_out %d but meta.json interpreter_config implies %d, %d", where,
                           kGgufModule[m], p->d_in[m], p->d_out[m], din, dout);
        }
    }
    if (rc == 0) {
        p->rank = r;
        p->L = L;
        for (int i = L * LORA_NUM_MODULES - 1; i >= 0; i--)  // ends at the first LoRA tensor present
            if (pairs[i].a) p->adapter_dtype = pairs[i].a->type;
        for (int m = 0; m < LORA_NUM_MODULES; m++) {
            size_t na = (size_t)r * p->d_in[m], nb = (size_t)p->d_out[m] * r;
            // Held as Q8 blocks when asked and every tensor of the module is Q4_0 or Q8_0 (which
            // implies rows of multiples of 32: d_in for A, r for B); absent pairs are zero blocks.
            int mq8 = q8 && p->d_in[m] % 32 == 0 && r % 32 == 0;
            for (int l = 0; l < L && mq8; l++) {
                const Pair *pr = &pairs[(size_t)l * LORA_NUM_MODULES + m];
                mq8 = !pr->a || (is_q8_type(pr->a) && is_q8_type(pr->b));
            }
            if (mq8) {
                p->qA[m] = xcalloc((size_t)L * na, 1);
                p->qB[m] = xcalloc((size_t)L * nb, 1);
                p->qAd[m] = xcalloc((size_t)L * na / 32, sizeof(float));
                p->qBd[m] = xcalloc((size_t)L * nb / 32, sizeof(float));
            } else {
                p->A[m] = xcalloc((size_t)L * na, sizeof(float));
                p->B[m] = xcalloc((size_t)L * nb, sizeof(float));
            }
            for (int l = 0; l < L && rc == 0; l++) {
                const Pair *pr = &pairs[(size_t)l * LORA_NUM_MODULES + m];
                if (!pr->a) continue;  // absent pair: zeros, no LoRA on this projection
                if (mq8) {
                    const size_t ao = (size_t)l * na, bo = (size_t)l * nb;
                    rc = gguf_tensor_to_q8(g, pr->a, p->qA[m] + ao, p->qAd[m] + ao / 32);
                    if (rc == 0) rc = gguf_tensor_to_q8(g, pr->b, p->qB[m] + bo, p->qBd[m] + bo / 32);
                    continue;
                }
                rc = gguf_tensor_to_f32(g, pr->a, p->A[m] + (size_t)l * na);
                if (rc == 0) rc = gguf_tensor_to_f32(g, pr->b, p->B[m] + (size_t)l * nb);
            }
            // Refused as the writer refuses them: a NaN or infinity (an fp16 scale past its
            // range, say) would turn every output of the program into NaN without a word.
            const float *vals[2] = {mq8 ? p->qAd[m] : p->A[m], mq8 ? p->qBd[m] : p->B[m]};
            const size_t nvals[2] = {(size_t)L * na / (mq8 ? 32 : 1), (size_t)L * nb / (mq8 ? 32 : 1)};
            for (int ab = 0; ab < 2 && rc == 0; ab++)
                for (size_t i = 0; i < nvals[ab]; i++)
                    if (!isfinite(vals[ab][i])) {
                        rc = paw_error("%s: module %s: %s holds a non-finite %s", where, lora_module_names[m], ab ? "B" : "A",
                                       mq8 ? "block scale" : "value");
                        break;
                    }
        }
    }
    free(pairs);
    return rc;
}

static int read_meta(PawProgram *p, const char *json, size_t n, const char *where, int *meta_rank, int *have_rank,
                     float *meta_alpha, int *have_alpha, char **content_sha) {
    cJSON *o = cJSON_ParseWithLength(json, n);
    if (!o || !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return paw_error("%s: not a JSON object", where);
    }
    int rc = 0;
    p->interpreter = json_str(o, "interpreter");
    if (!p->interpreter || !*p->interpreter) rc = paw_error("%s: missing string 'interpreter'", where);
    p->spec = json_str(o, "spec");
    p->pseudo_program = json_str(o, "pseudo_program");
    p->compiler = json_str(o, "compiler");
    p->created_at = json_str(o, "created_at");
    p->program_id = json_str(o, "program_id");
    *content_sha = json_str(o, "content_sha256");
    int k;
    if (rc == 0 && (k = json_int(o, "lora_rank", 1, 4096, meta_rank)) < 0)
        rc = paw_error("%s: lora_rank must be an integer in 1..4096", where);
    *have_rank = rc == 0 && k > 0;
    if (rc == 0 && json_int(o, "prefix_steps", 0, 1 << 20, &p->prefix_steps) < 0)
        rc = paw_error("%s: prefix_steps must be a non-negative integer", where);
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "lora_alpha");
    *have_alpha = 0;
    if (rc == 0 && a && !cJSON_IsNull(a)) {
        if (!cJSON_IsNumber(a) || !isfinite(a->valuedouble))
            rc = paw_error("%s: lora_alpha must be a number", where);
        *meta_alpha = (float)a->valuedouble;
        *have_alpha = 1;
    }
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(o, "interpreter_config");
    if (rc == 0 && shape) {
        if (!cJSON_IsObject(shape)) rc = paw_error("%s: interpreter_config must be an object", where);
        for (int i = 0; i < NUM_SHAPE_FIELDS && rc == 0; i++)
            if (json_int(shape, kShapeFields[i].name, 1, 1 << 24, shape_field(&p->shape, i)) < 0)
                rc = paw_error("%s: interpreter_config.%s must be a positive integer", where, kShapeFields[i].name);
    }
    cJSON_Delete(o);
    return rc;
}

int paw_program_read(const char *path, PawProgram *p) { return paw_program_read_ex(path, p, 0); }

int paw_program_read_ex(const char *path, PawProgram *p, int flags) {
    memset(p, 0, sizeof *p);
    int zerr = 0;
    zip_t *za = zip_open(path, ZIP_RDONLY | ZIP_CHECKCONS, &zerr);
    if (!za) {
        zip_error_t ze;
        zip_error_init_with_code(&ze, zerr);
        int rc = paw_error("%s: cannot open program bundle: %s%s", path, zip_error_strerror(&ze),
                           zerr == ZIP_ER_NOZIP || zerr == ZIP_ER_INCONS ? " (not a ZIP file, or a truncated one)" : "");
        zip_error_fini(&ze);
        return rc;
    }
    uint8_t *adapter = NULL, *tmpl = NULL, *meta = NULL, *peft = NULL;
    size_t nadapter = 0, ntmpl = 0, nmeta = 0, npeft = 0;
    char *content_sha = NULL, where[1024];
    Gguf g = {0};
    int rc = read_member(za, path, MEMBER_META, 1, MAX_TEXT_MEMBER, &meta, &nmeta);
    if (rc == 0) rc = read_member(za, path, MEMBER_TEMPLATE, 1, MAX_TEXT_MEMBER, &tmpl, &ntmpl);
    if (rc == 0) rc = read_member(za, path, MEMBER_ADAPTER, 1, MAX_ADAPTER_MEMBER, &adapter, &nadapter);
    if (rc == 0) rc = read_member(za, path, MEMBER_PEFT, 0, MAX_TEXT_MEMBER, &peft, &npeft) < 0 ? -1 : 0;
    zip_close(za);

    int meta_rank = 0, have_rank = 0, have_alpha = 0;
    float meta_alpha = 0;
    if (rc == 0) {
        snprintf(where, sizeof where, "%s: %s", path, MEMBER_META);
        rc = read_meta(p, (const char *)meta, nmeta, where, &meta_rank, &have_rank, &meta_alpha, &have_alpha,
                       &content_sha);
    }
    if (rc == 0) {
        snprintf(where, sizeof where, "%s: %s", path, MEMBER_TEMPLATE);
        char *pre, *suf;
        if (strlen((const char *)tmpl) != ntmpl)
            rc = paw_error("%s: contains a NUL byte", where);
        else if (paw_prompt_template_split((const char *)tmpl, &pre, &suf) != 0)
            rc = paw_error_context("%s", where);
        else {
            free(pre);
            free(suf);
        }
    }
    if (rc == 0) {
        char hex[65];
        content_hash(adapter, nadapter, (const char *)tmpl, ntmpl, hex);
        if (content_sha && strcmp(content_sha, hex) != 0)
            rc = paw_error("%s: content hash mismatch: meta.json records %s, %s + %s hash to %s (modified bundle?)",
                           path, content_sha, MEMBER_ADAPTER, MEMBER_TEMPLATE, hex);
        if (rc == 0 && !p->program_id) p->program_id = xstrdup(hex);
    }
    if (rc == 0) {
        snprintf(where, sizeof where, "%s: %s", path, MEMBER_ADAPTER);
        rc = gguf_parse(&g, adapter, nadapter, where);
        if (rc == 0)
            rc = load_adapter(p, &g, where, meta_rank, have_rank, meta_alpha, have_alpha, flags & PAW_PROGRAM_Q8_ADAPTER);
        gguf_close(&g);
    }
    if (rc == 0 && peft) {
        // Only cross-checked: the adapter itself is the truth.
        snprintf(where, sizeof where, "%s: %s", path, MEMBER_PEFT);
        cJSON *o = cJSON_ParseWithLength((const char *)peft, npeft);
        int r;
        if (!o || !cJSON_IsObject(o))
            rc = paw_error("%s: not a JSON object", where);
        else if (json_int(o, "r", 1, 4096, &r) > 0 && r != p->rank)
            rc = paw_error("%s: r is %d but the adapter tensors have rank %d", where, r, p->rank);
        cJSON_Delete(o);
    }
    if (rc == 0) {
        p->template_text = (char *)tmpl;
        tmpl = NULL;
        if (p->shape.num_layers == 0) p->shape.num_layers = p->L;
    } else {
        paw_program_free(p);
    }
    free(adapter);
    free(tmpl);
    free(meta);
    free(peft);
    free(content_sha);
    return rc;
}

int paw_program_check_interpreter(const PawProgram *p, const Qwen3Config *cfg) {
    const char *id = p->interpreter ? p->interpreter : "?";
    if (p->L != cfg->num_layers)
        return paw_error("program for interpreter '%s' does not fit this interpreter: layers expected %d, found %d in "
                         "the program",
                         id, cfg->num_layers, p->L);
    for (int i = 0; i < NUM_SHAPE_FIELDS; i++) {
        int have = shape_value(&p->shape, i), want = shape_value(cfg, i);
        if (have > 0 && have != want)
            return paw_error("program for interpreter '%s' does not fit this interpreter: %s expected %d, found %d in "
                             "the program",
                             id, kShapeFields[i].name, want, have);
    }
    for (int m = 0; m < LORA_NUM_MODULES; m++) {
        int din, dout;
        lora_module_dims(cfg, m, &din, &dout);
        if (p->d_in[m] != din || p->d_out[m] != dout)
            return paw_error("program for interpreter '%s' does not fit this interpreter: %s expected d_in %d, d_out "
                             "%d, found %d, %d in the program",
                             id, lora_module_names[m], din, dout, p->d_in[m], p->d_out[m]);
    }
    return 0;
}
