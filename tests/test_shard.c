// Shard format (round trip, random access, corruption) and the JSONL build (bad input, skip/fail).
// The build tests use a stand-in encoder (one token per byte, tagged per segment) so that they
// check the pipeline, not the tokenizer.
#define _XOPEN_SOURCE 700
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zstd.h>

#include "common/error.h"
#include "common/fileio.h"
#include "data/loader.h"
#include "data/shard.h"
#include "data/shard_build.h"

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static char *make_tmpdir(void) {
    char *d = xstrdup("/tmp/paw_test_shard_XXXXXX");
    cr_assert_not_null(mkdtemp(d));
    return d;
}

static void rm_tree(char *dir) {
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

// A random example, reproducible from (seed, i); tokens fill the whole uint32 range.
typedef struct {
    uint32_t *tok[PAW_SEG_COUNT];
    uint32_t len[PAW_SEG_COUNT];
    char family[32], task[32], input[300], output[64];
} GenExample;

static void gen_example(GenExample *g, uint64_t seed, uint64_t i) {
    uint64_t s = seed * 1000003 + i + 1;
    for (int k = 0; k < 3; k++) rng_next(&s);
    for (int k = 0; k < PAW_SEG_COUNT; k++) {
        g->len[k] = (uint32_t)(rng_next(&s) % (k == 3 ? 20 : 200));  // empty segments happen too
        g->tok[k] = xmalloc(sizeof(uint32_t) * (g->len[k] + 1));
        for (uint32_t j = 0; j < g->len[k]; j++) g->tok[k][j] = (uint32_t)rng_next(&s);
    }
    snprintf(g->family, sizeof g->family, "fam%d", (int)(rng_next(&s) % 7));
    snprintf(g->task, sizeof g->task, i % 5 ? "task-%llu" : "", (unsigned long long)(i / 3));
    int n = (int)(rng_next(&s) % 250);
    for (int j = 0; j < n; j++) g->input[j] = (char)('a' + rng_next(&s) % 26);
    g->input[n] = 0;
    snprintf(g->output, sizeof g->output, "out %llu", (unsigned long long)rng_next(&s));
}

static void gen_free(GenExample *g) {
    for (int k = 0; k < PAW_SEG_COUNT; k++) free(g->tok[k]);
}

static PawExample gen_view(const GenExample *g) {
    PawExample ex = {0};
    for (int k = 0; k < PAW_SEG_COUNT; k++) {
        ex.seg[k] = g->tok[k];
        ex.len[k] = g->len[k];
    }
    ex.family = g->family, ex.family_len = (uint32_t)strlen(g->family);
    ex.task_id = g->task, ex.task_id_len = (uint32_t)strlen(g->task);
    ex.input = g->input, ex.input_len = (uint32_t)strlen(g->input);
    ex.output = g->output, ex.output_len = (uint32_t)strlen(g->output);
    return ex;
}

static void write_shard(const char *path, uint64_t seed, int n, int epb, int threads) {
    PawShardWriter *w = paw_shard_writer_open(path, epb, 3, threads);
    cr_assert_not_null(w, "%s", paw_last_error());
    for (int i = 0; i < n; i++) {
        GenExample g;
        gen_example(&g, seed, (uint64_t)i);
        PawExample ex = gen_view(&g);
        cr_assert_eq(paw_shard_writer_add(w, &ex), 0, "%s", paw_last_error());
        gen_free(&g);
    }
    cr_assert_eq(paw_shard_writer_commit(w), 0, "%s", paw_last_error());
}

static void expect_example(PawShard *s, uint64_t seed, uint64_t i) {
    GenExample g;
    gen_example(&g, seed, i);
    PawExample ex;
    cr_assert_eq(paw_shard_get(s, i, &ex), 0, "%s", paw_last_error());
    uint32_t len[PAW_SEG_COUNT];
    paw_shard_lengths(s, i, len);
    for (int k = 0; k < PAW_SEG_COUNT; k++) {
        cr_assert_eq(ex.len[k], g.len[k], "example %llu segment %d", (unsigned long long)i, k);
        cr_assert_eq(len[k], g.len[k]);
        cr_assert(g.len[k] == 0 || memcmp(ex.seg[k], g.tok[k], 4 * g.len[k]) == 0, "example %llu segment %d tokens",
                  (unsigned long long)i, k);
    }
    cr_assert_str_eq(ex.family, g.family);
    cr_assert_str_eq(ex.task_id, g.task);
    cr_assert_str_eq(ex.input, g.input);
    cr_assert_str_eq(ex.output, g.output);
    cr_assert_eq(ex.input_len, strlen(g.input));
    gen_free(&g);
}

Test(shard, round_trip_sequential_and_random_access) {
    char *dir = make_tmpdir();
    char *path = paw_path_join(dir, "a.pawshard");
    const int n = 1000;
    write_shard(path, 7, n, 13, 2);  // 13 per block: a partial last block
    PawShard *s = paw_shard_open(path);
    cr_assert_not_null(s, "%s", paw_last_error());
    cr_assert_eq(paw_shard_num_examples(s), (uint64_t)n);
    cr_assert_eq(paw_shard_num_blocks(s), (uint32_t)((n + 12) / 13));
    for (int i = 0; i < n; i++) expect_example(s, 7, (uint64_t)i);
    uint64_t r = 99;
    for (int k = 0; k < 500; k++) expect_example(s, 7, rng_next(&r) % n);
    uint32_t b, slot;
    paw_shard_locate(s, 27, &b, &slot);
    cr_assert_eq(b, 2);
    cr_assert_eq(slot, 1);
    PawExample ex;
    cr_assert_eq(paw_shard_get(s, (uint64_t)n, &ex), -1);
    cr_assert_eq(paw_shard_verify(s), 0, "%s", paw_last_error());
    paw_shard_close(s);
    free(path);
    rm_tree(dir);
}

Test(shard, output_does_not_depend_on_threads_and_leaves_no_temporary) {
    char *dir = make_tmpdir();
    char *p1 = paw_path_join(dir, "t1.pawshard"), *p2 = paw_path_join(dir, "t2.pawshard");
    write_shard(p1, 3, 300, 8, 1);
    write_shard(p2, 3, 300, 8, 2);
    size_t n1, n2;
    char *a = paw_read_file(p1, &n1), *b = paw_read_file(p2, &n2);
    cr_assert_eq(n1, n2);
    cr_assert_eq(memcmp(a, b, n1), 0);
    free(a);
    free(b);
    DIR *d = opendir(dir);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') {
            files++;
            cr_assert_null(strstr(e->d_name, ".tmp"), "left %s", e->d_name);
        }
    closedir(d);
    cr_assert_eq(files, 2);
    free(p1);
    free(p2);
    rm_tree(dir);
}

Test(shard, empty_shard_and_abort) {
    char *dir = make_tmpdir();
    char *path = paw_path_join(dir, "e.pawshard");
    write_shard(path, 1, 0, 4, 1);
    PawShard *s = paw_shard_open(path);
    cr_assert_not_null(s, "%s", paw_last_error());
    cr_assert_eq(paw_shard_num_examples(s), 0);
    cr_assert_eq(paw_shard_verify(s), 0);
    paw_shard_close(s);
    char *p2 = paw_path_join(dir, "aborted.pawshard");
    PawShardWriter *w = paw_shard_writer_open(p2, 4, 3, 1);
    GenExample g;
    gen_example(&g, 1, 0);
    PawExample ex = gen_view(&g);
    cr_assert_eq(paw_shard_writer_add(w, &ex), 0);
    gen_free(&g);
    paw_shard_writer_abort(w);
    cr_assert_eq(paw_file_exists(p2), 0);
    free(path);
    free(p2);
    rm_tree(dir);
}

// Writes a shard of 40 examples in 4 blocks, returns its bytes; the test corrupts a copy.
static char *corruptible(char **dir, char **path, size_t *size) {
    *dir = make_tmpdir();
    *path = paw_path_join(*dir, "c.pawshard");
    write_shard(*path, 11, 40, 10, 1);
    char *data = paw_read_file(*path, size);
    cr_assert_not_null(data);
    return data;
}

// Reads every example; returns the first error message (or NULL when all read).
static char *read_all_error(const char *path) {
    PawShard *s = paw_shard_open(path);
    if (!s) return xstrdup(paw_last_error());
    char *err = NULL;
    for (uint64_t i = 0; i < paw_shard_num_examples(s) && !err; i++) {
        PawExample ex;
        if (paw_shard_get(s, i, &ex) != 0) err = xstrdup(paw_last_error());
    }
    paw_shard_close(s);
    return err;
}

// A one-block, one-example shard whose checksums are right but whose block decodes to `raw` and
// whose index claims `usize` bytes for it: damage the checksums cannot see.
static void write_crafted_shard(const char *path, const void *raw, size_t raw_n, uint32_t usize) {
    uint8_t file[4096], index[24 + 32 + 16] = {0};
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1);
    memcpy(file, "PAWSHRD\0\1\0\0\0\x10\0\0\0", 16);
    size_t csize = ZSTD_compress2(cc, file + 16, sizeof file - 16, raw, raw_n);
    cr_assert(!ZSTD_isError(csize));
    uint64_t n_examples = 1, offset = 16, first = 0;
    uint32_t n_blocks = 1, version = 1, epb = 1, cs = (uint32_t)csize, n = 1;
    memcpy(index, &n_examples, 8), memcpy(index + 8, &n_blocks, 4), memcpy(index + 12, &version, 4);
    memcpy(index + 16, &epb, 4);
    memcpy(index + 24, &offset, 8), memcpy(index + 32, &cs, 4), memcpy(index + 36, &usize, 4);
    memcpy(index + 40, &first, 8), memcpy(index + 48, &n, 4);
    uint64_t ioff = 16 + csize;
    size_t isize = ZSTD_compress2(cc, file + ioff, sizeof file - ioff, index, sizeof index);
    cr_assert(!ZSTD_isError(isize));
    uint64_t is = isize;
    memcpy(file + ioff + isize, &ioff, 8), memcpy(file + ioff + isize + 8, &is, 8);
    memcpy(file + ioff + isize + 16, "PAWSEND\0", 8);
    ZSTD_freeCCtx(cc);
    FILE *f = fopen(path, "wb");
    cr_assert(f && fwrite(file, 1, ioff + isize + 24, f) == ioff + isize + 24 && fclose(f) == 0);
}

// Found by fuzzing (tests/fuzz/fuzz_shard_payload.c): a block shorter than its example count
// field was read past its end, and an index size that disagrees with the block's frame was
// allocated (up to 4 GiB) before the frame was looked at.
Test(shard, block_sizes_that_checksums_cannot_catch_are_errors) {
    char *dir = make_tmpdir(), *path = paw_path_join(dir, "crafted.pawshard");
    const uint8_t two[2] = {1, 0};
    write_crafted_shard(path, two, sizeof two, 2);
    char *err = read_all_error(path);
    cr_assert(err && strstr(err, "block 0: corrupt") && strstr(err, "crafted.pawshard"), "%s", err ? err : "(read)");
    free(err);
    write_crafted_shard(path, two, sizeof two, 0xF0000000u);
    err = read_all_error(path);
    cr_assert(err && strstr(err, "block 0: corrupt (bad zstd frame header)"), "%s", err ? err : "(read)");
    free(err);
    free(path);
    rm_tree(dir);
}

// Found by fuzzing (tests/fuzz/fuzz_shard.c): an index frame whose header claims far more bytes
// than its blocks can hold (here 1 TiB in 17 bytes) was allocated before anything else was checked;
// under ASan, or with overcommit off, that ends the process. It must be refused first.
Test(shard, index_frame_claiming_more_than_it_can_hold_is_refused) {
    char *dir = make_tmpdir(), *path = paw_path_join(dir, "claims.pawshard");
    uint8_t file[16 + 17 + 24];
    memcpy(file, "PAWSHRD\0\1\0\0\0\x10\0\0\0", 16);
    // zstd frame: magic; descriptor 0xE0 (single segment, 8-byte content size); content size
    // 2^40; one last RLE block of 1 byte (header 0x0B 0 0) and its byte.
    const uint8_t frame[17] = {0x28, 0xb5, 0x2f, 0xfd, 0xe0, 0, 0, 0, 0, 0, 1, 0, 0, 0x0b, 0, 0, 7};
    memcpy(file + 16, frame, sizeof frame);
    cr_assert_eq(ZSTD_getFrameContentSize(frame, sizeof frame), 1ULL << 40);
    uint64_t ioff = 16, isize = sizeof frame;
    memcpy(file + 33, &ioff, 8), memcpy(file + 41, &isize, 8), memcpy(file + 49, "PAWSEND\0", 8);
    FILE *f = fopen(path, "wb");
    cr_assert(f && fwrite(file, 1, sizeof file, f) == sizeof file && fclose(f) == 0);
    cr_assert_null(paw_shard_open(path));
    const char *err = paw_last_error();
    cr_assert(strstr(err, "claims.pawshard") && strstr(err, "corrupt index (claims 1099511627776 bytes in a 17-byte"),
              "%s", err);
    free(path);
    rm_tree(dir);
}

Test(shard, flipped_byte_in_a_block_names_file_and_block) {
    char *dir, *path;
    size_t size;
    char *data = corruptible(&dir, &path, &size);
    PawShard *s = paw_shard_open(path);
    // Every byte of block 2, flipped one at a time, must be caught.
    uint32_t b2_lo = 0, b2_hi = 0;
    {
        // Block boundaries from a clean open: block 2 starts where example 20 is.
        uint32_t b, slot;
        paw_shard_locate(s, 20, &b, &slot);
        cr_assert_eq(b, 2);
    }
    paw_shard_close(s);
    // The block table is inside the index; find block 2's extent by scanning zstd frame magics.
    uint32_t starts[8];
    int nstarts = 0;
    for (size_t i = 16; i + 4 < size && nstarts < 8; i++)
        if ((unsigned char)data[i] == 0x28 && (unsigned char)data[i + 1] == 0xb5 && (unsigned char)data[i + 2] == 0x2f &&
            (unsigned char)data[i + 3] == 0xfd)
            starts[nstarts++] = (uint32_t)i;
    cr_assert_geq(nstarts, 5, "4 blocks + index");
    b2_lo = starts[2];
    b2_hi = starts[3];
    int checked = 0;
    for (uint32_t pos = b2_lo; pos < b2_hi; pos += 1 + (b2_hi - b2_lo) / 64) {
        data[pos] ^= 0x5a;
        cr_assert_eq(paw_write_file_atomic(path, data, size), 0);
        data[pos] ^= 0x5a;
        char *err = read_all_error(path);
        cr_assert_not_null(err, "flip at %u went unnoticed", pos);
        cr_assert(strstr(err, path) != NULL, "message names the file: %s", err);
        cr_assert(strstr(err, "block 2") != NULL, "message names the block: %s", err);
        free(err);
        checked++;
    }
    cr_assert_geq(checked, 10);
    free(data);
    free(path);
    rm_tree(dir);
}

Test(shard, flipped_bytes_in_index_header_trailer_and_truncation) {
    char *dir, *path;
    size_t size;
    char *data = corruptible(&dir, &path, &size);
    // Index frame: between the last zstd frame magic and the 24-byte trailer.
    size_t index_at = 0;
    for (size_t i = 16; i + 4 < size; i++)
        if ((unsigned char)data[i] == 0x28 && (unsigned char)data[i + 1] == 0xb5 && (unsigned char)data[i + 2] == 0x2f &&
            (unsigned char)data[i + 3] == 0xfd)
            index_at = i;
    cr_assert_gt(index_at, 16);
    size_t positions[64];
    int np = 0;
    for (size_t p = index_at; p < size - 24; p += 1 + (size - 24 - index_at) / 24) positions[np++] = p;
    for (size_t p = 0; p < 16; p += 3) positions[np++] = p;           // header
    for (size_t p = size - 24; p < size; p += 2) positions[np++] = p;  // trailer
    for (int k = 0; k < np; k++) {
        data[positions[k]] ^= 0x10;
        cr_assert_eq(paw_write_file_atomic(path, data, size), 0);
        data[positions[k]] ^= 0x10;
        PawShard *s = paw_shard_open(path);
        cr_assert_null(s, "flip at %zu (index at %zu, size %zu) went unnoticed", positions[k], index_at, size);
        cr_assert(strstr(paw_last_error(), path) != NULL, "%s", paw_last_error());
    }
    // Truncations, anywhere.
    size_t cuts[] = {0, 10, 16, 200, index_at, index_at + 5, size - 24, size - 1};
    for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
        cr_assert_eq(paw_write_file_atomic(path, data, cuts[k]), 0);
        PawShard *s = paw_shard_open(path);
        cr_assert_null(s, "truncation to %zu went unnoticed", cuts[k]);
        cr_assert(strstr(paw_last_error(), path) != NULL, "%s", paw_last_error());
    }
    // Untouched, it still reads.
    cr_assert_eq(paw_write_file_atomic(path, data, size), 0);
    char *err = read_all_error(path);
    cr_assert_null(err, "%s", err);
    free(data);
    free(path);
    rm_tree(dir);
}

// ------------------------------------------------------------------------------------------
// Build from JSONL with a stand-in encoder: token = byte value + 1000 * (segment + 1), and an
// end marker 7 on segments 1 and 3, so the test can check which text landed where.

static void push_text(PawIds *v, int seg, const char *a, const char *b) {
    for (const char *t = a; *t; t++) paw_ids_push(v, (int32_t)(unsigned char)*t + 1000 * (seg + 1));
    if (b)
        for (const char *t = b; *t; t++) paw_ids_push(v, (int32_t)(unsigned char)*t + 1000 * (seg + 1));
}

static int fake_encode(void *ctx, const PawRawExample *ex, PawIds seg[PAW_SEG_COUNT]) {
    (void)ctx;
    if (strstr(ex->input, "UNENCODABLE")) return paw_error("refused");
    push_text(&seg[0], 0, ex->spec, NULL);
    push_text(&seg[1], 1, ex->pseudo_program, NULL);
    paw_ids_push(&seg[1], 7);
    push_text(&seg[2], 2, ex->pseudo_program, ex->input);
    push_text(&seg[3], 3, ex->output, NULL);
    paw_ids_push(&seg[3], 7);
    return 0;
}

static char *decode_fake(const PawExample *ex, int k) {
    char *s = xmalloc(ex->len[k] + 1);
    uint32_t n = 0;
    for (uint32_t j = 0; j < ex->len[k]; j++)
        if (ex->seg[k][j] != 7) s[n++] = (char)(ex->seg[k][j] - 1000 * (uint32_t)(k + 1));
    s[n] = 0;
    return s;
}

static void write_text(const char *path, const char *text) {
    cr_assert_eq(paw_write_file_atomic(path, text, strlen(text)), 0);
}

typedef struct {
    char *log;
    size_t log_size;
    int rc;
    PawBuildSummary sum;
} BuildResult;

static BuildResult run_build(const char *const *in, int nin, const char *out, int skip, int max_tokens, int per_shard) {
    BuildResult r = {0};
    PawBuildOptions o;
    paw_build_options_default(&o);
    o.out_dir = out;
    o.encode = fake_encode;
    o.skip_errors = skip;
    o.max_tokens = max_tokens;
    o.examples_per_block = 3;
    o.examples_per_shard = per_shard;
    o.threads = 2;
    FILE *log = open_memstream(&r.log, &r.log_size);
    o.log = log;
    r.rc = paw_build_shards(in, nin, &o, &r.sum);
    paw_build_summary_print(log, &r.sum);
    fclose(log);
    return r;
}

Test(build, good_lines_round_trip_across_files_and_shards) {
    char *dir = make_tmpdir();
    char *in1 = paw_path_join(dir, "a.jsonl"), *in2 = paw_path_join(dir, "b.jsonl"), *out = paw_path_join(dir, "out");
    char big[20000] = {0};
    int n = 0;
    for (int i = 0; i < 10; i++)
        n += snprintf(big + n, sizeof big - (size_t)n,
                      "{\"spec\": \"spec %d\", \"input\": \"in\\n%d\", \"output\": \"o%d\", \"family\": \"f%d\", \"task_id\": \"t%d\"%s}\n",
                      i, i, i, i % 3, i, i % 2 ? ", \"pseudo_program\": \"[PSEUDO_PROGRAM]\\nP\\n[END_PSEUDO_PROGRAM]\"" : "");
    write_text(in1, big);
    write_text(in2, "\n{\"spec\": \"s\", \"input\": \"\", \"output\": \"\", \"extra\": [1, 2]}\r\n");
    const char *in[] = {in1, in2};
    BuildResult r = run_build(in, 2, out, 0, 0, 4);
    cr_assert_eq(r.rc, 0, "%s", r.log);
    cr_assert_eq(r.sum.examples, 11);
    cr_assert_eq(r.sum.blank_lines, 1);
    cr_assert_eq(r.sum.bad_total, 0);
    cr_assert_eq(r.sum.shards, 3);
    PawDataset *ds = paw_dataset_open(out);
    cr_assert_not_null(ds, "%s", paw_last_error());
    cr_assert_eq(paw_dataset_size(ds), 11);
    cr_assert_eq(paw_dataset_num_shards(ds), 3);
    for (int i = 0; i < 11; i++) {
        PawExample ex;
        cr_assert_eq(paw_dataset_get(ds, (uint64_t)i, &ex), 0, "%s", paw_last_error());
        char spec[32], input[32], output[32], family[16], task[16];
        if (i < 10) {
            snprintf(spec, sizeof spec, "spec %d", i);
            snprintf(input, sizeof input, "in\n%d", i);
            snprintf(output, sizeof output, "o%d", i);
            snprintf(family, sizeof family, "f%d", i % 3);
            snprintf(task, sizeof task, "t%d", i);
        } else {
            strcpy(spec, "s"), strcpy(input, ""), strcpy(output, ""), strcpy(family, ""), strcpy(task, "");
        }
        char *seg0 = decode_fake(&ex, 0), *seg1 = decode_fake(&ex, 1), *seg2 = decode_fake(&ex, 2), *seg3 = decode_fake(&ex, 3);
        cr_assert_str_eq(seg0, spec);
        char *want_pp = i < 10 && i % 2 ? xstrdup("[PSEUDO_PROGRAM]\nP\n[END_PSEUDO_PROGRAM]") : paw_default_pseudo_program(spec);
        cr_assert_str_eq(seg1, want_pp);
        cr_assert_eq(ex.seg[1][ex.len[1] - 1], 7, "segment 1 ends with the end token");
        cr_assert_eq(strncmp(seg2, want_pp, strlen(want_pp)), 0);
        cr_assert_str_eq(seg2 + strlen(want_pp), input);
        cr_assert_str_eq(seg3, output);
        cr_assert_eq(ex.seg[3][ex.len[3] - 1], 7);
        cr_assert_str_eq(ex.input, input);
        cr_assert_str_eq(ex.output, output);
        cr_assert_str_eq(ex.family, family);
        cr_assert_str_eq(ex.task_id, task);
        free(seg0), free(seg1), free(seg2), free(seg3), free(want_pp);
    }
    paw_dataset_close(ds);
    // The manifest lists the shards and the counts.
    char *mpath = paw_path_join(out, "manifest.json");
    char *m = paw_read_file(mpath, NULL);
    cr_assert_not_null(m);
    cr_assert_not_null(strstr(m, "\"shard-00002.pawshard\""));
    cr_assert_not_null(strstr(m, "\"examples\":\t11"), "%s", m);
    free(m);
    free(mpath);
    free(r.log);
    free(in1), free(in2), free(out);
    rm_tree(dir);
}

static const char *BAD_INPUT =
    "{\"spec\": \"a\", \"input\": \"x\", \"output\": \"y\"}\n"            // 1 good
    "{\"spec\": \"a\", \"input\": \"x\", \"output\": \"y\"\n"             // 2 malformed
    "{\"spec\": \"a\", \"output\": \"y\"}\n"                            // 3 missing input
    "{\"spec\": \"a\", \"input\": 5, \"output\": \"y\"}\n"              // 4 wrong type
    "[1, 2]\n"                                                          // 5 not an object
    "{\"spec\": \"a\", \"input\": \"x\", \"output\": \"y\", \"family\": [1]}\n"  // 6 wrong type
    "\n"                                                                // 7 blank
    "{\"spec\": \"a\", \"input\": \"UNENCODABLE\", \"output\": \"y\"}\n"    // 8 encoder error
    "{\"spec\": \"a\", \"input\": \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\", \"output\": \"y\"}\n"  // 9 too long
    "{\"spec\": \"a\", \"input\": \"x\", \"output\": \"y\"} trailing\n"   // 10 malformed
    "{\"spec\": \"b\", \"input\": \"x\", \"output\": \"y\", \"pseudo_program\": null}\n";  // 11 good

Test(build, bad_lines_skipped_with_file_line_and_counts) {
    char *dir = make_tmpdir();
    char *in1 = paw_path_join(dir, "bad.jsonl"), *out = paw_path_join(dir, "out");
    write_text(in1, BAD_INPUT);
    const char *in[] = {in1};
    BuildResult r = run_build(in, 1, out, 1, 60, 100);
    cr_assert_eq(r.rc, 0, "%s", r.log);
    cr_assert_eq(r.sum.lines, 11);
    cr_assert_eq(r.sum.examples, 2);
    cr_assert_eq(r.sum.blank_lines, 1);
    cr_assert_eq(r.sum.bad[PAW_BAD_JSON], 3);
    cr_assert_eq(r.sum.bad[PAW_BAD_MISSING_FIELD], 1);
    cr_assert_eq(r.sum.bad[PAW_BAD_WRONG_TYPE], 2);
    cr_assert_eq(r.sum.bad[PAW_BAD_ENCODE], 1);
    cr_assert_eq(r.sum.bad[PAW_BAD_TOO_LONG], 1);
    cr_assert_eq(r.sum.bad_total, 8);
    const char *expect[] = {":2: malformed JSON", ":3: missing field \"input\"", ":4: field \"input\" must be a string, found a number",
                            ":5: expected a JSON object", ":6: field \"family\" must be a string", ":8: cannot tokenize",
                            ":9: too long", ":10: malformed JSON"};
    for (size_t k = 0; k < sizeof expect / sizeof expect[0]; k++) {
        char want[256];
        snprintf(want, sizeof want, "%s%s", in1, expect[k]);
        cr_assert_not_null(strstr(r.log, want), "missing '%s' in:\n%s", want, r.log);
    }
    cr_assert_null(strstr(r.log, ":1:"), "%s", r.log);
    cr_assert_null(strstr(r.log, ":11:"), "%s", r.log);
    cr_assert_not_null(strstr(r.log, "too long"));
    PawDataset *ds = paw_dataset_open(out);
    cr_assert_not_null(ds, "%s", paw_last_error());
    cr_assert_eq(paw_dataset_size(ds), 2);
    paw_dataset_close(ds);
    free(r.log);
    free(in1), free(out);
    rm_tree(dir);
}

Test(build, fail_mode_aborts_and_writes_nothing) {
    char *dir = make_tmpdir();
    char *in1 = paw_path_join(dir, "bad.jsonl"), *out = paw_path_join(dir, "out");
    write_text(in1, BAD_INPUT);
    const char *in[] = {in1};
    BuildResult r = run_build(in, 1, out, 0, 60, 100);
    cr_assert_eq(r.rc, -1);
    cr_assert(r.sum.aborted);
    char want[256];
    snprintf(want, sizeof want, "%s:2: malformed JSON", in1);
    cr_assert_not_null(strstr(paw_last_error(), want), "%s", paw_last_error());
    cr_assert_not_null(strstr(r.log, want), "%s", r.log);
    cr_assert_eq(paw_is_dir(out), 0, "a failed build leaves no output directory");
    // An existing directory is left as it was: no shard, no manifest, no temporary.
    cr_assert_eq(paw_mkdir_p(out), 0);
    BuildResult r2 = run_build(in, 1, out, 0, 60, 100);
    cr_assert_eq(r2.rc, -1);
    DIR *d = opendir(out);
    struct dirent *e;
    while ((e = readdir(d))) cr_assert(e->d_name[0] == '.', "left %s", e->d_name);
    closedir(d);
    free(r.log), free(r2.log);
    free(in1), free(out);
    rm_tree(dir);
}

Test(build, missing_input_file_is_an_error) {
    char *dir = make_tmpdir();
    char *out = paw_path_join(dir, "out");
    const char *in[] = {"/nonexistent/x.jsonl"};
    BuildResult r = run_build(in, 1, out, 1, 0, 100);
    cr_assert_eq(r.rc, -1);
    cr_assert_not_null(strstr(paw_last_error(), "/nonexistent/x.jsonl"));
    free(r.log), free(out);
    rm_tree(dir);
}

Test(build, sha256_of_a_file) {
    char *dir = make_tmpdir();
    char *p = paw_path_join(dir, "f");
    char hex[65];
    write_text(p, "abc");
    cr_assert_eq(paw_sha256_file(p, hex), 0);
    cr_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");  // FIPS 180-2 example
    char big[1000];
    memset(big, 'a', sizeof big);
    cr_assert_eq(paw_write_file_atomic(p, big, 56), 0);  // padding spills into a second block
    cr_assert_eq(paw_sha256_file(p, hex), 0);
    cr_assert_str_eq(hex, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
    free(p);
    rm_tree(dir);
}

// ------------------------------------------------------------------------------------------
// `paw data build` with the real Qwen3 tokenizer, against Hugging Face (tests/make_shard_fixtures.py).

static const char *paw_bin(void) {
    const char *b = getenv("PAW_BIN");
    return b ? b : "./paw";
}

// Runs a shell command, capturing stderr into *err (caller frees). Returns the exit status.
static int run_cmd(const char *cmd, char **err) {
    char full[4096];
    char errfile[] = "/tmp/paw_test_cli_XXXXXX";
    int fd = mkstemp(errfile);
    cr_assert_geq(fd, 0);
    close(fd);
    snprintf(full, sizeof full, "%s 2>%s", cmd, errfile);
    int st = system(full);
    *err = paw_read_file(errfile, NULL);
    unlink(errfile);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(cli, build_matches_hugging_face_segments) {
    char *dir = make_tmpdir();
    char *out = paw_path_join(dir, "out");
    char cmd[1024], *err;
    snprintf(cmd, sizeof cmd, "%s data build tests/fixtures/shard/examples.jsonl -o %s --quiet", paw_bin(), out);
    int st = run_cmd(cmd, &err);
    cr_assert_eq(st, 0, "%s", err);
    free(err);
    char *json = paw_read_file("tests/fixtures/shard/expected_segments.json", NULL);
    cr_assert_not_null(json);
    cJSON *expected = cJSON_Parse(json);
    cr_assert_not_null(expected);
    char *lines = paw_read_file("tests/fixtures/shard/examples.jsonl", NULL);
    PawDataset *ds = paw_dataset_open(out);
    cr_assert_not_null(ds, "%s", paw_last_error());
    cr_assert_eq(paw_dataset_size(ds), (uint64_t)cJSON_GetArraySize(expected));
    cr_assert_eq(strlen(paw_dataset_tokenizer_sha256(ds)), 64);
    char *line = lines;
    for (int i = 0; i < cJSON_GetArraySize(expected); i++) {
        PawExample ex;
        cr_assert_eq(paw_dataset_get(ds, (uint64_t)i, &ex), 0, "%s", paw_last_error());
        const cJSON *segs = cJSON_GetObjectItem(cJSON_GetArrayItem(expected, i), "segments");
        for (int k = 0; k < PAW_SEG_COUNT; k++) {
            const cJSON *ids = cJSON_GetArrayItem(segs, k);
            cr_assert_eq(ex.len[k], (uint32_t)cJSON_GetArraySize(ids), "example %d segment %d length", i, k);
            for (uint32_t j = 0; j < ex.len[k]; j++)
                cr_assert_eq(ex.seg[k][j], (uint32_t)cJSON_GetArrayItem(ids, (int)j)->valueint, "example %d segment %d token %u", i, k, j);
        }
        char *nl = strchr(line, '\n');
        *nl = 0;
        cJSON *src = cJSON_Parse(line);
        line = nl + 1;
        cr_assert_str_eq(ex.input, cJSON_GetObjectItem(src, "input")->valuestring);
        cr_assert_str_eq(ex.output, cJSON_GetObjectItem(src, "output")->valuestring);
        const cJSON *fam = cJSON_GetObjectItem(src, "family");
        cr_assert_str_eq(ex.family, fam ? fam->valuestring : "");
        cJSON_Delete(src);
    }
    paw_dataset_close(ds);
    cJSON_Delete(expected);
    free(json);
    free(lines);
    free(out);
    rm_tree(dir);
}

Test(cli, bad_input_fail_and_skip) {
    char *dir = make_tmpdir();
    char *in = paw_path_join(dir, "bad.jsonl"), *out = paw_path_join(dir, "out");
    write_text(in, "{\"spec\": \"a\", \"input\": \"x\", \"output\": \"y\"}\n"
                   "{\"spec\": \"a\", \"input\": \"x\"}\n"
                   "not json\n"
                   "{\"spec\": \"a\", \"input\": \"x\", \"output\": \"y\"}\n");
    char cmd[1024], *err, want[512];
    snprintf(cmd, sizeof cmd, "%s data build %s -o %s", paw_bin(), in, out);
    int st = run_cmd(cmd, &err);
    cr_assert_neq(st, 0, "%s", err);
    snprintf(want, sizeof want, "%s:2: missing field \"output\"", in);
    cr_assert_not_null(strstr(err, want), "%s", err);
    cr_assert_eq(paw_is_dir(out), 0);
    free(err);
    snprintf(cmd, sizeof cmd, "%s data build %s -o %s --on-error skip", paw_bin(), in, out);
    st = run_cmd(cmd, &err);
    cr_assert_eq(st, 0, "%s", err);
    snprintf(want, sizeof want, "%s:3: malformed JSON", in);
    cr_assert_not_null(strstr(err, want), "%s", err);
    cr_assert_not_null(strstr(err, "2 examples"), "%s", err);
    cr_assert_not_null(strstr(err, "missing field    1 (skipped)"), "%s", err);
    cr_assert_not_null(strstr(err, "malformed JSON   1 (skipped)"), "%s", err);
    free(err);
    PawDataset *ds = paw_dataset_open(out);
    cr_assert_not_null(ds, "%s", paw_last_error());
    cr_assert_eq(paw_dataset_size(ds), 2);
    paw_dataset_close(ds);
    free(in), free(out);
    rm_tree(dir);
}
