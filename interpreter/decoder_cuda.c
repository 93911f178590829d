// Batched greedy decoding of token prompts on the GPU (see decoder_cuda.h): interpreter/schedule.h's
// loop with fill and step on model/qwen3_cuda.h's batched cache.
#ifdef PAW_CUDA
#include "interpreter/decoder_cuda.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"

struct PawGpuDecoder {
    Qwen3Cuda *g;
    Qwen3Config cfg;
    int batch, fill_cap, refill;
    int rank;  // rank the adapter buffers hold (0: none yet)
    paw_bf16 *bA[LORA_NUM_MODULES], *bB[LORA_NUM_MODULES];  // the steps' per-row adapters [L, batch, ...]
    paw_bf16 *pA[LORA_NUM_MODULES], *pB[LORA_NUM_MODULES];  // a refill's prefill [L, fill_cap, ...]
    // One run's state.
    const PawDecodeJob *jobs;
    int rows, with_lora, stop_id;
    int *ids, ids_cap, *lens, *starts, *row_count, *row_end;
    const Qwen3CudaLora **src;
    const Qwen3CudaPrefix **pre;
    long prefill_tokens, prefix_tokens;
};

PawGpuDecoder *paw_gpu_decoder_create(Qwen3Cuda *g, const Qwen3Config *cfg, int batch) {
    if (batch < 1) {
        paw_error("gpu decoder: batch %d, expected at least 1", batch);
        return NULL;
    }
    PawGpuDecoder *d = xcalloc(1, sizeof *d);
    d->g = g, d->cfg = *cfg, d->batch = batch, d->refill = 1;
    d->fill_cap = (batch + 3) / 4;
    d->lens = xmalloc(sizeof(int) * (size_t)batch);
    d->starts = xmalloc(sizeof(int) * (size_t)batch);
    d->pre = xmalloc(sizeof(Qwen3CudaPrefix *) * (size_t)batch);
    d->row_count = xmalloc(sizeof(int) * (size_t)batch);
    d->row_end = xmalloc(sizeof(int) * (size_t)batch);
    d->src = xmalloc(sizeof(Qwen3CudaLora *) * (size_t)batch);
    return d;
}

void paw_gpu_decoder_set_refill(PawGpuDecoder *d, int on) { d->refill = on != 0; }

static void free_buffers(PawGpuDecoder *d) {
    qwen3_cuda_batch_set_lora(d->g, NULL);  // the model must not keep pointers into them
    for (int m = 0; m < LORA_NUM_MODULES; m++) {
        paw_cuda_free(d->bA[m]), paw_cuda_free(d->bB[m]), paw_cuda_free(d->pA[m]), paw_cuda_free(d->pB[m]);
        d->bA[m] = d->bB[m] = d->pA[m] = d->pB[m] = NULL;
    }
    d->rank = 0;
}

void paw_gpu_decoder_free(PawGpuDecoder *d) {
    if (!d) return;
    free_buffers(d);
    free(d->ids), free(d->lens), free(d->starts), free(d->row_count), free(d->row_end), free(d->src);
    free(d->pre);
    free(d);
}

static Qwen3CudaLora view(const PawGpuDecoder *d, paw_bf16 *const *A, paw_bf16 *const *B, int nb) {
    Qwen3CudaLora v;
    memset(&v, 0, sizeof v);
    v.rank = d->rank, v.nb = nb, v.scale = 1.0f;
    for (int m = 0; m < LORA_NUM_MODULES; m++) v.A[m] = A[m], v.B[m] = B[m];
    return v;
}

// A job's token as the scheduler sees it: its stop token once it reaches its imposed end.
static int seen_token(const PawGpuDecoder *d, int row, int tok) {
    return d->row_end[row] > 0 && d->row_count[row] >= d->row_end[row] ? d->stop_id : tok;
}

static int dec_fill(void *ctx, const int *rows, const int *jobs, int k, int *next) {
    PawGpuDecoder *d = ctx;
    int whole = k == d->rows;  // the batch's first fill (every row, in order): one prefill
    for (int i = 0; i < k && whole; i++) whole = rows[i] == i;
    const int piece = whole ? k : d->fill_cap;
    for (int s = 0; s < k; s += piece) {
        const int kk = k - s < piece ? k - s : piece;
        // Each row's tokens after its shared prefix (all of them without one), right padded.
        int T = 0;
        for (int i = 0; i < kk; i++) {
            const PawDecodeJob *j = &d->jobs[jobs[s + i]];
            if (j->len - j->keep > T) T = j->len - j->keep;
        }
        if ((size_t)kk * T > (size_t)d->ids_cap) {
            free(d->ids);
            d->ids_cap = kk * T;
            d->ids = xmalloc(sizeof(int) * (size_t)d->ids_cap);
        }
        for (int i = 0; i < kk; i++) {
            const PawDecodeJob *j = &d->jobs[jobs[s + i]];
            const int n = j->len - j->keep;
            memcpy(d->ids + (size_t)i * T, j->ids + j->keep, sizeof(int) * (size_t)n);
            for (int t = n; t < T; t++) d->ids[(size_t)i * T + t] = 0;  // padding, never attended to
            d->lens[i] = n;
            d->starts[i] = j->keep;
            d->pre[i] = j->keep > 0 ? j->prefix : NULL;
            d->src[i] = j->lora;
            d->prefill_tokens += n, d->prefix_tokens += j->keep;
        }
        // The first fill (every row, in order) prefills with the batch's own adapter buffers; a
        // refill gathers its rows' adapters into those and, contiguous, into the prefill buffer.
        paw_bf16 *const *A = whole ? d->bA : d->pA, *const *Bm = whole ? d->bB : d->pB;
        Qwen3CudaLora fl = view(d, A, Bm, kk);
        int rc = d->with_lora ? qwen3_cuda_lora_gather(d->g, A, Bm, d->rank, d->src, kk) : 0;
        if (rc == 0 && d->with_lora && !whole)
            rc = qwen3_cuda_lora_gather_rows(d->g, d->bA, d->bB, d->rank, d->src, kk, rows + s, d->rows);
        if (rc == 0)
            rc = qwen3_cuda_batch_refill_prefix(d->g, rows + s, kk, d->pre, d->starts, d->ids, d->lens, T,
                                                d->with_lora ? &fl : NULL, next + s, NULL);
        if (rc != 0) return -1;
    }
    for (int i = 0; i < k; i++) {
        d->row_count[rows[i]] = 1, d->row_end[rows[i]] = d->jobs[jobs[i]].end;
        next[i] = seen_token(d, rows[i], next[i]);
    }
    return 0;
}

static int dec_step(void *ctx, const int *active, int *next) {
    PawGpuDecoder *d = ctx;
    if (qwen3_cuda_batch_step(d->g, NULL, active, next, NULL) != 0) return -1;
    for (int b = 0; b < d->rows; b++)
        if (active[b]) d->row_count[b]++, next[b] = seen_token(d, b, next[b]);
    return 0;
}

int paw_gpu_decoder_run(PawGpuDecoder *d, const PawDecodeJob *jobs, const int *order, int n, int rank, int max_new,
                        int stop_id, int *out, int *counts, PawDecodeStats *st) {
    if (st) memset(st, 0, sizeof *st);
    if (n <= 0) return 0;
    if (max_new < 1) return paw_error("gpu decoder: max_new %d, expected at least 1", max_new);
    int T = 0, with_lora = 0;
    for (int i = 0; i < n; i++) {
        const PawDecodeJob *j = &jobs[order[i]];
        if (j->len < 1) return paw_error("gpu decoder: job %d has an empty prompt", order[i]);
        if (j->keep < 0 || j->keep >= j->len || (j->keep > 0 && (!j->prefix || j->keep > j->prefix->n)))
            return paw_error("gpu decoder: job %d takes %d of its %d prompt tokens from a prefix of %d", order[i],
                             j->keep, j->len, j->prefix ? j->prefix->n : 0);
        if (j->lora && (j->lora->nb != 1 || j->lora->rank != rank || j->lora->scale != 1.0f))
            return paw_error("gpu decoder: job %d's adapter is for %d examples at rank %d and scale %g, expected 1 at "
                             "rank %d and scale 1", order[i], j->lora->nb, j->lora->rank, j->lora->scale, rank);
        if (j->len > T) T = j->len;
        with_lora |= j->lora != NULL;
    }
    if (T + max_new > d->cfg.max_position_embeddings)
        return paw_error("gpu decoder: a %d-token prompt with %d new tokens exceeds the context of %d", T, max_new,
                         d->cfg.max_position_embeddings);
    if (with_lora && rank != d->rank) {
        free_buffers(d);
        const size_t L = (size_t)d->cfg.num_layers;
        for (int m = 0; m < LORA_NUM_MODULES; m++) {
            int din, dout;
            lora_module_dims(&d->cfg, m, &din, &dout);
            d->bA[m] = paw_cuda_malloc(sizeof(paw_bf16) * L * d->batch * rank * din);
            d->bB[m] = paw_cuda_malloc(sizeof(paw_bf16) * L * d->batch * dout * rank);
            d->pA[m] = paw_cuda_malloc(sizeof(paw_bf16) * L * d->fill_cap * rank * din);
            d->pB[m] = paw_cuda_malloc(sizeof(paw_bf16) * L * d->fill_cap * dout * rank);
        }
        d->rank = rank;
    }
    d->jobs = jobs, d->stop_id = stop_id, d->with_lora = with_lora;
    d->rows = n < d->batch ? n : d->batch;
    Qwen3CudaLora bl = view(d, d->bA, d->bB, d->rows);
    if (qwen3_cuda_batch_set_lora(d->g, with_lora ? &bl : NULL) != 0 || qwen3_cuda_batch_reset(d->g, d->rows, T + max_new) != 0)
        return -1;
    PawDecodeModel model = {d, dec_fill, dec_step};
    d->prefill_tokens = d->prefix_tokens = 0;
    int rc = paw_run_decode(&model, order, n, d->batch, d->refill, max_new, stop_id, out, counts, st);
    if (st) st->prefill_tokens = d->prefill_tokens, st->prefix_tokens = d->prefix_tokens;
    return rc;
}

#endif
