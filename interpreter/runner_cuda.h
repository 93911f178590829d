// Running many (program, input) jobs on the GPU: rows of a batch may belong to different
// programs, each row decoding with its own program's adapter. Prompts are built and outputs
// decoded and stripped by the CPU runner's code (interpreter/runner.h), so the text side is
// identical; only the model runs on the GPU (bf16, model/qwen3_cuda.h).
//
// Decoding (interpreter/decoder_cuda.h): jobs are ordered by prompt length (longest first), so
// that the rows of a prefill pad little, and run in `batch` rows: a prefill of the rows' prompts
// (right padded), then one forward per generated token over all rows. A row whose job has produced
// <|im_end|> or max_new tokens takes the next waiting job (continuous batching: refills of an
// eighth of the rows at a time, interpreter/schedule.h) while the others go on. Outputs come back
// in job order.
//
// Shared prefixes: a program's template text before the input is the same in all its prompts.
// Once a program has a second job (in the same run or a later one), that prefix goes through the
// model once (with its adapter) and its keys and values are copied into each of its rows, which
// then prefill only their own tokens. Prefixes stay until clear_programs, up to a memory budget
// (1 GiB by default; 2 * layers * KV heads * head_dim * 2 bytes a token, 112 KiB at the 0.6B
// shape); programs past it recompute their prefix per row.
//
// Adapters: each distinct host adapter (fp32 Qwen3Lora, nb = 1) is uploaded once as bf16, zero
// padded to the largest rank among the programs and with its scale alpha / r folded into B (the
// batch then runs at scale 1, so programs of different rank or alpha share a batch). The rows'
// adapters are gathered on the device into [L, rows, ...] buffers; rows of programs without an
// adapter get zeros, and a run in which no job has an adapter runs without the side path.
#ifndef PAW_INTERPRETER_RUNNER_CUDA_H
#define PAW_INTERPRETER_RUNNER_CUDA_H

#include "interpreter/runner.h"
#include "interpreter/schedule.h"

typedef struct {
    int program;        // index returned by paw_gpu_runner_add_program
    const char *input;  // not owned
} PawRunJob;

typedef struct PawGpuRunner PawGpuRunner;

// 0 when --device cuda can work here; else -1 + paw_error saying why (a build without CUDA, no
// usable GPU). Cheap: call it before loading models.
int paw_gpu_available(void);

// Uploads the interpreter (its CPU copy stays the caller's; only its config is read later).
// NULL + paw_error when this binary was built without CUDA or no GPU is usable.
PawGpuRunner *paw_gpu_runner_create(Qwen3 *model, const PawTokenizer *tok, const PawVocabMap *vmap, int stop_id,
                                    int batch);
// Adds a program (template with one placeholder, adapter or NULL; the adapter is read at the next
// run and must stay alive until paw_gpu_runner_clear_programs). Returns its index, or -1.
int paw_gpu_runner_add_program(PawGpuRunner *r, const char *template_text, const Qwen3Lora *lora);
// Forgets every program and frees their device adapters.
void paw_gpu_runner_clear_programs(PawGpuRunner *r);
// Runs the jobs; for each job exactly one of outputs[i] (stripped text) and errors[i] (why this
// input was refused: empty, too long for the context) is set, both malloc'd. Returns 0, or -1 +
// paw_error when the model failed (entries already set are still the caller's to free).
// stats (may be NULL) receives this call's figures.
int paw_gpu_runner_run(PawGpuRunner *r, const PawRunJob *jobs, int n, int max_new, char **outputs, char **errors,
                       PawRunStats *stats);
// Continuous batching on (the default) or off (fixed batches: every row runs until the batch's
// last one ends), for comparisons. The outputs are the same but where bf16 flips a near-tie
// argmax (the prefills then have other shapes, hence other GEMM orders).
void paw_gpu_runner_set_refill(PawGpuRunner *r, int on);
// The device memory shared prefixes may take, in bytes (0: none, every prompt prefilled whole).
// Applies to programs whose prefix is not made yet.
void paw_gpu_runner_set_prefix_budget(PawGpuRunner *r, size_t bytes);
void paw_gpu_runner_free(PawGpuRunner *r);

#endif
