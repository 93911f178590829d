#include "compiler/compiler.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/rng.h"

void compiler_capture_layers(int Lc, int Li, int *teacher) {
    for (int l = 0; l < Li; l++) teacher[l] = (int)(((long long)(l + 1) * Lc) / Li) - 1;
}

void compiler_init(Compiler *c, Qwen3 *model, int P, int slots, unsigned long long seed) {
    memset(c, 0, sizeof *c);
    c->model = *model;
    memset(model, 0, sizeof *model);
    c->P = P;
    c->slots = slots;
    int d = c->model.cfg.hidden_size, V = c->model.cfg.vocab_size;
    c->prefix = xmalloc(sizeof(float) * (size_t)P * d);
    c->dprefix = xcalloc((size_t)P * d, sizeof(float));
    // Each prefix row starts as the embedding of a random vocabulary token: the compiler then
    // sees inputs of the scale and statistics it was trained on, rather than noise or zeros.
    PawRng rng = {seed};
    for (int t = 0; t < P; t++) {
        int id = (int)paw_rng_below(&rng, (uint64_t)V);
        qwen3_embedding_row(&c->model, id, c->prefix + (size_t)t * d);
    }
    c->teacher = xmalloc(sizeof(int) * (size_t)slots);
    compiler_capture_layers(c->model.cfg.num_layers, slots, c->teacher);
    c->inject = xcalloc((size_t)c->model.cfg.num_layers + 1, sizeof(float *));
}

void compiler_free(Compiler *c) {
    qwen3_free(&c->model);
    free(c->prefix), free(c->dprefix), free(c->teacher), free(c->lens), free(c->H), free(c->ids), free(c->embeds);
    free(c->inject), free(c->inject_mem), free(c->dlnf);
    memset(c, 0, sizeof *c);
}

int compiler_forward(Compiler *c, const int *const *seqs, const int *lens, int B) {
    const int d = c->model.cfg.hidden_size, P = c->P, S = c->slots;
    int T = 0;
    for (int b = 0; b < B; b++) {
        if (lens[b] < 0) return paw_error("compiler: negative sequence length");
        if (lens[b] + P > T) T = lens[b] + P;
    }
    if (T > c->model.cfg.max_position_embeddings)
        return paw_error("compiler: %d tokens + %d prefix exceed max_position_embeddings %d", T - P, P,
                         c->model.cfg.max_position_embeddings);
    size_t N = (size_t)B * T;
    if (N > c->cap_tokens || B != c->B) {
        free(c->ids), free(c->embeds), free(c->inject_mem), free(c->dlnf), free(c->H), free(c->lens);
        c->ids = xmalloc(sizeof(int) * N);
        c->embeds = xmalloc(sizeof(float) * N * d);
        c->lens = xmalloc(sizeof(int) * (size_t)B);
        c->H = xmalloc(sizeof(float) * (size_t)B * S * P * d);
        // One injection buffer per distinct captured layer (the last slot goes to the final norm).
        c->inject_mem = xmalloc(sizeof(float) * N * d * (size_t)S);
        c->dlnf = xmalloc(sizeof(float) * N * d);
        c->cap_tokens = N;
    }
    c->B = B;
    c->T = T;
    memcpy(c->lens, lens, sizeof(int) * (size_t)B);
    // Right-padded rows: [tokens, prefix, pad]; the causal mask keeps padding out of everything before it.
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            size_t row = (size_t)b * T + t;
            if (t < lens[b]) c->ids[row] = seqs[b][t];
            else if (t < lens[b] + P) {
                c->ids[row] = -1;
                memcpy(c->embeds + row * d, c->prefix + (size_t)(t - lens[b]) * d, sizeof(float) * d);
            } else c->ids[row] = 0;
        }
    }
    Qwen3Inputs in = {.ids = c->ids, .embeds = c->embeds, .logits_mode = QWEN3_LOGITS_NONE};
    if (qwen3_forward(&c->model, &in, B, T) != 0) return -1;
    const Qwen3Acts *a = &c->model.acts;
    for (int b = 0; b < B; b++)
        for (int s = 0; s < S; s++) {
            const float *src = s == S - 1 ? a->lnf : a->x + (size_t)(c->teacher[s] + 1) * N * d;
            for (int t = 0; t < P; t++)
                memcpy(c->H + (((size_t)b * S + s) * P + t) * d, src + ((size_t)b * T + lens[b] + t) * d,
                       sizeof(float) * d);
        }
    return 0;
}

int compiler_backward(Compiler *c, const float *dH, Qwen3GradsReadyFn on_grads_ready, void *ctx) {
    const int d = c->model.cfg.hidden_size, P = c->P, S = c->slots, Lc = c->model.cfg.num_layers;
    const int B = c->B, T = c->T;
    const size_t N = (size_t)B * T;
    for (int l = 0; l <= Lc; l++) c->inject[l] = NULL;
    memset(c->dlnf, 0, sizeof(float) * N * d);
    for (int s = 0; s < S; s++) {
        float *dst;
        if (s == S - 1) dst = c->dlnf;
        else {
            int layer = c->teacher[s] + 1;
            if (!c->inject[layer]) {
                c->inject[layer] = c->inject_mem + (size_t)s * N * d;
                memset(c->inject[layer], 0, sizeof(float) * N * d);
            }
            dst = c->inject[layer];
        }
        for (int b = 0; b < B; b++)
            for (int t = 0; t < P; t++) {
                float *row = dst + ((size_t)b * T + c->lens[b] + t) * d;
                const float *g = dH + (((size_t)b * S + s) * P + t) * d;
                for (int i = 0; i < d; i++) row[i] += g[i];
            }
    }
    Qwen3BackwardArgs args = {.dlnf = c->dlnf, .dx_layer = (const float *const *)c->inject,
                              .on_grads_ready = on_grads_ready, .ctx = ctx};
    if (qwen3_backward_ex(&c->model, &args) != 0) return -1;
    const float *dx0 = c->model.scratch.dx;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < P; t++) {
            const float *g = dx0 + ((size_t)b * T + c->lens[b] + t) * d;
            float *dp = c->dprefix + (size_t)t * d;
            for (int i = 0; i < d; i++) dp[i] += g[i];
        }
    if (on_grads_ready) on_grads_ready(ctx, COMPILER_GRADS_PREFIX);
    return 0;
}
