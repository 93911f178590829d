// Qwen3 model configuration, read from a Hugging Face config.json.
#ifndef PAW_MODEL_CONFIG_H
#define PAW_MODEL_CONFIG_H

typedef struct {
    int hidden_size;         // C
    int intermediate_size;   // I
    int num_layers;          // L
    int num_heads;           // NH (query heads)
    int num_kv_heads;        // NKV
    int head_dim;            // HD, independent of C / NH (128 in every released Qwen3)
    int vocab_size;          // V (rows of the embedding table)
    int max_position_embeddings;
    double rope_theta;
    double rms_norm_eps;
    int tie_word_embeddings;
    int bos_token_id, eos_token_id;  // -1 when absent
} Qwen3Config;

// Parses config.json text (path is for messages). Refuses, naming the field, any architecture or
// setting this implementation does not compute (rope scaling, sliding window, attention bias, ...).
int qwen3_config_parse(Qwen3Config *cfg, const char *json, const char *path);
int qwen3_config_load(Qwen3Config *cfg, const char *path);
// Writes a config.json that transformers' from_pretrained loads (atomically).
int qwen3_config_save(const Qwen3Config *cfg, const char *path, const char *torch_dtype);
// Sanity checks shared by the parser and programmatic construction.
int qwen3_config_validate(const Qwen3Config *cfg, const char *path);

#endif
