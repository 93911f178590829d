// Running a program on inputs: the interpreter prompt is the program's template with the input
// in place of its placeholder; the part before the input is evaluated once (with the adapter
// active) and kept in the KV cache, so each input costs only its own tokens plus decoding.
// Decoding is greedy until <|im_end|> or a token limit; the output is decoded and stripped.
#ifndef PAW_INTERPRETER_RUNNER_H
#define PAW_INTERPRETER_RUNNER_H

#include "data/tokenizer.h"
#include "data/vocab_map.h"
#include "model/qwen3.h"

typedef struct {
    Qwen3 *model;                // the interpreter (not owned)
    const PawTokenizer *tok;     // not owned
    const PawVocabMap *vmap;     // trimmed vocabulary of the model, or NULL
    const Qwen3Lora *lora;       // one adapter, or NULL for the bare interpreter
    int stop_id;                 // model id of <|im_end|>
    char *prefix, *suffix;       // the template around the input
    PawIds prefix_ids;           // tokenizer ids of the prefix alone
    Qwen3KVCache cache;
    int cached;                  // prompt tokens whose keys/values the cache holds (from the start)
    int32_t *cached_ids;         // those tokens (model ids)
    Qwen3KVCache *row_caches;    // paw_runner_run_many's rows (row_caches_n of them)
    int row_caches_n;
} PawRunner;

typedef struct {
    double seconds;  // wall time of the run (prompt building and decoding included)
    long rows;       // jobs run (jobs refused before the model are not counted)
    long tokens;     // generated tokens, <|im_end|> included
    long fills;      // prefills (a refill of several rows is one)
    long steps;      // decoding steps over the batch's rows
    long row_steps, idle_rows;  // rows those steps computed, and how many of them had no running job
    long prefill_tokens;        // prompt tokens the prefills computed
    long prefix_tokens;         // prompt tokens taken from shared template prefixes instead
} PawRunStats;

// Adds b's figures to a's (for totals over several runs).
void paw_run_stats_add(PawRunStats *a, const PawRunStats *b);

// Tokenizer and vocabulary of an interpreter directory: DIR/tokenizer.json (else the default)
// and DIR/vocab_map.safetensors when present. Sets *stop_id to the model id of <|im_end|>.
int paw_runner_resources(const char *model_dir, PawTokenizer **tok, PawVocabMap *vmap, int *stop_id);

int paw_runner_init(PawRunner *r, Qwen3 *model, const PawTokenizer *tok, const PawVocabMap *vmap, int stop_id,
                    const char *template_text, const Qwen3Lora *lora);
void paw_runner_free(PawRunner *r);
// Runs one input; *output is the stripped text (caller frees). -1 + paw_error for an empty input,
// a prompt that does not fit the context with max_new tokens of room, or a model error.
int paw_runner_run(PawRunner *r, const char *input, int max_new, char **output);

// Runs n inputs, decoding up to `rows` of them together (continuous batching through
// interpreter/schedule.h: a row whose output has ended takes the next input). Each row has its
// own KV cache; the template prefix is computed once and copied into each row. For each input
// exactly one of outputs[i] (the stripped text) and errors[i] (why it was refused: blank, too
// long) is set; the caller frees both. With rows <= 5 every output is the bits paw_runner_run
// gives (a step's one-row products sum each row in its own order); more rows run the step's
// products as a GEMM, whose sums differ within fp32 rounding. st (may be NULL) receives the
// figures. Returns 0, or -1 + paw_error when the model failed.
int paw_runner_run_many(PawRunner *r, const char *const *inputs, int n, int rows, int max_new, char **outputs,
                        char **errors, PawRunStats *st);
// The same for jobs of several programs (one runner each, all on one model): input i runs with
// runners[job_runner[i]]. Rows of different programs decode together, each with its own adapter
// (or none). The rows' caches are kept in runners[0].
int paw_runner_run_jobs(PawRunner *const *runners, const int *job_runner, const char *const *inputs, int n, int rows,
                        int max_new, char **outputs, char **errors, PawRunStats *st);

// The steps of paw_runner_run that every runner shares. prompt_ids: the model ids of the whole
// prompt (template around the input, tokenized as one string, mapped to the model's vocabulary);
// -1 + paw_error for a blank input or a prompt that leaves no room for max_new tokens in the
// interpreter's context. decode: generated model ids (stop token excluded; overwritten with
// tokenizer ids) to the stripped output text.
int paw_runner_prompt_ids(const PawRunner *r, const char *input, int max_new, PawIds *ids);
int paw_runner_decode(const PawRunner *r, int32_t *ids, int n, char **output);

// Strips leading and trailing ASCII whitespace into a new string.
char *paw_strip(const char *s, size_t n);

#endif
