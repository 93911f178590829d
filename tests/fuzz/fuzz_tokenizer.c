// libFuzzer target: the Qwen3 tokenizer ($PAW_TOKENIZER) on arbitrary bytes (invalid UTF-8,
// NULs, special-token strings). The ids must be in the vocabulary and decode; decoding
// arbitrary ids must not crash either.
#include <stdint.h>
#include <stdlib.h>

#include "data/tokenizer.h"

static PawTokenizer *tok;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    tok = paw_tokenizer_load(paw_tokenizer_default_path());
    if (!tok) abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    PawIds ids = {0};
    if (paw_tokenizer_encode(tok, (const char *)data + 1, size - 1, data[0] & 1, &ids) != 0) abort();
    size_t len;
    char *text = paw_tokenizer_decode(tok, ids.ids, ids.n, &len);
    if (!text) abort();  // every id encode gives must decode
    free(text);
    paw_ids_free(&ids);
    // The same bytes read as little-endian ids: out-of-vocabulary ones must be refused, not read.
    size_t n = (size - 1) / 4;
    int32_t *raw = malloc((n ? n : 1) * sizeof(int32_t));
    if (!raw) abort();
    for (size_t i = 0; i < n; i++)
        raw[i] = (int32_t)((uint32_t)data[1 + 4 * i] | (uint32_t)data[2 + 4 * i] << 8 |
                           (uint32_t)data[3 + 4 * i] << 16 | (uint32_t)data[4 + 4 * i] << 24);
    free(paw_tokenizer_decode(tok, raw, n, &len));
    free(raw);
    return 0;
}
