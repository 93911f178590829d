// Tests for model/safetensors.c.
//
// tests/fixtures/safetensors/reference.safetensors is written by the Python `safetensors` library
// (python3 tests/make_safetensors_fixtures.py). The reverse direction is checked by hand:
//   PAW_ST_EXPORT=/tmp/c.safetensors ./build/test_paw --filter 'safetensors/python_*'
//   python3 tests/make_safetensors_fixtures.py --check /tmp/c.safetensors
// and for a whole Hugging Face checkpoint:
//   python3 tests/make_safetensors_fixtures.py --hf-make /tmp/sthf
//   PAW_ST_HF_DIR=/tmp/sthf ./build/test_paw --filter 'safetensors/python_*'
//   python3 tests/make_safetensors_fixtures.py --hf-check /tmp/sthf
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fileio.h"
#include "model/safetensors.h"

#define REFERENCE "tests/fixtures/safetensors/reference.safetensors"

static uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float float_of(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng_next(void) {  // xorshift64*: deterministic across runs
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

static char *make_tmpdir(void) {
    char *dir = strdup("/tmp/paw_st_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    return dir;
}

static void remove_tree(const char *dir) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

static void write_raw(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    if (n) cr_assert_eq(fwrite(data, 1, n, f), n);
    cr_assert_eq(fclose(f), 0);
}

// Writes 8-byte length + header + data.
static void write_st(const char *path, const char *header, const void *data, size_t ndata) {
    size_t h = strlen(header);
    uint8_t *buf = malloc(8 + h + ndata + 1);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)h >> (8 * i));
    memcpy(buf + 8, header, h);
    if (ndata) memcpy(buf + 8 + h, data, ndata);
    write_raw(path, buf, 8 + h + ndata);
    free(buf);
}

// ---------------------------------------------------------------------------------------------
// Round trip through the C writer and reader

Test(safetensors, round_trip_all_dtypes) {
    char *dir = make_tmpdir();
    char *path = paw_path_join(dir, "rt.safetensors");
    float f32[6] = {1.5f, -2.0f, 0.0f, 3.25f, -0.0f, 1e-30f};
    uint16_t f16[4] = {0x3c00, 0x7c00, 0x0001, 0xfbff};
    uint16_t bf16[3] = {0x3f80, 0xff80, 0x7fc0};
    int32_t i32[2] = {INT32_MIN, 7};
    int64_t i64[2] = {INT64_MAX, -5};
    uint8_t u8[5] = {0, 1, 127, 128, 255};
    int8_t i8[3] = {-128, 0, 127};
    double f64[2] = {3.141592653589793, -1e300};
    uint8_t bools[3] = {1, 0, 1};
    float scalar = 9.75f;
    StWriteTensor ts[] = {
        {"model.f32", ST_F32, 2, {2, 3}, f32},      {"f16 \"quoted\"\\", ST_F16, 1, {4}, f16},
        {"bf16", ST_BF16, 3, {1, 3, 1}, bf16},     {"i32", ST_I32, 1, {2}, i32},
        {"i64", ST_I64, 1, {2}, i64},              {"u8", ST_U8, 1, {5}, u8},
        {"empty_a", ST_F32, 2, {0, 7}, NULL},      {"i8", ST_I8, 1, {3}, i8},
        {"f64", ST_F64, 1, {2}, f64},              {"bool", ST_BOOL, 1, {3}, bools},
        {"scalar", ST_F32, 0, {0}, &scalar},       {"empty_b", ST_I64, 1, {0}, NULL},
    };
    int n = (int)(sizeof ts / sizeof ts[0]);
    const char *meta[] = {"format", "pt", "note", "line\nbreak \"q\" \\ \xc3\xa9"};
    cr_assert_eq(st_write(path, ts, n, meta, 2), 0, "%s", paw_last_error());

    SafeTensors st;
    cr_assert_eq(st_open(&st, path), 0, "%s", paw_last_error());
    cr_assert_eq(st.ntensors, n);
    cr_assert_str_eq(st_meta(&st, "format"), "pt");
    cr_assert_str_eq(st_meta(&st, "note"), meta[3]);
    cr_assert_null(st_meta(&st, "absent"));
    cr_assert_null(st_find(&st, "absent"));
    for (int i = 0; i < n; i++) {
        const StTensor *t = st_find(&st, ts[i].name);
        cr_assert_not_null(t, "%s", ts[i].name);
        cr_assert_eq(t->dtype, ts[i].dtype);
        cr_assert_eq(t->ndim, ts[i].ndim);
        int64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            cr_assert_eq(t->shape[d], ts[i].shape[d]);
            numel *= ts[i].shape[d];
        }
        cr_assert_eq(t->numel, numel);
        cr_assert_eq(t->nbytes, (size_t)numel * st_dtype_size(ts[i].dtype));
        if (t->nbytes) cr_assert_eq(memcmp(t->data, ts[i].data, t->nbytes), 0, "%s", ts[i].name);
    }
    // Tensors come back sorted by offset, and the header is padded to a multiple of 8.
    for (int i = 1; i < st.ntensors; i++) cr_assert(st.tensors[i - 1].data <= st.tensors[i].data);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | st.map.data[i];
    cr_assert_eq(hlen % 8, 0);
    cr_assert_eq(st.map.data[8 + hlen - 1] == ' ' || st.map.data[8 + hlen - 1] == '}', 1);

    float back[6];
    cr_assert_eq(st_to_f32(&st, st_find(&st, "model.f32"), back), 0);
    cr_assert_eq(memcmp(back, f32, sizeof f32), 0);
    cr_assert_eq(st_to_f32(&st, st_find(&st, "i32"), back), -1);
    cr_assert(strstr(paw_last_error(), "i32") != NULL);
    st_close(&st);

    // No temporary left behind; st_write refuses duplicate names and leaves the old file alone.
    DIR *dd = opendir(dir);
    cr_assert_not_null(dd);
    int entries = 0;
    for (struct dirent *e; (e = readdir(dd));)
        if (e->d_name[0] != '.') entries++;
    closedir(dd);
    cr_assert_eq(entries, 1);
    StWriteTensor dup[] = {{"x", ST_F32, 0, {0}, &scalar}, {"x", ST_F32, 0, {0}, &scalar}};
    cr_assert_eq(st_write(path, dup, 2, NULL, 0), -1);
    cr_assert(strstr(paw_last_error(), "'x'") != NULL);
    cr_assert_eq(st_open(&st, path), 0);
    cr_assert_eq(st.ntensors, n);
    st_close(&st);
    free(path);
    remove_tree(dir);
    free(dir);
}

Test(safetensors, empty_file_list_round_trips) {
    char *dir = make_tmpdir();
    char *path = paw_path_join(dir, "none.safetensors");
    cr_assert_eq(st_write(path, NULL, 0, NULL, 0), 0, "%s", paw_last_error());
    SafeTensors st;
    cr_assert_eq(st_open(&st, path), 0, "%s", paw_last_error());
    cr_assert_eq(st.ntensors, 0);
    cr_assert_eq(st.nmeta, 0);
    st_close(&st);
    free(path);
    remove_tree(dir);
    free(dir);
}

Test(safetensors, large_bf16_conversion_matches_scalar) {
    char *dir = make_tmpdir();
    char *path = paw_path_join(dir, "big.safetensors");
    int n = 300000;  // above the parallel threshold
    uint16_t *h = malloc((size_t)n * 2);
    for (int i = 0; i < n; i++) h[i] = (uint16_t)rng_next();
    StWriteTensor t[] = {{"w", ST_BF16, 2, {600, 500}, h}, {"v", ST_F16, 2, {500, 600}, h}};
    cr_assert_eq(st_write(path, t, 2, NULL, 0), 0, "%s", paw_last_error());
    SafeTensors st;
    cr_assert_eq(st_open(&st, path), 0, "%s", paw_last_error());
    float *out = malloc((size_t)n * 4);
    cr_assert_eq(st_to_f32(&st, st_find(&st, "w"), out), 0);
    for (int i = 0; i < n; i++) cr_assert_eq(bits_of(out[i]), (uint32_t)h[i] << 16);
    cr_assert_eq(st_to_f32(&st, st_find(&st, "v"), out), 0);
    for (int i = 0; i < n; i++) {
        float want = st_f16_to_f32(h[i]);
        cr_assert_eq(bits_of(out[i]), bits_of(want));
    }
    st_close(&st);
    free(out);
    free(h);
    free(path);
    remove_tree(dir);
    free(dir);
}

// ---------------------------------------------------------------------------------------------
// Interoperability with the Python library

static void check_reference(const SafeTensors *st) {
    cr_assert_eq(st->ntensors, 7);
    cr_assert_str_eq(st_meta(st, "format"), "pt");
    cr_assert_str_eq(st_meta(st, "source"), "make_safetensors_fixtures.py");

    const StTensor *t = st_find(st, "f32_mat");
    cr_assert_not_null(t);
    cr_assert_eq(t->dtype, ST_F32);
    cr_assert_eq(t->ndim, 2);
    cr_assert_eq(t->shape[0], 2);
    cr_assert_eq(t->shape[1], 3);
    float v[16];
    cr_assert_eq(st_to_f32(st, t, v), 0);
    for (int i = 0; i < 6; i++) cr_assert_eq(v[i], (i - 2.5f) * 0.75f);

    t = st_find(st, "f16_special");
    cr_assert_not_null(t);
    cr_assert_eq(t->dtype, ST_F16);
    cr_assert_eq(t->numel, 10);
    cr_assert_eq(st_to_f32(st, t, v), 0);
    float want16[9] = {0.0f, -0.0f, 1.0f, -2.5f, 65504.0f, ldexpf(1, -14), ldexpf(1, -24), INFINITY, -INFINITY};
    for (int i = 0; i < 9; i++) cr_assert_eq(bits_of(v[i]), bits_of(want16[i]), "f16_special[%d] = %g", i, v[i]);
    cr_assert(isnan(v[9]));

    t = st_find(st, "bf16_vals");
    cr_assert_not_null(t);
    cr_assert_eq(t->dtype, ST_BF16);
    cr_assert_eq(t->ndim, 2);
    cr_assert_eq(st_to_f32(st, t, v), 0);
    float wantbf[4] = {1.0f, -3.140625f, ldexpf(1, -130), float_of(0x7f7f0000u)};
    for (int i = 0; i < 4; i++) cr_assert_eq(bits_of(v[i]), bits_of(wantbf[i]), "bf16_vals[%d] = %g", i, v[i]);

    t = st_find(st, "i32_vec");
    cr_assert_not_null(t);
    cr_assert_eq(t->dtype, ST_I32);
    int32_t i32[5], want32[5] = {INT32_MIN, -1, 0, 1, INT32_MAX};
    cr_assert_eq(t->nbytes, sizeof i32);
    memcpy(i32, t->data, sizeof i32);
    cr_assert_eq(memcmp(i32, want32, sizeof i32), 0);

    t = st_find(st, "i64_vec");
    cr_assert_not_null(t);
    cr_assert_eq(t->dtype, ST_I64);
    int64_t i64[3], want64[3] = {-(INT64_C(1) << 62), (INT64_C(1) << 40) + 7, INT64_MAX};
    cr_assert_eq(t->nbytes, sizeof i64);
    memcpy(i64, t->data, sizeof i64);
    cr_assert_eq(memcmp(i64, want64, sizeof i64), 0);

    t = st_find(st, "scalar");
    cr_assert_not_null(t);
    cr_assert_eq(t->ndim, 0);
    cr_assert_eq(t->numel, 1);
    cr_assert_eq(st_to_f32(st, t, v), 0);
    cr_assert_eq(v[0], 42.5f);

    t = st_find(st, "empty");
    cr_assert_not_null(t);
    cr_assert_eq(t->ndim, 2);
    cr_assert_eq(t->shape[0], 0);
    cr_assert_eq(t->shape[1], 4);
    cr_assert_eq(t->numel, 0);
    cr_assert_eq(t->nbytes, 0);
}

// Rewrites every tensor of src into dst (in reverse offset order, so the writer's order matters
// nothing to readers), with metadata format=pt plus src's own.
static void rewrite(const SafeTensors *src, const char *dst) {
    int n = src->ntensors;
    StWriteTensor *w = calloc((size_t)n + 1, sizeof *w);
    for (int i = 0; i < n; i++) {
        const StTensor *t = &src->tensors[n - 1 - i];
        w[i].name = t->name;
        w[i].dtype = t->dtype;
        w[i].ndim = t->ndim;
        memcpy(w[i].shape, t->shape, sizeof t->shape);
        w[i].data = t->data;
    }
    const char **meta = calloc((size_t)src->nmeta * 2 + 2, sizeof *meta);
    int nm = 0;
    for (int i = 0; i < src->nmeta; i++) {
        meta[2 * nm] = src->meta_keys[i];
        meta[2 * nm + 1] = src->meta_values[i];
        nm++;
    }
    if (!st_meta(src, "format")) {
        meta[2 * nm] = "format";
        meta[2 * nm + 1] = "pt";
        nm++;
    }
    cr_assert_eq(st_write(dst, w, n, meta, nm), 0, "%s", paw_last_error());
    free(meta);
    free(w);
}

Test(safetensors, python_reference_file) {
    SafeTensors st;
    cr_assert_eq(st_open(&st, REFERENCE), 0, "%s", paw_last_error());
    check_reference(&st);

    // Written back by C and read again: identical content.
    char *dir = make_tmpdir();
    char *path = paw_path_join(dir, "c.safetensors");
    rewrite(&st, path);
    SafeTensors st2;
    cr_assert_eq(st_open(&st2, path), 0, "%s", paw_last_error());
    check_reference(&st2);
    st_close(&st2);
    const char *export = getenv("PAW_ST_EXPORT");
    if (export && *export) rewrite(&st, export);
    st_close(&st);
    free(path);
    remove_tree(dir);
    free(dir);
}

// Only with PAW_ST_HF_DIR set (see the top of this file): rewrites a save_pretrained checkpoint.
Test(safetensors, python_hf_checkpoint_rewrite) {
    const char *d = getenv("PAW_ST_HF_DIR");
    if (!d || !*d) return;
    char in[1024], out[1024];
    snprintf(in, sizeof in, "%s/orig/model.safetensors", d);
    snprintf(out, sizeof out, "%s/c/model.safetensors", d);
    SafeTensors st;
    cr_assert_eq(st_open(&st, in), 0, "%s", paw_last_error());
    rewrite(&st, out);
    st_close(&st);
}

// ---------------------------------------------------------------------------------------------
// Bad files: each must fail with a message naming the file and, where it applies, the tensor.

#define VALID_HEADER                                                              \
    "{\"__metadata__\":{\"format\":\"pt\"},"                                      \
    "\"alpha\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"      \
    "\"beta\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[16,22]}}"
static const uint8_t valid_data[22] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22};

// Returns header with the first occurrence of from replaced by to (caller frees).
static char *replace(const char *header, const char *from, const char *to) {
    const char *at = strstr(header, from);
    cr_assert_not_null(at, "'%s' not in header", from);
    size_t a = (size_t)(at - header), nf = strlen(from), nt = strlen(to), rest = strlen(at + nf);
    char *out = malloc(a + nt + rest + 1);
    memcpy(out, header, a);
    memcpy(out + a, to, nt);
    memcpy(out + a + nt, at + nf, rest + 1);
    return out;
}

// st_open must fail, and the message must hold the path and each of the given words.
static void expect_fail(const char *path, const char *w1, const char *w2) {
    SafeTensors st;
    paw_clear_error();
    int rc = st_open(&st, path);
    if (rc == 0) st_close(&st);
    cr_assert_eq(rc, -1, "%s opened but should not", path);
    const char *msg = paw_last_error();
    cr_assert(strstr(msg, path) != NULL, "message lacks the path: %s", msg);
    if (w1) cr_assert(strstr(msg, w1) != NULL, "message lacks '%s': %s", w1, msg);
    if (w2) cr_assert(strstr(msg, w2) != NULL, "message lacks '%s': %s", w2, msg);
    cr_assert_null(st.path);
    cr_assert_null(st.tensors);
}

// A bad file whose header is VALID_HEADER with one substitution.
static void expect_bad_header(const char *dir, const char *from, const char *to, const char *w1, const char *w2) {
    char *path = paw_path_join(dir, "bad.safetensors");
    char *h = replace(VALID_HEADER, from, to);
    write_st(path, h, valid_data, sizeof valid_data);
    expect_fail(path, w1, w2);
    free(h);
    free(path);
}

// The pieces below are all built from one valid file; first make sure that one opens.
static char *bad_dir;
static void bad_setup(void) {
    bad_dir = make_tmpdir();
    char *path = paw_path_join(bad_dir, "good.safetensors");
    write_st(path, VALID_HEADER, valid_data, sizeof valid_data);
    SafeTensors st;
    cr_assert_eq(st_open(&st, path), 0, "%s", paw_last_error());
    cr_assert_eq(st.ntensors, 2);
    cr_assert_eq(st_find(&st, "beta")->nbytes, 6);
    st_close(&st);
    free(path);
}
static void bad_teardown(void) {
    remove_tree(bad_dir);
    free(bad_dir);
}

Test(safetensors_bad, missing_file, .init = bad_setup, .fini = bad_teardown) {
    char *path = paw_path_join(bad_dir, "nope.safetensors");
    expect_fail(path, NULL, NULL);
    free(path);
}

Test(safetensors_bad, empty_file, .init = bad_setup, .fini = bad_teardown) {
    char *path = paw_path_join(bad_dir, "empty.safetensors");
    write_raw(path, "", 0);
    expect_fail(path, "too short", NULL);
    free(path);
}

Test(safetensors_bad, truncated_length, .init = bad_setup, .fini = bad_teardown) {
    char *path = paw_path_join(bad_dir, "short.safetensors");
    write_raw(path, "\x10\0\0\0\0", 5);
    expect_fail(path, "too short", NULL);
    free(path);
}

Test(safetensors_bad, truncated_data, .init = bad_setup, .fini = bad_teardown) {
    char *path = paw_path_join(bad_dir, "cut.safetensors");
    write_st(path, VALID_HEADER, valid_data, sizeof valid_data - 4);
    expect_fail(path, "'beta'", "past the end");
    free(path);
}

Test(safetensors_bad, truncated_header, .init = bad_setup, .fini = bad_teardown) {
    char *good = paw_path_join(bad_dir, "good.safetensors");
    size_t n;
    char *bytes = paw_read_file(good, &n);
    cr_assert_not_null(bytes);
    char *path = paw_path_join(bad_dir, "cuthdr.safetensors");
    write_raw(path, bytes, 8 + 20);
    expect_fail(path, "past the end of the file", NULL);
    free(bytes);
    free(path);
    free(good);
}

Test(safetensors_bad, header_length_past_end, .init = bad_setup, .fini = bad_teardown) {
    char *path = paw_path_join(bad_dir, "len.safetensors");
    char *good = paw_path_join(bad_dir, "good.safetensors");
    size_t n;
    uint8_t *bytes = (uint8_t *)paw_read_file(good, &n);
    bytes[0] = (uint8_t)(n - 7), bytes[1] = (uint8_t)((n - 7) >> 8);  // one byte too many
    write_raw(path, bytes, n);
    expect_fail(path, "past the end of the file", NULL);
    bytes[7] = 0x10;  // 2^60: absurd
    write_raw(path, bytes, n);
    expect_fail(path, "limit", NULL);
    free(bytes);
    free(good);
    free(path);
}

Test(safetensors_bad, malformed_json, .init = bad_setup, .fini = bad_teardown) {
    expect_bad_header(bad_dir, "[0,16]},", "[0,16],", "not valid JSON", NULL);
    expect_bad_header(bad_dir, "\"beta\":", "\"beta\" ", "not valid JSON", NULL);
    expect_bad_header(bad_dir, "{\"__metadata__\"", "[\"__metadata__\"", "'{'", NULL);
}

Test(safetensors_bad, trailing_garbage_in_header, .init = bad_setup, .fini = bad_teardown) {
    char *path = paw_path_join(bad_dir, "bad.safetensors");
    write_st(path, VALID_HEADER " x", valid_data, sizeof valid_data);
    expect_fail(path, "not valid JSON", NULL);
    free(path);
}

Test(safetensors_bad, nul_in_header, .init = bad_setup, .fini = bad_teardown) {
    char *good = paw_path_join(bad_dir, "good.safetensors");
    size_t n;
    char *bytes = paw_read_file(good, &n);
    bytes[8 + 20] = 0;
    char *path = paw_path_join(bad_dir, "nul.safetensors");
    write_raw(path, bytes, n);
    expect_fail(path, "NUL", NULL);
    free(bytes);
    free(path);
    free(good);
}

Test(safetensors_bad, entry_not_object, .init = bad_setup, .fini = bad_teardown) {
    expect_bad_header(bad_dir, "\"beta\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[16,22]}", "\"beta\":[1]",
                      "'beta'", "not a JSON object");
}

Test(safetensors_bad, unknown_dtype, .init = bad_setup, .fini = bad_teardown) {
    expect_bad_header(bad_dir, "\"F32\"", "\"F33\"", "'alpha'", "F33");
    expect_bad_header(bad_dir, "\"dtype\":\"F16\"", "\"dtype\":16", "'beta'", "dtype");
}

Test(safetensors_bad, bad_shape, .init = bad_setup, .fini = bad_teardown) {
    expect_bad_header(bad_dir, "[2,2]", "[2,-2]", "'alpha'", "shape[1]");
    expect_bad_header(bad_dir, "[2,2]", "[2,\"2\"]", "'alpha'", "shape[1]");
    expect_bad_header(bad_dir, "[2,2]", "[2,2.5]", "'alpha'", "shape[1]");
    expect_bad_header(bad_dir, "[2,2]", "4", "'alpha'", "shape");
    expect_bad_header(bad_dir, "\"shape\":[3],", "", "'beta'", "shape");
}

Test(safetensors_bad, too_many_dims, .init = bad_setup, .fini = bad_teardown) {
    expect_bad_header(bad_dir, "[2,2]", "[1,1,1,1,1,1,1,1,2,2]", "'alpha'", "dimensions");
}

Test(safetensors_bad, numel_overflow, .init = bad_setup, .fini = bad_teardown) {
    expect_bad_header(bad_dir, "[2,2]", "[4294967296,4294967296,4]", "'alpha'", "overflow");
    expect_bad_header(bad_dir, "[2,2]", "[1e300]", "'alpha'", "shape[0]");
}

Test(safetensors_bad, bad_data_offsets, .init = bad_setup, .fini = bad_teardown) {
    expect_bad_header(bad_dir, ",\"data_offsets\":[16,22]", "", "'beta'", "data_offsets");
    expect_bad_header(bad_dir, "[16,22]", "[16]", "'beta'", "data_offsets");
    expect_bad_header(bad_dir, "[16,22]", "[16,22,28]", "'beta'", "data_offsets");
    expect_bad_header(bad_dir, "[16,22]", "[16,\"22\"]", "'beta'", "data_offsets");
    expect_bad_header(bad_dir, "[16,22]", "[22,16]", "'beta'", "begin");
}

Test(safetensors_bad, wrong_byte_size, .init = bad_setup, .fini = bad_teardown) {
    expect_bad_header(bad_dir, "[2,2]", "[2,3]", "'alpha'", "expected 24");
    expect_bad_header(bad_dir, "\"F16\"", "\"F32\"", "'beta'", "expected 12");
}

Test(safetensors_bad, offsets_out_of_range, .init = bad_setup, .fini = bad_teardown) {
    expect_bad_header(bad_dir, "\"shape\":[3],\"data_offsets\":[16,22]", "\"shape\":[5],\"data_offsets\":[16,26]",
                      "'beta'", "past the end");
    expect_bad_header(bad_dir, "[16,22]", "[9007199254740000,9007199254740006]", "'beta'", "past the end");
}

Test(safetensors_bad, overlapping_offsets, .init = bad_setup, .fini = bad_teardown) {
    expect_bad_header(bad_dir, "[16,22]", "[10,16]", "'beta'", "overlap");
}

Test(safetensors_bad, hole_and_trailing_bytes, .init = bad_setup, .fini = bad_teardown) {
    char *path = paw_path_join(bad_dir, "hole.safetensors");
    uint8_t data[24] = {0};
    char *h = replace(VALID_HEADER, "[16,22]", "[18,24]");
    write_st(path, h, data, sizeof data);
    expect_fail(path, "'beta'", "hole");
    write_st(path, VALID_HEADER, data, sizeof data);  // two bytes nobody owns
    expect_fail(path, "trailing", NULL);
    free(h);
    free(path);
}

Test(safetensors_bad, duplicate_name, .init = bad_setup, .fini = bad_teardown) {
    expect_bad_header(bad_dir, "\"beta\"", "\"alpha\"", "'alpha'", "duplicate");
}

Test(safetensors_bad, bad_metadata, .init = bad_setup, .fini = bad_teardown) {
    expect_bad_header(bad_dir, "{\"format\":\"pt\"}", "\"pt\"", "__metadata__", "not a JSON object");
    expect_bad_header(bad_dir, "{\"format\":\"pt\"}", "{\"format\":1}", "__metadata__", "'format'");
    expect_bad_header(bad_dir, "{\"format\":\"pt\"}", "{\"format\":{\"x\":\"y\"}}", "__metadata__", "'format'");
}

// Random byte flips in the length and header of a valid file: st_open must return 0 or -1,
// never crash or read outside the mapping (run under `make asan`).
Test(safetensors_bad, fuzz_header_bytes, .init = bad_setup, .fini = bad_teardown) {
    char *src;
    size_t n;
    cr_assert_not_null(src = paw_read_file(REFERENCE, &n));
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | (uint8_t)src[i];
    cr_assert(hlen + 8 <= n);
    char *path = paw_path_join(bad_dir, "fuzz.safetensors");
    uint8_t *buf = malloc(n);
    rng_state = 12345;
    int opened = 0, failed = 0;
    static const char interesting[] = "{}[]\",:0123456789-e. \\\x00\xff";
    for (int iter = 0; iter < 3000; iter++) {
        memcpy(buf, src, n);
        int flips = 1 + (int)(rng_next() % 4);
        for (int k = 0; k < flips; k++) {
            size_t at = (size_t)(rng_next() % (8 + hlen));
            uint64_t r = rng_next();
            if (r & 1) buf[at] = (uint8_t)interesting[(r >> 1) % (sizeof interesting - 1)];
            else buf[at] ^= (uint8_t)(1u << ((r >> 1) % 8));
        }
        size_t len = n;
        if (iter % 10 == 0) len = (size_t)(rng_next() % (n + 1));  // truncations too
        write_raw(path, buf, len);
        SafeTensors st;
        if (st_open(&st, path) == 0) {
            opened++;
            float tmp[64];
            for (int i = 0; i < st.ntensors; i++) {
                const StTensor *t = &st.tensors[i];
                volatile uint8_t sum = 0;
                for (size_t b = 0; b < t->nbytes; b++) sum += t->data[b];  // every byte must be readable
                if (t->numel <= 64) st_to_f32(&st, t, tmp);
            }
            st_close(&st);
        } else {
            failed++;
            cr_assert(strstr(paw_last_error(), path) != NULL, "%s", paw_last_error());
        }
    }
    cr_assert_eq(opened + failed, 3000);
    cr_assert(failed > 0);
    free(buf);
    free(path);
    free(src);
}

// ---------------------------------------------------------------------------------------------
// Conversions

// Nearest bf16 to x, ties to even, computed in double from the two bf16 neighbours.
static uint16_t ref_bf16(float x) {
    uint32_t u = bits_of(x), sign = u & 0x80000000u, a = u & 0x7fffffffu;
    uint32_t lo = a & 0xffff0000u;
    double vx = (double)float_of(a), vlo = (double)float_of(lo);
    double vhi = lo == 0x7f7f0000u ? ldexp(1.0, 128) : (double)float_of(lo + 0x10000u);
    uint32_t pick;
    if (vx - vlo < vhi - vx) pick = lo;
    else if (vx - vlo > vhi - vx) pick = lo + 0x10000u;
    else pick = ((lo >> 16) & 1u) ? lo + 0x10000u : lo;
    return (uint16_t)((sign | pick) >> 16);
}

// The value of a half from its definition.
static double half_value(uint16_t h) {
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

// Nearest half to x, ties to even, by search over the (monotone) positive half codes.
static uint16_t ref_f16(float x) {
    uint16_t sign = (bits_of(x) >> 31) ? 0x8000 : 0;
    double a = fabs((double)x);
    if (a >= 65520.0) return sign | 0x7c00;
    int lo = 0, hi = 0x7bff;  // largest code with value <= a
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (half_value((uint16_t)mid) <= a) lo = mid;
        else hi = mid - 1;
    }
    if (lo == 0x7bff) return sign | 0x7bff;
    double dl = a - half_value((uint16_t)lo), dh = half_value((uint16_t)(lo + 1)) - a;
    int pick = dl < dh ? lo : dl > dh ? lo + 1 : (lo & 1 ? lo + 1 : lo);
    return (uint16_t)(sign | pick);
}

Test(safetensors_convert, bf16_special_values) {
    cr_assert_eq(st_f32_to_bf16(1.0f), 0x3f80);
    cr_assert_eq(st_f32_to_bf16(-1.0f), 0xbf80);
    cr_assert_eq(st_f32_to_bf16(0.0f), 0x0000);
    cr_assert_eq(st_f32_to_bf16(-0.0f), 0x8000);
    cr_assert_eq(st_f32_to_bf16(1.0f + ldexpf(1, -8)), 0x3f80);                     // tie, 0x3f80 is even
    cr_assert_eq(st_f32_to_bf16(1.0f + 3 * ldexpf(1, -8)), 0x3f82);                 // tie, 0x3f81 is odd
    cr_assert_eq(st_f32_to_bf16(1.0f + ldexpf(1, -8) + ldexpf(1, -20)), 0x3f81);    // just above the tie
    cr_assert_eq(st_f32_to_bf16(1.0f + ldexpf(1, -8) - ldexpf(1, -20)), 0x3f80);    // just below
    cr_assert_eq(st_f32_to_bf16(float_of(0x7f7f7fffu)), 0x7f7f);                    // stays at bf16 max
    cr_assert_eq(st_f32_to_bf16(float_of(0x7f7f8000u)), 0x7f80);                    // tie rounds to inf
    cr_assert_eq(st_f32_to_bf16(float_of(0x7f7fffffu)), 0x7f80);                    // FLT_MAX -> inf
    cr_assert_eq(st_f32_to_bf16(INFINITY), 0x7f80);
    cr_assert_eq(st_f32_to_bf16(-INFINITY), 0xff80);
    cr_assert_eq(st_f32_to_bf16(float_of(0x00010000u)), 0x0001);  // smallest bf16 subnormal
    cr_assert_eq(st_f32_to_bf16(float_of(0x00008000u)), 0x0000);  // half of it: tie to even (0)
    cr_assert_eq(st_f32_to_bf16(float_of(0x00018000u)), 0x0002);  // 1.5 of it: tie to even (2)
    cr_assert_eq(st_f32_to_bf16(float_of(0x007fffffu)), 0x0080);  // largest subnormal -> smallest normal
    // NaN stays NaN, even a signalling one whose payload lies in the dropped bits.
    uint16_t n1 = st_f32_to_bf16(float_of(0x7f800001u)), n2 = st_f32_to_bf16(float_of(0xffc00000u));
    cr_assert(isnan(st_bf16_to_f32(n1)));
    cr_assert(isnan(st_bf16_to_f32(n2)));
    cr_assert_eq(n2 & 0x8000, 0x8000);
    cr_assert_eq(bits_of(st_bf16_to_f32(0x3f80)), 0x3f800000u);
    cr_assert_eq(bits_of(st_bf16_to_f32(0x0001)), 0x00010000u);
    cr_assert_eq(st_bf16_to_f32(0xff80), -INFINITY);
}

Test(safetensors_convert, bf16_random_and_exhaustive) {
    rng_state = 777;
    for (int i = 0; i < 1000000; i++) {
        uint32_t u = (uint32_t)rng_next();
        float x = float_of(u);
        if (isnan(x)) continue;
        uint16_t got = st_f32_to_bf16(x), want = ref_bf16(x);
        cr_assert_eq(got, want, "x bits %08x: got %04x want %04x", u, got, want);
    }
    for (uint32_t h = 0; h < 65536; h++) {
        float f = st_bf16_to_f32((uint16_t)h);
        if (isnan(f)) continue;
        cr_assert_eq(st_f32_to_bf16(f), h);
    }
}

Test(safetensors_convert, f16_special_values) {
    cr_assert_eq(st_f32_to_f16(1.0f), 0x3c00);
    cr_assert_eq(st_f32_to_f16(-2.0f), 0xc000);
    cr_assert_eq(st_f32_to_f16(0.0f), 0x0000);
    cr_assert_eq(st_f32_to_f16(-0.0f), 0x8000);
    cr_assert_eq(st_f32_to_f16(65504.0f), 0x7bff);
    cr_assert_eq(st_f32_to_f16(65519.0f), 0x7bff);
    cr_assert_eq(st_f32_to_f16(65520.0f), 0x7c00);  // halfway to 2^16 rounds to inf
    cr_assert_eq(st_f32_to_f16(1e10f), 0x7c00);
    cr_assert_eq(st_f32_to_f16(-INFINITY), 0xfc00);
    cr_assert_eq(st_f32_to_f16(ldexpf(1, -14)), 0x0400);  // smallest normal
    cr_assert_eq(st_f32_to_f16(ldexpf(1, -24)), 0x0001);  // smallest subnormal
    cr_assert_eq(st_f32_to_f16(ldexpf(1, -25)), 0x0000);  // tie to even
    cr_assert_eq(st_f32_to_f16(ldexpf(1.0000001f, -25)), 0x0001);
    cr_assert_eq(st_f32_to_f16(ldexpf(3, -25)), 0x0002);  // tie between 1 and 2 -> 2
    cr_assert_eq(st_f32_to_f16(ldexpf(1023.5f, -24)), 0x0400);  // largest subnormal + half ulp -> normal
    cr_assert_eq(st_f32_to_f16(1.0f + ldexpf(1, -11)), 0x3c00);  // tie, even
    cr_assert_eq(st_f32_to_f16(1.0f + 3 * ldexpf(1, -11)), 0x3c02);
    cr_assert_eq(st_f32_to_f16(ldexpf(1, -30)), 0x0000);
    cr_assert(isnan(st_f16_to_f32(st_f32_to_f16(NAN))));
    cr_assert(isnan(st_f16_to_f32(st_f32_to_f16(float_of(0x7f800001u)))));
    cr_assert_eq(st_f16_to_f32(0x7c00), INFINITY);
    cr_assert_eq(st_f16_to_f32(0x0001), ldexpf(1, -24));
    cr_assert_eq(st_f16_to_f32(0x03ff), ldexpf(1023, -24));
    cr_assert_eq(bits_of(st_f16_to_f32(0x8000)), 0x80000000u);
}

Test(safetensors_convert, f16_exhaustive_and_random) {
    for (uint32_t h = 0; h < 65536; h++) {
        float f = st_f16_to_f32((uint16_t)h);
        double want = half_value((uint16_t)h);
        if (isnan(want)) {
            cr_assert(isnan(f), "%04x", h);
            continue;
        }
        cr_assert_eq((double)f, want, "%04x", h);
        cr_assert_eq(signbit(f) != 0, (h >> 15) != 0);
        cr_assert_eq(st_f32_to_f16(f), h, "%04x", h);
    }
    rng_state = 4242;
    for (int i = 0; i < 300000; i++) {
        // Half of the draws near the f16 range, where rounding is interesting.
        uint32_t u = (uint32_t)rng_next();
        if (i & 1) u = (u & 0x80000000u) | (0x30000000u + (u & 0x0fffffffu) % 0x18000000u);
        float x = float_of(u);
        if (isnan(x)) continue;
        uint16_t got = st_f32_to_f16(x), want = ref_f16(x);
        cr_assert_eq(got, want, "x bits %08x (%g): got %04x want %04x", u, x, got, want);
    }
}
