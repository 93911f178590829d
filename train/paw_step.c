#include "train/paw_step.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"

int paw_model_init(PawModel *pm, Qwen3 *compiler, Qwen3 *interpreter, int prefix_len, int lora_rank,
                   float lora_alpha, int nbases, int freeze_compiler, unsigned long long seed) {
    memset(pm, 0, sizeof *pm);
    if (prefix_len <= 0 || lora_rank <= 0 || nbases <= 0)
        return paw_error("prefix_steps, lora_rank and mapper_bases must be positive");
    qwen3_set_frozen(interpreter, 1);
    qwen3_set_frozen(compiler, freeze_compiler);
    pm->freeze_compiler = freeze_compiler;
    pm->interp = *interpreter;
    memset(interpreter, 0, sizeof *interpreter);
    compiler_init(&pm->comp, compiler, prefix_len, pm->interp.cfg.num_layers, seed);
    MapperConfig mc = {.d = pm->comp.model.cfg.hidden_size, .L = pm->interp.cfg.num_layers, .nbases = nbases,
                       .rank = lora_rank, .alpha = lora_alpha, .icfg = pm->interp.cfg};
    mapper_create(&pm->mapper, &mc);
    mapper_init(&pm->mapper, seed ^ 0x6d61707065720000ull);
    return 0;
}

void paw_model_free(PawModel *pm) {
    compiler_free(&pm->comp);
    qwen3_free(&pm->interp);
    mapper_free(&pm->mapper);
    mapper_lora_free(&pm->lora);
    free(pm->dH), free(pm->ids), free(pm->targets), free(pm->weights);
    memset(pm, 0, sizeof *pm);
}

void paw_model_zero_grad(PawModel *pm) {
    qwen3_zero_grad(&pm->comp.model);
    memset(pm->comp.dprefix, 0, sizeof(float) * (size_t)pm->comp.P * pm->comp.model.cfg.hidden_size);
    mapper_zero_grad(&pm->mapper);
}

int paw_interp_batch_len(const PawStepExample *ex, int B) {
    int T = 0;
    for (int b = 0; b < B; b++) {
        if (ex[b].target_len <= 0 || ex[b].interp_len <= 0)
            return paw_error("PAW step: example %d has an empty interpreter prompt or target", b);
        int t = ex[b].interp_len + ex[b].target_len;
        if (t > T) T = t;
    }
    return T;
}

void paw_interp_batch(const PawStepExample *ex, int B, int T, int *ids, int *targets, float *weights) {
    // [prompt, target, pad]; position t predicts token t+1, weighted 1 on target tokens.
    for (int b = 0; b < B; b++) {
        int np = ex[b].interp_len, nt = ex[b].target_len;
        for (int t = 0; t < T; t++) {
            size_t row = (size_t)b * T + t;
            ids[row] = t < np ? ex[b].interp_ids[t] : t < np + nt ? ex[b].target_ids[t - np] : 0;
            int next = t + 1;
            int is_target = next >= np && next < np + nt;
            targets[row] = is_target ? ex[b].target_ids[next - np] : 0;
            weights[row] = is_target ? 1.0f : 0.0f;
        }
    }
}

int paw_interp_prompts(const PawStepExample *ex, int B, int **ids, int **lens) {
    int T = 0;
    for (int b = 0; b < B; b++) {
        if (ex[b].interp_len <= 0) return paw_error("example %d has an empty interpreter prompt", b);
        if (ex[b].interp_len > T) T = ex[b].interp_len;
    }
    *ids = xcalloc((size_t)B * (size_t)T, sizeof(int));
    *lens = xmalloc(sizeof(int) * (size_t)B);
    for (int b = 0; b < B; b++) {
        memcpy(*ids + (size_t)b * T, ex[b].interp_ids, sizeof(int) * (size_t)ex[b].interp_len);
        (*lens)[b] = ex[b].interp_len;
    }
    return T;
}

// Compiler + mapper + interpreter forward; leaves everything the backward needs in place.
static int forward(PawModel *pm, const PawStepExample *ex, int B, int with_grads, PawStepStats *st) {
    if (B <= 0) return paw_error("PAW step: empty batch");
    if (pm->lora.nb != B || (with_grads && !pm->lora.dA[0])) {
        mapper_lora_free(&pm->lora);
        mapper_lora_alloc(&pm->mapper.cfg, B, 1, &pm->lora);
        free(pm->dH);
        pm->dH = xmalloc(sizeof(float) * (size_t)B * pm->comp.slots * pm->comp.P * pm->comp.model.cfg.hidden_size);
    }
    const int **seqs = xmalloc(sizeof(int *) * (size_t)B);
    int *lens = xmalloc(sizeof(int) * (size_t)B);
    int T = paw_interp_batch_len(ex, B);
    if (T < 0) {
        free(seqs), free(lens);
        return -1;
    }
    for (int b = 0; b < B; b++) {
        seqs[b] = ex[b].comp_ids;
        lens[b] = ex[b].comp_len;
    }
    int rc = compiler_forward(&pm->comp, (const int *const *)seqs, lens, B);
    free(seqs), free(lens);
    if (rc != 0) return -1;
    mapper_forward(&pm->mapper, pm->comp.H, B, pm->comp.P, &pm->lora);

    size_t N = (size_t)B * T;
    if (N > pm->cap) {
        free(pm->ids), free(pm->targets), free(pm->weights);
        pm->ids = xmalloc(sizeof(int) * N);
        pm->targets = xmalloc(sizeof(int) * N);
        pm->weights = xmalloc(sizeof(float) * N);
        pm->cap = N;
    }
    paw_interp_batch(ex, B, T, pm->ids, pm->targets, pm->weights);
    Qwen3Inputs in = {.ids = pm->ids, .targets = pm->targets, .loss_weight = pm->weights, .lora = &pm->lora,
                      .logits_mode = QWEN3_LOGITS_WEIGHTED};  // the LM head at the target positions only
    if (qwen3_forward(&pm->interp, &in, B, T) != 0) return -1;
    st->loss = pm->interp.loss;
    st->loss_sum = pm->interp.loss_sum;
    st->target_tokens = pm->interp.loss_weight_sum;
    st->comp_tokens = pm->comp.B * pm->comp.T;
    st->interp_tokens = B * T;
    return 0;
}

int paw_forward(PawModel *pm, const PawStepExample *ex, int B, PawStepStats *st) { return forward(pm, ex, B, 0, st); }

int paw_forward_backward(PawModel *pm, const PawStepExample *ex, int B, float grad_scale, PawStepStats *st) {
    return paw_forward_backward_ex(pm, ex, B, grad_scale, st, NULL, NULL);
}

int paw_forward_backward_ex(PawModel *pm, const PawStepExample *ex, int B, float grad_scale, PawStepStats *st,
                            Qwen3GradsReadyFn on_grads_ready, void *ctx) {
    if (forward(pm, ex, B, 1, st) != 0) return -1;
    const MapperConfig *mc = &pm->mapper.cfg;
    for (int mod = 0; mod < LORA_NUM_MODULES; mod++) {
        int din, dout;
        lora_module_dims(&mc->icfg, mod, &din, &dout);
        memset(pm->lora.dA[mod], 0, sizeof(float) * (size_t)mc->L * B * mc->rank * din);
        memset(pm->lora.dB[mod], 0, sizeof(float) * (size_t)mc->L * B * dout * mc->rank);
    }
    if (qwen3_backward(&pm->interp, grad_scale) != 0) return -1;
    mapper_backward(&pm->mapper, pm->comp.P, &pm->lora, pm->dH);
    if (on_grads_ready) on_grads_ready(ctx, PAW_GRADS_MAPPER);
    return compiler_backward(&pm->comp, pm->dH, on_grads_ready, ctx);
}

int paw_model_save_mapper(const PawModel *pm, const char *path) { return paw_mapper_file_save(&pm->comp, &pm->mapper, path); }
int paw_model_load_mapper(PawModel *pm, const char *path) { return paw_mapper_file_load(&pm->comp, &pm->mapper, path); }

double paw_step_flops(const Qwen3Config *cc, const Qwen3Config *ic, const MapperConfig *mc, int P, int B, int comp_T,
                      int interp_T, double target_rows, int freeze_compiler) {
    double comp = qwen3_forward_flops(cc, B, comp_T + P, 0) * (freeze_compiler ? 2.0 : 3.0);
    double interp = 2.0 * qwen3_forward_flops(ic, B, interp_T, target_rows);
    double lora_tok = 0, mix = 0;
    for (int mod = 0; mod < LORA_NUM_MODULES; mod++) {
        int din, dout;
        lora_module_dims(ic, mod, &din, &dout);
        lora_tok += 2.0 * mc->rank * (din + dout) * ic->num_layers;
        mix += 2.0 * mc->nbases * mc->rank * (double)(din + dout) * mc->L;
    }
    double lora = 3.0 * lora_tok * (double)B * interp_T;
    double mapper = 3.0 * B * (2.0 * mc->d * mc->d + 2.0 * mc->d * (double)mapper_num_coef(mc) + mix);
    return comp + interp + lora + mapper;
}
