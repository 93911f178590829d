// FuzzyBench JSONL -> token shards (see data/shard_build.h). Lines are read in chunks; each
// chunk is parsed and tokenized in parallel, then its examples go to the shard writer in input
// order, so the output does not depend on the number of threads.
#include "data/shard_build.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <omp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fileio.h"
#include "common/progress.h"

// ------------------------------------------------------------------------------------------

char *paw_default_pseudo_program(const char *spec) {
    static const char head[] = "[PSEUDO_PROGRAM]\n", tail[] = "\n[END_PSEUDO_PROGRAM]";
    size_t n = strlen(spec);
    char *p = xmalloc(sizeof head - 1 + n + sizeof tail);
    memcpy(p, head, sizeof head - 1);
    memcpy(p + sizeof head - 1, spec, n);
    memcpy(p + sizeof head - 1 + n, tail, sizeof tail);
    return p;
}

const char *paw_bad_kind_name(PawBadKind k) {
    static const char *names[PAW_BAD_KINDS] = {"malformed JSON", "missing field", "wrong type", "too long",
                                               "tokenizer error"};
    return (unsigned)k < PAW_BAD_KINDS ? names[k] : "?";
}

void paw_build_options_default(PawBuildOptions *o) {
    memset(o, 0, sizeof *o);
    o->max_tokens = 4096;
    o->examples_per_block = 16;
    o->examples_per_shard = 1 << 20;
    o->threads = omp_get_max_threads();
    o->zstd_level = 3;
    o->max_messages = 100;
}

// One input line and, after processing, what became of it.
typedef struct {
    char *text;
    size_t len;
    int file;
    uint64_t lineno;
    int status;  // STATUS_OK, STATUS_BLANK or a PawBadKind
    char message[256];
    cJSON *root;
    char *default_program;
    PawRawExample raw;
    PawIds seg[PAW_SEG_COUNT];
} Line;

enum { STATUS_OK = -1, STATUS_BLANK = -2 };

static int line_bad(Line *l, PawBadKind kind, const char *fmt, ...) PAW_PRINTF(3, 4);
static int line_bad(Line *l, PawBadKind kind, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->message, sizeof l->message, fmt, ap);
    va_end(ap);
    l->status = kind;
    return -1;
}

static const char *json_type_name(const cJSON *v) {
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "something else";
}

// Reads a string field: required ones must be present strings; optional ones may be absent or null.
static int get_field(Line *l, const char *name, int required, const char **out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(l->root, name);
    *out = NULL;
    if (!v || (!required && cJSON_IsNull(v))) {
        if (required) return line_bad(l, PAW_BAD_MISSING_FIELD, "missing field \"%s\"", name);
        return 0;
    }
    if (!cJSON_IsString(v)) return line_bad(l, PAW_BAD_WRONG_TYPE, "field \"%s\" must be a string, found %s", name, json_type_name(v));
    *out = v->valuestring;
    return 0;
}

static int is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') return 0;
    return 1;
}

static void process_line(Line *l, const PawBuildOptions *opt) {
    l->status = STATUS_OK;
    if (is_blank(l->text, l->len)) {
        l->status = STATUS_BLANK;
        return;
    }
    const char *end = NULL;
    l->root = cJSON_ParseWithLengthOpts(l->text, l->len, &end, 0);
    if (!l->root) {
        size_t col = end && end >= l->text && end <= l->text + l->len ? (size_t)(end - l->text) + 1 : 1;
        line_bad(l, PAW_BAD_JSON, "malformed JSON near column %zu", col);
        return;
    }
    if (end && !is_blank(end, l->len - (size_t)(end - l->text))) {
        line_bad(l, PAW_BAD_JSON, "malformed JSON: text after the object at column %zu", (size_t)(end - l->text) + 1);
        return;
    }
    if (!cJSON_IsObject(l->root)) {
        line_bad(l, PAW_BAD_JSON, "expected a JSON object, found %s", json_type_name(l->root));
        return;
    }
    PawRawExample *r = &l->raw;
    if (get_field(l, "spec", 1, &r->spec) || get_field(l, "input", 1, &r->input) || get_field(l, "output", 1, &r->output) ||
        get_field(l, "pseudo_program", 0, &r->pseudo_program) || get_field(l, "task_id", 0, &r->task_id) ||
        get_field(l, "family", 0, &r->family))
        return;
    if (!r->pseudo_program) r->pseudo_program = l->default_program = paw_default_pseudo_program(r->spec);
    if (!r->task_id) r->task_id = "";
    if (!r->family) r->family = "";
    if (opt->encode(opt->encode_ctx, r, l->seg) != 0) {
        line_bad(l, PAW_BAD_ENCODE, "cannot tokenize: %s", paw_last_error());
        return;
    }
    for (int k = 0; k < PAW_SEG_COUNT; k++)
        for (size_t i = 0; i < l->seg[k].n; i++)
            if (l->seg[k].ids[i] < 0) {
                line_bad(l, PAW_BAD_ENCODE, "tokenizer produced a negative id %d", (int)l->seg[k].ids[i]);
                return;
            }
    uint32_t len[PAW_SEG_COUNT];
    for (int k = 0; k < PAW_SEG_COUNT; k++) len[k] = (uint32_t)l->seg[k].n;
    uint32_t nc = paw_compiler_len(len), ni = paw_interp_len(len);
    if (opt->max_tokens > 0 && (nc > (uint32_t)opt->max_tokens || ni > (uint32_t)opt->max_tokens))
        line_bad(l, PAW_BAD_TOO_LONG, "too long: compiler sequence %u tokens, interpreter sequence %u tokens, limit --max-tokens %d",
                 nc, ni, opt->max_tokens);
}

static void line_release(Line *l) {
    free(l->text);
    cJSON_Delete(l->root);
    free(l->default_program);
    for (int k = 0; k < PAW_SEG_COUNT; k++) paw_ids_free(&l->seg[k]);
    memset(l, 0, sizeof *l);
}

typedef struct {
    char *file;
    uint64_t examples, tokens, bytes;
} ShardInfo;

typedef struct {
    const PawBuildOptions *opt;
    PawShardWriter **writers;  // finished ones stay open (temporary names) until the end
    ShardInfo *info;
    int nshards;
} Output;

static PawShardWriter *current_writer(Output *o) {
    const PawBuildOptions *opt = o->opt;
    if (o->nshards > 0) {
        PawShardWriter *w = o->writers[o->nshards - 1];
        if ((int64_t)paw_shard_writer_examples(w) < opt->examples_per_shard) return w;
        if (paw_shard_writer_finish(w) != 0) return NULL;
    }
    char name[64];
    snprintf(name, sizeof name, "shard-%05d" PAW_SHARD_SUFFIX, o->nshards);
    char *path = paw_path_join(opt->out_dir, name);
    PawShardWriter *w = paw_shard_writer_open(path, opt->examples_per_block, opt->zstd_level, opt->threads);
    free(path);
    if (!w) return NULL;
    o->writers = xrealloc(o->writers, sizeof *o->writers * (size_t)(o->nshards + 1));
    o->info = xrealloc(o->info, sizeof *o->info * (size_t)(o->nshards + 1));
    o->writers[o->nshards] = w;
    o->info[o->nshards] = (ShardInfo){xstrdup(name), 0, 0, 0};
    o->nshards++;
    return w;
}

static void output_abort(Output *o) {
    for (int i = 0; i < o->nshards; i++) {
        paw_shard_writer_abort(o->writers[i]);
        free(o->info[i].file);
    }
    free(o->writers);
    free(o->info);
    memset(o, 0, sizeof *o);
}

static cJSON *json_num(uint64_t v) { return cJSON_CreateNumber((double)v); }

static int write_manifest(const PawBuildOptions *opt, const Output *o, const PawBuildSummary *sum,
                          const char *const *inputs, int ninputs, const uint64_t *in_lines, const uint64_t *in_examples) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "format", "paw-shards");
    cJSON_AddItemToObject(m, "version", json_num(PAW_SHARD_VERSION));
    cJSON_AddItemToObject(m, "examples", json_num(sum->examples));
    cJSON_AddItemToObject(m, "tokens", json_num(sum->tokens));
    cJSON_AddItemToObject(m, "max_tokens", json_num((uint64_t)(opt->max_tokens > 0 ? opt->max_tokens : 0)));
    cJSON_AddItemToObject(m, "examples_per_block", json_num((uint64_t)opt->examples_per_block));
    cJSON *segs = cJSON_AddArrayToObject(m, "segments");
    const char *seg_names[PAW_SEG_COUNT] = {"compiler_prompt", "pseudo_program", "interpreter_prompt", "target"};
    for (int k = 0; k < PAW_SEG_COUNT; k++) cJSON_AddItemToArray(segs, cJSON_CreateString(seg_names[k]));
    cJSON *tok = cJSON_AddObjectToObject(m, "tokenizer");
    if (opt->tokenizer_path) {
        char hex[65];
        if (paw_sha256_file(opt->tokenizer_path, hex) != 0) {
            cJSON_Delete(m);
            return -1;
        }
        char *abs = realpath(opt->tokenizer_path, NULL);
        cJSON_AddStringToObject(tok, "path", abs ? abs : opt->tokenizer_path);
        free(abs);
        cJSON_AddStringToObject(tok, "sha256", hex);
    }
    cJSON *shards = cJSON_AddArrayToObject(m, "shards");
    for (int i = 0; i < o->nshards; i++) {
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "file", o->info[i].file);
        cJSON_AddItemToObject(s, "examples", json_num(o->info[i].examples));
        cJSON_AddItemToObject(s, "tokens", json_num(o->info[i].tokens));
        cJSON_AddItemToObject(s, "bytes", json_num(o->info[i].bytes));
        cJSON_AddItemToArray(shards, s);
    }
    cJSON *ins = cJSON_AddArrayToObject(m, "inputs");
    for (int i = 0; i < ninputs; i++) {
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "file", inputs[i]);
        cJSON_AddItemToObject(s, "lines", json_num(in_lines[i]));
        cJSON_AddItemToObject(s, "examples", json_num(in_examples[i]));
        cJSON_AddItemToArray(ins, s);
    }
    cJSON *sk = cJSON_AddObjectToObject(m, "skipped");
    static const char *keys[PAW_BAD_KINDS] = {"malformed_json", "missing_field", "wrong_type", "too_long", "tokenizer_error"};
    for (int k = 0; k < PAW_BAD_KINDS; k++) cJSON_AddItemToObject(sk, keys[k], json_num(sum->bad[k]));
    cJSON_AddItemToObject(m, "blank_lines", json_num(sum->blank_lines));
    char *text = cJSON_Print(m);
    cJSON_Delete(m);
    if (!text) paw_die("out of memory printing the manifest");
    char *path = paw_path_join(opt->out_dir, "manifest.json");
    size_t n = strlen(text);
    text = xrealloc(text, n + 2);
    text[n] = '\n';
    text[n + 1] = 0;
    int rc = paw_write_file_atomic(path, text, n + 1);
    free(path);
    free(text);
    return rc;
}

enum { CHUNK_LINES = 4096, CHUNK_BYTES = 32 << 20 };

int paw_build_shards(const char *const *inputs, int ninputs, const PawBuildOptions *opt_in, PawBuildSummary *sum) {
    memset(sum, 0, sizeof *sum);
    PawBuildOptions opt = *opt_in;
    if (opt.threads < 1) opt.threads = 1;
    if (opt.examples_per_shard < 1) opt.examples_per_shard = 1;
    FILE *log = opt.log ? opt.log : stderr;
    if (!opt.skip_errors) opt.max_messages = 1;  // the first bad line is what stops the build: name it
    double t0 = paw_now();
    if (!opt.encode) return paw_error("paw_build_shards: no encoder given");
    if (opt.examples_per_block < 1) return paw_error("examples per block must be at least 1, found %d", opt.examples_per_block);
    int64_t total_bytes = 0;
    for (int i = 0; i < ninputs; i++) {
        struct stat st;
        if (stat(inputs[i], &st) != 0) return paw_error("%s: cannot open: %s", inputs[i], strerror(errno));
        total_bytes += st.st_size;
    }
    int made_dir = !paw_is_dir(opt.out_dir);
    if (paw_mkdir_p(opt.out_dir) != 0) return -1;

    Output out = {&opt, NULL, NULL, 0};
    uint64_t *in_lines = xcalloc((size_t)ninputs + 1, sizeof *in_lines);
    uint64_t *in_examples = xcalloc((size_t)ninputs + 1, sizeof *in_examples);
    Line *chunk = xcalloc(CHUNK_LINES, sizeof *chunk);
    PawProgress prog;
    paw_progress_start(&prog, "build", total_bytes);
    if (!opt.progress) prog.tty = 0;
    int64_t bytes_done = 0;
    uint64_t messages = 0;
    int rc = 0, file = 0;
    FILE *f = NULL;
    char *buf = NULL;
    size_t bufcap = 0;
    int eof_all = ninputs == 0;
    while (rc == 0 && !eof_all) {
        // Read a chunk of lines, possibly across files.
        int n = 0;
        size_t chunk_bytes = 0;
        while (n < CHUNK_LINES && chunk_bytes < CHUNK_BYTES) {
            if (!f) {
                if (file >= ninputs) {
                    eof_all = 1;
                    break;
                }
                f = fopen(inputs[file], "rb");
                if (!f) {
                    rc = paw_error("%s: cannot open: %s", inputs[file], strerror(errno));
                    break;
                }
            }
            ssize_t got = getline(&buf, &bufcap, f);
            if (got < 0) {
                int err = ferror(f);
                fclose(f);
                f = NULL;
                if (err) {
                    rc = paw_error("%s: read error after line %llu", inputs[file], (unsigned long long)in_lines[file]);
                    break;
                }
                file++;
                continue;
            }
            bytes_done += got;
            size_t len = (size_t)got;
            while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) len--;
            Line *l = &chunk[n++];
            l->text = xmalloc(len + 1);
            memcpy(l->text, buf, len);
            l->text[len] = 0;
            l->len = len;
            l->file = file;
            l->lineno = ++in_lines[file];
            chunk_bytes += len;
        }
        if (rc != 0) {
            for (int i = 0; i < n; i++) line_release(&chunk[i]);
            break;
        }

#pragma omp parallel for num_threads(opt.threads) schedule(dynamic, 16)
        for (int i = 0; i < n; i++) process_line(&chunk[i], &opt);

        for (int i = 0; i < n; i++) {
            Line *l = &chunk[i];
            sum->lines++;
            if (l->status == STATUS_BLANK) {
                sum->blank_lines++;
            } else if (l->status != STATUS_OK) {
                sum->bad[l->status]++;
                sum->bad_total++;
                if (messages++ < (uint64_t)opt.max_messages) {
                    if (prog.tty) fputs("\r\033[K", stderr);
                    fprintf(log, "%s:%llu: %s\n", inputs[l->file], (unsigned long long)l->lineno, l->message);
                }
                if (!opt.skip_errors && rc == 0) {
                    rc = paw_error("%s:%llu: %s", inputs[l->file], (unsigned long long)l->lineno, l->message);
                    sum->aborted = 1;
                }
            } else if (rc == 0) {
                PawShardWriter *w = current_writer(&out);
                PawExample ex = {0};
                for (int k = 0; k < PAW_SEG_COUNT; k++) {
                    ex.seg[k] = (const uint32_t *)l->seg[k].ids;
                    ex.len[k] = (uint32_t)l->seg[k].n;
                }
                ex.family = l->raw.family;
                ex.family_len = (uint32_t)strlen(l->raw.family);
                ex.task_id = l->raw.task_id;
                ex.task_id_len = (uint32_t)strlen(l->raw.task_id);
                ex.input = l->raw.input;
                ex.input_len = (uint32_t)strlen(l->raw.input);
                ex.output = l->raw.output;
                ex.output_len = (uint32_t)strlen(l->raw.output);
                if (!w || paw_shard_writer_add(w, &ex) != 0) {
                    rc = -1;
                } else {
                    int s = out.nshards - 1;
                    out.info[s].examples++;
                    out.info[s].tokens += (uint64_t)ex.len[0] + ex.len[1] + ex.len[2] + ex.len[3];
                    sum->examples++;
                    sum->tokens += (uint64_t)ex.len[0] + ex.len[1] + ex.len[2] + ex.len[3];
                    in_examples[l->file]++;
                }
            }
            line_release(l);
        }
        char extra[96];
        double el = paw_now() - t0;
        snprintf(extra, sizeof extra, "%llu examples, %.0f ex/s", (unsigned long long)sum->examples,
                 el > 0 ? (double)sum->examples / el : 0.0);
        paw_progress_update(&prog, bytes_done, extra);
    }
    if (f) fclose(f);
    free(buf);
    free(chunk);
    paw_progress_finish(&prog, bytes_done, NULL);
    if (messages > (uint64_t)opt.max_messages)
        fprintf(log, "(%llu more bad lines not shown)\n", (unsigned long long)(messages - (uint64_t)opt.max_messages));

    // An empty result still gets one (empty) shard so that readers see a complete directory.
    if (rc == 0 && out.nshards == 0 && !current_writer(&out)) rc = -1;
    for (int i = 0; rc == 0 && i < out.nshards; i++) {
        if (paw_shard_writer_finish(out.writers[i]) != 0) rc = -1;
        else out.info[i].bytes = paw_shard_writer_bytes(out.writers[i]);
    }
    if (rc == 0) {
        // All shards are complete on disk: make them visible, then the manifest.
        for (int i = 0; i < out.nshards; i++) {
            PawShardWriter *w = out.writers[i];
            out.writers[i] = NULL;
            if (rc == 0) rc = paw_shard_writer_commit(w);
            else paw_shard_writer_abort(w);
        }
        if (rc == 0) rc = write_manifest(&opt, &out, sum, inputs, ninputs, in_lines, in_examples);
        sum->shards = out.nshards;
    }
    output_abort(&out);
    if (rc != 0 && made_dir) rmdir(opt.out_dir);  // a failed build leaves nothing behind
    free(in_lines);
    free(in_examples);
    sum->seconds = paw_now() - t0;
    return rc;
}

void paw_build_summary_print(FILE *f, const PawBuildSummary *s) {
    fprintf(f, "%llu lines: %llu examples (%llu tokens) in %d shard%s, %llu bad, %llu blank; %.2fs (%.0f examples/s)\n",
            (unsigned long long)s->lines, (unsigned long long)s->examples, (unsigned long long)s->tokens, s->shards,
            s->shards == 1 ? "" : "s", (unsigned long long)s->bad_total, (unsigned long long)s->blank_lines, s->seconds,
            s->seconds > 0 ? (double)s->examples / s->seconds : 0.0);
    for (int k = 0; k < PAW_BAD_KINDS; k++)
        if (s->bad[k]) fprintf(f, "  %-16s %llu%s\n", paw_bad_kind_name((PawBadKind)k), (unsigned long long)s->bad[k],
                               s->aborted ? "" : " (skipped)");
    if (s->aborted) fprintf(f, "aborted on bad input: nothing written (use --on-error skip to drop bad lines)\n");
}
