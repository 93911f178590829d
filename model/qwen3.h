// The Qwen3 network in fp32 on the CPU: parameters in one allocation, activations in one
// allocation (kept for the backward), forward, op-by-op backward (trainable or frozen), and
// KV-cache decoding. Shared by the compiler and the interpreter.
#ifndef PAW_MODEL_QWEN3_H
#define PAW_MODEL_QWEN3_H

#include <stddef.h>
#include <stdint.h>

#include "model/config.h"

// Parameters. Per-layer tensors are stacked over layers ([L, ...]), llm.c style.
typedef struct {
    float *wte;      // [V, C]         model.embed_tokens.weight
    float *ln1w;     // [L, C]         input_layernorm
    float *qw;       // [L, NH*HD, C]  self_attn.q_proj
    float *kw;       // [L, NKV*HD, C] self_attn.k_proj
    float *vw;       // [L, NKV*HD, C] self_attn.v_proj
    float *qnormw;   // [L, HD]        self_attn.q_norm
    float *knormw;   // [L, HD]        self_attn.k_norm
    float *ow;       // [L, C, NH*HD]  self_attn.o_proj
    float *ln2w;     // [L, C]         post_attention_layernorm
    float *gatew;    // [L, I, C]      mlp.gate_proj
    float *upw;      // [L, I, C]      mlp.up_proj
    float *downw;    // [L, C, I]      mlp.down_proj
    float *lnfw;     // [C]            model.norm
    float *lm_head;  // [V, C]         lm_head; points at wte when the embeddings are tied
} Qwen3Params;
#define QWEN3_NUM_PARAMS 14

// Describes parameter tensor i (0..QWEN3_NUM_PARAMS-1): its Hugging Face name (with %d for the
// layer when per_layer), its shape within one layer, and its element count over all layers.
typedef struct {
    const char *hf_name;
    int per_layer;
    int ndim;
    int shape[2];
    size_t numel;  // total over layers; 0 for a tied lm_head
} Qwen3ParamInfo;
Qwen3ParamInfo qwen3_param_info(const Qwen3Config *cfg, int i);
float **qwen3_param_slot(Qwen3Params *p, int i);

// Activations of one forward, kept for the backward. N = B*T tokens.
typedef struct {
    float *x;         // [L+1, N, C] residual stream entering each layer; x[L] leaves the last
    float *ln1;       // [L, N, C]
    float *ln1_rstd;  // [L, N]
    float *q_raw;     // [L, N, NH*HD]  projections before q/k norm
    float *k_raw;     // [L, N, NKV*HD]
    float *q;         // [L, N, NH*HD]  after q_norm and RoPE
    float *k;         // [L, N, NKV*HD]
    float *v;         // [L, N, NKV*HD]
    float *q_rstd;    // [L, N*NH]
    float *k_rstd;    // [L, N*NKV]
    float *att;       // [L, N, NH*HD]
    float *att_lse;   // [L, B*NH*T]
    float *x_mid;     // [L, N, C] residual after attention
    float *ln2;       // [L, N, C]
    float *ln2_rstd;  // [L, N]
    float *gate;      // [L, N, I]
    float *up;        // [L, N, I]
    float *act;       // [L, N, I]
    float *lnf;       // [N, C] final norm output (the last captured hidden state)
    float *lnf_rstd;  // [N]
    float *logits;    // [N, V] (rows of the positions asked for); dlogits after the backward
    float *ce_lse;    // [N]
    float *nll;       // [N]
} Qwen3Acts;

// Gradient scratch for the backward (activation gradients).
typedef struct {
    float *dx;        // [N, C] running gradient of the residual stream; dx0 after the backward
    float *dln;       // [N, C]
    float *datt, *dq, *dq_raw;  // [N, NH*HD]
    float *dk, *dk_raw, *dv;    // [N, NKV*HD]
    float *dact, *dgate, *dup;  // [N, I]
} Qwen3Scratch;

// KV cache for decoding: k and v [L, B, NKV, stride * HD] in attention_forward_cache's layout
// (kernels/attention.h: values in rows, keys transposed in tiles), a KV head's positions
// contiguous, as decoding reads them all every step; stride is cap rounded up to the key tile.
// len tokens valid per sequence. qwen3_cache_copy_prefix copies one.
typedef struct {
    int L, B, cap, kvdim, hd;  // kvdim = NKV * hd
    int stride;                // positions allocated per sequence and KV head (>= cap)
    int len;
    float *k, *v;
} Qwen3KVCache;

// Positions [0, n) of every layer from src to dst, both single-sequence caches (B = 1) of one model.
void qwen3_cache_copy_prefix(Qwen3KVCache *dst, const Qwen3KVCache *src, int n);

// Per-example LoRA on the seven projections (unmerged side path, see kernels/lora.h). Modules
// are indexed in sorted-name order, the order of the PAW mapper's coefficients.
enum { LORA_DOWN = 0, LORA_GATE, LORA_K, LORA_O, LORA_Q, LORA_UP, LORA_V, LORA_NUM_MODULES };
extern const char *const lora_module_names[LORA_NUM_MODULES];  // "down_proj", ...
// d_in and d_out of module m for this config.
void lora_module_dims(const Qwen3Config *cfg, int m, int *d_in, int *d_out);

typedef struct {
    int rank;
    float scale;                   // alpha / rank
    int nb;                        // adapters: one per sequence (B), or 1 shared by every sequence
    float *A[LORA_NUM_MODULES];    // [L, nb, r, d_in]
    float *B[LORA_NUM_MODULES];    // [L, nb, d_out, r]
    float *dA[LORA_NUM_MODULES];   // gradients, accumulated; NULL when not wanted
    float *dB[LORA_NUM_MODULES];
    // Inference only: a module whose qA is set reads these Q8 weights instead of A and B (int8
    // values in A's and B's layouts, one fp32 scale per 32 along each row; kernels/lora.h), as a
    // Q4_0 or Q8_0 program file holds them: the same outputs, bit for bit, at 1.125 bytes a weight.
    const int8_t *qA[LORA_NUM_MODULES], *qB[LORA_NUM_MODULES];
    const float *qAd[LORA_NUM_MODULES], *qBd[LORA_NUM_MODULES];
} Qwen3Lora;

// QWEN3_LOGITS_WEIGHTED (with targets): only the rows whose loss weight is nonzero, in order, so
// that a training loss pays the LM head for its target positions only, not for the prompts. The
// loss, the hidden-state gradients and the weight gradients are those of QWEN3_LOGITS_ALL (the
// masked rows' gradients are exact zeros), within the rounding of the LM head's weight gradient.
enum { QWEN3_LOGITS_ALL = 0, QWEN3_LOGITS_LAST = 1, QWEN3_LOGITS_NONE = 2, QWEN3_LOGITS_WEIGHTED = 3 };

typedef struct {
    const int *ids;            // [B*T] token ids; -1 at rows supplied by embeds
    const float *embeds;       // [B*T, C] input embeddings, or NULL to look ids up
    const int *targets;        // [B*T] next-token targets, or NULL for no loss
    const float *loss_weight;  // [B*T] loss mask / weights, or NULL for all ones
    Qwen3KVCache *cache;       // NULL: full-sequence forward (the backward may follow)
    // Instead of cache: one single-sequence cache (B = 1) per sequence, each at its own length, so
    // that unrelated sequences decode together (sequence b's tokens go at positions
    // row_caches[b]->len ..). Each cache's len grows by T.
    Qwen3KVCache *const *row_caches;
    int logits_mode;           // QWEN3_LOGITS_*
    const Qwen3Lora *lora;     // per-example adapters, or NULL
    // Instead of lora (inference only): one adapter (nb = 1) or NULL per sequence, each with its
    // own rank and scale (sequences of different programs decoding together).
    const Qwen3Lora *const *row_loras;
} Qwen3Inputs;

// Weight gradients that a backward has finished, reported as it goes so that a data-parallel
// trainer can reduce them while the rest of the backward runs. A group is reported once its
// gradients hold their final value for this backward (nothing later in it writes them), each
// group exactly once, in this order:
//   QWEN3_GRADS_HEAD    the final norm (lnfw) and, when not tied, the LM head;
//   L-1, L-2, ..., 0    layer l: every per-layer tensor (ln1w ... downw) at index l;
//   QWEN3_GRADS_EMBED   the input embeddings (wte, which is also a tied LM head), last of all.
// A frozen model reports nothing. With gradient accumulation the values are final for this
// backward only: acting on the reports of the last micro-batch is the caller's choice.
enum { QWEN3_GRADS_HEAD = -1, QWEN3_GRADS_EMBED = -2 };
typedef void (*Qwen3GradsReadyFn)(void *ctx, int group);

// Extra gradients for a backward, for models whose hidden states feed something else (the
// compiler's captured states): added where the forward produced those states.
typedef struct {
    float grad_scale;               // loss gradient scale (0: 1 / sum of weights); unused without a loss
    const float *dlnf;              // [N, C] gradient on the final-norm output, or NULL
    const float *const *dx_layer;   // L+1 entries: gradient on x[l] (x[l+1] = output of layer l), or NULL
    Qwen3GradsReadyFn on_grads_ready;  // NULL: no reports
    void *ctx;                         // passed to on_grads_ready
} Qwen3BackwardArgs;

// Where the weight matrices live. QWEN3_WEIGHTS_BF16 is for inference: the matrices (the seven
// projections, the embeddings and the LM head) are kept in bf16 and widened as they are read,
// which halves the bytes each decoded token reads; norms stay fp32. The forward is the fp32
// computation on those bf16 values, so a bf16 checkpoint loses nothing. No backward or save.
// QWEN3_WEIGHTS_Q8 quantizes the matrices on load to int8 in blocks of 32 values along each row,
// one scale per block, as ggml's Q8_0 (kernels/quant.h), halving bf16's bytes again; each
// product also rounds its inputs to such blocks and sums the int8 products exactly in integers
// (matmul_forward_q8q, as ggml multiplies Q8_0 by Q8_0), which makes one-row products bound by
// the memory again instead of by widening weights. Lossy, and only on request; rows must be
// multiples of 32 values.
enum { QWEN3_WEIGHTS_F32 = 0, QWEN3_WEIGHTS_BF16 = 1, QWEN3_WEIGHTS_AUTO = 2, QWEN3_WEIGHTS_Q8 = 3 };

typedef struct {
    Qwen3Config cfg;
    Qwen3Params params;    // with bf16 weights the matrix slots are NULL (see w16)
    float *params_memory;
    size_t num_params;     // floats in params_memory
    // bf16 matrices by parameter index, one pointer per layer (one for the embedding), or NULL.
    // They point into w16_memory, or, loaded from a checkpoint that stores them as BF16, straight
    // into its memory-mapped files (mapped_files; w16_memory NULL): no copy, nothing to convert,
    // and the pages are the page cache's, shared by every process that runs the same model.
    const uint16_t **w16[QWEN3_NUM_PARAMS];
    const uint16_t **w16_tables;      // the pointer tables above, one allocation
    uint16_t *w16_memory;
    size_t num_w16;                   // bf16 values in all matrices
    void *mapped_files;               // the open checkpoint files (model/weights.c), or NULL
    int8_t *q8[QWEN3_NUM_PARAMS];     // Q8 matrices by parameter index (int8 values), or NULL
    float *q8d[QWEN3_NUM_PARAMS];     // their scales, one per 32 values (fp16 values held as fp32)
    int8_t *q8_memory;
    float *q8d_memory;
    size_t num_q8;                    // int8 values in q8_memory
    int inference_only;               // bf16 or Q8 matrices: no backward, no save, no GPU upload
    int frozen;            // no weight gradients are allocated or computed
    Qwen3Params grads;     // zeroed by qwen3_zero_grad; NULL pointers when frozen
    float *grads_memory;
    // activations, sized for up to cap_N tokens
    Qwen3Acts acts;
    float *acts_memory;
    size_t acts_cap_tokens;
    Qwen3Scratch scratch;
    float *scratch_memory;
    float *rope_cos, *rope_sin;  // [max_pos, HD/2]
    int rope_len;
    int *pos;                    // [cap_N] positions of the current batch
    float *lora_u;               // [7, L, cap_N, r] saved LoRA activations
    size_t lora_u_cap;
    float *lora_du;              // [cap_N, r] scratch
    const Qwen3Lora *lora;       // adapters of the last forward
    int *ids;                    // [cap_N] ids of the last forward (for the embedding gradient)
    int *targets;                // [cap_N]
    float *loss_weight;          // [cap_N]
    int *loss_rows;              // [cap_N] QWEN3_LOGITS_WEIGHTED: the rows that have logits
    float *lnf_rows;             // [cap_N, C] those rows' final-norm outputs (allocated on first use)
    size_t lnf_rows_cap;
    // state of the last forward
    int B, T, logits_rows, has_loss, backward_ok, logits_weighted;
    float loss;               // mean over weighted positions
    double loss_sum, loss_weight_sum;
} Qwen3;

// Allocates parameters (uninitialised) for cfg. frozen: no gradient memory.
void qwen3_create(Qwen3 *m, const Qwen3Config *cfg, int frozen);
// The same with bf16 weight matrices (QWEN3_WEIGHTS_BF16 implies frozen). with_memory 0: the
// caller points every m->w16[i][l] at bf16 data that outlives the model (a mapped checkpoint).
void qwen3_create_bf16(Qwen3 *m, const Qwen3Config *cfg, int with_memory);
// A frozen model with Q8 matrices (see QWEN3_WEIGHTS_Q8); -1 + paw_error when a matrix row is not
// a multiple of 32 values.
int qwen3_create_q8(Qwen3 *m, const Qwen3Config *cfg);
// "f32", "bf16" or "q8": how the model holds its matrices.
static inline const char *qwen3_weights_kind(const Qwen3 *m) {
    return m->num_w16 ? "bf16" : m->q8_memory ? "q8" : "f32";
}
// Layer l's bf16 matrix i of a model that holds its bf16 matrices (w16_memory), writable.
static inline uint16_t *qwen3_w16_held(Qwen3 *m, int i, int l) {
    return m->w16_memory + (m->w16[i][l] - m->w16_memory);
}
// Quantizes n values (a multiple of 32) into matrix i of a Q8 model, starting at element off.
void qwen3_set_q8(Qwen3 *m, int i, size_t off, const float *x, size_t n);
void qwen3_free(Qwen3 *m);
// Unmaps and closes the checkpoint files a loaded model's bf16 matrices point into (model/weights.c;
// qwen3_free calls it).
void qwen3_close_mapped_files(Qwen3 *m);
// Random initialisation: N(0, std) matrices, ones for norm weights (transformers' init).
void qwen3_init_random(Qwen3 *m, unsigned long long seed, float std);
// Switches between trainable and frozen (allocates or frees the gradients).
void qwen3_set_frozen(Qwen3 *m, int frozen);
void qwen3_zero_grad(Qwen3 *m);

// Forward over B sequences of T tokens. Returns 0, or -1 + paw_error (bad id, size).
int qwen3_forward(Qwen3 *m, const Qwen3Inputs *in, int B, int T);
// Backward of the last full-sequence forward with a loss. dlogits = grad_scale * w * (p - y);
// grad_scale 0 means 1 / sum(w), the gradient of the mean loss. Accumulates weight gradients
// (unless frozen) and leaves the input-embedding gradient in m->scratch.dx.
int qwen3_backward(Qwen3 *m, float grad_scale);
// General backward: loss gradient (if the forward had targets) plus injected gradients. Also
// valid after a forward without logits or targets when args inject something.
int qwen3_backward_ex(Qwen3 *m, const Qwen3BackwardArgs *args);

// Forward FLOPs for B sequences of T tokens (2 per weight per token, plus causal attention), the
// LM head counted for lm_head_rows rows (B * T for every position, the weighted rows of a
// training loss, 0 for none). A backward costs about twice this.
double qwen3_forward_flops(const Qwen3Config *c, int B, int T, double lm_head_rows);

// The input embedding of token id as fp32, whichever way the model holds its weights.
void qwen3_embedding_row(const Qwen3 *m, int id, float *out);

// Checkpoints: a Hugging Face directory (config.json + model.safetensors or an index of shards).
int qwen3_load(Qwen3 *m, const char *dir, int frozen);
// weights: QWEN3_WEIGHTS_F32 (qwen3_load), _BF16 (frozen; fp32 or fp16 matrices are rounded) or
// _AUTO (bf16 when the model is frozen and every matrix is stored as BF16, which is lossless).
int qwen3_load_ex(Qwen3 *m, const char *dir, int frozen, int weights);
// "auto", "f32"/"float32" or "bf16"/"bfloat16" -> QWEN3_WEIGHTS_*; -1 + paw_error otherwise.
int qwen3_weights_from_name(const char *name);
// The same for a command's --weights: with cuda, "auto" means f32 (the GPU upload reads the
// fp32 parameters) and "bf16" and "q8" are refused.
int qwen3_weights_for_device(const char *name, int cuda);
#define QWEN3_WEIGHTS_HELP \
    "CPU weight matrices: auto (bf16 when the checkpoint stores them so), f32, bf16, or q8 (int8 weights and inputs, lossy: half of bf16's bytes)"
// dtype: "float32" or "bfloat16".
int qwen3_save(const Qwen3 *m, const char *dir, const char *dtype);

// KV cache and decoding.
void qwen3_cache_create(Qwen3KVCache *c, const Qwen3Config *cfg, int B, int cap);
void qwen3_cache_free(Qwen3KVCache *c);
// Index of the largest of n logits (the first on ties): the greedy choice.
int qwen3_argmax(const float *x, int n);
// Greedy generation for one sequence (lora: one adapter, or NULL): prefill ids, then append up to max_new tokens, stopping
// after stop_id (when >= 0). out receives the new tokens; returns their count, or -1.
int qwen3_generate(Qwen3 *m, const Qwen3Lora *lora, const int *ids, int n, int max_new, int stop_id, int *out);

#endif
