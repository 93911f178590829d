// One differentiable PAW step (DESIGN.md, "Data flow of one training step"):
// compiler forward -> captured states -> mapper -> per-example LoRA -> frozen interpreter
// forward on prompt + target -> masked NLL; then the backward through all of it.
#ifndef PAW_TRAIN_PAW_STEP_H
#define PAW_TRAIN_PAW_STEP_H

#include "compiler/compiler.h"
#include "compiler/mapper.h"
#include "model/qwen3.h"

typedef struct {
    const int *comp_ids;   // chat(compiler_prompt(spec)) + pseudo_program + <|im_end|> (prefix not included)
    int comp_len;
    const int *interp_ids; // chat(pseudo_program + input) with the empty think block, up to the answer
    int interp_len;
    const int *target_ids; // output + <|im_end|>
    int target_len;
} PawStepExample;

typedef struct {
    Compiler comp;
    Qwen3 interp;      // frozen
    Mapper mapper;
    Qwen3Lora lora;    // per-example adapters with gradients, for lora.nb examples
    float *dH;
    int freeze_compiler;
    // interpreter batch buffers
    int *ids, *targets;
    float *weights;
    size_t cap;
} PawModel;

typedef struct {
    float loss;             // mean NLL over this batch's target tokens
    double loss_sum;        // sum of NLL over target tokens
    double target_tokens;   // number of target tokens
    int comp_tokens, interp_tokens;  // padded tokens processed (B * T) by each model
} PawStepStats;

// The interpreter's side of a batch, shared by the CPU and GPU steps: T = the longest prompt +
// target (-1 + paw_error for an empty prompt or target), then ids/targets/weights [B*T] filled
// as [prompt, target, pad] rows where position t predicts token t+1, weighted 1 on the target
// tokens (the target's last token is <|im_end|>).
int paw_interp_batch_len(const PawStepExample *ex, int B);
void paw_interp_batch(const PawStepExample *ex, int B, int T, int *ids, int *targets, float *weights);
// The interpreter prompts alone, right padded, for batched greedy decoding: *ids [B*T] (0 past each
// prompt) and *lens [B], both malloc'd. Returns T, the longest prompt, or -1 + paw_error for an
// empty one (nothing allocated then).
int paw_interp_prompts(const PawStepExample *ex, int B, int **ids, int **lens);

// Takes ownership of the loaded compiler and interpreter models.
int paw_model_init(PawModel *pm, Qwen3 *compiler, Qwen3 *interpreter, int prefix_len, int lora_rank,
                   float lora_alpha, int nbases, int freeze_compiler, unsigned long long seed);
void paw_model_free(PawModel *pm);
void paw_model_zero_grad(PawModel *pm);

// The mapper and prefix as one safetensors file ("prefix" [P, d], "mapper.fc1.weight", ...,
// "mapper.A.<module>" [N, r, d_in], "mapper.B.<module>" [N, d_out, r]); shapes are checked.
int paw_model_save_mapper(const PawModel *pm, const char *path);
int paw_model_load_mapper(PawModel *pm, const char *path);

// Forward only: the loss of a batch (no gradients).
int paw_forward(PawModel *pm, const PawStepExample *ex, int B, PawStepStats *st);
// Forward and backward; gradients accumulate (call paw_model_zero_grad first). grad_scale is
// the factor on the summed NLL: 0 means 1 / (this batch's target tokens), the mean's gradient;
// with gradient accumulation pass 1 / (target tokens of the whole global batch).
int paw_forward_backward(PawModel *pm, const PawStepExample *ex, int B, float grad_scale, PawStepStats *st);
// The same, reporting finished trainable gradients as it goes (see Qwen3GradsReadyFn): first
// PAW_GRADS_MAPPER (the whole mapper, final before the compiler's backward starts), then the
// compiler model's groups (none when it is frozen), then COMPILER_GRADS_PREFIX.
enum { PAW_GRADS_MAPPER = -4 };
int paw_forward_backward_ex(PawModel *pm, const PawStepExample *ex, int B, float grad_scale, PawStepStats *st,
                            Qwen3GradsReadyFn on_grads_ready, void *ctx);

// Model FLOPs of one forward + backward for B examples: the compiler with its prefix over comp_T
// tokens (3x its forward when it trains, 2x when frozen: activation gradients only), the
// interpreter over interp_T tokens (forward + activation gradients) with its LoRA side paths
// (forward + both gradients) and the mapper. The interpreter's LM head runs on its target_rows
// (the weighted rows of the loss) only. Recomputation is not counted.
double paw_step_flops(const Qwen3Config *compiler, const Qwen3Config *interpreter, const MapperConfig *mapper, int P,
                      int B, int comp_T, int interp_T, double target_rows, int freeze_compiler);

#endif
