// `paw tokenize`, `paw detokenize` and the tokenizer benchmark (`paw bench tokenizer`).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "common/args.h"
#include "common/commands.h"
#include "common/error.h"
#include "common/fileio.h"
#include "common/progress.h"
#include "data/tokenizer.h"

static PawTokenizer *load_or_report(const char *path) {
    PawTokenizer *t = paw_tokenizer_load(path);
    if (!t) fprintf(stderr, "paw: %s\n", paw_last_error());
    return t;
}

static void print_ids(const PawIds *ids) {
    for (size_t i = 0; i < ids->n; i++) printf(i ? " %d" : "%d", ids->ids[i]);
    putchar('\n');
}

int cmd_tokenize(int argc, char **argv) {
    const char *tokenizer = paw_tokenizer_default_path();
    const char *text = NULL;
    int special = 0, lines = 0;
    PawOpt opts[] = {
        {"tokenizer", PAW_OPT_STR, &tokenizer, "tokenizer.json to use ($PAW_TOKENIZER)"},
        {"special", PAW_OPT_FLAG, &special, "recognise added tokens such as <|im_end|> (else they are plain text)"},
        {"lines", PAW_OPT_FLAG, &lines, "encode each input line (without its \\n) on its own, one output line each"},
        {"text", PAW_OPT_STR, &text, "encode this string instead of stdin"},
    };
    PawCommandSpec spec = {
        "paw tokenize [--tokenizer FILE] [--special] [--lines] [--text S] < text",
        "Encodes text with the Qwen3 tokenizer and prints the token ids, separated by spaces.\n"
        "By default all of stdin is one text, taken byte for byte (a final newline, if any, is part of\n"
        "it), and one line of ids is printed. With --lines each line of stdin is encoded on its own\n"
        "(the \\n is dropped, a \\r before it is kept) and gives one line of ids.\n"
        "`paw detokenize` turns the ids back into the exact bytes.",
        opts, (int)(sizeof opts / sizeof opts[0]), 0};
    char *pos[1];
    int npos;
    int r = paw_parse_args(&spec, argc, argv, pos, &npos);
    if (r) return r > 0 ? 0 : 2;

    size_t len;
    char *input;
    if (text) {
        input = xstrdup(text);
        len = strlen(text);
    } else if (!(input = paw_read_file("/dev/stdin", &len))) {
        fprintf(stderr, "paw: reading stdin: %s\n", paw_last_error());
        return 1;
    }
    PawTokenizer *t = load_or_report(tokenizer);
    if (!t) {
        free(input);
        return 1;
    }
    int status = 0;
    size_t start = 0;
    if (lines && len == 0) start = 1;  // no lines at all
    while (start <= len && status == 0) {
        size_t end = len;
        if (lines) {
            const char *nl = memchr(input + start, '\n', len - start);
            if (nl) end = (size_t)(nl - input);
        }
        PawIds ids = {0};
        if (paw_tokenizer_encode(t, input + start, end - start, special, &ids) < 0) {
            fprintf(stderr, "paw: %s\n", paw_last_error());
            status = 1;
        } else {
            print_ids(&ids);
        }
        paw_ids_free(&ids);
        start = end + 1;
        if (lines && start == len) break;  // the text ended with its last line's \n
    }
    paw_tokenizer_free(t);
    free(input);
    return status;  // stdout is checked by main, after every command
}

// Parses ids separated by spaces, tabs or commas from s[0..n). -1 + paw_error on anything else.
static int parse_ids(const char *s, size_t n, size_t line_no, PawIds *out) {
    size_t i = 0;
    while (i < n) {
        char c = s[i];
        if (c == ' ' || c == '\t' || c == ',' || c == '\r' || c == '\n') {
            i++;
            continue;
        }
        if (c < '0' || c > '9')
            return paw_error("line %zu: expected a token id, found '%c'", line_no, c >= 32 && c < 127 ? c : '?');
        long long v = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            v = v * 10 + (s[i++] - '0');
            if (v > INT32_MAX) return paw_error("line %zu: token id too large", line_no);
        }
        paw_ids_push(out, (int32_t)v);
    }
    return 0;
}

int cmd_detokenize(int argc, char **argv) {
    const char *tokenizer = paw_tokenizer_default_path();
    int lines = 0;
    PawOpt opts[] = {
        {"tokenizer", PAW_OPT_STR, &tokenizer, "tokenizer.json to use ($PAW_TOKENIZER)"},
        {"lines", PAW_OPT_FLAG, &lines, "decode each input line on its own and end each with \\n"},
    };
    PawCommandSpec spec = {
        "paw detokenize [--tokenizer FILE] [--lines] < ids",
        "Reads token ids (separated by spaces, commas or newlines) from stdin and writes the bytes\n"
        "they stand for, exactly, with nothing added. With --lines each line of ids is decoded on its\n"
        "own and followed by a newline (the inverse of `paw tokenize --lines`).",
        opts, (int)(sizeof opts / sizeof opts[0]), 0};
    char *pos[1];
    int npos;
    int r = paw_parse_args(&spec, argc, argv, pos, &npos);
    if (r) return r > 0 ? 0 : 2;
    size_t len;
    char *input = paw_read_file("/dev/stdin", &len);
    if (!input) {
        fprintf(stderr, "paw: reading stdin: %s\n", paw_last_error());
        return 1;
    }
    PawTokenizer *t = load_or_report(tokenizer);
    if (!t) {
        free(input);
        return 1;
    }
    int status = 0;
    size_t start = 0, line_no = 1;
    while (status == 0 && (start < len || (!lines && start == 0))) {
        size_t end = len;
        if (lines) {
            const char *nl = memchr(input + start, '\n', len - start);
            if (nl) end = (size_t)(nl - input);
        }
        PawIds ids = {0};
        size_t n;
        char *bytes = NULL;
        if (parse_ids(input + start, end - start, line_no, &ids) < 0 ||
            !(bytes = paw_tokenizer_decode(t, ids.ids, ids.n, &n))) {
            fprintf(stderr, "paw: %s\n", paw_last_error());
            status = 1;
        } else {
            fwrite(bytes, 1, n, stdout);
            if (lines) putchar('\n');
        }
        free(bytes);
        paw_ids_free(&ids);
        start = end + 1;
        line_no++;
    }
    paw_tokenizer_free(t);
    free(input);
    return status;  // stdout is checked by main, after every command
}

// ---------------------------------------------------------------------------------------------
// Benchmark

// Reads a benchmark corpus into records: a zstd file is decompressed first; the fixture format
// ("PAWTOKC1" + length-prefixed records) is split into its records, anything else into lines.
static int load_corpus(const char *path, char **buf_out, char ***rec, size_t **len, size_t *count) {
    size_t n;
    char *buf = paw_read_file(path, &n);
    if (!buf) return -1;
    size_t plen = strlen(path);
    if (plen > 4 && strcmp(path + plen - 4, ".zst") == 0) {
        ZSTD_DStream *ds = ZSTD_createDStream();
        size_t cap = n * 4 + 65536, got = 0;
        char *out = xmalloc(cap);
        ZSTD_inBuffer in = {buf, n, 0};
        while (in.pos < in.size) {
            if (cap - got < 65536) out = xrealloc(out, cap *= 2);
            ZSTD_outBuffer ob = {out + got, cap - got - 1, 0};
            size_t r = ZSTD_decompressStream(ds, &ob, &in);
            if (ZSTD_isError(r)) {
                ZSTD_freeDStream(ds);
                free(out);
                free(buf);
                return paw_error("%s: zstd: %s", path, ZSTD_getErrorName(r));
            }
            got += ob.pos;
        }
        ZSTD_freeDStream(ds);
        free(buf);
        buf = out;
        n = got;
        buf[n] = 0;
    }
    size_t cap = 1024, k = 0;
    *rec = xmalloc(cap * sizeof **rec);
    *len = xmalloc(cap * sizeof **len);
    if (n >= 12 && memcmp(buf, "PAWTOKC1", 8) == 0) {
        size_t o = 12;
        while (o + 4 <= n) {
            size_t l = (size_t)(uint8_t)buf[o] | (size_t)(uint8_t)buf[o + 1] << 8 | (size_t)(uint8_t)buf[o + 2] << 16 |
                       (size_t)(uint8_t)buf[o + 3] << 24;
            if (o + 4 + l > n) break;
            if (k == cap) {
                *rec = xrealloc(*rec, (cap *= 2) * sizeof **rec);
                *len = xrealloc(*len, cap * sizeof **len);
            }
            (*rec)[k] = buf + o + 4;
            (*len)[k++] = l;
            o += 4 + l;
        }
    } else {
        for (size_t s = 0; s < n;) {
            const char *nl = memchr(buf + s, '\n', n - s);
            size_t e = nl ? (size_t)(nl - buf) + 1 : n;  // keep the newline: it is part of the text
            if (k == cap) {
                *rec = xrealloc(*rec, (cap *= 2) * sizeof **rec);
                *len = xrealloc(*len, cap * sizeof **len);
            }
            (*rec)[k] = buf + s;
            (*len)[k++] = e - s;
            s = e;
        }
    }
    *buf_out = buf;
    *count = k;
    return 0;
}

int bench_tokenizer_main(int argc, char **argv) {
    const char *tokenizer = paw_tokenizer_default_path();
    const char *corpus = "tests/fixtures/tokenizer/corpus.bin.zst";
    int special = 0;
    float seconds = 3.0f;
    PawOpt opts[] = {
        {"tokenizer", PAW_OPT_STR, &tokenizer, "tokenizer.json to use ($PAW_TOKENIZER)"},
        {"corpus", PAW_OPT_STR, &corpus, "text file (one record per line; .zst is decompressed)"},
        {"special", PAW_OPT_FLAG, &special, "recognise added tokens"},
        {"seconds", PAW_OPT_FLOAT, &seconds, "minimum time to encode for (repeats the corpus)"},
    };
    PawCommandSpec spec = {
        "paw bench tokenizer [--tokenizer FILE] [--corpus FILE] [--special] [--seconds X]",
        "Measures encode speed on one core: each record (line) of the corpus is encoded on its own,\n"
        "as when building shards, and the corpus is repeated until --seconds have passed.",
        opts, (int)(sizeof opts / sizeof opts[0]), 0};
    char *pos[1];
    int npos;
    int r = paw_parse_args(&spec, argc, argv, pos, &npos);
    if (r) return r > 0 ? 0 : 2;

    char *buf = NULL, **rec = NULL;
    size_t *len = NULL, count = 0;
    if (load_corpus(corpus, &buf, &rec, &len, &count) < 0) {
        fprintf(stderr, "paw: %s\n", paw_last_error());
        return 1;
    }
    double t0 = paw_now();
    PawTokenizer *t = load_or_report(tokenizer);
    if (!t) {
        free(buf);
        free(rec);
        free(len);
        return 1;
    }
    double load_s = paw_now() - t0;
    size_t bytes = 0, tokens = 0;
    int passes = 0, status = 0;
    PawIds ids = {0};
    double start = paw_now(), elapsed = 0;
    do {
        for (size_t i = 0; i < count && status == 0; i++) {
            ids.n = 0;
            if (paw_tokenizer_encode(t, rec[i], len[i], special, &ids) < 0) {
                fprintf(stderr, "paw: record %zu: %s\n", i, paw_last_error());
                status = 1;
            }
            bytes += len[i];
            tokens += ids.n;
        }
        passes++;
        elapsed = paw_now() - start;
    } while (status == 0 && elapsed < seconds);
    if (status == 0) {
        printf("tokenizer load: %.3f s (%s)\n", load_s, tokenizer);
        printf("corpus: %s, %zu records, %d passes\n", corpus, count, passes);
        printf("encode (1 thread%s): %.2f MB/s, %.0f tokens/s, %.2f bytes/token\n", special ? ", special" : "",
               bytes / elapsed / 1e6, tokens / elapsed, tokens ? (double)bytes / (double)tokens : 0.0);
    }
    paw_ids_free(&ids);
    paw_tokenizer_free(t);
    free(buf);
    free(rec);
    free(len);
    return status;  // stdout is checked by main, after every command
}
