// `paw data build`: FuzzyBench JSONL -> token shards, and `paw bench data`.
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/args.h"
#include "common/commands.h"
#include "common/error.h"
#include "common/fileio.h"
#include "common/progress.h"
#include "data/loader.h"
#include "data/shard.h"
#include "data/shard_build.h"
#include "data/template.h"
#include "data/tokenizer.h"

// ------------------------------------------------------------------------------------------
// The tokenization step: the prompts come from data/template.h, and every segment is encoded as
// Hugging Face encodes the rendered string (allow_special = 1: added-token strings such as
// "<|im_end|>" become their ids, wherever they appear). Each segment is encoded on its own, as
// the prompt is encoded at run time before decoding starts, so training sees the token
// boundaries inference sees.

typedef struct {
    const PawTokenizer *tok;
    int32_t im_end;
} QwenEncoder;

static int qwen_encoder_init(QwenEncoder *q, const PawTokenizer *tok) {
    q->tok = tok;
    q->im_end = paw_tokenizer_token_id(tok, "<|im_end|>");
    if (q->im_end < 0) return paw_error("the tokenizer has no <|im_end|> token");
    return 0;
}

static int encode_owned(const QwenEncoder *q, char *text, PawIds *out) {
    int rc = paw_tokenizer_encode(q->tok, text, strlen(text), 1, out);
    free(text);
    return rc;
}

static int qwen_encode_segments(void *ctx, const PawRawExample *ex, PawIds seg[PAW_SEG_COUNT]) {
    const QwenEncoder *q = ctx;
    // 0: chat("[SPEC]\n" + spec + "\n[END_SPEC]\n\n[PSEUDO_PROGRAM]"), no think block
    if (encode_owned(q, paw_compiler_prompt(ex->spec), &seg[PAW_SEG_COMPILER_PROMPT]) != 0) return -1;
    // 1: pseudo_program <|im_end|>
    if (encode_owned(q, xstrdup(ex->pseudo_program), &seg[PAW_SEG_PROGRAM]) != 0) return -1;
    paw_ids_push(&seg[PAW_SEG_PROGRAM], q->im_end);
    // 2: chat(pseudo_program + "\n\n[INPUT]\n" + input + "\n[END_INPUT]") + "<think>\n\n</think>\n\n"
    if (encode_owned(q, paw_interpreter_prompt(ex->pseudo_program, ex->input), &seg[PAW_SEG_INTERP_PROMPT]) != 0) return -1;
    // 3: output <|im_end|>
    if (encode_owned(q, xstrdup(ex->output), &seg[PAW_SEG_TARGET]) != 0) return -1;
    paw_ids_push(&seg[PAW_SEG_TARGET], q->im_end);
    return 0;
}

// ------------------------------------------------------------------------------------------

int cmd_data_build(int argc, char **argv) {
    const char *out = NULL, *tokenizer = paw_tokenizer_default_path(), *on_error = "fail";
    PawBuildOptions o;
    paw_build_options_default(&o);
    int per_shard = (int)o.examples_per_shard, quiet = 0;
    PawOpt opts[] = {
        {"o", PAW_OPT_STR, &out, "output directory (created; shards + manifest.json)"},
        {"tokenizer", PAW_OPT_STR, &tokenizer, "tokenizer.json"},
        {"max-tokens", PAW_OPT_INT, &o.max_tokens, "longest compiler or interpreter sequence kept (0: no limit)"},
        {"on-error", PAW_OPT_STR, &on_error, "bad lines: fail (abort, write nothing) or skip (drop and count)"},
        {"examples-per-block", PAW_OPT_INT, &o.examples_per_block, "examples per zstd block (random access unit)"},
        {"examples-per-shard", PAW_OPT_INT, &per_shard, "examples per shard file"},
        {"threads", PAW_OPT_INT, &o.threads, "threads for tokenizing and compressing"},
        {"zstd-level", PAW_OPT_INT, &o.zstd_level, "zstd compression level"},
        {"max-messages", PAW_OPT_INT, &o.max_messages, "bad-line messages printed (all are counted)"},
        {"quiet", PAW_OPT_FLAG, &quiet, "no progress bar and no summary"},
    };
    PawCommandSpec spec = {
        "paw data build IN.jsonl... -o DIR [options]",
        "Tokenizes FuzzyBench-style JSONL (fields spec, input, output; optional pseudo_program, task_id,\n"
        "family) into zstd-compressed token shards for training. A line without pseudo_program gets\n"
        "\"[PSEUDO_PROGRAM]\\n\" + spec + \"\\n[END_PSEUDO_PROGRAM]\". Bad lines are reported as FILE:LINE: reason.",
        opts, (int)(sizeof opts / sizeof opts[0]), 1 << 16};
    // The shared parser knows only long options: accept the customary -o as --o.
    char **args = xmalloc(sizeof *args * (size_t)(argc + 1));
    for (int i = 0; i < argc; i++) args[i] = strcmp(argv[i], "-o") == 0 ? "--o" : argv[i];
    char **pos = xmalloc(sizeof *pos * (size_t)(argc + 1));
    int npos, rc = paw_parse_args(&spec, argc, args, pos, &npos);
    free(args);
    if (rc != 0) {
        free(pos);
        return rc > 0 ? 0 : 2;
    }
    const char *bad = NULL;
    if (npos == 0) bad = "no input files";
    else if (!out) bad = "-o DIR is required";
    else if (strcmp(on_error, "fail") != 0 && strcmp(on_error, "skip") != 0) bad = "--on-error must be fail or skip";
    else if (o.examples_per_block < 1 || per_shard < 1 || o.threads < 1 || o.max_tokens < 0)
        bad = "--examples-per-block, --examples-per-shard and --threads must be positive, --max-tokens not negative";
    if (bad) {
        fprintf(stderr, "paw data build: %s\n", bad);
        paw_print_usage(&spec, 1);
        free(pos);
        return 2;
    }
    o.out_dir = out;
    o.skip_errors = strcmp(on_error, "skip") == 0;
    o.examples_per_shard = per_shard;
    o.progress = !quiet;
    o.tokenizer_path = tokenizer;
    PawTokenizer *tok = paw_tokenizer_load(tokenizer);
    QwenEncoder q;
    if (!tok || qwen_encoder_init(&q, tok) != 0) {
        fprintf(stderr, "paw data build: %s\n", paw_last_error());
        paw_tokenizer_free(tok);
        free(pos);
        return 1;
    }
    o.encode = qwen_encode_segments;
    o.encode_ctx = &q;
    PawBuildSummary sum;
    rc = paw_build_shards((const char *const *)pos, npos, &o, &sum);
    if (!quiet || rc != 0) paw_build_summary_print(stderr, &sum);
    if (rc != 0) {
        if (!sum.aborted) fprintf(stderr, "paw data build: %s\n", paw_last_error());  // else already printed
    } else if (!quiet) {
        fprintf(stderr, "wrote %s/manifest.json\n", out);
    }
    paw_tokenizer_free(tok);
    free(pos);
    return rc == 0 ? 0 : 1;
}

// ------------------------------------------------------------------------------------------
// `paw bench data`: examples/s for building (tokenize + compress, and compress alone) and for
// reading (sequential, random order, and through the loader).

static uint64_t bench_rng(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static const char *const bench_words[] = {"the", "log", "line", "error", "warning", "json", "field", "value", "return",
                                          "classify", "ticket", "urgent", "label", "input", "output", "repair",
                                          "missing", "quote", "bracket", "user", "server", "timeout", "retry", "ok"};

static void bench_sentence(FILE *f, uint64_t *s, int words) {
    for (int w = 0; w < words; w++)
        fprintf(f, "%s%s", w ? " " : "", bench_words[bench_rng(s) % (sizeof bench_words / sizeof bench_words[0])]);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

int bench_data_main(int argc, char **argv) {
    int n = 20000, threads = omp_get_max_threads(), epb = 16;
    const char *tokenizer = paw_tokenizer_default_path(), *dir = NULL;
    PawOpt opts[] = {
        {"examples", PAW_OPT_INT, &n, "examples to generate"},
        {"threads", PAW_OPT_INT, &threads, "build threads"},
        {"examples-per-block", PAW_OPT_INT, &epb, "examples per block"},
        {"tokenizer", PAW_OPT_STR, &tokenizer, "tokenizer.json for the tokenizing build"},
        {"dir", PAW_OPT_STR, &dir, "scratch directory (default: a new one under /tmp, removed after)"},
    };
    PawCommandSpec spec = {"paw bench data [options]",
                           "Measures shard building and reading in examples/s on generated FuzzyBench-like data.", opts,
                           (int)(sizeof opts / sizeof opts[0]), 0};
    char *pos[1];
    int npos, rc = paw_parse_args(&spec, argc, argv, pos, &npos);
    if (rc != 0) return rc > 0 ? 0 : 2;
    if (n < 1 || threads < 1 || epb < 1) {
        fprintf(stderr, "paw bench data: --examples, --threads and --examples-per-block must be positive\n");
        return 2;
    }
    char tmpl[] = "/tmp/paw_bench_data_XXXXXX";
    int own_dir = !dir;
    if (own_dir && !(dir = mkdtemp(tmpl))) {
        fprintf(stderr, "paw bench data: cannot create a scratch directory\n");
        return 1;
    }
    if (paw_mkdir_p(dir) != 0) {
        fprintf(stderr, "paw bench data: %s\n", paw_last_error());
        return 1;
    }
    char *jsonl = paw_path_join(dir, "bench.jsonl");
    char *tok_dir = paw_path_join(dir, "tokenized");
    char *raw_path = paw_path_join(dir, "raw" PAW_SHARD_SUFFIX);
    FILE *f = fopen(jsonl, "w");
    if (!f) paw_die("%s: cannot create", jsonl);
    uint64_t s = 0x1234567;
    for (int i = 0; i < n; i++) {
        fprintf(f, "{\"spec\": \"Classify the ");
        bench_sentence(f, &s, 40);
        fprintf(f, "\", \"input\": \"");
        bench_sentence(f, &s, 30 + (int)(bench_rng(&s) % 60));
        fprintf(f, "\", \"output\": \"");
        bench_sentence(f, &s, 1 + (int)(bench_rng(&s) % 8));
        fprintf(f, "\", \"family\": \"f%d\", \"task_id\": \"t%d\"}\n", (int)(bench_rng(&s) % 10), i / 50);
    }
    if (ferror(f) | fclose(f)) paw_die("%s: cannot write (disk full?)", jsonl);
    printf("paw bench data: %d examples, %d threads, %d examples/block\n", n, threads, epb);
    printf("%-36s %14s %12s\n", "stage", "examples/s", "seconds");

    // Build with the real tokenizer, when there is one.
    PawTokenizer *tok = paw_tokenizer_load(tokenizer);
    QwenEncoder q;
    int have_tok = tok && qwen_encoder_init(&q, tok) == 0;
    if (have_tok) {
        PawBuildOptions o;
        paw_build_options_default(&o);
        o.out_dir = tok_dir;
        o.encode = qwen_encode_segments;
        o.encode_ctx = &q;
        o.threads = threads;
        o.examples_per_block = epb;
        o.max_tokens = 0;
        PawBuildSummary sum;
        const char *in[] = {jsonl};
        if (paw_build_shards(in, 1, &o, &sum) != 0) paw_die("bench build: %s", paw_last_error());
        printf("%-36s %14.0f %12.3f\n", "build (parse+tokenize+compress)", (double)sum.examples / sum.seconds, sum.seconds);
    } else {
        printf("%-36s %14s %12s   (%s)\n", "build (parse+tokenize+compress)", "-", "-", paw_last_error());
    }
    paw_tokenizer_free(tok);

    // Pre-tokenized examples through the writer alone: the format's own cost.
    uint32_t *tokens = xmalloc(sizeof *tokens * 4096);
    for (int i = 0; i < 4096; i++) tokens[i] = (uint32_t)(bench_rng(&s) % 151000);
    double t0 = paw_now();
    PawShardWriter *w = paw_shard_writer_open(raw_path, epb, 3, threads);
    if (!w) paw_die("%s", paw_last_error());
    for (int i = 0; i < n; i++) {
        PawExample ex = {0};
        uint32_t lens[PAW_SEG_COUNT] = {80, 60, 160, 4 + (uint32_t)(i % 8)};
        for (int k = 0; k < PAW_SEG_COUNT; k++) {
            ex.seg[k] = tokens + (bench_rng(&s) % 3000);
            ex.len[k] = lens[k];
        }
        ex.family = "family";
        ex.family_len = 6;
        ex.output = "label";
        ex.output_len = 5;
        if (paw_shard_writer_add(w, &ex) != 0) paw_die("%s", paw_last_error());
    }
    if (paw_shard_writer_commit(w) != 0) paw_die("%s", paw_last_error());
    double t_write = paw_now() - t0;
    printf("%-36s %14.0f %12.3f\n", "write pre-tokenized (compress+index)", n / t_write, t_write);
    free(tokens);

    // Reading.
    PawShard *sh = paw_shard_open(raw_path);
    if (!sh) paw_die("%s", paw_last_error());
    uint64_t check = 0;
    t0 = paw_now();
    for (int i = 0; i < n; i++) {
        PawExample ex;
        if (paw_shard_get(sh, (uint64_t)i, &ex) != 0) paw_die("%s", paw_last_error());
        check += ex.seg[3][0];
    }
    double t_seq = paw_now() - t0;
    printf("%-36s %14.0f %12.3f\n", "read sequential", n / t_seq, t_seq);
    t0 = paw_now();
    for (int i = 0; i < n; i++) {
        PawExample ex;
        if (paw_shard_get(sh, bench_rng(&s) % (uint64_t)n, &ex) != 0) paw_die("%s", paw_last_error());
        check += ex.seg[3][0];
    }
    double t_rand = paw_now() - t0;
    printf("%-36s %14.0f %12.3f\n", "read random order", n / t_rand, t_rand);
    paw_shard_close(sh);

    // The loader over the tokenized build (or a manifest-less skip when no tokenizer).
    if (have_tok) {
        PawDataset *ds = paw_dataset_open(tok_dir);
        if (!ds) paw_die("%s", paw_last_error());
        PawLoaderConfig c;
        paw_loader_config_default(&c);
        c.token_budget = 16384;
        c.sort_window = 1024;
        PawLoader *l = paw_loader_new(ds, &c);
        if (!l) paw_die("%s", paw_last_error());
        PawBatch b = {0};
        uint64_t steps = paw_loader_steps_in_epoch(l), seen = 0;
        t0 = paw_now();
        for (uint64_t k = 0; k < steps; k++) {
            if (paw_loader_next(l, &b, 1) != 0) paw_die("%s", paw_last_error());
            seen += (uint64_t)b.n;
        }
        double t_load = paw_now() - t0;
        printf("%-36s %14.0f %12.3f   (%llu batches)\n", "loader epoch (shuffled, copied)", (double)seen / t_load, t_load,
               (unsigned long long)steps);
        paw_batch_free(&b);
        paw_loader_free(l);
        paw_dataset_close(ds);
    }
    if (check == 42) printf(" \n");  // keeps the reads from being optimized away
    if (own_dir && nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "paw bench data: could not remove %s\n", dir);
    free(jsonl);
    free(tok_dir);
    free(raw_path);
    return 0;
}
