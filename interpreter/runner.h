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
} PawRunner;

// Tokenizer and vocabulary of an interpreter directory: DIR/tokenizer.json (else the default)
// and DIR/vocab_map.safetensors when present. Sets *stop_id to the model id of <|im_end|>.
int paw_runner_resources(const char *model_dir, PawTokenizer **tok, PawVocabMap *vmap, int *stop_id);

int paw_runner_init(PawRunner *r, Qwen3 *model, const PawTokenizer *tok, const PawVocabMap *vmap, int stop_id,
                    const char *template_text, const Qwen3Lora *lora);
void paw_runner_free(PawRunner *r);
// Runs one input; *output is the stripped text (caller frees). -1 + paw_error for an empty input,
// a prompt that does not fit the context with max_new tokens of room, or a model error.
int paw_runner_run(PawRunner *r, const char *input, int max_new, char **output);

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
