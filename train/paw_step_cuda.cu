// The PAW step on the GPU; the order of operations mirrors train/paw_step.c.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/compiler_cuda.h"
#include "compiler/mapper_cuda.h"
#include "kernels/adamw_cuda.h"
#include "kernels/cuda_common.cuh"
#include "model/qwen3_cuda.h"
#include "train/paw_step_cuda.h"

extern "C" {
#include "common/error.h"
#include "train/comm.h"
}

struct PawStepCuda {
    CompilerCuda *comp;
    Qwen3Cuda *interp;  // frozen
    MapperCuda *mapper;
    MapperConfig mc;
    Qwen3Config ccfg, icfg;
    int P, freeze_compiler;
    // adapters for lora.nb examples, with gradients
    MapperCudaLora lora;
    int lora_nb;
    float *dH;  // device [nb, L, P, d]
    // interpreter batch (host)
    int *ids, *targets, *lens;
    float *weights;
    size_t cap;
    // AdamW moments of the prefix and the mapper (their fp32 values are the master weights), of
    // [lo, hi) of each group: the whole group, or this rank's ZeRO-1 shard
    float *m[PAW_NUM_GROUPS], *v[PAW_NUM_GROUPS];
    int sharded, rank, world;
    float *d_norm_sq;
};

static PawStepCuda *finish_create(PawStepCuda *s, CompilerCuda *comp, Qwen3Cuda *interp, const Mapper *mapper) {
    s->comp = comp;
    s->interp = interp;
    s->mc = mapper->cfg;
    s->mapper = mapper_cuda_create(mapper);
    if (!s->comp || !s->interp || !s->mapper) {
        paw_step_cuda_free(s);
        return NULL;
    }
    s->d_norm_sq = (float *)paw_cuda_malloc(sizeof(float));
    return s;
}

static int check_shapes(const Qwen3Config *cc, const Qwen3Config *ic, const Mapper *mapper) {
    if (mapper->cfg.d != cc->hidden_size || mapper->cfg.L != ic->num_layers)
        return paw_error("PAW step: the mapper expects compiler width %d and %d interpreter layers, the models have "
                         "%d and %d",
                         mapper->cfg.d, mapper->cfg.L, cc->hidden_size, ic->num_layers);
    if (cc->vocab_size != ic->vocab_size)
        return paw_error("PAW step: compiler vocab_size %d differs from interpreter vocab_size %d", cc->vocab_size,
                         ic->vocab_size);
    return 0;
}

extern "C" PawStepCuda *paw_step_cuda_create(const PawModel *pm, int recompute, int rank, int world) {
    if (paw_cuda_init() != 0) return NULL;
    if (check_shapes(&pm->comp.model.cfg, &pm->interp.cfg, &pm->mapper) != 0) return NULL;
    if (world < 1 || rank < 0 || rank >= world) {
        paw_error("PAW step: rank %d of %d", rank, world);
        return NULL;
    }
    PawStepCuda *s = (PawStepCuda *)xcalloc(1, sizeof(PawStepCuda));
    s->ccfg = pm->comp.model.cfg, s->icfg = pm->interp.cfg;
    s->P = pm->comp.P;
    s->freeze_compiler = pm->freeze_compiler;
    s->sharded = world > 1, s->rank = rank, s->world = world;
    CompilerCuda *comp = compiler_cuda_from_cpu(&pm->comp, recompute);
    // The fp32 master weights start from the host's fp32 values (not from their bf16 rounding):
    // of this rank's block only under ZeRO-1, sharded before any state exists.
    if (comp && !pm->freeze_compiler) {
        Qwen3Cuda *cm = compiler_cuda_model(comp);
        size_t n = pm->comp.model.num_params;
        if ((world > 1 && qwen3_cuda_shard_optimizer(cm, paw_shard_begin(n, world, rank),
                                                     paw_shard_begin(n, world, rank + 1)) != 0) ||
            qwen3_cuda_set_adam_state(cm, 0, pm->comp.model.params_memory) != 0) {
            compiler_cuda_free(comp);
            comp = NULL;
        }
    }
    Qwen3Cuda *interp = comp ? qwen3_cuda_create(&pm->interp, 1, recompute) : NULL;
    return finish_create(s, comp, interp, &pm->mapper);
}

extern "C" PawStepCuda *paw_step_cuda_create_random(const Qwen3Config *cc, const Qwen3Config *ic, const float *prefix,
                                                    int P, const Mapper *mapper, int freeze_compiler, int recompute,
                                                    unsigned long long seed, float std) {
    if (paw_cuda_init() != 0) return NULL;
    if (check_shapes(cc, ic, mapper) != 0) return NULL;
    PawStepCuda *s = (PawStepCuda *)xcalloc(1, sizeof(PawStepCuda));
    s->ccfg = *cc, s->icfg = *ic;
    s->P = P;
    s->freeze_compiler = freeze_compiler;
    Qwen3Cuda *cm = qwen3_cuda_create_random(cc, freeze_compiler, recompute, seed, std);
    CompilerCuda *comp = cm ? compiler_cuda_create(cm, cc, prefix, P, ic->num_layers) : NULL;
    if (cm && !comp) qwen3_cuda_free(cm);
    Qwen3Cuda *interp = comp ? qwen3_cuda_create_random(ic, 1, recompute, seed ^ 0x696e7465ull, std) : NULL;
    return finish_create(s, comp, interp, mapper);
}

extern "C" void paw_step_cuda_free(PawStepCuda *s) {
    if (!s) return;
    compiler_cuda_free(s->comp);
    qwen3_cuda_free(s->interp);
    mapper_cuda_free(s->mapper);
    if (s->lora_nb) mapper_cuda_lora_free(&s->lora);
    paw_cuda_free(s->dH);
    for (int g = 0; g < PAW_NUM_GROUPS; g++) paw_cuda_free(s->m[g]), paw_cuda_free(s->v[g]);
    paw_cuda_free(s->d_norm_sq);
    free(s->ids), free(s->targets), free(s->lens), free(s->weights);
    free(s);
}

extern "C" int paw_step_cuda_use_bf16_grads(PawStepCuda *s) {
    return s->freeze_compiler ? 0 : qwen3_cuda_use_bf16_grads(compiler_cuda_model(s->comp));
}

extern "C" void paw_step_cuda_zero_grad(PawStepCuda *s) {
    compiler_cuda_zero_grad(s->comp);
    mapper_cuda_zero_grad(s->mapper);
}

static int forward(PawStepCuda *s, const PawStepExample *ex, int B, int with_grads, float grad_scale,
                   PawStepStats *st) {
    if (B <= 0) return paw_error("PAW step: empty batch");
    int T = paw_interp_batch_len(ex, B);
    if (T < 0) return -1;
    if (s->lora_nb != B) {
        if (s->lora_nb) mapper_cuda_lora_free(&s->lora);
        s->lora_nb = 0;
        if (mapper_cuda_lora_alloc(&s->mc, B, 1, &s->lora) != 0) return -1;
        s->lora_nb = B;
        paw_cuda_free(s->dH);
        s->dH = (float *)paw_cuda_malloc(sizeof(float) * (size_t)B * s->mc.L * s->P * s->mc.d);
    }
    const int **seqs = (const int **)xmalloc(sizeof(int *) * (size_t)B);
    int *clens = (int *)xmalloc(sizeof(int) * (size_t)B);
    for (int b = 0; b < B; b++) seqs[b] = ex[b].comp_ids, clens[b] = ex[b].comp_len;
    int rc = compiler_cuda_forward(s->comp, (const int *const *)seqs, clens, B);
    free(seqs), free(clens);
    if (rc != 0) return -1;
    if (mapper_cuda_forward(s->mapper, compiler_cuda_states(s->comp), B, s->P, &s->lora) != 0) return -1;

    size_t N = (size_t)B * T;
    if (N > s->cap) {
        free(s->ids), free(s->targets), free(s->weights), free(s->lens);
        s->ids = (int *)xmalloc(sizeof(int) * N);
        s->targets = (int *)xmalloc(sizeof(int) * N);
        s->weights = (float *)xmalloc(sizeof(float) * N);
        s->lens = (int *)xmalloc(sizeof(int) * N);  // B <= N
        s->cap = N;
    }
    paw_interp_batch(ex, B, T, s->ids, s->targets, s->weights);
    double wsum = 0;
    for (int b = 0; b < B; b++) {
        s->lens[b] = ex[b].interp_len + ex[b].target_len;  // padding rows skip attention and loss
        wsum += ex[b].target_len;
    }
    Qwen3CudaLora lo;
    mapper_cuda_lora_view(&s->lora, &lo);
    if (!with_grads)
        for (int m = 0; m < LORA_NUM_MODULES; m++) lo.dA[m] = lo.dB[m] = NULL;
    Qwen3CudaInputs in;
    memset(&in, 0, sizeof in);
    in.ids = s->ids, in.targets = s->targets, in.loss_weight = s->weights, in.lens = s->lens, in.lora = &lo;
    in.backward = with_grads;
    in.grad_scale = grad_scale;
    if (qwen3_cuda_forward(s->interp, &in, B, T) != 0) return -1;
    st->loss = qwen3_cuda_loss(s->interp);
    st->loss_sum = (double)st->loss * wsum;
    st->target_tokens = wsum;
    int comp_T = 0;
    for (int b = 0; b < B; b++)
        if (ex[b].comp_len + s->P > comp_T) comp_T = ex[b].comp_len + s->P;
    st->comp_tokens = B * comp_T;
    st->interp_tokens = B * T;
    return 0;
}

extern "C" int paw_step_cuda_forward(PawStepCuda *s, const PawStepExample *ex, int B, PawStepStats *st) {
    return forward(s, ex, B, 0, 0.0f, st);
}

extern "C" int paw_step_cuda_generate(PawStepCuda *s, const PawStepExample *ex, int B, int max_new, int stop_id,
                                      int *out, int *counts) {
    if (B <= 0 || s->lora_nb != B)
        return paw_error("PAW step: generation needs the adapters of a forward over the same %d examples", B);
    int *ids, *lens, T = paw_interp_prompts(ex, B, &ids, &lens);
    if (T < 0) return paw_error_context("PAW step");
    Qwen3CudaLora lo;
    mapper_cuda_lora_view(&s->lora, &lo);
    for (int m = 0; m < LORA_NUM_MODULES; m++) lo.dA[m] = lo.dB[m] = NULL;
    int rc = qwen3_cuda_batch_set_lora(s->interp, &lo);
    if (rc == 0) rc = qwen3_cuda_batch_generate(s->interp, ids, lens, B, T, max_new, stop_id, out, counts);
    // The adapters are reallocated when a later batch has another size: no graph may keep them.
    qwen3_cuda_batch_set_lora(s->interp, NULL);
    free(ids), free(lens);
    return rc;
}

extern "C" int paw_step_cuda_forward_backward_ex(PawStepCuda *s, const PawStepExample *ex, int B, float grad_scale,
                                                 PawStepStats *st, Qwen3GradsReadyFn on_grads_ready, void *ctx) {
    if (forward(s, ex, B, 1, grad_scale, st) != 0) return -1;
    mapper_cuda_lora_zero_grad(&s->lora);  // the adapters' gradients are per step, not accumulated
    if (qwen3_cuda_backward(s->interp) != 0) return -1;
    if (mapper_cuda_backward(s->mapper, s->P, &s->lora, s->dH) != 0) return -1;
    if (on_grads_ready) on_grads_ready(ctx, PAW_GRADS_MAPPER);
    Qwen3GradsReadyFn compiler_reports = s->freeze_compiler ? NULL : on_grads_ready;
    if (compiler_cuda_backward(s->comp, s->dH, compiler_reports, ctx) != 0) return -1;
    if (s->freeze_compiler && on_grads_ready) on_grads_ready(ctx, COMPILER_GRADS_PREFIX);
    return 0;
}

extern "C" int paw_step_cuda_forward_backward(PawStepCuda *s, const PawStepExample *ex, int B, float grad_scale,
                                              PawStepStats *st) {
    return paw_step_cuda_forward_backward_ex(s, ex, B, grad_scale, st, NULL, NULL);
}

extern "C" int paw_step_cuda_set_recompute_keep(PawStepCuda *s, int compiler_keep, int interpreter_keep) {
    if (compiler_keep >= 0 && qwen3_cuda_set_recompute_keep(compiler_cuda_model(s->comp), compiler_keep) != 0)
        return paw_error_context("compiler");
    if (interpreter_keep >= 0 && qwen3_cuda_set_recompute_keep(s->interp, interpreter_keep) != 0)
        return paw_error_context("interpreter");
    return 0;
}

// ---- groups and the optimizer --------------------------------------------------------------------

static int bad_group(const PawStepCuda *s, int group) {
    if (group < 0 || group >= PAW_NUM_GROUPS) return paw_error("PAW step: parameter group %d does not exist", group);
    if (group == PAW_GROUP_COMPILER && s->freeze_compiler)
        return paw_error("PAW step: the compiler is frozen (no gradients or optimizer state)");
    return 0;
}

extern "C" size_t paw_step_cuda_group_size(const PawStepCuda *s, int group) {
    switch (group) {
    case PAW_GROUP_COMPILER: return s->freeze_compiler ? 0 : qwen3_cuda_num_params(compiler_cuda_model(s->comp));
    case PAW_GROUP_PREFIX: return (size_t)s->P * s->ccfg.hidden_size;
    case PAW_GROUP_MAPPER: return mapper_cuda_num_params(s->mapper);
    default: return 0;
    }
}

// The device fp32 parameters and gradients of the prefix or the mapper group.
static float *group_params(PawStepCuda *s, int group) {
    return group == PAW_GROUP_PREFIX ? compiler_cuda_prefix(s->comp) : mapper_cuda_params(s->mapper);
}
static float *group_grads(PawStepCuda *s, int group) {
    return group == PAW_GROUP_PREFIX ? compiler_cuda_dprefix(s->comp) : mapper_cuda_grads(s->mapper);
}

// This rank's block of a group: the whole group unless the optimizer is sharded.
static void shard_of(const PawStepCuda *s, int group, int rank, size_t *lo, size_t *hi) {
    size_t n = paw_step_cuda_group_size(s, group);
    *lo = s->sharded ? paw_shard_begin(n, s->world, rank) : 0;
    *hi = s->sharded ? paw_shard_begin(n, s->world, rank + 1) : n;
}

// The moments of this rank's shard [lo, hi) of a group start lo % 4 floats into their buffers, so
// that they share the alignment of the group's weights and gradients (AdamW runs four-wide).
static float *moments(const PawStepCuda *s, int group, int which) {
    size_t lo, hi;
    shard_of(s, group, s->rank, &lo, &hi);
    return (which == 1 ? s->m[group] : s->v[group]) + lo % 4;
}

static void ensure_moments(PawStepCuda *s, int group) {
    if (s->m[group]) return;
    size_t lo, hi;
    shard_of(s, group, s->rank, &lo, &hi);
    size_t n = lo % 4 + hi - lo, bytes = sizeof(float) * (n ? n : 1);
    s->m[group] = (float *)paw_cuda_malloc(bytes);
    s->v[group] = (float *)paw_cuda_malloc(bytes);
    paw_cuda_memset(s->m[group], 0, sizeof(float) * n);
    paw_cuda_memset(s->v[group], 0, sizeof(float) * n);
}

extern "C" int paw_step_cuda_runs(PawStepCuda *s, int group, int rank, Qwen3CudaRun *out, int cap) {
    if (bad_group(s, group)) return -1;
    int world = s->sharded ? s->world : 1;
    if (rank < 0 || rank >= world) return paw_error("PAW step: rank %d of %d", rank, world);
    size_t lo, hi;
    shard_of(s, group, rank, &lo, &hi);
    if (group == PAW_GROUP_COMPILER) return qwen3_cuda_runs(compiler_cuda_model(s->comp), lo, hi, out, cap);
    if (hi == lo) return 0;
    if (out && cap > 0) {
        out[0].flat = lo, out[0].n = hi - lo;
        out[0].param = group_params(s, group) + lo, out[0].param_bf16 = 0;
        out[0].grad = group_grads(s, group) + lo, out[0].grad_bf16 = 0;
    }
    return 1;
}

// CPU-layout tensor pointers into a flat buffer (the order of a CPU model's memory).
static void flat_view(const Qwen3Config *c, float *flat, Qwen3Params *view) {
    memset(view, 0, sizeof *view);
    size_t off = 0;
    for (int i = 0; i < QWEN3_NUM_PARAMS; i++) {
        Qwen3ParamInfo info = qwen3_param_info(c, i);
        *qwen3_param_slot(view, i) = info.numel ? flat + off : NULL;
        off += info.numel;
    }
}

extern "C" int paw_step_cuda_get_grads(PawStepCuda *s, int group, float *flat) {
    if (bad_group(s, group)) return -1;
    if (group == PAW_GROUP_COMPILER) {
        Qwen3Params view;
        flat_view(&s->ccfg, flat, &view);
        return qwen3_cuda_get_grads(compiler_cuda_model(s->comp), &view);
    }
    paw_cuda_download(flat, group_grads(s, group), sizeof(float) * paw_step_cuda_group_size(s, group));
    return 0;
}

extern "C" int paw_step_cuda_grad_blocks(PawStepCuda *s, int group, float **f32, size_t *n32, paw_bf16 **b16,
                                         size_t *n16) {
    if (bad_group(s, group)) return -1;
    if (group == PAW_GROUP_COMPILER) {
        qwen3_cuda_grad_blocks(compiler_cuda_model(s->comp), f32, n32, b16, n16);
        return 0;
    }
    *f32 = group_grads(s, group), *n32 = paw_step_cuda_group_size(s, group);
    *b16 = NULL, *n16 = 0;
    return 0;
}

extern "C" int paw_step_cuda_report_grads(PawStepCuda *s, int report, Qwen3CudaGradSlice out[8]) {
    if (report == PAW_GRADS_MAPPER || report == COMPILER_GRADS_PREFIX) {
        int g = report == PAW_GRADS_MAPPER ? PAW_GROUP_MAPPER : PAW_GROUP_PREFIX;
        out[0].ptr = group_grads(s, g), out[0].n = paw_step_cuda_group_size(s, g), out[0].bf16 = 0;
        return 1;
    }
    if (s->freeze_compiler) return 0;
    return qwen3_cuda_group_grads(compiler_cuda_model(s->comp), report, out);
}

extern "C" void paw_step_cuda_report_all(PawStepCuda *s, Qwen3GradsReadyFn on_grads_ready, void *ctx) {
    on_grads_ready(ctx, PAW_GRADS_MAPPER);
    if (!s->freeze_compiler) {  // qwen3_cuda_backward_ex's order
        on_grads_ready(ctx, QWEN3_GRADS_HEAD);
        for (int l = s->ccfg.num_layers - 1; l >= 0; l--) on_grads_ready(ctx, l);
        on_grads_ready(ctx, QWEN3_GRADS_EMBED);
    }
    on_grads_ready(ctx, COMPILER_GRADS_PREFIX);
}

extern "C" int paw_step_cuda_get_state(PawStepCuda *s, int group, int which, float *flat) {
    if (bad_group(s, group)) return -1;
    if (which < 0 || which > 2) return paw_error("PAW step: optimizer state %d, expected 0, 1 or 2", which);
    size_t n = paw_step_cuda_group_size(s, group);
    if (group == PAW_GROUP_COMPILER) {
        Qwen3Cuda *g = compiler_cuda_model(s->comp);
        if (qwen3_cuda_get_adam_state(g, which, flat) == 0) return 0;
        if (which) {  // no step yet: zero moments (of this rank's block)
            size_t lo, hi;
            shard_of(s, group, s->rank, &lo, &hi);
            memset(flat, 0, sizeof(float) * (hi - lo));
            return 0;
        }
        Qwen3Params view;  // no step yet: the master is the bf16 weights
        flat_view(&s->ccfg, flat, &view);
        return qwen3_cuda_get_params(g, &view);
    }
    if (which == 0) {  // the whole group: every rank holds all of the prefix and mapper weights
        paw_cuda_download(flat, group_params(s, group), sizeof(float) * n);
        return 0;
    }
    size_t lo, hi;
    shard_of(s, group, s->rank, &lo, &hi);
    if (!s->m[group]) memset(flat, 0, sizeof(float) * (hi - lo));
    else paw_cuda_download(flat, moments(s, group, which), sizeof(float) * (hi - lo));
    return 0;
}

extern "C" int paw_step_cuda_set_adam_step(PawStepCuda *s, int step) {
    return s->freeze_compiler ? 0 : qwen3_cuda_set_adam_step(compiler_cuda_model(s->comp), step);
}

extern "C" int paw_step_cuda_set_state(PawStepCuda *s, int group, int which, const float *flat) {
    if (bad_group(s, group)) return -1;
    if (which < 0 || which > 2) return paw_error("PAW step: optimizer state %d, expected 0, 1 or 2", which);
    if (group == PAW_GROUP_COMPILER) return qwen3_cuda_set_adam_state(compiler_cuda_model(s->comp), which, flat);
    size_t n = paw_step_cuda_group_size(s, group);
    if (which == 0) {
        paw_cuda_upload(group_params(s, group), flat, sizeof(float) * n);
        return 0;
    }
    size_t lo, hi;
    shard_of(s, group, s->rank, &lo, &hi);
    ensure_moments(s, group);
    paw_cuda_upload(moments(s, group, which), flat, sizeof(float) * (hi - lo));
    return 0;
}

extern "C" int paw_step_cuda_grad_norm_sq(PawStepCuda *s, double *norm_sq) {
    paw_cuda_memset(s->d_norm_sq, 0, sizeof(float));
    if (!s->freeze_compiler) qwen3_cuda_grad_norm_sq(compiler_cuda_model(s->comp), s->d_norm_sq);
    for (int g = PAW_GROUP_PREFIX; g <= PAW_GROUP_MAPPER; g++) {
        size_t lo, hi;
        shard_of(s, g, s->rank, &lo, &hi);
        grad_norm_sq_cuda(s->d_norm_sq, group_grads(s, g) + lo, hi - lo);
    }
    float sq = 0;
    paw_cuda_download(&sq, s->d_norm_sq, sizeof sq);
    *norm_sq = sq;
    return 0;
}

extern "C" int paw_step_cuda_adamw_apply(PawStepCuda *s, const PawStepCudaAdamW *opt, int step, double norm_sq) {
    if (step < 1) return paw_error("PAW step: AdamW step %d, expected >= 1", step);
    if (!isfinite(norm_sq))
        return paw_error("PAW step: the gradient norm is not finite; the update was skipped, the weights are intact");
    float sq = (float)norm_sq;
    paw_cuda_upload(s->d_norm_sq, &sq, sizeof sq);  // read by the update kernels: no host round trip there
    const float *clip = opt->max_grad_norm > 0 ? s->d_norm_sq : NULL;
    if (!s->freeze_compiler) {
        Qwen3CudaAdamW o = {opt->lr * opt->group_lr_scale[PAW_GROUP_COMPILER], opt->beta1, opt->beta2, opt->eps,
                            opt->weight_decay, opt->max_grad_norm};
        if (qwen3_cuda_adamw_apply(compiler_cuda_model(s->comp), &o, step, clip) != 0) return -1;
    }
    for (int g = PAW_GROUP_PREFIX; g <= PAW_GROUP_MAPPER; g++) {
        size_t lo, hi;
        shard_of(s, g, s->rank, &lo, &hi);
        ensure_moments(s, g);
        adamw_cuda(NULL, group_params(s, g) + lo, group_grads(s, g) + lo, moments(s, g, 1), moments(s, g, 2), hi - lo,
                   opt->lr * opt->group_lr_scale[g], opt->beta1, opt->beta2, opt->eps, opt->weight_decay, step, clip,
                   opt->max_grad_norm, 0);
    }
    paw_cuda_sync();
    return 0;
}

extern "C" int paw_step_cuda_adamw(PawStepCuda *s, const PawStepCudaAdamW *opt, int step, float *grad_norm) {
    if (step < 1) return paw_error("PAW step: AdamW step %d, expected >= 1", step);
    double sq = 0;
    if (paw_step_cuda_grad_norm_sq(s, &sq) != 0) return -1;
    if (grad_norm) *grad_norm = (float)sqrt(sq);
    return paw_step_cuda_adamw_apply(s, opt, step, sq);
}
