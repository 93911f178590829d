// Program files (.paw): a ZIP bundle that holds
//   adapter.gguf          the LoRA in GGUF v3 as llama.cpp's LoRA loader reads it:
//                         general.architecture=qwen3, general.type=adapter, adapter.type=lora,
//                         adapter.lora.alpha (float32), and per layer i and module the tensors
//                         blk.{i}.{attn_q|attn_k|attn_v|attn_output|ffn_gate|ffn_up|ffn_down}.weight.lora_a
//                         with ne = [d_in, r] and .lora_b with ne = [r, d_out] (ne[0] fastest), i.e.
//                         the bytes of A [r, d_in] and B [d_out, r] in row-major order, PEFT's
//                         lora_A / lora_B. llama.cpp computes y = W x + (alpha / r) B (A x).
//   prompt_template.txt   the rendered interpreter prompt with exactly one {INPUT_PLACEHOLDER}
//   meta.json             spec, interpreter id, lora_rank, lora_alpha, prefix_steps, compiler
//                         fingerprint, created_at, program_id (= content_sha256, the SHA-256 of
//                         the adapter.gguf bytes followed by the prompt_template.txt bytes),
//                         adapter_dtype, and interpreter_config (the interpreter's shape with
//                         Hugging Face config.json names) so that a mismatch is caught
//   adapter_config.json   a PEFT LoraConfig (r, lora_alpha, target_modules, ...)
// adapter.gguf is stored uncompressed (quantized weights barely deflate), the text members deflated.
//
// Adapter dtypes: Q4_0 (the default, what published programs use), Q8_0, F16 or F32. Q4_0 and
// Q8_0 quantize rows of 32 values along ne[0] (d_in for lora_a, r for lora_b); a tensor whose
// ne[0] is not a multiple of 32 is written as F16 instead (llama.cpp accepts mixed types), and
// meta.json says so in "adapter_dtype_note". Real interpreters (d_in 1024/2048/3072, r 64) never
// need this; it keeps tiny test models writable.
//
// Reading accepts what this project writes and published programs of the same layout: extra
// members, extra meta.json keys and extra GGUF keys are ignored; members may sit in a folder
// inside the ZIP. What is needed is checked strictly: the three members, GGUF metadata
// (general.type, adapter.type, architecture), tensor names and shapes (every lora_a/lora_b pair
// complete, consistent rank and dims per module across layers), one placeholder, and the content
// hash when meta.json records one. A module missing on every layer reads as zeros (no LoRA there).
#ifndef PAW_INTERPRETER_PROGRAM_H
#define PAW_INTERPRETER_PROGRAM_H

#include "model/config.h"
#include "model/qwen3.h"

#define PAW_PROGRAM_FORMAT_VERSION 1

typedef struct {
    char *spec;            // English spec (may be NULL when writing: stored as "")
    char *interpreter;     // interpreter id, e.g. "Qwen/Qwen3-0.6B" (required)
    char *template_text;   // prompt_template.txt (required, exactly one PAW_INPUT_PLACEHOLDER)
    char *pseudo_program;  // optional; stored in meta.json when set
    char *compiler;        // compiler fingerprint (optional)
    char *created_at;      // ISO 8601 UTC; NULL when writing means now
    char *program_id;      // read: from meta.json, else the content hash; ignored when writing
    int rank;
    float alpha;           // scale = alpha / rank
    int prefix_steps;
    // Interpreter shape. Writing: must be filled (layers, hidden, intermediate, heads, kv heads,
    // head_dim; vocab_size optional); it sets L and the module dims. Reading: from meta.json's
    // interpreter_config when present, else zeros except what the tensors imply.
    Qwen3Config shape;
    // LoRA, modules in sorted-name order (LORA_DOWN..LORA_V): A[m] [L, rank, d_in[m]] and
    // B[m] [L, d_out[m], rank], row-major fp32: a Qwen3Lora with nb = 1 (paw_program_lora_view).
    int L;
    int d_in[LORA_NUM_MODULES], d_out[LORA_NUM_MODULES];
    float *A[LORA_NUM_MODULES], *B[LORA_NUM_MODULES];
    // Read with PAW_PROGRAM_Q8_ADAPTER: modules stored as Q4_0 or Q8_0 are held as Q8 blocks
    // instead of A and B (NULL then): int8 values in the same layouts and one fp32 scale per 32
    // along each row (Qwen3Lora's qA/qB, for CPU inference).
    int8_t *qA[LORA_NUM_MODULES], *qB[LORA_NUM_MODULES];
    float *qAd[LORA_NUM_MODULES], *qBd[LORA_NUM_MODULES];
    int adapter_dtype;     // read: the ggml type of the first adapter tensor
} PawProgram;

// Writes the bundle atomically (temporary name in the same directory, fsync, rename), replacing
// an existing file. adapter_dtype: GGML_TYPE_Q4_0, GGML_TYPE_Q8_0, GGML_TYPE_F16 or GGML_TYPE_F32
// (kernels/quant.h). Only reads p; L and d_in/d_out are taken from p->shape. Refuses non-finite
// weights, a template without exactly one placeholder, and bad sizes.
int paw_program_write(const char *path, const PawProgram *p, int adapter_dtype);
// Reads and validates a bundle, dequantizing the adapter to fp32. p is overwritten; free it
// with paw_program_free. -1 + paw_error naming the file and member on failure (p left empty).
int paw_program_read(const char *path, PawProgram *p);
// The same; flags PAW_PROGRAM_Q8_ADAPTER: keep Q4_0/Q8_0 modules as Q8 blocks, exactly (their
// values are those the fp32 read gives; an adapter takes 1.125 bytes a value instead of 4, for
// the CPU products to read). Such a program runs on the CPU only and cannot be written back.
enum { PAW_PROGRAM_Q8_ADAPTER = 1 };
int paw_program_read_ex(const char *path, PawProgram *p, int flags);
void paw_program_free(PawProgram *p);
// 0 when the program fits the interpreter (layers and every module's d_in/d_out, plus the
// recorded shape fields when present); else -1 + paw_error with expected and found values.
int paw_program_check_interpreter(const PawProgram *p, const Qwen3Config *cfg);
// Points a Qwen3Lora (nb = 1, no gradients) at the program's weights.
void paw_program_lora_view(const PawProgram *p, Qwen3Lora *lora);

// GGUF tensor base name of module m in layer l ("blk.3.attn_q.weight"); buf holds 64 bytes.
void paw_lora_gguf_name(int l, int m, const char *suffix, char *buf, size_t n);

#endif
