// Qwen3 tokenizer: byte-level BPE read from a Hugging Face tokenizer.json, equal to Hugging
// Face `tokenizers` token for token. The loaded tokenizer is immutable, so one instance may be
// used from several threads at once.
#ifndef PAW_DATA_TOKENIZER_H
#define PAW_DATA_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct PawTokenizer PawTokenizer;

// A growable list of token ids.
typedef struct {
    int32_t *ids;
    size_t n, cap;
} PawIds;
void paw_ids_push(PawIds *v, int32_t id);
void paw_ids_free(PawIds *v);

// The tokenizer.json to use when none is given: $PAW_TOKENIZER, else the path compiled in
// from the Makefile's PAW_TOKENIZER.
const char *paw_tokenizer_default_path(void);

PawTokenizer *paw_tokenizer_load(const char *path);  // NULL + paw_error() on failure
void paw_tokenizer_free(PawTokenizer *tok);

// Appends the ids of text[0..len) to out. The text may hold NUL bytes and invalid UTF-8: each
// maximal ill-formed sequence is read as U+FFFD, as Python's bytes.decode("utf-8", "replace")
// reads it before handing a str to HF. With allow_special, added-token strings such as
// "<|im_end|>" become their ids (as HF `Tokenizer.encode`); otherwise every added-token string
// is plain text (as HF with the added tokens removed: normalizer, split regex and BPE only).
// Returns 0, or -1 with paw_error().
int paw_tokenizer_encode(const PawTokenizer *tok, const char *text, size_t len, int allow_special, PawIds *out);

// Decodes ids to the exact bytes (NUL-terminated, caller frees; *len excludes the NUL). The
// bytes of each token are concatenated, so a sequence cut inside a character gives partial
// UTF-8; decode(encode(x)) is x after U+FFFD repair and NFC.
// NULL + paw_error() for an id outside the vocabulary.
char *paw_tokenizer_decode(const PawTokenizer *tok, const int32_t *ids, size_t n, size_t *len);

// The id of a token string (added tokens included), or -1.
int32_t paw_tokenizer_token_id(const PawTokenizer *tok, const char *token);
int32_t paw_tokenizer_vocab_size(const PawTokenizer *tok);  // largest id + 1

#endif
