// The GPU batch runner (see runner_cuda.h): the model side of interpreter/schedule.h's decoding
// loop. Needs the CUDA build and says so otherwise.
#include "interpreter/runner_cuda.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/progress.h"

#ifdef PAW_CUDA
#include "interpreter/decoder_cuda.h"
#include "model/qwen3_cuda.h"

typedef struct {
    const Qwen3Lora *host;  // the program's adapter (not owned), the key for deduplication
    paw_bf16 *mem;          // one device block holding all modules
    Qwen3CudaLora dev;      // views into mem: rank-padded, scale folded into B (scale 1)
} DevAdapter;

struct PawGpuRunner {
    Qwen3 *cpu;
    Qwen3Cuda *g;
    const PawTokenizer *tok;
    const PawVocabMap *vmap;
    int stop_id, batch;
    int nprog, cap_prog;
    PawRunner *progs;           // prompt building and decoding per program (no model work)
    const Qwen3Lora **prog_lora;
    int *prog_adapter;          // index into adapters, or -1
    int nad, cap_ad, rank;      // uploaded adapters, all at this (padded) rank
    DevAdapter *adapters;
    PawGpuDecoder *dec;         // the batch's rows and their adapters
    // Shared template prefixes: the keys and values of a program's text before the input, made
    // at its second job and kept until clear_programs, within prefix_budget bytes.
    Qwen3CudaPrefix *prog_prefix;  // n = 0: none (yet)
    int *prog_prefix_tried;        // 1: made, or not to be made (empty, over budget, not in a trimmed vocabulary)
    long *prog_jobs;               // jobs run per program so far (a filter's runs may hold one each)
    size_t prefix_bytes, prefix_budget;
};

int paw_gpu_available(void) { return paw_cuda_init(); }

PawGpuRunner *paw_gpu_runner_create(Qwen3 *model, const PawTokenizer *tok, const PawVocabMap *vmap, int stop_id,
                                    int batch) {
    if (batch < 1) {
        paw_error("gpu runner: batch %d, expected at least 1", batch);
        return NULL;
    }
    // Frozen, and recompute so that activations are held for one layer at a time (inference
    // never needs the others): prefill memory is then ~1/L of a training forward's.
    Qwen3Cuda *g = qwen3_cuda_create(model, 1, 1);
    if (!g) return NULL;
    PawGpuRunner *r = xcalloc(1, sizeof *r);
    r->cpu = model, r->g = g, r->tok = tok, r->vmap = vmap && vmap->n ? vmap : NULL;
    r->stop_id = stop_id, r->batch = batch;
    r->dec = paw_gpu_decoder_create(g, &model->cfg, batch);
    r->prefix_budget = (size_t)1 << 30;
    return r;
}

void paw_gpu_runner_set_prefix_budget(PawGpuRunner *r, size_t bytes) { r->prefix_budget = bytes; }

static void free_adapters(PawGpuRunner *r) {
    for (int i = 0; i < r->nad; i++) paw_cuda_free(r->adapters[i].mem);
    r->nad = 0;
}

void paw_gpu_runner_clear_programs(PawGpuRunner *r) {
    for (int p = 0; p < r->nprog; p++) paw_runner_free(&r->progs[p]), qwen3_cuda_prefix_free(&r->prog_prefix[p]);
    r->prefix_bytes = 0;
    r->nprog = 0;
    free_adapters(r);
    r->rank = 0;
}

void paw_gpu_runner_free(PawGpuRunner *r) {
    if (!r) return;
    paw_gpu_runner_clear_programs(r);
    paw_gpu_decoder_free(r->dec);
    free(r->progs), free(r->prog_lora), free(r->prog_adapter), free(r->adapters);
    free(r->prog_prefix), free(r->prog_prefix_tried), free(r->prog_jobs);
    qwen3_cuda_free(r->g);
    free(r);
}

int paw_gpu_runner_add_program(PawGpuRunner *r, const char *template_text, const Qwen3Lora *lora) {
    if (lora && lora->nb != 1)
        return paw_error("gpu runner: a program adapter holds %d adapters, expected 1", lora->nb);
    for (int m = 0; lora && m < LORA_NUM_MODULES; m++)
        if (lora->qA[m]) return paw_error("gpu runner: the adapter is held as Q8 blocks (CPU inference); it needs fp32");
    if (r->nprog == r->cap_prog) {
        r->cap_prog = r->cap_prog ? 2 * r->cap_prog : 8;
        r->progs = xrealloc(r->progs, sizeof(PawRunner) * (size_t)r->cap_prog);
        r->prog_lora = xrealloc(r->prog_lora, sizeof(Qwen3Lora *) * (size_t)r->cap_prog);
        r->prog_adapter = xrealloc(r->prog_adapter, sizeof(int) * (size_t)r->cap_prog);
        r->prog_prefix = xrealloc(r->prog_prefix, sizeof(Qwen3CudaPrefix) * (size_t)r->cap_prog);
        r->prog_prefix_tried = xrealloc(r->prog_prefix_tried, sizeof(int) * (size_t)r->cap_prog);
        r->prog_jobs = xrealloc(r->prog_jobs, sizeof(long) * (size_t)r->cap_prog);
    }
    memset(&r->prog_prefix[r->nprog], 0, sizeof(Qwen3CudaPrefix));
    r->prog_prefix_tried[r->nprog] = 0;
    r->prog_jobs[r->nprog] = 0;
    PawRunner *pr = &r->progs[r->nprog];
    // The CPU model is only consulted for its config (context length); no adapter: the GPU has it.
    if (paw_runner_init(pr, r->cpu, r->tok, r->vmap, r->stop_id, template_text, NULL) != 0) {
        paw_runner_free(pr);
        return -1;
    }
    r->prog_lora[r->nprog] = lora;
    r->prog_adapter[r->nprog] = -1;
    return r->nprog++;
}

// Uploads adapter a at rank R: A rows past its rank and B columns past it are zero, B carries
// the scale.
static void upload_adapter(PawGpuRunner *r, DevAdapter *d, int R) {
    const Qwen3Config *cfg = &r->cpu->cfg;
    const Qwen3Lora *a = d->host;
    const int L = cfg->num_layers, rk = a->rank;
    size_t off[2 * LORA_NUM_MODULES], total = 0, biggest = 0;
    for (int m = 0; m < LORA_NUM_MODULES; m++) {
        int din, dout;
        lora_module_dims(cfg, m, &din, &dout);
        size_t na = (size_t)L * R * din, nbb = (size_t)L * dout * R;
        off[2 * m] = total, total += (na + 127) / 128 * 128;  // 256-byte aligned pieces
        off[2 * m + 1] = total, total += (nbb + 127) / 128 * 128;
        if (na > biggest) biggest = na;
        if (nbb > biggest) biggest = nbb;
    }
    d->mem = paw_cuda_malloc(sizeof(paw_bf16) * total);
    float *h = xmalloc(sizeof(float) * biggest);
    memset(&d->dev, 0, sizeof d->dev);
    d->dev.rank = R, d->dev.nb = 1, d->dev.scale = 1.0f;
    for (int m = 0; m < LORA_NUM_MODULES; m++) {
        int din, dout;
        lora_module_dims(cfg, m, &din, &dout);
        size_t na = (size_t)L * R * din, nbb = (size_t)L * dout * R;
        memset(h, 0, sizeof(float) * na);
        for (int l = 0; l < L; l++)
            memcpy(h + (size_t)l * R * din, a->A[m] + (size_t)l * rk * din, sizeof(float) * (size_t)rk * din);
        paw_cuda_upload_bf16(d->mem + off[2 * m], h, na);
        memset(h, 0, sizeof(float) * nbb);
        for (int l = 0; l < L; l++)
            for (int o = 0; o < dout; o++)
                for (int j = 0; j < rk; j++)
                    h[((size_t)l * dout + o) * R + j] = a->scale * a->B[m][((size_t)l * dout + o) * rk + j];
        paw_cuda_upload_bf16(d->mem + off[2 * m + 1], h, nbb);
        d->dev.A[m] = d->mem + off[2 * m];
        d->dev.B[m] = d->mem + off[2 * m + 1];
    }
    free(h);
}

// Uploads the adapters of programs added since the last run; everything again when the common
// rank grows. Sizes the batch buffers.
static void sync_adapters(PawGpuRunner *r) {
    int R = r->rank;
    for (int p = 0; p < r->nprog; p++)
        if (r->prog_lora[p] && r->prog_lora[p]->rank > R) R = r->prog_lora[p]->rank;
    if (R != r->rank) {
        free_adapters(r);
        for (int p = 0; p < r->nprog; p++) r->prog_adapter[p] = -1;
        r->rank = R;
    }
    for (int p = 0; p < r->nprog; p++) {
        if (!r->prog_lora[p] || r->prog_adapter[p] >= 0) continue;
        int found = -1;
        for (int i = 0; i < r->nad && found < 0; i++)
            if (r->adapters[i].host == r->prog_lora[p]) found = i;
        if (found < 0) {
            if (r->nad == r->cap_ad) {
                r->cap_ad = r->cap_ad ? 2 * r->cap_ad : 8;
                r->adapters = xrealloc(r->adapters, sizeof(DevAdapter) * (size_t)r->cap_ad);
            }
            DevAdapter *d = &r->adapters[r->nad];
            d->host = r->prog_lora[p];
            upload_adapter(r, d, R);
            found = r->nad++;
        }
        r->prog_adapter[p] = found;
    }
}

void paw_gpu_runner_set_refill(PawGpuRunner *r, int on) { paw_gpu_decoder_set_refill(r->dec, on); }

// Makes program p's prefix: its template text before the input, in model ids, through the model
// with its adapter. A program whose prefix would not fit the budget, or does not map into a
// trimmed vocabulary, keeps recomputing it per row. Prefixes are a cache: one never takes more
// than an eighth of the device's free memory, which the batch's KV cache needs next.
static int make_prefix(PawGpuRunner *r, int p) {
    r->prog_prefix_tried[p] = 1;
    const PawRunner *pr = &r->progs[p];
    const int n = (int)pr->prefix_ids.n;
    const Qwen3Config *cfg = &r->cpu->cfg;
    const size_t bytes = (size_t)2 * cfg->num_layers * n * cfg->num_kv_heads * cfg->head_dim * sizeof(paw_bf16);
    if (n < 1 || r->prefix_bytes + bytes > r->prefix_budget || bytes > paw_cuda_free_device_bytes() / 8) return 0;
    int32_t *ids = xmalloc(sizeof(int32_t) * (size_t)n);
    memcpy(ids, pr->prefix_ids.ids, sizeof(int32_t) * (size_t)n);
    int rc = 0;
    if (!r->vmap || paw_vocab_map_to_model(r->vmap, ids, n) == 0) {
        const int a = r->prog_adapter[p];
        rc = qwen3_cuda_prefix_create(r->g, ids, n, a >= 0 ? &r->adapters[a].dev : NULL, &r->prog_prefix[p]);
        if (rc == 0) r->prefix_bytes += bytes;
    }
    free(ids);
    return rc;
}

// How many of a prompt's first tokens program p's prefix can stand for: the tokens the two share
// (the whole prompt is tokenized as one string, so the last prefix token may merge with the input),
// leaving at least one to prefill.
static int shared_tokens(const PawGpuRunner *r, int p, const PawIds *prompt) {
    const Qwen3CudaPrefix *pre = &r->prog_prefix[p];
    const PawRunner *pr = &r->progs[p];
    int keep = 0, limit = pre->n < (int)prompt->n - 1 ? pre->n : (int)prompt->n - 1;
    while (keep < limit) {
        int32_t id = pr->prefix_ids.ids[keep];
        if (r->vmap) paw_vocab_map_to_model(r->vmap, &id, 1);
        if (id != prompt->ids[keep]) break;
        keep++;
    }
    return keep;
}

int paw_gpu_runner_run(PawGpuRunner *r, const PawRunJob *jobs, int n, int max_new, char **outputs, char **errors,
                       PawRunStats *stats) {
    double t0 = paw_now();
    PawRunStats st = {0};
    for (int i = 0; i < n; i++) outputs[i] = errors[i] = NULL;
    if (max_new < 1) return paw_error("gpu runner: max_new %d, expected at least 1", max_new);
    PawIds *prompts = xcalloc((size_t)(n ? n : 1), sizeof(PawIds));
    int *lens = xmalloc(sizeof(int) * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) {
        lens[i] = -1;
        if (jobs[i].program < 0 || jobs[i].program >= r->nprog) {
            paw_error("job %d names program %d of %d", i, jobs[i].program, r->nprog);
            errors[i] = xstrdup(paw_last_error());
        } else if (paw_runner_prompt_ids(&r->progs[jobs[i].program], jobs[i].input, max_new, &prompts[i]) != 0) {
            errors[i] = xstrdup(paw_last_error());
        } else {
            lens[i] = (int)prompts[i].n;
        }
    }
    sync_adapters(r);
    int rc = 0;
    // A program's template prefix is computed once it has a second job, in this run or counting
    // the earlier ones (paw run as an interactive filter runs one line at a time).
    int *njobs = xcalloc((size_t)(r->nprog ? r->nprog : 1), sizeof(int));
    for (int i = 0; i < n; i++)
        if (lens[i] >= 0) njobs[jobs[i].program]++;
    for (int p = 0; p < r->nprog && rc == 0; p++) {
        if (njobs[p] > 0 && r->prog_jobs[p] + njobs[p] >= 2 && !r->prog_prefix_tried[p]) rc = make_prefix(r, p);
        r->prog_jobs[p] += njobs[p];
    }
    free(njobs);
    PawDecodeJob *dj = xcalloc((size_t)(n ? n : 1), sizeof(PawDecodeJob));
    int *rest = xmalloc(sizeof(int) * (size_t)(n ? n : 1));  // the tokens each job prefills
    for (int i = 0; i < n; i++) {
        rest[i] = lens[i];
        if (lens[i] < 0) continue;
        const int p = jobs[i].program, a = r->prog_adapter[p];
        const int keep = r->prog_prefix[p].n > 0 ? shared_tokens(r, p, &prompts[i]) : 0;
        dj[i] = (PawDecodeJob){prompts[i].ids, lens[i], a >= 0 ? &r->adapters[a].dev : NULL, 0,
                               keep > 0 ? &r->prog_prefix[p] : NULL, keep};
        rest[i] = lens[i] - keep;
    }
    int *order = xmalloc(sizeof(int) * (size_t)(n ? n : 1)), *starts = xmalloc(sizeof(int) * (size_t)(n + 1));
    paw_run_plan(rest, n, n, order, starts);  // longest prefill first
    free(rest);
    int kept = 0;
    for (int i = 0; i < n; i++) kept += lens[i] >= 0;
    int *out = xmalloc(sizeof(int) * (size_t)(n ? n : 1) * max_new), *counts = xcalloc((size_t)(n ? n : 1), sizeof(int));
    PawDecodeStats ds = {0};
    if (rc == 0) rc = paw_gpu_decoder_run(r->dec, dj, order, kept, r->rank, max_new, r->stop_id, out, counts, &ds);
    for (int k = 0; k < kept && rc == 0; k++) {
        int j = order[k], *o = out + (size_t)j * max_new, got = counts[j];
        st.tokens += got;
        if (got > 0 && o[got - 1] == r->stop_id) got--;
        rc = paw_runner_decode(&r->progs[jobs[j].program], o, got, &outputs[j]);
    }
    if (rc == 0) st.rows = kept;
    st.fills = ds.fills, st.steps = ds.steps, st.row_steps = ds.row_steps, st.idle_rows = ds.idle_rows;
    st.prefill_tokens = ds.prefill_tokens, st.prefix_tokens = ds.prefix_tokens;
    free(dj), free(out), free(counts);
    for (int i = 0; i < n; i++) paw_ids_free(&prompts[i]);
    free(prompts), free(lens), free(order), free(starts);
    st.seconds = paw_now() - t0;
    if (stats) *stats = st;
    return rc;
}

#else  // no CUDA in this build

int paw_gpu_available(void) { return paw_error("this binary was built without CUDA (rebuild where nvcc is present)"); }

PawGpuRunner *paw_gpu_runner_create(Qwen3 *model, const PawTokenizer *tok, const PawVocabMap *vmap, int stop_id,
                                    int batch) {
    (void)model, (void)tok, (void)vmap, (void)stop_id, (void)batch;
    paw_gpu_available();
    return NULL;
}

int paw_gpu_runner_add_program(PawGpuRunner *r, const char *template_text, const Qwen3Lora *lora) {
    (void)r, (void)template_text, (void)lora;
    return paw_gpu_available();
}

void paw_gpu_runner_clear_programs(PawGpuRunner *r) { (void)r; }

void paw_gpu_runner_set_refill(PawGpuRunner *r, int on) { (void)r, (void)on; }

void paw_gpu_runner_set_prefix_budget(PawGpuRunner *r, size_t bytes) { (void)r, (void)bytes; }

int paw_gpu_runner_run(PawGpuRunner *r, const PawRunJob *jobs, int n, int max_new, char **outputs, char **errors,
                       PawRunStats *stats) {
    (void)r, (void)jobs, (void)max_new, (void)stats;
    for (int i = 0; i < n; i++) outputs[i] = errors[i] = NULL;
    return paw_gpu_available();
}

void paw_gpu_runner_free(PawGpuRunner *r) { (void)r; }

#endif
