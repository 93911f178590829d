// The compiler side of a PAW step: a Qwen3 model whose input is a tokenized spec (+ pseudo-
// program) followed by P learned prefix embeddings. Its hidden states at the prefix positions,
// taken at one compiler layer per interpreter layer (the depth-ratio rule), feed the mapper.
#ifndef PAW_COMPILER_COMPILER_H
#define PAW_COMPILER_COMPILER_H

#include "model/qwen3.h"

typedef struct Compiler {
    Qwen3 model;          // owned; trainable, or frozen when only the mapper is trained
    int P;                // prefix length
    float *prefix;        // [P, d] learned prefix embeddings
    float *dprefix;       // [P, d] gradient (accumulated)
    int slots;            // interpreter layers L_i = captured slots
    int *teacher;         // [slots] compiler layer of each slot; the last slot is after the final norm
    // the last forward
    int B, T;
    int *lens;            // [B] tokens before the prefix, per sequence
    float *H;             // [B, slots, P, d] captured states
    int *ids;             // [B*T] ids (-1 at prefix rows)
    float *embeds;        // [B*T, d]
    float **inject;       // [Lc+1] gradient injections (NULL where no slot reads)
    float *inject_mem, *dlnf;
    size_t cap_tokens;
} Compiler;

// teacher[l] = int((l+1) * Lc / Li) - 1, for l < Li.
void compiler_capture_layers(int Lc, int Li, int *teacher);

// Takes ownership of a loaded model. The prefix is initialised from the embeddings of P
// vocabulary rows drawn with seed (reasons in compiler.c).
void compiler_init(Compiler *c, Qwen3 *model, int P, int slots, unsigned long long seed);
void compiler_free(Compiler *c);

// B sequences seqs[b][0..lens[b]) followed by the prefix. Fills c->H.
int compiler_forward(Compiler *c, const int *const *seqs, const int *lens, int B);
// dH [B, slots, P, d]: accumulates the model's gradients (unless frozen) and dprefix.
// on_grads_ready (or NULL) hears the model's groups as qwen3_backward_ex reports them (none when
// frozen), then COMPILER_GRADS_PREFIX once dprefix is final for this backward.
enum { COMPILER_GRADS_PREFIX = -3 };
int compiler_backward(Compiler *c, const float *dH, Qwen3GradsReadyFn on_grads_ready, void *ctx);

#endif
