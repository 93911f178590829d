// The Qwen3 network on the GPU: the twin of model/qwen3.h with bf16 parameters and activations,
// fp32 accumulation, statistics, gradients and optimizer state. Built from a loaded CPU model
// (or randomly, for benchmarks). The projections that read the same input are fused on the GPU:
// q/k/v are one [Q+2KV, C] matrix per layer and gate/up one [2I, C] matrix; gradients come back to
// the host in the CPU layout (Qwen3Params), so both sides compare tensor by tensor.
//
// Precision: weights and activations are bf16 (Hugging Face's bf16 inference); the residual
// gradient runs in fp32 with a bf16 copy for the GEMMs; weight gradients are fp32 and accumulate
// across calls until qwen3_cuda_zero_grad.
#ifndef PAW_MODEL_QWEN3_CUDA_H
#define PAW_MODEL_QWEN3_CUDA_H

#include "kernels/cuda_common_cuda.h"  // outside extern "C": it pulls in cuda_bf16.h under nvcc

#ifdef __cplusplus
extern "C" {
#endif

#include "model/qwen3.h"

typedef struct Qwen3Cuda Qwen3Cuda;

// Per-example LoRA adapters in device memory: the layout of Qwen3Lora (model/qwen3.h) with bf16
// adapters (what the LoRA GEMMs of kernels/lora_cuda.h read) and fp32 gradients. Example b of a
// batch (rows b*T .. b*T+T-1) uses adapter b; nb must equal the batch size.
typedef struct {
    int rank, nb;
    float scale;                             // alpha / rank
    const paw_bf16 *A[LORA_NUM_MODULES];     // [L, nb, r, d_in]
    const paw_bf16 *B[LORA_NUM_MODULES];     // [L, nb, d_out, r]
    float *dA[LORA_NUM_MODULES];             // [L, nb, r, d_in] fp32, accumulated; NULL: not wanted
    float *dB[LORA_NUM_MODULES];             // [L, nb, d_out, r]
} Qwen3CudaLora;

typedef struct {
    const int *ids;            // [B*T] host; -1 at rows supplied by embeds
    const float *embeds;       // [B*T, C] host fp32 input embeddings, or NULL
    const float *embeds_dev;   // [B*T, C] device fp32 input embeddings (instead of embeds), or NULL
    const Qwen3CudaLora *lora; // per-example adapters on all seven projections, or NULL
    const int *targets;        // [B*T] next-token targets, or NULL for no loss
    const float *loss_weight;  // [B*T] loss mask / weights, or NULL for all ones
    const int *lens;           // [B] valid tokens per sequence (right padding), or NULL: all T.
                               // Rows past a sequence's length give zero attention output and no loss.
    int logits_mode;           // QWEN3_LOGITS_* when there are no targets (with targets, no logits are kept);
                               // LAST with lens: each sequence's token lens[b] - 1 (x[0] is then overwritten)
    int backward;              // with targets: run the LM-head backward in the same chunked pass, so
                               // that qwen3_cuda_backward can follow
    float grad_scale;          // dlogits = grad_scale * w * (p - y); 0 means 1 / sum(w) (mean loss)
} Qwen3CudaInputs;

// Uploads a CPU model (its fp32 weights rounded to bf16). frozen: no weight gradients are
// allocated or computed. recompute: keep only each layer's input and recompute the rest of the
// layer during the backward (less memory, about one more forward of compute).
// NULL with paw_error when no GPU is usable.
Qwen3Cuda *qwen3_cuda_create(const Qwen3 *cpu, int frozen, int recompute);
// A model of the given shape with N(0, std) matrices and unit norm weights, made on the device.
Qwen3Cuda *qwen3_cuda_create_random(const Qwen3Config *cfg, int frozen, int recompute, unsigned long long seed,
                                    float std);
void qwen3_cuda_free(Qwen3Cuda *g);
// Stores the layer matrices' weight gradients in bf16 instead of fp32 (2 bytes less per
// parameter: what lets a trained 4B model with fp32 master weights and moments fit in 80 GB).
// The GEMMs still sum in fp32 and round once per call; embedding, head and norm gradients stay
// fp32. Clears the gradients. -1 + paw_error for a frozen model.
int qwen3_cuda_use_bf16_grads(Qwen3Cuda *g);
// The weight-gradient blocks in device memory, for summing them across ranks in place: fp32
// (*n32 floats) and bf16 (*n16 elements, 0 unless bf16 gradients are used). Padding between
// tensors holds zeros. Both counts are 0 for a frozen model.
void qwen3_cuda_grad_blocks(Qwen3Cuda *g, float **f32, size_t *n32, paw_bf16 **b16, size_t *n16);
size_t qwen3_cuda_num_params(const Qwen3Cuda *g);

// Forward over B sequences of T tokens. Returns 0, or -1 + paw_error (bad id, target, size).
int qwen3_cuda_forward(Qwen3Cuda *g, const Qwen3CudaInputs *in, int B, int T);
float qwen3_cuda_loss(const Qwen3Cuda *g);      // mean over weighted positions, last forward
int qwen3_cuda_logits_rows(const Qwen3Cuda *g);  // rows of logits the last forward kept
// Copies the kept logits (rows x V fp32) to the host.
int qwen3_cuda_get_logits(const Qwen3Cuda *g, float *out);
// Backward of the last forward (which had targets and backward = 1): weight gradients accumulate
// (unless frozen); the input-embedding gradient is then available from qwen3_cuda_get_input_grad.
int qwen3_cuda_backward(Qwen3Cuda *g);
int qwen3_cuda_get_input_grad(const Qwen3Cuda *g, float *out);  // [B*T, C]

// Extra gradients for a backward, for a model whose hidden states feed something else (the PAW
// compiler's captured states), all device fp32 [B*T, C], added where the forward produced those
// states; the GPU twin of Qwen3BackwardArgs. Valid after any full-sequence forward that computed
// the final norm of every row (targets, or QWEN3_LOGITS_ALL / QWEN3_LOGITS_NONE); the loss
// gradient joins in when that forward had targets and backward = 1.
typedef struct {
    const float *dlnf;               // gradient on the final-norm output, or NULL
    const float *const *dx_layer;    // host array of L+1 device pointers (gradient on x[l]; x[l+1] is
                                     // layer l's output), NULL entries allowed; or NULL
    // Reports as in model/qwen3.h (QWEN3_GRADS_HEAD, layers L-1 .. 0, QWEN3_GRADS_EMBED), made on
    // the host once the work that finishes a group's weight gradients has been queued on the
    // stream: a callee orders its readers after the stream (an event), it does not read them on
    // the host. Not called when the model is frozen. NULL: no reports.
    Qwen3GradsReadyFn on_grads_ready;
    void *ctx;
} Qwen3CudaBackwardArgs;

// The device gradient slices of a reported group (QWEN3_GRADS_HEAD, a layer, QWEN3_GRADS_EMBED):
// up to 8 (pointer, element count, bf16 or fp32); together the groups cover every gradient
// element once. Returns the count (0 for a frozen model or a group with nothing of its own).
typedef struct {
    void *ptr;
    size_t n;
    int bf16;
} Qwen3CudaGradSlice;
int qwen3_cuda_group_grads(Qwen3Cuda *g, int group, Qwen3CudaGradSlice out[8]);
int qwen3_cuda_backward_ex(Qwen3Cuda *g, const Qwen3CudaBackwardArgs *args);

// Device views of the last full-sequence forward (valid until the next forward): the residual
// stream x[l] for l in [0, L] (x[0] = input embeddings, x[l+1] = output of layer l), the final
// norm output (see qwen3_cuda_backward_ex for when it covers every row), and the input-embedding
// gradient of the last backward. All [B*T, C].
const paw_bf16 *qwen3_cuda_hidden(const Qwen3Cuda *g, int l);
const paw_bf16 *qwen3_cuda_final_norm(const Qwen3Cuda *g);
const float *qwen3_cuda_input_grad_dev(const Qwen3Cuda *g);
// Zeroes the weight gradients. Call it before the forward: a loss forward with backward = 1 adds
// the LM head's gradient already (calling it between that forward and its backward is an error).
void qwen3_cuda_zero_grad(Qwen3Cuda *g);
// Weight gradients (or the current weights) into CPU-layout tensors: dst's pointers must point at
// buffers of qwen3_param_info(cfg, i).numel floats (as a CPU Qwen3's grads or params do).
int qwen3_cuda_get_grads(const Qwen3Cuda *g, Qwen3Params *dst);
int qwen3_cuda_get_params(const Qwen3Cuda *g, Qwen3Params *dst);

// AdamW over all parameters (fp32 master weights and moments, allocated at the first step from
// the bf16 weights), with global gradient-norm clipping when max_grad_norm > 0. Weight decay
// applies to matrices, not to norm weights. *grad_norm (may be NULL) receives the norm before
// clipping.
typedef struct {
    float lr, beta1, beta2, eps, weight_decay, max_grad_norm;
} Qwen3CudaAdamW;
int qwen3_cuda_adamw_step(Qwen3Cuda *g, const Qwen3CudaAdamW *opt, float *grad_norm);
// The same in two halves, for a trainer whose clipping spans several models: the squared gradient
// norm added to a device float (padding between groups holds zeros; a ZeRO-1 shard's own
// gradients only, see qwen3_cuda_shard_optimizer), then the update of step
// `step` (from 1) clipped by the squared global norm at d_norm_sq (device; NULL: no clipping).
void qwen3_cuda_grad_norm_sq(const Qwen3Cuda *g, float *d_norm_sq);
int qwen3_cuda_adamw_apply(Qwen3Cuda *g, const Qwen3CudaAdamW *opt, int step, const float *d_norm_sq);
// The optimizer state as flat fp32 buffers in the CPU layout (the order of Qwen3.params_memory,
// qwen3 num_params floats): which = 0 master weights, 1 first moment, 2 second moment. get fails
// before the state exists; set creates it (the others start at the bf16 weights / zero), and
// setting the master weights also rewrites the bf16 weights from them: rounded to nearest, or,
// after qwen3_cuda_set_adam_step(g, step > 0), with the stochastic rounding the AdamW update of
// that step applied, so that a resumed run holds the very bf16 weights of the uninterrupted one.
// With a ZeRO-1 shard [lo, hi) (below): flat is still the whole tensor for the master weights,
// of which get writes [lo, hi) only (the other ranks hold the rest) and set reads all (the bf16
// weights of the whole model, the master of the shard); the moments are shard-sized (hi - lo).
int qwen3_cuda_set_adam_step(Qwen3Cuda *g, int step);
int qwen3_cuda_get_adam_state(const Qwen3Cuda *g, int which, float *flat);
int qwen3_cuda_set_adam_state(Qwen3Cuda *g, int which, const float *flat);

// ZeRO stage 1: this rank keeps the fp32 master weights and AdamW moments of [lo, hi) of the CPU
// layout only (its block of the balanced split, paw_shard_begin: the layout of sharded
// checkpoints), 12 bytes per parameter divided by the world size. After it, grad_norm_sq sums
// the shard's gradients only, and adamw_apply updates the shard's master and bf16 weights only:
// the trainer sums each run's gradients to its owner before, adds the ranks' squared norms, and
// gathers the bf16 weights of every run from its owner after. Call it once, on a trained model;
// existing state keeps its shard. -1 + paw_error otherwise.
int qwen3_cuda_shard_optimizer(Qwen3Cuda *g, size_t lo, size_t hi);
// A run of a shard: n parameters from CPU-layout index flat, contiguous on the device too.
typedef struct {
    size_t flat, n;
    void *param;  // weights: bf16 here (param_bf16 = 1); fp32 for the PAW step's prefix and mapper
    int param_bf16;
    void *grad;   // gradients: fp32, or bf16 when grad_bf16 (qwen3_cuda_use_bf16_grads); NULL when frozen
    int grad_bf16;
} Qwen3CudaRun;
// The runs of [lo, hi) of the CPU layout (any rank's shard), in CPU order (pointers valid until
// qwen3_cuda_use_bf16_grads or qwen3_cuda_free): at most cap written
// (out may be NULL), the count returned; -1 + paw_error for a range outside the model.
int qwen3_cuda_runs(const Qwen3Cuda *g, size_t lo, size_t hi, Qwen3CudaRun *out, int cap);

// Partial recomputation (a model made with recompute): layers [0, keep) keep their activations
// as without recompute, the others are recomputed in the backward. Each kept layer costs its
// activations' memory (per token 2 bytes x (3C + 2(Q+2KV) + Q + 3I) of bf16, and 4 x (2 + NH) of
// fp32 norm statistics and attention log-sum-exps; the layer inputs are kept either way) and saves a third of
// its forward+backward time's worth of recomputation. keep >= num_layers is no recompute at all.
// Drops the activations of the last forward (call it between steps). -1 + paw_error without recompute.
int qwen3_cuda_set_recompute_keep(Qwen3Cuda *g, int keep);

// Programmatic dependent launch for the single-sequence decoding step (kernels/cuda_common.cuh):
// each of its kernels may be launched while the one before it finishes, and waits for it before
// touching memory, to hide the gap between a graph's kernels. Off by default; on with this call or
// PAW_DECODE_PDL=1. Returns 1 when it will be used (the device supports it: compute capability
// 9.0+), 0 otherwise. The results are the same either way.
int qwen3_cuda_set_decode_pdl(Qwen3Cuda *g, int on);

// Fused decoding: single-sequence steps run their norms and SwiGLU inside the products
// (kernels/matvec_cuda.h), and every decoding step with adapters (single-sequence or batched) runs
// the side paths of the modules that share an input in two launches (kernels/lora_cuda.h: 8 a
// layer instead of 14). Fewer launches per layer, same results up to bf16 rounding. Off by
// default until measured on a GPU; PAW_DECODE_FUSED=1 turns it on at creation.
void qwen3_cuda_set_fused_decode(Qwen3Cuda *g, int on);

// KV-cache decoding for one sequence. cache_reset sizes the cache for cap tokens and empties it;
// cache_forward appends n tokens (n == 1 steps run as a captured CUDA graph after the first) and
// copies the last position's logits (V floats) to last_logits when it is not NULL.
int qwen3_cuda_cache_reset(Qwen3Cuda *g, int cap);
// The adapter (nb == 1; NULL: none) that cache_forward and generate apply from now on. The
// struct is copied, the device buffers it points at are not: keep them alive and unchanged
// while decoding (a captured step reads them in place).
int qwen3_cuda_set_decode_lora(Qwen3Cuda *g, const Qwen3CudaLora *lora);
int qwen3_cuda_cache_forward(Qwen3Cuda *g, const int *ids, int n, float *last_logits);
// Greedy generation as qwen3_generate: returns the count of new tokens written to out, or -1.
int qwen3_cuda_generate(Qwen3Cuda *g, const int *ids, int n, int max_new, int stop_id, int *out);

// Batched KV-cache decoding: B sequences at once, each with its own prompt length, its own
// position while decoding and (optionally) its own adapter. Separate from the single-sequence
// cache above (a model can hold both). Every decode step is one forward over B rows (a captured
// CUDA graph after the first step, like the single-sequence step). A prompt prefix that rows
// share can be computed once (qwen3_cuda_prefix_create) and copied into the rows that start
// with it (qwen3_cuda_batch_refill_prefix).
// batch_reset sizes the caches for B sequences of up to cap tokens each and empties them.
int qwen3_cuda_batch_reset(Qwen3Cuda *g, int B, int cap);
// Per-row adapters (nb must equal B at the next prefill or step; NULL: none). Kept by pointer as
// in set_decode_lora: the buffers must stay alive and may change contents between batches (the
// captured step reads them in place).
int qwen3_cuda_batch_set_lora(Qwen3Cuda *g, const Qwen3CudaLora *lora);
// Prefill of the emptied caches with right-padded prompts: ids [B*T] (tokens past lens[b] are
// ignored), lens [B] in [1, T], T <= cap. next [B] (host, may be NULL) receives each row's greedy
// next token; logits [B*V] (may be NULL) the logits of each row's last prompt token.
int qwen3_cuda_batch_prefill(Qwen3Cuda *g, const int *ids, const int *lens, int T, int *next, float *logits);
// Continuous batching: prefills k new sequences (right-padded prompts ids [k*T], lens [k] as in
// batch_prefill) into rows rows[0..k) of the running batch (distinct, in [0, B)), whose caches
// restart from position 0, while the other rows keep their caches, lengths and next tokens. The
// prefill runs over these k sequences only, with lora (nb = k; NULL: none) for its adapters; the
// steps that follow read the batch's adapters (batch_set_lora), whose rows rows[i] the caller
// fills with the same adapters (qwen3_cuda_lora_gather_rows) so that prefill and steps agree.
// next [k] and logits [k*V] (may be NULL) are in the order of rows. The captured step stays valid.
int qwen3_cuda_batch_refill(Qwen3Cuda *g, const int *rows, int k, const int *ids, const int *lens, int T,
                            const Qwen3CudaLora *lora, int *next, float *logits);
// Shared prompt prefixes: the keys and values of n tokens run through the model once, kept on
// the device ([L, n, KV] bf16 each) to start batch rows from.
typedef struct {
    paw_bf16 *k, *v;
    int n;
} Qwen3CudaPrefix;
// Runs ids [n] from position 0 with lora (nb = 1; NULL: none) and keeps their keys and values in
// *out (allocated; free with qwen3_cuda_prefix_free). Uses the activation buffers, not the caches.
int qwen3_cuda_prefix_create(Qwen3Cuda *g, const int *ids, int n, const Qwen3CudaLora *lora, Qwen3CudaPrefix *out);
void qwen3_cuda_prefix_free(Qwen3CudaPrefix *p);
// batch_refill where row rows[i] first takes the keys and values of the first start[i] tokens of
// prefix[i] (start[i] = 0: none, prefix[i] may be NULL), and ids/lens are the rest of each prompt,
// at positions start[i] .. start[i] + lens[i] - 1 (start[i] + lens[i] <= cap). The result is that
// of refilling with the whole prompts, up to bf16 rounding (the prefix ran in another GEMM shape).
// Also the batch's first fill: all B rows in order, with the batch's adapters as lora.
int qwen3_cuda_batch_refill_prefix(Qwen3Cuda *g, const int *rows, int k, const Qwen3CudaPrefix *const *prefix,
                                   const int *start, const int *ids, const int *lens, int T,
                                   const Qwen3CudaLora *lora, int *next, float *logits);
// One token per row at that row's position (its cache length): ids [B] (host), or NULL for the
// tokens the last prefill or step chose. active [B] (host, NULL: all): only rows with a nonzero
// flag keep their token (their length grows by one); the others are computed and discarded, so
// a finished row costs compute but no state. Every row needs a free cache slot; rows never
// filled since batch_reset hold token 0 at length 0 and must be inactive. next and logits as in
// batch_prefill.
int qwen3_cuda_batch_step(Qwen3Cuda *g, const int *ids, const int *active, int *next, float *logits);
// Greedy generation for B right-padded prompts (as batch_prefill) with the adapters of
// batch_set_lora: row b's tokens go to out + b*max_new, their count to counts[b]; a row stops
// after stop_id (kept, as in qwen3_cuda_generate) or max_new tokens. Returns 0, or -1.
int qwen3_cuda_batch_generate(Qwen3Cuda *g, const int *ids, const int *lens, int B, int T, int max_new, int stop_id,
                              int *out, int *counts);
// Builds a batch's per-row adapters from per-program ones: for every module, row b of dstA[m]
// [L, nb, rank, d_in] and dstB[m] [L, nb, d_out, rank] (device bf16) gets src[b]'s adapter (nb = 1,
// the same rank), or zeros where src[b] is NULL. One gather kernel per module and side.
int qwen3_cuda_lora_gather(Qwen3Cuda *g, paw_bf16 *const *dstA, paw_bf16 *const *dstB, int rank,
                           const Qwen3CudaLora *const *src, int nb);
// The same into chosen rows of a batch of dst_nb rows: row rows[b] (host; distinct, in
// [0, dst_nb)) gets src[b]'s adapter, the other rows keep theirs. rows NULL: dst_nb == nb, row b.
int qwen3_cuda_lora_gather_rows(Qwen3Cuda *g, paw_bf16 *const *dstA, paw_bf16 *const *dstB, int rank,
                                const Qwen3CudaLora *const *src, int nb, const int *rows, int dst_nb);

// One-shot helpers for the command line: upload cpu, run, download, free the GPU model.
// logits_once: *logits (malloc'd, caller frees) gets all n rows (all) or the last row.
int qwen3_cuda_logits_once(const Qwen3 *cpu, const int *ids, int n, int all, float **logits);
int qwen3_cuda_generate_once(const Qwen3 *cpu, const int *ids, int n, int max_new, int stop_id, int *out);

#ifdef __cplusplus
}
#endif

#endif
