// The tokenizer against Hugging Face `tokenizers` (fixtures from tests/make_tokenizer_fixtures.py).
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "common/error.h"
#include "common/fileio.h"
#include "data/tokenizer.h"

#define FIX "tests/fixtures/tokenizer/"

// Whole zstd file -> buffer (streaming, since the frames need not record their size).
static uint8_t *read_zst(const char *path, size_t *n_out) {
    size_t n;
    char *comp = paw_read_file(path, &n);
    cr_assert(comp, "%s", paw_last_error());
    ZSTD_DStream *ds = ZSTD_createDStream();
    size_t cap = n * 4 + 1024, len = 0;
    uint8_t *out = malloc(cap);
    ZSTD_inBuffer in = {comp, n, 0};
    while (in.pos < in.size) {
        if (cap - len < 65536) out = realloc(out, cap *= 2);
        ZSTD_outBuffer ob = {out + len, cap - len, 0};
        size_t r = ZSTD_decompressStream(ds, &ob, &in);
        cr_assert(!ZSTD_isError(r), "%s: %s", path, ZSTD_getErrorName(r));
        len += ob.pos;
    }
    ZSTD_freeDStream(ds);
    free(comp);
    *n_out = len;
    return out;
}

static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

typedef struct {
    uint8_t *corpus_buf, *special_buf, *plain_buf, *decoded_buf;
    size_t count;
    const char **text;
    size_t *len;
    const uint8_t **ids[2];  // [0] special, [1] plain: per record, u32 n then ids
    const uint8_t **decoded[2];
} Fixture;

static const uint8_t **index_ids(uint8_t *buf, size_t n, size_t count) {
    cr_assert(n >= 12 && memcmp(buf, "PAWTOKI1", 8) == 0 && rd32(buf + 8) == count);
    const uint8_t **rec = malloc(count * sizeof *rec);
    size_t o = 12;
    for (size_t i = 0; i < count; i++) {
        cr_assert(o + 4 <= n);
        rec[i] = buf + o;
        o += 4 + 4 * (size_t)rd32(buf + o);
    }
    cr_assert_eq(o, n);
    return rec;
}

static void fixture_load(Fixture *f) {
    size_t n;
    f->corpus_buf = read_zst(FIX "corpus.bin.zst", &n);
    cr_assert(n >= 12 && memcmp(f->corpus_buf, "PAWTOKC1", 8) == 0);
    f->count = rd32(f->corpus_buf + 8);
    f->text = malloc(f->count * sizeof *f->text);
    f->len = malloc(f->count * sizeof *f->len);
    size_t o = 12;
    for (size_t i = 0; i < f->count; i++) {
        f->len[i] = rd32(f->corpus_buf + o);
        f->text[i] = (const char *)f->corpus_buf + o + 4;
        o += 4 + f->len[i];
    }
    cr_assert_eq(o, n);
    f->special_buf = read_zst(FIX "ids_special.bin.zst", &n);
    f->ids[0] = index_ids(f->special_buf, n, f->count);
    f->plain_buf = read_zst(FIX "ids_plain.bin.zst", &n);
    f->ids[1] = index_ids(f->plain_buf, n, f->count);
    f->decoded_buf = read_zst(FIX "decoded.bin.zst", &n);
    cr_assert(memcmp(f->decoded_buf, "PAWTOKD1", 8) == 0 && rd32(f->decoded_buf + 8) == f->count);
    for (int m = 0; m < 2; m++) f->decoded[m] = malloc(f->count * sizeof(uint8_t *));
    o = 12;
    for (size_t i = 0; i < f->count; i++)
        for (int m = 0; m < 2; m++) {
            f->decoded[m][i] = f->decoded_buf + o;
            uint32_t l = rd32(f->decoded_buf + o);
            o += 4 + (l == 0xFFFFFFFFu ? 0 : l);
        }
    cr_assert_eq(o, n);
}

static void fixture_free(Fixture *f) {
    free(f->corpus_buf);
    free(f->special_buf);
    free(f->plain_buf);
    free(f->decoded_buf);
    free(f->text);
    free(f->len);
    for (int m = 0; m < 2; m++) {
        free(f->ids[m]);
        free(f->decoded[m]);
    }
}

static PawTokenizer *load_real(void) {
    PawTokenizer *t = paw_tokenizer_load(paw_tokenizer_default_path());
    cr_assert(t, "%s", paw_last_error());
    return t;
}

static void print_record(const char *what, size_t i, const char *text, size_t len) {
    fprintf(stderr, "%s: record %zu (%zu bytes): \"", what, i, len);
    for (size_t k = 0; k < len && k < 200; k++) {
        unsigned char c = (unsigned char)text[k];
        if (c >= 32 && c < 127 && c != '\\') fputc(c, stderr);
        else fprintf(stderr, "\\x%02x", c);
    }
    fprintf(stderr, "\"\n");
}

// Encodes every record in one mode and counts the records that differ from HF.
static size_t check_corpus(const PawTokenizer *t, const Fixture *f, int mode, size_t *ntokens) {
    size_t bad = 0, tokens = 0;
#pragma omp parallel for schedule(dynamic, 64) reduction(+ : bad, tokens)
    for (size_t i = 0; i < f->count; i++) {
        PawIds ids = {0};
        int rc = paw_tokenizer_encode(t, f->text[i], f->len[i], mode == 0, &ids);
        const uint8_t *ref = f->ids[mode][i];
        uint32_t n = rd32(ref);
        int same = rc == 0 && ids.n == n;
        for (uint32_t k = 0; same && k < n; k++) same = ids.ids[k] == (int32_t)rd32(ref + 4 + 4 * k);
        if (!same) {
#pragma omp critical
            if (bad < 5) {
                print_record(mode == 0 ? "special mode differs" : "plain mode differs", i, f->text[i], f->len[i]);
                fprintf(stderr, "  ours (%zu):", ids.n);
                for (size_t k = 0; k < ids.n && k < 40; k++) fprintf(stderr, " %d", ids.ids[k]);
                fprintf(stderr, "\n  HF   (%u):", n);
                for (uint32_t k = 0; k < n && k < 40; k++) fprintf(stderr, " %u", rd32(ref + 4 + 4 * k));
                fprintf(stderr, "\n");
            }
            bad++;
        }
        tokens += ids.n;
        paw_ids_free(&ids);
    }
    *ntokens = tokens;
    return bad;
}

Test(tokenizer, hello_example) {
    PawTokenizer *t = load_real();
    PawIds ids = {0};
    const char *s = "Hello, my dog is cute";
    cr_assert_eq(paw_tokenizer_encode(t, s, strlen(s), 0, &ids), 0);
    int32_t want[] = {9707, 11, 847, 5562, 374, 18838};
    cr_assert_eq(ids.n, 6);
    for (int i = 0; i < 6; i++) cr_assert_eq(ids.ids[i], want[i], "token %d: %d != %d", i, ids.ids[i], want[i]);
    size_t len;
    char *back = paw_tokenizer_decode(t, ids.ids, ids.n, &len);
    cr_assert_str_eq(back, s);
    cr_assert_eq(len, strlen(s));
    free(back);
    paw_ids_free(&ids);
    paw_tokenizer_free(t);
}

Test(tokenizer, vocabulary_and_added_tokens) {
    PawTokenizer *t = load_real();
    cr_assert_eq(paw_tokenizer_vocab_size(t), 151669);
    cr_assert_eq(paw_tokenizer_token_id(t, "<|endoftext|>"), 151643);
    cr_assert_eq(paw_tokenizer_token_id(t, "<|im_start|>"), 151644);
    cr_assert_eq(paw_tokenizer_token_id(t, "<|im_end|>"), 151645);
    cr_assert_eq(paw_tokenizer_token_id(t, "<think>"), 151667);
    cr_assert_eq(paw_tokenizer_token_id(t, "</think>"), 151668);
    cr_assert_eq(paw_tokenizer_token_id(t, "Hello"), 9707);
    cr_assert_eq(paw_tokenizer_token_id(t, "\xC4\xA0my"), 847);  // "Ġmy"
    cr_assert_eq(paw_tokenizer_token_id(t, "no such token here"), -1);
    // With and without recognition of added tokens.
    PawIds a = {0}, b = {0};
    const char *s = "x<|im_end|>y";
    cr_assert_eq(paw_tokenizer_encode(t, s, strlen(s), 1, &a), 0);
    cr_assert_eq(a.n, 3);
    cr_assert_eq(a.ids[1], 151645);
    cr_assert_eq(paw_tokenizer_encode(t, s, strlen(s), 0, &b), 0);
    cr_assert_gt(b.n, 3);
    for (size_t i = 0; i < b.n; i++) cr_assert_lt(b.ids[i], 151643);
    int32_t bad_ids[] = {5, 151669};
    cr_assert_null(paw_tokenizer_decode(t, bad_ids, 2, NULL));
    cr_assert(strstr(paw_last_error(), "151669"));
    int32_t neg[] = {-1};
    cr_assert_null(paw_tokenizer_decode(t, neg, 1, NULL));
    paw_ids_free(&a);
    paw_ids_free(&b);
    paw_tokenizer_free(t);
}

Test(tokenizer, corpus_matches_hf_with_special_tokens, .timeout = 300) {
    Fixture f;
    fixture_load(&f);
    cr_assert_geq(f.count, 10000);
    PawTokenizer *t = load_real();
    size_t ntok;
    size_t bad = check_corpus(t, &f, 0, &ntok);
    cr_assert_eq(bad, 0, "%zu of %zu records differ from HF (special tokens recognised)", bad, f.count);
    cr_assert_gt(ntok, 100000);
    paw_tokenizer_free(t);
    fixture_free(&f);
}

Test(tokenizer, corpus_matches_hf_as_plain_text, .timeout = 300) {
    Fixture f;
    fixture_load(&f);
    PawTokenizer *t = load_real();
    size_t ntok;
    size_t bad = check_corpus(t, &f, 1, &ntok);
    cr_assert_eq(bad, 0, "%zu of %zu records differ from HF (added tokens as plain text)", bad, f.count);
    paw_tokenizer_free(t);
    fixture_free(&f);
}

// decode(encode(x)) is x itself for valid NFC text, else the bytes HF's decoder gives.
Test(tokenizer, decode_round_trip_is_exact, .timeout = 300) {
    Fixture f;
    fixture_load(&f);
    PawTokenizer *t = load_real();
    size_t bad = 0, same_as_input = 0;
    for (int m = 0; m < 2; m++)
        for (size_t i = 0; i < f.count; i++) {
            PawIds ids = {0};
            cr_assert_eq(paw_tokenizer_encode(t, f.text[i], f.len[i], m == 0, &ids), 0);
            size_t len;
            char *back = paw_tokenizer_decode(t, ids.ids, ids.n, &len);
            cr_assert(back, "%s", paw_last_error());
            uint32_t l = rd32(f.decoded[m][i]);
            const char *want = l == 0xFFFFFFFFu ? f.text[i] : (const char *)f.decoded[m][i] + 4;
            size_t want_len = l == 0xFFFFFFFFu ? f.len[i] : l;
            same_as_input += l == 0xFFFFFFFFu;
            if (len != want_len || memcmp(back, want, len) != 0) {
                if (bad < 3) print_record("decode differs", i, f.text[i], f.len[i]);
                bad++;
            }
            free(back);
            paw_ids_free(&ids);
        }
    cr_assert_eq(bad, 0, "%zu decodes differ", bad);
    cr_assert_gt(same_as_input, f.count);  // most records come back byte for byte
    paw_tokenizer_free(t);
    fixture_free(&f);
}

// Invalid UTF-8 is read as Python's bytes.decode("utf-8", "replace") reads it.
Test(tokenizer, invalid_utf8_becomes_replacement_characters) {
    PawTokenizer *t = load_real();
    struct {
        const char *bad;
        size_t len;
        const char *as_text;
    } cases[] = {
        {"a\xff" "b", 3, "a\xEF\xBF\xBD" "b"},
        {"\xed\xa0\x80", 3, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},  // a surrogate: three replacements
        {"\xe2\x82", 2, "\xEF\xBF\xBD"},                              // truncated: one replacement
        {"\xf0\x9f\x98 x", 5, "\xEF\xBF\xBD x"},
        {"\xc0\x80", 2, "\xEF\xBF\xBD\xEF\xBF\xBD"},
        {"\xf4\x90\x80\x80", 4, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
        {"ok\xe2\x28\xa1", 5, "ok\xEF\xBF\xBD(\xEF\xBF\xBD"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        PawIds a = {0}, b = {0};
        cr_assert_eq(paw_tokenizer_encode(t, cases[c].bad, cases[c].len, 0, &a), 0);
        cr_assert_eq(paw_tokenizer_encode(t, cases[c].as_text, strlen(cases[c].as_text), 0, &b), 0);
        cr_assert_eq(a.n, b.n, "case %zu", c);
        cr_assert_eq(memcmp(a.ids, b.ids, a.n * sizeof *a.ids), 0, "case %zu", c);
        paw_ids_free(&a);
        paw_ids_free(&b);
    }
    paw_tokenizer_free(t);
}

// Long runs must not go quadratic or overflow the regex engine's stack.
Test(tokenizer, long_runs, .timeout = 60) {
    PawTokenizer *t = load_real();
    size_t n = 1 << 20;
    char *s = malloc(n);
    const char fills[] = {' ', 'a', '7', '\n', '-'};
    for (size_t k = 0; k < sizeof fills; k++) {
        memset(s, fills[k], n);
        PawIds ids = {0};
        cr_assert_eq(paw_tokenizer_encode(t, s, n, 0, &ids), 0, "fill '%c': %s", fills[k], paw_last_error());
        size_t len;
        char *back = paw_tokenizer_decode(t, ids.ids, ids.n, &len);
        cr_assert_eq(len, n);
        cr_assert_eq(memcmp(back, s, n), 0);
        free(back);
        paw_ids_free(&ids);
    }
    free(s);
    paw_tokenizer_free(t);
}

// The mini tokenizer has its merges as [a, b] pairs in one file and as "a b" strings in the other.
Test(tokenizer, merges_as_pairs_or_strings) {
    size_t n;
    char *js = paw_read_file(FIX "mini_ids.json", &n);
    cr_assert(js);
    cJSON *ref = cJSON_Parse(js);
    free(js);
    cr_assert(ref);
    Fixture f;
    fixture_load(&f);
    const char *files[] = {FIX "mini_pairs.json", FIX "mini_strings.json"};
    for (int fi = 0; fi < 2; fi++) {
        PawTokenizer *t = paw_tokenizer_load(files[fi]);
        cr_assert(t, "%s", paw_last_error());
        int i = 0;
        const cJSON *rec;
        cJSON_ArrayForEach(rec, ref) {
            PawIds ids = {0};
            cr_assert_eq(paw_tokenizer_encode(t, f.text[i], f.len[i], 1, &ids), 0);
            cr_assert_eq(ids.n, (size_t)cJSON_GetArraySize(rec), "%s record %d", files[fi], i);
            size_t k = 0;
            const cJSON *id;
            cJSON_ArrayForEach(id, rec) cr_assert_eq(ids.ids[k++], id->valueint, "%s record %d", files[fi], i);
            paw_ids_free(&ids);
            i++;
        }
        cr_assert_eq(i, 300);
        paw_tokenizer_free(t);
    }
    cJSON_Delete(ref);
    fixture_free(&f);
}

static void write_tmp(char *path, const char *text) {
    strcpy(path, "/tmp/paw_tok_XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static void expect_load_error(const char *json, const char *needle) {
    char path[64];
    write_tmp(path, json);
    paw_clear_error();
    PawTokenizer *t = paw_tokenizer_load(path);
    unlink(path);
    cr_assert_null(t, "loaded: %s", json);
    cr_assert(strstr(paw_last_error(), needle), "error \"%s\" does not mention \"%s\"", paw_last_error(), needle);
}

Test(tokenizer, bad_files_give_clean_errors) {
    paw_clear_error();
    cr_assert_null(paw_tokenizer_load("tests/fixtures/tokenizer/no_such_file.json"));
    cr_assert(strstr(paw_last_error(), "no_such_file.json"));
    expect_load_error("{\"model\": {\"vocab\": {\"a\": 0,", "malformed JSON");
    expect_load_error("[1, 2]", "top level");
    expect_load_error("{\"added_tokens\": []}", "model");
    expect_load_error("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}, \"merges\": []}}", "BPE");
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": [], \"merges\": []}}", "model.vocab");
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": \"x\"}, \"merges\": []}}", "model.vocab");
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}}", "model.merges");
    // Only one byte token: the other 255 are missing.
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}", "byte");
}

// A valid byte-level vocabulary (all 256 byte tokens) with one broken part at a time.
static char *mini_json(const char *merges, const char *pre, const char *norm) {
    static const char *head = "{\"model\": {\"type\": \"BPE\", \"vocab\": {";
    size_t cap = 16384;
    char *s = malloc(cap);
    size_t o = (size_t)snprintf(s, cap, "%s", head);
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        unsigned cp = printable ? (unsigned)b : 256u + (unsigned)n++;
        char u[8];
        if (cp == '"' || cp == '\\') snprintf(u, sizeof u, "\\%c", (char)cp);
        else if (cp < 0x80) snprintf(u, sizeof u, "%c", (char)cp);
        else snprintf(u, sizeof u, "%c%c", (char)(0xC0 | (cp >> 6)), (char)(0x80 | (cp & 0x3F)));
        o += (size_t)snprintf(s + o, cap - o, "\"%s\": %d, ", u, b);
    }
    o += (size_t)snprintf(s + o, cap - o, "\"ab\": 256}, \"merges\": %s}, \"pre_tokenizer\": %s, \"normalizer\": %s}",
                          merges, pre, norm);
    return s;
}

Test(tokenizer, bad_sections_give_clean_errors) {
    const char *good_pre = "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": \"\\\\s+|\\\\S+\"}, "
                           "\"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\"}]}";
    struct {
        const char *merges, *pre, *norm, *needle;
    } cases[] = {
        {"[\"a b\"]", good_pre, "null", NULL},
        {"[[\"a\", \"b\"]]", good_pre, "{\"type\": \"NFC\"}", NULL},
        {"[\"a x y\"]", good_pre, "null", "model.merges[0]"},
        {"[\"a q\"]", good_pre, "null", "merged token"},
        {"[42]", good_pre, "null", "model.merges[0]"},
        {"[\"a b\"]", good_pre, "{\"type\": \"NFKC\"}", "normalizer"},
        {"[\"a b\"]", "{\"type\": \"Whitespace\"}", "null", "pre_tokenizer"},
        {"[\"a b\"]", "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": \"(\"}, "
                      "\"behavior\": \"Isolated\"}, {\"type\": \"ByteLevel\"}]}", "null", "regex"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char *js = mini_json(cases[c].merges, cases[c].pre, cases[c].norm);
        if (!cases[c].needle) {
            char path[64];
            write_tmp(path, js);
            PawTokenizer *t = paw_tokenizer_load(path);
            unlink(path);
            cr_assert(t, "case %zu: %s", c, paw_last_error());
            PawIds ids = {0};
            cr_assert_eq(paw_tokenizer_encode(t, "ab ba", 5, 0, &ids), 0);
            cr_assert_eq(ids.n, 4);  // "ab" merged, then " ", "b", "a"
            cr_assert_eq(ids.ids[0], 256);
            paw_ids_free(&ids);
            paw_tokenizer_free(t);
        } else {
            expect_load_error(js, cases[c].needle);
        }
        free(js);
    }
    // Added tokens that would absorb neighbouring whitespace are refused, not mis-tokenized.
    char *js = mini_json("[]", good_pre, "null");
    size_t n = strlen(js);
    js = realloc(js, n + 128);
    strcpy(js + n - 1, ", \"added_tokens\": [{\"id\": 300, \"content\": \"<x>\", \"lstrip\": true}]}");
    expect_load_error(js, "lstrip");
    free(js);
}

Test(tokenizer, default_path_follows_environment) {
    char *old = getenv("PAW_TOKENIZER") ? strdup(getenv("PAW_TOKENIZER")) : NULL;
    setenv("PAW_TOKENIZER", "/some/where/tokenizer.json", 1);
    cr_assert_str_eq(paw_tokenizer_default_path(), "/some/where/tokenizer.json");
    unsetenv("PAW_TOKENIZER");
    cr_assert_str_eq(paw_tokenizer_default_path(), PAW_DEFAULT_TOKENIZER);
    if (old) setenv("PAW_TOKENIZER", old, 1);
    free(old);
}

static char *slurp(const char *path, size_t *n) {
    char *s = paw_read_file(path, n);
    cr_assert(s, "%s", paw_last_error());
    return s;
}

static int run_sh(const char *fmt, const char *a, const char *b, const char *c) {
    const char *bin = getenv("PAW_BIN") ? getenv("PAW_BIN") : "./paw";
    char cmd[1024];
    snprintf(cmd, sizeof cmd, fmt, bin, a, b, c);
    return system(cmd);
}

// ids text "1 2 3\n4 5\n" -> the numbers of line `line`
static int line_matches(const char *out, size_t line, const uint8_t *ref) {
    const char *p = out;
    for (size_t l = 0; l < line; l++) {
        p = strchr(p, '\n');
        if (!p) return 0;
        p++;
    }
    uint32_t n = rd32(ref);
    for (uint32_t k = 0; k < n; k++) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v != (long)rd32(ref + 4 + 4 * k)) return 0;
        p = end;
    }
    while (*p == ' ') p++;
    return *p == '\n';
}

// paw tokenize | paw detokenize, line by line and as one text, against the HF ids.
Test(tokenizer, cli_round_trip, .timeout = 120) {
    Fixture f;
    fixture_load(&f);
    char in[64], ids[64], out[64];
    write_tmp(in, "");
    write_tmp(ids, "");
    write_tmp(out, "");
    // Line mode: records with no newline that come back byte for byte; the last has no \n.
    FILE *fp = fopen(in, "wb");
    size_t picked[400], np = 0;
    for (size_t i = 0; i < f.count && np < 400; i++) {
        if (memchr(f.text[i], '\n', f.len[i]) || rd32(f.decoded[0][i]) != 0xFFFFFFFFu || f.len[i] == 0) continue;
        if (np) fputc('\n', fp);
        fwrite(f.text[i], 1, f.len[i], fp);
        picked[np++] = i;
    }
    fclose(fp);
    cr_assert_eq(np, 400);
    cr_assert_eq(run_sh("%s tokenize --special --lines < %s > %s", in, ids, NULL), 0);
    size_t n;
    char *got = slurp(ids, &n);
    for (size_t k = 0; k < np; k++) cr_assert(line_matches(got, k, f.ids[0][picked[k]]), "line %zu (record %zu)", k, picked[k]);
    free(got);
    cr_assert_eq(run_sh("%s detokenize --lines < %s > %s", ids, out, NULL), 0);
    size_t n_in, n_out;
    char *a = slurp(in, &n_in), *b = slurp(out, &n_out);
    cr_assert_eq(n_out, n_in + 1);  // every line now ends with \n
    cr_assert_eq(memcmp(a, b, n_in), 0);
    free(a);
    free(b);

    // Whole-text mode: multi-line records with no final newline, in both modes.
    size_t done = 0;
    for (size_t i = 0; i < f.count && done < 20; i++) {
        if (!memchr(f.text[i], '\n', f.len[i]) || f.text[i][f.len[i] - 1] == '\n' || rd32(f.decoded[1][i]) != 0xFFFFFFFFu)
            continue;
        fp = fopen(in, "wb");
        fwrite(f.text[i], 1, f.len[i], fp);
        fclose(fp);
        cr_assert_eq(run_sh("%s tokenize < %s > %s", in, ids, NULL), 0);
        got = slurp(ids, &n);
        cr_assert(line_matches(got, 0, f.ids[1][i]), "record %zu", i);
        free(got);
        cr_assert_eq(run_sh("%s detokenize < %s > %s", ids, out, NULL), 0);
        b = slurp(out, &n_out);
        cr_assert_eq(n_out, f.len[i]);
        cr_assert_eq(memcmp(b, f.text[i], n_out), 0, "record %zu", i);
        free(b);
        done++;
    }
    cr_assert_eq(done, 20);
    // Bad input is an error with a message, not a crash.
    fp = fopen(ids, "wb");
    fputs("1 2 banana", fp);
    fclose(fp);
    cr_assert_neq(run_sh("%s detokenize < %s > %s 2>/dev/null", ids, out, NULL), 0);
    unlink(in);
    unlink(ids);
    unlink(out);
    fixture_free(&f);
}
