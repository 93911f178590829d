#include "model/qwen3.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/rng.h"
#include "kernels/attention.h"
#include "kernels/crossentropy.h"
#include "kernels/embedding.h"
#include "kernels/lora.h"
#include "kernels/matmul.h"
#include "kernels/quant.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"
#include "model/safetensors.h"

const char *const lora_module_names[LORA_NUM_MODULES] = {"down_proj", "gate_proj", "k_proj", "o_proj",
                                                         "q_proj",    "up_proj",   "v_proj"};

void lora_module_dims(const Qwen3Config *c, int m, int *d_in, int *d_out) {
    int C = c->hidden_size, I = c->intermediate_size;
    int Q = c->num_heads * c->head_dim, KV = c->num_kv_heads * c->head_dim;
    static const int in_is[LORA_NUM_MODULES] = {2, 0, 0, 1, 0, 0, 0};  // 0: C, 1: Q, 2: I
    static const int out_is[LORA_NUM_MODULES] = {0, 2, 3, 0, 1, 2, 3}; // 0: C, 1: Q, 2: I, 3: KV
    int dims[4] = {C, Q, I, KV};
    *d_in = dims[in_is[m]];
    *d_out = dims[out_is[m]];
}

Qwen3ParamInfo qwen3_param_info(const Qwen3Config *c, int i) {
    int C = c->hidden_size, I = c->intermediate_size, L = c->num_layers, V = c->vocab_size;
    int Q = c->num_heads * c->head_dim, KV = c->num_kv_heads * c->head_dim, HD = c->head_dim;
    Qwen3ParamInfo p = {0};
    switch (i) {
    case 0: p = (Qwen3ParamInfo){"model.embed_tokens.weight", 0, 2, {V, C}, 0}; break;
    case 1: p = (Qwen3ParamInfo){"model.layers.%d.input_layernorm.weight", 1, 1, {C, 0}, 0}; break;
    case 2: p = (Qwen3ParamInfo){"model.layers.%d.self_attn.q_proj.weight", 1, 2, {Q, C}, 0}; break;
    case 3: p = (Qwen3ParamInfo){"model.layers.%d.self_attn.k_proj.weight", 1, 2, {KV, C}, 0}; break;
    case 4: p = (Qwen3ParamInfo){"model.layers.%d.self_attn.v_proj.weight", 1, 2, {KV, C}, 0}; break;
    case 5: p = (Qwen3ParamInfo){"model.layers.%d.self_attn.q_norm.weight", 1, 1, {HD, 0}, 0}; break;
    case 6: p = (Qwen3ParamInfo){"model.layers.%d.self_attn.k_norm.weight", 1, 1, {HD, 0}, 0}; break;
    case 7: p = (Qwen3ParamInfo){"model.layers.%d.self_attn.o_proj.weight", 1, 2, {C, Q}, 0}; break;
    case 8: p = (Qwen3ParamInfo){"model.layers.%d.post_attention_layernorm.weight", 1, 1, {C, 0}, 0}; break;
    case 9: p = (Qwen3ParamInfo){"model.layers.%d.mlp.gate_proj.weight", 1, 2, {I, C}, 0}; break;
    case 10: p = (Qwen3ParamInfo){"model.layers.%d.mlp.up_proj.weight", 1, 2, {I, C}, 0}; break;
    case 11: p = (Qwen3ParamInfo){"model.layers.%d.mlp.down_proj.weight", 1, 2, {C, I}, 0}; break;
    case 12: p = (Qwen3ParamInfo){"model.norm.weight", 0, 1, {C, 0}, 0}; break;
    case 13: p = (Qwen3ParamInfo){"lm_head.weight", 0, 2, {V, C}, 0}; break;
    }
    size_t n = (size_t)p.shape[0] * (p.ndim == 2 ? (size_t)p.shape[1] : 1);
    p.numel = n * (p.per_layer ? (size_t)L : 1);
    if (i == 13 && c->tie_word_embeddings) p.numel = 0;
    return p;
}

float **qwen3_param_slot(Qwen3Params *p, int i) {
    float **slots[QWEN3_NUM_PARAMS] = {&p->wte,   &p->ln1w, &p->qw,  &p->kw,    &p->vw,   &p->qnormw, &p->knormw,
                                       &p->ow,    &p->ln2w, &p->gatew, &p->upw, &p->downw, &p->lnfw, &p->lm_head};
    return slots[i];
}

// Points the tensors of p into one block of memory; returns the number of floats. Without
// matrices (bf16 weights), the 2-D slots are left NULL and take no room.
static size_t layout_params(const Qwen3Config *cfg, Qwen3Params *p, float *mem, int matrices) {
    size_t off = 0;
    for (int i = 0; i < QWEN3_NUM_PARAMS; i++) {
        Qwen3ParamInfo info = qwen3_param_info(cfg, i);
        int here = matrices || info.ndim == 1;
        *qwen3_param_slot(p, i) = mem && here ? mem + off : NULL;
        if (here) off += info.numel;
    }
    if (cfg->tie_word_embeddings) p->lm_head = p->wte;
    return off;
}

// Where each 2-D parameter starts in one block of matrices (element offsets; SIZE_MAX for the
// others, and the tied LM head shares the embedding's); returns the block's element count. The
// bf16 and q8 models lay their matrices out this way.
static size_t matrix_offsets(const Qwen3Config *cfg, size_t off[QWEN3_NUM_PARAMS]) {
    size_t total = 0;
    for (int i = 0; i < QWEN3_NUM_PARAMS; i++) {
        Qwen3ParamInfo info = qwen3_param_info(cfg, i);
        off[i] = info.ndim == 2 ? total : SIZE_MAX;
        if (info.ndim == 2) total += info.numel;
    }
    if (cfg->tie_word_embeddings) off[13] = off[0];
    return total;
}

void qwen3_create(Qwen3 *m, const Qwen3Config *cfg, int frozen) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->num_params = layout_params(cfg, &m->params, NULL, 1);
    m->params_memory = xmalloc_big(sizeof(float) * m->num_params);
    layout_params(cfg, &m->params, m->params_memory, 1);
    qwen3_set_frozen(m, frozen);
}

// The common part of the inference-only models: fp32 norms, no gradients.
static void create_inference(Qwen3 *m, const Qwen3Config *cfg) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->num_params = layout_params(cfg, &m->params, NULL, 0);
    m->params_memory = xmalloc_big(sizeof(float) * m->num_params);
    layout_params(cfg, &m->params, m->params_memory, 0);
    m->frozen = 1;
    m->inference_only = 1;
}

void qwen3_create_bf16(Qwen3 *m, const Qwen3Config *cfg, int with_memory) {
    create_inference(m, cfg);
    size_t off[QWEN3_NUM_PARAMS], ntab = 0;
    m->num_w16 = matrix_offsets(cfg, off);
    for (int i = 0; i < QWEN3_NUM_PARAMS; i++)
        if (off[i] != SIZE_MAX) ntab += qwen3_param_info(cfg, i).per_layer ? (size_t)cfg->num_layers : 1;
    m->w16_tables = xcalloc(ntab, sizeof(uint16_t *));
    if (with_memory) m->w16_memory = xmalloc_big(sizeof(uint16_t) * m->num_w16);
    const uint16_t **t = m->w16_tables;
    for (int i = 0; i < QWEN3_NUM_PARAMS; i++) {
        if (off[i] == SIZE_MAX) continue;
        Qwen3ParamInfo info = qwen3_param_info(cfg, i);
        int layers = info.per_layer ? cfg->num_layers : 1;
        m->w16[i] = t;
        for (int l = 0; l < layers; l++)
            t[l] = m->w16_memory ? m->w16_memory + off[i] + (size_t)l * (info.numel / (size_t)layers) : NULL;
        t += layers;
    }
    if (cfg->tie_word_embeddings) m->w16[13] = m->w16[0];  // one table: the LM head is the embedding
}

int qwen3_create_q8(Qwen3 *m, const Qwen3Config *cfg) {
    memset(m, 0, sizeof *m);
    for (int i = 0; i < QWEN3_NUM_PARAMS; i++) {
        Qwen3ParamInfo info = qwen3_param_info(cfg, i);
        if (info.ndim == 2 && info.numel && info.shape[1] % 32 != 0) {
            char name[160];
            snprintf(name, sizeof name, info.hf_name, 0);
            return paw_error("q8 weights: %s has rows of %d values, not a multiple of 32", name, info.shape[1]);
        }
    }
    create_inference(m, cfg);
    size_t off[QWEN3_NUM_PARAMS];
    m->num_q8 = matrix_offsets(cfg, off);  // int8 values; a scale per 32 of them
    m->q8_memory = xmalloc_big(m->num_q8);
    m->q8d_memory = xmalloc_big(sizeof(float) * (m->num_q8 / 32));
    for (int i = 0; i < QWEN3_NUM_PARAMS; i++)
        if (off[i] != SIZE_MAX) m->q8[i] = m->q8_memory + off[i], m->q8d[i] = m->q8d_memory + off[i] / 32;
    return 0;
}

void qwen3_set_q8(Qwen3 *m, int i, size_t off, const float *x, size_t n) {
    uint8_t blk[Q8_0_BLOCK_BYTES];
    for (size_t b = 0; b < n / 32; b++) {
        quantize_q8_0(x + b * 32, blk, 32);  // ggml's Q8_0 block: fp16 scale, then 32 int8
        uint16_t d;
        memcpy(&d, blk, 2);
        m->q8d[i][(off + b * 32) / 32] = st_f16_to_f32(d);
        memcpy(m->q8[i] + off + b * 32, blk + 2, 32);
    }
}

void qwen3_set_frozen(Qwen3 *m, int frozen) {
    if (!frozen && m->inference_only)
        paw_die("qwen3_set_frozen: a model with %s inference weights cannot be trained", qwen3_weights_kind(m));
    m->frozen = frozen;
    free(m->grads_memory);
    m->grads_memory = NULL;
    memset(&m->grads, 0, sizeof m->grads);
    if (!frozen) {
        m->grads_memory = xmalloc_big(sizeof(float) * m->num_params);
        memset(m->grads_memory, 0, sizeof(float) * m->num_params);
        layout_params(&m->cfg, &m->grads, m->grads_memory, 1);
    }
}

void qwen3_zero_grad(Qwen3 *m) {
    if (m->grads_memory) memset(m->grads_memory, 0, sizeof(float) * m->num_params);
}

void qwen3_free(Qwen3 *m) {
    qwen3_close_mapped_files(m);
    free(m->params_memory);
    free(m->w16_memory);
    free(m->w16_tables);
    free(m->q8_memory);
    free(m->q8d_memory);
    free(m->grads_memory);
    free(m->acts_memory);
    free(m->scratch_memory);
    free(m->rope_cos);
    free(m->rope_sin);
    free(m->pos);
    free(m->lora_u);
    free(m->lora_du);
    free(m->ids);
    free(m->targets);
    free(m->loss_weight);
    free(m->loss_rows);
    free(m->lnf_rows);
    memset(m, 0, sizeof *m);
}

void qwen3_init_random(Qwen3 *m, unsigned long long seed, float std) {
    PawRng rng = {seed};
    for (int i = 0; i < QWEN3_NUM_PARAMS; i++) {
        Qwen3ParamInfo info = qwen3_param_info(&m->cfg, i);
        float *t = *qwen3_param_slot(&m->params, i);
        if (info.numel == 0) continue;
        if (info.ndim == 1) {
            for (size_t k = 0; k < info.numel; k++) t[k] = 1.0f;
        } else if (m->w16[i]) {  // bf16 weights: the same draws, rounded (held, so contiguous)
            uint16_t *w = qwen3_w16_held(m, i, 0);
            for (size_t k = 0; k < info.numel; k++) w[k] = st_f32_to_bf16(std * paw_rng_normal(&rng));
        } else if (m->q8[i]) {  // q8 weights: the same draws, quantized
            float *row = xmalloc(sizeof(float) * (size_t)info.shape[1]);
            for (size_t r = 0; r < info.numel / (size_t)info.shape[1]; r++) {
                for (int k = 0; k < info.shape[1]; k++) row[k] = std * paw_rng_normal(&rng);
                qwen3_set_q8(m, i, r * (size_t)info.shape[1], row, (size_t)info.shape[1]);
            }
            free(row);
        } else {
            for (size_t k = 0; k < info.numel; k++) t[k] = std * paw_rng_normal(&rng);
        }
    }
}

// Sizes the activation and scratch buffers for N tokens (B sequences), growing when needed.
static void ensure_acts(Qwen3 *m, int B, int T) {
    const Qwen3Config *c = &m->cfg;
    size_t N = (size_t)B * T;
    if (N <= m->acts_cap_tokens) return;
    size_t C = c->hidden_size, I = c->intermediate_size, L = c->num_layers, V = c->vocab_size;
    size_t Q = (size_t)c->num_heads * c->head_dim, KV = (size_t)c->num_kv_heads * c->head_dim;
    size_t NH = c->num_heads, NKV = c->num_kv_heads;
    size_t sizes[] = {(L + 1) * N * C, L * N * C, L * N, L * N * Q, L * N * KV, L * N * Q, L * N * KV, L * N * KV,
                      L * N * NH,      L * N * NKV, L * N * Q, L * N * NH, L * N * C, L * N * C, L * N, L * N * I,
                      L * N * I,       L * N * I, N * C, N, N * V, N, N};
    float **slots[] = {&m->acts.x,        &m->acts.ln1,     &m->acts.ln1_rstd, &m->acts.q_raw,  &m->acts.k_raw,
                       &m->acts.q,        &m->acts.k,       &m->acts.v,        &m->acts.q_rstd, &m->acts.k_rstd,
                       &m->acts.att,      &m->acts.att_lse, &m->acts.x_mid,    &m->acts.ln2,    &m->acts.ln2_rstd,
                       &m->acts.gate,     &m->acts.up,      &m->acts.act,      &m->acts.lnf,    &m->acts.lnf_rstd,
                       &m->acts.logits,   &m->acts.ce_lse,  &m->acts.nll};
    int n = (int)(sizeof sizes / sizeof sizes[0]);
    size_t total = 0;
    for (int i = 0; i < n; i++) total += sizes[i];
    free(m->acts_memory);
    m->acts_memory = xmalloc_big(sizeof(float) * total);
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        *slots[i] = m->acts_memory + off;
        off += sizes[i];
    }
    size_t ssizes[] = {N * C, N * C, N * Q, N * Q, N * Q, N * KV, N * KV, N * KV, N * I, N * I, N * I};
    float **sslots[] = {&m->scratch.dx,     &m->scratch.dln,  &m->scratch.datt, &m->scratch.dq,
                        &m->scratch.dq_raw, &m->scratch.dk,   &m->scratch.dk_raw, &m->scratch.dv,
                        &m->scratch.dact,   &m->scratch.dgate, &m->scratch.dup};
    total = 0;
    for (int i = 0; i < 11; i++) total += ssizes[i];
    free(m->scratch_memory);
    m->scratch_memory = xmalloc_big(sizeof(float) * total);
    off = 0;
    for (int i = 0; i < 11; i++) {
        *sslots[i] = m->scratch_memory + off;
        off += ssizes[i];
    }
    m->pos = xrealloc(m->pos, sizeof(int) * N);
    m->ids = xrealloc(m->ids, sizeof(int) * N);
    m->targets = xrealloc(m->targets, sizeof(int) * N);
    m->loss_weight = xrealloc(m->loss_weight, sizeof(float) * N);
    m->loss_rows = xrealloc(m->loss_rows, sizeof(int) * N);
    m->acts_cap_tokens = N;
}

static void ensure_rope(Qwen3 *m, int needed) {
    if (needed <= m->rope_len) return;
    int len = needed > 256 ? needed : 256;
    if (len < 2 * m->rope_len) len = 2 * m->rope_len;
    size_t h = (size_t)m->cfg.head_dim / 2;
    free(m->rope_cos);
    free(m->rope_sin);
    m->rope_cos = xmalloc(sizeof(float) * (size_t)len * h);
    m->rope_sin = xmalloc(sizeof(float) * (size_t)len * h);
    rope_table(m->rope_cos, m->rope_sin, len, m->cfg.head_dim, (float)m->cfg.rope_theta);
    m->rope_len = len;
}

// T new positions' keys and values [T, NKV * HD] into one sequence's cache of a layer
// ([NKV, stride * HD], attention_forward_cache's layout), at positions pos0 ...
static void cache_append(float *ck, float *cv, const float *k, const float *v, int T, int pos0, int stride, int NKV,
                         int HD) {
    for (int t = 0; t < T; t++)
        for (int g = 0; g < NKV; g++) {
            size_t src = ((size_t)t * NKV + g) * HD, head = (size_t)g * stride * HD;
            for (int d = 0; d < HD; d++) ck[head + attention_key_index(pos0 + t, d, HD)] = k[src + d];
            memcpy(cv + head + (size_t)(pos0 + t) * HD, v + src, sizeof(float) * (size_t)HD);
        }
}

// out (+= when acc) = inp[N, C] @ W^T for weight matrix i (a Qwen3ParamInfo index) of layer l
// (0 for the LM head): from the fp32 parameters, the bf16 or the Q8 matrices.
static void project(const Qwen3 *m, int i, int l, float *out, const float *inp, int N, int C, int OC, int acc) {
    const size_t off = (size_t)l * OC * C;
    if (m->w16[i]) {
        if (acc) matmul_forward_bf16w_acc(out, inp, m->w16[i][l], N, C, OC, 1.0f);
        else matmul_forward_bf16w(out, inp, m->w16[i][l], N, C, OC);
        return;
    }
    if (m->q8[i]) {  // off is a multiple of C, itself a multiple of 32
        if (acc) matmul_forward_q8q_acc(out, inp, m->q8[i] + off, m->q8d[i] + off / 32, N, C, OC, 1.0f);
        else matmul_forward_q8q(out, inp, m->q8[i] + off, m->q8d[i] + off / 32, N, C, OC);
        return;
    }
    const float *w = *qwen3_param_slot((Qwen3Params *)&m->params, i) + off;
    if (acc) matmul_forward_acc(out, inp, w, N, C, OC, 1.0f);
    else matmul_forward(out, inp, w, N, C, OC);
}
enum { W_EMBED = 0, W_Q = 2, W_K = 3, W_V = 4, W_O = 7, W_GATE = 9, W_UP = 10, W_DOWN = 11, W_LM_HEAD = 13 };

void qwen3_embedding_row(const Qwen3 *m, int id, float *out) {
    const int C = m->cfg.hidden_size;
    if (m->params.wte) memcpy(out, m->params.wte + (size_t)id * C, sizeof(float) * C);
    else if (m->q8[W_EMBED]) embedding_forward_q8(out, &id, m->q8[W_EMBED], m->q8d[W_EMBED], 1, C);
    else embedding_forward_bf16(out, &id, m->w16[W_EMBED][0], 1, C);
}

// Module mod's side path at layer l for nb adapters of T rows each: fp32 or Q8 weights.
static void lora_module_forward(const Qwen3Lora *a, int mod, int l, float *y, float *u, const float *x, int nb, int T,
                                int din, int dout) {
    const int r = a->rank;
    const size_t ao = (size_t)l * a->nb * r * din, bo = (size_t)l * a->nb * dout * r;
    if (a->qA[mod])
        lora_forward_q8(y, u, x, a->qA[mod] + ao, a->qAd[mod] + ao / 32, a->qB[mod] + bo, a->qBd[mod] + bo / 32, nb, T,
                        din, dout, r, a->scale);
    else
        lora_forward(y, u, x, a->A[mod] + ao, a->B[mod] + bo, nb, T, din, dout, r, a->scale);
}

static int lora_has_q8(const Qwen3Lora *a) {
    for (int mod = 0; a && mod < LORA_NUM_MODULES; mod++)
        if (a->qA[mod]) return 1;
    return 0;
}

int qwen3_forward(Qwen3 *m, const Qwen3Inputs *in, int B, int T) {
    const Qwen3Config *c = &m->cfg;
    const int C = c->hidden_size, I = c->intermediate_size, L = c->num_layers, V = c->vocab_size;
    const int NH = c->num_heads, NKV = c->num_kv_heads, HD = c->head_dim;
    const int Q = NH * HD, KV = NKV * HD;
    if (B <= 0 || T <= 0) return paw_error("forward: empty batch (B=%d, T=%d)", B, T);
    Qwen3KVCache *cache = in->cache;
    Qwen3KVCache *const *rows = in->row_caches;
    int pos0 = cache ? cache->len : 0, pos_end = pos0 + T;
    if (cache && rows) return paw_error("forward: both a batch KV cache and per-sequence caches");
    if (cache && (B != cache->B || pos0 + T > cache->cap))
        return paw_error("forward: %d new tokens do not fit the KV cache (%d of %d used, batch %d vs %d)", T, pos0,
                         cache->cap, B, cache->B);
    for (int b = 0; rows && b < B; b++) {
        if (rows[b]->B != 1 || rows[b]->len + T > rows[b]->cap)
            return paw_error("forward: %d new tokens of sequence %d do not fit its KV cache (%d of %d used, batch %d)", T,
                             b, rows[b]->len, rows[b]->cap, rows[b]->B);
        if (rows[b]->len + T > pos_end) pos_end = rows[b]->len + T;
    }
    const size_t N = (size_t)B * T;
    ensure_acts(m, B, T);
    ensure_rope(m, pos_end);
    m->B = B;
    m->T = T;
    m->has_loss = 0;
    m->backward_ok = 0;
    m->logits_weighted = 0;
    Qwen3Acts *a = &m->acts;
    const Qwen3Params *p = &m->params;
    const Qwen3Lora *lora = in->lora;
    const Qwen3Lora *const *rlora = in->row_loras;
    m->lora = lora;
    const int R = lora ? lora->rank : 0;
    if (lora && rlora) return paw_error("forward: both a batch adapter and per-sequence adapters");
    size_t need = 0;
    if (lora) {
        if (lora->nb != B && lora->nb != 1)
            return paw_error("forward: %d LoRA adapters for a batch of %d sequences", lora->nb, B);
        need = (size_t)LORA_NUM_MODULES * L * N * R;
    }
    for (int b = 0; rlora && b < B; b++) {  // per-sequence adapters: u is scratch for one sequence
        if (rlora[b] && rlora[b]->nb != 1)
            return paw_error("forward: sequence %d's adapter holds %d adapters, expected 1", b, rlora[b]->nb);
        if (rlora[b] && (size_t)T * rlora[b]->rank > need) need = (size_t)T * rlora[b]->rank;
    }
    if (need) {
        if (need > m->lora_u_cap) {
            free(m->lora_u);
            free(m->lora_du);
            m->lora_u = xmalloc(sizeof(float) * need);
            m->lora_du = xmalloc(sizeof(float) * N * (R ? R : 1));
            m->lora_u_cap = need;
        }
    }
// One adapter shared by the batch runs as one sequence of N rows.
#define LORA_NB (lora->nb == 1 ? 1 : B)
#define LORA_T (lora->nb == 1 ? (int)N : T)
// The saved LoRA activation of module mod at layer l.
#define LORA_U(mod, l) (m->lora_u + ((size_t)(mod) * L + (l)) * N * R)
#define LORA_FWD(mod, y, x)                                                                                          \
    do {                                                                                                             \
        if (lora) {                                                                                                  \
            int din_, dout_;                                                                                         \
            lora_module_dims(c, mod, &din_, &dout_);                                                                 \
            lora_module_forward(lora, mod, l, y, LORA_U(mod, l), x, LORA_NB, LORA_T, din_, dout_);                  \
        }                                                                                                            \
        for (int b_ = 0; rlora && b_ < B; b_++) {                                                                    \
            if (!rlora[b_]) continue;                                                                                \
            int din_, dout_;                                                                                         \
            lora_module_dims(c, mod, &din_, &dout_);                                                                 \
            lora_module_forward(rlora[b_], mod, l, (y) + (size_t)b_ * T * dout_, m->lora_u,                          \
                                (x) + (size_t)b_ * T * din_, 1, T, din_, dout_);                                     \
        }                                                                                                            \
    } while (0)

    // Embeddings (or caller-supplied rows), remembering ids for the embedding gradient.
    for (size_t n = 0; n < N; n++) {
        int id = in->ids ? in->ids[n] : -1;
        if (id >= V || (id < 0 && !in->embeds))
            return paw_error("forward: token id %d at position %zu is outside the vocabulary [0, %d)", id, n, V);
        m->ids[n] = id;
        m->pos[n] = (rows ? rows[n / (size_t)T]->len : pos0) + (int)(n % (size_t)T);
    }
    if (in->embeds) memcpy(a->x, in->embeds, sizeof(float) * N * C);
    if (m->w16[W_EMBED]) embedding_forward_bf16(a->x, m->ids, m->w16[W_EMBED][0], (int)N, C);
    else if (m->q8[W_EMBED]) embedding_forward_q8(a->x, m->ids, m->q8[W_EMBED], m->q8d[W_EMBED], (int)N, C);
    else embedding_forward(a->x, m->ids, p->wte, (int)N, C);

    for (int l = 0; l < L; l++) {
        float *x = a->x + (size_t)l * N * C, *xnext = a->x + (size_t)(l + 1) * N * C;
        float *ln1 = a->ln1 + (size_t)l * N * C, *ln1r = a->ln1_rstd + (size_t)l * N;
        float *q_raw = a->q_raw + (size_t)l * N * Q, *k_raw = a->k_raw + (size_t)l * N * KV;
        float *q = a->q + (size_t)l * N * Q, *k = a->k + (size_t)l * N * KV, *v = a->v + (size_t)l * N * KV;
        float *qr = a->q_rstd + (size_t)l * N * NH, *kr = a->k_rstd + (size_t)l * N * NKV;
        float *att = a->att + (size_t)l * N * Q, *lse = a->att_lse + (size_t)l * N * NH;
        float *xmid = a->x_mid + (size_t)l * N * C, *ln2 = a->ln2 + (size_t)l * N * C;
        float *ln2r = a->ln2_rstd + (size_t)l * N;
        float *gate = a->gate + (size_t)l * N * I, *up = a->up + (size_t)l * N * I, *act = a->act + (size_t)l * N * I;

        rmsnorm_forward(ln1, ln1r, x, p->ln1w + (size_t)l * C, (int)N, C, (float)c->rms_norm_eps);
        project(m, W_Q, l, q_raw, ln1, (int)N, C, Q, 0);
        project(m, W_K, l, k_raw, ln1, (int)N, C, KV, 0);
        project(m, W_V, l, v, ln1, (int)N, C, KV, 0);
        LORA_FWD(LORA_Q, q_raw, ln1);
        LORA_FWD(LORA_K, k_raw, ln1);
        LORA_FWD(LORA_V, v, ln1);
        qknorm_rope_forward(q, qr, q_raw, p->qnormw + (size_t)l * HD, m->rope_cos, m->rope_sin, m->pos, (int)N, NH, HD,
                            (float)c->rms_norm_eps);
        qknorm_rope_forward(k, kr, k_raw, p->knormw + (size_t)l * HD, m->rope_cos, m->rope_sin, m->pos, (int)N, NKV, HD,
                            (float)c->rms_norm_eps);
        if (cache) {
            // Append this call's keys and values, then attend over everything cached so far.
            size_t layer = (size_t)l * B * cache->stride * KV;
            for (int b = 0; b < B; b++)
                cache_append(cache->k + layer + (size_t)b * cache->stride * KV,
                             cache->v + layer + (size_t)b * cache->stride * KV, k + (size_t)b * T * KV,
                             v + (size_t)b * T * KV, T, pos0, cache->stride, NKV, HD);
            attention_forward_cache(att, q, cache->k + layer, cache->v + layer, B, T, pos0 + T, cache->stride, NH, NKV,
                                    HD);
        } else if (rows) {
            // Each sequence against its own cache: the single-sequence computation, row by row.
            for (int b = 0; b < B; b++) {
                Qwen3KVCache *rc = rows[b];
                size_t layer = (size_t)l * rc->stride * KV;
                cache_append(rc->k + layer, rc->v + layer, k + (size_t)b * T * KV, v + (size_t)b * T * KV, T, rc->len,
                             rc->stride, NKV, HD);
                attention_forward_cache(att + (size_t)b * T * Q, q + (size_t)b * T * Q, rc->k + layer, rc->v + layer, 1, T,
                                        rc->len + T, rc->stride, NH, NKV, HD);
            }
        } else {
            attention_forward(att, lse, q, k, v, B, T, T, T, NH, NKV, HD);
        }
        memcpy(xmid, x, sizeof(float) * N * C);
        project(m, W_O, l, xmid, att, (int)N, Q, C, 1);
        LORA_FWD(LORA_O, xmid, att);
        rmsnorm_forward(ln2, ln2r, xmid, p->ln2w + (size_t)l * C, (int)N, C, (float)c->rms_norm_eps);
        project(m, W_GATE, l, gate, ln2, (int)N, C, I, 0);
        project(m, W_UP, l, up, ln2, (int)N, C, I, 0);
        LORA_FWD(LORA_GATE, gate, ln2);
        LORA_FWD(LORA_UP, up, ln2);
        swiglu_forward(act, gate, up, N * I);
        memcpy(xnext, xmid, sizeof(float) * N * C);
        project(m, W_DOWN, l, xnext, act, (int)N, I, C, 1);
        LORA_FWD(LORA_DOWN, xnext, act);
    }
    if (cache) cache->len = pos0 + T;
    for (int b = 0; rows && b < B; b++) rows[b]->len += T;

    const float *xL = a->x + (size_t)L * N * C;
    if (in->logits_mode == QWEN3_LOGITS_LAST) {
        // Only the last position of each sequence: norm and project B rows.
        for (int b = 0; b < B; b++) {
            size_t row = (size_t)b * T + (T - 1);
            rmsnorm_forward(a->lnf + (size_t)b * C, a->lnf_rstd + b, xL + row * C, p->lnfw, 1, C, (float)c->rms_norm_eps);
        }
        project(m, W_LM_HEAD, 0, a->logits, a->lnf, B, C, V, 0);
        m->logits_rows = B;
        return 0;
    }
    rmsnorm_forward(a->lnf, a->lnf_rstd, xL, p->lnfw, (int)N, C, (float)c->rms_norm_eps);
    m->backward_ok = !cache && !rows && !rlora && !m->inference_only;  // a backward may inject gradients even without a loss
    if (in->logits_mode == QWEN3_LOGITS_NONE) {
        m->logits_rows = 0;
        return 0;
    }
    double wsum = 0;
    size_t nl = N;  // rows with logits
    if (in->logits_mode == QWEN3_LOGITS_WEIGHTED && in->targets && in->loss_weight) {
        // The weighted rows' final-norm outputs side by side; targets and weights follow them.
        if (m->lnf_rows_cap < N * C) {
            free(m->lnf_rows);
            m->lnf_rows = xmalloc_big(sizeof(float) * N * C);
            m->lnf_rows_cap = N * C;
        }
        nl = 0;
        for (size_t n = 0; n < N; n++) {
            wsum += in->loss_weight[n];
            if (in->loss_weight[n] == 0.0f) continue;
            memcpy(m->lnf_rows + nl * C, a->lnf + n * C, sizeof(float) * C);
            m->loss_rows[nl] = (int)n;
            m->targets[nl] = in->targets[n];
            m->loss_weight[nl++] = in->loss_weight[n];
        }
        m->logits_weighted = 1;
        project(m, W_LM_HEAD, 0, a->logits, m->lnf_rows, (int)nl, C, V, 0);
    } else {
        project(m, W_LM_HEAD, 0, a->logits, a->lnf, (int)N, C, V, 0);
    }
    m->logits_rows = (int)nl;
    if (!in->targets) return 0;
    if (!m->logits_weighted) {
        for (size_t n = 0; n < N; n++) {
            m->targets[n] = in->targets[n];
            m->loss_weight[n] = in->loss_weight ? in->loss_weight[n] : 1.0f;
            wsum += m->loss_weight[n];
        }
    }
    int bad = 0;
    m->loss_sum = crossentropy_forward(a->nll, a->ce_lse, a->logits, m->targets, m->loss_weight, (int)nl, V, &bad);
    if (bad) {
        m->backward_ok = 0;
        return paw_error("forward: %d weighted positions have a target outside [0, %d)", bad, V);
    }
    m->loss_weight_sum = wsum;
    m->loss = wsum > 0 ? (float)(m->loss_sum / wsum) : 0.0f;
    m->has_loss = 1;
    return 0;
}

#define GRAD(field, off) (m->frozen ? NULL : m->grads.field + (off))

int qwen3_backward(Qwen3 *m, float grad_scale) {
    if (!m->has_loss) return paw_error("backward: the last forward computed no loss (no targets)");
    Qwen3BackwardArgs args = {.grad_scale = grad_scale};
    return qwen3_backward_ex(m, &args);
}

int qwen3_backward_ex(Qwen3 *m, const Qwen3BackwardArgs *args) {
    if (m->inference_only)
        return paw_error("backward: the model holds %s inference weights (load it with f32 weights)", qwen3_weights_kind(m));
    if (lora_has_q8(m->lora))
        return paw_error("backward: the adapters hold Q8 inference weights (trainable adapters are fp32)");
    if (!m->backward_ok)
        return paw_error("backward: needs a full-sequence forward (no KV cache) just before it");
    const Qwen3Config *c = &m->cfg;
    const int C = c->hidden_size, I = c->intermediate_size, L = c->num_layers, V = c->vocab_size;
    const int NH = c->num_heads, NKV = c->num_kv_heads, HD = c->head_dim;
    const int Q = NH * HD, KV = NKV * HD, B = m->B, T = m->T;
    const size_t N = (size_t)B * T;
    Qwen3Acts *a = &m->acts;
    Qwen3Scratch *s = &m->scratch;
    const Qwen3Params *p = &m->params;
    const Qwen3Lora *lora = m->lora;
    const int R = lora ? lora->rank : 0;
    m->backward_ok = 0;  // the logits buffer is about to hold gradients

    memset(s->dln, 0, sizeof(float) * N * C);
    if (m->has_loss) {
        float grad_scale = args->grad_scale;
        if (grad_scale == 0.0f) grad_scale = m->loss_weight_sum > 0 ? (float)(1.0 / m->loss_weight_sum) : 0.0f;
        float *dlm = m->frozen ? NULL : (c->tie_word_embeddings ? m->grads.wte : m->grads.lm_head);
        if (m->logits_weighted) {
            // The weighted rows' gradients, computed side by side in s->dx (free until the final
            // norm's backward below), then put back in their rows; the other rows' stay 0.
            const size_t nl = (size_t)m->logits_rows;
            crossentropy_backward_inplace(a->logits, a->ce_lse, m->targets, m->loss_weight, (int)nl, V, grad_scale);
            memset(s->dx, 0, sizeof(float) * nl * C);
            matmul_backward(s->dx, dlm, a->logits, m->lnf_rows, p->lm_head, (int)nl, C, V);
            for (size_t i = 0; i < nl; i++) memcpy(s->dln + (size_t)m->loss_rows[i] * C, s->dx + i * C, sizeof(float) * C);
        } else {
            crossentropy_backward_inplace(a->logits, a->ce_lse, m->targets, m->loss_weight, (int)N, V, grad_scale);
            matmul_backward(s->dln, dlm, a->logits, a->lnf, p->lm_head, (int)N, C, V);
        }
    }
    if (args->dlnf)
        for (size_t i = 0; i < N * C; i++) s->dln[i] += args->dlnf[i];
    memset(s->dx, 0, sizeof(float) * N * C);
    rmsnorm_backward(s->dx, GRAD(lnfw, 0), s->dln, a->x + (size_t)L * N * C, p->lnfw, a->lnf_rstd, (int)N, C);
#define GRADS_READY(group)                                                                                           \
    do {                                                                                                             \
        if (args->on_grads_ready && !m->frozen) args->on_grads_ready(args->ctx, group);                             \
    } while (0)
    GRADS_READY(QWEN3_GRADS_HEAD);

#define LORA_BWD(mod, dx_, dy_, x_)                                                                                  \
    do {                                                                                                             \
        if (lora) {                                                                                                  \
            int din_, dout_;                                                                                         \
            lora_module_dims(c, mod, &din_, &dout_);                                                                 \
            size_t ao_ = (size_t)l * lora->nb * R * din_, bo_ = (size_t)l * lora->nb * dout_ * R;                    \
            lora_backward(dx_, lora->dA[mod] ? lora->dA[mod] + ao_ : NULL, lora->dB[mod] ? lora->dB[mod] + bo_ : NULL, \
                          dy_, x_, LORA_U(mod, l), lora->A[mod] + ao_, lora->B[mod] + bo_, LORA_NB, LORA_T, din_, dout_, R, \
                          lora->scale, m->lora_du);                                                                  \
        }                                                                                                            \
    } while (0)

    for (int l = L - 1; l >= 0; l--) {
        if (args->dx_layer && args->dx_layer[l + 1]) {
            const float *inj = args->dx_layer[l + 1];
            for (size_t i = 0; i < N * C; i++) s->dx[i] += inj[i];
        }
        float *x = a->x + (size_t)l * N * C;
        float *ln1 = a->ln1 + (size_t)l * N * C, *ln1r = a->ln1_rstd + (size_t)l * N;
        float *q_raw = a->q_raw + (size_t)l * N * Q, *k_raw = a->k_raw + (size_t)l * N * KV;
        float *q = a->q + (size_t)l * N * Q, *k = a->k + (size_t)l * N * KV, *v = a->v + (size_t)l * N * KV;
        float *qr = a->q_rstd + (size_t)l * N * NH, *kr = a->k_rstd + (size_t)l * N * NKV;
        float *att = a->att + (size_t)l * N * Q, *lse = a->att_lse + (size_t)l * N * NH;
        float *xmid = a->x_mid + (size_t)l * N * C, *ln2 = a->ln2 + (size_t)l * N * C;
        float *ln2r = a->ln2_rstd + (size_t)l * N;
        float *gate = a->gate + (size_t)l * N * I, *up = a->up + (size_t)l * N * I, *act = a->act + (size_t)l * N * I;

        // MLP block: x_next = x_mid + down(swiglu(gate(ln2), up(ln2))). s->dx is d x_next = d x_mid (residual).
        memset(s->dact, 0, sizeof(float) * N * I);
        matmul_backward(s->dact, GRAD(downw, (size_t)l * C * I), s->dx, act, p->downw + (size_t)l * C * I, (int)N, I, C);
        LORA_BWD(LORA_DOWN, s->dact, s->dx, act);
        memset(s->dgate, 0, sizeof(float) * N * I);
        memset(s->dup, 0, sizeof(float) * N * I);
        swiglu_backward(s->dgate, s->dup, s->dact, gate, up, N * I);
        memset(s->dln, 0, sizeof(float) * N * C);
        matmul_backward(s->dln, GRAD(gatew, (size_t)l * I * C), s->dgate, ln2, p->gatew + (size_t)l * I * C, (int)N, C, I);
        matmul_backward(s->dln, GRAD(upw, (size_t)l * I * C), s->dup, ln2, p->upw + (size_t)l * I * C, (int)N, C, I);
        LORA_BWD(LORA_GATE, s->dln, s->dgate, ln2);
        LORA_BWD(LORA_UP, s->dln, s->dup, ln2);
        rmsnorm_backward(s->dx, GRAD(ln2w, (size_t)l * C), s->dln, xmid, p->ln2w + (size_t)l * C, ln2r, (int)N, C);

        // Attention block: x_mid = x + o(attn(rope(qnorm(q(ln1))), rope(knorm(k(ln1))), v(ln1))).
        memset(s->datt, 0, sizeof(float) * N * Q);
        matmul_backward(s->datt, GRAD(ow, (size_t)l * C * Q), s->dx, att, p->ow + (size_t)l * C * Q, (int)N, Q, C);
        LORA_BWD(LORA_O, s->datt, s->dx, att);
        memset(s->dq, 0, sizeof(float) * N * Q);
        memset(s->dk, 0, sizeof(float) * N * KV);
        memset(s->dv, 0, sizeof(float) * N * KV);
        attention_backward(s->dq, s->dk, s->dv, s->datt, q, k, v, att, lse, B, T, NH, NKV, HD);
        memset(s->dq_raw, 0, sizeof(float) * N * Q);
        memset(s->dk_raw, 0, sizeof(float) * N * KV);
        qknorm_rope_backward(s->dq_raw, GRAD(qnormw, (size_t)l * HD), s->dq, q_raw, p->qnormw + (size_t)l * HD, qr,
                             m->rope_cos, m->rope_sin, m->pos, (int)N, NH, HD);
        qknorm_rope_backward(s->dk_raw, GRAD(knormw, (size_t)l * HD), s->dk, k_raw, p->knormw + (size_t)l * HD, kr,
                             m->rope_cos, m->rope_sin, m->pos, (int)N, NKV, HD);
        memset(s->dln, 0, sizeof(float) * N * C);
        matmul_backward(s->dln, GRAD(qw, (size_t)l * Q * C), s->dq_raw, ln1, p->qw + (size_t)l * Q * C, (int)N, C, Q);
        matmul_backward(s->dln, GRAD(kw, (size_t)l * KV * C), s->dk_raw, ln1, p->kw + (size_t)l * KV * C, (int)N, C, KV);
        matmul_backward(s->dln, GRAD(vw, (size_t)l * KV * C), s->dv, ln1, p->vw + (size_t)l * KV * C, (int)N, C, KV);
        LORA_BWD(LORA_Q, s->dln, s->dq_raw, ln1);
        LORA_BWD(LORA_K, s->dln, s->dk_raw, ln1);
        LORA_BWD(LORA_V, s->dln, s->dv, ln1);
        rmsnorm_backward(s->dx, GRAD(ln1w, (size_t)l * C), s->dln, x, p->ln1w + (size_t)l * C, ln1r, (int)N, C);
        GRADS_READY(l);
    }
    // s->dx now holds the gradient of the input embeddings.
    if (!m->frozen) embedding_backward(m->grads.wte, s->dx, m->ids, (int)N, C);
    GRADS_READY(QWEN3_GRADS_EMBED);
    return 0;
}

double qwen3_forward_flops(const Qwen3Config *c, int B, int T, double lm_head_rows) {
    double C = c->hidden_size, I = c->intermediate_size, L = c->num_layers, V = c->vocab_size;
    double Q = (double)c->num_heads * c->head_dim, KV = (double)c->num_kv_heads * c->head_dim;
    double per_tok = 2.0 * L * (C * Q + 2 * C * KV + Q * C + 3 * C * I);
    double attn = 2.0 * 2.0 * L * Q * ((double)T * (T + 1) / 2.0);  // QK^T and PV over the causal half
    return (double)B * (T * per_tok + attn) + lm_head_rows * 2.0 * C * V;
}
