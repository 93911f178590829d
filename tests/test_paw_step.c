// One PAW training step against the PyTorch reference (tests/make_paw_fixtures.py): the loss
// and the gradient of every trainable tensor (compiler weights, prefix, mapper) within 1e-3
// relative L2, as fp32 with different summation orders allows.
#include <criterion/criterion.h>
#include <stdio.h>
#include <unistd.h>

#include "tests/testutil.h"
#include "kernels/adamw.h"
#include "train/paw_step.h"

#define FIX "tests/fixtures/paw/"

typedef struct {
    SafeTensors batch;
    int *ids[3][2];
    int lens[3][2];
    PawStepExample ex[2];
} Batch;

static void load_batch(Batch *bt) {
    cr_assert_eq(st_open(&bt->batch, FIX "batch.safetensors"), 0, "%s", paw_last_error());
    const char *parts[3] = {"comp_ids", "interp_ids", "target_ids"};
    for (int k = 0; k < 3; k++)
        for (int b = 0; b < 2; b++) {
            char name[64];
            snprintf(name, sizeof name, "%s.%d", parts[k], b);
            int64_t n;
            bt->ids[k][b] = ref_i32(&bt->batch, name, &n);
            bt->lens[k][b] = (int)n;
        }
    for (int b = 0; b < 2; b++)
        bt->ex[b] = (PawStepExample){bt->ids[0][b], bt->lens[0][b], bt->ids[1][b], bt->lens[1][b], bt->ids[2][b],
                                 bt->lens[2][b]};
}

static void free_batch(Batch *bt) {
    for (int k = 0; k < 3; k++)
        for (int b = 0; b < 2; b++) free(bt->ids[k][b]);
    st_close(&bt->batch);
}

static void setup(PawModel *pm, int freeze_compiler) {
    Qwen3 c, i;
    cr_assert_eq(qwen3_load(&c, FIX "compiler", 0), 0, "%s", paw_last_error());
    cr_assert_eq(qwen3_load(&i, FIX "interpreter", 1), 0, "%s", paw_last_error());
    cr_assert_eq(paw_model_init(pm, &c, &i, 5, 4, 8.0f, 3, freeze_compiler, 1), 0);
    cr_assert_eq(paw_model_load_mapper(pm, FIX "init.safetensors"), 0, "%s", paw_last_error());
}

static void expect_close(const SafeTensors *ref, const char *name, const float *got, size_t n) {
    int64_t m;
    float *want = ref_f32(ref, name, &m);
    cr_assert_eq((size_t)m, n, "%s: %zu elements vs reference %lld", name, n, (long long)m);
    double e = rel_l2(got, want, n);
    cr_assert(e < 1e-3, "%s: rel L2 err %g", name, e);
    free(want);
}

Test(paw_step, matches_pytorch_reference) {
    PawModel pm;
    setup(&pm, 0);
    Batch bt;
    load_batch(&bt);
    SafeTensors ref;
    cr_assert_eq(st_open(&ref, FIX "reference.safetensors"), 0);
    paw_model_zero_grad(&pm);
    PawStepStats st;
    cr_assert_eq(paw_forward_backward(&pm, bt.ex, 2, 0, &st), 0, "%s", paw_last_error());
    float *loss = ref_f32(&ref, "loss", NULL);
    cr_assert(fabsf(st.loss - loss[0]) < 1e-4f * loss[0], "loss %f vs %f", st.loss, loss[0]);
    cr_assert_eq(st.target_tokens, 5.0);
    free(loss);

    int d = pm.comp.model.cfg.hidden_size;
    expect_close(&ref, "grad.prefix", pm.comp.dprefix, (size_t)pm.comp.P * d);
    for (int i = 0; i < MAPPER_NUM_TENSORS; i++) {
        char name[64], key[80];
        int nd, sh[3];
        size_t n = mapper_tensor_shape(&pm.mapper.cfg, i, &nd, sh);
        snprintf(key, sizeof key, "grad.%s", mapper_tensor_name(i, name, sizeof name));
        expect_close(&ref, key, *mapper_tensor_slot(&pm.mapper.grads, i), n);
    }
    int checked = 0;
    const Qwen3Config *cc = &pm.comp.model.cfg;
    for (int i = 0; i < QWEN3_NUM_PARAMS; i++) {
        Qwen3ParamInfo info = qwen3_param_info(cc, i);
        if (info.numel == 0) continue;
        int layers = info.per_layer ? cc->num_layers : 1;
        size_t per = info.numel / (size_t)layers;
        for (int l = 0; l < layers; l++) {
            char name[200], key[256];
            snprintf(name, sizeof name, info.hf_name, l);
            snprintf(key, sizeof key, "grad.compiler.%s", name);
            expect_close(&ref, key, *qwen3_param_slot(&pm.comp.model.grads, i) + (size_t)l * per, per);
            checked++;
        }
    }
    cr_assert_eq(checked, 2 + 11 * cc->num_layers);
    st_close(&ref);
    free_batch(&bt);
    paw_model_free(&pm);
}

Test(paw_step, frozen_compiler_trains_mapper_and_prefix_only) {
    PawModel pm;
    setup(&pm, 1);
    Batch bt;
    load_batch(&bt);
    SafeTensors ref;
    cr_assert_eq(st_open(&ref, FIX "reference.safetensors"), 0);
    paw_model_zero_grad(&pm);
    PawStepStats st;
    cr_assert_eq(paw_forward_backward(&pm, bt.ex, 2, 0, &st), 0, "%s", paw_last_error());
    cr_assert_null(pm.comp.model.grads_memory);
    // The mapper and prefix gradients do not depend on whether the compiler weights train.
    expect_close(&ref, "grad.prefix", pm.comp.dprefix, (size_t)pm.comp.P * pm.comp.model.cfg.hidden_size);
    expect_close(&ref, "grad.mapper.fc2.weight", pm.mapper.grads.w2, mapper_num_coef(&pm.mapper.cfg) * pm.mapper.cfg.d);
    st_close(&ref);
    free_batch(&bt);
    paw_model_free(&pm);
}

Test(paw_step, fresh_mapper_starts_from_the_bare_interpreter) {
    // With the training init (B bases zero) the adapters are no-ops: the PAW loss equals the
    // interpreter's own loss on the same tokens without any LoRA.
    PawModel pm;
    Qwen3 c, i;
    cr_assert_eq(qwen3_load(&c, FIX "compiler", 0), 0);
    cr_assert_eq(qwen3_load(&i, FIX "interpreter", 1), 0);
    cr_assert_eq(paw_model_init(&pm, &c, &i, 5, 4, 8.0f, 3, 0, 7), 0);
    Batch bt;
    load_batch(&bt);
    PawStepStats st;
    cr_assert_eq(paw_forward(&pm, bt.ex, 2, &st), 0);
    Qwen3Inputs in = {.ids = pm.ids, .targets = pm.targets, .loss_weight = pm.weights};
    cr_assert_eq(qwen3_forward(&pm.interp, &in, 2, st.interp_tokens / 2), 0);
    cr_assert(fabsf(pm.interp.loss - st.loss) < 1e-6f * st.loss, "%f vs %f", pm.interp.loss, st.loss);
    free_batch(&bt);
    paw_model_free(&pm);
}

Test(paw_step, mapper_file_round_trip_and_shape_errors) {
    PawModel pm;
    setup(&pm, 1);
    char path[] = "/tmp/paw_mapper_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    cr_assert_eq(paw_model_save_mapper(&pm, path), 0, "%s", paw_last_error());
    float keep = pm.mapper.params.w2[3];
    pm.mapper.params.w2[3] = 0;
    cr_assert_eq(paw_model_load_mapper(&pm, path), 0, "%s", paw_last_error());
    cr_assert_eq(pm.mapper.params.w2[3], keep);
    paw_model_free(&pm);
    // A model with another rank cannot take this mapper.
    Qwen3 c, i;
    cr_assert_eq(qwen3_load(&c, FIX "compiler", 1), 0);
    cr_assert_eq(qwen3_load(&i, FIX "interpreter", 1), 0);
    cr_assert_eq(paw_model_init(&pm, &c, &i, 5, 8, 8.0f, 3, 1, 1), 0);
    cr_assert_eq(paw_model_load_mapper(&pm, path), -1);
    cr_assert(strstr(paw_last_error(), "mapper.A.down_proj"), "%s", paw_last_error());
    paw_model_free(&pm);
    unlink(path);
}

Test(paw_step, lora_decode_matches_full_forward_per_example) {
    // Each example's adapter, taken out of the batch, gives the same logits when the interpreter
    // runs alone, and KV-cache decoding with the adapter matches the full forward.
    PawModel pm;
    setup(&pm, 1);
    Batch bt;
    load_batch(&bt);
    PawStepStats st;
    cr_assert_eq(paw_forward(&pm, bt.ex, 2, &st), 0);
    int T = st.interp_tokens / 2, V = pm.interp.cfg.vocab_size;
    // The step's forward has logits at the target positions only: the batch again, every row.
    Qwen3Inputs all = {.ids = pm.ids, .lora = &pm.lora};
    cr_assert_eq(qwen3_forward(&pm.interp, &all, 2, T), 0);
    float *batch_logits = xmalloc(sizeof(float) * (size_t)2 * T * V);
    memcpy(batch_logits, pm.interp.acts.logits, sizeof(float) * (size_t)2 * T * V);
    int *ids = xmalloc(sizeof(int) * (size_t)2 * T);
    memcpy(ids, pm.ids, sizeof(int) * (size_t)2 * T);
    for (int b = 0; b < 2; b++) {
        Qwen3Lora one;
        mapper_lora_select(&pm.mapper.cfg, &pm.lora, b, &one);
        Qwen3Inputs in = {.ids = ids + (size_t)b * T, .lora = &one};
        cr_assert_eq(qwen3_forward(&pm.interp, &in, 1, T), 0);
        double e = rel_max(pm.interp.acts.logits, batch_logits + (size_t)b * T * V, (size_t)T * V);
        cr_assert(e < 1e-5, "example %d alone vs in batch: %g", b, e);
        Qwen3KVCache cache;
        qwen3_cache_create(&cache, &pm.interp.cfg, 1, T);
        Qwen3Inputs step = {.ids = ids + (size_t)b * T, .lora = &one, .cache = &cache};
        cr_assert_eq(qwen3_forward(&pm.interp, &step, 1, 3), 0);
        for (int t = 3; t < T; t++) {
            step.ids = ids + (size_t)b * T + t;
            cr_assert_eq(qwen3_forward(&pm.interp, &step, 1, 1), 0);
            e = rel_max(pm.interp.acts.logits, batch_logits + ((size_t)b * T + t) * V, (size_t)V);
            cr_assert(e < 1e-5, "example %d decode step %d: %g", b, t, e);
        }
        qwen3_cache_free(&cache);
        mapper_lora_free(&one);
    }
    free(ids);
    free(batch_logits);
    free_batch(&bt);
    paw_model_free(&pm);
}

Test(paw_step, training_lowers_the_loss_of_a_fixed_batch) {
    // AdamW on the compiler, prefix and mapper through the frozen interpreter: the loss of the
    // batch it trains on must fall (from the training init, where the adapters start as no-ops).
    PawModel pm;
    Qwen3 c, i;
    cr_assert_eq(qwen3_load(&c, FIX "compiler", 0), 0);
    cr_assert_eq(qwen3_load(&i, FIX "interpreter", 1), 0);
    cr_assert_eq(paw_model_init(&pm, &c, &i, 5, 4, 8.0f, 3, 0, 11), 0);
    Batch bt;
    load_batch(&bt);
    struct {
        float *p, *g;
        size_t n;
    } ts[3] = {{pm.comp.model.params_memory, pm.comp.model.grads_memory, pm.comp.model.num_params},
               {pm.comp.prefix, pm.comp.dprefix, (size_t)pm.comp.P * pm.comp.model.cfg.hidden_size},
               {pm.mapper.params_memory, pm.mapper.grads_memory, pm.mapper.num_params}};
    float *m[3], *v[3];
    for (int k = 0; k < 3; k++) m[k] = xcalloc(ts[k].n, 4), v[k] = xcalloc(ts[k].n, 4);
    AdamWParams hp = {3e-3f, 0.9f, 0.999f, 1e-8f, 0.0f};
    float first = 0, last = 0;
    for (int step = 1; step <= 15; step++) {
        PawStepStats st;
        paw_model_zero_grad(&pm);
        cr_assert_eq(paw_forward_backward(&pm, bt.ex, 2, 0, &st), 0, "%s", paw_last_error());
        if (step == 1) first = st.loss;
        last = st.loss;
        for (int k = 0; k < 3; k++) adamw_update(ts[k].p, ts[k].g, m[k], v[k], ts[k].n, &hp, step, 1.0f);
    }
    cr_assert(last < 0.8f * first, "loss %f -> %f after 15 steps", first, last);
    for (int k = 0; k < 3; k++) free(m[k]), free(v[k]);
    free_batch(&bt);
    paw_model_free(&pm);
}
