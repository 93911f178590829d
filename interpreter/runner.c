#include "interpreter/runner.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileio.h"
#include "common/progress.h"
#include "data/template.h"
#include "interpreter/schedule.h"

char *paw_strip(const char *s, size_t n) {
    while (n && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')) s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r')) n--;
    char *r = xmalloc(n + 1);
    memcpy(r, s, n);
    r[n] = 0;
    return r;
}

void paw_run_stats_add(PawRunStats *a, const PawRunStats *b) {
    a->seconds += b->seconds, a->rows += b->rows, a->tokens += b->tokens, a->fills += b->fills;
    a->steps += b->steps, a->row_steps += b->row_steps, a->idle_rows += b->idle_rows;
    a->prefill_tokens += b->prefill_tokens, a->prefix_tokens += b->prefix_tokens;
}

int paw_runner_resources(const char *model_dir, PawTokenizer **tok, PawVocabMap *vmap, int *stop_id) {
    *tok = NULL;
    int rc = paw_vocab_map_load(vmap, model_dir);
    if (rc < 0) return -1;
    char *tk = paw_path_join(model_dir, "tokenizer.json");
    *tok = paw_tokenizer_load(paw_file_exists(tk) ? tk : paw_tokenizer_default_path());
    free(tk);
    if (!*tok) return -1;
    int32_t id = paw_tokenizer_token_id(*tok, "<|im_end|>");
    if (id < 0) return paw_error("the tokenizer has no <|im_end|> token");
    if (vmap->n && paw_vocab_map_to_model(vmap, &id, 1) != 0) return paw_error("<|im_end|> is not in the model's vocabulary");
    *stop_id = id;
    return 0;
}

int paw_runner_init(PawRunner *r, Qwen3 *model, const PawTokenizer *tok, const PawVocabMap *vmap, int stop_id,
                    const char *template_text, const Qwen3Lora *lora) {
    memset(r, 0, sizeof *r);
    r->model = model;
    r->tok = tok;
    r->vmap = vmap && vmap->n ? vmap : NULL;
    r->lora = lora;
    r->stop_id = stop_id;
    if (paw_prompt_template_split(template_text, &r->prefix, &r->suffix) != 0) return -1;
    if (paw_tokenizer_encode(tok, r->prefix, strlen(r->prefix), 1, &r->prefix_ids) != 0) return -1;
    return 0;
}

void paw_runner_free(PawRunner *r) {
    free(r->prefix);
    free(r->suffix);
    paw_ids_free(&r->prefix_ids);
    if (r->cache.k) qwen3_cache_free(&r->cache);
    free(r->cached_ids);
    for (int i = 0; i < r->row_caches_n; i++)
        if (r->row_caches[i].k) qwen3_cache_free(&r->row_caches[i]);
    free(r->row_caches);
    memset(r, 0, sizeof *r);
}

int paw_runner_prompt_ids(const PawRunner *r, const char *input, int max_new, PawIds *ids) {
    memset(ids, 0, sizeof *ids);
    size_t in_len = strlen(input);
    int blank = 1;
    for (size_t i = 0; i < in_len && blank; i++) blank = input[i] == ' ' || input[i] == '\t' || input[i] == '\n' || input[i] == '\r';
    if (blank) return paw_error("empty input");
    // The whole prompt is tokenized as one string (as in training).
    size_t plen = strlen(r->prefix), slen = strlen(r->suffix);
    char *prompt = xmalloc(plen + in_len + slen + 1);
    memcpy(prompt, r->prefix, plen);
    memcpy(prompt + plen, input, in_len);
    memcpy(prompt + plen + in_len, r->suffix, slen + 1);
    int rc = paw_tokenizer_encode(r->tok, prompt, plen + in_len + slen, 1, ids);
    free(prompt);
    if (rc != 0) return -1;
    if (r->vmap && paw_vocab_map_to_model(r->vmap, ids->ids, (int64_t)ids->n) != 0) {
        paw_ids_free(ids);
        return paw_error_context("input");
    }
    int n = (int)ids->n, maxpos = r->model->cfg.max_position_embeddings;
    if (max_new > maxpos - n) {  // not n + max_new: --max-new near INT_MAX must not wrap
        paw_ids_free(ids);
        return paw_error("the prompt is %d tokens; with %d new tokens it exceeds the interpreter's context of %d", n, max_new,
                         maxpos);
    }
    return 0;
}

int paw_runner_decode(const PawRunner *r, int32_t *ids, int n, char **output) {
    *output = NULL;
    for (int i = 0; i < n; i++) ids[i] = r->vmap ? paw_vocab_map_to_tokenizer(r->vmap, ids[i]) : ids[i];
    size_t len;
    char *text = paw_tokenizer_decode(r->tok, ids, (size_t)n, &len);
    if (!text) return -1;
    *output = paw_strip(text, len);
    free(text);
    return 0;
}

int paw_runner_run(PawRunner *r, const char *input, int max_new, char **output) {
    *output = NULL;
    PawIds ids;
    if (paw_runner_prompt_ids(r, input, max_new, &ids) != 0) return -1;
    int n = (int)ids.n, maxpos = r->model->cfg.max_position_embeddings, rc = 0;
    int need = n + max_new;
    if (!r->cache.k || r->cache.cap < need) {
        int cap = need > 1024 ? need : 1024;
        if (cap > maxpos) cap = maxpos;
        if (r->cache.k) qwen3_cache_free(&r->cache);
        qwen3_cache_create(&r->cache, &r->model->cfg, 1, cap);
        r->cached = 0;
        free(r->cached_ids);
        r->cached_ids = xmalloc(sizeof(int32_t) * (size_t)cap);
    }
    // Keep the cached tokens this prompt shares (at most up to the prefix), recompute the rest:
    // the prefix is reused for as many leading tokens as the two tokenizations share.
    int keep = 0, limit = r->cached < (int)r->prefix_ids.n ? r->cached : (int)r->prefix_ids.n;
    while (keep < limit && keep < n - 1 && r->cached_ids[keep] == ids.ids[keep]) keep++;
    r->cache.len = keep;
    Qwen3Inputs in = {.ids = ids.ids + keep, .cache = &r->cache, .logits_mode = QWEN3_LOGITS_LAST, .lora = r->lora};
    rc = qwen3_forward(r->model, &in, 1, n - keep);
    if (rc == 0) {
        memcpy(r->cached_ids, ids.ids, sizeof(int32_t) * (size_t)n);
        r->cached = n;
    }
    int32_t *out = xmalloc(sizeof(int32_t) * (size_t)(max_new + 1));
    int got = 0;
    while (rc == 0 && got < max_new) {
        int next = qwen3_argmax(r->model->acts.logits, r->model->cfg.vocab_size);
        if (next == r->stop_id) break;
        out[got++] = next;
        if (got == max_new) break;
        in.ids = &next;
        rc = qwen3_forward(r->model, &in, 1, 1);
    }
    paw_ids_free(&ids);
    if (rc == 0) rc = paw_runner_decode(r, out, got, output);
    free(out);
    return rc;
}

// ---- several inputs, decoded together ----------------------------------------------------------

typedef struct {
    PawRunner *const *runners;  // the programs; runners[0] keeps the rows' caches
    const int *job_runner;      // per job (in decoding order): its program
    PawIds *ids;                // per job: the prompt's model ids
    int max_new, rows;          // rows: how many of the row caches this run uses
    int *row_runner;            // per row: the program of its job
    Qwen3KVCache **live;        // scratch: the caches, ids and adapters of a step's running rows
    int *live_row, *live_ids;
    const Qwen3Lora **live_lora;
    long prefill_tokens, prefix_tokens;
} ManyCtx;

// The template prefix's keys and values in r->cache (once; a single run may have left a whole
// prompt there, which serves as well). Its tokens are compared with each prompt's below.
static int ensure_prefix(PawRunner *r) {
    int n = (int)r->prefix_ids.n;
    if (r->cached > 0 || n == 0) return 0;
    int32_t *ids = xmalloc(sizeof(int32_t) * (size_t)n);
    memcpy(ids, r->prefix_ids.ids, sizeof(int32_t) * (size_t)n);
    if (r->vmap && paw_vocab_map_to_model(r->vmap, ids, n) != 0) {
        // A token of the prefix alone outside the model's vocabulary (prompts, tokenized whole, may
        // merge it with the input): every row then computes its whole prompt.
        paw_clear_error();
        free(ids);
        return 0;
    }
    if (!r->cache.k || r->cache.cap < n) {
        if (r->cache.k) qwen3_cache_free(&r->cache);
        qwen3_cache_create(&r->cache, &r->model->cfg, 1, n);
    }
    r->cache.len = 0;
    Qwen3Inputs in = {.ids = ids, .cache = &r->cache, .logits_mode = QWEN3_LOGITS_NONE, .lora = r->lora};
    if (qwen3_forward(r->model, &in, 1, n) != 0) {
        free(ids);
        return -1;
    }
    // cached_ids holds as many ids as the cache has room for (paw_runner_run fills it up to that).
    free(r->cached_ids);
    r->cached_ids = xrealloc(ids, sizeof(int32_t) * (size_t)r->cache.cap);
    r->cached = n;
    return 0;
}

static int many_fill(void *vctx, const int *rows, const int *jobs, int k, int *next) {
    ManyCtx *c = vctx;
    const Qwen3Config *cfg = &c->runners[0]->model->cfg;
    for (int i = 0; i < k; i++) {
        PawRunner *r = c->runners[c->job_runner[jobs[i]]];
        if (ensure_prefix(r) != 0) return -1;  // a program's prefix is made at its first job
        c->row_runner[rows[i]] = c->job_runner[jobs[i]];
        const PawIds *ids = &c->ids[jobs[i]];
        int n = (int)ids->n, need = n + c->max_new;
        Qwen3KVCache *rc = &c->runners[0]->row_caches[rows[i]];
        if (!rc->k || rc->cap < need) {  // grown in steps of 64 positions, up to the context
            int cap = (need + 63) / 64 * 64;
            if (rc->k) qwen3_cache_free(rc);
            qwen3_cache_create(rc, cfg, 1, cap < cfg->max_position_embeddings ? cap : cfg->max_position_embeddings);
        }
        // The shared leading tokens come from the prefix (at least one token is left to compute).
        int keep = 0, limit = r->cached < (int)r->prefix_ids.n ? r->cached : (int)r->prefix_ids.n;
        while (keep < limit && keep < n - 1 && r->cached_ids[keep] == ids->ids[keep]) keep++;
        qwen3_cache_copy_prefix(rc, &r->cache, keep);
        rc->len = keep;
        Qwen3Inputs in = {.ids = ids->ids + keep, .cache = rc, .logits_mode = QWEN3_LOGITS_LAST, .lora = r->lora};
        if (qwen3_forward(r->model, &in, 1, n - keep) != 0) return -1;
        next[i] = qwen3_argmax(r->model->acts.logits, cfg->vocab_size);
        c->prefill_tokens += n - keep;
        c->prefix_tokens += keep;
    }
    return 0;
}

static int many_step(void *vctx, const int *active, int *next) {
    ManyCtx *c = vctx;
    PawRunner *r0 = c->runners[0];
    int na = 0, one_adapter = 1;
    for (int b = 0; b < c->rows; b++)
        if (active[b]) {
            c->live[na] = &r0->row_caches[b], c->live_row[na] = b, c->live_ids[na] = next[b];
            c->live_lora[na] = c->runners[c->row_runner[b]]->lora;
            one_adapter &= c->live_lora[na] == c->live_lora[0];
            na++;
        }
    if (na == 0) return 0;
    // Rows of one program share its adapter as one batch (its weights read once); rows of several
    // programs take theirs row by row.
    Qwen3Inputs in = {.ids = c->live_ids, .row_caches = c->live, .logits_mode = QWEN3_LOGITS_LAST};
    if (one_adapter) in.lora = c->live_lora[0];
    else in.row_loras = c->live_lora;
    if (qwen3_forward(r0->model, &in, na, 1) != 0) return -1;
    int V = r0->model->cfg.vocab_size;
    for (int i = 0; i < na; i++) next[c->live_row[i]] = qwen3_argmax(r0->model->acts.logits + (size_t)i * V, V);
    return 0;
}

int paw_runner_run_many(PawRunner *r, const char *const *inputs, int n, int rows, int max_new, char **outputs,
                        char **errors, PawRunStats *st) {
    int *zeros = xcalloc((size_t)(n ? n : 1), sizeof(int));
    int rc = paw_runner_run_jobs(&r, zeros, inputs, n, rows, max_new, outputs, errors, st);
    free(zeros);
    return rc;
}

int paw_runner_run_jobs(PawRunner *const *runners, const int *job_runner, const char *const *inputs, int n, int rows,
                        int max_new, char **outputs, char **errors, PawRunStats *st) {
    double t0 = paw_now();
    PawRunStats s = {0};
    if (st) *st = s;
    if (rows < 1 || max_new < 1) return paw_error("run: rows %d and max_new %d must be at least 1", rows, max_new);
    PawRunner *r = runners[0];
    if (max_new > r->model->cfg.max_position_embeddings)  // before sizing the output buffer by it
        return paw_error("run: %d new tokens exceed the interpreter's context of %d", max_new,
                         r->model->cfg.max_position_embeddings);
    for (int i = 0; i < n; i++)  // one model and one stop token: the decoding loop runs them all
        if (runners[job_runner[i]]->model != r->model || runners[job_runner[i]]->stop_id != r->stop_id)
            return paw_error("run: the programs' runners use different models or stop tokens");
    ManyCtx c = {.runners = runners, .max_new = max_new};
    PawIds *all_ids = xcalloc((size_t)(n ? n : 1), sizeof(PawIds));
    int *lens = xmalloc(sizeof(int) * (size_t)(n ? n : 1)), kept = 0;
    for (int i = 0; i < n; i++) {
        outputs[i] = errors[i] = NULL;
        lens[i] = -1;
        if (paw_runner_prompt_ids(runners[job_runner[i]], inputs[i], max_new, &all_ids[i]) != 0)
            errors[i] = xstrdup(paw_last_error());
        else lens[i] = (int)all_ids[i].n, kept++;
    }
    int *order = xmalloc(sizeof(int) * (size_t)(n ? n : 1)), *starts = xmalloc(sizeof(int) * (size_t)(n + 1));
    paw_run_plan(lens, n, n ? n : 1, order, starts);
    int nrows = rows < kept ? rows : kept, rc = 0;
    if (nrows > r->row_caches_n) {
        r->row_caches = xrealloc(r->row_caches, sizeof(Qwen3KVCache) * (size_t)nrows);
        memset(r->row_caches + r->row_caches_n, 0, sizeof(Qwen3KVCache) * (size_t)(nrows - r->row_caches_n));
        r->row_caches_n = nrows;
    }
    size_t nr = (size_t)(nrows ? nrows : 1), nk = (size_t)(kept ? kept : 1);
    c.live = xmalloc(sizeof(Qwen3KVCache *) * nr);
    c.live_row = xmalloc(sizeof(int) * nr), c.live_ids = xmalloc(sizeof(int) * nr), c.row_runner = xmalloc(sizeof(int) * nr);
    c.live_lora = xmalloc(sizeof(Qwen3Lora *) * nr);
    int32_t *out = xmalloc(sizeof(int32_t) * nk * max_new);
    int *counts = xcalloc(nk, sizeof(int)), *dense = xmalloc(sizeof(int) * nk), *dense_runner = xmalloc(sizeof(int) * nk);
    // Decoding runs over the kept jobs in plan order: dense index k is job order[k].
    PawIds *dense_ids = xmalloc(sizeof(PawIds) * nk);
    for (int k = 0; k < kept; k++) dense[k] = k, dense_ids[k] = all_ids[order[k]], dense_runner[k] = job_runner[order[k]];
    c.ids = dense_ids, c.job_runner = dense_runner, c.rows = nrows;
    PawDecodeStats ds = {0};
    PawDecodeModel dm = {&c, many_fill, many_step};
    if (kept > 0) rc = paw_run_decode(&dm, dense, kept, nrows, 1, max_new, r->stop_id, out, counts, &ds);
    for (int k = 0; rc == 0 && k < kept; k++) {
        int j = order[k], got = counts[k];
        int32_t *toks = out + (size_t)k * max_new;
        s.tokens += got;
        if (got > 0 && toks[got - 1] == r->stop_id) got--;
        if (paw_runner_decode(runners[job_runner[j]], toks, got, &outputs[j]) != 0) rc = -1;
    }
    for (int i = 0; i < n; i++) paw_ids_free(&all_ids[i]);
    free(all_ids), free(dense_ids), free(dense), free(dense_runner), free(lens), free(order), free(starts), free(out);
    free(counts), free(c.live), free(c.live_row), free(c.live_ids), free(c.row_runner), free(c.live_lora);
    if (rc != 0) {
        for (int i = 0; i < n; i++) free(outputs[i]), free(errors[i]), outputs[i] = errors[i] = NULL;
        return -1;
    }
    s.seconds = paw_now() - t0;
    s.rows = kept, s.fills = ds.fills, s.steps = ds.steps, s.row_steps = ds.row_steps, s.idle_rows = ds.idle_rows;
    s.prefill_tokens = c.prefill_tokens, s.prefix_tokens = c.prefix_tokens;
    if (st) *st = s;
    return 0;
}
