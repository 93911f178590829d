// Training run configuration (JSON). Every key is known and typed: an unknown key, a wrong type,
// a value out of range or a missing file is refused before any work starts, naming the key.
#ifndef PAW_TRAIN_CONFIG_H
#define PAW_TRAIN_CONFIG_H

typedef enum { TRAIN_MODE_PAW = 0, TRAIN_MODE_PRETRAIN = 1 } TrainMode;
typedef enum { SCHED_COSINE = 0, SCHED_STEP, SCHED_CONSTANT } ScheduleKind;

typedef struct {
    TrainMode mode;          // "paw": train the compiler through the frozen interpreter;
                             // "pretrain": full training of one model (the tiny interpreter) on the prompts
    char *compiler;          // checkpoint dir (paw)
    char *interpreter;       // checkpoint dir (paw: frozen interpreter; pretrain: the model trained)
    char *train_data;        // shard directory
    char *val_data;          // shard directory (optional)
    char *out_dir;           // checkpoints, log, export
    // PAW
    int lora_rank, mapper_bases, prefix_steps, freeze_compiler;
    float lora_alpha;
    char *mapper_init;       // optional safetensors with "prefix" and "mapper.*" to start from
    // pretrain
    int loss_on_prompt;      // also learn the prompt tokens (language modelling)
    // optimisation
    int steps, grad_accum, max_batch_examples, batch_tokens;
    float lr, mapper_lr_scale, min_lr_ratio, weight_decay, beta1, beta2, eps, grad_clip;
    int warmup_steps;
    ScheduleKind schedule;
    int step_every;
    float step_factor;
    // evaluation, logging, checkpoints
    int eval_every, eval_examples, max_new_tokens;
    int log_every, save_every, keep_last;
    int seed;
    char *device;            // "cpu" or "cuda" (mode paw: the whole step on the GPU)
    int recompute;           // cuda: keep only each layer's input for the backward
    int recompute_keep;      // with recompute: the first N layers of the trained model keep their activations
    int recompute_keep_interpreter;  // the same for the frozen interpreter (mode paw)
    int bf16_grads;          // cuda: the compiler's layer matrices keep bf16 weight gradients
    char *gpu_comm;          // cuda under mpirun: "nccl" (one GPU per rank) or "mpi" (CUDA-aware MPI)
    float peak_tflops;       // for MFU; 0: the device's nominal peak
    char *export_dtype;      // the exported model's matrices: "float32" (lossless) or "bfloat16" (half the size)
    int sort_window;
    // multi-process runs (mpirun)
    int zero;                // 1: shard the AdamW moments across ranks (ZeRO stage 1)
    float comm_timeout_s;    // a collective that takes longer aborts the job
    int overlap_comm;        // 1: reduce gradients during the last micro-batch's backward, bucket by bucket
} TrainConfig;

void train_config_defaults(TrainConfig *c);
// Parses and validates (files exist, shapes compatible are checked later when loading models).
int train_config_load(TrainConfig *c, const char *path);
int train_config_parse(TrainConfig *c, const char *json, const char *path);
void train_config_free(TrainConfig *c);
// The learning rate at a 0-based step.
float train_lr_at(const TrainConfig *c, int step);

#endif
