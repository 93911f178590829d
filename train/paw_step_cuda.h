// The PAW training step on the GPU (the twin of train/paw_step.h): compiler forward with the
// prefix and the depth-ratio capture (compiler/compiler_cuda.h), the fp32 mapper
// (compiler/mapper_cuda.h), the frozen interpreter with a different LoRA per example
// (model/qwen3_cuda.h), the masked NLL, and the backward through all of it. bf16 weights and
// activations with fp32 accumulation in both models; the mapper and the prefix are fp32; every
// gradient is fp32. AdamW keeps fp32 master weights and moments for everything it updates.
// The CPU PawModel stays the canonical copy for checkpoints and export: get_params/get_state
// write the device state back into its buffers, set_state loads them.
#ifndef PAW_TRAIN_PAW_STEP_CUDA_H
#define PAW_TRAIN_PAW_STEP_CUDA_H

#include "compiler/compiler_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

#include "train/paw_step.h"

typedef struct PawStepCuda PawStepCuda;

// Uploads a CPU PAW model (compiler weights, prefix, mapper; the interpreter frozen). recompute:
// both models keep only each layer's input for the backward. world > 1: ZeRO stage 1, this
// process being `rank` (below). NULL + paw_error without a GPU.
PawStepCuda *paw_step_cuda_create(const PawModel *pm, int recompute, int rank, int world);
// Random compiler and interpreter of the given shapes made on the device (N(0, std) matrices),
// the prefix and mapper from the host (benchmarks: no CPU copy of the large models).
PawStepCuda *paw_step_cuda_create_random(const Qwen3Config *compiler, const Qwen3Config *interpreter,
                                         const float *prefix, int P, const Mapper *mapper, int freeze_compiler,
                                         int recompute, unsigned long long seed, float std);
void paw_step_cuda_free(PawStepCuda *s);
// Partial recomputation (made with recompute): the first compiler_keep compiler layers and the
// first interpreter_keep interpreter layers keep their activations (qwen3_cuda_set_recompute_keep);
// a negative count leaves that model as it is.
int paw_step_cuda_set_recompute_keep(PawStepCuda *s, int compiler_keep, int interpreter_keep);
// The compiler's layer matrices keep bf16 weight gradients (qwen3_cuda_use_bf16_grads): what lets
// a trained 4B compiler with fp32 master weights and moments fit one 80 GB GPU. No-op when the
// compiler is frozen. Clears the compiler's gradients.
int paw_step_cuda_use_bf16_grads(PawStepCuda *s);

// As paw_forward / paw_forward_backward (same stats, same grad_scale meaning).
int paw_step_cuda_forward(PawStepCuda *s, const PawStepExample *ex, int B, PawStepStats *st);
int paw_step_cuda_forward_backward(PawStepCuda *s, const PawStepExample *ex, int B, float grad_scale,
                                   PawStepStats *st);
// The same with reports as paw_forward_backward_ex (PAW_GRADS_MAPPER, the compiler's groups,
// COMPILER_GRADS_PREFIX), each made once its work is queued on the stream (see
// Qwen3CudaBackwardArgs): for reducing gradients across GPUs while the backward goes on.
int paw_step_cuda_forward_backward_ex(PawStepCuda *s, const PawStepExample *ex, int B, float grad_scale,
                                      PawStepStats *st, Qwen3GradsReadyFn on_grads_ready, void *ctx);
// Greedy decoding of each example's interpreter prompt with its own adapter, as the last
// paw_step_cuda_forward over these same B examples made them (only the count B can be checked
// here; batched: one prefill, then one step over all rows per token): example b's tokens go to out + b * max_new, their count to
// counts[b]; a row stops after stop_id (kept) or max_new tokens. For evaluation during training
// on the GPU. 0, or -1 + paw_error.
int paw_step_cuda_generate(PawStepCuda *s, const PawStepExample *ex, int B, int max_new, int stop_id, int *out,
                           int *counts);
// The device gradient slices of a reported group (any code above); returns the count (<= 8).
int paw_step_cuda_report_grads(PawStepCuda *s, int report, Qwen3CudaGradSlice out[8]);
// Makes every report of paw_step_cuda_forward_backward_ex, in the same order, without running
// anything: for a rank whose step ended without that backward (an empty last micro-batch), so
// that it starts the same sums in the same order as the ranks that ran it.
void paw_step_cuda_report_all(PawStepCuda *s, Qwen3GradsReadyFn on_grads_ready, void *ctx);
void paw_step_cuda_zero_grad(PawStepCuda *s);

// Trainable groups, in the trainer's order (the compiler only when it trains).
enum { PAW_GROUP_COMPILER = 0, PAW_GROUP_PREFIX, PAW_GROUP_MAPPER, PAW_NUM_GROUPS };
// Floats of a group in the CPU layout (0 for a frozen compiler).
size_t paw_step_cuda_group_size(const PawStepCuda *s, int group);
// A group's gradient blocks in device memory (fp32, and bf16 for a compiler with bf16 gradients),
// for summing them across ranks in place.
int paw_step_cuda_grad_blocks(PawStepCuda *s, int group, float **f32, size_t *n32, paw_bf16 **b16, size_t *n16);
// Gradients of a group into a flat CPU-layout buffer (the order of the CPU model's memory).
int paw_step_cuda_get_grads(PawStepCuda *s, int group, float *flat);
// Optimizer state of a group, flat CPU layout: which = 0 weights (the fp32 master), 1 and 2 the
// AdamW moments. Before the first step the moments are zero and the compiler's master is its
// bf16 weights.
int paw_step_cuda_get_state(PawStepCuda *s, int group, int which, float *flat);
int paw_step_cuda_set_state(PawStepCuda *s, int group, int which, const float *flat);
// The step whose AdamW update wrote the state set next (a resume): the compiler's bf16 weights are
// then rounded as that update rounded them (qwen3_cuda_set_adam_step).
int paw_step_cuda_set_adam_step(PawStepCuda *s, int step);

typedef struct {
    float lr, group_lr_scale[PAW_NUM_GROUPS];  // lr * scale per group
    float beta1, beta2, eps, weight_decay;
    float max_grad_norm;  // clip the global norm over every group (<= 0: no clipping)
} PawStepCudaAdamW;
// AdamW step number `step` (from 1) over every trainable group; *grad_norm gets the global
// gradient norm before clipping. A norm that is not finite returns -1 before anything changes. Weight decay: compiler matrices (not its norm weights), the
// prefix and the mapper.
int paw_step_cuda_adamw(PawStepCuda *s, const PawStepCudaAdamW *opt, int step, float *grad_norm);
// The same in two halves, for data parallelism with a sharded optimizer: the sum of the squared
// gradients this rank updates (all of them unless sharded), then the update with the squared
// global norm (the ranks' sums added up). A norm that is not finite returns -1 before anything changes.
int paw_step_cuda_grad_norm_sq(PawStepCuda *s, double *norm_sq);
int paw_step_cuda_adamw_apply(PawStepCuda *s, const PawStepCudaAdamW *opt, int step, double norm_sq);

// ZeRO stage 1 over `world` ranks (paw_step_cuda_create): this rank keeps the fp32 master weights
// and AdamW moments of its block (paw_shard_begin) of each group only (qwen3_cuda_shard_optimizer
// for the compiler; the prefix and mapper are their own fp32 master). The update then covers the
// block only: the caller sums every run's gradients to its owner first and gathers every run's
// weights from its owner after. get_state/set_state: the weights (which = 0) stay whole tensors
// (get writes at least this rank's block), the moments become this rank's block.
// The device runs of `rank`'s block of a group (the whole group for rank 0 when not sharded), in
// CPU-layout order: at most cap written, the count returned (-1 + paw_error for a bad group or rank).
int paw_step_cuda_runs(PawStepCuda *s, int group, int rank, Qwen3CudaRun *out, int cap);

#ifdef __cplusplus
}
#endif

#endif
