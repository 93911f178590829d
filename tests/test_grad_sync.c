// The backward's reports of finished gradients (Qwen3GradsReadyFn), which the overlapped
// data-parallel reduction relies on: each group reported exactly once, in the documented order,
// holding its final value when reported (snapshots taken in the report equal the gradients after
// the backward) and before the groups after it are computed; frozen models report nothing; the
// PAW step reports the mapper before the compiler and the prefix last. Then the trainer's bucket
// plan (train/grad_sync.c): every gradient element in exactly one bucket.
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "common/error.h"
#include "tests/testutil.h"
#include "train/grad_sync.h"
#include "train/paw_step.h"

// The ranges of a Qwen3 report group in the flat gradient, from the parameter table alone.
static int group_ranges(const Qwen3 *m, int group, size_t *off, size_t *len) {
    const int L = m->cfg.num_layers;
    Qwen3Params g = m->grads;
    int n = 0;
    for (int i = 0; i < QWEN3_NUM_PARAMS; i++) {
        Qwen3ParamInfo info = qwen3_param_info(&m->cfg, i);
        if (info.numel == 0) continue;
        size_t start = (size_t)(*qwen3_param_slot(&g, i) - m->grads_memory);
        int in_group = group >= 0 ? info.per_layer : group == QWEN3_GRADS_EMBED ? i == 0 : (!info.per_layer && i != 0);
        if (!in_group) continue;
        size_t per = info.per_layer ? info.numel / (size_t)L : info.numel;
        off[n] = start + (group >= 0 ? (size_t)group * per : 0);
        len[n++] = per;
    }
    return n;
}

#define MAX_REPORTS 64

typedef struct {
    const Qwen3 *m;        // NULL: record the order only
    int groups[MAX_REPORTS];
    float *snap[MAX_REPORTS];  // the group's gradients, concatenated, at its report
    int later_layers_zero[MAX_REPORTS];  // layers below a reported layer were still all zero
    int n;
    const float *extra;    // another gradient to snapshot at extra_group's report
    size_t extra_n;
    int extra_group;
    float *extra_snap;
} Recorder;

static void record(void *ctx, int group) {
    Recorder *r = ctx;
    cr_assert_lt(r->n, MAX_REPORTS);
    int k = r->n++;
    r->groups[k] = group;
    if (r->extra && group == r->extra_group) {
        r->extra_snap = xmalloc(sizeof(float) * r->extra_n);
        memcpy(r->extra_snap, r->extra, sizeof(float) * r->extra_n);
    }
    if (!r->m || (group < 0 && group != QWEN3_GRADS_HEAD && group != QWEN3_GRADS_EMBED)) return;
    size_t off[QWEN3_NUM_PARAMS], len[QWEN3_NUM_PARAMS], total = 0;
    int nr = group_ranges(r->m, group, off, len);
    for (int i = 0; i < nr; i++) total += len[i];
    float *s = r->snap[k] = xmalloc(sizeof(float) * (total + 1));
    for (int i = 0; i < nr; i++) {
        memcpy(s, r->m->grads_memory + off[i], sizeof(float) * len[i]);
        s += len[i];
    }
    // The backward has not reached the layers below this one yet: their gradients are untouched.
    r->later_layers_zero[k] = 1;
    for (int l = group - 1; l >= 0; l--) {
        nr = group_ranges(r->m, l, off, len);
        for (int i = 0; i < nr; i++)
            for (size_t j = 0; j < len[i]; j++)
                if (r->m->grads_memory[off[i] + j] != 0.0f) r->later_layers_zero[k] = 0;
    }
}

// Every snapshot equals the group's gradient after the backward, bit for bit.
static void check_snapshots(const Recorder *r, const Qwen3 *m) {
    for (int k = 0; k < r->n; k++) {
        if (!r->snap[k]) continue;
        size_t off[QWEN3_NUM_PARAMS], len[QWEN3_NUM_PARAMS];
        int nr = group_ranges(m, r->groups[k], off, len);
        const float *s = r->snap[k];
        double nonzero = 0;
        for (int i = 0; i < nr; i++) {
            for (size_t j = 0; j < len[i]; j++) {
                float fin = m->grads_memory[off[i] + j];
                cr_assert(s[j] == fin, "group %d: element %zu of range %d was %g at its report, %g after the backward",
                          r->groups[k], j, i, s[j], fin);
                nonzero += fabsf(fin);
            }
            s += len[i];
        }
        cr_assert_gt(nonzero, 0, "group %d has an all-zero gradient: the check would prove nothing", r->groups[k]);
        if (r->groups[k] >= 0) cr_assert(r->later_layers_zero[k], "layer %d: lower layers were already computed", r->groups[k]);
    }
}

static void free_recorder(Recorder *r) {
    for (int k = 0; k < r->n; k++) free(r->snap[k]);
    free(r->extra_snap);
}

// The documented order: HEAD, L-1 .. 0, EMBED.
static void check_order(const int *groups, int n, int L) {
    cr_assert_eq(n, L + 2, "%d reports for %d layers", n, L);
    cr_assert_eq(groups[0], QWEN3_GRADS_HEAD);
    for (int l = 0; l < L; l++) cr_assert_eq(groups[1 + l], L - 1 - l, "report %d: %d", 1 + l, groups[1 + l]);
    cr_assert_eq(groups[L + 1], QWEN3_GRADS_EMBED);
}

static void random_model(Qwen3 *m, int tied, int frozen) {
    Qwen3Config cfg = {.hidden_size = 16, .intermediate_size = 24, .num_layers = 3, .num_heads = 4, .num_kv_heads = 2,
                       .head_dim = 6, .vocab_size = 20, .max_position_embeddings = 64, .rope_theta = 1e4,
                       .rms_norm_eps = 1e-6, .tie_word_embeddings = tied};
    qwen3_create(m, &cfg, frozen);
    qwen3_init_random(m, 11, 0.3f);
    for (size_t i = 0; i < m->num_params; i++) m->params_memory[i] += 0.05f * (float)((i * 2654435761u) % 17) / 17.0f;
}

static void backward_with_reports(Qwen3 *m, Recorder *rec, int accumulate) {
    enum { B = 2, T = 5 };
    int ids[B * T] = {1, 5, 7, 2, 9, 3, 3, 11, 19, 0}, tg[B * T];
    for (int i = 0; i < B * T; i++) tg[i] = (ids[i] * 7 + 3) % 20;
    Qwen3Inputs in = {.ids = ids, .targets = tg};
    qwen3_zero_grad(m);
    if (accumulate) {  // an earlier micro-batch, without reports: values are final for this backward only
        cr_assert_eq(qwen3_forward(m, &in, B, T), 0);
        cr_assert_eq(qwen3_backward(m, 0), 0);
    }
    cr_assert_eq(qwen3_forward(m, &in, B, T), 0, "%s", paw_last_error());
    Qwen3BackwardArgs args = {.on_grads_ready = record, .ctx = rec};
    cr_assert_eq(qwen3_backward_ex(m, &args), 0, "%s", paw_last_error());
}

Test(grads_ready, qwen3_reports_each_group_once_in_reverse_order_with_its_final_values) {
    for (int tied = 0; tied <= 1; tied++) {
        Qwen3 m;
        random_model(&m, tied, 0);
        Recorder rec = {.m = &m};
        backward_with_reports(&m, &rec, 0);
        check_order(rec.groups, rec.n, m.cfg.num_layers);
        check_snapshots(&rec, &m);
        free_recorder(&rec);
        qwen3_free(&m);
    }
}

Test(grads_ready, reports_hold_under_gradient_accumulation) {
    Qwen3 m;
    random_model(&m, 0, 0);
    Recorder rec = {.m = &m};
    backward_with_reports(&m, &rec, 1);
    check_order(rec.groups, rec.n, m.cfg.num_layers);
    // Lower layers hold the first micro-batch's gradient already: only the snapshots are checked.
    for (int k = 0; k < rec.n; k++) rec.later_layers_zero[k] = 1;
    check_snapshots(&rec, &m);
    free_recorder(&rec);
    qwen3_free(&m);
}

Test(grads_ready, a_frozen_model_reports_nothing) {
    Qwen3 m;
    random_model(&m, 1, 1);
    Recorder rec = {0};
    backward_with_reports(&m, &rec, 0);
    cr_assert_eq(rec.n, 0, "%d reports", rec.n);
    qwen3_free(&m);
}

// ---- the PAW step -------------------------------------------------------------------------------

#define FIX "tests/fixtures/paw/"

static void paw_setup(PawModel *pm, int freeze_compiler, SafeTensors *batch, int *ids[3][2], PawStepExample ex[2]) {
    Qwen3 c, i;
    cr_assert_eq(qwen3_load(&c, FIX "compiler", 0), 0, "%s", paw_last_error());
    cr_assert_eq(qwen3_load(&i, FIX "interpreter", 1), 0, "%s", paw_last_error());
    cr_assert_eq(paw_model_init(pm, &c, &i, 5, 4, 8.0f, 3, freeze_compiler, 1), 0);
    cr_assert_eq(paw_model_load_mapper(pm, FIX "init.safetensors"), 0, "%s", paw_last_error());
    cr_assert_eq(st_open(batch, FIX "batch.safetensors"), 0, "%s", paw_last_error());
    const char *parts[3] = {"comp_ids", "interp_ids", "target_ids"};
    int lens[3][2];
    for (int k = 0; k < 3; k++)
        for (int b = 0; b < 2; b++) {
            char name[64];
            snprintf(name, sizeof name, "%s.%d", parts[k], b);
            int64_t n;
            ids[k][b] = ref_i32(batch, name, &n);
            lens[k][b] = (int)n;
        }
    for (int b = 0; b < 2; b++)
        ex[b] = (PawStepExample){ids[0][b], lens[0][b], ids[1][b], lens[1][b], ids[2][b], lens[2][b]};
}

static void paw_step_reports(int freeze_compiler) {
    PawModel pm;
    SafeTensors batch;
    int *ids[3][2];
    PawStepExample ex[2];
    paw_setup(&pm, freeze_compiler, &batch, ids, ex);
    paw_model_zero_grad(&pm);
    const Qwen3 *cm = &pm.comp.model;
    size_t nprefix = (size_t)pm.comp.P * cm->cfg.hidden_size;
    // The mapper's gradient at its report, and the prefix's at its report.
    Recorder rec = {.m = freeze_compiler ? NULL : cm, .extra = pm.mapper.grads_memory,
                    .extra_n = pm.mapper.num_params, .extra_group = PAW_GRADS_MAPPER};
    PawStepStats st;
    cr_assert_eq(paw_forward_backward_ex(&pm, ex, 2, 0, &st, record, &rec), 0, "%s", paw_last_error());
    int L = cm->cfg.num_layers;
    cr_assert_eq(rec.groups[0], PAW_GRADS_MAPPER);
    cr_assert_eq(rec.groups[rec.n - 1], COMPILER_GRADS_PREFIX);
    if (freeze_compiler) cr_assert_eq(rec.n, 2, "%d reports with a frozen compiler", rec.n);
    else {
        check_order(rec.groups + 1, rec.n - 2, L);
        check_snapshots(&rec, cm);
    }
    cr_assert_not_null(rec.extra_snap);
    cr_assert(memcmp(rec.extra_snap, pm.mapper.grads_memory, sizeof(float) * pm.mapper.num_params) == 0,
              "the mapper's gradient changed after its report");
    free_recorder(&rec);
    // The prefix: snapshot at its (last) report against the final value, through a second step.
    float *dprefix = xmalloc(sizeof(float) * nprefix);
    memcpy(dprefix, pm.comp.dprefix, sizeof(float) * nprefix);
    paw_model_zero_grad(&pm);
    Recorder rec2 = {.extra = pm.comp.dprefix, .extra_n = nprefix, .extra_group = COMPILER_GRADS_PREFIX};
    cr_assert_eq(paw_forward_backward_ex(&pm, ex, 2, 0, &st, record, &rec2), 0, "%s", paw_last_error());
    cr_assert(memcmp(rec2.extra_snap, pm.comp.dprefix, sizeof(float) * nprefix) == 0);
    cr_assert(memcmp(dprefix, pm.comp.dprefix, sizeof(float) * nprefix) == 0, "the step is not deterministic");
    double norm = 0;
    for (size_t i = 0; i < nprefix; i++) norm += fabsf(dprefix[i]);
    cr_assert_gt(norm, 0);
    free_recorder(&rec2);
    free(dprefix);
    for (int k = 0; k < 3; k++)
        for (int b = 0; b < 2; b++) free(ids[k][b]);
    st_close(&batch);
    paw_model_free(&pm);
}

Test(grads_ready, paw_step_reports_mapper_then_compiler_layers_then_prefix) { paw_step_reports(0); }
Test(grads_ready, paw_step_with_a_frozen_compiler_reports_mapper_and_prefix) { paw_step_reports(1); }

// ---- the bucket plan ----------------------------------------------------------------------------

Test(grad_sync, qwen3_buckets_cover_every_gradient_once_and_a_gap_or_overlap_is_refused) {
    for (int tied = 0; tied <= 1; tied++) {
        Qwen3 m;
        random_model(&m, tied, 0);
        TrainParam p[2] = {{.name = "model", .p = m.params_memory, .g = m.grads_memory, .n = m.num_params},
                           {.name = "extra", .n = 10}};
        PawComm *c = paw_comm_single();
        GradSync gs;
        grad_sync_init(&gs, c, p, 2, 0);
        grad_sync_add_qwen3(&gs, 0, &m);
        GradRange extra = {1, 0, 10};
        grad_sync_add_bucket(&gs, -9, &extra, 1);
        cr_assert_eq(grad_sync_check(&gs), 0, "%s", paw_last_error());
        cr_assert_eq(gs.nbuckets, m.cfg.num_layers + 3);
        cr_assert_eq(gs.buckets[0].group, QWEN3_GRADS_HEAD);
        cr_assert_eq(gs.buckets[1].group, m.cfg.num_layers - 1);
        // Reports start buckets; finish completes them (single process: nothing changes).
        qwen3_zero_grad(&m);
        m.grads_memory[3] = 2.5f;
        grad_sync_begin(&gs);
        grad_sync_ready(&gs, QWEN3_GRADS_HEAD);
        cr_assert_eq(gs.next, 1);
        grad_sync_ready(&gs, 0);  // out of order: waits for the layers before it
        cr_assert_eq(gs.next, 1);
        cr_assert_eq(grad_sync_finish(&gs), 0);
        cr_assert_eq(gs.next, gs.nbuckets);
        cr_assert_eq(m.grads_memory[3], 2.5f);
        // A range counted twice, then an element in no bucket.
        GradRange dup = {1, 5, 1};
        grad_sync_add_bucket(&gs, -10, &dup, 1);
        cr_assert_eq(grad_sync_check(&gs), -1);
        cr_assert(strstr(paw_last_error(), "two buckets"), "%s", paw_last_error());
        grad_sync_free(&gs);
        grad_sync_init(&gs, c, p, 2, 0);
        grad_sync_add_qwen3(&gs, 0, &m);
        GradRange part = {1, 0, 9};
        grad_sync_add_bucket(&gs, -9, &part, 1);
        cr_assert_eq(grad_sync_check(&gs), -1);
        cr_assert(strstr(paw_last_error(), "cover 9 of its 10"), "%s", paw_last_error());
        grad_sync_free(&gs);
        paw_comm_close(c);
        qwen3_free(&m);
    }
}

Test(comm, single_process_nonblocking_collectives_are_identities) {
    PawComm *c = paw_comm_single();
    float v[4] = {1, 2, 3, 4};
    cr_assert_eq(paw_iallreduce_f32(c, v, 4), 0);
    cr_assert_eq(paw_ireduce_shards_f32(c, v, 4, 1, 3), 0);
    cr_assert_eq(paw_comm_progress(c), 0);
    cr_assert_eq(paw_comm_wait_all(c), 0);
    cr_assert(v[0] == 1 && v[1] == 2 && v[2] == 3 && v[3] == 4);
    cr_assert_eq(paw_ireduce_shards_f32(c, v, 4, 3, 5), -1);  // past the end
    paw_comm_close(c);
}
