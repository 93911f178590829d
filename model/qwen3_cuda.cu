// The Qwen3 model on the GPU, built from the kernels/*_cuda.h ops. Layout and precision are
// described in model/qwen3_cuda.h; the order of operations mirrors model/qwen3.c.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/adamw_cuda.h"
#include "kernels/attention_cuda.h"
#include "kernels/matvec_cuda.h"
#include "kernels/crossentropy_cuda.h"
#include "kernels/cuda_common.cuh"
#include "kernels/embedding_cuda.h"
#include "kernels/lora_cuda.h"
#include "kernels/matmul_cuda.h"
#include "kernels/rmsnorm_cuda.h"
#include "kernels/rope_cuda.h"
#include "kernels/swiglu_cuda.h"
#include "model/qwen3_cuda.h"

extern "C" {
#include "common/error.h"
#include "kernels/rope.h"
#include "model/qwen3_cuda_layout.h"
}

typedef __nv_bfloat16 bf16;

// GPU parameter groups: model/qwen3_cuda_layout.h (each kind of tensor over all layers, q/k/v
// and gate/up fused, the layer matrices last).

// Activations of one layer (slices of the stacked buffers; the recomputed layers share one slice,
// see act_slot).
struct LayerActs {
    bf16 *ln1, *qkvr, *qkv, *att, *xmid, *ln2, *gu, *act;
    float *ln1_rstd, *ln2_rstd, *lse;
};

// A decoding step replayed from a CUDA graph: the first call runs eagerly (every lazy set-up, such
// as GEMM plans and scratch growth, happens outside capture), the second is captured, later ones
// replay it.
struct StepGraph {
    cudaGraphExec_t exec;
    int ready, eager;
};

struct Qwen3Cuda {
    Qwen3Config cfg;
    int frozen, recompute;
    int keep;  // with recompute: layers [0, keep) keep their activations anyway (qwen3_cuda_set_recompute_keep)
    int C, I, L, V, NH, NKV, HD, Q, KV, QKV;
    Qwen3DevLayout lay;               // where each tensor lives in the blocks below
    bf16 *params;
    float *grads;                     // NULL when frozen; [0, split) only when grads16 is used
    bf16 *grads16;                    // bf16 gradients of the layer matrices [split, nparams), or NULL
    float *master, *adam_m, *adam_v;  // optimizer state, from the first step (the shard's only, in CPU order, when sharded)
    int sharded;                      // ZeRO-1 (qwen3_cuda_shard_optimizer): the state covers [shard_lo, shard_hi) of the CPU layout
    size_t shard_lo, shard_hi;
    size_t shard_pad;                 // unused floats before the shard's state: element lo sits at lo % 4, as in the weights
    Qwen3DevRun *shard_runs;
    int shard_nruns;
    float *d_norm_sq;
    int adam_step;
    float *rope_cos, *rope_sin;
    int rope_len;

    // activations for up to cap_tokens tokens
    size_t cap_tokens;
    bf16 *x, *ln1, *qkvr, *qkv, *att, *xmid, *ln2, *gu, *act, *lnf;
    float *ln1_rstd, *ln2_rstd, *lse, *lnf_rstd;
    // backward scratch
    size_t cap_scratch;
    float *dx32, *dq32, *dsum;
    bf16 *dx16, *dln, *datt, *dqkv, *dqkvr, *dact, *dgu, *dlnf;
    // per-batch inputs on the device
    int *d_ids, *d_pos, *d_targets, *d_lens;
    float *d_weights, *d_nll;
    float *h_nll;
    int *h_pos;
    // the loss's weighted rows (the LM head runs on those only): indices, targets, weights, and
    // their final-norm outputs side by side
    int *d_rows, *h_rows, *h_row_targets;
    float *h_row_weights;
    bf16 *lnf_rows;
    // logits kept for the caller, and the LM-head + loss workspace
    float *logits;
    size_t cap_logits_rows;
    float *ce_logits;
    bf16 *ce_dlogits;
    int ce_rows;
    // state of the last forward
    int B, T, has_lens, logits_rows, has_loss, backward_ready;
    int full_ready;  // the last forward was a full-sequence one with the final norm of every row
    // per-example LoRA of the last forward (has_lora), and the adapter decoding applies
    Qwen3CudaLora lora, decode_lora;
    int has_lora, has_decode_lora;
    bf16 *lora_u, *lora_du;  // [7][layers kept][cap_tokens][rank] saved side-path activations, [cap_tokens][rank]
    size_t lora_cap_tokens;
    int lora_cap_rank;
    float loss;
    double loss_sum, weight_sum;
    // KV cache (one sequence) and the decode-step graph
    bf16 *kcache, *vcache;
    int cache_cap, cache_len;
    int *d_cache_len, *d_token;
    StepGraph step_graph;
    // Batched KV cache: bB sequences of up to bcap tokens, [L, bB, bcap, KV] each for K and V;
    // per-row cache lengths, next tokens and active flags on the device (h_blen mirrors the lengths).
    bf16 *bkcache, *bvcache;
    size_t bcache_elems;
    int bB, bcap, brows_cap;
    int *d_blen, *d_btok, *d_bactive, *h_blen, *h_bact, *h_bids;
    int *d_bfill, *d_bfill_tok;  // a prefill's cache rows and next tokens (its k rows), [bB] each
    size_t h_bids_cap;
    Qwen3CudaLora batch_lora;
    int has_batch_lora, bprefilled;
    StepGraph bstep_graph;
    int fused_decode;  // one-row decode steps through kernels/matvec (qwen3_cuda_set_fused_decode)
    int decode_pdl;    // the decode step's kernels launched programmatically (qwen3_cuda_set_decode_pdl)
    const bf16 **d_gather;  // pointer table of qwen3_cuda_lora_gather
    size_t gather_cap;
    void *d_ptab;           // table of a prefix copy (batch_fill with starts)
    size_t ptab_cap;
};

#define P(grp, off) (g->params + g->lay.base[grp] + (off))
#define GR(grp, off) (g->grads ? g->grads + g->lay.base[grp] + (off) : (float *)NULL)

static void layout(Qwen3Cuda *g) {
    const Qwen3Config *c = &g->cfg;
    g->C = c->hidden_size, g->I = c->intermediate_size, g->L = c->num_layers, g->V = c->vocab_size;
    g->NH = c->num_heads, g->NKV = c->num_kv_heads, g->HD = c->head_dim;
    g->Q = g->NH * g->HD, g->KV = g->NKV * g->HD, g->QKV = g->Q + 2 * g->KV;
    qwen3_dev_layout(&g->lay, c);
}

// Where CPU tensor i (qwen3_param_info order), layer l, starts in the GPU block.
static size_t gpu_offset(const Qwen3Cuda *g, int i, int l) { return qwen3_dev_offset(&g->lay, i, l); }

// Activations: every layer keeps its own, unless recompute is on; then layers [0, keep) still
// keep theirs and the others share one slot, refilled by recomputing the layer in the backward.
static bool recomputed(const Qwen3Cuda *g, int l) { return g->recompute && l >= g->keep; }
static size_t act_slot(const Qwen3Cuda *g, int l) { return recomputed(g, l) ? (size_t)g->keep : (size_t)l; }
static size_t act_layers(const Qwen3Cuda *g) {
    return g->recompute && g->keep < g->L ? (size_t)g->keep + 1 : (size_t)g->L;
}

static Qwen3Cuda *create_common(const Qwen3Config *cfg, int frozen, int recompute) {
    if (paw_cuda_init() != 0) return NULL;
    if (cfg->head_dim > 128 || cfg->head_dim % 2) {
        paw_error("qwen3 on the GPU: head_dim %d unsupported (even, at most 128)", cfg->head_dim);
        return NULL;
    }
    Qwen3Cuda *g = (Qwen3Cuda *)xcalloc(1, sizeof(Qwen3Cuda));
    g->cfg = *cfg;
    g->frozen = frozen;
    g->recompute = recompute;
    const char *fd = getenv("PAW_DECODE_FUSED");
    g->fused_decode = fd && !strcmp(fd, "1");
    const char *pdl = getenv("PAW_DECODE_PDL");
    g->decode_pdl = pdl && !strcmp(pdl, "1");
    layout(g);
    g->params = (bf16 *)paw_cuda_malloc(sizeof(bf16) * g->lay.total);
    paw_cuda_memset(g->params, 0, sizeof(bf16) * g->lay.total);
    if (!frozen) {
        g->grads = (float *)paw_cuda_malloc(sizeof(float) * g->lay.total);
        paw_cuda_memset(g->grads, 0, sizeof(float) * g->lay.total);
    }
    // RoPE tables for every position the config allows (as transformers computes them).
    g->rope_len = cfg->max_position_embeddings;
    size_t h = (size_t)g->HD / 2, n = (size_t)g->rope_len * h;
    float *cs = (float *)xmalloc(sizeof(float) * n), *sn = (float *)xmalloc(sizeof(float) * n);
    rope_table(cs, sn, g->rope_len, g->HD, (float)cfg->rope_theta);
    g->rope_cos = (float *)paw_cuda_malloc(sizeof(float) * n);
    g->rope_sin = (float *)paw_cuda_malloc(sizeof(float) * n);
    paw_cuda_upload(g->rope_cos, cs, sizeof(float) * n);
    paw_cuda_upload(g->rope_sin, sn, sizeof(float) * n);
    free(cs);
    free(sn);
    g->d_cache_len = (int *)paw_cuda_malloc(sizeof(int) * 2);
    g->d_token = g->d_cache_len + 1;
    g->d_norm_sq = (float *)paw_cuda_malloc(sizeof(float));
    return g;
}

// The bf16 weights from fp32 weights in the CPU layout (Qwen3.params_memory order).
static void upload_weights(Qwen3Cuda *g, const float *flat) {
    size_t cpu_off = 0;
    for (int i = 0; i < QWEN3_NUM_PARAMS; i++) {
        Qwen3ParamInfo info = qwen3_param_info(&g->cfg, i);
        if (info.numel == 0) continue;
        int layers = info.per_layer ? g->L : 1;
        size_t per = info.numel / (size_t)layers;
        for (int l = 0; l < layers; l++)
            paw_cuda_upload_bf16(g->params + gpu_offset(g, i, l), flat + cpu_off + (size_t)l * per, per);
        cpu_off += info.numel;
    }
}

extern "C" Qwen3Cuda *qwen3_cuda_create(const Qwen3 *cpu, int frozen, int recompute) {
    if (cpu->inference_only) {  // the upload reads the fp32 block, which then holds the norms only
        paw_error("the GPU model is made from f32 weights; this CPU model holds %s inference weights",
                  qwen3_weights_kind(cpu));
        return NULL;
    }
    Qwen3Cuda *g = create_common(&cpu->cfg, frozen, recompute);
    if (!g) return NULL;
    upload_weights(g, cpu->params_memory);
    return g;
}

__device__ __forceinline__ unsigned long long mix64(unsigned long long z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

__global__ void init_normal_kernel(bf16 *p, size_t n, unsigned long long seed, float std) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        unsigned long long r = mix64(seed + 0x9E3779B97F4A7C15ull * (i + 1));
        float u1 = ((float)(r >> 40) + 1.0f) * (1.0f / 16777217.0f), u2 = (float)((r >> 16) & 0xffffff) / 16777216.0f;
        p[i] = __float2bfloat16_rn(std * sqrtf(-2.0f * logf(u1)) * cospif(2.0f * u2));
    }
}

__global__ void fill_bf16_kernel(bf16 *p, size_t n, float v) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        p[i] = __float2bfloat16_rn(v);
}

static unsigned grid_for(size_t n) {
    unsigned blocks = paw_ceil_div(n, 256), cap = (unsigned)paw_cuda_sm_count() * 16;
    if (blocks > cap) blocks = cap;
    return blocks ? blocks : 1;
}

extern "C" Qwen3Cuda *qwen3_cuda_create_random(const Qwen3Config *cfg, int frozen, int recompute,
                                               unsigned long long seed, float std) {
    Qwen3Cuda *g = create_common(cfg, frozen, recompute);
    if (!g) return NULL;
    for (int grp = 0; grp < QG_NUM; grp++) {
        size_t n = g->lay.extent[grp];  // padding included: it is never read
        if (!n) continue;
        if (qwen3_dev_is_norm_group(grp)) fill_bf16_kernel<<<grid_for(n), 256, 0, paw_cuda_stream()>>>(P(grp, 0), n, 1.0f);
        else init_normal_kernel<<<grid_for(n), 256, 0, paw_cuda_stream()>>>(P(grp, 0), n, seed + 7919ull * grp, std);
        CUDA_CHECK_LAUNCH();
    }
    paw_cuda_sync();
    return g;
}

static void step_graph_run(StepGraph *s, Qwen3Cuda *g, void (*body)(Qwen3Cuda *)) {
    if (s->ready) {
        CUDA_CHECK(cudaGraphLaunch(s->exec, paw_cuda_stream()));
        return;
    }
    if (!s->eager) {
        body(g);
        s->eager = 1;
        return;
    }
    cudaGraph_t graph;
    CUDA_CHECK(cudaStreamBeginCapture(paw_cuda_stream(), cudaStreamCaptureModeThreadLocal));
    body(g);
    CUDA_CHECK(cudaStreamEndCapture(paw_cuda_stream(), &graph));
    CUDA_CHECK(cudaGraphInstantiate(&s->exec, graph, 0));
    CUDA_CHECK(cudaGraphDestroy(graph));
    s->ready = 1;
    CUDA_CHECK(cudaGraphLaunch(s->exec, paw_cuda_stream()));
}

static void step_graph_drop(StepGraph *s) {
    if (s->ready) CUDA_CHECK(cudaGraphExecDestroy(s->exec));
    s->ready = 0;
    s->eager = 0;
}

static void drop_batch_graph(Qwen3Cuda *g) { step_graph_drop(&g->bstep_graph); }

// Both captured decode steps point into the activation, logits and LoRA buffers: any
// reallocation drops them.
static void drop_step_graph(Qwen3Cuda *g) {
    step_graph_drop(&g->step_graph);
    drop_batch_graph(g);
}

// Frees the activation buffers and forgets them (cap_tokens 0: the next forward makes them again).
static void free_acts(Qwen3Cuda *g) {
    void **bufs[] = {(void **)&g->x,        (void **)&g->ln1,       (void **)&g->qkvr,     (void **)&g->qkv,
                     (void **)&g->att,      (void **)&g->xmid,      (void **)&g->ln2,      (void **)&g->gu,
                     (void **)&g->act,      (void **)&g->lnf,       (void **)&g->ln1_rstd, (void **)&g->ln2_rstd,
                     (void **)&g->lse,      (void **)&g->lnf_rstd,  (void **)&g->d_ids,    (void **)&g->d_pos,
                     (void **)&g->d_targets, (void **)&g->d_lens,   (void **)&g->d_weights, (void **)&g->d_nll,
                     (void **)&g->d_rows,   (void **)&g->lnf_rows};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        paw_cuda_free(*bufs[i]);
        *bufs[i] = NULL;
    }
    free(g->h_nll);
    free(g->h_pos);
    free(g->h_rows);
    free(g->h_row_targets);
    free(g->h_row_weights);
    g->h_nll = g->h_row_weights = NULL;
    g->h_pos = g->h_rows = g->h_row_targets = NULL;
    g->cap_tokens = 0;
}

static void free_scratch(Qwen3Cuda *g) {
    void *bufs[] = {g->dx32, g->dq32, g->dsum, g->dx16, g->dln, g->datt, g->dqkv, g->dqkvr, g->dact, g->dgu, g->dlnf};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) paw_cuda_free(bufs[i]);
}

extern "C" void qwen3_cuda_free(Qwen3Cuda *g) {
    if (!g) return;
    drop_step_graph(g);
    free_acts(g);
    free_scratch(g);
    paw_cuda_free(g->grads16);
    void *bufs[] = {g->params,   g->grads,  g->master,    g->adam_m,     g->adam_v, g->d_norm_sq,
                    g->rope_cos, g->rope_sin, g->logits,  g->ce_logits, g->ce_dlogits, g->kcache,
                    g->vcache,   g->d_cache_len, g->lora_u, g->lora_du, g->bkcache, g->bvcache, g->d_blen,
                    (void *)g->d_gather, g->d_ptab};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) paw_cuda_free(bufs[i]);
    free(g->h_blen);
    free(g->h_bids);
    free(g->shard_runs);
    free(g);
}

extern "C" int qwen3_cuda_use_bf16_grads(Qwen3Cuda *g) {
    if (!g->grads) return paw_error("bf16 gradients: the model is frozen (no weight gradients)");
    if (g->grads16) return 0;
    paw_cuda_free(g->grads);
    g->grads = (float *)paw_cuda_malloc(sizeof(float) * g->lay.split);
    g->grads16 = (bf16 *)paw_cuda_malloc(sizeof(bf16) * (g->lay.total - g->lay.split));
    qwen3_cuda_zero_grad(g);
    return 0;
}

extern "C" void qwen3_cuda_grad_blocks(Qwen3Cuda *g, float **f32, size_t *n32, paw_bf16 **b16, size_t *n16) {
    *f32 = g->grads, *b16 = g->grads16;
    *n32 = !g->grads ? 0 : g->grads16 ? g->lay.split : g->lay.total;
    *n16 = g->grads16 ? g->lay.total - g->lay.split : 0;
}

extern "C" size_t qwen3_cuda_num_params(const Qwen3Cuda *g) { return g->lay.cpu_total; }

// Sizes activations for N tokens (growing only).
static void ensure_acts(Qwen3Cuda *g, size_t N) {
    if (N <= g->cap_tokens) return;
    drop_step_graph(g);  // the captured step points into the old buffers
    free_acts(g);
    size_t C = g->C, I = g->I, L = g->L, QKV = g->QKV, Q = g->Q, NH = g->NH;
    size_t LA = act_layers(g);  // activation slots
    g->x = (bf16 *)paw_cuda_malloc(sizeof(bf16) * (L + 1) * N * C);
    g->ln1 = (bf16 *)paw_cuda_malloc(sizeof(bf16) * LA * N * C);
    g->qkvr = (bf16 *)paw_cuda_malloc(sizeof(bf16) * LA * N * QKV);
    g->qkv = (bf16 *)paw_cuda_malloc(sizeof(bf16) * LA * N * QKV);
    g->att = (bf16 *)paw_cuda_malloc(sizeof(bf16) * LA * N * Q);
    g->xmid = (bf16 *)paw_cuda_malloc(sizeof(bf16) * LA * N * C);
    g->ln2 = (bf16 *)paw_cuda_malloc(sizeof(bf16) * LA * N * C);
    g->gu = (bf16 *)paw_cuda_malloc(sizeof(bf16) * LA * N * 2 * I);
    g->act = (bf16 *)paw_cuda_malloc(sizeof(bf16) * LA * N * I);
    g->lnf = (bf16 *)paw_cuda_malloc(sizeof(bf16) * N * C);
    g->ln1_rstd = (float *)paw_cuda_malloc(sizeof(float) * LA * N);
    g->ln2_rstd = (float *)paw_cuda_malloc(sizeof(float) * LA * N);
    g->lse = (float *)paw_cuda_malloc(sizeof(float) * LA * N * NH);
    g->lnf_rstd = (float *)paw_cuda_malloc(sizeof(float) * N);
    g->d_ids = (int *)paw_cuda_malloc(sizeof(int) * N);
    g->d_pos = (int *)paw_cuda_malloc(sizeof(int) * N);
    g->d_targets = (int *)paw_cuda_malloc(sizeof(int) * N);
    g->d_lens = (int *)paw_cuda_malloc(sizeof(int) * N);  // B <= N
    g->d_weights = (float *)paw_cuda_malloc(sizeof(float) * N);
    g->d_nll = (float *)paw_cuda_malloc(sizeof(float) * N);
    g->h_nll = (float *)xmalloc(sizeof(float) * N);
    g->h_pos = (int *)xmalloc(sizeof(int) * N);
    g->d_rows = (int *)paw_cuda_malloc(sizeof(int) * N);
    g->lnf_rows = (bf16 *)paw_cuda_malloc(sizeof(bf16) * N * C);
    g->h_rows = (int *)xmalloc(sizeof(int) * N);
    g->h_row_targets = (int *)xmalloc(sizeof(int) * N);
    g->h_row_weights = (float *)xmalloc(sizeof(float) * N);
    g->cap_tokens = N;
}

static void ensure_scratch(Qwen3Cuda *g, size_t N) {
    if (N <= g->cap_scratch) return;
    free_scratch(g);
    size_t C = g->C, I = g->I, QKV = g->QKV, Q = g->Q, NH = g->NH;
    g->dx32 = (float *)paw_cuda_malloc(sizeof(float) * N * C);
    g->dq32 = (float *)paw_cuda_malloc(sizeof(float) * N * Q);
    g->dsum = (float *)paw_cuda_malloc(sizeof(float) * N * NH);
    g->dx16 = (bf16 *)paw_cuda_malloc(sizeof(bf16) * N * C);
    g->dln = (bf16 *)paw_cuda_malloc(sizeof(bf16) * N * C);
    g->datt = (bf16 *)paw_cuda_malloc(sizeof(bf16) * N * Q);
    g->dqkv = (bf16 *)paw_cuda_malloc(sizeof(bf16) * N * QKV);
    g->dqkvr = (bf16 *)paw_cuda_malloc(sizeof(bf16) * N * QKV);
    g->dact = (bf16 *)paw_cuda_malloc(sizeof(bf16) * N * I);
    g->dgu = (bf16 *)paw_cuda_malloc(sizeof(bf16) * N * 2 * I);
    g->dlnf = (bf16 *)paw_cuda_malloc(sizeof(bf16) * N * C);
    g->cap_scratch = N;
}

static void ensure_logits(Qwen3Cuda *g, size_t rows) {
    if (rows <= g->cap_logits_rows) return;
    drop_step_graph(g);
    paw_cuda_free(g->logits);
    g->logits = (float *)paw_cuda_malloc(sizeof(float) * rows * g->V);
    g->cap_logits_rows = rows;
}

// The LM-head + loss workspace: rows of fp32 logits and bf16 dlogits, about 1 GiB at most.
static void ensure_ce(Qwen3Cuda *g, size_t N) {
    size_t per_row = (size_t)g->V * (sizeof(float) + sizeof(bf16));
    size_t rows = ((size_t)1 << 30) / per_row;
    if (rows > 64) rows = rows / 64 * 64;
    if (rows < 1) rows = 1;
    if (rows > N) rows = N;
    if ((int)rows <= g->ce_rows) return;
    paw_cuda_free(g->ce_logits);
    paw_cuda_free(g->ce_dlogits);
    g->ce_logits = (float *)paw_cuda_malloc(sizeof(float) * rows * g->V);
    g->ce_dlogits = (bf16 *)paw_cuda_malloc(sizeof(bf16) * rows * g->V);
    g->ce_rows = (int)rows;
}

// LoRA side-path buffers for N tokens at rank r (growing only).
static void ensure_lora(Qwen3Cuda *g, size_t N, int r) {
    if (N <= g->lora_cap_tokens && r <= g->lora_cap_rank) return;
    drop_step_graph(g);
    paw_cuda_free(g->lora_u);
    paw_cuda_free(g->lora_du);
    size_t LA = act_layers(g);
    if (N < g->lora_cap_tokens) N = g->lora_cap_tokens;
    if (r < g->lora_cap_rank) r = g->lora_cap_rank;
    g->lora_u = (bf16 *)paw_cuda_malloc(sizeof(bf16) * LORA_NUM_MODULES * LA * N * (size_t)r);
    g->lora_du = (bf16 *)paw_cuda_malloc(sizeof(bf16) * N * (size_t)r);
    g->lora_cap_tokens = N;
    g->lora_cap_rank = r;
}

// Checks an adapter set against the model and the batch.
static int check_lora(const Qwen3CudaLora *lo, int B, const char *what) {
    if (lo->rank <= 0 || lo->nb != B)
        return paw_error("%s: LoRA with rank %d for %d examples, expected a positive rank and %d examples", what,
                         lo->rank, lo->nb, B);
    for (int m = 0; m < LORA_NUM_MODULES; m++)
        if (!lo->A[m] || !lo->B[m]) return paw_error("%s: LoRA module %s has no adapter", what, lora_module_names[m]);
    return 0;
}

// The side path y += scale B_b (A_b x) of module mod at layer l (activations slot s), and its backward.
static bf16 *lora_u_slot(Qwen3Cuda *g, int mod, size_t s, size_t N, int r) {
    size_t LA = act_layers(g);
    return g->lora_u + (((size_t)mod * LA + s) * N) * (size_t)r;
}

static void lora_fwd(Qwen3Cuda *g, const Qwen3CudaLora *lo, int mod, int l, size_t s, int B, int T, void *y,
                     PawOutType yt, int ld_y, const bf16 *x) {
    int din, dout, r = lo->rank;
    lora_module_dims(&g->cfg, mod, &din, &dout);
    size_t per_l = (size_t)lo->nb * r;
    lora_cuda_forward(y, yt, ld_y, lora_u_slot(g, mod, s, (size_t)B * T, r), x, lo->A[mod] + l * per_l * din,
                      lo->B[mod] + l * per_l * dout, B, T, din, dout, r, lo->scale);
}

// The side paths of the modules mods[0..n) that read x, for one token per sequence (decoding):
// two launches for the group (kernels/lora_cuda.h); module k's output columns start at y + off[k].
static void lora_fwd_tokens(Qwen3Cuda *g, const Qwen3CudaLora *lo, const int *mods, const size_t *off, int n, int l,
                            size_t s, int B, bf16 *y, int ld_y, const bf16 *x) {
    LoraTokensModule m[LORA_TOKENS_MAX];
    const int r = lo->rank;
    const size_t per_l = (size_t)lo->nb * r;
    int din = 0;
    for (int k = 0; k < n; k++) {
        int dout;
        lora_module_dims(&g->cfg, mods[k], &din, &dout);
        m[k].A = lo->A[mods[k]] + l * per_l * din;
        m[k].Bm = lo->B[mods[k]] + l * per_l * dout;
        m[k].u = lora_u_slot(g, mods[k], s, (size_t)B, r);
        m[k].y = y + off[k];
        m[k].d_out = dout;
    }
    lora_cuda_forward_tokens(m, n, x, B, din, r, ld_y, lo->scale);
}

// The side paths of the modules mods[0..n) that read x, module k's output columns at y + off[k]:
// two GEMMs per module, or, for decoding steps on the fused path (tokens), two launches in all.
static void lora_group(Qwen3Cuda *g, const Qwen3CudaLora *lo, bool tokens, const int *mods, const size_t *off, int n,
                       int l, size_t s, int B, int T, bf16 *y, int ld_y, const bf16 *x) {
    if (tokens) {
        lora_fwd_tokens(g, lo, mods, off, n, l, s, B, y, ld_y, x);
        return;
    }
    for (int k = 0; k < n; k++) lora_fwd(g, lo, mods[k], l, s, B, T, y + off[k], PAW_OUT_BF16, ld_y, x);
}

static void lora_bwd(Qwen3Cuda *g, int mod, int l, size_t s, bf16 *dx, const bf16 *dy, int ld_y, const bf16 *x) {
    const Qwen3CudaLora *lo = &g->lora;
    int din, dout, r = lo->rank, B = g->B, T = g->T;
    lora_module_dims(&g->cfg, mod, &din, &dout);
    size_t per_l = (size_t)lo->nb * r;
    lora_cuda_backward(dx, PAW_OUT_BF16, lo->dA[mod] ? lo->dA[mod] + l * per_l * din : NULL,
                       lo->dB[mod] ? lo->dB[mod] + l * per_l * dout : NULL, dy, ld_y, x,
                       lora_u_slot(g, mod, s, (size_t)B * T, r), lo->A[mod] + l * per_l * din,
                       lo->B[mod] + l * per_l * dout, B, T, din, dout, r, lo->scale, g->lora_du);
}

static LayerActs layer_acts(Qwen3Cuda *g, int l, size_t N) {
    size_t s = act_slot(g, l);
    size_t C = g->C, I = g->I, QKV = g->QKV, Q = g->Q, NH = g->NH;
    LayerActs a;
    a.ln1 = g->ln1 + s * N * C;
    a.qkvr = g->qkvr + s * N * QKV;
    a.qkv = g->qkv + s * N * QKV;
    a.att = g->att + s * N * Q;
    a.xmid = g->xmid + s * N * C;
    a.ln2 = g->ln2 + s * N * C;
    a.gu = g->gu + s * N * 2 * I;
    a.act = g->act + s * N * I;
    a.ln1_rstd = g->ln1_rstd + s * N;
    a.ln2_rstd = g->ln2_rstd + s * N;
    a.lse = g->lse + s * N * NH;
    return a;
}

__global__ void add_int_kernel(int *p, int n) {
    pdl_enter();
    *p += n;
}

// Batched decoding: the cache length of every still active row grows by one.
__global__ void advance_rows_kernel(int *len, const int *active, int B) {
    int b = blockIdx.x * blockDim.x + threadIdx.x;
    if (b < B) len[b] += active[b] != 0;
}

// dst row b = src row b*T + lens[b] - 1: the last token of each right-padded sequence (its first
// row when it is empty).
__global__ void gather_last_rows_kernel(bf16 *dst, const bf16 *src, const int *lens, int B, int T, int C) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < (long)B * C; i += (long)gridDim.x * blockDim.x) {
        int b = (int)(i / C), c = (int)(i % C), last = lens[b] > 0 ? lens[b] - 1 : 0;
        dst[i] = src[((size_t)b * T + last) * C + c];
    }
}

// Row i of dst [n, C] = row rows[i] of src (gather), or row rows[i] of dst = row i of src (scatter).
__global__ void copy_rows_kernel(bf16 *dst, const bf16 *src, const int *rows, int n, int C, int scatter) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < (long)n * C; i += (long)gridDim.x * blockDim.x) {
        const size_t r = (size_t)rows[i / C], c = (size_t)(i % C);
        if (scatter) dst[r * C + c] = src[i];
        else dst[i] = src[r * C + c];
    }
}

// Argmax of row blockIdx.x of x [rows, V] into out[blockIdx.x] (first index among equal
// maxima, as the CPU path).
__global__ void argmax_kernel(int *out, const float *x, int V) {
    pdl_enter();
    x += (size_t)blockIdx.x * V;
    out += blockIdx.x;
    __shared__ float bv[32];
    __shared__ int bi[32];
    float best = -INFINITY;
    int idx = 0x7fffffff;
    // float4 loads, unrolled, when the row allows: one block reads the whole row, so the loads in
    // flight per thread set its speed.
    const int V4 = (V % 4 == 0 && ((uintptr_t)x & 15) == 0) ? V / 4 : 0;
#pragma unroll 4
    for (int i = threadIdx.x; i < V4; i += blockDim.x) {
        float4 v = reinterpret_cast<const float4 *>(x)[i];
        if (v.x > best) best = v.x, idx = 4 * i;
        if (v.y > best) best = v.y, idx = 4 * i + 1;
        if (v.z > best) best = v.z, idx = 4 * i + 2;
        if (v.w > best) best = v.w, idx = 4 * i + 3;
    }
    for (int i = 4 * V4 + threadIdx.x; i < V; i += blockDim.x) {
        float v = x[i];
        if (v > best) best = v, idx = i;
    }
    for (int o = 16; o > 0; o >>= 1) {
        float v2 = __shfl_xor_sync(0xffffffffu, best, o);
        int i2 = __shfl_xor_sync(0xffffffffu, idx, o);
        if (v2 > best || (v2 == best && i2 < idx)) best = v2, idx = i2;
    }
    if (threadIdx.x % 32 == 0) bv[threadIdx.x / 32] = best, bi[threadIdx.x / 32] = idx;
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < (int)blockDim.x / 32; w++)
            if (bv[w] > best || (bv[w] == best && bi[w] < idx)) best = bv[w], idx = bi[w];
        *out = idx == 0x7fffffff ? 0 : idx;
    }
}

// A KV cache as one layer call sees it: K and V [L, B, cap, KV]; len (device) the cache length
// before this call, one shared value or one per sequence (per_row). prompt_lens (device [B]):
// a batched prefill from empty caches of right-padded prompts; attention then runs over this
// call's own tokens (the full-sequence kernel with lens) while the keys and values are stored.
struct KvView {
    bf16 *k, *v;
    int cap;
    const int *len;
    int per_row;
    const int *prompt_lens;
    int rows;             // sequences the cache holds (its layer stride is rows * cap * KV)
    const int *seq_row;   // device: the cache row of each of this call's sequences, or NULL (b)
    const int *seq_lens;  // per_row without prompt_lens: valid tokens of each sequence, or NULL (T)
};

// One decoder layer over N = B*T tokens. kv: append this call's keys and values to that cache
// and attend over it (NULL: attend over this call's tokens only); pos are the tokens' positions
// (device). lo: the adapters of this call, or NULL.
static void layer_forward(Qwen3Cuda *g, int l, int B, int T, const KvView *kv, const int *pos, const LayerActs &a,
                          const Qwen3CudaLora *lo) {
    const size_t N = (size_t)B * T, C = g->C, I = g->I, Q = g->Q, KV = g->KV, QKV = g->QKV, HD = g->HD;
    const size_t s = act_slot(g, l);
    const float eps = (float)g->cfg.rms_norm_eps;
    bf16 *x = g->x + l * N * C, *xn = g->x + (l + 1) * N * C;
    // One decoding row through the fused products (norm / activation inside the product; no rstd,
    // which only a backward reads): opt-in, qwen3_cuda_set_fused_decode.
    const bool fused = kv && N == 1 && g->fused_decode && matvec_cuda_fits(x, P(QG_QKV, 0), (int)C) &&
                       matvec_cuda_fits(a.gu, P(QG_DOWN, 0), (int)I);
    if (fused) {
        matvec_cuda_rmsnorm(a.qkvr, PAW_OUT_BF16, x, P(QG_LN1, l * C), eps, a.ln1, P(QG_QKV, l * QKV * C), NULL, (int)C,
                            (int)QKV, 1.0f, 0.0f);
    } else {
        rmsnorm_cuda_forward(a.ln1, a.ln1_rstd, x, P(QG_LN1, l * C), (int)N, (int)C, (long)C, eps);
        matmul_cuda_forward(a.qkvr, PAW_OUT_BF16, a.ln1, P(QG_QKV, l * QKV * C), NULL, (int)N, (int)C, (int)QKV, 1.0f,
                            0.0f);
    }
    // Decoding steps with the fused path: each input's side paths in two launches (8 a layer, not 14).
    const bool lora_tokens = lo && kv && T == 1 && g->fused_decode;
    if (lo) {  // into the columns of the packed q/k/v output, before the norms and RoPE (as on the CPU)
        const int mods[3] = {LORA_Q, LORA_K, LORA_V};
        const size_t off[3] = {0, Q, Q + KV};
        lora_group(g, lo, lora_tokens, mods, off, 3, l, s, B, T, a.qkvr, (int)QKV, a.ln1);
    }
    // With a cache, the keys and values of this call go into it from the same kernel.
    const size_t layer = kv ? (size_t)l * kv->rows * kv->cap * KV : 0;
    bf16 *kc = kv ? kv->k + layer : NULL, *vc = kv ? kv->v + layer : NULL;
    RopeCacheDst dst = {kc, vc, kv ? kv->len : NULL, kv ? kv->per_row : 0, T, kv ? kv->cap : 0, kv ? kv->seq_row : NULL};
    qknorm_rope_cuda_forward_cache(a.qkv, a.qkvr, P(QG_QN, l * HD), P(QG_KN, l * HD), g->rope_cos, g->rope_sin, pos,
                                   (int)N, g->NH, g->NKV, g->HD, eps, kv ? &dst : NULL);
    if (kv) {
        if (kv->prompt_lens)
            attention_cuda_forward(a.att, NULL, a.qkv, a.qkv + Q, a.qkv + Q + KV, kv->prompt_lens, NULL, B, T, T, g->NH,
                                   g->NKV, g->HD, (long)QKV, (long)QKV, (long)T * QKV);
        else if (kv->per_row)
            attention_cuda_forward_rows(a.att, a.qkv, kc, vc, kv->len, kv->seq_lens, kv->seq_row, B, T, g->NH, g->NKV,
                                        g->HD, (long)QKV, (long)KV, (long)kv->cap * KV);
        else
            attention_cuda_forward(a.att, NULL, a.qkv, kc, vc, NULL, kv->len, B, T, 0, g->NH, g->NKV, g->HD, (long)QKV,
                                   (long)KV, (long)kv->cap * KV);
    } else {
        attention_cuda_forward(a.att, a.lse, a.qkv, a.qkv + Q, a.qkv + Q + KV, g->has_lens ? g->d_lens : NULL, NULL, B,
                               T, T, g->NH, g->NKV, g->HD, (long)QKV, (long)QKV, (long)T * QKV);
    }
    // Residual adds ride on the GEMM epilogue: xmid = x + att @ Wo^T, x_next = xmid + act @ Wdown^T.
    matmul_cuda_forward(a.xmid, PAW_OUT_BF16, a.att, P(QG_O, l * C * Q), x, (int)N, (int)Q, (int)C, 1.0f, 1.0f);
    const int o_mod[1] = {LORA_O}, down_mod[1] = {LORA_DOWN};
    const size_t no_off[1] = {0};
    if (lo) lora_group(g, lo, lora_tokens, o_mod, no_off, 1, l, s, B, T, a.xmid, (int)C, a.att);
    if (fused) {
        matvec_cuda_rmsnorm(a.gu, PAW_OUT_BF16, a.xmid, P(QG_LN2, l * C), eps, a.ln2, P(QG_GU, l * 2 * I * C), NULL,
                            (int)C, (int)(2 * I), 1.0f, 0.0f);
    } else {
        rmsnorm_cuda_forward(a.ln2, a.ln2_rstd, a.xmid, P(QG_LN2, l * C), (int)N, (int)C, (long)C, eps);
        matmul_cuda_forward(a.gu, PAW_OUT_BF16, a.ln2, P(QG_GU, l * 2 * I * C), NULL, (int)N, (int)C, (int)(2 * I),
                            1.0f, 0.0f);
    }
    if (lo) {
        const int mods[2] = {LORA_GATE, LORA_UP};
        const size_t off[2] = {0, I};
        lora_group(g, lo, lora_tokens, mods, off, 2, l, s, B, T, a.gu, (int)(2 * I), a.ln2);
    }
    if (fused) {
        matvec_cuda_swiglu(xn, PAW_OUT_BF16, a.gu, a.act, P(QG_DOWN, l * C * I), a.xmid, (int)I, (int)C, 1.0f, 1.0f);
    } else {
        swiglu_cuda_forward(a.act, a.gu, (int)N, (int)I);
        matmul_cuda_forward(xn, PAW_OUT_BF16, a.act, P(QG_DOWN, l * C * I), a.xmid, (int)N, (int)I, (int)C, 1.0f,
                            1.0f);
    }
    if (lo) lora_group(g, lo, lora_tokens, down_mod, no_off, 1, l, s, B, T, xn, (int)C, a.act);
}

extern "C" int qwen3_cuda_forward(Qwen3Cuda *g, const Qwen3CudaInputs *in, int B, int T) {
    const int C = g->C, V = g->V, L = g->L;
    if (B <= 0 || T <= 0) return paw_error("forward: empty batch (B=%d, T=%d)", B, T);
    if (T > g->rope_len) return paw_error("forward: T=%d exceeds max_position_embeddings %d", T, g->rope_len);
    const size_t N = (size_t)B * T;
    for (size_t n = 0; n < N; n++) {
        int id = in->ids ? in->ids[n] : -1;
        if (id >= V || (id < 0 && !in->embeds && !in->embeds_dev))
            return paw_error("forward: token id %d at position %zu is outside the vocabulary [0, %d)", id, n, V);
    }
    if (in->lens)
        for (int b = 0; b < B; b++)
            if (in->lens[b] < 0 || in->lens[b] > T)
                return paw_error("forward: lens[%d] = %d is outside [0, %d]", b, in->lens[b], T);
    if (in->embeds && in->embeds_dev) return paw_error("forward: give host or device input embeddings, not both");
    if (in->lora && check_lora(in->lora, B, "forward") != 0) return -1;
    ensure_acts(g, N);
    if (in->lora) ensure_lora(g, N, in->lora->rank);
    g->B = B, g->T = T, g->has_loss = 0, g->backward_ready = 0, g->logits_rows = 0, g->full_ready = 0;
    g->has_lora = in->lora != NULL;
    if (in->lora) g->lora = *in->lora;
    g->has_lens = in->lens != NULL;
    if (in->lens) paw_cuda_upload(g->d_lens, in->lens, sizeof(int) * (size_t)B);
    for (size_t n = 0; n < N; n++) g->h_pos[n] = (int)(n % (size_t)T);
    paw_cuda_upload(g->d_pos, g->h_pos, sizeof(int) * N);
    if (in->ids) {
        paw_cuda_upload(g->d_ids, in->ids, sizeof(int) * N);
    } else {
        for (size_t n = 0; n < N; n++) g->h_pos[n] = -1;  // reused as an all -1 id list
        paw_cuda_upload(g->d_ids, g->h_pos, sizeof(int) * N);
    }
    if (in->embeds) paw_cuda_upload_bf16(g->x, in->embeds, N * C);
    if (in->embeds_dev) paw_cuda_f32_to_bf16(g->x, in->embeds_dev, N * C);
    embedding_cuda_forward(g->x, g->d_ids, P(QG_WTE, 0), (int)N, C);

    for (int l = 0; l < L; l++) layer_forward(g, l, B, T, NULL, g->d_pos, layer_acts(g, l, N), in->lora);

    const bf16 *xL = g->x + (size_t)L * N * C;
    const float eps = (float)g->cfg.rms_norm_eps;
    if (in->targets) {
        // The LM head and the loss on the weighted rows only (a prompt's rows have weight 0): their
        // final-norm outputs side by side, their gradients put back in place; the other rows'
        // gradients are 0, as the loss gives them. The CPU's QWEN3_LOGITS_WEIGHTED.
        double wsum = 0;
        int nw = 0;
        for (size_t n = 0; n < N; n++) {
            float w = in->loss_weight ? in->loss_weight[n] : 1.0f;
            if (in->lens && (int)(n % (size_t)T) >= in->lens[n / (size_t)T]) w = 0.0f;  // padding
            if (w == 0.0f) continue;
            if (in->targets[n] < 0 || in->targets[n] >= V)
                return paw_error("forward: weighted position %zu has target %d outside [0, %d)", n, in->targets[n], V);
            g->h_rows[nw] = (int)n, g->h_row_targets[nw] = in->targets[n];
            g->h_row_weights[nw++] = w;
            wsum += w;
        }
        paw_cuda_upload(g->d_targets, g->h_row_targets, sizeof(int) * (size_t)nw);
        paw_cuda_upload(g->d_weights, g->h_row_weights, sizeof(float) * (size_t)nw);
        paw_cuda_upload(g->d_rows, g->h_rows, sizeof(int) * (size_t)nw);
        rmsnorm_cuda_forward(g->lnf, g->lnf_rstd, xL, P(QG_LNF, 0), (int)N, C, (long)C, eps);
        if (nw > 0) {
            copy_rows_kernel<<<grid_for((size_t)nw * C), 256, 0, paw_cuda_stream()>>>(g->lnf_rows, g->lnf, g->d_rows, nw,
                                                                                      C, 0);
            CUDA_CHECK_LAUNCH();
        }
        float scale = in->grad_scale != 0.0f ? in->grad_scale : (wsum > 0 ? (float)(1.0 / wsum) : 0.0f);
        ensure_ce(g, (size_t)nw);
        if (in->backward) ensure_scratch(g, N);
        // The rows' input gradients go to dln (unused until the backward's layers), then to dlnf.
        lmhead_ce_cuda(g->d_nll, in->backward ? g->dln : NULL, in->backward ? GR(QG_HEAD, 0) : NULL, g->lnf_rows,
                       P(QG_HEAD, 0), g->d_targets, g->d_weights, nw, C, V, scale, g->ce_logits, g->ce_dlogits,
                       g->ce_rows);
        if (in->backward) {
            paw_cuda_memset(g->dlnf, 0, sizeof(bf16) * N * C);
            if (nw > 0) {
                copy_rows_kernel<<<grid_for((size_t)nw * C), 256, 0, paw_cuda_stream()>>>(g->dlnf, g->dln, g->d_rows, nw,
                                                                                          C, 1);
                CUDA_CHECK_LAUNCH();
            }
        }
        paw_cuda_download(g->h_nll, g->d_nll, sizeof(float) * (size_t)nw);
        double total = 0;  // in row order, as before the rows were gathered
        for (int i = 0; i < nw; i++) total += (double)g->h_row_weights[i] * g->h_nll[i];
        g->loss_sum = total;
        g->weight_sum = wsum;
        g->loss = wsum > 0 ? (float)(total / wsum) : 0.0f;
        g->has_loss = 1;
        g->backward_ready = in->backward != 0;
        g->full_ready = 1;
        return 0;
    }
    if (in->logits_mode == QWEN3_LOGITS_LAST) {
        const bf16 *last = xL + (size_t)(T - 1) * C;
        long stride = (long)T * C;
        if (in->lens) {  // each sequence's own last token, gathered into x[0] (the input embeddings are spent)
            gather_last_rows_kernel<<<grid_for((size_t)B * C), 256, 0, paw_cuda_stream()>>>(g->x, xL, g->d_lens, B, T, C);
            CUDA_CHECK_LAUNCH();
            last = g->x, stride = C;
        }
        rmsnorm_cuda_forward(g->lnf, g->lnf_rstd, last, P(QG_LNF, 0), B, C, stride, eps);
        ensure_logits(g, B);
        matmul_cuda_forward(g->logits, PAW_OUT_F32, g->lnf, P(QG_HEAD, 0), NULL, B, C, V, 1.0f, 0.0f);
        g->logits_rows = B;
    } else {
        rmsnorm_cuda_forward(g->lnf, g->lnf_rstd, xL, P(QG_LNF, 0), (int)N, C, (long)C, eps);
        g->full_ready = 1;
        if (in->logits_mode == QWEN3_LOGITS_ALL) {
            ensure_logits(g, N);
            matmul_cuda_forward(g->logits, PAW_OUT_F32, g->lnf, P(QG_HEAD, 0), NULL, (int)N, C, V, 1.0f, 0.0f);
            g->logits_rows = (int)N;
        }
    }
    paw_cuda_sync();
    return 0;
}

extern "C" float qwen3_cuda_loss(const Qwen3Cuda *g) { return g->loss; }
extern "C" int qwen3_cuda_logits_rows(const Qwen3Cuda *g) { return g->logits_rows; }

extern "C" int qwen3_cuda_get_logits(const Qwen3Cuda *g, float *out) {
    if (g->logits_rows <= 0) return paw_error("get_logits: the last forward kept no logits");
    paw_cuda_download(out, g->logits, sizeof(float) * (size_t)g->logits_rows * g->V);
    return 0;
}

// dst16 = bf16(src + (accumulate ? dst16 : 0)): an injected gradient on the final-norm output,
// alone or on top of the loss gradient.
__global__ void add_f32_to_bf16_kernel(bf16 *dst, const float *src, size_t n, int accumulate) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = __float2bfloat16_rn(src[i] + (accumulate ? __bfloat162float(dst[i]) : 0.0f));
}

// The residual-stream gradient gets an injected gradient: dx32 += inj, and its bf16 copy follows.
__global__ void inject_kernel(float *dx32, bf16 *dx16, const float *inj, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float v = dx32[i] + inj[i];
        dx32[i] = v;
        dx16[i] = __float2bfloat16_rn(v);
    }
}

static void inject(Qwen3Cuda *g, const float *inj, size_t n) {
    inject_kernel<<<grid_for(n), 256, 0, paw_cuda_stream()>>>(g->dx32, g->dx16, inj, n);
    CUDA_CHECK_LAUNCH();
}

// dW += dout^T inp for a layer matrix, into the fp32 or the bf16 gradient block (nothing when frozen).
static void weight_grad(Qwen3Cuda *g, int grp, size_t off, const bf16 *dout, const bf16 *inp, int N, int C, int OC) {
    if (g->grads16) matmul_cuda_backward_weight_bf16(g->grads16 + (g->lay.base[grp] - g->lay.split) + off, dout, inp, N, C, OC);
    else if (g->grads) matmul_cuda_backward_weight(g->grads + g->lay.base[grp] + off, dout, inp, N, C, OC);
}

extern "C" int qwen3_cuda_backward_ex(Qwen3Cuda *g, const Qwen3CudaBackwardArgs *args) {
    const float *dlnf_in = args ? args->dlnf : NULL;
    const float *const *dx_layer = args ? args->dx_layer : NULL;
    const int with_loss = g->backward_ready;
    if (!g->full_ready || (!with_loss && !dlnf_in && !dx_layer))
        return paw_error("backward: needs a full-sequence forward just before it, with targets and backward = 1 or "
                         "with injected gradients");
    g->backward_ready = 0;
    g->full_ready = 0;
    const int B = g->B, T = g->T, L = g->L;
    const size_t N = (size_t)B * T, C = g->C, I = g->I, Q = g->Q, KV = g->KV, QKV = g->QKV, HD = g->HD;
    const float eps = (float)g->cfg.rms_norm_eps;
    const int lora = g->has_lora;
    ensure_scratch(g, N);
    paw_cuda_memset(g->dx32, 0, sizeof(float) * N * C);
    if (dlnf_in) {
        add_f32_to_bf16_kernel<<<grid_for(N * C), 256, 0, paw_cuda_stream()>>>(g->dlnf, dlnf_in, N * C, with_loss);
        CUDA_CHECK_LAUNCH();
    }
    if (with_loss || dlnf_in)
        rmsnorm_cuda_backward(g->dx32, g->dx16, GR(QG_LNF, 0), g->dlnf, g->x + (size_t)L * N * C, P(QG_LNF, 0),
                              g->lnf_rstd, (int)N, (int)C);
    else
        paw_cuda_memset(g->dx16, 0, sizeof(bf16) * N * C);
    Qwen3GradsReadyFn report = g->grads && args ? args->on_grads_ready : NULL;
    if (report) report(args->ctx, QWEN3_GRADS_HEAD);  // the final norm and an untied head (from the loss pass)
    for (int l = L - 1; l >= 0; l--) {
        if (dx_layer && dx_layer[l + 1]) inject(g, dx_layer[l + 1], N * C);
        LayerActs a = layer_acts(g, l, N);
        const size_t s = act_slot(g, l);
        if (recomputed(g, l)) layer_forward(g, l, B, T, NULL, g->d_pos, a, lora ? &g->lora : NULL);
        const bf16 *x = g->x + l * N * C;
        // MLP: x_next = xmid + down(swiglu(gu(ln2(xmid)))); dx16 = d x_next.
        matmul_cuda_backward_input(g->dact, g->dx16, P(QG_DOWN, l * C * I), (int)N, (int)I, (int)C, 0.0f);
        weight_grad(g, QG_DOWN, l * C * I, g->dx16, a.act, (int)N, (int)I, (int)C);
        if (lora) lora_bwd(g, LORA_DOWN, l, s, g->dact, g->dx16, (int)C, a.act);
        swiglu_cuda_backward(g->dgu, g->dact, a.gu, (int)N, (int)I);
        matmul_cuda_backward_input(g->dln, g->dgu, P(QG_GU, l * 2 * I * C), (int)N, (int)C, (int)(2 * I), 0.0f);
        weight_grad(g, QG_GU, l * 2 * I * C, g->dgu, a.ln2, (int)N, (int)C, (int)(2 * I));
        if (lora) {
            lora_bwd(g, LORA_GATE, l, s, g->dln, g->dgu, (int)(2 * I), a.ln2);
            lora_bwd(g, LORA_UP, l, s, g->dln, g->dgu + I, (int)(2 * I), a.ln2);
        }
        rmsnorm_cuda_backward(g->dx32, g->dx16, GR(QG_LN2, l * C), g->dln, a.xmid, P(QG_LN2, l * C), a.ln2_rstd, (int)N,
                              (int)C);
        // Attention: xmid = x + o(attn(rope(norm(q)), rope(norm(k)), v)).
        matmul_cuda_backward_input(g->datt, g->dx16, P(QG_O, l * C * Q), (int)N, (int)Q, (int)C, 0.0f);
        weight_grad(g, QG_O, l * C * Q, g->dx16, a.att, (int)N, (int)Q, (int)C);
        if (lora) lora_bwd(g, LORA_O, l, s, g->datt, g->dx16, (int)C, a.att);
        attention_cuda_backward(g->dqkv, g->dqkv + Q, g->dqkv + Q + KV, (long)QKV, (long)QKV, g->dq32, g->dsum,
                                g->datt, a.qkv, a.qkv + Q, a.qkv + Q + KV, (long)QKV, (long)QKV, a.att, a.lse,
                                g->has_lens ? g->d_lens : NULL, B, T, g->NH, g->NKV, g->HD);
        qknorm_rope_cuda_backward(g->dqkvr, GR(QG_QN, l * HD), GR(QG_KN, l * HD), g->dqkv, a.qkvr, P(QG_QN, l * HD),
                                  P(QG_KN, l * HD), g->rope_cos, g->rope_sin, g->d_pos, (int)N, g->NH, g->NKV, g->HD,
                                  eps);
        matmul_cuda_backward_input(g->dln, g->dqkvr, P(QG_QKV, l * QKV * C), (int)N, (int)C, (int)QKV, 0.0f);
        weight_grad(g, QG_QKV, l * QKV * C, g->dqkvr, a.ln1, (int)N, (int)C, (int)QKV);
        if (lora) {
            lora_bwd(g, LORA_Q, l, s, g->dln, g->dqkvr, (int)QKV, a.ln1);
            lora_bwd(g, LORA_K, l, s, g->dln, g->dqkvr + Q, (int)QKV, a.ln1);
            lora_bwd(g, LORA_V, l, s, g->dln, g->dqkvr + Q + KV, (int)QKV, a.ln1);
        }
        rmsnorm_cuda_backward(g->dx32, g->dx16, GR(QG_LN1, l * C), g->dln, x, P(QG_LN1, l * C), a.ln1_rstd, (int)N,
                              (int)C);
        if (report) report(args->ctx, l);
    }
    if (dx_layer && dx_layer[0]) inject(g, dx_layer[0], N * C);
    if (g->grads) embedding_cuda_backward(GR(QG_WTE, 0), g->dx32, g->d_ids, (int)N, (int)C);
    if (report) report(args->ctx, QWEN3_GRADS_EMBED);
    paw_cuda_sync();
    return 0;
}

extern "C" int qwen3_cuda_group_grads(Qwen3Cuda *g, int group, Qwen3CudaGradSlice out[8]) {
    if (!g->grads) return 0;
    Qwen3DevSlice sl[8];
    int k = qwen3_dev_report_slices(&g->lay, group, sl);
    // fp32 groups live in grads, layer matrices in grads16 when it exists.
    for (int i = 0; i < k; i++) {
        if (g->grads16 && qwen3_dev_is_matrix_group(sl[i].group)) out[i] = {g->grads16 + (sl[i].dev - g->lay.split), sl[i].n, 1};
        else out[i] = {g->grads + sl[i].dev, sl[i].n, 0};
    }
    return k;
}

extern "C" int qwen3_cuda_backward(Qwen3Cuda *g) {
    if (!g->backward_ready)
        return paw_error("backward: needs a full-sequence forward with targets and backward = 1 just before it");
    return qwen3_cuda_backward_ex(g, NULL);
}

extern "C" const paw_bf16 *qwen3_cuda_hidden(const Qwen3Cuda *g, int l) {
    if (l < 0 || l > g->L || !g->x) return NULL;
    return g->x + (size_t)l * g->B * g->T * g->C;
}
extern "C" const paw_bf16 *qwen3_cuda_final_norm(const Qwen3Cuda *g) { return g->lnf; }
extern "C" const float *qwen3_cuda_input_grad_dev(const Qwen3Cuda *g) { return g->dx32; }

extern "C" int qwen3_cuda_get_input_grad(const Qwen3Cuda *g, float *out) {
    if (!g->dx32) return paw_error("get_input_grad: no backward has run");
    paw_cuda_download(out, g->dx32, sizeof(float) * (size_t)g->B * g->T * g->C);
    return 0;
}

extern "C" void qwen3_cuda_zero_grad(Qwen3Cuda *g) {
    // A loss forward with backward = 1 has already added the LM head's gradient (the logits are
    // never kept): zeroing now would silently drop it.
    if (g->backward_ready) paw_die("qwen3_cuda_zero_grad: called between a loss forward and its backward; zero the "
                                   "gradients before the forward");
    if (g->grads) paw_cuda_memset(g->grads, 0, sizeof(float) * (g->grads16 ? g->lay.split : g->lay.total));
    if (g->grads16) paw_cuda_memset(g->grads16, 0, sizeof(bf16) * (g->lay.total - g->lay.split));
}

static int copy_out(const Qwen3Cuda *g, Qwen3Params *dst, int grads) {
    if (grads && !g->grads) return paw_error("get_grads: the model is frozen (no weight gradients)");
    for (int i = 0; i < QWEN3_NUM_PARAMS; i++) {
        Qwen3ParamInfo info = qwen3_param_info(&g->cfg, i);
        if (info.numel == 0) continue;
        int layers = info.per_layer ? g->L : 1;
        size_t per = info.numel / (size_t)layers;
        float *t = *qwen3_param_slot(dst, i);
        for (int l = 0; l < layers; l++) {
            size_t off = gpu_offset(g, i, l);
            if (grads && g->grads16 && off >= g->lay.split) paw_cuda_download_bf16(t + l * per, g->grads16 + (off - g->lay.split), per);
            else if (grads) paw_cuda_download(t + l * per, g->grads + off, sizeof(float) * per);
            else paw_cuda_download_bf16(t + l * per, g->params + off, per);
        }
    }
    return 0;
}

extern "C" int qwen3_cuda_get_grads(const Qwen3Cuda *g, Qwen3Params *dst) { return copy_out(g, dst, 1); }
extern "C" int qwen3_cuda_get_params(const Qwen3Cuda *g, Qwen3Params *dst) { return copy_out(g, dst, 0); }

// ---- the optimizer: whole state, or this rank's ZeRO-1 shard ----------------------------------------

// The runs of [lo, hi) of the CPU layout (a new array of *n), or NULL + paw_error outside the model.
static Qwen3DevRun *dev_runs(const Qwen3Cuda *g, size_t lo, size_t hi, int *n) {
    *n = qwen3_dev_runs(&g->lay, lo, hi, NULL, 0);
    if (*n < 0) {
        paw_error("runs [%zu, %zu) outside the model's %zu parameters", lo, hi, g->lay.cpu_total);
        return NULL;
    }
    Qwen3DevRun *runs = (Qwen3DevRun *)xmalloc(sizeof(Qwen3DevRun) * (size_t)(*n + 1));
    qwen3_dev_runs(&g->lay, lo, hi, runs, *n);
    return runs;
}

static size_t adam_elems(const Qwen3Cuda *g) {
    return g->sharded ? g->shard_pad + g->shard_hi - g->shard_lo : g->lay.total;
}
// Where CPU-layout element i of this rank's shard sits in the sharded state. The padding keeps
// i's position mod 4, which is its weights' and gradients' (every tensor of the real shapes is a
// multiple of 4 long), so that AdamW runs four-wide on every rank, not only where lo % 4 == 0.
static size_t shard_at(const Qwen3Cuda *g, size_t i) { return g->shard_pad + (i - g->shard_lo); }

// The gradient of a run: in the fp32 block, or in the bf16 block of the layer matrices.
static void run_grad(const Qwen3Cuda *g, const Qwen3DevRun *r, float **f32, bf16 **b16) {
    *f32 = NULL, *b16 = NULL;
    if (!g->grads) return;
    if (g->grads16 && r->dev >= g->lay.split) *b16 = g->grads16 + (r->dev - g->lay.split);
    else *f32 = g->grads + r->dev;
}

static void ensure_adam(Qwen3Cuda *g) {
    if (g->master) return;
    size_t n = adam_elems(g), bytes = sizeof(float) * (n ? n : 1);
    g->master = (float *)paw_cuda_malloc(bytes);
    g->adam_m = (float *)paw_cuda_malloc(bytes);
    g->adam_v = (float *)paw_cuda_malloc(bytes);
    if (!g->sharded) paw_cuda_bf16_to_f32(g->master, g->params, n);
    for (int k = 0; g->sharded && k < g->shard_nruns; k++) {
        const Qwen3DevRun *r = &g->shard_runs[k];
        paw_cuda_bf16_to_f32(g->master + shard_at(g, r->cpu), g->params + r->dev, r->n);
    }
    paw_cuda_memset(g->adam_m, 0, sizeof(float) * n);
    paw_cuda_memset(g->adam_v, 0, sizeof(float) * n);
}

extern "C" int qwen3_cuda_shard_optimizer(Qwen3Cuda *g, size_t lo, size_t hi) {
    if (!g->grads) return paw_error("ZeRO-1: the model is frozen (no optimizer state to shard)");
    if (g->sharded) return paw_error("ZeRO-1: the optimizer state is already sharded");
    int n;
    Qwen3DevRun *runs = dev_runs(g, lo, hi, &n);
    if (!runs) return paw_error_context("ZeRO-1 shard");
    size_t pad = lo % 4;
    if (g->master) {  // state made before (the fp32 master from the host): keep the shard's part
        float **blocks[3] = {&g->master, &g->adam_m, &g->adam_v};
        for (int b = 0; b < 3; b++) {
            float *part = (float *)paw_cuda_malloc(sizeof(float) * (pad + hi - lo ? pad + hi - lo : 1));
            for (int k = 0; k < n; k++)
                paw_cuda_copy(part + pad + (runs[k].cpu - lo), *blocks[b] + runs[k].dev, sizeof(float) * runs[k].n);
            paw_cuda_sync();
            paw_cuda_free(*blocks[b]);
            *blocks[b] = part;
        }
    }
    g->sharded = 1, g->shard_lo = lo, g->shard_hi = hi, g->shard_pad = pad, g->shard_runs = runs, g->shard_nruns = n;
    return 0;
}

extern "C" int qwen3_cuda_runs(const Qwen3Cuda *g, size_t lo, size_t hi, Qwen3CudaRun *out, int cap) {
    int n;
    Qwen3DevRun *runs = dev_runs(g, lo, hi, &n);
    if (!runs) return -1;
    for (int k = 0; k < n && k < cap && out; k++) {
        float *f32;
        bf16 *b16;
        run_grad(g, &runs[k], &f32, &b16);
        out[k].flat = runs[k].cpu, out[k].n = runs[k].n, out[k].param = g->params + runs[k].dev, out[k].param_bf16 = 1;
        out[k].grad = b16 ? (void *)b16 : (void *)f32, out[k].grad_bf16 = b16 != NULL;
    }
    free(runs);
    return n;
}

extern "C" void qwen3_cuda_grad_norm_sq(const Qwen3Cuda *g, float *d_norm_sq) {
    if (!g->grads) return;
    if (!g->sharded) {
        grad_norm_sq_cuda(d_norm_sq, g->grads, g->grads16 ? g->lay.split : g->lay.total);
        if (g->grads16) grad_norm_sq_bf16_cuda(d_norm_sq, g->grads16, g->lay.total - g->lay.split);
        return;
    }
    for (int k = 0; k < g->shard_nruns; k++) {
        float *f32;
        bf16 *b16;
        run_grad(g, &g->shard_runs[k], &f32, &b16);
        if (b16) grad_norm_sq_bf16_cuda(d_norm_sq, b16, g->shard_runs[k].n);
        else grad_norm_sq_cuda(d_norm_sq, f32, g->shard_runs[k].n);
    }
}

// The AdamW update's random bits for group grp at `step`, from element `at` of the group on: what
// qwen3_cuda_adamw_apply rounds with, and a resume (qwen3_cuda_set_adam_state) again.
static unsigned long long adam_round_seed(int step, int grp, size_t at) {
    return adamw_seed_at(0x5eedull * (unsigned long long)step + (unsigned long long)grp, at);
}

extern "C" int qwen3_cuda_adamw_apply(Qwen3Cuda *g, const Qwen3CudaAdamW *opt, int step, const float *d_norm_sq) {
    if (!g->grads) return paw_error("adamw: the model is frozen (no weight gradients)");
    if (step < 1) return paw_error("adamw: step %d, expected >= 1", step);
    ensure_adam(g);
    g->adam_step = step;
    float max_norm = d_norm_sq ? opt->max_grad_norm : 0.0f;
    if (g->sharded) {
        // Run by run, each drawing the random bits the whole-group update would (adamw_seed_at).
        for (int k = 0; k < g->shard_nruns; k++) {
            const Qwen3DevRun *r = &g->shard_runs[k];
            float wd = qwen3_dev_is_norm_group(r->group) ? 0.0f : opt->weight_decay;
            unsigned long long seed = adam_round_seed(step, r->group, r->dev - g->lay.base[r->group]);
            size_t s = shard_at(g, r->cpu);
            float *f32;
            bf16 *b16;
            run_grad(g, r, &f32, &b16);
            if (b16)
                adamw_bf16_grad_cuda(g->params + r->dev, g->master + s, b16, g->adam_m + s, g->adam_v + s, r->n, opt->lr,
                                     opt->beta1, opt->beta2, opt->eps, wd, step, d_norm_sq, max_norm, seed);
            else
                adamw_cuda(g->params + r->dev, g->master + s, f32, g->adam_m + s, g->adam_v + s, r->n, opt->lr,
                           opt->beta1, opt->beta2, opt->eps, wd, step, d_norm_sq, max_norm, seed);
        }
        return 0;
    }
    for (int grp = 0; grp < QG_NUM; grp++) {
        size_t off = g->lay.base[grp], cnt = g->lay.extent[grp];
        if (!cnt) continue;  // a tied head has no parameters of its own
        float wd = qwen3_dev_is_norm_group(grp) ? 0.0f : opt->weight_decay;
        unsigned long long seed = adam_round_seed(step, grp, 0);
        if (g->grads16 && qwen3_dev_is_matrix_group(grp))
            adamw_bf16_grad_cuda(g->params + off, g->master + off, g->grads16 + (off - g->lay.split), g->adam_m + off,
                                 g->adam_v + off, cnt, opt->lr, opt->beta1, opt->beta2, opt->eps, wd, step, d_norm_sq,
                                 max_norm, seed);
        else
            adamw_cuda(g->params + off, g->master + off, g->grads + off, g->adam_m + off, g->adam_v + off, cnt,
                       opt->lr, opt->beta1, opt->beta2, opt->eps, wd, step, d_norm_sq, max_norm, seed);
    }
    return 0;
}

extern "C" int qwen3_cuda_adamw_step(Qwen3Cuda *g, const Qwen3CudaAdamW *opt, float *grad_norm) {
    if (!g->grads) return paw_error("adamw: the model is frozen (no weight gradients)");
    paw_cuda_memset(g->d_norm_sq, 0, sizeof(float));
    qwen3_cuda_grad_norm_sq(g, g->d_norm_sq);
    if (qwen3_cuda_adamw_apply(g, opt, g->adam_step + 1, g->d_norm_sq) != 0) return -1;
    if (grad_norm) {
        float sq = 0;
        paw_cuda_download(&sq, g->d_norm_sq, sizeof sq);
        *grad_norm = sqrtf(sq);
    }
    return 0;
}

// Flat CPU-layout fp32 buffer <-> one of the fp32 device blocks (GPU layout), tensor by tensor.
static void flat_transfer(const Qwen3Cuda *g, float *dev_block, float *flat, int to_device) {
    size_t cpu_off = 0;
    for (int i = 0; i < QWEN3_NUM_PARAMS; i++) {
        Qwen3ParamInfo info = qwen3_param_info(&g->cfg, i);
        if (info.numel == 0) continue;
        int layers = info.per_layer ? g->L : 1;
        size_t per = info.numel / (size_t)layers;
        for (int l = 0; l < layers; l++) {
            float *h = flat + cpu_off + (size_t)l * per, *d = dev_block + gpu_offset(g, i, l);
            if (to_device) paw_cuda_upload(d, h, sizeof(float) * per);
            else paw_cuda_download(h, d, sizeof(float) * per);
        }
        cpu_off += info.numel;
    }
}

static float *adam_block(const Qwen3Cuda *g, int which) {
    return which == 0 ? g->master : which == 1 ? g->adam_m : which == 2 ? g->adam_v : NULL;
}

extern "C" int qwen3_cuda_get_adam_state(const Qwen3Cuda *g, int which, float *flat) {
    if (which < 0 || which > 2) return paw_error("adam state: which = %d, expected 0, 1 or 2", which);
    if (!g->master) return paw_error("adam state: no optimizer step has run yet");
    if (!g->sharded) flat_transfer(g, adam_block(g, which), flat, 0);
    else
        paw_cuda_download(which == 0 ? flat + g->shard_lo : flat, adam_block(g, which) + g->shard_pad,
                          sizeof(float) * (g->shard_hi - g->shard_lo));
    return 0;
}

extern "C" int qwen3_cuda_set_adam_step(Qwen3Cuda *g, int step) {
    if (step < 0) return paw_error("adam state: step %d, expected >= 0", step);
    g->adam_step = step;
    return 0;
}

// The group holding device element d.
static int dev_group(const Qwen3Cuda *g, size_t d) {
    for (int grp = 0; grp < QG_NUM; grp++)
        if (d >= g->lay.base[grp] && d < g->lay.base[grp] + g->lay.extent[grp]) return grp;
    return -1;
}

// The bf16 weights from fp32 ones in the CPU layout (all of them, also under ZeRO-1) as the AdamW
// update of step g->adam_step rounded them, tensor by tensor through a device buffer.
static void upload_weights_as_step(Qwen3Cuda *g, const float *flat) {
    size_t cpu_off = 0, cap = 0;
    float *tmp = NULL;
    for (int i = 0; i < QWEN3_NUM_PARAMS; i++) {
        Qwen3ParamInfo info = qwen3_param_info(&g->cfg, i);
        if (info.numel == 0) continue;
        int layers = info.per_layer ? g->L : 1;
        size_t per = info.numel / (size_t)layers;
        if (per > cap) {
            paw_cuda_free(tmp);
            tmp = (float *)paw_cuda_malloc(sizeof(float) * per);
            cap = per;
        }
        for (int l = 0; l < layers; l++) {
            size_t d = gpu_offset(g, i, l);
            int grp = dev_group(g, d);
            paw_cuda_upload(tmp, flat + cpu_off + (size_t)l * per, sizeof(float) * per);
            stochastic_round_cuda(g->params + d, tmp, per, adam_round_seed(g->adam_step, grp, d - g->lay.base[grp]));
        }
        cpu_off += info.numel;
    }
    paw_cuda_free(tmp);
}

extern "C" int qwen3_cuda_set_adam_state(Qwen3Cuda *g, int which, const float *flat) {
    if (which < 0 || which > 2) return paw_error("adam state: which = %d, expected 0, 1 or 2", which);
    if (!g->grads) return paw_error("adam state: the model is frozen (no optimizer)");
    ensure_adam(g);
    if (!g->sharded) {
        flat_transfer(g, adam_block(g, which), (float *)flat, 1);
        if (which != 0) return 0;
        if (g->adam_step == 0) paw_cuda_f32_to_bf16(g->params, g->master, g->lay.total);
        else
            for (int grp = 0; grp < QG_NUM; grp++)
                if (g->lay.extent[grp])
                    stochastic_round_cuda(g->params + g->lay.base[grp], g->master + g->lay.base[grp],
                                          g->lay.extent[grp], adam_round_seed(g->adam_step, grp, 0));
        return 0;
    }
    paw_cuda_upload(adam_block(g, which) + g->shard_pad, which == 0 ? flat + g->shard_lo : flat,
                    sizeof(float) * (g->shard_hi - g->shard_lo));
    if (which != 0) return 0;
    if (g->adam_step == 0) upload_weights(g, flat);  // every rank holds the whole bf16 model
    else upload_weights_as_step(g, flat);
    return 0;
}

extern "C" int qwen3_cuda_cache_reset(Qwen3Cuda *g, int cap) {
    if (cap <= 0 || cap > g->rope_len)
        return paw_error("cache: capacity %d outside [1, max_position_embeddings %d]", cap, g->rope_len);
    if (cap > g->cache_cap) {
        drop_step_graph(g);
        paw_cuda_free(g->kcache);
        paw_cuda_free(g->vcache);
        size_t n = (size_t)g->L * cap * g->KV;
        g->kcache = (bf16 *)paw_cuda_malloc(sizeof(bf16) * n);
        g->vcache = (bf16 *)paw_cuda_malloc(sizeof(bf16) * n);
        g->cache_cap = cap;
    }
    g->cache_len = 0;
    paw_cuda_memset(g->d_cache_len, 0, sizeof(int));
    return 0;
}

extern "C" int qwen3_cuda_set_recompute_keep(Qwen3Cuda *g, int keep) {
    if (!g->recompute) return paw_error("recompute_keep: the model was made without recompute");
    if (keep < 0) return paw_error("recompute_keep: %d layers, expected >= 0", keep);
    if (keep > g->L) keep = g->L;
    if (keep == g->keep) return 0;
    // The activation slots change: the buffers are made again at the next forward.
    drop_step_graph(g);
    free_acts(g);
    paw_cuda_free(g->lora_u);
    paw_cuda_free(g->lora_du);
    g->lora_u = g->lora_du = NULL;
    g->lora_cap_tokens = 0, g->lora_cap_rank = 0;
    g->backward_ready = 0, g->full_ready = 0;
    g->keep = keep;
    return 0;
}

extern "C" int qwen3_cuda_set_decode_pdl(Qwen3Cuda *g, int on) {
    if ((on != 0) != (g->decode_pdl != 0)) {
        drop_step_graph(g);  // the captured step holds launches of the other kind
        g->decode_pdl = on != 0;
    }
    return g->decode_pdl && paw_cuda_pdl_supported();
}

extern "C" void qwen3_cuda_set_fused_decode(Qwen3Cuda *g, int on) {
    if ((on != 0) == (g->fused_decode != 0)) return;
    drop_step_graph(g);  // the captured steps hold the kernels of the other path
    g->fused_decode = on != 0;
}

extern "C" int qwen3_cuda_set_decode_lora(Qwen3Cuda *g, const Qwen3CudaLora *lora) {
    if (lora && check_lora(lora, 1, "decode") != 0) return -1;
    int same = lora ? g->has_decode_lora && g->decode_lora.rank == lora->rank && g->decode_lora.scale == lora->scale
                    : !g->has_decode_lora;
    for (int m = 0; lora && same && m < LORA_NUM_MODULES; m++)
        same = g->decode_lora.A[m] == lora->A[m] && g->decode_lora.B[m] == lora->B[m];
    if (same) return 0;
    drop_step_graph(g);  // the captured step reads the adapter pointers it was captured with
    g->has_decode_lora = lora != NULL;
    if (lora) g->decode_lora = *lora;
    return 0;
}

// Final norm of the last row, logits, argmax into d_token.
static void head_last_row(Qwen3Cuda *g, size_t N) {
    const int C = g->C;
    const bf16 *last = g->x + (size_t)g->L * N * C + (N - 1) * C;
    if (g->fused_decode && N == 1 && matvec_cuda_fits(last, P(QG_HEAD, 0), C)) {
        matvec_cuda_rmsnorm(g->logits, PAW_OUT_F32, last, P(QG_LNF, 0), (float)g->cfg.rms_norm_eps, g->lnf,
                            P(QG_HEAD, 0), NULL, C, g->V, 1.0f, 0.0f);
    } else {
        rmsnorm_cuda_forward(g->lnf, g->lnf_rstd, last, P(QG_LNF, 0), 1, C, (long)C, (float)g->cfg.rms_norm_eps);
        matmul_cuda_forward(g->logits, PAW_OUT_F32, g->lnf, P(QG_HEAD, 0), NULL, 1, C, g->V, 1.0f, 0.0f);
    }
    paw_launch(argmax_kernel, dim3(1), dim3(1024), 0, g->d_token, (const float *)g->logits, g->V);
    CUDA_CHECK_LAUNCH();
}

static KvView single_cache(Qwen3Cuda *g) {
    KvView kv = {g->kcache, g->vcache, g->cache_cap, g->d_cache_len, 0, NULL, 1, NULL, NULL};
    return kv;
}

// The single-token step, entirely on the device: reads d_token and d_cache_len, leaves the next
// greedy token in d_token and advances d_cache_len.
static void decode_step_body(Qwen3Cuda *g) {
    const int pdl_before = paw_cuda_pdl();
    paw_cuda_set_pdl(g->decode_pdl);
    embedding_cuda_forward(g->x, g->d_token, P(QG_WTE, 0), 1, g->C);
    const Qwen3CudaLora *lo = g->has_decode_lora ? &g->decode_lora : NULL;
    const KvView kv = single_cache(g);
    for (int l = 0; l < g->L; l++) layer_forward(g, l, 1, 1, &kv, g->d_cache_len, layer_acts(g, l, 1), lo);
    head_last_row(g, 1);
    paw_launch(add_int_kernel, dim3(1), dim3(1), 0, g->d_cache_len, 1);
    CUDA_CHECK_LAUNCH();
    paw_cuda_set_pdl(pdl_before);
}

extern "C" int qwen3_cuda_cache_forward(Qwen3Cuda *g, const int *ids, int n, float *last_logits) {
    if (!g->kcache) return paw_error("cache_forward: call qwen3_cuda_cache_reset first");
    if (n <= 0) return paw_error("cache_forward: no tokens");
    if (g->cache_len + n > g->cache_cap)
        return paw_error("cache_forward: %d new tokens do not fit the KV cache (%d of %d used)", n, g->cache_len,
                         g->cache_cap);
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= g->V)
            return paw_error("cache_forward: token id %d outside the vocabulary [0, %d)", ids[i], g->V);
    ensure_acts(g, (size_t)n);
    ensure_logits(g, 1);
    if (g->has_decode_lora) ensure_lora(g, (size_t)n, g->decode_lora.rank);
    g->backward_ready = 0;
    g->full_ready = 0;  // the cache path reuses the activation buffers
    if (n == 1) {
        CUDA_CHECK(cudaMemcpyAsync(g->d_token, ids, sizeof(int), cudaMemcpyHostToDevice, paw_cuda_stream()));
        step_graph_run(&g->step_graph, g, decode_step_body);
    } else {
        for (int t = 0; t < n; t++) g->h_pos[t] = g->cache_len + t;
        paw_cuda_upload(g->d_pos, g->h_pos, sizeof(int) * (size_t)n);
        paw_cuda_upload(g->d_ids, ids, sizeof(int) * (size_t)n);
        embedding_cuda_forward(g->x, g->d_ids, P(QG_WTE, 0), n, g->C);
        const Qwen3CudaLora *lo = g->has_decode_lora ? &g->decode_lora : NULL;
        const KvView kv = single_cache(g);
        for (int l = 0; l < g->L; l++) layer_forward(g, l, 1, n, &kv, g->d_pos, layer_acts(g, l, (size_t)n), lo);
        head_last_row(g, (size_t)n);
        add_int_kernel<<<1, 1, 0, paw_cuda_stream()>>>(g->d_cache_len, n);
        CUDA_CHECK_LAUNCH();
    }
    g->cache_len += n;
    g->logits_rows = 1;
    if (last_logits) paw_cuda_download(last_logits, g->logits, sizeof(float) * (size_t)g->V);
    else paw_cuda_sync();
    return 0;
}

extern "C" int qwen3_cuda_generate(Qwen3Cuda *g, const int *ids, int n, int max_new, int stop_id, int *out) {
    if (n <= 0) return paw_error("generate: empty prompt");
    if (max_new < 0) return paw_error("generate: negative --max-new");
    if (n + max_new > g->cfg.max_position_embeddings)
        return paw_error("generate: %d prompt + %d new tokens exceed max_position_embeddings %d", n, max_new,
                         g->cfg.max_position_embeddings);
    if (max_new == 0) return 0;
    if (qwen3_cuda_cache_reset(g, n + max_new) != 0) return -1;
    if (qwen3_cuda_cache_forward(g, ids, n, NULL) != 0) return -1;
    int count = 0;
    while (count < max_new) {
        int next;
        paw_cuda_download(&next, g->d_token, sizeof(int));
        out[count++] = next;
        if (next == stop_id || count == max_new) break;
        if (qwen3_cuda_cache_forward(g, &next, 1, NULL) != 0) return -1;
    }
    return count;
}

// ---------------------------------------------------------------------------------------------
// Batched KV-cache decoding: bB sequences, each at its own length, with per-row adapters.

extern "C" int qwen3_cuda_batch_reset(Qwen3Cuda *g, int B, int cap) {
    if (B <= 0) return paw_error("batch cache: %d sequences, expected at least 1", B);
    if (cap <= 0 || cap > g->rope_len)
        return paw_error("batch cache: capacity %d outside [1, max_position_embeddings %d]", cap, g->rope_len);
    size_t elems = (size_t)g->L * B * cap * g->KV;
    if (B != g->bB || cap != g->bcap) drop_batch_graph(g);  // the captured step bakes in B and cap
    if (elems > g->bcache_elems) {
        drop_batch_graph(g);
        paw_cuda_free(g->bkcache);
        paw_cuda_free(g->bvcache);
        g->bkcache = (bf16 *)paw_cuda_malloc(sizeof(bf16) * elems);
        g->bvcache = (bf16 *)paw_cuda_malloc(sizeof(bf16) * elems);
        g->bcache_elems = elems;
    }
    if (B > g->brows_cap) {
        drop_batch_graph(g);
        paw_cuda_free(g->d_blen);
        g->d_blen = (int *)paw_cuda_malloc(sizeof(int) * 5 * (size_t)B);
        g->d_btok = g->d_blen + B;
        g->d_bactive = g->d_blen + 2 * B;
        g->d_bfill = g->d_blen + 3 * B;
        g->d_bfill_tok = g->d_blen + 4 * B;
        free(g->h_blen);
        g->h_blen = (int *)xmalloc(sizeof(int) * 2 * (size_t)B);
        g->h_bact = g->h_blen + B;
        g->brows_cap = B;
    }
    g->bB = B;
    g->bcap = cap;
    g->bprefilled = 0;
    memset(g->h_blen, 0, sizeof(int) * (size_t)B);
    // Lengths, and token 0 in rows never filled (the parts sit brows_cap apart, not B).
    paw_cuda_memset(g->d_blen, 0, sizeof(int) * (size_t)B);
    paw_cuda_memset(g->d_btok, 0, sizeof(int) * (size_t)B);
    return 0;
}

extern "C" int qwen3_cuda_batch_set_lora(Qwen3Cuda *g, const Qwen3CudaLora *lora) {
    if (lora && check_lora(lora, lora->nb, "batch decode") != 0) return -1;
    int same = lora ? g->has_batch_lora && g->batch_lora.rank == lora->rank && g->batch_lora.scale == lora->scale &&
                          g->batch_lora.nb == lora->nb
                    : !g->has_batch_lora;
    for (int m = 0; lora && same && m < LORA_NUM_MODULES; m++)
        same = g->batch_lora.A[m] == lora->A[m] && g->batch_lora.B[m] == lora->B[m];
    if (same) return 0;
    drop_batch_graph(g);  // the captured step reads the adapter pointers it was captured with
    g->has_batch_lora = lora != NULL;
    if (lora) g->batch_lora = *lora;
    return 0;
}

static int check_batch_lora(const Qwen3Cuda *g) {
    if (g->has_batch_lora && g->batch_lora.nb != g->bB)
        return paw_error("batch decode: the adapters are for %d rows, the cache for %d", g->batch_lora.nb, g->bB);
    return 0;
}

// Final norm, logits and greedy token of B dense rows of x (row stride C).
static void head_rows(Qwen3Cuda *g, const bf16 *rows, int B, int *d_out) {
    const int C = g->C;
    rmsnorm_cuda_forward(g->lnf, g->lnf_rstd, rows, P(QG_LNF, 0), B, C, (long)C, (float)g->cfg.rms_norm_eps);
    matmul_cuda_forward(g->logits, PAW_OUT_F32, g->lnf, P(QG_HEAD, 0), NULL, B, C, g->V, 1.0f, 0.0f);
    argmax_kernel<<<B, 1024, 0, paw_cuda_stream()>>>(d_out, g->logits, g->V);
    CUDA_CHECK_LAUNCH();
}

// next[rows[i]] = tok[i]: a prefill's greedy tokens into the rows it filled.
__global__ void scatter_rows_kernel(int *next, const int *tok, const int *rows, int k) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < k) next[rows[i]] = tok[i];
}

// Row rows[i] of a layer's batch cache takes the first n keys and values of prefix i ([L, pn, KV]
// each): block (i, l) copies layer l, in units U (uint4 when KV allows, else bf16).
struct PrefixCopy {
    const bf16 *k, *v;
    int n, pn, row;
};

template <typename U>
__global__ void copy_prefix_kernel(bf16 *kc, bf16 *vc, const PrefixCopy *tab, int rows, int cap, int KV) {
    const PrefixCopy c = tab[blockIdx.x];
    const int l = blockIdx.y, per = KV * (int)sizeof(bf16) / (int)sizeof(U);
    const U *sk = (const U *)(c.k + (size_t)l * c.pn * KV), *sv = (const U *)(c.v + (size_t)l * c.pn * KV);
    U *dk = (U *)(kc + ((size_t)l * rows + c.row) * cap * KV), *dv = (U *)(vc + ((size_t)l * rows + c.row) * cap * KV);
    for (size_t e = threadIdx.x; e < (size_t)c.n * per; e += blockDim.x) dk[e] = sk[e], dv[e] = sv[e];
}

extern "C" int qwen3_cuda_prefix_create(Qwen3Cuda *g, const int *ids, int n, const Qwen3CudaLora *lora,
                                        Qwen3CudaPrefix *out) {
    memset(out, 0, sizeof *out);
    if (n < 1 || n > g->rope_len)
        return paw_error("prefix: %d tokens, expected 1 to max_position_embeddings %d", n, g->rope_len);
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= g->V)
            return paw_error("prefix: token %d: id %d outside the vocabulary [0, %d)", i, ids[i], g->V);
    if (lora && check_lora(lora, 1, "prefix") != 0) return -1;
    const size_t N = (size_t)n, elems = (size_t)g->L * n * g->KV;
    ensure_acts(g, N);
    if (lora) ensure_lora(g, N, lora->rank);
    g->backward_ready = 0;
    g->full_ready = 0;  // the activation buffers are reused
    g->logits_rows = 0;
    out->k = (paw_bf16 *)paw_cuda_malloc(sizeof(bf16) * elems);
    out->v = (paw_bf16 *)paw_cuda_malloc(sizeof(bf16) * elems);
    out->n = n;
    for (int t = 0; t < n; t++) g->h_pos[t] = t;
    paw_cuda_upload(g->d_pos, g->h_pos, sizeof(int) * N);
    paw_cuda_upload(g->d_ids, ids, sizeof(int) * N);
    paw_cuda_memset(g->d_lens, 0, sizeof(int));  // the prefix's "cache" starts empty
    embedding_cuda_forward(g->x, g->d_ids, P(QG_WTE, 0), n, g->C);
    // The prefix's own buffers are a one-row cache of capacity n: [L, 1, n, KV].
    const KvView kv = {(bf16 *)out->k, (bf16 *)out->v, n, g->d_lens, 0, NULL, 1, NULL, NULL};
    for (int l = 0; l < g->L; l++) layer_forward(g, l, 1, n, &kv, g->d_pos, layer_acts(g, l, N), lora);
    paw_cuda_sync();
    return 0;
}

extern "C" void qwen3_cuda_prefix_free(Qwen3CudaPrefix *p) {
    if (!p) return;
    paw_cuda_free(p->k);
    paw_cuda_free(p->v);
    memset(p, 0, sizeof *p);
}

// Prefill of k sequences (right-padded [k*T] tokens) into cache rows rows[0..k) of the running
// batch, with the adapters lo (nb = k) or none; the other rows keep their state. Row rows[i]
// starts from the first start[i] positions of prefix[i] (start NULL: every row from position 0),
// its tokens going in after them.
static int batch_fill(Qwen3Cuda *g, const int *rows, int k, const Qwen3CudaPrefix *const *prefix, const int *start,
                      const int *ids, const int *lens, int T, const Qwen3CudaLora *lo, int *next, float *logits) {
    const int B = g->bB, C = g->C;
    if (!g->bkcache || B <= 0) return paw_error("batch prefill: call qwen3_cuda_batch_reset first");
    if (k < 1 || k > B) return paw_error("batch prefill: %d sequences for a batch of %d rows", k, B);
    if (T <= 0 || T > g->bcap) return paw_error("batch prefill: T=%d outside [1, cache capacity %d]", T, g->bcap);
    if (lo && check_lora(lo, k, "batch prefill") != 0) return -1;
    int *h_act = g->h_bact;  // free until the next step: marks the rows named twice
    memset(h_act, 0, sizeof(int) * (size_t)B);
    for (int i = 0; i < k; i++) {
        if (rows[i] < 0 || rows[i] >= B) return paw_error("batch prefill: row %d outside the batch [0, %d)", rows[i], B);
        if (h_act[rows[i]]++) return paw_error("batch prefill: row %d named twice", rows[i]);
    }
    int cont = 0;  // some row continues a prefix
    for (int b = 0; b < k; b++) {
        if (lens[b] < 1 || lens[b] > T) return paw_error("batch prefill: lens[%d] = %d outside [1, %d]", b, lens[b], T);
        const int s = start ? start[b] : 0;
        if (s < 0) return paw_error("batch prefill: start[%d] = %d is negative", b, s);
        if (s > 0 && (!prefix || !prefix[b] || s > prefix[b]->n))
            return paw_error("batch prefill: row %d starts after %d prefix tokens, its prefix holds %d", b, s,
                             prefix && prefix[b] ? prefix[b]->n : 0);
        if (s + lens[b] > g->bcap)
            return paw_error("batch prefill: row %d: %d prefix + %d new tokens exceed the cache capacity %d", b, s,
                             lens[b], g->bcap);
        cont |= s > 0;
    }
    const size_t N = (size_t)k * T;
    if (N > g->h_bids_cap) {
        free(g->h_bids);
        g->h_bids = (int *)xmalloc(sizeof(int) * N);
        g->h_bids_cap = N;
    }
    for (int b = 0; b < k; b++) {
        for (int t = 0; t < T; t++) {
            int id = ids[(size_t)b * T + t];
            if (t < lens[b] && (id < 0 || id >= g->V))
                return paw_error("batch prefill: row %d token %d: id %d outside the vocabulary [0, %d)", b, t, id, g->V);
            g->h_bids[(size_t)b * T + t] = t < lens[b] ? id : 0;  // padding: any valid id, never attended to
        }
    }
    ensure_acts(g, N);
    ensure_logits(g, (size_t)k);
    if (lo) ensure_lora(g, N, lo->rank);
    g->backward_ready = 0;
    g->full_ready = 0;  // the activation buffers are reused
    // Positions: after the row's prefix; padding repeats the last real one (kept inside the
    // RoPE tables, its outputs unused).
    for (int b = 0; b < k; b++) {
        const int s = start ? start[b] : 0;
        for (int t = 0; t < T; t++) g->h_pos[(size_t)b * T + t] = cont ? s + (t < lens[b] ? t : lens[b] - 1) : t;
    }
    paw_cuda_upload(g->d_pos, g->h_pos, sizeof(int) * N);
    paw_cuda_upload(g->d_ids, g->h_bids, sizeof(int) * N);
    paw_cuda_upload(g->d_lens, lens, sizeof(int) * (size_t)k);
    paw_cuda_upload(g->d_bfill, rows, sizeof(int) * (size_t)k);
    for (int i = 0; i < k; i++) g->h_blen[rows[i]] = start ? start[i] : 0;  // the tokens go in after the prefix
    paw_cuda_upload(g->d_blen, g->h_blen, sizeof(int) * (size_t)B);
    if (cont) {
        size_t bytes = sizeof(PrefixCopy) * (size_t)k;
        if (bytes > g->ptab_cap) {
            paw_cuda_free(g->d_ptab);
            g->d_ptab = paw_cuda_malloc(bytes);
            g->ptab_cap = bytes;
        }
        PrefixCopy *tab = (PrefixCopy *)xmalloc(bytes);
        int nc = 0;
        for (int i = 0; i < k; i++)
            if (start[i] > 0) tab[nc++] = PrefixCopy{(const bf16 *)prefix[i]->k, (const bf16 *)prefix[i]->v, start[i],
                                                     prefix[i]->n, rows[i]};
        paw_cuda_upload(g->d_ptab, tab, sizeof(PrefixCopy) * (size_t)nc);
        free(tab);
        dim3 grid((unsigned)nc, (unsigned)g->L);
        if (g->KV % 8 == 0)
            copy_prefix_kernel<uint4><<<grid, 256, 0, paw_cuda_stream()>>>(g->bkcache, g->bvcache,
                                                                          (const PrefixCopy *)g->d_ptab, B, g->bcap, g->KV);
        else
            copy_prefix_kernel<bf16><<<grid, 256, 0, paw_cuda_stream()>>>(g->bkcache, g->bvcache,
                                                                         (const PrefixCopy *)g->d_ptab, B, g->bcap, g->KV);
        CUDA_CHECK_LAUNCH();
    }
    embedding_cuda_forward(g->x, g->d_ids, P(QG_WTE, 0), (int)N, C);
    // From empty rows: attention over the call's own tokens (the full-sequence kernel with lens);
    // after prefixes: over each row's cache, through the row map.
    const KvView kv = cont ? KvView{g->bkcache, g->bvcache, g->bcap, g->d_blen, 1, NULL, B, g->d_bfill, g->d_lens}
                           : KvView{g->bkcache, g->bvcache, g->bcap, g->d_blen, 1, g->d_lens, B, g->d_bfill, NULL};
    for (int l = 0; l < g->L; l++) layer_forward(g, l, k, T, &kv, g->d_pos, layer_acts(g, l, N), lo);
    // Each sequence's last prompt token, gathered into x[0] (the input embeddings are spent by now).
    gather_last_rows_kernel<<<grid_for((size_t)k * C), 256, 0, paw_cuda_stream()>>>(g->x, g->x + (size_t)g->L * N * C,
                                                                                  g->d_lens, k, T, C);
    CUDA_CHECK_LAUNCH();
    head_rows(g, g->x, k, g->d_bfill_tok);
    scatter_rows_kernel<<<paw_ceil_div(k, 256), 256, 0, paw_cuda_stream()>>>(g->d_btok, g->d_bfill_tok, g->d_bfill, k);
    CUDA_CHECK_LAUNCH();
    for (int i = 0; i < k; i++) g->h_blen[rows[i]] = (start ? start[i] : 0) + lens[i];
    paw_cuda_upload(g->d_blen, g->h_blen, sizeof(int) * (size_t)B);
    g->bprefilled = 1;
    g->logits_rows = 0;  // these logits are the batch's, not a full forward's
    if (logits) paw_cuda_download(logits, g->logits, sizeof(float) * (size_t)k * g->V);
    if (next) paw_cuda_download(next, g->d_bfill_tok, sizeof(int) * (size_t)k);
    paw_cuda_sync();
    return 0;
}

extern "C" int qwen3_cuda_batch_prefill(Qwen3Cuda *g, const int *ids, const int *lens, int T, int *next,
                                        float *logits) {
    if (!g->bkcache || g->bB <= 0) return paw_error("batch prefill: call qwen3_cuda_batch_reset first");
    if (check_batch_lora(g) != 0) return -1;
    int *rows = (int *)xmalloc(sizeof(int) * (size_t)g->bB);
    for (int b = 0; b < g->bB; b++) rows[b] = b;
    int rc = batch_fill(g, rows, g->bB, NULL, NULL, ids, lens, T, g->has_batch_lora ? &g->batch_lora : NULL, next,
                        logits);
    free(rows);
    return rc;
}

extern "C" int qwen3_cuda_batch_refill(Qwen3Cuda *g, const int *rows, int k, const int *ids, const int *lens, int T,
                                       const Qwen3CudaLora *lora, int *next, float *logits) {
    return batch_fill(g, rows, k, NULL, NULL, ids, lens, T, lora, next, logits);
}

extern "C" int qwen3_cuda_batch_refill_prefix(Qwen3Cuda *g, const int *rows, int k,
                                              const Qwen3CudaPrefix *const *prefix, const int *start, const int *ids,
                                              const int *lens, int T, const Qwen3CudaLora *lora, int *next,
                                              float *logits) {
    return batch_fill(g, rows, k, prefix, start, ids, lens, T, lora, next, logits);
}

// One token per row, entirely on the device: reads d_btok, d_blen and d_bactive, leaves the
// next greedy tokens in d_btok and advances the active rows' lengths.
static void batch_step_body(Qwen3Cuda *g) {
    const int B = g->bB;
    embedding_cuda_forward(g->x, g->d_btok, P(QG_WTE, 0), B, g->C);
    const Qwen3CudaLora *lo = g->has_batch_lora ? &g->batch_lora : NULL;
    const KvView kv = {g->bkcache, g->bvcache, g->bcap, g->d_blen, 1, NULL, B, NULL, NULL};
    for (int l = 0; l < g->L; l++) layer_forward(g, l, B, 1, &kv, g->d_blen, layer_acts(g, l, (size_t)B), lo);
    head_rows(g, g->x + (size_t)g->L * B * g->C, B, g->d_btok);
    advance_rows_kernel<<<paw_ceil_div(B, 256), 256, 0, paw_cuda_stream()>>>(g->d_blen, g->d_bactive, B);
    CUDA_CHECK_LAUNCH();
}

extern "C" int qwen3_cuda_batch_step(Qwen3Cuda *g, const int *ids, const int *active, int *next, float *logits) {
    const int B = g->bB;
    if (!g->bprefilled) return paw_error("batch step: needs a batch prefill first");
    if (check_batch_lora(g) != 0) return -1;
    for (int b = 0; b < B; b++) {
        // Every row writes its keys at its length (inactive rows too, then not counted): room needed.
        if (g->h_blen[b] >= g->bcap)
            return paw_error("batch step: row %d already holds %d tokens, the cache capacity", b, g->h_blen[b]);
        if (ids && (ids[b] < 0 || ids[b] >= g->V))
            return paw_error("batch step: row %d: token id %d outside the vocabulary [0, %d)", b, ids[b], g->V);
    }
    ensure_acts(g, (size_t)B);
    ensure_logits(g, (size_t)B);
    if (g->has_batch_lora) ensure_lora(g, (size_t)B, g->batch_lora.rank);
    g->backward_ready = 0;
    g->full_ready = 0;
    g->logits_rows = 0;
    int *h_act = g->h_bact;
    for (int b = 0; b < B; b++) h_act[b] = active ? active[b] != 0 : 1;
    paw_cuda_upload(g->d_bactive, h_act, sizeof(int) * (size_t)B);
    if (ids) paw_cuda_upload(g->d_btok, ids, sizeof(int) * (size_t)B);
    step_graph_run(&g->bstep_graph, g, batch_step_body);
    for (int b = 0; b < B; b++) g->h_blen[b] += h_act[b];
    if (logits) paw_cuda_download(logits, g->logits, sizeof(float) * (size_t)B * g->V);
    if (next) paw_cuda_download(next, g->d_btok, sizeof(int) * (size_t)B);
    else paw_cuda_sync();
    return 0;
}

extern "C" int qwen3_cuda_batch_generate(Qwen3Cuda *g, const int *ids, const int *lens, int B, int T, int max_new,
                                         int stop_id, int *out, int *counts) {
    if (B <= 0 || T <= 0) return paw_error("batch generate: empty batch (B=%d, T=%d)", B, T);
    if (max_new < 0) return paw_error("batch generate: negative --max-new");
    if (T + max_new > g->cfg.max_position_embeddings)
        return paw_error("batch generate: %d prompt + %d new tokens exceed max_position_embeddings %d", T, max_new,
                         g->cfg.max_position_embeddings);
    memset(counts, 0, sizeof(int) * (size_t)B);
    if (max_new == 0) return 0;
    if (qwen3_cuda_batch_reset(g, B, T + max_new) != 0) return -1;
    int *next = (int *)xmalloc(sizeof(int) * (size_t)B), *active = (int *)xmalloc(sizeof(int) * (size_t)B);
    int rc = qwen3_cuda_batch_prefill(g, ids, lens, T, next, NULL), left = B;
    for (int b = 0; b < B; b++) active[b] = 1;
    while (rc == 0) {
        for (int b = 0; b < B; b++) {
            if (!active[b]) continue;
            out[(size_t)b * max_new + counts[b]++] = next[b];
            if (next[b] == stop_id || counts[b] == max_new) active[b] = 0, left--;
        }
        if (left == 0) break;
        rc = qwen3_cuda_batch_step(g, NULL, active, next, NULL);
    }
    free(next);
    free(active);
    return rc;
}

// Element-wise gather of per-row adapters in units U (uint4 when the sizes allow, else bf16):
// src[b] goes to row rows[b] (rows NULL: b) of dst's dst_nb rows per layer.
template <typename U>
__global__ void lora_gather_kernel(U *dst, const bf16 *const *src, const int *rows, int L, int nb, int dst_nb,
                                   size_t per) {
    size_t total = (size_t)L * nb * per;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t e = i % per, row = i / per;
        int b = (int)(row % nb), l = (int)(row / nb);
        const U *s = (const U *)src[b];
        U v;
        if (s) v = s[(size_t)l * per + e];
        else memset(&v, 0, sizeof v);
        dst[((size_t)l * dst_nb + (rows ? rows[b] : b)) * per + e] = v;
    }
}

extern "C" int qwen3_cuda_lora_gather(Qwen3Cuda *g, paw_bf16 *const *dstA, paw_bf16 *const *dstB, int rank,
                                      const Qwen3CudaLora *const *src, int nb) {
    return qwen3_cuda_lora_gather_rows(g, dstA, dstB, rank, src, nb, NULL, nb);
}

extern "C" int qwen3_cuda_lora_gather_rows(Qwen3Cuda *g, paw_bf16 *const *dstA, paw_bf16 *const *dstB, int rank,
                                           const Qwen3CudaLora *const *src, int nb, const int *rows, int dst_nb) {
    if (nb <= 0 || rank <= 0) return paw_error("lora gather: %d rows of rank %d", nb, rank);
    if (rows) {
        if (dst_nb < nb) return paw_error("lora gather: %d rows into a batch of %d", nb, dst_nb);
        for (int b = 0; b < nb; b++) {
            if (rows[b] < 0 || rows[b] >= dst_nb)
                return paw_error("lora gather: row %d outside the batch [0, %d)", rows[b], dst_nb);
            for (int c = 0; c < b; c++)
                if (rows[c] == rows[b]) return paw_error("lora gather: row %d named twice", rows[b]);
        }
    } else if (dst_nb != nb) {
        return paw_error("lora gather: %d rows into a batch of %d without a row map", nb, dst_nb);
    }
    for (int b = 0; b < nb; b++)
        if (src[b] && (src[b]->nb != 1 || src[b]->rank != rank))
            return paw_error("lora gather: row %d has an adapter for %d examples of rank %d, expected 1 of rank %d", b,
                             src[b]->nb, src[b]->rank, rank);
    // One upload: the pointer table (2 * modules * nb pointers), then the row map (nb ints).
    size_t need = (size_t)2 * LORA_NUM_MODULES * nb, bytes = sizeof(bf16 *) * need + sizeof(int) * (size_t)nb;
    if (bytes > g->gather_cap) {
        paw_cuda_free((void *)g->d_gather);
        g->d_gather = (const bf16 **)paw_cuda_malloc(bytes);
        g->gather_cap = bytes;
    }
    const bf16 **table = (const bf16 **)xmalloc(bytes);
    for (int m = 0; m < LORA_NUM_MODULES; m++)
        for (int b = 0; b < nb; b++) {
            table[(2 * m) * nb + b] = src[b] ? src[b]->A[m] : NULL;
            table[(2 * m + 1) * nb + b] = src[b] ? src[b]->B[m] : NULL;
        }
    if (rows) memcpy(table + need, rows, sizeof(int) * (size_t)nb);
    paw_cuda_upload((void *)g->d_gather, table, rows ? bytes : sizeof(bf16 *) * need);
    free(table);
    const int *d_rows = rows ? (const int *)(g->d_gather + need) : NULL;
    for (int m = 0; m < LORA_NUM_MODULES; m++) {
        int din, dout;
        lora_module_dims(&g->cfg, m, &din, &dout);
        for (int side = 0; side < 2; side++) {
            size_t per = (size_t)rank * (side ? dout : din);
            bf16 *dst = side ? dstB[m] : dstA[m];
            const bf16 *const *tab = g->d_gather + (size_t)(2 * m + side) * nb;
            int vec = per % 8 == 0;  // 16-byte units: per-layer blocks stay 16-byte aligned
            for (int b = 0; b < nb && vec; b++)
                vec = !src[b] || ((uintptr_t)(side ? src[b]->B[m] : src[b]->A[m]) % 16 == 0);
            vec = vec && (uintptr_t)dst % 16 == 0;
            size_t units = vec ? per / 8 : per, total = (size_t)g->L * nb * units;
            if (vec)
                lora_gather_kernel<uint4><<<grid_for(total), 256, 0, paw_cuda_stream()>>>((uint4 *)dst, tab, d_rows, g->L,
                                                                                         nb, dst_nb, units);
            else
                lora_gather_kernel<bf16><<<grid_for(total), 256, 0, paw_cuda_stream()>>>(dst, tab, d_rows, g->L, nb,
                                                                                        dst_nb, units);
            CUDA_CHECK_LAUNCH();
        }
    }
    return 0;
}

extern "C" int qwen3_cuda_logits_once(const Qwen3 *cpu, const int *ids, int n, int all, float **logits) {
    *logits = NULL;
    Qwen3Cuda *g = qwen3_cuda_create(cpu, 1, 0);
    if (!g) return -1;
    Qwen3CudaInputs in;
    memset(&in, 0, sizeof in);
    in.ids = ids;
    in.logits_mode = all ? QWEN3_LOGITS_ALL : QWEN3_LOGITS_LAST;
    int rc = qwen3_cuda_forward(g, &in, 1, n);
    if (rc == 0) {
        *logits = (float *)xmalloc(sizeof(float) * (size_t)g->logits_rows * g->V);
        rc = qwen3_cuda_get_logits(g, *logits);
    }
    qwen3_cuda_free(g);
    return rc;
}

extern "C" int qwen3_cuda_generate_once(const Qwen3 *cpu, const int *ids, int n, int max_new, int stop_id, int *out) {
    Qwen3Cuda *g = qwen3_cuda_create(cpu, 1, 0);
    if (!g) return -1;
    int got = qwen3_cuda_generate(g, ids, n, max_new, stop_id, out);
    qwen3_cuda_free(g);
    return got;
}
