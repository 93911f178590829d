// KV-cache decoding: a prefill forward over the prompt, then one token per step against the
// cache, greedy argmax.
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "kernels/attention.h"
#include "model/qwen3.h"

void qwen3_cache_create(Qwen3KVCache *c, const Qwen3Config *cfg, int B, int cap) {
    c->L = cfg->num_layers;
    c->B = B;
    c->cap = cap;
    c->stride = (cap + ATT_KEY_TILE - 1) / ATT_KEY_TILE * ATT_KEY_TILE;
    c->kvdim = cfg->num_kv_heads * cfg->head_dim;
    c->hd = cfg->head_dim;
    c->len = 0;
    size_t n = (size_t)c->L * B * c->stride * c->kvdim;
    c->k = xmalloc_big(sizeof(float) * n);
    c->v = xmalloc_big(sizeof(float) * n);
}

void qwen3_cache_copy_prefix(Qwen3KVCache *dst, const Qwen3KVCache *src, int n) {
    if (n <= 0) return;  // src may be a cache never created (an empty template prefix)
    int H = src->kvdim / src->hd, hd = src->hd;
    for (int l = 0; l < src->L; l++)
        for (int g = 0; g < H; g++) {
            size_t s = ((size_t)l * H + g) * src->stride * hd, d = ((size_t)l * H + g) * dst->stride * hd;
            memcpy(dst->v + d, src->v + s, sizeof(float) * (size_t)n * hd);
            // Keys in tiles of ATT_KEY_TILE positions: one run per tile and dimension.
            for (int j = 0; j < n; j += ATT_KEY_TILE) {
                int run = n - j < ATT_KEY_TILE ? n - j : ATT_KEY_TILE;
                for (int e = 0; e < hd; e++) {
                    size_t o = attention_key_index(j, e, hd);
                    memcpy(dst->k + d + o, src->k + s + o, sizeof(float) * (size_t)run);
                }
            }
        }
}

void qwen3_cache_free(Qwen3KVCache *c) {
    free(c->k);
    free(c->v);
    memset(c, 0, sizeof *c);
}

int qwen3_argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

int qwen3_generate(Qwen3 *m, const Qwen3Lora *lora, const int *ids, int n, int max_new, int stop_id, int *out) {
    if (n <= 0) return paw_error("generate: empty prompt");
    if (max_new < 0) return paw_error("generate: negative --max-new");
    int cap = n + max_new;
    if (cap > m->cfg.max_position_embeddings)
        return paw_error("generate: %d prompt + %d new tokens exceed max_position_embeddings %d", n, max_new,
                         m->cfg.max_position_embeddings);
    Qwen3KVCache cache;
    qwen3_cache_create(&cache, &m->cfg, 1, cap);
    Qwen3Inputs in = {.ids = ids, .cache = &cache, .logits_mode = QWEN3_LOGITS_LAST, .lora = lora};
    int count = 0, rc = 0;
    if (qwen3_forward(m, &in, 1, n) != 0) {
        rc = -1;
        goto done;
    }
    while (count < max_new) {
        int next = qwen3_argmax(m->acts.logits, m->cfg.vocab_size);
        out[count++] = next;
        if (next == stop_id || count == max_new) break;
        in.ids = &next;
        if (qwen3_forward(m, &in, 1, 1) != 0) {
            rc = -1;
            goto done;
        }
    }
done:
    qwen3_cache_free(&cache);
    return rc ? -1 : count;
}
