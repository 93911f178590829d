#include "interpreter/runner.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileio.h"
#include "data/template.h"

char *paw_strip(const char *s, size_t n) {
    while (n && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')) s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r')) n--;
    char *r = xmalloc(n + 1);
    memcpy(r, s, n);
    r[n] = 0;
    return r;
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
    if (n + max_new > maxpos) {
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
