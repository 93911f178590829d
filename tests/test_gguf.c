// Tests for model/gguf.c.
//
// tests/fixtures/gguf/reference.gguf and aligned64.gguf are written by gguf-py's GGUFWriter
// (python3 tests/make_gguf_fixtures.py). The reverse direction is checked by hand with gguf-py's
// GGUFReader:
//   PAW_GGUF_EXPORT=/tmp/c.gguf ./build/test_paw --filter 'gguf/python_*'
//   python3 tests/make_gguf_fixtures.py --check-gguf /tmp/c.gguf
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileio.h"
#include "kernels/quant.h"
#include "model/gguf.h"
#include "model/safetensors.h"

#define REFERENCE "tests/fixtures/gguf/reference.gguf"
#define ALIGNED64 "tests/fixtures/gguf/aligned64.gguf"

static const GgufKV *kv_of(const Gguf *g, const char *key, int type) {
    const GgufKV *kv = gguf_find_kv(g, key);
    cr_assert_not_null(kv, "missing %s", key);
    cr_assert_eq(kv->type, type, "%s: type %d", key, kv->type);
    return kv;
}

Test(gguf, reads_gguf_py_reference) {
    Gguf g;
    cr_assert_eq(gguf_open(&g, REFERENCE), 0, "%s", paw_last_error());
    cr_assert_eq(g.version, 3);
    cr_assert_eq(g.alignment, 32);
    cr_assert_str_eq(gguf_get_str(&g, "general.architecture"), "qwen3");
    cr_assert_eq(kv_of(&g, "test.u8", GGUF_TYPE_UINT8)->u64, 200);
    cr_assert_eq(kv_of(&g, "test.i8", GGUF_TYPE_INT8)->i64, -5);
    cr_assert_eq(kv_of(&g, "test.u16", GGUF_TYPE_UINT16)->u64, 60000);
    cr_assert_eq(kv_of(&g, "test.i16", GGUF_TYPE_INT16)->i64, -30000);
    cr_assert_eq(kv_of(&g, "test.u32", GGUF_TYPE_UINT32)->u64, 4000000000u);
    cr_assert_eq(kv_of(&g, "test.i32", GGUF_TYPE_INT32)->i64, -2000000000);
    cr_assert_eq(kv_of(&g, "test.f32", GGUF_TYPE_FLOAT32)->f64, 1.5);
    cr_assert_eq(kv_of(&g, "test.bool", GGUF_TYPE_BOOL)->u64, 1);
    cr_assert_str_eq(kv_of(&g, "test.str", GGUF_TYPE_STRING)->str, "h\xc3\xa9llo w\xc3\xb6rld");
    cr_assert_eq(kv_of(&g, "test.u64", GGUF_TYPE_UINT64)->u64, (1ull << 40) + 3);
    cr_assert_eq(kv_of(&g, "test.i64", GGUF_TYPE_INT64)->i64, -(1ll << 40));
    cr_assert_eq(kv_of(&g, "test.f64", GGUF_TYPE_FLOAT64)->f64, 3.141592653589793);
    cr_assert_str_eq(kv_of(&g, "test.empty_str", GGUF_TYPE_STRING)->str, "");
    const GgufKV *a = kv_of(&g, "test.arr_u32", GGUF_TYPE_ARRAY);
    cr_assert_eq(a->arr_type, GGUF_TYPE_UINT32);
    cr_assert_eq(a->arr_n, 3);
    cr_assert_eq(a->arr_data[0], 1);
    cr_assert_eq(a->arr_data[8], 3);
    a = kv_of(&g, "test.arr_str", GGUF_TYPE_ARRAY);
    cr_assert_eq(a->arr_type, GGUF_TYPE_STRING);
    cr_assert_eq(a->arr_n, 3);
    cr_assert_str_eq(a->arr_str[1], "bc");
    cr_assert_str_eq(a->arr_str[2], "");
    double v;
    cr_assert_eq(gguf_get_number(&g, "test.i16", &v), 0);
    cr_assert_eq(v, -30000.0);
    cr_assert_eq(gguf_get_number(&g, "test.str", &v), -1);
    cr_assert(strstr(paw_last_error(), "test.str"));
    cr_assert_eq(gguf_get_number(&g, "absent", &v), -1);
    cr_assert_null(gguf_get_str(&g, "test.u8"));

    // numpy shape (3, 5) is ggml ne [5, 3]; data is the row-major array.
    const GgufTensor *t = gguf_find_tensor(&g, "f32");
    cr_assert_not_null(t);
    cr_assert_eq(t->type, GGML_TYPE_F32);
    cr_assert_eq(t->ndim, 2);
    cr_assert_eq(t->ne[0], 5);
    cr_assert_eq(t->ne[1], 3);
    float f[24];
    cr_assert_eq(gguf_tensor_to_f32(&g, t, f), 0);
    for (int i = 0; i < 15; i++) cr_assert_eq(f[i], (i - 7) * 0.25f);
    t = gguf_find_tensor(&g, "f16");
    cr_assert_eq(t->type, GGML_TYPE_F16);
    cr_assert_eq(gguf_tensor_to_f32(&g, t, f), 0);
    float want16[7] = {0.0f, -0.0f, 1.0f, -2.5f, 65504.0f, 0x1p-14f, 0x1p-24f};
    for (int i = 0; i < 7; i++) cr_assert_eq(f[i], want16[i]);
    cr_assert(signbit(f[1]));
    t = gguf_find_tensor(&g, "bf16");
    cr_assert_eq(t->type, GGML_TYPE_BF16);
    float src[4];
    cr_assert_eq(gguf_tensor_to_f32(&g, t, f), 0);
    cr_assert_eq(gguf_tensor_to_f32(&g, gguf_find_tensor(&g, "src.bf16"), src), 0);
    for (int i = 0; i < 4; i++) cr_assert_eq(f[i], st_bf16_to_f32(st_f32_to_bf16(src[i])), "bf16 %d", i);
    t = gguf_find_tensor(&g, "three_d");
    cr_assert_eq(t->ndim, 3);
    cr_assert_eq(t->ne[0], 4);
    cr_assert_eq(t->ne[1], 3);
    cr_assert_eq(t->ne[2], 2);
    cr_assert_eq(t->ne[3], 1);
    cr_assert_eq(gguf_tensor_to_f32(&g, t, f), 0);
    cr_assert_eq(f[23], 23.0f);
    t = gguf_find_tensor(&g, "q4_0");
    cr_assert_eq(t->type, GGML_TYPE_Q4_0);
    cr_assert_eq(t->nbytes, 6 * Q4_0_BLOCK_BYTES);
    for (int i = 0; i < g.ntensors; i++) cr_assert_eq(g.tensors[i].offset % 32, 0);
    cr_assert_null(gguf_find_tensor(&g, "absent"));
    gguf_close(&g);

    cr_assert_eq(gguf_open(&g, ALIGNED64), 0, "%s", paw_last_error());
    cr_assert_eq(g.alignment, 64);
    cr_assert_eq(g.data_offset % 64, 0);
    t = gguf_find_tensor(&g, "b");
    cr_assert_eq(t->offset, 64);
    cr_assert_eq(gguf_tensor_to_f32(&g, t, f), 0);
    cr_assert_eq(f[4], -4.0f);
    gguf_close(&g);
}

// Fills w with the content tests/make_gguf_fixtures.py --check-gguf expects.
static void fill_writer(GgufWriter *w, float *x) {
    for (int i = 0; i < 96; i++) x[i] = (i - 40) / 16.0f;
    cr_assert_eq(gguf_writer_set_str(w, "general.architecture", "qwen3"), 0);
    cr_assert_eq(gguf_writer_set_u32(w, "c.u32", 7), 0);
    cr_assert_eq(gguf_writer_set_i32(w, "c.i32", -7), 0);
    cr_assert_eq(gguf_writer_set_f32(w, "c.f32", 0.25f), 0);
    cr_assert_eq(gguf_writer_set_u64(w, "c.u64", 1ull << 50), 0);
    cr_assert_eq(gguf_writer_set_f64(w, "c.f64", 0.1), 0);
    cr_assert_eq(gguf_writer_set_bool(w, "c.bool", 1), 0);
    cr_assert_eq(gguf_writer_set_str(w, "c.str", "paw \xc3\xa9t\xc3\xa9"), 0);
    int32_t arr[3] = {3, -1, 4};
    cr_assert_eq(gguf_writer_set_array(w, "c.arr_i32", GGUF_TYPE_INT32, arr, 3), 0);
    const char *strs[3] = {"x", "", "yz"};
    cr_assert_eq(gguf_writer_set_str_array(w, "c.arr_str", strs, 3), 0);
    int64_t ne[2] = {32, 3};
    const char *names[5] = {"t.f32", "t.f16", "t.bf16", "t.q8_0", "t.q4_0"};
    int types[5] = {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16, GGML_TYPE_Q8_0, GGML_TYPE_Q4_0};
    for (int i = 0; i < 5; i++)
        cr_assert_eq(gguf_writer_add_tensor_f32(w, names[i], types[i], 2, ne, x), 0, "%s", paw_last_error());
    int64_t ne4[4] = {2, 3, 1, 2};
    cr_assert_eq(gguf_writer_add_tensor_f32(w, "t.4d", GGML_TYPE_F32, 4, ne4, x), 0);
}

Test(gguf, python_round_trip) {
    GgufWriter w;
    gguf_writer_init(&w);
    float x[96];
    fill_writer(&w, x);
    uint8_t *buf;
    size_t n;
    cr_assert_eq(gguf_writer_serialize(&w, &buf, &n), 0);
    const char *exp = getenv("PAW_GGUF_EXPORT");
    if (exp) cr_assert_eq(gguf_writer_write(&w, exp), 0, "%s", paw_last_error());
    gguf_writer_free(&w);

    Gguf g;
    cr_assert_eq(gguf_parse(&g, buf, n, "memory"), 0, "%s", paw_last_error());
    cr_assert_eq(g.version, 3);
    cr_assert_eq(g.nkv, 10);
    cr_assert_eq(kv_of(&g, "c.u32", GGUF_TYPE_UINT32)->u64, 7);
    cr_assert_eq(kv_of(&g, "c.i32", GGUF_TYPE_INT32)->i64, -7);
    cr_assert_eq(kv_of(&g, "c.f32", GGUF_TYPE_FLOAT32)->f64, 0.25);
    cr_assert_eq(kv_of(&g, "c.u64", GGUF_TYPE_UINT64)->u64, 1ull << 50);
    cr_assert_eq(kv_of(&g, "c.f64", GGUF_TYPE_FLOAT64)->f64, 0.1);
    cr_assert_eq(kv_of(&g, "c.bool", GGUF_TYPE_BOOL)->u64, 1);
    cr_assert_str_eq(kv_of(&g, "c.str", GGUF_TYPE_STRING)->str, "paw \xc3\xa9t\xc3\xa9");
    const GgufKV *a = kv_of(&g, "c.arr_i32", GGUF_TYPE_ARRAY);
    cr_assert_eq(a->arr_n, 3);
    int32_t back[3];
    memcpy(back, a->arr_data, 12);
    cr_assert_eq(back[1], -1);
    cr_assert_str_eq(kv_of(&g, "c.arr_str", GGUF_TYPE_ARRAY)->arr_str[2], "yz");
    cr_assert_eq(g.ntensors, 6);

    // Layout ggml requires: tensors back to back in order, each padded to the alignment, and
    // the data section starting aligned.
    size_t expect = 0;
    for (int i = 0; i < g.ntensors; i++) {
        cr_assert_eq(g.tensors[i].offset, expect, "tensor %d", i);
        expect += (g.tensors[i].nbytes + 31) / 32 * 32;
    }
    cr_assert_eq(g.data_offset % 32, 0);
    cr_assert_eq(n, g.data_offset + expect);

    float y[96];
    const GgufTensor *t = gguf_find_tensor(&g, "t.f32");
    cr_assert_eq(gguf_tensor_to_f32(&g, t, y), 0);
    cr_assert_eq(memcmp(x, y, sizeof x), 0);
    t = gguf_find_tensor(&g, "t.f16");
    cr_assert_eq(gguf_tensor_to_f32(&g, t, y), 0);
    for (int i = 0; i < 96; i++) cr_assert_eq(y[i], x[i]);  // multiples of 1/16: exact in fp16
    t = gguf_find_tensor(&g, "t.q8_0");
    cr_assert_eq(t->nbytes, 3 * Q8_0_BLOCK_BYTES);
    uint8_t q[3 * Q8_0_BLOCK_BYTES];
    quantize_q8_0(x, q, 96);
    cr_assert_eq(memcmp(q, t->data, sizeof q), 0);
    t = gguf_find_tensor(&g, "t.q4_0");
    quantize_q4_0(x, q, 96);
    cr_assert_eq(memcmp(q, t->data, 3 * Q4_0_BLOCK_BYTES), 0);
    cr_assert_eq(gguf_tensor_to_f32(&g, t, y), 0);
    for (int i = 0; i < 96; i++) cr_assert(fabsf(y[i] - x[i]) <= 56.0f / 16 / 8 + 1e-6f);
    t = gguf_find_tensor(&g, "t.4d");
    cr_assert_eq(t->ndim, 4);
    cr_assert_eq(t->ne[2], 1);
    cr_assert_eq(t->numel, 12);
    gguf_close(&g);
    free(buf);
}

Test(gguf, writer_alignment_and_errors) {
    GgufWriter w;
    gguf_writer_init(&w);
    cr_assert_eq(gguf_writer_set_alignment(&w, 48), -1);
    cr_assert_eq(gguf_writer_set_alignment(&w, 128), 0);
    cr_assert_eq(gguf_writer_set_u32(&w, "k", 1), 0);
    cr_assert_eq(gguf_writer_set_str(&w, "k", "again"), -1);
    cr_assert(strstr(paw_last_error(), "'k' set twice"));
    float x[64] = {1};
    int64_t ne[1] = {48};
    cr_assert_eq(gguf_writer_add_tensor_f32(&w, "q", GGML_TYPE_Q4_0, 1, ne, x), -1);
    cr_assert(strstr(paw_last_error(), "multiple of 32"), "%s", paw_last_error());
    char longname[80];
    memset(longname, 'n', 64);
    longname[64] = 0;
    ne[0] = 3;
    cr_assert_eq(gguf_writer_add_tensor_f32(&w, longname, GGML_TYPE_F32, 1, ne, x), -1);
    cr_assert_eq(gguf_writer_add_tensor_f32(&w, "a", GGML_TYPE_F32, 1, ne, x), 0);
    cr_assert_eq(gguf_writer_add_tensor_f32(&w, "a", GGML_TYPE_F32, 1, ne, x), -1);
    cr_assert_eq(gguf_writer_add_tensor(&w, "raw", GGML_TYPE_F32, 1, ne, x, 8), -1);  // wrong size
    cr_assert_eq(gguf_writer_add_tensor(&w, "raw", GGML_TYPE_F32, 1, ne, x, 12), 0);
    cr_assert_eq(gguf_writer_add_tensor_f32(&w, "k6", 14 /* Q6_K */, 1, (int64_t[]){256}, x), -1);
    uint8_t *buf;
    size_t n;
    cr_assert_eq(gguf_writer_serialize(&w, &buf, &n), 0);
    gguf_writer_free(&w);
    Gguf g;
    cr_assert_eq(gguf_parse(&g, buf, n, "mem"), 0, "%s", paw_last_error());
    cr_assert_eq(g.alignment, 128);
    cr_assert_eq(g.data_offset % 128, 0);
    cr_assert_eq(gguf_find_tensor(&g, "raw")->offset, 128);
    gguf_close(&g);
    free(buf);
}

// ---------------------------------------------------------------------------------------------
// Bad files: hand-built headers that each break one rule.

typedef struct {
    uint8_t b[4096];
    size_t n;
} Bytes;
static void put(Bytes *x, const void *p, size_t k) {
    memcpy(x->b + x->n, p, k);
    x->n += k;
}
static void u32(Bytes *x, uint32_t v) { put(x, &v, 4); }
static void u64(Bytes *x, uint64_t v) { put(x, &v, 8); }
static void str(Bytes *x, const char *s) {
    u64(x, strlen(s));
    put(x, s, strlen(s));
}
static void header(Bytes *x, uint32_t version, uint64_t nt, uint64_t nkv) {
    x->n = 0;
    put(x, "GGUF", 4);
    u32(x, version);
    u64(x, nt);
    u64(x, nkv);
}
static void tensor_info(Bytes *x, const char *name, uint32_t nd, const uint64_t *ne, uint32_t type, uint64_t off) {
    str(x, name);
    u32(x, nd);
    for (uint32_t d = 0; d < nd; d++) u64(x, ne[d]);
    u32(x, type);
    u64(x, off);
}
static void pad_data(Bytes *x, size_t align, size_t data_bytes) {
    while (x->n % align) x->b[x->n++] = 0;
    memset(x->b + x->n, 0, data_bytes);
    x->n += data_bytes;
}

static void expect_bad(const Bytes *x, const char *needle) {
    Gguf g;
    cr_assert_eq(gguf_parse(&g, x->b, x->n, "bad.gguf"), -1, "accepted a file that should fail with '%s'", needle);
    cr_assert(strstr(paw_last_error(), "bad.gguf"), "%s", paw_last_error());
    cr_assert(strstr(paw_last_error(), needle), "'%s' not in: %s", needle, paw_last_error());
}

Test(gguf, bad_headers) {
    Bytes x;
    x.n = 0;
    put(&x, "GGML", 4);
    expect_bad(&x, "not a GGUF");
    header(&x, 1, 0, 0);
    expect_bad(&x, "version 1");
    header(&x, 3u << 24, 0, 0);
    expect_bad(&x, "big-endian");
    header(&x, 3, 0, 1ull << 40);
    expect_bad(&x, "more than");
    header(&x, 3, 1ull << 60, 0);
    expect_bad(&x, "more than");
    header(&x, 3, 0, 1);
    str(&x, "k");
    u32(&x, 13);
    u32(&x, 0);
    expect_bad(&x, "invalid value type 13");
    header(&x, 3, 0, 1);
    u64(&x, 1ull << 40);  // key length beyond the file
    put(&x, "abcdefghijkl", 12);
    expect_bad(&x, "truncated");
    header(&x, 3, 0, 1);
    str(&x, "k");
    u32(&x, GGUF_TYPE_ARRAY);
    u32(&x, GGUF_TYPE_ARRAY);
    u64(&x, 1);
    put(&x, "xxxxxxxxxxxx", 12);
    expect_bad(&x, "nested arrays");
    header(&x, 3, 0, 1);
    str(&x, "k");
    u32(&x, GGUF_TYPE_ARRAY);
    u32(&x, GGUF_TYPE_UINT64);
    u64(&x, 1ull << 61);
    put(&x, "xxxxxxxxxxxx", 12);
    expect_bad(&x, "does not fit");
    header(&x, 3, 0, 1);
    str(&x, "k");
    u32(&x, GGUF_TYPE_ARRAY);
    u32(&x, GGUF_TYPE_STRING);
    u64(&x, 1000);
    put(&x, "xxxxxxxxxxxx", 12);
    expect_bad(&x, "does not fit");
    header(&x, 3, 0, 2);
    str(&x, "k");
    u32(&x, GGUF_TYPE_UINT32);
    u32(&x, 1);
    str(&x, "k");
    u32(&x, GGUF_TYPE_UINT32);
    u32(&x, 2);
    expect_bad(&x, "duplicate key 'k'");
    for (int bad = 0; bad < 3; bad++) {
        header(&x, 3, 0, 1);
        str(&x, "general.alignment");
        u32(&x, bad == 2 ? GGUF_TYPE_UINT64 : GGUF_TYPE_UINT32);
        if (bad == 2) u64(&x, 32);
        else u32(&x, bad == 0 ? 0 : 48);
        expect_bad(&x, "general.alignment");
    }
}

Test(gguf, bad_tensor_infos) {
    Bytes x;
    uint64_t ne[5] = {4, 2, 1, 1, 1};
    header(&x, 3, 1, 0);
    tensor_info(&x, "t", 0, ne, 0, 0);
    pad_data(&x, 32, 32);
    expect_bad(&x, "'t': 0 dimensions");
    header(&x, 3, 1, 0);
    tensor_info(&x, "t", 5, ne, 0, 0);
    pad_data(&x, 32, 32);
    expect_bad(&x, "'t': 5 dimensions");
    header(&x, 3, 1, 0);
    tensor_info(&x, "t", 2, ne, 99, 0);
    pad_data(&x, 32, 32);
    expect_bad(&x, "unknown ggml type 99");
    header(&x, 3, 1, 0);
    tensor_info(&x, "t", 2, ne, GGML_TYPE_Q4_0, 0);  // ne[0] = 4, not a multiple of 32
    pad_data(&x, 32, 64);
    expect_bad(&x, "multiple of 32");
    header(&x, 3, 1, 0);
    tensor_info(&x, "t", 2, ne, GGML_TYPE_F32, 8);
    pad_data(&x, 32, 64);
    expect_bad(&x, "not a multiple of the alignment");
    header(&x, 3, 1, 0);
    tensor_info(&x, "t", 2, ne, GGML_TYPE_F32, 0);
    pad_data(&x, 32, 31);  // needs 32 bytes
    expect_bad(&x, "outside");
    header(&x, 3, 1, 0);
    tensor_info(&x, "t", 2, ne, GGML_TYPE_F32, 1ull << 63);
    pad_data(&x, 32, 32);
    expect_bad(&x, "outside");
    uint64_t huge[2] = {1ull << 40, 1ull << 40};
    header(&x, 3, 1, 0);
    tensor_info(&x, "t", 2, huge, GGML_TYPE_F32, 0);
    pad_data(&x, 32, 32);
    expect_bad(&x, "overflows");
    header(&x, 3, 2, 0);
    tensor_info(&x, "t", 2, ne, GGML_TYPE_F32, 0);
    tensor_info(&x, "t", 2, ne, GGML_TYPE_F32, 32);
    pad_data(&x, 32, 64);
    expect_bad(&x, "duplicate tensor 't'");
    // A good one, to show that the builder itself is right.
    header(&x, 3, 1, 0);
    tensor_info(&x, "t", 2, ne, GGML_TYPE_F32, 0);
    pad_data(&x, 32, 32);
    Gguf g;
    cr_assert_eq(gguf_parse(&g, x.b, x.n, "good"), 0, "%s", paw_last_error());
    gguf_close(&g);
}

// Every truncation and many random byte corruptions of a real file fail cleanly or parse into
// something self-consistent; under `make asan` this also shows no out-of-bounds access.
Test(gguf, truncations_and_corruptions) {
    size_t n;
    uint8_t *orig = (uint8_t *)paw_read_file(REFERENCE, &n);
    cr_assert_not_null(orig);
    Gguf g;
    for (size_t k = 0; k < n; k++) {
        uint8_t *cut = malloc(k ? k : 1);  // exact-size copy so that ASan sees any overread
        memcpy(cut, orig, k);
        int rc = gguf_parse(&g, cut, k, "cut.gguf");
        if (rc == 0) {
            // Only the zero padding after the last tensor may be missing.
            cr_assert(k >= n - 32, "truncated to %zu of %zu bytes but accepted", k, n);
            gguf_close(&g);
        } else {
            cr_assert(strstr(paw_last_error(), "cut.gguf"));
        }
        free(cut);
    }
    uint64_t s = 12345;
    uint8_t *copy = malloc(n);
    float *tmp = malloc(1 << 16);
    for (int iter = 0; iter < 3000; iter++) {
        memcpy(copy, orig, n);
        for (int f = 0; f < 1 + iter % 4; f++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            size_t pos = (size_t)(s >> 33) % (iter % 2 ? 600 : n);  // bias towards the header
            copy[pos] ^= (uint8_t)(1u << ((s >> 20) & 7));
        }
        if (gguf_parse(&g, copy, n, "flip.gguf") == 0) {
            for (int i = 0; i < g.ntensors; i++) {
                const GgufTensor *t = &g.tensors[i];
                cr_assert(t->data >= copy && t->data + t->nbytes <= copy + n);
                if ((size_t)t->numel * 4 <= (1 << 16)) gguf_tensor_to_f32(&g, t, tmp);
            }
            gguf_close(&g);
        }
    }
    free(tmp);
    free(copy);
    free(orig);
}

Test(gguf, open_errors) {
    Gguf g;
    cr_assert_eq(gguf_open(&g, "tests/fixtures/gguf/does-not-exist.gguf"), -1);
    cr_assert(strstr(paw_last_error(), "does-not-exist"));
    cr_assert_eq(gguf_parse(&g, (const uint8_t *)"", 0, "empty.gguf"), -1);
    cr_assert(strstr(paw_last_error(), "empty.gguf"));
}
