// Trimmed vocabularies for tiny models. The real Qwen3 vocabulary has 151,936 rows, and a tiny
// CPU model would spend most of its time in that LM head; a tiny model may instead use only the
// token ids its data contains, renumbered 0..n-1. The mapping is stored with the model as
// vocab_map.safetensors: tensor "orig_ids" (I32 [n], the tokenizer id of each model id, ascending)
// and metadata "orig_vocab_size". Ids outside the map are refused, never silently replaced.
#ifndef PAW_DATA_VOCAB_MAP_H
#define PAW_DATA_VOCAB_MAP_H

#include <stdint.h>

typedef struct {
    int n;             // model vocabulary size
    int32_t *orig;     // [n] tokenizer id of each model id, ascending
    int orig_size;     // tokenizer vocabulary size
    int32_t *compact;  // [orig_size] model id of each tokenizer id, or -1
} PawVocabMap;

// From a set of used tokenizer ids (any order, duplicates allowed), all < orig_size.
int paw_vocab_map_build(PawVocabMap *vm, const int32_t *ids, int64_t n, int orig_size);
void paw_vocab_map_free(PawVocabMap *vm);
// The largest tokenizer vocabulary a map may refer to (Qwen3's has 151,936 ids).
#define PAW_VOCAB_MAP_MAX_ORIG (1 << 24)

// DIR/vocab_map.safetensors. load returns 1 (and an empty map) when the directory has none.
int paw_vocab_map_save(const PawVocabMap *vm, const char *dir);
int paw_vocab_map_load(PawVocabMap *vm, const char *dir);
int paw_vocab_map_equal(const PawVocabMap *a, const PawVocabMap *b);
// Tokenizer ids -> model ids in place; -1 + paw_error naming the first id outside the map.
int paw_vocab_map_to_model(const PawVocabMap *vm, int32_t *ids, int64_t n);
// Model id -> tokenizer id (-1 when out of range).
static inline int32_t paw_vocab_map_to_tokenizer(const PawVocabMap *vm, int32_t id) {
    return id >= 0 && id < vm->n ? vm->orig[id] : -1;
}

#endif
