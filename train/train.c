#include "train/train.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "common/args.h"
#include "common/error.h"
#include "common/fileio.h"
#include "common/json.h"
#include "common/progress.h"
#include "common/sha256.h"
#include "data/loader.h"
#include "data/tokenizer.h"
#include "data/vocab_map.h"
#include "interpreter/runner.h"
#include "kernels/adamw.h"
#include "model/safetensors.h"
#include "train/checkpoint.h"
#include "train/comm.h"
#include "train/config.h"
#include "train/grad_sync.h"
#include "train/train_gpu.h"
#include "train/paw_step.h"

typedef struct {
    TrainConfig cfg;
    int pretrain;
    PawModel pm;       // mode paw
    Qwen3 lm;          // mode pretrain
    Qwen3 *interp;     // the model that generates (pm.interp or lm)
    PawVocabMap vmap;  // n == 0: no trimmed vocabulary
    PawTokenizer *tok;
    int stop_id;       // model id of <|im_end|>
    PawDataset *train_ds, *val_ds;
    PawLoader *loader;
    PawLoaderConfig loader_cfg;
    PawComm *comm;     // never NULL in cmd_train; rank 0 of 1 unless launched by mpirun
    TrainParam params[3];
    int nparams;
    GradSync gsync;    // overlapped reduction (overlap_comm under mpirun)
    int overlap;
#ifdef PAW_CUDA
    PawStepCuda *gpu;  // device "cuda": the step and the optimizer run here; params[] are the host copy
    Qwen3Cuda *gpu_lm; // device "cuda", mode pretrain: the model trained on the GPU
    float *d_norm_sq;  // its squared gradient norm (device)
#endif
    PawComm *gcomm;    // device "cuda" under mpirun: sums the device gradients (NCCL, or comm itself
                       // through host buffers); host-side collectives stay on comm
    int gpu_overlap;   // the device sums start during the backward (NCCL, overlap_comm)
    int gpu_mpi_staged; // "gpu_comm": "mpi": sums go through host memory
    float *stage;       // that host buffer (at most STAGE_FLOATS)
    int gpu_comm_rc;   // the first failure of a sum started from a report
#ifdef PAW_CUDA
    // ZeRO-1 on the GPU ("zero": 1 under mpirun): every rank's runs of every trainable group, in
    // one order that all ranks share, and the rank that owns (updates) each
    Qwen3CudaRun *zruns;
    int *zowner, nzruns;
#endif
    int gpu_reports;   // reports made by this step's backward (none when its last micro-batch was empty)
    FILE *log;
    int log_failed;  // a write to the log failed (said once; training goes on)
    int stopped_by;  // the signal (SIGINT, SIGTERM) that stopped the run at a saved step, -1 another
                     // rank's, else 0
    long step;
    double tokens_seen, elapsed;
    // converted batch storage
    int32_t *tok_buf;
    size_t tok_cap;
    PawStepExample *ex;
    int ex_cap;
    int *ids, *targets;
    float *weights;
    size_t lm_cap;
} Trainer;

// ---- batches ------------------------------------------------------------------------------------

// Copies n examples' segments into model ids (through the trimmed vocabulary when there is one):
// compiler = seg0 + seg1, interpreter prompt = seg2, target = seg3.
static int convert(Trainer *tr, const PawExample *src, int n) {
    size_t need = 0;
    for (int i = 0; i < n; i++)
        for (int s = 0; s < PAW_SEG_COUNT; s++) need += src[i].len[s];
    if (need > tr->tok_cap) {
        free(tr->tok_buf);
        tr->tok_cap = need * 2;
        tr->tok_buf = xmalloc(sizeof(int32_t) * tr->tok_cap);
    }
    if (n > tr->ex_cap) {
        free(tr->ex);
        tr->ex_cap = n;
        tr->ex = xmalloc(sizeof(PawStepExample) * (size_t)n);
    }
    int32_t *p = tr->tok_buf;
    for (int i = 0; i < n; i++) {
        PawStepExample *e = &tr->ex[i];
        int32_t *start = p;
        for (int s = 0; s < PAW_SEG_COUNT; s++)
            for (uint32_t k = 0; k < src[i].len[s]; k++) *p++ = (int32_t)src[i].seg[s][k];
        if (tr->vmap.n && paw_vocab_map_to_model(&tr->vmap, start, p - start) != 0)
            return paw_error_context("example %d of the batch", i);
        e->comp_ids = start;
        e->comp_len = (int)(src[i].len[0] + src[i].len[1]);
        e->interp_ids = start + e->comp_len;
        e->interp_len = (int)src[i].len[2];
        e->target_ids = e->interp_ids + e->interp_len;
        e->target_len = (int)src[i].len[3];
    }
    return 0;
}

// Language-model batch of the interpreter sequences: loss on the target (and the prompt when asked).
// on_grads_ready (or NULL) hears the backward's finished gradient groups.
static int lm_step(Trainer *tr, int n, int backward, float grad_scale, Qwen3GradsReadyFn on_grads_ready, void *ctx,
                   double *loss_sum, double *weight_sum, int *tokens) {
    int T = 0;
    for (int i = 0; i < n; i++)
        if (tr->ex[i].interp_len + tr->ex[i].target_len > T) T = tr->ex[i].interp_len + tr->ex[i].target_len;
    size_t N = (size_t)n * T;
    if (N > tr->lm_cap) {
        free(tr->ids), free(tr->targets), free(tr->weights);
        tr->ids = xmalloc(sizeof(int) * N);
        tr->targets = xmalloc(sizeof(int) * N);
        tr->weights = xmalloc(sizeof(float) * N);
        tr->lm_cap = N;
    }
    for (int i = 0; i < n; i++) {
        const PawStepExample *e = &tr->ex[i];
        int np = e->interp_len, len = np + e->target_len;
        for (int t = 0; t < T; t++) {
            size_t r = (size_t)i * T + t;
            tr->ids[r] = t < np ? e->interp_ids[t] : t < len ? e->target_ids[t - np] : 0;
        }
        for (int t = 0; t < T; t++) {
            size_t r = (size_t)i * T + t;
            int next = t + 1;
            int in_seq = next < len;
            tr->targets[r] = in_seq ? tr->ids[r + 1] : 0;
            tr->weights[r] = in_seq && (next >= np || tr->cfg.loss_on_prompt) ? 1.0f : 0.0f;
        }
    }
#ifdef PAW_CUDA
    if (tr->gpu_lm) {  // the same batch on the GPU; the loss gradient's scale is known up front
        double wsum = 0;
        for (size_t r = 0; r < N; r++) wsum += tr->weights[r];
        Qwen3CudaInputs gin;
        memset(&gin, 0, sizeof gin);
        gin.ids = tr->ids, gin.targets = tr->targets, gin.loss_weight = tr->weights;
        gin.backward = backward;
        gin.grad_scale = grad_scale;
        if (qwen3_cuda_forward(tr->gpu_lm, &gin, n, T) != 0) return -1;
        *loss_sum = (double)qwen3_cuda_loss(tr->gpu_lm) * wsum;
        *weight_sum = wsum;
        *tokens = n * T;
        Qwen3CudaBackwardArgs gargs = {NULL, NULL, on_grads_ready, ctx};
        return backward ? qwen3_cuda_backward_ex(tr->gpu_lm, &gargs) : 0;
    }
#endif
    Qwen3Inputs in = {.ids = tr->ids, .targets = tr->targets, .loss_weight = tr->weights,
                      .logits_mode = QWEN3_LOGITS_WEIGHTED};  // the LM head at the target positions only
    if (qwen3_forward(&tr->lm, &in, n, T) != 0) return -1;
    *loss_sum = tr->lm.loss_sum;
    *weight_sum = tr->lm.loss_weight_sum;
    *tokens = n * T;
    Qwen3BackwardArgs args = {.grad_scale = grad_scale, .on_grads_ready = on_grads_ready, .ctx = ctx};
    if (backward && qwen3_backward_ex(&tr->lm, &args) != 0) return -1;
    return 0;
}

// FLOPs of one forward+backward over these examples (for MFU).
static double step_flops(const Trainer *tr, int n) {
    int Tc = 0, Ti = 0;
    double rows = 0;  // the LM head's: the loss's weighted rows
    for (int i = 0; i < n; i++) {
        if (tr->ex[i].comp_len > Tc) Tc = tr->ex[i].comp_len;
        if (tr->ex[i].interp_len + tr->ex[i].target_len > Ti) Ti = tr->ex[i].interp_len + tr->ex[i].target_len;
        rows += tr->pretrain && tr->cfg.loss_on_prompt ? tr->ex[i].interp_len + tr->ex[i].target_len - 1
                                                        : tr->ex[i].target_len;
    }
    if (tr->pretrain) return 3.0 * qwen3_forward_flops(&tr->lm.cfg, n, Ti, rows);
    double comp = qwen3_forward_flops(&tr->pm.comp.model.cfg, n, Tc + tr->pm.comp.P, 0) * (tr->cfg.freeze_compiler ? 2 : 3);
    return comp + 2.0 * qwen3_forward_flops(&tr->pm.interp.cfg, n, Ti, rows);
}

// ---- evaluation ---------------------------------------------------------------------------------

// Generated model ids (the stop token, if reached, last) as text, stripped; out is overwritten
// with tokenizer ids. Caller frees; NULL + paw_error.
static char *tokens_text(Trainer *tr, int *out, int got) {
    if (got > 0 && out[got - 1] == tr->stop_id) got--;
    for (int i = 0; i < got; i++) out[i] = tr->vmap.n ? paw_vocab_map_to_tokenizer(&tr->vmap, out[i]) : out[i];
    size_t len;
    char *raw = paw_tokenizer_decode(tr->tok, out, (size_t)got, &len), *text = NULL;
    if (raw) {
        text = paw_strip(raw, len);
        free(raw);
    }
    return text;
}

// Greedy decode of one prompt (model ids) on the host, decoded to text and stripped. Caller frees.
static char *generate_text(Trainer *tr, const Qwen3Lora *lora, const int *prompt, int n) {
    int max_new = tr->cfg.max_new_tokens;
    int *out = xmalloc(sizeof(int) * (size_t)(max_new + 1));
    int got = qwen3_generate(tr->interp, lora, prompt, n, max_new, tr->stop_id, out);
    char *text = got >= 0 ? tokens_text(tr, out, got) : NULL;
    free(out);
    return text;
}

// The same on the host models, one example at a time (each with its own adapter in PAW mode).
static int host_eval_chunk(Trainer *tr, int n, double *loss_sum, double *wsum, char **texts) {
    Qwen3Lora *lora = NULL;
    if (tr->pretrain) {
        double ls, ws;
        int ntok;
        if (lm_step(tr, n, 0, 0, NULL, NULL, &ls, &ws, &ntok) != 0) return -1;
        *loss_sum += ls, *wsum += ws;
    } else {
        PawStepStats st;
        if (paw_forward(&tr->pm, tr->ex, n, &st) != 0) return -1;
        *loss_sum += st.loss_sum, *wsum += st.target_tokens;
        lora = &tr->pm.lora;
    }
    for (int j = 0; j < n; j++) {
        Qwen3Lora one;
        if (lora) mapper_lora_select(&tr->pm.mapper.cfg, lora, j, &one);
        texts[j] = generate_text(tr, lora ? &one : NULL, tr->ex[j].interp_ids, tr->ex[j].interp_len);
        if (lora) mapper_lora_free(&one);
        if (!texts[j]) return -1;
    }
    return 0;
}

static int on_gpu(const Trainer *tr);

#ifdef PAW_CUDA
// Training on the GPU, evaluation runs there too (the host models would take minutes per example
// at full size): the loss of the first n examples of tr->ex, then each one's greedy output, all
// rows of the chunk decoded together (with its own adapter in PAW mode). texts[j] gets example
// j's stripped output (caller frees).
static int gpu_eval_chunk(Trainer *tr, int n, double *loss_sum, double *wsum, char **texts) {
    int max_new = tr->cfg.max_new_tokens, rc = 0;
    int *out = xmalloc(sizeof(int) * (size_t)n * (size_t)(max_new > 0 ? max_new : 1));
    int *counts = xcalloc((size_t)n, sizeof(int));
    if (tr->gpu) {
        PawStepStats st;
        rc = paw_step_cuda_forward(tr->gpu, tr->ex, n, &st);
        if (rc == 0) *loss_sum += st.loss_sum, *wsum += st.target_tokens;
        if (rc == 0) rc = paw_step_cuda_generate(tr->gpu, tr->ex, n, max_new, tr->stop_id, out, counts);
    } else {
        double ls, ws;
        int ntok, *ids = NULL, *lens = NULL, T = -1;
        rc = lm_step(tr, n, 0, 0, NULL, NULL, &ls, &ws, &ntok);
        if (rc == 0) *loss_sum += ls, *wsum += ws;
        if (rc == 0 && (T = paw_interp_prompts(tr->ex, n, &ids, &lens)) < 0) rc = -1;
        if (rc == 0) rc = qwen3_cuda_batch_set_lora(tr->gpu_lm, NULL);
        if (rc == 0) rc = qwen3_cuda_batch_generate(tr->gpu_lm, ids, lens, n, T, max_new, tr->stop_id, out, counts);
        free(ids), free(lens);
    }
    for (int j = 0; j < n && rc == 0; j++)
        if (!(texts[j] = tokens_text(tr, out + (size_t)j * max_new, counts[j]))) rc = -1;
    free(out), free(counts);
    return rc;
}
#endif

typedef struct {
    double loss;
    int em_hits, em_total;
} EvalResult;

// One example copied out of a dataset (views into shard blocks do not outlive the next read).
static int fetch_copy(Trainer *tr, PawDataset *ds, uint64_t i, int32_t **toks, PawStepExample *e, char **output) {
    PawExample v;
    if (paw_dataset_get(ds, i, &v) != 0) return -1;
    size_t n = 0;
    for (int s = 0; s < PAW_SEG_COUNT; s++) n += v.len[s];
    int32_t *p = *toks = xmalloc(sizeof(int32_t) * (n ? n : 1));
    for (int s = 0; s < PAW_SEG_COUNT; s++)
        for (uint32_t k = 0; k < v.len[s]; k++) *p++ = (int32_t)v.seg[s][k];
    *output = paw_strip(v.output, v.output_len);
    if (tr->vmap.n && paw_vocab_map_to_model(&tr->vmap, *toks, (int64_t)n) != 0)
        return paw_error_context("example %llu", (unsigned long long)i);
    e->comp_ids = *toks;
    e->comp_len = (int)(v.len[0] + v.len[1]);
    e->interp_ids = *toks + e->comp_len;
    e->interp_len = (int)v.len[2];
    e->target_ids = e->interp_ids + e->interp_len;
    e->target_len = (int)v.len[3];
    return 0;
}

// A chunk's cost under the training loader's token budget (data/loader.c): the padded batch, or
// the sum of the sequences, so that evaluation never needs larger buffers than training did.
static int64_t chunk_cost(const Trainer *tr, int n, int64_t sum, int64_t maxc, int64_t maxi) {
    return tr->loader_cfg.mode == PAW_BUDGET_SUM ? sum : (int64_t)n * (maxc + maxi);
}

static int evaluate(Trainer *tr, PawDataset *ds, EvalResult *res) {
    memset(res, 0, sizeof *res);
    uint64_t total = paw_dataset_size(ds);
    int K = (uint64_t)tr->cfg.eval_examples < total ? tr->cfg.eval_examples : (int)total;
    int chunk = tr->cfg.max_batch_examples;
    // One slot more than a chunk: the example that did not fit waits there for the next chunk.
    int32_t **toks = xcalloc((size_t)chunk + 1, sizeof(int32_t *));
    char **outputs = xcalloc((size_t)chunk + 1, sizeof(char *));
    if (chunk + 1 > tr->ex_cap) {
        free(tr->ex);
        tr->ex_cap = chunk + 1;
        tr->ex = xmalloc(sizeof(PawStepExample) * (size_t)tr->ex_cap);
    }
    double loss_sum = 0, wsum = 0;
    int rc = 0, next = 0, waiting = 0;
    while (rc == 0 && (next < K || waiting)) {
        // Chunks as the loader cuts training batches: at most max_batch_examples, within
        // batch_tokens (a single example always fits).
        int n = 0;
        int64_t sum = 0, maxc = 0, maxi = 0;
        if (waiting) {
            toks[0] = toks[chunk], outputs[0] = outputs[chunk], tr->ex[0] = tr->ex[chunk];
            toks[chunk] = NULL, outputs[chunk] = NULL, waiting = 0;
        }
        for (;;) {
            int have = n == 0 && toks[0] != NULL;  // the example that waited
            if (!have && (n == chunk || next == K)) break;
            if (!have && (rc = fetch_copy(tr, ds, (uint64_t)next++, &toks[n], &tr->ex[n], &outputs[n])) != 0) break;
            int64_t c = tr->ex[n].comp_len, t = (int64_t)tr->ex[n].interp_len + tr->ex[n].target_len;
            int64_t nmaxc = c > maxc ? c : maxc, nmaxi = t > maxi ? t : maxi;
            if (n > 0 && chunk_cost(tr, n + 1, sum + c + t, nmaxc, nmaxi) > tr->cfg.batch_tokens) {
                toks[chunk] = toks[n], outputs[chunk] = outputs[n], tr->ex[chunk] = tr->ex[n];
                toks[n] = NULL, outputs[n] = NULL, waiting = 1;
                break;
            }
            sum += c + t, maxc = nmaxc, maxi = nmaxi, n++;
        }
        // The chunk's loss and outputs, on the device that trains or on the host models.
        char **texts = xcalloc((size_t)n + 1, sizeof(char *));
        int device = 0;
#ifdef PAW_CUDA
        device = on_gpu(tr);
        if (rc == 0 && device) rc = gpu_eval_chunk(tr, n, &loss_sum, &wsum, texts);
#endif
        if (rc == 0 && !device) rc = host_eval_chunk(tr, n, &loss_sum, &wsum, texts);
        for (int j = 0; j < n; j++) {
            if (rc == 0) {
                res->em_hits += strcmp(texts[j], outputs[j]) == 0;
                res->em_total++;
            }
            free(texts[j]), free(toks[j]), free(outputs[j]);
            toks[j] = NULL, outputs[j] = NULL;
        }
        free(texts);
    }
    for (int j = 0; j <= chunk; j++) free(toks[j]), free(outputs[j]);
    free(toks);
    free(outputs);
    res->loss = wsum > 0 ? loss_sum / wsum : 0;
    return rc;
}

// ---- logging ------------------------------------------------------------------------------------

static void log_json(Trainer *tr, cJSON *obj) {
    char *s = cJSON_PrintUnformatted(obj);
    if (s && tr->log) {
        fprintf(tr->log, "%s\n", s);
        if ((fflush(tr->log) != 0 || ferror(tr->log)) && !tr->log_failed) {
            tr->log_failed = 1;  // the checkpoints, not the log, are what a run cannot do without
            fprintf(stderr, "paw train: warning: %s/log.jsonl: cannot write (%s); training goes on without it\n",
                    tr->cfg.out_dir, strerror(errno));
        }
    }
    free(s);
}

// The log as the run resumes from step `keep` (-1: from nothing): lines of later steps, which the
// run will log again, and a line torn by a crash are dropped, so that each step is logged once.
static int trim_log(const char *path, long keep) {
    struct stat st;
    if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode)) return 0;  // none, or a link or device: left as it is
    size_t n;
    char *text = paw_read_file(path, &n);
    if (!text) return -1;
    char *out = xmalloc(n + 1);
    size_t k = 0;
    for (char *line = text, *nl; line < text + n; line = nl + 1) {
        nl = memchr(line, '\n', (size_t)(text + n - line));
        if (!nl) break;  // no newline: torn
        *nl = 0;
        cJSON *o = cJSON_Parse(line);
        const cJSON *step = o ? cJSON_GetObjectItem(o, "step") : NULL;
        if (cJSON_IsNumber(step) && step->valuedouble <= (double)keep) {
            memcpy(out + k, line, (size_t)(nl - line));
            k += (size_t)(nl - line);
            out[k++] = '\n';
        }
        cJSON_Delete(o);
    }
    int rc = paw_write_file_atomic(path, out, k);
    free(text), free(out);
    return rc;
}

static int run_eval(Trainer *tr, PawProgress *prog) {
    if (!tr->val_ds) return 0;
    EvalResult r;
    double t0 = paw_now();
    if (evaluate(tr, tr->val_ds, &r) != 0) return -1;
    double dt = paw_now() - t0;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "event", "eval");
    cJSON_AddNumberToObject(o, "step", (double)tr->step);
    cJSON_AddNumberToObject(o, "val_loss", r.loss);
    cJSON_AddNumberToObject(o, "val_exact_match", r.em_total ? (double)r.em_hits / r.em_total : 0);
    cJSON_AddNumberToObject(o, "val_examples", r.em_total);
    cJSON_AddNumberToObject(o, "seconds", dt);
    log_json(tr, o);
    cJSON_Delete(o);
    if (prog && prog->tty) fprintf(stderr, "\r\033[K");
    fprintf(stderr, "eval step %ld: val loss %.4f, exact match %d/%d (%.1f%%)%s, %.1fs\n", tr->step, r.loss, r.em_hits,
            r.em_total, r.em_total ? 100.0 * r.em_hits / r.em_total : 0.0,
            tr->step == 0 && !tr->pretrain ? " [no-LoRA baseline: fresh adapters are no-ops]" : "", dt);
    return 0;
}

// ---- checkpoints and export ---------------------------------------------------------------------

static char *state_json(Trainer *tr) {
    PawLoaderPos pos = paw_loader_tell_next(tr->loader);  // re-shardable at an epoch's end too
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "step", (double)tr->step);
    char buf[32];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)pos.epoch);
    cJSON_AddStringToObject(o, "loader_epoch", buf);
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)pos.step);
    cJSON_AddStringToObject(o, "loader_step", buf);
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)pos.fingerprint);
    cJSON_AddStringToObject(o, "loader_fingerprint", buf);
    cJSON_AddNumberToObject(o, "tokens_seen", tr->tokens_seen);
    cJSON_AddNumberToObject(o, "elapsed_s", tr->elapsed);
    cJSON_AddNumberToObject(o, "world_size", tr->comm->world);
    cJSON_AddNumberToObject(o, "zero", tr->cfg.zero);
    cJSON_AddNumberToObject(o, "loader_world_size", tr->comm->world);  // the fingerprint's world size
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    return s;
}

static int restore_state(Trainer *tr, const char *json, const char *where) {
    cJSON *o = cJSON_Parse(json);
    const cJSON *st = o ? cJSON_GetObjectItem(o, "step") : NULL;
    const cJSON *e = o ? cJSON_GetObjectItem(o, "loader_epoch") : NULL, *s = o ? cJSON_GetObjectItem(o, "loader_step") : NULL;
    const cJSON *f = o ? cJSON_GetObjectItem(o, "loader_fingerprint") : NULL;
    int rc = 0;
    if (!cJSON_IsNumber(st) || !cJSON_IsString(e) || !cJSON_IsString(s) || !cJSON_IsString(f)) {
        rc = paw_error("%s/state.json: malformed", where);
    } else if (!paw_json_is_int_in(st, 0, 1e15)) {
        rc = paw_error("%s/state.json: \"step\" is %g, not a step count", where, st->valuedouble);
    } else {
        tr->step = (long)st->valuedouble;
        PawLoaderPos pos = {strtoull(e->valuestring, NULL, 10), strtoull(s->valuestring, NULL, 10),
                            strtoull(f->valuestring, NULL, 10)};
        const cJSON *ws = cJSON_GetObjectItem(o, "world_size"), *z = cJSON_GetObjectItem(o, "zero");
        const cJSON *lw = cJSON_GetObjectItem(o, "loader_world_size");
        int world = cJSON_IsNumber(ws) ? ws->valueint : 1, zero = cJSON_IsNumber(z) ? z->valueint : 0;
        int loader_world = cJSON_IsNumber(lw) ? lw->valueint : world;
        if (world != tr->comm->world || zero != tr->cfg.zero)
            rc = paw_error("%s was written by %d rank(s) with zero %d; this run has %d rank(s) with zero %d: convert it "
                           "with `paw ckpt reshard %s OUT --world-size %d --zero %d`",
                           where, world, zero, tr->comm->world, tr->cfg.zero, where, tr->comm->world, tr->cfg.zero);
        else if (loader_world != world) {
            // A re-sharded checkpoint: its fingerprint was taken by a loader of loader_world ranks.
            PawLoaderConfig lc = tr->loader_cfg;
            lc.rank = 0, lc.world_size = loader_world;
            PawLoader *probe = loader_world >= 1 ? paw_loader_new(tr->train_ds, &lc) : NULL;
            if (!probe) rc = paw_error("%s: bad loader_world_size %d", where, loader_world);
            else if (paw_loader_tell(probe).fingerprint != pos.fingerprint)
                rc = paw_error("%s: the saved data position belongs to another loader configuration or dataset", where);
            else pos.fingerprint = paw_loader_tell(tr->loader).fingerprint;
            paw_loader_free(probe);
        }
        if (rc == 0) rc = paw_loader_seek(tr->loader, pos);
        const cJSON *ts = cJSON_GetObjectItem(o, "tokens_seen"), *el = cJSON_GetObjectItem(o, "elapsed_s");
        if (cJSON_IsNumber(ts)) tr->tokens_seen = ts->valuedouble;
        if (cJSON_IsNumber(el)) tr->elapsed = el->valuedouble;
    }
    cJSON_Delete(o);
    return rc;
}

static int copy_file(const char *src, const char *dst) {
    size_t n;
    char *d = paw_read_file(src, &n);
    if (!d) return -1;
    int rc = paw_write_file_atomic(dst, d, n);
    free(d);
    return rc;
}

// Puts the finished directory tmp in place of dir in one step (an earlier export is swapped out,
// then removed), so that no crash leaves an export of mixed old and new files.
static int replace_dir(const char *tmp, const char *dir, const char *parent) {
    int rc = paw_fsync_dir(tmp);
    if (rc == 0 && paw_file_exists(dir)) {
        if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dir, RENAME_EXCHANGE) != 0)
            return paw_error("%s: cannot swap in %s: %s", dir, tmp, strerror(errno));
        if ((rc = paw_fsync_dir(parent)) == 0) rc = paw_rm_rf(tmp);  // tmp now holds the old export
        return rc;
    }
    if (rc == 0 && rename(tmp, dir) != 0) rc = paw_error("%s: cannot rename to %s: %s", tmp, dir, strerror(errno));
    if (rc == 0) rc = paw_fsync_dir(parent);
    return rc;
}

static int export_models(Trainer *tr) {
    char *final = paw_path_join(tr->cfg.out_dir, "export"), *dir = paw_path_join(tr->cfg.out_dir, "export.tmp");
    int rc = paw_rm_rf(dir);  // a leftover of an interrupted export
    if (rc == 0) rc = paw_mkdir_p(dir);
    const Qwen3 *model = tr->pretrain ? &tr->lm : &tr->pm.comp.model;
    if (rc == 0) rc = qwen3_save(model, dir, tr->cfg.export_dtype);
    if (rc == 0 && tr->vmap.n) rc = paw_vocab_map_save(&tr->vmap, dir);
    // The tokenizer travels with the model, so commands given the directory need nothing else.
    const char *src_model = tr->pretrain ? tr->cfg.interpreter : tr->cfg.compiler;
    char *tk = paw_path_join(src_model, "tokenizer.json"), *tk_out = paw_path_join(dir, "tokenizer.json");
    if (rc == 0 && paw_file_exists(tk)) rc = copy_file(tk, tk_out);
    free(tk), free(tk_out);
    if (rc == 0 && !tr->pretrain) {
        char *mp = paw_path_join(dir, "mapper.safetensors");
        rc = paw_model_save_mapper(&tr->pm, mp);
        free(mp);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "format", "paw-compiler");
        cJSON_AddNumberToObject(o, "version", 1);
        cJSON_AddNumberToObject(o, "lora_rank", tr->cfg.lora_rank);
        cJSON_AddNumberToObject(o, "lora_alpha", tr->cfg.lora_alpha);
        cJSON_AddNumberToObject(o, "mapper_bases", tr->cfg.mapper_bases);
        cJSON_AddNumberToObject(o, "prefix_steps", tr->cfg.prefix_steps);
        cJSON_AddStringToObject(o, "interpreter", tr->cfg.interpreter);
        // The interpreter's config.json travels with the compiler: the mapper's shapes depend on it,
        // and programs record it so that a mismatched interpreter is refused.
        char *icp = paw_path_join(tr->cfg.interpreter, "config.json");
        char *itext = paw_read_file(icp, NULL);
        cJSON *icfg = itext ? cJSON_Parse(itext) : NULL;
        if (icfg) cJSON_AddItemToObject(o, "interpreter_config", icfg);
        else rc = paw_error("%s: cannot read the interpreter config for the export", icp);
        free(icp), free(itext);
        cJSON_AddNumberToObject(o, "trained_steps", (double)tr->step);
        char *s = cJSON_Print(o);
        cJSON_Delete(o);
        char *pj = paw_path_join(dir, "paw.json");
        if (rc == 0) rc = paw_write_file_atomic(pj, s, strlen(s));
        free(pj);
        free(s);
    }
    if (rc == 0) rc = replace_dir(dir, final, tr->cfg.out_dir);
    if (rc == 0) fprintf(stderr, "exported %s to %s\n", tr->pretrain ? "the trained model" : "the compiler", final);
    free(dir), free(final);
    return rc;
}

// ---- setup --------------------------------------------------------------------------------------

static int load_vocab_and_tokenizer(Trainer *tr) {
    const char *idir = tr->cfg.interpreter;
    int rc = paw_vocab_map_load(&tr->vmap, idir);
    if (rc < 0) return -1;
    if (!tr->pretrain) {
        PawVocabMap cm;
        int rc2 = paw_vocab_map_load(&cm, tr->cfg.compiler);
        if (rc2 < 0) return -1;
        int same = (rc == 1 && rc2 == 1) || (rc == 0 && rc2 == 0 && paw_vocab_map_equal(&tr->vmap, &cm));
        paw_vocab_map_free(&cm);
        if (!same)
            return paw_error("compiler %s and interpreter %s do not share one vocabulary (vocab_map.safetensors differs)",
                             tr->cfg.compiler, idir);
    }
    char *tk = paw_path_join(idir, "tokenizer.json");
    const char *path = paw_file_exists(tk) ? tk : paw_tokenizer_default_path();
    tr->tok = paw_tokenizer_load(path);
    free(tk);
    if (!tr->tok) return paw_error_context("tokenizer for evaluation");
    int32_t im_end = paw_tokenizer_token_id(tr->tok, "<|im_end|>");
    if (im_end < 0) return paw_error("tokenizer has no <|im_end|>");
    if (tr->vmap.n) {
        int32_t m = im_end;
        if (paw_vocab_map_to_model(&tr->vmap, &m, 1) != 0) return paw_error("<|im_end|> is not in the trimmed vocabulary");
        im_end = m;
    }
    tr->stop_id = im_end;
    return 0;
}

// Started by mpirun (an MPI communicator, even of one rank): the GPU trainer then sums its device
// gradients through gpu_comm.
static int under_mpirun(const Trainer *tr) { return strcmp(tr->comm->ops->name, "single") != 0; }


static int setup(Trainer *tr) {
    TrainConfig *c = &tr->cfg;
    tr->pretrain = c->mode == TRAIN_MODE_PRETRAIN;
    if (!strcmp(c->device, "cuda")) {
#ifndef PAW_CUDA
        return paw_error("device \"cuda\": this build has no CUDA (build with nvcc on PATH)");
#endif
#ifndef PAW_NCCL
        if (under_mpirun(tr) && !strcmp(c->gpu_comm, "nccl"))
            return paw_error("device \"cuda\" under mpirun: \"gpu_comm\": \"nccl\" needs a build with NCCL "
                             "(make NCCL=1); \"mpi\" sums them through MPI and host memory instead");
#endif
        if (under_mpirun(tr) && !strcmp(c->gpu_comm, "mpi") && c->bf16_grads)
            return paw_error("device \"cuda\" with \"gpu_comm\": \"mpi\": MPI cannot sum bf16 gradients; set "
                             "\"bf16_grads\": false or use \"nccl\"");
    }
    if (load_vocab_and_tokenizer(tr) != 0) return -1;
    tr->train_ds = paw_dataset_open(c->train_data);
    if (!tr->train_ds) return paw_error_context("train_data");
    if (c->val_data && !(tr->val_ds = paw_dataset_open(c->val_data))) return paw_error_context("val_data");
    if (tr->pretrain) {
        if (qwen3_load(&tr->lm, c->interpreter, 0) != 0) return -1;
        tr->interp = &tr->lm;
        tr->params[0] = (TrainParam){"model", tr->lm.params_memory, tr->lm.grads_memory, NULL, NULL, tr->lm.num_params, 1, 0, 0};
        tr->nparams = 1;
    } else {
        Qwen3 comp, interp;
        if (qwen3_load(&comp, c->compiler, c->freeze_compiler) != 0) return -1;
        if (qwen3_load(&interp, c->interpreter, 1) != 0) {
            qwen3_free(&comp);
            return -1;
        }
        if (comp.cfg.vocab_size != interp.cfg.vocab_size) {
            int a = comp.cfg.vocab_size, b = interp.cfg.vocab_size;
            qwen3_free(&comp), qwen3_free(&interp);
            return paw_error("compiler vocab_size %d differs from interpreter vocab_size %d", a, b);
        }
        if (paw_model_init(&tr->pm, &comp, &interp, c->prefix_steps, c->lora_rank, c->lora_alpha, c->mapper_bases,
                           c->freeze_compiler, (unsigned long long)c->seed) != 0)
            return -1;
        if (c->mapper_init && paw_model_load_mapper(&tr->pm, c->mapper_init) != 0) return -1;
        tr->interp = &tr->pm.interp;
        int k = 0;
        if (!c->freeze_compiler)
            tr->params[k++] = (TrainParam){"compiler", tr->pm.comp.model.params_memory, tr->pm.comp.model.grads_memory,
                                           NULL, NULL, tr->pm.comp.model.num_params, 1, 0, 0};
        size_t np = (size_t)tr->pm.comp.P * tr->pm.comp.model.cfg.hidden_size;
        tr->params[k++] = (TrainParam){"prefix", tr->pm.comp.prefix, tr->pm.comp.dprefix, NULL, NULL, np, c->mapper_lr_scale, 0, 0};
        tr->params[k++] = (TrainParam){"mapper", tr->pm.mapper.params_memory, tr->pm.mapper.grads_memory, NULL, NULL,
                                       tr->pm.mapper.num_params, c->mapper_lr_scale, 0, 0};
        tr->nparams = k;
    }
    // Checked here, not at the first evaluation (after a resume, that comes only after steps).
    if (c->eval_every > 0 && c->max_new_tokens >= tr->interp->cfg.max_position_embeddings)
        return paw_error("key \"max_new_tokens\" = %d leaves no room for a prompt in the interpreter's context of %d",
                         c->max_new_tokens, tr->interp->cfg.max_position_embeddings);
    // ZeRO-1: this rank keeps the moments of its block of every tensor only.
    for (int i = 0; i < tr->nparams; i++) {
        TrainParam *p = &tr->params[i];
        p->lo = c->zero ? paw_shard_begin(p->n, tr->comm->world, tr->comm->rank) : 0;
        p->hi = c->zero ? paw_shard_begin(p->n, tr->comm->world, tr->comm->rank + 1) : p->n;
        p->m = xcalloc(p->hi - p->lo + 1, sizeof(float));
        p->v = xcalloc(p->hi - p->lo + 1, sizeof(float));
    }
    // Buckets in the order the backward finishes them (see train/grad_sync.h).
    // (The GPU path sums its gradients after the backward: its overlap is not wired yet.)
    tr->overlap = c->overlap_comm && tr->comm->world > 1 && strcmp(c->device, "cuda") != 0;
    if (tr->overlap) {
        GradSync *gs = &tr->gsync;
        grad_sync_init(gs, tr->comm, tr->params, tr->nparams, c->zero);
        if (tr->pretrain) {
            grad_sync_add_qwen3(gs, 0, &tr->lm);
        } else {
            int k = 0;
            GradRange mapper = {tr->nparams - 1, 0, tr->params[tr->nparams - 1].n};
            grad_sync_add_bucket(gs, PAW_GRADS_MAPPER, &mapper, 1);
            if (!c->freeze_compiler) grad_sync_add_qwen3(gs, k++, &tr->pm.comp.model);
            GradRange prefix = {k, 0, tr->params[k].n};
            grad_sync_add_bucket(gs, COMPILER_GRADS_PREFIX, &prefix, 1);
        }
        if (grad_sync_check(gs) != 0) return -1;
    }
    PawLoaderConfig lc;
    paw_loader_config_default(&lc);
    lc.seed = (uint64_t)c->seed;
    lc.rank = tr->comm->rank;
    lc.world_size = tr->comm->world;
    lc.token_budget = c->batch_tokens;
    lc.max_examples = c->max_batch_examples;
    lc.sort_window = c->sort_window;
    tr->loader_cfg = lc;
    tr->loader = paw_loader_new(tr->train_ds, &lc);
    if (!tr->loader) return paw_error_context("train_data");
    return 0;
}

static void teardown(Trainer *tr) {
    if (tr->loader) paw_loader_free(tr->loader);
    if (tr->train_ds) paw_dataset_close(tr->train_ds);
    if (tr->val_ds) paw_dataset_close(tr->val_ds);
    if (tr->pretrain) qwen3_free(&tr->lm);
    else if (tr->interp) paw_model_free(&tr->pm);
    for (int i = 0; i < tr->nparams; i++) free(tr->params[i].m), free(tr->params[i].v);
    grad_sync_free(&tr->gsync);
    if (tr->gcomm && tr->gcomm != tr->comm) paw_comm_close(tr->gcomm);
#ifdef PAW_CUDA
    paw_step_cuda_free(tr->gpu);
    qwen3_cuda_free(tr->gpu_lm);
    paw_cuda_free(tr->d_norm_sq);
    free(tr->stage);
    free(tr->zruns), free(tr->zowner);
#endif
    if (tr->tok) paw_tokenizer_free(tr->tok);
    paw_vocab_map_free(&tr->vmap);
    if (tr->log) fclose(tr->log);
    free(tr->tok_buf), free(tr->ex), free(tr->ids), free(tr->targets), free(tr->weights);
    train_config_free(&tr->cfg);
}

static double cpu_peak_flops(void) {
    // Nominal fp32 peak of an AVX2+FMA core: 2 FMA units x 8 lanes x 2 FLOPs at 3 GHz.
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    return threads * 32.0 * 3.0e9;
}

// ---- the GPU path -------------------------------------------------------------------------------

// ZeRO-1 on the GPU: each rank keeps the fp32 master weights and AdamW moments of its block of
// every tensor (the block a sharded checkpoint stores), sums each run of gradients to the run's
// owner, updates its own runs, and receives every other run's new bf16 weights from its owner.
#ifdef PAW_CUDA
static int gpu_zero(const Trainer *tr) { return tr->cfg.zero && tr->comm->world > 1; }

// Every rank's runs of every group, in the same order on all ranks (group, owner, CPU order).
static int gpu_zero_plan(Trainer *tr) {
    int ngroups = tr->gpu_lm ? 1 : PAW_NUM_GROUPS;
    for (int pass = 0; pass < 2; pass++) {  // count, then fill
        int k = 0;
        for (int g = 0; g < ngroups; g++) {
            if (!tr->gpu_lm && paw_step_cuda_group_size(tr->gpu, g) == 0) continue;  // a frozen compiler
            for (int q = 0; q < tr->comm->world; q++) {
                Qwen3CudaRun *out = pass ? tr->zruns + k : NULL;
                int cap = pass ? tr->nzruns - k : 0, n;
                if (tr->gpu_lm) {
                    size_t total = tr->params[0].n;
                    n = qwen3_cuda_runs(tr->gpu_lm, paw_shard_begin(total, tr->comm->world, q),
                                        paw_shard_begin(total, tr->comm->world, q + 1), out, cap);
                } else {
                    n = paw_step_cuda_runs(tr->gpu, g, q, out, cap);
                }
                if (n < 0) return -1;
                for (int i = 0; pass && i < n; i++) tr->zowner[k + i] = q;
                k += n;
            }
        }
        if (!pass) {
            tr->nzruns = k;
            tr->zruns = xcalloc((size_t)k + 1, sizeof(Qwen3CudaRun));
            tr->zowner = xcalloc((size_t)k + 1, sizeof(int));
        }
    }
    return 0;
}
#endif

// Device "cuda": the PAW step moves to the GPU with the host tensors' current values (weights and,
// after a resume, the AdamW moments).
static int gpu_start(Trainer *tr, int with_moments) {
#ifdef PAW_CUDA
    if (strcmp(tr->cfg.device, "cuda") != 0) return 0;
    if (tr->pretrain) {
        // The whole model trains: fp32 master weights from the host's fp32 values, and after a
        // resume the checkpoint's moments (one tensor group, "model", in the CPU layout).
        tr->gpu_lm = qwen3_cuda_create(&tr->lm, 0, tr->cfg.recompute);
        if (!tr->gpu_lm) return -1;
        if (tr->cfg.bf16_grads && qwen3_cuda_use_bf16_grads(tr->gpu_lm) != 0) return -1;
        if (tr->cfg.recompute && qwen3_cuda_set_recompute_keep(tr->gpu_lm, tr->cfg.recompute_keep) != 0) return -1;
        // Under ZeRO-1 sharded first, so that the state is only ever made for this rank's block.
        if (gpu_zero(tr) && qwen3_cuda_shard_optimizer(tr->gpu_lm, tr->params[0].lo, tr->params[0].hi) != 0) return -1;
        // After a resume the bf16 weights are rounded as the checkpoint's last update rounded them.
        if (qwen3_cuda_set_adam_step(tr->gpu_lm, with_moments ? (int)tr->step : 0) != 0 ||
            qwen3_cuda_set_adam_state(tr->gpu_lm, 0, tr->params[0].p) != 0)
            return -1;
        if (with_moments && (qwen3_cuda_set_adam_state(tr->gpu_lm, 1, tr->params[0].m) != 0 ||
                             qwen3_cuda_set_adam_state(tr->gpu_lm, 2, tr->params[0].v) != 0))
            return -1;
        tr->d_norm_sq = paw_cuda_malloc(sizeof(float));
    } else {
        int world = gpu_zero(tr) ? tr->comm->world : 1;
        tr->gpu = paw_step_cuda_create(&tr->pm, tr->cfg.recompute, world > 1 ? tr->comm->rank : 0, world);
        if (!tr->gpu) return -1;
        if (tr->cfg.bf16_grads && paw_step_cuda_use_bf16_grads(tr->gpu) != 0) return -1;
        if (tr->cfg.recompute && paw_step_cuda_set_recompute_keep(tr->gpu, tr->cfg.recompute_keep,
                                                                  tr->cfg.recompute_keep_interpreter) != 0)
            return -1;
        if (with_moments && train_gpu_upload(tr->gpu, tr->params, tr->nparams, (int)tr->step) != 0) return -1;
    }
    if (gpu_zero(tr) && gpu_zero_plan(tr) != 0) return -1;
    if (under_mpirun(tr)) {  // one rank too: `mpirun -np 1` measures what the GPU sums cost
#ifdef PAW_NCCL
        if (!strcmp(tr->cfg.gpu_comm, "nccl")) tr->gcomm = paw_comm_nccl_open(tr->comm);
#endif
        if (!strcmp(tr->cfg.gpu_comm, "mpi")) {
            // Through a host buffer, even on a CUDA-aware MPI: the communicator's non-blocking
            // collectives (what its watchdog polls) do not take device buffers in OpenMPI
            // (CUDA-aware support covers point-to-point and blocking collectives).
            tr->gcomm = tr->comm;
            tr->gpu_mpi_staged = 1;
        }
        if (!tr->gcomm) return -1;
        // Overlap needs the communicator's own stream (NCCL); MPI on device memory is blocking here.
        tr->gpu_overlap = tr->cfg.overlap_comm && tr->gcomm != tr->comm;
    }
#else
    (void)tr, (void)with_moments;
#endif
    return 0;
}

// Training on the GPU, the device holds every gradient: the host's gradient buffers of the big
// models (16 GB for a 4B compiler; checkpoints, evaluation and export read weights only) go back.
// Not for `paw grad`, which downloads the gradients into them. The host models are marked frozen
// afterwards, so this must come after every GPU model is made (they take "trained" from that flag).
static void release_host_grads(Trainer *tr) {
#ifdef PAW_CUDA
    if (!tr->gpu && !tr->gpu_lm) return;
    for (int i = 0; i < tr->nparams; i++)
        if (!strcmp(tr->params[i].name, "compiler") || !strcmp(tr->params[i].name, "model")) tr->params[i].g = NULL;
    if (tr->pretrain) qwen3_set_frozen(&tr->lm, 1);
    else if (!tr->cfg.freeze_compiler) qwen3_set_frozen(&tr->pm.comp.model, 1);
#else
    (void)tr;
#endif
}

static int on_gpu(const Trainer *tr) {
#ifdef PAW_CUDA
    return tr->gpu != NULL || tr->gpu_lm != NULL;
#else
    (void)tr;
    return 0;
#endif
}

// Device state -> host tensors, before a checkpoint or the export (evaluation runs on the device).
// Under ZeRO-1 each rank's fp32 master covers its block only: the host copies are then completed
// from the other ranks (every rank calls this at the same point of the loop).
static int gpu_to_host(Trainer *tr, int with_moments) {
#ifdef PAW_CUDA
    if (tr->gpu) {
        if (train_gpu_download(tr->gpu, tr->params, tr->nparams, with_moments) != 0) return -1;
    } else if (tr->gpu_lm) {
        TrainParam *p = &tr->params[0];
        if (qwen3_cuda_get_adam_state(tr->gpu_lm, 0, p->p) != 0) return -1;
        if (with_moments && (qwen3_cuda_get_adam_state(tr->gpu_lm, 1, p->m) != 0 ||
                             qwen3_cuda_get_adam_state(tr->gpu_lm, 2, p->v) != 0))
            return -1;
    } else {
        return 0;
    }
    if (!gpu_zero(tr)) return 0;
    size_t *counts = xmalloc(sizeof(size_t) * (size_t)tr->comm->world);
    int rc = 0;
    for (int i = 0; i < tr->nparams && rc == 0; i++) {
        paw_shard_counts(tr->params[i].n, tr->comm->world, counts);
        rc = paw_allgather_f32(tr->comm, tr->params[i].p, counts);
    }
    free(counts);
    return rc;
#else
    (void)tr, (void)with_moments;
#endif
    return 0;
}

#ifdef PAW_CUDA
// A finished group's device gradients start their sum across GPUs on the communicator's stream,
// behind the kernels queued so far; the backward goes on meanwhile (the last micro-batch only).
static void gpu_on_grads_ready(void *ctx, int report) {
    Trainer *tr = ctx;
    tr->gpu_reports++;
    Qwen3CudaGradSlice sl[8];
    int n = tr->gpu_lm ? qwen3_cuda_group_grads(tr->gpu_lm, report, sl) : paw_step_cuda_report_grads(tr->gpu, report, sl);
    if (tr->gpu_comm_rc != 0) return;
    if (!gpu_zero(tr)) {
        tr->gpu_comm_rc = train_gpu_isum_slices(tr->gcomm, sl, n);
        return;
    }
    // ZeRO-1: the parts of each slice that fall in a run go to the run's owner, in one group.
    if (paw_comm_group_begin(tr->gcomm) != 0) {
        tr->gpu_comm_rc = -1;
        return;
    }
    for (int i = 0; i < n && tr->gpu_comm_rc == 0; i++) {
        size_t es = sl[i].bf16 ? 2 : 4;
        uintptr_t a = (uintptr_t)sl[i].ptr, b = a + sl[i].n * es;
        for (int k = 0; k < tr->nzruns && tr->gpu_comm_rc == 0; k++) {
            const Qwen3CudaRun *r = &tr->zruns[k];
            if (r->grad_bf16 != sl[i].bf16) continue;
            uintptr_t ra = (uintptr_t)r->grad, rb = ra + r->n * es, lo = a > ra ? a : ra, hi = b < rb ? b : rb;
            if (lo < hi) tr->gpu_comm_rc = paw_ireduce(tr->gcomm, (void *)lo, (hi - lo) / es, sl[i].bf16, tr->zowner[k]);
        }
    }
    if (paw_comm_group_end(tr->gcomm) != 0 && tr->gpu_comm_rc == 0) tr->gpu_comm_rc = -1;
}
#endif

// last: the step's last micro-batch, whose backward leaves the final gradients.
static int step_forward_backward(Trainer *tr, int n, float grad_scale, PawStepStats *st, Qwen3GradsReadyFn hook,
                                 int last) {
#ifdef PAW_CUDA
    if (tr->gpu)
        return paw_step_cuda_forward_backward_ex(tr->gpu, tr->ex, n, grad_scale, st,
                                                 tr->gpu_overlap && last ? gpu_on_grads_ready : NULL, tr);
#else
    (void)last;
#endif
    return paw_forward_backward_ex(&tr->pm, tr->ex, n, grad_scale, st, hook, tr);
}

// Data parallelism on the GPU: every rank's gradient blocks (already divided by the global
// target-token count) are summed in place on the device, then every rank runs the same AdamW
// (same gradients, same stochastic-rounding seeds: the replicas stay identical).
#ifdef PAW_CUDA
#define STAGE_FLOATS ((size_t)1 << 26)  // 256 MiB of host buffer, reused chunk by chunk

// In-place sum of a device fp32 block: directly through NCCL, or through the MPI communicator
// chunk by chunk via a host buffer (download, sum, upload).
static int gpu_allreduce_f32(Trainer *tr, float *dev, size_t n) {
    if (!tr->gpu_mpi_staged) return paw_allreduce_f32(tr->gcomm, dev, n);
    if (!tr->stage) tr->stage = xmalloc(sizeof(float) * STAGE_FLOATS);
    for (size_t i = 0; i < n; i += STAGE_FLOATS) {
        size_t k = n - i < STAGE_FLOATS ? n - i : STAGE_FLOATS;
        paw_cuda_download(tr->stage, dev + i, sizeof(float) * k);
        if (paw_allreduce_f32(tr->gcomm, tr->stage, k) != 0) return -1;
        paw_cuda_upload(dev + i, tr->stage, sizeof(float) * k);
    }
    return 0;
}

// ZeRO-1: a run of gradients summed to its owner (in place there), and a run of new weights
// copied from its owner to every rank, directly or through the host buffer chunk by chunk.
static int gpu_reduce_to(Trainer *tr, void *dev, size_t n, int bf16, int root) {
    if (!tr->gpu_mpi_staged) return paw_ireduce(tr->gcomm, dev, n, bf16, root);
    if (!tr->stage) tr->stage = xmalloc(sizeof(float) * STAGE_FLOATS);
    for (size_t i = 0; i < n; i += STAGE_FLOATS) {  // fp32: bf16 gradients with MPI are refused at start
        size_t k = n - i < STAGE_FLOATS ? n - i : STAGE_FLOATS;
        paw_cuda_download(tr->stage, (float *)dev + i, sizeof(float) * k);
        if (paw_ireduce(tr->gcomm, tr->stage, k, 0, root) != 0 || paw_comm_wait_all(tr->gcomm) != 0) return -1;
        if (tr->comm->rank == root) paw_cuda_upload((float *)dev + i, tr->stage, sizeof(float) * k);
    }
    return 0;
}

static int gpu_bcast_from(Trainer *tr, void *dev, size_t bytes, int root) {
    if (!tr->gpu_mpi_staged) return paw_ibroadcast(tr->gcomm, dev, bytes, root);
    if (!tr->stage) tr->stage = xmalloc(sizeof(float) * STAGE_FLOATS);
    for (size_t i = 0; i < bytes; i += sizeof(float) * STAGE_FLOATS) {
        size_t k = bytes - i < sizeof(float) * STAGE_FLOATS ? bytes - i : sizeof(float) * STAGE_FLOATS;
        if (tr->comm->rank == root) paw_cuda_download(tr->stage, (char *)dev + i, k);
        if (paw_broadcast(tr->gcomm, tr->stage, k, root) != 0) return -1;
        if (tr->comm->rank != root) paw_cuda_upload((char *)dev + i, tr->stage, k);
    }
    return 0;
}

static int gpu_zero_reduce(Trainer *tr) {
    if (tr->gcomm == tr->comm) paw_cuda_sync();  // the MPI path copies device memory out: the backward must be done
    if (paw_comm_group_begin(tr->gcomm) != 0) return -1;
    int rc = 0;
    for (int k = 0; k < tr->nzruns && rc == 0; k++) {
        const Qwen3CudaRun *r = &tr->zruns[k];
        rc = gpu_reduce_to(tr, r->grad, r->n, r->grad_bf16, tr->zowner[k]);
    }
    if (paw_comm_group_end(tr->gcomm) != 0 || rc != 0) return -1;
    return paw_comm_wait_all(tr->gcomm);
}

static int gpu_zero_gather(Trainer *tr) {
    if (tr->gcomm == tr->comm) paw_cuda_sync();  // the update must be done before the MPI path copies the weights
    if (paw_comm_group_begin(tr->gcomm) != 0) return -1;
    int rc = 0;
    for (int k = 0; k < tr->nzruns && rc == 0; k++) {
        const Qwen3CudaRun *r = &tr->zruns[k];
        rc = gpu_bcast_from(tr, r->param, r->n * (r->param_bf16 ? 2 : 4), tr->zowner[k]);
    }
    if (paw_comm_group_end(tr->gcomm) != 0 || rc != 0) return -1;
    return paw_comm_wait_all(tr->gcomm);
}

static int gpu_sync_grads(Trainer *tr) {
    if (!tr->gcomm) return 0;
    if (tr->gcomm == tr->comm) paw_cuda_sync();  // the MPI path copies device memory out: the backward must be done
    for (int g = 0; g < (tr->gpu_lm ? 1 : PAW_NUM_GROUPS); g++) {
        float *f32;
        paw_bf16 *b16;
        size_t n32, n16;
        if (tr->gpu_lm) qwen3_cuda_grad_blocks(tr->gpu_lm, &f32, &n32, &b16, &n16);
        else if (paw_step_cuda_group_size(tr->gpu, g) == 0) continue;  // a frozen compiler
        else if (paw_step_cuda_grad_blocks(tr->gpu, g, &f32, &n32, &b16, &n16) != 0) return -1;
        if (n32 && gpu_allreduce_f32(tr, f32, n32) != 0) return -1;
        if (n16 && paw_allreduce_bf16(tr->gcomm, b16, n16) != 0) return -1;  // NCCL only (checked at start)
    }
    return 0;
}
#endif

// AdamW on the device over every trainable group with one global clipping norm.
static int gpu_update(Trainer *tr, float lr, double *gnorm) {
#ifdef PAW_CUDA
    const TrainConfig *c = &tr->cfg;
    if (tr->gpu_overlap) {  // started during the backward: wait for them (and for any failure)
        // A rank whose last micro-batch was empty ran no backward to report: it starts the same
        // sums now, in the same order, or the other ranks' sums would wait for it forever.
        if (tr->gpu_reports == 0 && tr->gpu_lm) {  // the model's reports, in the backward's order
            gpu_on_grads_ready(tr, QWEN3_GRADS_HEAD);
            for (int l = tr->lm.cfg.num_layers - 1; l >= 0; l--) gpu_on_grads_ready(tr, l);
            gpu_on_grads_ready(tr, QWEN3_GRADS_EMBED);
        } else if (tr->gpu_reports == 0) {
            paw_step_cuda_report_all(tr->gpu, gpu_on_grads_ready, tr);
        }
        tr->gpu_reports = 0;
        int rc = paw_comm_wait_all(tr->gcomm);
        if (tr->gpu_comm_rc != 0) return -1;
        if (rc != 0) return -1;
    } else if ((gpu_zero(tr) ? gpu_zero_reduce(tr) : gpu_sync_grads(tr)) != 0) {
        return -1;
    }
    // The squared norm (of this rank's shard under ZeRO-1, then added up over the ranks), checked
    // on the host before anything changes.
    double sq = 0;
    if (tr->gpu_lm) {
        float f = 0;
        paw_cuda_memset(tr->d_norm_sq, 0, sizeof(float));
        qwen3_cuda_grad_norm_sq(tr->gpu_lm, tr->d_norm_sq);
        paw_cuda_download(&f, tr->d_norm_sq, sizeof f);
        sq = f;
    } else if (paw_step_cuda_grad_norm_sq(tr->gpu, &sq) != 0) {
        return -1;
    }
    // Each rank clips with the same number: under ZeRO-1 the sum of the shards' norms; otherwise
    // rank 0's, since the same summed gradients give norms that differ in the last bits between
    // ranks (atomic adds in any order), and so would the replicas after a clipped update.
    if (gpu_zero(tr) ? paw_allreduce_f64(tr->comm, &sq, 1) != 0
                     : tr->comm->world > 1 && paw_broadcast(tr->comm, &sq, sizeof sq, 0) != 0)
        return -1;
    *gnorm = sqrt(sq);
    if (!isfinite(sq)) return 0;  // the loop stops with its message, the weights untouched
    if (tr->gpu_lm) {
        float f = (float)sq;
        paw_cuda_upload(tr->d_norm_sq, &f, sizeof f);
        Qwen3CudaAdamW o = {lr, c->beta1, c->beta2, c->eps, c->weight_decay, c->grad_clip};
        if (qwen3_cuda_adamw_apply(tr->gpu_lm, &o, (int)tr->step + 1, c->grad_clip > 0 ? tr->d_norm_sq : NULL) != 0)
            return -1;
    } else {
        PawStepCudaAdamW opt = {lr, {1.0f, c->mapper_lr_scale, c->mapper_lr_scale}, c->beta1, c->beta2, c->eps,
                                c->weight_decay, c->grad_clip};
        if (paw_step_cuda_adamw_apply(tr->gpu, &opt, (int)tr->step + 1, sq) != 0) return -1;
    }
    return gpu_zero(tr) ? gpu_zero_gather(tr) : 0;
#else
    (void)tr, (void)lr, (void)gnorm;
    return paw_error("no GPU in this build");
#endif
}

// ---- the loop -----------------------------------------------------------------------------------

// Ctrl-C or SIGTERM during training: the step under way ends, a checkpoint of it is saved, and
// the run stops (--resume continues it bit for bit). A second signal ends the process at once.
static volatile sig_atomic_t g_stop_signal;

static void on_stop_signal(int sig) {
    static const char msg[] = "\npaw train: stopping after this step, with a checkpoint (again to stop at once)\n";
    g_stop_signal = sig;
    signal(sig, SIG_DFL);
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
}

static const char *stop_reason(int sig) {
    return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a signal to another rank";
}

// Test hook: PAW_TEST_SIGNAL_AT_STEP=N sends this process SIGINT when step N has been taken (only
// rank PAW_TEST_KILL_RANK's, when that is set).
static void maybe_signal_at_step(const Trainer *tr, long step) {
    const char *e = getenv("PAW_TEST_SIGNAL_AT_STEP"), *r = getenv("PAW_TEST_KILL_RANK");
    if (e && atol(e) == step && (!r || atoi(r) == tr->comm->rank)) raise(SIGINT);
}

// Fault injection for the multi-process tests: PAW_TEST_KILL_STEP=K kills (SIGKILL) and
// PAW_TEST_HANG_STEP=K freezes the process at the start of step K, on rank PAW_TEST_KILL_RANK only
// when that is set. With PAW_TEST_FAIL_IN_BACKWARD=1 it happens instead in the middle of step K's
// overlapped reduction: when the last micro-batch's backward reports layer 0, after the buckets
// before it were started.
static void maybe_fail_at_step(const Trainer *tr, long step, int in_backward) {
    const char *r = getenv("PAW_TEST_KILL_RANK"), *k = getenv("PAW_TEST_KILL_STEP"), *h = getenv("PAW_TEST_HANG_STEP");
    const char *b = getenv("PAW_TEST_FAIL_IN_BACKWARD");
    if ((r && atoi(r) != tr->comm->rank) || (b && atoi(b) == 1) != in_backward) return;
    if (k && atol(k) == step) raise(SIGKILL);
    if (h && atol(h) == step)
        for (;;) pause();
}

// The backward's report of finished gradients (last micro-batch, overlap_comm): starts buckets.
static void on_grads_ready(void *ctx, int group) {
    Trainer *tr = ctx;
    if (group == 0) maybe_fail_at_step(tr, tr->step + 1, 1);
    grad_sync_ready(&tr->gsync, group);
}

// Work only rank 0 does (evaluation, export) keeps the others waiting in the next collective:
// that wait gets a longer, still finite, deadline.
static int wait_for_rank0(Trainer *tr) {
    if (tr->comm->world == 1) return 0;
    double t = tr->comm->timeout_s;
    tr->comm->timeout_s = 10 * t + 600;
    int rc = paw_barrier(tr->comm);
    tr->comm->timeout_s = t;
    return rc;
}

// Data parallelism: after the local backward every rank holds the gradient of its own examples,
// already divided by the GLOBAL target-token count, so their sum is the gradient of the whole
// step. Without ZeRO every rank sums all of it (allreduce) and runs the same AdamW on full copies.
// With ZeRO-1 each rank receives the sum of its block only (reduce-scatter), updates that block
// with its shard of the moments, and the blocks are then all-gathered into every rank's params.
// With overlap_comm the sums were already made during the backward (tr->gsync), the same way
// bucket by bucket. Returns the global gradient norm in *gnorm.
static int sync_and_update(Trainer *tr, float lr, double *gnorm) {
    TrainConfig *c = &tr->cfg;
    PawComm *comm = tr->comm;
    int sharded = c->zero && comm->world > 1;
    size_t *counts = xmalloc(sizeof(size_t) * (size_t)comm->world);
    int rc = 0;
    for (int i = 0; i < tr->nparams && rc == 0 && comm->world > 1 && !tr->overlap; i++) {
        TrainParam *p = &tr->params[i];
        if (sharded) {
            paw_shard_counts(p->n, comm->world, counts);
            rc = paw_reduce_scatter_f32(comm, p->g, p->g + p->lo, counts);
        } else {
            rc = paw_allreduce_f32(comm, p->g, p->n);
        }
    }
    double sq = 0;
    for (int i = 0; i < tr->nparams; i++) sq += sum_squares(tr->params[i].g + tr->params[i].lo, tr->params[i].hi - tr->params[i].lo);
    if (rc == 0 && sharded) rc = paw_allreduce_f64(comm, &sq, 1);
    *gnorm = sqrt(sq);
    if (rc == 0 && isfinite(*gnorm)) {
        float clip = (c->grad_clip > 0 && *gnorm > c->grad_clip) ? (float)(c->grad_clip / *gnorm) : 1.0f;
        for (int i = 0; i < tr->nparams && rc == 0; i++) {
            TrainParam *p = &tr->params[i];
            AdamWParams hp = {lr * p->lr_scale, c->beta1, c->beta2, c->eps, c->weight_decay};
            adamw_update(p->p + p->lo, p->g + p->lo, p->m, p->v, p->hi - p->lo, &hp, tr->step + 1, clip);
            if (sharded) {
                paw_shard_counts(p->n, comm->world, counts);
                rc = paw_allgather_f32(comm, p->p, counts);
            }
        }
    }
    free(counts);
    return rc;
}

static int train_loop(Trainer *tr) {
    TrainConfig *c = &tr->cfg;
    int accum = c->grad_accum;
    PawBatch *batches = xcalloc((size_t)accum, sizeof(PawBatch));
    // MFU against the configured peak, else the H100's dense bf16 989 TFLOP/s or the CPU's fp32 peak.
    double peak = c->peak_tflops > 0 ? c->peak_tflops * 1e12 : on_gpu(tr) ? 989e12 : cpu_peak_flops();
    PawProgress prog;
    memset(&prog, 0, sizeof prog);
    int rank0 = tr->comm->rank == 0;
    if (rank0) paw_progress_start_at(&prog, tr->pretrain ? "pretrain" : "train", c->steps, tr->step);
    int rc = 0;
    if (c->eval_every > 0 && tr->step == 0) {
        if (rank0) rc = run_eval(tr, &prog);
        if (rc == 0) rc = wait_for_rank0(tr);
    }
    double t_start = paw_now(), elapsed0 = tr->elapsed;
    long first_step = tr->step;
    g_stop_signal = 0;
    void (*old_int)(int) = signal(SIGINT, on_stop_signal), (*old_term)(int) = signal(SIGTERM, on_stop_signal);
    int stop = 0;
    while (rc == 0 && tr->step < c->steps && !stop) {
        maybe_fail_at_step(tr, tr->step + 1, 0);
        double t0 = paw_now();
        float lr = train_lr_at(c, (int)tr->step);
        // Fetch all micro-batches first: the loss is normalised by the target tokens of the whole step.
        double total_w = 0;
        for (int a = 0; a < accum && rc == 0; a++) {
            rc = paw_loader_next(tr->loader, &batches[a], 1);  // (timed in data_s below, with convert)
            for (int i = 0; rc == 0 && i < batches[a].n; i++)
                total_w += tr->pretrain && c->loss_on_prompt
                               ? paw_interp_len(batches[a].ex[i].len) - 1.0
                               : batches[a].ex[i].len[PAW_SEG_TARGET];
        }
        // Normalised by the target tokens of the whole step on every rank, so that the result does
        // not depend on how the examples fell across ranks.
        if (rc == 0 && tr->comm->world > 1) rc = paw_allreduce_f64(tr->comm, &total_w, 1);
        if (rc) break;
        float grad_scale = total_w > 0 ? (float)(1.0 / total_w) : 0.0f;
        double data_s = paw_now() - t0;  // host time spent on data: loading here, converting below
        if (on_gpu(tr)) {
#ifdef PAW_CUDA
            if (tr->gpu) paw_step_cuda_zero_grad(tr->gpu);
            else qwen3_cuda_zero_grad(tr->gpu_lm);
#endif
        } else {
            for (int i = 0; i < tr->nparams; i++) memset(tr->params[i].g, 0, sizeof(float) * tr->params[i].n);
            if (!tr->pretrain) paw_model_zero_grad(&tr->pm);
        }
        double loss_sum = 0, wsum = 0, flops = 0, tokens = 0;
        if (tr->overlap) grad_sync_begin(&tr->gsync);
        for (int a = 0; a < accum && rc == 0; a++) {
            int n = batches[a].n;
            if (n == 0) continue;
            double tc = paw_now();
            rc = convert(tr, batches[a].ex, n);
            data_s += paw_now() - tc;
            if (rc) break;
            flops += step_flops(tr, n);
            // Only the last micro-batch's backward leaves final gradients: it alone starts buckets.
            Qwen3GradsReadyFn hook = tr->overlap && a == accum - 1 ? on_grads_ready : NULL;
            if (tr->pretrain) {
                double ls, ws;
                int toks;
#ifdef PAW_CUDA
                if (tr->gpu_lm) hook = tr->gpu_overlap && a == accum - 1 ? gpu_on_grads_ready : NULL;
#endif
                rc = lm_step(tr, n, 1, grad_scale, hook, tr, &ls, &ws, &toks);
                loss_sum += ls, wsum += ws, tokens += toks;
            } else {
                PawStepStats st;
                rc = step_forward_backward(tr, n, grad_scale, &st, hook, a == accum - 1);
                loss_sum += st.loss_sum, wsum += st.target_tokens, tokens += st.comp_tokens + st.interp_tokens;
            }
        }
        if (rc) break;
        // Every bucket is started (the ones no report started, in the same order on every rank)
        // and completed here, before any other collective.
        if (tr->overlap && (rc = grad_sync_finish(&tr->gsync)) != 0) break;
        // A signal seen by any rank before this sum stops every rank after this same step.
        stop = g_stop_signal != 0;
        if (tr->comm->world > 1) {
            double sums[5] = {loss_sum, wsum, flops, tokens, stop ? 1.0 : 0.0};
            if ((rc = paw_allreduce_f64(tr->comm, sums, 5)) != 0) break;
            loss_sum = sums[0], wsum = sums[1], flops = sums[2], tokens = sums[3], stop = sums[4] > 0;
        }
        double gnorm;
        if ((rc = on_gpu(tr) ? gpu_update(tr, lr, &gnorm) : sync_and_update(tr, lr, &gnorm)) != 0) break;
        if (!isfinite(gnorm)) {
            rc = paw_error("step %ld: gradient norm is not finite (loss %g); stopping before the weights are damaged",
                           tr->step, wsum > 0 ? loss_sum / wsum : 0);
            break;
        }
        tr->step++;
        maybe_signal_at_step(tr, tr->step);
        if (tr->comm->world == 1 && g_stop_signal) stop = 1;  // one process: no one to agree with
        double dt = paw_now() - t0;
        tr->tokens_seen += tokens;
        tr->elapsed = elapsed0 + (paw_now() - t_start);
        double loss = wsum > 0 ? loss_sum / wsum : 0;
        double per_step = (paw_now() - t_start) / (double)(tr->step - first_step);
        double eta = per_step * (double)(c->steps - tr->step);
        if (rank0 && (tr->step % c->log_every == 0 || tr->step == c->steps)) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "step", (double)tr->step);
            cJSON_AddNumberToObject(o, "loss", loss);
            cJSON_AddNumberToObject(o, "lr", lr);
            cJSON_AddNumberToObject(o, "grad_norm", gnorm);
            cJSON_AddNumberToObject(o, "tokens_per_s", tokens / dt);
            cJSON_AddNumberToObject(o, "mfu", flops / dt / peak / tr->comm->world);
            cJSON_AddNumberToObject(o, "step_s", dt);
            cJSON_AddNumberToObject(o, "data_s", data_s);  // of step_s: loading and converting the batch
            // Since the loop began, everything included (logging, evaluations, checkpoints).
            cJSON_AddNumberToObject(o, "wall_s", paw_now() - t_start);
            // How many buckets started during the backward (the rest waited for its end).
            if (tr->overlap) cJSON_AddNumberToObject(o, "buckets_overlapped", tr->gsync.started_by_reports);
            cJSON_AddNumberToObject(o, "eta_s", eta);
#ifdef PAW_CUDA
            // The device memory high-water mark so far (this process's allocations).
            if (on_gpu(tr)) cJSON_AddNumberToObject(o, "gpu_peak_gib", paw_cuda_peak_allocated_bytes() / 1073741824.0);
#endif
            log_json(tr, o);
            cJSON_Delete(o);
        }
        char extra[160];
        snprintf(extra, sizeof extra, "loss %.4f lr %.2e gnorm %.2f %.0f tok/s mfu %.1f%%", loss, lr, gnorm, tokens / dt,
                 100 * flops / dt / peak / tr->comm->world);
        if (rank0) {
            paw_progress_update(&prog, tr->step, extra);
            if (!prog.tty && (tr->step % (10L * c->log_every) == 0 || tr->step == c->steps))
                fprintf(stderr, "step %ld/%d %s eta %.0fs\n", tr->step, c->steps, extra, eta);
        }
        if (rc == 0 && ((c->save_every > 0 && tr->step % c->save_every == 0) || tr->step == c->steps || stop)) {
            double ts = paw_now();
            rc = gpu_to_host(tr, 1);
            char *s = state_json(tr);
            if (rc == 0) rc = ckpt_save(c->out_dir, tr->step, tr->params, tr->nparams, s, c->keep_last, tr->comm, c->zero);
            free(s);
            if (rc == 0 && rank0) {
                cJSON *o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "event", "checkpoint");
                cJSON_AddNumberToObject(o, "step", (double)tr->step);
                cJSON_AddNumberToObject(o, "save_s", paw_now() - ts);  // device copy + write + fsync + rename
                log_json(tr, o);
                cJSON_Delete(o);
                if (tr->log) fsync(fileno(tr->log));  // the log as far as the checkpoint survives with it
            }
        }
        // After the step's checkpoint, so that a failed evaluation (a bad validation shard, no
        // memory for decoding) loses no training; not when stopping, which was asked for now.
        if (rc == 0 && !stop && c->eval_every > 0 && (tr->step % c->eval_every == 0 || tr->step == c->steps)) {
            if (rank0) rc = run_eval(tr, &prog);  // on the device that trains (gpu_eval_chunk)
            if (rc == 0) rc = wait_for_rank0(tr);
        }
    }
    signal(SIGINT, old_int), signal(SIGTERM, old_term);
    if (rank0) paw_progress_finish(&prog, tr->step, NULL);
    if (rc == 0 && stop && tr->step < c->steps) {
        tr->stopped_by = g_stop_signal ? (int)g_stop_signal : -1;
        if (rank0) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "event", "stopped");
            cJSON_AddNumberToObject(o, "step", (double)tr->step);
            cJSON_AddStringToObject(o, "signal", tr->stopped_by > 0 ? stop_reason(tr->stopped_by) : "other_rank");
            log_json(tr, o);
            cJSON_Delete(o);
        }
    }
    for (int a = 0; a < accum; a++) paw_batch_free(&batches[a]);
    free(batches);
    return rc;
}

// What must be the same on every rank: the configuration (as parsed JSON, so formatting does
// not matter), the ZeRO setting, the datasets' sizes and the trainable tensors' sizes.
static void run_fingerprint(const Trainer *tr, const char *config_text, uint8_t digest[32]) {
    PawSha256 h;
    paw_sha256_init(&h);
    cJSON *o = cJSON_Parse(config_text);
    char *canon = o ? cJSON_PrintUnformatted(o) : NULL;
    if (canon) paw_sha256_update(&h, canon, strlen(canon));
    free(canon);
    cJSON_Delete(o);
    uint64_t fields[8] = {(uint64_t)tr->cfg.zero, paw_dataset_size(tr->train_ds), paw_dataset_tokens(tr->train_ds),
                          tr->val_ds ? paw_dataset_size(tr->val_ds) : 0, (uint64_t)tr->nparams, 0, 0, 0};
    for (int i = 0; i < tr->nparams && i < 3; i++) fields[5 + i] = tr->params[i].n;
    paw_sha256_update(&h, fields, sizeof fields);
    paw_sha256_final(&h, digest);
}

// Every rank compares its fingerprint with rank 0's; all of them reach the same verdict.
static int check_ranks_agree(Trainer *tr, const char *config_text) {
    if (tr->comm->world == 1) return 0;
    uint8_t mine[32];
    run_fingerprint(tr, config_text, mine);
    uint8_t *all = xmalloc(32 * (size_t)tr->comm->world);
    // Ranks finish loading at different times: the first exchange waits longer.
    double t = tr->comm->timeout_s;
    tr->comm->timeout_s = 10 * t + 600;
    int rc = paw_allgather_bytes(tr->comm, mine, all, 32);
    tr->comm->timeout_s = t;
    for (int r = 1; rc == 0 && r < tr->comm->world; r++)
        if (memcmp(all + 32 * r, all, 32) != 0)
            rc = paw_error("rank %d's configuration or data differ from rank 0's (config JSON, --zero, dataset sizes or "
                           "model shapes): every rank must run the same CONFIG on the same data", r);
    free(all);
    return rc;
}

// Every rank resumes from the checkpoint rank 0 found (a stale directory listing on one node of a
// shared file system must not start it from another step): their step numbers are compared.
static int ranks_agree_on_checkpoint(Trainer *tr, const char *latest) {
    if (tr->comm->world == 1) return 0;
    long long mine = -1, *all = xmalloc(sizeof(long long) * (size_t)tr->comm->world);
    const char *base = latest ? strrchr(latest, '/') : NULL;
    if (base) mine = strtoll(base + 1 + 5, NULL, 10);  // ".../step-%08ld"
    int rc = paw_allgather_bytes(tr->comm, &mine, all, sizeof mine);
    for (int r = 1; rc == 0 && r < tr->comm->world; r++)
        if (all[r] != all[0])
            rc = paw_error("rank %d sees checkpoint step %lld in %s, rank 0 step %lld (-1: none): the ranks must see "
                           "the same checkpoints directory", r, all[r], tr->cfg.out_dir, all[0]);
    free(all);
    return rc;
}

// Failures that not every rank sees (a file, a corrupt shard) end the whole job: the other ranks
// would otherwise wait in their next collective.
static int fail_local(Trainer *tr, const char *what) {
    if (tr->comm->world > 1) {
        fprintf(stderr, "paw train: rank %d: %s%s%s; aborting all %d ranks\n", tr->comm->rank, what, *what ? ": " : "",
                paw_last_error(), tr->comm->world);
        paw_comm_abort(tr->comm, 1);
    }
    fprintf(stderr, "paw train: %s%s%s\n", what, *what ? ": " : "", paw_last_error());
    return 1;
}

static int train_main(Trainer *tr, const char *config_path, int resume, int overwrite, int export_only) {
    PawComm *comm = tr->comm;
    int rank0 = comm->rank == 0;
    // Rank 0 decides about an existing run and tells the others.
    int verdict = 0;
    if (rank0) {
        char *latest = NULL;
        if (ckpt_find_latest(tr->cfg.out_dir, &latest) != 0) {
            fprintf(stderr, "paw train: %s\n", paw_last_error());
            verdict = 1;
        } else if (latest && !resume && !overwrite && !export_only) {
            fprintf(stderr, "paw train: %s already holds checkpoints (newest %s); use --resume to continue or --overwrite to start over\n",
                    tr->cfg.out_dir, latest);
            verdict = 2;
        }
        free(latest);
    }
    if (comm->world > 1 && paw_broadcast(comm, &verdict, sizeof verdict, 0) != 0) return fail_local(tr, "");
    if (verdict) return verdict;
    if (setup(tr) != 0) return fail_local(tr, "");
    char *config_text = paw_read_file(config_path, NULL);
    if (!config_text) return fail_local(tr, "");
    int agree = check_ranks_agree(tr, config_text);
    free(config_text);
    if (agree != 0) {
        if (rank0) fprintf(stderr, "paw train: %s\n", paw_last_error());
        return 2;
    }
    // --overwrite only once the new run has passed its checks: a refused run keeps the old one.
    // The run's checkpoints, log and export go (a stale export file must not outlive it).
    if (overwrite) {
        int orc = 0;
        if (rank0) {
            char *lg = paw_path_join(tr->cfg.out_dir, "log.jsonl"), *ex = paw_path_join(tr->cfg.out_dir, "export");
            if (ckpt_remove_all(tr->cfg.out_dir) != 0 || paw_rm_rf(lg) != 0 || paw_rm_rf_renamed(ex) != 0) {
                fprintf(stderr, "paw train: --overwrite: %s\n", paw_last_error());
                orc = 1;
            }
            free(lg), free(ex);
        }
        if (comm->world > 1 && paw_broadcast(comm, &orc, sizeof orc, 0) != 0) return fail_local(tr, "");
        if (orc) return orc;
    }
    char *latest = NULL;
    if (ckpt_find_latest(tr->cfg.out_dir, &latest) != 0) return fail_local(tr, "");
    if (ranks_agree_on_checkpoint(tr, latest) != 0) {
        free(latest);
        return fail_local(tr, "");
    }
    int status = 0;
    double load_s = 0;  // reading the checkpoint (and, on the GPU, moving it to the device)
    if ((resume || export_only) && !latest) {
        if (export_only) {
            if (rank0) fprintf(stderr, "paw train: --export-only: no checkpoint in %s\n", tr->cfg.out_dir);
            free(latest);
            return 1;
        }
        if (rank0) fprintf(stderr, "paw train: --resume: no checkpoint in %s yet, starting from step 0\n", tr->cfg.out_dir);
    }
    if (latest) {
        char *sj = NULL;
        load_s = paw_now();
        if (ckpt_load(latest, tr->params, tr->nparams, &sj, comm->rank, comm->world, tr->cfg.zero) != 0 ||
            restore_state(tr, sj, latest) != 0) {
            free(sj);
            paw_error_context("resuming from %s", latest);
            free(latest);
            return fail_local(tr, "");
        }
        free(sj);
        load_s = paw_now() - load_s;
        if (!export_only && rank0)
            fprintf(stderr, "resumed from %s at step %ld (%d rank%s)\n", latest, tr->step, comm->world, comm->world > 1 ? "s" : "");
    }
    if (export_only) {
        // Parameters are whole on every rank (ZeRO-1 shards only the moments): rank 0 exports.
        if (rank0 && export_models(tr) != 0) status = fail_local(tr, "export");
        if (status == 0 && wait_for_rank0(tr) != 0) status = fail_local(tr, "");
        free(latest);
        return status;
    }
    if (tr->step < tr->cfg.steps) {  // a run that trains saves at least at its end: find out now if it cannot
        int room = rank0 ? ckpt_check_space(tr->cfg.out_dir, ckpt_size_estimate(tr->params, tr->nparams)) : 0;
        if (comm->world > 1 && paw_broadcast(comm, &room, sizeof room, 0) != 0) room = -1;
        if (room != 0) {
            if (rank0) fprintf(stderr, "paw train: %s\n", paw_last_error());
            free(latest);
            return 1;
        }
    }
    double t_dev = paw_now();
    if (gpu_start(tr, latest != NULL) != 0) {
        free(latest);
        return fail_local(tr, "");
    }
    if (latest) load_s += paw_now() - t_dev;
    release_host_grads(tr);
    if (rank0) {
        char *lp = paw_path_join(tr->cfg.out_dir, "log.jsonl");
        if (paw_mkdir_p(tr->cfg.out_dir) != 0 || trim_log(lp, latest ? tr->step : -1) != 0 || !(tr->log = fopen(lp, "a"))) {
            if (!paw_last_error()[0] || tr->log == NULL) paw_error("cannot open %s", lp);
            free(lp);
            free(latest);
            return fail_local(tr, "");
        }
        free(lp);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "event", latest ? "resume" : "start");
        if (latest) cJSON_AddNumberToObject(o, "load_s", load_s);
        cJSON_AddNumberToObject(o, "step", (double)tr->step);
        cJSON_AddStringToObject(o, "mode", tr->pretrain ? "pretrain" : "paw");
        cJSON_AddNumberToObject(o, "world_size", comm->world);
        cJSON_AddNumberToObject(o, "zero", tr->cfg.zero);
        cJSON_AddNumberToObject(o, "overlap_buckets", tr->overlap ? tr->gsync.nbuckets : 0);
        log_json(tr, o);
        cJSON_Delete(o);
    }
    free(latest);
    if (train_loop(tr) != 0) return fail_local(tr, "");
    if (tr->stopped_by) {  // not exported: the run is not finished
        if (rank0)
            fprintf(stderr, "paw train: stopped by %s at step %ld of %d with its checkpoint saved; continue with --resume\n",
                    stop_reason(tr->stopped_by), tr->step, tr->cfg.steps);
        return 128 + (tr->stopped_by > 0 ? tr->stopped_by : SIGTERM);
    }
    if (rank0 && export_models(tr) != 0) return fail_local(tr, "export");
    if (wait_for_rank0(tr) != 0) return fail_local(tr, "");
    return 0;
}

int cmd_train(int argc, char **argv) {
    int resume = 0, overwrite = 0, export_only = 0, zero = -1;
    PawOpt opts[] = {
        {"resume", PAW_OPT_FLAG, &resume, "continue from the newest complete checkpoint in out_dir"},
        {"overwrite", PAW_OPT_FLAG, &overwrite, "delete an existing run in out_dir and start over"},
        {"export-only", PAW_OPT_FLAG, &export_only, "export the newest checkpoint and exit"},
        {"zero", PAW_OPT_INT, &zero, "ZeRO stage under mpirun: 1 shards the AdamW moments across ranks, 0 does not "
                                     "(-1: the config's \"zero\")"},
    };
    PawCommandSpec spec = {
        "paw train CONFIG.json [--resume | --overwrite | --export-only] [--zero 0|1]\n"
        "       mpirun -np N paw train CONFIG.json [...]",
        "Trains the PAW compiler (mode \"paw\") through the frozen interpreter, or pre-trains a model on the "
        "interpreter prompts (mode \"pretrain\"). Writes out_dir/log.jsonl, out_dir/checkpoints/ and, at the end, "
        "out_dir/export/. The keys of CONFIG are listed in the README. Under mpirun each rank trains on its share of "
        "every step's batches (data parallelism); the global batch is N x grad_accum loader batches.",
        opts, (int)(sizeof opts / sizeof opts[0]), 1};
    char *pos[1];
    int npos, prc = paw_parse_args(&spec, argc, argv, pos, &npos);
    if (prc) return prc > 0 ? 0 : 2;
    if (npos != 1) {
        fprintf(stderr, "paw train: a CONFIG file is required\n");
        paw_print_usage(&spec, 1);
        return 2;
    }
    if (zero < -1 || zero > 1) {
        fprintf(stderr, "paw train: --zero %d: expected 0 or 1\n", zero);
        return 2;
    }
    if (resume + overwrite + export_only > 1) {  // --export-only --overwrite would delete what it exports
        fprintf(stderr, "paw train: --resume, --overwrite and --export-only exclude each other\n");
        return 2;
    }
    Trainer tr;
    memset(&tr, 0, sizeof tr);
    if (train_config_load(&tr.cfg, pos[0]) != 0) {
        fprintf(stderr, "paw train: %s\n", paw_last_error());
        return 2;
    }
    if (zero >= 0) tr.cfg.zero = zero;
    tr.comm = paw_comm_open(NULL, NULL, tr.cfg.comm_timeout_s);
    if (!tr.comm) {
        fprintf(stderr, "paw train: %s\n", paw_last_error());
        train_config_free(&tr.cfg);
        return 2;
    }
    int status = train_main(&tr, pos[0], resume, overwrite, export_only);
    PawComm *comm = tr.comm;
    teardown(&tr);
    paw_comm_close(comm);
    return status;
}

// ---- paw grad -----------------------------------------------------------------------------------

// Loss and every trainable tensor's gradient on the first batch, as safetensors: "loss" [1],
// "target_tokens" [1], "grad.compiler.<Hugging Face name>" (unless the compiler is frozen),
// "grad.prefix", "grad.<mapper tensor>" ("grad.mapper.fc1.weight", ...). Nothing is updated.
static int write_grads(Trainer *tr, const char *path, double loss, double tokens) {
    const Qwen3 *cm = &tr->pm.comp.model;
    int cap = 2 + QWEN3_NUM_PARAMS * (cm->cfg.num_layers + 1) + 1 + MAPPER_NUM_TENSORS;
    StWriteTensor *ts = xcalloc((size_t)cap, sizeof *ts);
    char **names = xcalloc((size_t)cap, sizeof(char *));
    float scalars[2] = {(float)loss, (float)tokens};
    int n = 0;
    ts[n++] = (StWriteTensor){.name = "loss", .dtype = ST_F32, .ndim = 1, .shape = {1}, .data = &scalars[0]};
    ts[n++] = (StWriteTensor){.name = "target_tokens", .dtype = ST_F32, .ndim = 1, .shape = {1}, .data = &scalars[1]};
    if (!tr->cfg.freeze_compiler) {
        for (int i = 0; i < QWEN3_NUM_PARAMS; i++) {
            Qwen3ParamInfo info = qwen3_param_info(&cm->cfg, i);
            if (info.numel == 0) continue;
            int layers = info.per_layer ? cm->cfg.num_layers : 1;
            size_t per = info.numel / (size_t)layers;
            const float *g = *qwen3_param_slot((Qwen3Params *)&cm->grads, i);
            for (int l = 0; l < layers; l++) {
                char buf[256];
                int k = snprintf(buf, sizeof buf, "grad.compiler.");
                snprintf(buf + k, sizeof buf - (size_t)k, info.hf_name, l);
                names[n] = xstrdup(buf);
                ts[n] = (StWriteTensor){.name = names[n], .dtype = ST_F32, .ndim = info.ndim,
                                        .shape = {info.shape[0], info.ndim == 2 ? info.shape[1] : 0},
                                        .data = g + (size_t)l * per};
                n++;
            }
        }
    }
    ts[n++] = (StWriteTensor){.name = "grad.prefix", .dtype = ST_F32, .ndim = 2,
                              .shape = {tr->pm.comp.P, cm->cfg.hidden_size}, .data = tr->pm.comp.dprefix};
    for (int i = 0; i < MAPPER_NUM_TENSORS; i++) {
        int nd, sh[3];
        char nm[64], buf[80];
        mapper_tensor_shape(&tr->pm.mapper.cfg, i, &nd, sh);
        snprintf(buf, sizeof buf, "grad.%s", mapper_tensor_name(i, nm, sizeof nm));
        names[n] = xstrdup(buf);
        ts[n] = (StWriteTensor){.name = names[n], .dtype = ST_F32, .ndim = nd, .shape = {sh[0], sh[1], sh[2]},
                                .data = *mapper_tensor_slot(&tr->pm.mapper.grads, i)};
        n++;
    }
    const char *meta[] = {"format", "pt"};
    int rc = st_write(path, ts, n, meta, 1);
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    free(ts);
    return rc;
}

int cmd_grad(int argc, char **argv) {
    const char *out = NULL;
    PawOpt opts[] = {{"out", PAW_OPT_STR, &out, "the safetensors file to write"}};
    PawCommandSpec spec = {"paw grad CONFIG.json --out GRADS.safetensors",
                           "Runs one PAW training step (mode \"paw\") on the first batch of train_data without updating "
                           "anything, and writes the loss and the gradient of every trainable tensor (compiler weights "
                           "unless frozen, prefix, mapper) for comparison with another implementation.",
                           opts, (int)(sizeof opts / sizeof opts[0]), 1};
    char *pos[1];
    int npos, prc = paw_parse_args(&spec, argc, argv, pos, &npos);
    if (prc) return prc > 0 ? 0 : 2;
    if (npos != 1 || !out) {
        fprintf(stderr, "paw grad: CONFIG and --out are required\n");
        paw_print_usage(&spec, 1);
        return 2;
    }
    Trainer tr;
    memset(&tr, 0, sizeof tr);
    if (train_config_load(&tr.cfg, pos[0]) != 0) {
        fprintf(stderr, "paw grad: %s\n", paw_last_error());
        return 2;
    }
    if (tr.cfg.mode != TRAIN_MODE_PAW) {
        fprintf(stderr, "paw grad: %s: needs \"mode\": \"paw\"\n", pos[0]);
        train_config_free(&tr.cfg);
        return 2;
    }
    int status = 0;
    PawBatch batch = {0};
    PawStepStats st;
    tr.comm = paw_comm_single();
    if (setup(&tr) != 0 || paw_loader_next(tr.loader, &batch, 1) != 0 || convert(&tr, batch.ex, batch.n) != 0) {
        fprintf(stderr, "paw grad: %s\n", paw_last_error());
        status = 1;
    } else {
        paw_model_zero_grad(&tr.pm);
        int rc = gpu_start(&tr, 0);
        if (rc == 0) rc = step_forward_backward(&tr, batch.n, 0, &st, NULL, 1);
#ifdef PAW_CUDA
        // The device gradients into the host tensors that write_grads reads.
        for (int i = 0; rc == 0 && tr.gpu && i < tr.nparams; i++)
            rc = paw_step_cuda_get_grads(tr.gpu, train_gpu_group(&tr.params[i]), tr.params[i].g);
#endif
        if (rc != 0 || write_grads(&tr, out, st.loss, st.target_tokens) != 0) {
            fprintf(stderr, "paw grad: %s\n", paw_last_error());
            status = 1;
        } else {
            printf("loss %.6f over %.0f target tokens of %d examples; gradients in %s\n", st.loss, st.target_tokens,
                   batch.n, out);
        }
    }
    paw_batch_free(&batch);
    PawComm *comm = tr.comm;
    teardown(&tr);
    paw_comm_close(comm);
    return status;
}
