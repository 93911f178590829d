// The Qwen3 CPU model against Hugging Face transformers fixtures (tests/make_qwen3_fixtures.py):
// logits and loss within 1e-4 relative (fp32 with different summation orders drifts by ~1e-6),
// gradients within 1e-3 relative L2, plus decoding, checkpoints and bad inputs.
#include <criterion/criterion.h>
#include <stdio.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/rng.h"
#include "kernels/matmul.h"
#include "kernels/quant.h"
#include "model/qwen3.h"
#include "tests/testutil.h"

#define FIX "tests/fixtures/qwen3/"

typedef struct {
    SafeTensors ref;
    int *ids, *targets;
    float *weights;
    int B, T;
} Ref;

static void load_ref(Ref *r, const char *name) {
    char path[512];
    snprintf(path, sizeof path, FIX "%s/reference.safetensors", name);
    cr_assert_eq(st_open(&r->ref, path), 0, "%s", paw_last_error());
    const StTensor *t = st_find(&r->ref, "ids");
    r->B = (int)t->shape[0];
    r->T = (int)t->shape[1];
    r->ids = ref_i32(&r->ref, "ids", NULL);
    r->targets = ref_i32(&r->ref, "targets", NULL);
    r->weights = ref_f32(&r->ref, "weights", NULL);
}

static void free_ref(Ref *r) {
    free(r->ids);
    free(r->targets);
    free(r->weights);
    st_close(&r->ref);
}

static void check_forward(Qwen3 *m, Ref *r) {
    Qwen3Inputs in = {.ids = r->ids, .targets = r->targets, .loss_weight = r->weights};
    cr_assert_eq(qwen3_forward(m, &in, r->B, r->T), 0, "%s", paw_last_error());
    int64_t n;
    float *logits = ref_f32(&r->ref, "logits", &n);
    cr_assert_eq(n, (int64_t)r->B * r->T * m->cfg.vocab_size);
    double e = rel_max(m->acts.logits, logits, (size_t)n);
    cr_assert(e < 1e-4, "logits rel err %g", e);
    float *loss = ref_f32(&r->ref, "loss", NULL);
    cr_assert(fabs(m->loss - loss[0]) < 1e-4 * fabs(loss[0]), "loss %f vs %f", m->loss, loss[0]);
    free(logits);
    free(loss);
}

static void check_grads(Qwen3 *m, Ref *r) {
    char name[256], key[300];
    int checked = 0;
    for (int i = 0; i < QWEN3_NUM_PARAMS; i++) {
        Qwen3ParamInfo info = qwen3_param_info(&m->cfg, i);
        if (info.numel == 0) continue;
        const float *g = *qwen3_param_slot(&m->grads, i);
        int layers = info.per_layer ? m->cfg.num_layers : 1;
        size_t per = info.numel / (size_t)layers;
        for (int l = 0; l < layers; l++) {
            snprintf(name, sizeof name, info.hf_name, l);
            snprintf(key, sizeof key, "grad.%s", name);
            int64_t n;
            float *ref = ref_f32(&r->ref, key, &n);
            cr_assert_eq((size_t)n, per, "%s size", key);
            double e = rel_l2(g + (size_t)l * per, ref, per);
            cr_assert(e < 1e-3, "%s: gradient rel L2 err %g", key, e);
            free(ref);
            checked++;
        }
    }
    cr_assert(checked >= 3 + 11 * m->cfg.num_layers - 1);
}

static void full_check(const char *name) {
    Qwen3 m;
    char dir[512];
    snprintf(dir, sizeof dir, FIX "%s", name);
    cr_assert_eq(qwen3_load(&m, dir, 0), 0, "%s", paw_last_error());
    Ref r;
    load_ref(&r, name);
    check_forward(&m, &r);
    qwen3_zero_grad(&m);
    cr_assert_eq(qwen3_backward(&m, 0), 0, "%s", paw_last_error());
    check_grads(&m, &r);
    // The input-embedding gradient (the trainable model passes it back too).
    int64_t n;
    float *dx0 = ref_f32(&r.ref, "dx0", &n);
    double e = rel_l2(m.scratch.dx, dx0, (size_t)n);
    cr_assert(e < 1e-3, "dx0 rel L2 err %g", e);
    free(dx0);
    free_ref(&r);
    qwen3_free(&m);
}

Test(model, gqa_tied_matches_transformers) { full_check("tiny-gqa-tied"); }
Test(model, untied_bf16_sharded_matches_transformers) { full_check("tiny-untied-bf16-sharded"); }

Test(model, frozen_mode_gives_input_gradients_only) {
    Qwen3 m;
    cr_assert_eq(qwen3_load(&m, FIX "tiny-gqa-tied", 1), 0, "%s", paw_last_error());
    cr_assert_null(m.grads_memory);
    cr_assert_null(m.grads.qw);
    Ref r;
    load_ref(&r, "tiny-gqa-tied");
    check_forward(&m, &r);
    cr_assert_eq(qwen3_backward(&m, 0), 0);
    int64_t n;
    float *dx0 = ref_f32(&r.ref, "dx0", &n);
    double e = rel_l2(m.scratch.dx, dx0, (size_t)n);
    cr_assert(e < 1e-3, "dx0 rel L2 err %g", e);
    free(dx0);
    free_ref(&r);
    qwen3_free(&m);
}

Test(model, embeds_input_equals_ids_input) {
    Qwen3 m;
    cr_assert_eq(qwen3_load(&m, FIX "tiny-gqa-tied", 1), 0);
    Ref r;
    load_ref(&r, "tiny-gqa-tied");
    int N = r.B * r.T, C = m.cfg.hidden_size, V = m.cfg.vocab_size;
    // Rows 0..2 of each sequence come in as embeddings (id -1), the rest as ids.
    float *emb = xcalloc((size_t)N * C, sizeof(float));
    int *ids = xmalloc(sizeof(int) * (size_t)N);
    for (int i = 0; i < N; i++) {
        ids[i] = (i % r.T) < 3 ? -1 : r.ids[i];
        if (ids[i] < 0) memcpy(emb + (size_t)i * C, m.params.wte + (size_t)r.ids[i] * C, sizeof(float) * C);
    }
    Qwen3Inputs in = {.ids = ids, .embeds = emb};
    cr_assert_eq(qwen3_forward(&m, &in, r.B, r.T), 0);
    float *got = xmalloc(sizeof(float) * (size_t)N * V);
    memcpy(got, m.acts.logits, sizeof(float) * (size_t)N * V);
    Qwen3Inputs in2 = {.ids = r.ids};
    cr_assert_eq(qwen3_forward(&m, &in2, r.B, r.T), 0);
    cr_assert(rel_max(got, m.acts.logits, (size_t)N * V) == 0.0);
    free(got);
    free(emb);
    free(ids);
    free_ref(&r);
    qwen3_free(&m);
}

Test(model, stored_lm_head_on_tied_model_is_ignored) {
    Qwen3 a, b;
    cr_assert_eq(qwen3_load(&a, FIX "tiny-gqa-tied", 1), 0);
    cr_assert_eq(qwen3_load(&b, FIX "tiny-gqa-tied-stored-head", 1), 0, "%s", paw_last_error());
    cr_assert_eq(a.num_params, b.num_params);
    cr_assert(memcmp(a.params_memory, b.params_memory, sizeof(float) * a.num_params) == 0);
    qwen3_free(&a);
    qwen3_free(&b);
}

// Prefill of 4 tokens of the reference's first sequence, then one token at a time: the logits of
// the full-sequence forward within tol (0: bit for bit). Then a step past the cache is refused.
static void decode_matches_full_forward(Qwen3 *m, const Ref *r, double tol) {
    int T = r->T, V = m->cfg.vocab_size;
    Qwen3Inputs full = {.ids = r->ids};
    cr_assert_eq(qwen3_forward(m, &full, 1, T), 0);
    float *ref = xmalloc(sizeof(float) * (size_t)T * V);
    memcpy(ref, m->acts.logits, sizeof(float) * (size_t)T * V);
    Qwen3KVCache cache;
    qwen3_cache_create(&cache, &m->cfg, 1, T);
    Qwen3Inputs in = {.ids = r->ids, .cache = &cache};
    for (int t = 0; t < T; t = t ? t + 1 : 4) {
        in.ids = r->ids + t;
        int n = t ? 1 : 4;
        cr_assert_eq(qwen3_forward(m, &in, 1, n), 0);
        const float *want = ref + (size_t)t * V;
        if (tol == 0)
            cr_assert(memcmp(m->acts.logits, want, sizeof(float) * (size_t)n * V) == 0, "position %d", t);
        double e = rel_max(m->acts.logits, want, (size_t)n * V);
        cr_assert(e <= tol, "position %d: rel err %g", t, e);
    }
    in.ids = r->ids;
    cr_assert_eq(qwen3_forward(m, &in, 1, 1), -1);  // the cache is full: refused, not overrun
    qwen3_cache_free(&cache);
    free(ref);
}

static void check_decode(const char *name, int weights) {
    Qwen3 m;
    char dir[512];
    snprintf(dir, sizeof dir, FIX "%s", name);
    cr_assert_eq(qwen3_load_ex(&m, dir, 1, weights), 0, "%s", paw_last_error());
    cr_assert_eq(m.num_w16 != 0, weights == QWEN3_WEIGHTS_BF16);
    Ref r;
    load_ref(&r, name);
    int64_t np, ng;
    int *prompt = ref_i32(&r.ref, "gen_prompt", &np);
    int *want = ref_i32(&r.ref, "gen_out", &ng);
    int got[64];
    int n = qwen3_generate(&m, NULL, prompt, (int)np, (int)ng, -1, got);
    cr_assert_eq(n, ng);
    for (int i = 0; i < n; i++) cr_assert_eq(got[i], want[i], "token %d: %d vs transformers %d", i, got[i], want[i]);

    decode_matches_full_forward(&m, &r, 1e-5);
    free(prompt);
    free(want);
    free_ref(&r);
    qwen3_free(&m);
}

Test(model, decode_matches_transformers_and_full_forward) {
    check_decode("tiny-gqa-tied", QWEN3_WEIGHTS_F32);
    check_decode("tiny-untied-bf16-sharded", QWEN3_WEIGHTS_F32);
}

// ---- unrelated sequences decoding together ---------------------------------------------------

static void lora_alloc(const Qwen3Config *cfg, int nb, int r, Qwen3Lora *lo) {
    memset(lo, 0, sizeof *lo);
    lo->rank = r, lo->scale = 2.0f, lo->nb = nb;
    for (int m = 0; m < LORA_NUM_MODULES; m++) {
        int din, dout;
        lora_module_dims(cfg, m, &din, &dout);
        lo->A[m] = xmalloc(sizeof(float) * (size_t)cfg->num_layers * nb * r * din);
        lo->B[m] = xmalloc(sizeof(float) * (size_t)cfg->num_layers * nb * dout * r);
    }
}

static void lora_free(Qwen3Lora *lo) {
    for (int m = 0; m < LORA_NUM_MODULES; m++) free(lo->A[m]), free(lo->B[m]);
}

// Prefill and STEPS tokens of each sequence alone, with its own adapter (or none); each step's
// logits into alone[(s * STEPS + t) * V].
enum { RC_NB = 9, RC_STEPS = 3, RC_R = 2 };
static const int rc_plen[RC_NB] = {3, 7, 1, 5, 2, 6, 4, 1, 8};  // s + rc_plen[s] <= 16 prompt ids
static int rc_token(int t, int s, int V) { return (11 + 5 * t + s) % V; }

static void rc_prefill(Qwen3 *m, Qwen3KVCache *cache, const int *ids, int s, const Qwen3Lora *lo) {
    cache->len = 0;
    Qwen3Inputs in = {.ids = ids + s, .cache = cache, .logits_mode = QWEN3_LOGITS_LAST, .lora = lo};
    cr_assert_eq(qwen3_forward(m, &in, 1, rc_plen[s]), 0, "%s", paw_last_error());
}

static void rc_alone(Qwen3 *m, Qwen3KVCache *caches, const int *ids, const Qwen3Lora *const *lo, float *alone) {
    int V = m->cfg.vocab_size;
    for (int s = 0; s < RC_NB; s++) {
        rc_prefill(m, &caches[s], ids, s, lo[s]);
        for (int t = 0; t < RC_STEPS; t++) {
            int tok = rc_token(t, s, V);
            Qwen3Inputs in = {.ids = &tok, .cache = &caches[s], .logits_mode = QWEN3_LOGITS_LAST, .lora = lo[s]};
            cr_assert_eq(qwen3_forward(m, &in, 1, 1), 0);
            memcpy(alone + ((size_t)s * RC_STEPS + t) * V, m->acts.logits, sizeof(float) * V);
        }
    }
}

static void rc_random(Qwen3Lora *lo, const Qwen3Config *cfg, unsigned long long seed) {
    PawRng rng = {seed};
    for (int mod = 0; mod < LORA_NUM_MODULES; mod++) {
        int din, dout;
        lora_module_dims(cfg, mod, &din, &dout);
        size_t na = (size_t)cfg->num_layers * lo->rank * din, nb = (size_t)cfg->num_layers * dout * lo->rank;
        for (size_t i = 0; i < na; i++) lo->A[mod][i] = 0.3f * paw_rng_normal(&rng);
        for (size_t i = 0; i < nb; i++) lo->B[mod][i] = 0.3f * paw_rng_normal(&rng);
    }
}

// Sequences of different lengths decoding through their own caches (row_caches): each row's
// logits are the bits of its sequence decoded alone (up to MATMUL_GEMV_MAX_ROWS rows run one-row
// products; 9 rows make two full groups of 4 and one of 1).
// Adapters: one shared by the batch (nb = 1), a copy per row (nb = B), and per-sequence ones of
// different ranks and none (row_loras, as rows of different programs). f32 and bf16 weights.
Test(model, row_caches_decode_each_sequence_as_if_alone) {
    for (int wt = 0; wt < 2; wt++) {
        Qwen3 m;
        cr_assert_eq(qwen3_load_ex(&m, FIX "tiny-gqa-tied", 1, wt ? QWEN3_WEIGHTS_BF16 : QWEN3_WEIGHTS_F32), 0);
        const Qwen3Config *cfg = &m.cfg;
        int V = cfg->vocab_size;
        Qwen3Lora one, per, other;
        lora_alloc(cfg, 1, RC_R, &one);
        lora_alloc(cfg, RC_NB, RC_R, &per);
        lora_alloc(cfg, 1, 3, &other);
        other.scale = 0.5f;
        rc_random(&one, cfg, 77);
        rc_random(&other, cfg, 78);
        for (int mod = 0; mod < LORA_NUM_MODULES; mod++) {
            int din, dout;
            lora_module_dims(cfg, mod, &din, &dout);
            for (int l = 0; l < cfg->num_layers; l++)
                for (int s = 0; s < RC_NB; s++) {
                    memcpy(per.A[mod] + ((size_t)l * RC_NB + s) * RC_R * din, one.A[mod] + (size_t)l * RC_R * din,
                           sizeof(float) * RC_R * din);
                    memcpy(per.B[mod] + ((size_t)l * RC_NB + s) * dout * RC_R, one.B[mod] + (size_t)l * dout * RC_R,
                           sizeof(float) * dout * RC_R);
                }
        }
        int ids[16];
        for (int i = 0; i < 16; i++) ids[i] = (7 * i + 3) % V;
        const Qwen3Lora *same[RC_NB], *mixed[RC_NB];
        for (int s = 0; s < RC_NB; s++) same[s] = &one, mixed[s] = s % 3 == 1 ? NULL : s % 3 == 2 ? &other : &one;
        float *alone_same = xmalloc(sizeof(float) * RC_NB * RC_STEPS * V);
        float *alone_mixed = xmalloc(sizeof(float) * RC_NB * RC_STEPS * V);
        Qwen3KVCache caches[RC_NB];
        Qwen3KVCache *rows[RC_NB];
        for (int s = 0; s < RC_NB; s++) qwen3_cache_create(&caches[s], cfg, 1, 16), rows[s] = &caches[s];
        rc_alone(&m, caches, ids, same, alone_same);
        rc_alone(&m, caches, ids, mixed, alone_mixed);
        const char *names[3] = {"shared", "a copy per row", "per sequence"};
        for (int pass = 0; pass < 3; pass++) {
            const Qwen3Lora *const *lo = pass == 2 ? mixed : same;
            const float *alone = pass == 2 ? alone_mixed : alone_same;
            for (int s = 0; s < RC_NB; s++) rc_prefill(&m, &caches[s], ids, s, lo[s]);
            for (int t = 0; t < RC_STEPS; t++) {
                int toks[RC_NB];
                for (int s = 0; s < RC_NB; s++) toks[s] = rc_token(t, s, V);
                Qwen3Inputs in = {.ids = toks, .row_caches = rows, .logits_mode = QWEN3_LOGITS_LAST};
                if (pass == 0) in.lora = &one;
                else if (pass == 1) in.lora = &per;
                else in.row_loras = mixed;
                cr_assert_eq(qwen3_forward(&m, &in, RC_NB, 1), 0, "%s", paw_last_error());
                for (int s = 0; s < RC_NB; s++) {
                    cr_assert_eq(caches[s].len, rc_plen[s] + t + 1);
                    cr_assert(memcmp(m.acts.logits + (size_t)s * V, alone + ((size_t)s * RC_STEPS + t) * V,
                                     sizeof(float) * V) == 0,
                              "weights %s, adapters %s: step %d, sequence %d differs from decoding it alone",
                              wt ? "bf16" : "f32", names[pass], t, s);
                }
            }
        }
        // The mixed adapters matter: sequence 2 (the other adapter) differs from the shared run.
        cr_assert(memcmp(alone_same + (size_t)2 * RC_STEPS * V, alone_mixed + (size_t)2 * RC_STEPS * V,
                         sizeof(float) * V) != 0);
        // A full row cache, two kinds of cache or of adapter at once, and a batch in row_loras are refused.
        caches[1].len = caches[1].cap;
        int toks[RC_NB] = {1, 2, 3, 4};
        Qwen3Inputs in = {.ids = toks, .row_caches = rows, .logits_mode = QWEN3_LOGITS_LAST};
        cr_assert_eq(qwen3_forward(&m, &in, RC_NB, 1), -1);
        cr_assert(strstr(paw_last_error(), "sequence 1"), "%s", paw_last_error());
        caches[1].len = 0;
        in.cache = &caches[0];
        cr_assert_eq(qwen3_forward(&m, &in, RC_NB, 1), -1);
        in.cache = NULL;
        in.lora = &one, in.row_loras = mixed;
        cr_assert_eq(qwen3_forward(&m, &in, RC_NB, 1), -1);
        const Qwen3Lora *bad[RC_NB] = {&per, NULL, NULL, NULL};
        in.lora = NULL, in.row_loras = bad;
        cr_assert_eq(qwen3_forward(&m, &in, RC_NB, 1), -1);
        cr_assert(strstr(paw_last_error(), "expected 1"), "%s", paw_last_error());
        for (int s = 0; s < RC_NB; s++) qwen3_cache_free(&caches[s]);
        free(alone_same), free(alone_mixed);
        lora_free(&one), lora_free(&per), lora_free(&other);
        qwen3_free(&m);
    }
}

// ---- bf16 inference weights ----------------------------------------------------------------

// The bf16 checkpoint's matrices kept as bf16: the same HF logits and loss, and bit for bit the
// f32-loaded model's logits (the products sum in the same order for both weight types). Decoding
// against transformers' tokens and the full forward, like the f32 model. The matrices are read in
// place from the mapped shards, which the model keeps open: deleting the directory after the load
// changes nothing.
Test(model, bf16_weights_match_transformers_and_the_f32_load) {
    Qwen3 a, b;
    char tmp[] = "/tmp/paw-bf16-mapped-XXXXXX", cmd[256];
    cr_assert_not_null(mkdtemp(tmp));
    snprintf(cmd, sizeof cmd, "cp " FIX "tiny-untied-bf16-sharded/*.json " FIX "tiny-untied-bf16-sharded/model-* %s/", tmp);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(qwen3_load_ex(&a, tmp, 1, QWEN3_WEIGHTS_AUTO), 0, "%s", paw_last_error());
    cr_assert_eq(paw_rm_rf(tmp), 0);
    cr_assert_str_eq(qwen3_weights_kind(&a), "bf16", "auto on a BF16 checkpoint keeps bf16 weights");
    cr_assert(a.mapped_files && !a.w16_memory, "BF16 matrices are read where they lie, not copied");
    cr_assert_null(a.params.qw);
    cr_assert_null(a.params.lm_head);
    cr_assert_not_null(a.params.lnfw);
    cr_assert_eq(qwen3_load(&b, FIX "tiny-untied-bf16-sharded", 1), 0);
    Ref r;
    load_ref(&r, "tiny-untied-bf16-sharded");
    check_forward(&a, &r);
    check_forward(&b, &r);
    size_t n = (size_t)r.B * r.T * a.cfg.vocab_size;
    cr_assert(memcmp(a.acts.logits, b.acts.logits, sizeof(float) * n) == 0, "bf16 and f32 loads differ");
    cr_assert_eq(a.loss, b.loss);
    free_ref(&r);
    qwen3_free(&a);
    qwen3_free(&b);
    check_decode("tiny-untied-bf16-sharded", QWEN3_WEIGHTS_BF16);
}

// a (bf16 or q8 weights) against b (the f32 model on the same weight values) on tiny-gqa-tied's
// reference ids: the same logits bit for bit and the same 16 greedy tokens (bound_b 0), or logits
// within bound_b of b's; and within bound of the f32 transformers logits (but not equal: the
// values moved).
static void same_as_f32_model(Qwen3 *a, Qwen3 *b, double bound_b, double bound, const char *what) {
    Ref r;
    load_ref(&r, "tiny-gqa-tied");
    int N = r.B * r.T, V = a->cfg.vocab_size;
    Qwen3Inputs in = {.ids = r.ids};
    cr_assert_eq(qwen3_forward(a, &in, r.B, r.T), 0);
    cr_assert_eq(qwen3_forward(b, &in, r.B, r.T), 0);
    if (bound_b == 0)
        cr_assert(memcmp(a->acts.logits, b->acts.logits, sizeof(float) * (size_t)N * V) == 0, "%s", what);
    double eb = rel_max(a->acts.logits, b->acts.logits, (size_t)N * V);
    cr_assert(eb <= bound_b, "%s vs the f32 model: %g", what, eb);
    int64_t nl;
    float *hf = ref_f32(&r.ref, "logits", &nl);
    double e = rel_max(a->acts.logits, hf, (size_t)nl);
    cr_assert(e > 0 && e < bound, "%s vs f32 transformers: %g", what, e);
    free(hf);
    if (bound_b > 0) {  // different logits need not give the same tokens
        free_ref(&r);
        return;
    }
    int got_a[16], got_b[16];
    int na = qwen3_generate(a, NULL, r.ids, 5, 16, -1, got_a), nb = qwen3_generate(b, NULL, r.ids, 5, 16, -1, got_b);
    cr_assert_eq(na, 16);
    cr_assert_eq(nb, 16);
    for (int i = 0; i < 16; i++) cr_assert_eq(got_a[i], got_b[i], "%s: token %d", what, i);
    free_ref(&r);
}

// Forced bf16 on an F32 checkpoint with tied embeddings: the weights are rounded to nearest even
// on load, and the model is the f32 model on those rounded weights (the LM head reads the
// embedding table).
Test(model, bf16_weights_from_f32_checkpoint_are_the_rounded_model) {
    Qwen3 a, b;
    cr_assert_eq(qwen3_load_ex(&a, FIX "tiny-gqa-tied", 1, QWEN3_WEIGHTS_AUTO), 0);
    cr_assert_str_eq(qwen3_weights_kind(&a), "f32", "auto on an F32 checkpoint keeps f32 weights");
    qwen3_free(&a);
    cr_assert_eq(qwen3_load_ex(&a, FIX "tiny-gqa-tied", 1, QWEN3_WEIGHTS_BF16), 0, "%s", paw_last_error());
    cr_assert(a.w16_memory && !a.mapped_files, "F32 matrices are converted into held bf16 ones");
    cr_assert_eq(a.w16[13], a.w16[0], "tied LM head");
    cr_assert_eq(qwen3_load(&b, FIX "tiny-gqa-tied", 1), 0);
    for (int i = 0; i < QWEN3_NUM_PARAMS; i++) {
        Qwen3ParamInfo info = qwen3_param_info(&b.cfg, i);
        float *t = *qwen3_param_slot(&b.params, i);
        if (info.ndim == 2)
            for (size_t k = 0; k < info.numel; k++) t[k] = st_bf16_to_f32(st_f32_to_bf16(t[k]));
    }
    // Rounding moved the logits, within the bf16 tolerance of the GPU tests (about 1e-2; 5.4e-3 here).
    same_as_f32_model(&a, &b, 0, 1e-2, "rounded model");
    qwen3_free(&a);
    qwen3_free(&b);
}

// Q8 weights (QWEN3_WEIGHTS_Q8, quantized on load as ggml's Q8_0), whose products also round
// their inputs to Q8 blocks (matmul_forward_q8q): against the f32 model on the dequantized
// weights, the error of the inputs' rounding; against the f32 transformers logits, that of both
// roundings. bf16 rounds a weight to within 1/256 of itself, Q8_0 to within 1/254 of its block's
// largest magnitude: for 32 normal draws that is about 2.4 sigma against a mean magnitude of 0.8
// sigma, so errors about 3x bf16's, and the bf16 bound of 1e-2 becomes 3e-2 for one rounding
// (1.7e-2 here for the inputs', 1.8e-2 for the weights'); two independent roundings of that size
// add in quadrature, 3e-2 x sqrt(2) = 4.2e-2 (2.3e-2 here). Decoding one token at a time gives
// the bits of the full forward (every product of this fixture has at most
// MATMUL_GEMV_MAX_ROWS rows, whose outputs do not depend on the rows beside them).
Test(model, q8_model_is_the_dequantized_model_within_the_inputs_rounding) {
    Qwen3 a, b;
    cr_assert_eq(qwen3_load_ex(&a, FIX "tiny-gqa-tied", 1, QWEN3_WEIGHTS_Q8), 0, "%s", paw_last_error());
    cr_assert_not_null(a.q8_memory);
    cr_assert_null(a.params.qw);
    cr_assert_eq(a.q8[13], a.q8[0], "tied LM head");
    cr_assert_eq(qwen3_load(&b, FIX "tiny-gqa-tied", 1), 0);
    for (int i = 0; i < QWEN3_NUM_PARAMS; i++) {
        Qwen3ParamInfo info = qwen3_param_info(&b.cfg, i);
        float *t = *qwen3_param_slot(&b.params, i);
        if (info.ndim != 2 || !info.numel) continue;
        uint8_t *blk = xmalloc(Q8_0_BLOCK_BYTES * (info.numel / 32));
        quantize_q8_0(t, blk, (int64_t)info.numel);  // rows are multiples of 32: blocks never straddle them
        dequantize_q8_0(blk, t, (int64_t)info.numel);
        free(blk);
    }
    same_as_f32_model(&a, &b, 3e-2, 4.2e-2, "q8 model");
    Ref r;
    load_ref(&r, "tiny-gqa-tied");
    decode_matches_full_forward(&a, &r, 0);
    free_ref(&r);
    // Inference only; rows that are not multiples of 32 (hidden 48) are refused by name.
    cr_assert_eq(qwen3_backward(&a, 0), -1);
    cr_assert_eq(qwen3_save(&a, "/tmp/paw-q8-not-written", "float32"), -1);
    cr_assert(strstr(paw_last_error(), "q8"), "%s", paw_last_error());
    qwen3_free(&a);
    qwen3_free(&b);
    cr_assert_eq(qwen3_load_ex(&a, FIX "tiny-gqa-tied", 0, QWEN3_WEIGHTS_Q8), -1);
    cr_assert(strstr(paw_last_error(), "inference"), "%s", paw_last_error());
    cr_assert_eq(qwen3_load_ex(&a, FIX "tiny-untied-bf16-sharded", 1, QWEN3_WEIGHTS_Q8), -1);
    cr_assert(strstr(paw_last_error(), "multiple of 32") && strstr(paw_last_error(), "model."), "%s", paw_last_error());
}

Test(model, bf16_weights_refuse_training_and_saving) {
    Qwen3 m;
    cr_assert_eq(qwen3_load_ex(&m, FIX "tiny-untied-bf16-sharded", 0, QWEN3_WEIGHTS_BF16), -1);
    cr_assert(strstr(paw_last_error(), "inference"), "%s", paw_last_error());
    // auto on a trainable model: f32, whatever the checkpoint stores.
    cr_assert_eq(qwen3_load_ex(&m, FIX "tiny-untied-bf16-sharded", 0, QWEN3_WEIGHTS_AUTO), 0);
    cr_assert_str_eq(qwen3_weights_kind(&m), "f32");
    qwen3_free(&m);
    cr_assert_eq(qwen3_load_ex(&m, FIX "tiny-untied-bf16-sharded", 1, QWEN3_WEIGHTS_BF16), 0);
    Ref r;
    load_ref(&r, "tiny-untied-bf16-sharded");
    Qwen3Inputs in = {.ids = r.ids, .targets = r.targets, .loss_weight = r.weights};
    cr_assert_eq(qwen3_forward(&m, &in, r.B, r.T), 0);
    cr_assert_eq(qwen3_backward(&m, 0), -1);
    cr_assert(strstr(paw_last_error(), "bf16 inference weights"), "%s", paw_last_error());
    cr_assert_eq(qwen3_save(&m, "/tmp/paw-never-written", "float32"), -1);
    cr_assert(strstr(paw_last_error(), "bf16 inference weights"), "%s", paw_last_error());
    cr_assert(!paw_file_exists("/tmp/paw-never-written/model.safetensors"));
    cr_assert_eq(qwen3_weights_from_name("bf16"), QWEN3_WEIGHTS_BF16);
    cr_assert_eq(qwen3_weights_from_name("float32"), QWEN3_WEIGHTS_F32);
    cr_assert_eq(qwen3_weights_from_name("auto"), QWEN3_WEIGHTS_AUTO);
    cr_assert_eq(qwen3_weights_from_name("fp8"), -1);
    cr_assert(strstr(paw_last_error(), "\"fp8\""), "%s", paw_last_error());
    cr_assert_eq(qwen3_weights_for_device("auto", 1), QWEN3_WEIGHTS_F32);
    cr_assert_eq(qwen3_weights_for_device("bf16", 1), -1);
    cr_assert_eq(qwen3_weights_for_device("auto", 0), QWEN3_WEIGHTS_AUTO);
    free_ref(&r);
    qwen3_free(&m);
}

// Finite differences on a random model with no fixture: the analytic gradient of the loss with
// respect to a few coordinates of every parameter tensor and of the input embeddings.
Test(model, finite_difference_gradients) {
    Qwen3Config cfg = {.hidden_size = 16, .intermediate_size = 24, .num_layers = 2, .num_heads = 4, .num_kv_heads = 2,
                       .head_dim = 6, .vocab_size = 20, .max_position_embeddings = 64, .rope_theta = 1e4,
                       .rms_norm_eps = 1e-6, .tie_word_embeddings = 1};
    Qwen3 m;
    qwen3_create(&m, &cfg, 0);
    qwen3_init_random(&m, 7, 0.3f);
    for (size_t i = 0; i < m.num_params; i++)  // perturb the norm weights away from 1
        m.params_memory[i] += 0.05f * (float)((i * 2654435761u) % 17) / 17.0f;
    enum { B = 2, T = 5 };
    int ids[B * T] = {1, 5, 7, 2, 9, 3, 3, 11, 19, 0}, tg[B * T];
    float w[B * T];
    for (int i = 0; i < B * T; i++) {
        tg[i] = (ids[i] * 7 + 3) % 20;
        w[i] = (i % 3 == 0) ? 0.0f : 1.0f;
    }
    Qwen3Inputs in = {.ids = ids, .targets = tg, .loss_weight = w};
    qwen3_zero_grad(&m);
    cr_assert_eq(qwen3_forward(&m, &in, B, T), 0);
    cr_assert_eq(qwen3_backward(&m, 0), 0);
    float *grad = xmalloc(sizeof(float) * m.num_params);
    memcpy(grad, m.grads_memory, sizeof(float) * m.num_params);
    int checked = 0;
    for (int i = 0; i < QWEN3_NUM_PARAMS; i++) {
        Qwen3ParamInfo info = qwen3_param_info(&cfg, i);
        if (info.numel == 0) continue;
        size_t base = (size_t)(*qwen3_param_slot(&m.params, i) - m.params_memory);
        for (int k = 0; k < 3; k++) {
            size_t idx = base + (size_t)(k * 7919 + 13) % info.numel;
            float orig = m.params_memory[idx], h = 1e-2f;
            m.params_memory[idx] = orig + h;
            qwen3_forward(&m, &in, B, T);
            double lp = m.loss;
            m.params_memory[idx] = orig - h;
            qwen3_forward(&m, &in, B, T);
            double lm = m.loss;
            m.params_memory[idx] = orig;
            double fd = (lp - lm) / (2 * h), an = grad[idx];
            // fp32 loss differences carry ~1e-6/h absolute noise; the second-order term is O(h^2).
            cr_assert(fabs(fd - an) < 2e-3 + 2e-2 * fabs(an), "param %s[%zu]: fd %g vs analytic %g", info.hf_name,
                      idx - base, fd, an);
            checked++;
        }
    }
    cr_assert_eq(checked, 13 * 3);
    free(grad);
    qwen3_free(&m);
}

// The LM head at the weighted rows only (training's loss) against the logits of every row: the
// same loss, logits at those rows, and the same gradients. Masks with many weighted rows (the
// packed GEMM), a few (the one-row products), and none. Tolerances: the weight gradients of the
// LM head (tied: wte) sum the rows' products in other groups, so they move by fp32 rounding of
// sums of ~100 terms (~1e-6 relative); everything upstream follows from them.
Test(model, logits_at_weighted_rows_only_give_the_loss_and_gradients_of_all_rows) {
    Qwen3Config cfg = {.hidden_size = 32, .intermediate_size = 48, .num_layers = 2, .num_heads = 4, .num_kv_heads = 2,
                       .head_dim = 8, .vocab_size = 300, .max_position_embeddings = 128, .rope_theta = 1e4,
                       .rms_norm_eps = 1e-6, .tie_word_embeddings = 1};
    enum { B = 3, T = 40, N = B * T };
    int ids[N], tg[N];
    float w[N];
    for (int i = 0; i < N; i++) ids[i] = (i * 37 + 11) % 300, tg[i] = (i * 53 + 7) % 300;
    for (int mask = 0; mask < 3; mask++) {
        int weighted = 0;
        for (int i = 0; i < N; i++) {
            int t = i % T;  // a prompt, then the target positions of each sequence
            w[i] = mask == 0 ? (t >= 12 ? 1.0f + 0.25f * (i % 3) : 0.0f) : mask == 1 ? (t >= 36 ? 1.0f : 0.0f) : 0.0f;
            weighted += w[i] != 0.0f;
        }
        cr_assert(mask != 0 || weighted > MATMUL_GEMV_MAX_ROWS);
        cr_assert(mask != 1 || (weighted > 0 && weighted <= MATMUL_GEMV_MAX_ROWS));
        Qwen3 m[2];
        float *logits[2], *grads[2];
        double loss[2];
        for (int k = 0; k < 2; k++) {
            qwen3_create(&m[k], &cfg, 0);
            qwen3_init_random(&m[k], 5, 0.2f);
            Qwen3Inputs in = {.ids = ids, .targets = tg, .loss_weight = w,
                              .logits_mode = k ? QWEN3_LOGITS_WEIGHTED : QWEN3_LOGITS_ALL};
            qwen3_zero_grad(&m[k]);
            cr_assert_eq(qwen3_forward(&m[k], &in, B, T), 0, "%s", paw_last_error());
            cr_assert_eq(m[k].logits_rows, k ? weighted : N);
            loss[k] = m[k].loss_sum;
            logits[k] = xmalloc(sizeof(float) * (size_t)m[k].logits_rows * cfg.vocab_size + 1);  // + 1: mask 2 has none
            memcpy(logits[k], m[k].acts.logits, sizeof(float) * (size_t)m[k].logits_rows * cfg.vocab_size);
            cr_assert_eq(qwen3_backward(&m[k], 0), 0, "%s", paw_last_error());
            grads[k] = m[k].grads_memory;
        }
        cr_assert(fabs(loss[1] - loss[0]) <= 1e-6 * fabs(loss[0]), "mask %d: loss sum %.9g vs %.9g", mask, loss[1], loss[0]);
        cr_assert_eq(m[1].loss_weight_sum, m[0].loss_weight_sum);
        for (int r = 0, i = 0; i < N; i++) {
            if (w[i] == 0.0f) continue;
            double e = rel_max(logits[1] + (size_t)r++ * cfg.vocab_size, logits[0] + (size_t)i * cfg.vocab_size,
                               (size_t)cfg.vocab_size);
            cr_assert(e < 1e-5, "mask %d: logits of row %d: rel err %g", mask, i, e);
        }
        double e = rel_max(grads[1], grads[0], m[0].num_params);
        cr_assert(e < 1e-5, "mask %d: gradients rel err %g", mask, e);
        if (mask == 2) {  // nothing weighted: no loss, and no gradient anywhere
            cr_assert_eq(loss[1], 0.0);
            for (size_t i = 0; i < m[1].num_params; i++) cr_assert_eq(grads[1][i], 0.0f);
        } else {
            double norm = 0;
            for (size_t i = 0; i < m[1].num_params; i++) norm += (double)grads[1][i] * grads[1][i];
            cr_assert(norm > 0, "mask %d: a zero gradient compares with anything", mask);
        }
        for (int k = 0; k < 2; k++) free(logits[k]), qwen3_free(&m[k]);
    }
}

// ---- checkpoints ---------------------------------------------------------------------------

Test(model, save_and_reload_round_trip) {
    Qwen3 m, r;
    cr_assert_eq(qwen3_load(&m, FIX "tiny-untied-bf16-sharded", 1), 0);
    char dir[] = "/tmp/paw_ckpt_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    cr_assert_eq(qwen3_save(&m, dir, "float32"), 0, "%s", paw_last_error());
    cr_assert_eq(qwen3_load(&r, dir, 1), 0, "%s", paw_last_error());
    cr_assert(memcmp(m.params_memory, r.params_memory, sizeof(float) * m.num_params) == 0);
    qwen3_free(&r);
    // The weights came from bf16, so a bf16 save is exact too.
    cr_assert_eq(qwen3_save(&m, dir, "bfloat16"), 0, "%s", paw_last_error());
    cr_assert_eq(qwen3_load(&r, dir, 1), 0, "%s", paw_last_error());
    cr_assert(memcmp(m.params_memory, r.params_memory, sizeof(float) * m.num_params) == 0);
    cr_assert_eq(r.cfg.rope_theta, m.cfg.rope_theta);
    cr_assert_eq(r.cfg.tie_word_embeddings, 0);
    qwen3_free(&r);
    qwen3_free(&m);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

static char *tmpdir_with_config(const char *json) {
    char *dir = xstrdup("/tmp/paw_cfg_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    char *p = paw_path_join(dir, "config.json");
    cr_assert_eq(paw_write_file_atomic(p, json, strlen(json)), 0);
    free(p);
    return dir;
}

#define BASE_CFG                                                                                                      \
    "\"model_type\":\"qwen3\",\"hidden_size\":64,\"intermediate_size\":96,\"num_hidden_layers\":2,"                 \
    "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"head_dim\":32,\"vocab_size\":256,"                        \
    "\"max_position_embeddings\":128,\"rms_norm_eps\":1e-6,\"tie_word_embeddings\":true"

Test(model, config_refusals_name_the_field) {
    struct {
        const char *json, *needle;
    } cases[] = {
        {"{\"architectures\":[\"LlamaForCausalLM\"]," BASE_CFG "}", "LlamaForCausalLM"},
        {"{" BASE_CFG ",\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":4}}", "rope_scaling"},
        {"{" BASE_CFG ",\"use_sliding_window\":true}", "use_sliding_window"},
        {"{" BASE_CFG ",\"attention_bias\":true}", "attention_bias"},
        {"{" BASE_CFG ",\"hidden_act\":\"gelu\"}", "hidden_act"},
        {"{\"model_type\":\"qwen3\",\"hidden_size\":64}", "intermediate_size"},
        {"{\"model_type\":\"llama\"}", "llama"},
        {"{\"model_type\":\"qwen3\",\"hidden_size\":64,\"intermediate_size\":96,\"num_hidden_layers\":2,"
         "\"num_attention_heads\":4,\"num_key_value_heads\":3,\"vocab_size\":256}",
         "num_key_value_heads"},
        {"{\"model_type\":\"qwen3\",\"hidden_size\":\"64\"}", "hidden_size"},
        {"{ not json", "malformed"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Qwen3Config c;
        cr_assert_eq(qwen3_config_parse(&c, cases[i].json, "x/config.json"), -1, "case %zu accepted", i);
        cr_assert(strstr(paw_last_error(), cases[i].needle) && strstr(paw_last_error(), "x/config.json"),
                  "case %zu: message '%s' lacks '%s'", i, paw_last_error(), cases[i].needle);
    }
    Qwen3Config c;
    cr_assert_eq(qwen3_config_parse(&c, "{" BASE_CFG ",\"rope_theta\":5000000}", "ok"), 0);
    cr_assert_eq(c.rope_theta, 5e6);
    cr_assert_eq(c.head_dim, 32);
    cr_assert_eq(qwen3_config_parse(&c, "{" BASE_CFG ",\"rope_parameters\":{\"rope_type\":\"default\",\"rope_theta\":1e6}}", "ok"), 0);
    cr_assert_eq(c.rope_theta, 1e6);
}

Test(model, weights_mismatch_names_file_and_tensor) {
    // Config and weights that disagree: a bigger intermediate size than the stored tensors.
    char *dir = tmpdir_with_config("{" BASE_CFG "}");
    char cmd[600];
    snprintf(cmd, sizeof cmd, "cp " FIX "tiny-gqa-tied/model.safetensors %s/ && sed -i 's/\"intermediate_size\":96/\"intermediate_size\":97/' %s/config.json", dir, dir);
    cr_assert_eq(system(cmd), 0);
    Qwen3 m;
    cr_assert_eq(qwen3_load(&m, dir, 1), -1);
    cr_assert(strstr(paw_last_error(), "model.safetensors") && strstr(paw_last_error(), "mlp.gate_proj") &&
                  strstr(paw_last_error(), "[96, 64]") && strstr(paw_last_error(), "[97, 64]"),
              "%s", paw_last_error());
    // Untied config: lm_head.weight is required and missing.
    snprintf(cmd, sizeof cmd, "sed -i 's/\"intermediate_size\":97/\"intermediate_size\":96/; s/\"tie_word_embeddings\":true/\"tie_word_embeddings\":false/' %s/config.json", dir);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(qwen3_load(&m, dir, 1), -1);
    cr_assert(strstr(paw_last_error(), "missing tensor \"lm_head.weight\""), "%s", paw_last_error());
    // No weights at all.
    snprintf(cmd, sizeof cmd, "rm %s/model.safetensors", dir);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(qwen3_load(&m, dir, 1), -1);
    cr_assert(strstr(paw_last_error(), "no model.safetensors"), "%s", paw_last_error());
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
    free(dir);
}

Test(model, wrong_dtype_and_bad_index_are_refused) {
    char *dir = tmpdir_with_config("{" BASE_CFG "}");
    // An integer tensor where a weight should be.
    SafeTensors st;
    cr_assert_eq(st_open(&st, FIX "tiny-gqa-tied/model.safetensors"), 0);
    StWriteTensor *ts = xcalloc((size_t)st.ntensors, sizeof *ts);
    for (int i = 0; i < st.ntensors; i++) {
        ts[i].name = st.tensors[i].name;
        ts[i].dtype = st.tensors[i].dtype;
        ts[i].ndim = st.tensors[i].ndim;
        memcpy(ts[i].shape, st.tensors[i].shape, sizeof ts[i].shape);
        ts[i].data = st.tensors[i].data;
        if (strcmp(ts[i].name, "model.norm.weight") == 0) ts[i].dtype = ST_I32;  // same byte size as F32
    }
    char *p = paw_path_join(dir, "model.safetensors");
    cr_assert_eq(st_write(p, ts, st.ntensors, NULL, 0), 0, "%s", paw_last_error());
    Qwen3 m;
    cr_assert_eq(qwen3_load(&m, dir, 1), -1);
    cr_assert(strstr(paw_last_error(), "model.norm.weight") && strstr(paw_last_error(), "I32"), "%s", paw_last_error());
    unlink(p);
    // An index naming a shard that does not exist.
    char *ip = paw_path_join(dir, "model.safetensors.index.json");
    const char *idx = "{\"weight_map\":{\"model.norm.weight\":\"model-00001-of-00002.safetensors\"}}";
    cr_assert_eq(paw_write_file_atomic(ip, idx, strlen(idx)), 0);
    cr_assert_eq(qwen3_load(&m, dir, 1), -1);
    cr_assert(strstr(paw_last_error(), "model-00001-of-00002.safetensors"), "%s", paw_last_error());
    const char *bad = "{\"weight_map\":{\"model.norm.weight\":\"../../etc/passwd\"}}";
    cr_assert_eq(paw_write_file_atomic(ip, bad, strlen(bad)), 0);
    cr_assert_eq(qwen3_load(&m, dir, 1), -1);
    cr_assert(strstr(paw_last_error(), "weight_map"), "%s", paw_last_error());
    unlink(ip);
    free(ip);
    free(p);
    free(ts);
    st_close(&st);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
    free(dir);
}

Test(model, bad_token_ids_are_refused) {
    Qwen3 m;
    cr_assert_eq(qwen3_load(&m, FIX "tiny-gqa-tied", 1), 0);
    int ids[3] = {1, 256, 2};
    Qwen3Inputs in = {.ids = ids};
    cr_assert_eq(qwen3_forward(&m, &in, 1, 3), -1);
    cr_assert(strstr(paw_last_error(), "256"));
    int tg[3] = {1, 2, 999};
    ids[1] = 5;
    Qwen3Inputs in2 = {.ids = ids, .targets = tg};
    cr_assert_eq(qwen3_forward(&m, &in2, 1, 3), -1);
    cr_assert_eq(qwen3_backward(&m, 0), -1);  // no valid forward before it
    qwen3_free(&m);
}

// ---- the GPU parameter layout and ZeRO runs (model/qwen3_cuda_layout.h; plain C) ----------------

#include "model/qwen3_cuda_layout.h"
#include "train/comm.h"

// The oracle: CPU index k -> (tensor, layer, offset in the layer) from qwen3_param_info alone,
// then the device offset of that tensor's layer.
static size_t dev_of_cpu(const Qwen3Config *c, const Qwen3DevLayout *lay, size_t k, int *group) {
    for (int i = 0; i < QWEN3_NUM_PARAMS; i++) {
        Qwen3ParamInfo info = qwen3_param_info(c, i);
        if (k >= info.numel) {
            k -= info.numel;
            continue;
        }
        size_t per = info.numel / (info.per_layer ? (size_t)c->num_layers : 1);
        *group = qwen3_dev_group(i);
        return qwen3_dev_offset(lay, i, (int)(k / per)) + k % per;
    }
    cr_assert_fail("CPU index past the end");
    return 0;
}

static int by_dev(const void *a, const void *b) {
    size_t x = ((const Qwen3DevRun *)a)->dev, y = ((const Qwen3DevRun *)b)->dev;
    return x < y ? -1 : x > y;
}

// Runs of [lo, hi): they tile it in CPU order, and every element (the ends of each run and a
// few inside) sits where the oracle puts it, in the run's group, on one side of split.
static void check_runs(const Qwen3Config *c, const Qwen3DevLayout *lay, size_t lo, size_t hi, Qwen3DevRun *runs,
                       int n) {
    size_t at = lo;
    for (int r = 0; r < n; r++) {
        cr_assert_eq(runs[r].cpu, at, "run %d starts at %zu, expected %zu", r, runs[r].cpu, at);
        cr_assert_gt(runs[r].n, 0);
        size_t probes[5] = {0, runs[r].n - 1, runs[r].n / 2, runs[r].n / 3, (runs[r].n * 7) / 9};
        for (int p = 0; p < 5; p++) {
            int g = -1;
            size_t d = dev_of_cpu(c, lay, runs[r].cpu + probes[p], &g);
            cr_assert_eq(d, runs[r].dev + probes[p], "run %d, element %zu: device offset %zu, oracle %zu", r, probes[p],
                         runs[r].dev + probes[p], d);
            cr_assert_eq(g, runs[r].group);
        }
        int g = runs[r].group;
        cr_assert(runs[r].dev >= lay->base[g] && runs[r].dev + runs[r].n <= lay->base[g] + lay->extent[g]);
        cr_assert(runs[r].dev + runs[r].n <= lay->split || runs[r].dev >= lay->split, "run %d straddles split", r);
        at += runs[r].n;
    }
    cr_assert_eq(at, hi, "runs end at %zu, expected %zu", at, hi);
}

static size_t overlap(size_t a, size_t an, size_t b, size_t bn) {
    size_t lo = a > b ? a : b, hi = a + an < b + bn ? a + an : b + bn;
    return lo < hi ? hi - lo : 0;
}

// The backward's gradient reports (what the GPU trainer starts its sums from): over all reports
// the slices are disjoint and cover every parameter's device range once, padding never; and the
// parts of the slices that fall in each ZeRO rank's runs (what the trainer reduces to the run's
// owner) add up to each run exactly, for 1-8 ranks.
static void report_case(const Qwen3DevLayout *lay) {
    Qwen3DevSlice *sl = malloc(sizeof *sl * 8 * (lay->L + 2));
    int ns = 0;
    for (int rep = QWEN3_GRADS_EMBED; rep < (int)lay->L; rep++) {
        int k = qwen3_dev_report_slices(lay, rep, sl + ns);
        cr_assert(k >= 1 && k <= 8, "report %d: %d slices", rep, k);
        for (int i = ns; i < ns + k; i++)
            cr_assert(sl[i].dev >= lay->base[sl[i].group] &&
                          sl[i].dev + sl[i].n <= lay->base[sl[i].group] + lay->extent[sl[i].group],
                      "report %d: a slice outside its group", rep);
        ns += k;
    }
    cr_assert_eq(qwen3_dev_report_slices(lay, (int)lay->L, sl + ns), 0, "no report past the last layer");
    size_t covered = 0;
    for (int i = 0; i < ns; i++) {
        covered += sl[i].n;
        for (int j = 0; j < i; j++) cr_assert_eq(overlap(sl[i].dev, sl[i].n, sl[j].dev, sl[j].n), 0, "slices overlap");
    }
    cr_assert_eq(covered, lay->cpu_total, "the reports cover %zu elements, the model has %zu", covered, lay->cpu_total);
    for (int world = 1; world <= 8; world++) {
        size_t reduced = 0;
        for (int rank = 0; rank < world; rank++) {
            size_t lo = paw_shard_begin(lay->cpu_total, world, rank), hi = paw_shard_begin(lay->cpu_total, world, rank + 1);
            int n = qwen3_dev_runs(lay, lo, hi, NULL, 0);
            Qwen3DevRun *runs = malloc(sizeof *runs * (size_t)(n + 1));
            qwen3_dev_runs(lay, lo, hi, runs, n);
            for (int r = 0; r < n; r++) {
                size_t got = 0;
                for (int i = 0; i < ns; i++) got += overlap(sl[i].dev, sl[i].n, runs[r].dev, runs[r].n);
                cr_assert_eq(got, runs[r].n, "world %d rank %d run %d: reports reach %zu of its %zu elements", world,
                             rank, r, got, runs[r].n);
                reduced += got;
            }
            free(runs);
        }
        cr_assert_eq(reduced, lay->cpu_total, "world %d: %zu of %zu elements reduced", world, reduced, lay->cpu_total);
    }
    free(sl);
}

static void layout_case(const char *shape, int untie) {
    Qwen3Config c;
    cr_assert_eq(qwen3_config_load(&c, shape), 0, "%s", paw_last_error());
    if (untie) c.tie_word_embeddings = 0;
    Qwen3DevLayout lay;
    qwen3_dev_layout(&lay, &c);
    size_t total = 0;
    for (int i = 0; i < QWEN3_NUM_PARAMS; i++) total += qwen3_param_info(&c, i).numel;
    cr_assert_eq(lay.cpu_total, total);
    // The whole model: the runs cover it, and no two device ranges overlap.
    int n = qwen3_dev_runs(&lay, 0, total, NULL, 0);
    cr_assert_gt(n, 0);
    Qwen3DevRun *runs = malloc(sizeof *runs * (size_t)n);
    cr_assert_eq(qwen3_dev_runs(&lay, 0, total, runs, n), n);
    check_runs(&c, &lay, 0, total, runs, n);
    qsort(runs, (size_t)n, sizeof *runs, by_dev);
    for (int r = 1; r < n; r++) cr_assert_leq(runs[r - 1].dev + runs[r - 1].n, runs[r].dev, "device ranges overlap");
    cr_assert_leq(runs[n - 1].dev + runs[n - 1].n, lay.total);
    free(runs);
    // ZeRO shards of 1..8 ranks (the balanced split of the checkpoints): each rank's runs tile its
    // block; a too small cap still reports the full count.
    for (int world = 1; world <= 8; world++)
        for (int rank = 0; rank < world; rank++) {
            size_t lo = paw_shard_begin(total, world, rank), hi = paw_shard_begin(total, world, rank + 1);
            Qwen3DevRun few[2];
            int k = qwen3_dev_runs(&lay, lo, hi, few, 2);
            Qwen3DevRun *rr = malloc(sizeof *rr * (size_t)(k + 1));
            cr_assert_eq(qwen3_dev_runs(&lay, lo, hi, rr, k), k);
            check_runs(&c, &lay, lo, hi, rr, k);
            free(rr);
        }
    cr_assert_eq(qwen3_dev_runs(&lay, 5, 4, NULL, 0), -1);
    cr_assert_eq(qwen3_dev_runs(&lay, 0, total + 1, NULL, 0), -1);
    cr_assert_eq(qwen3_dev_runs(&lay, 7, 7, NULL, 0), 0);
    report_case(&lay);
}

Test(gpu_layout, zero_runs_map_every_cpu_element_to_its_device_offset) {
    layout_case("configs/tiny-compiler.json", 0);
    layout_case("configs/tiny-compiler.json", 1);
    layout_case("configs/qwen3-0.6b.json", 0);
    layout_case("configs/qwen3-4b.json", 1);
}
