// libFuzzer target: the JSON configs, a training config and a Hugging Face config.json.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/config.h"
#include "train/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *json = malloc(size + 1);
    if (!json) abort();
    memcpy(json, data, size);
    json[size] = 0;
    TrainConfig tc;
    train_config_defaults(&tc);
    if (train_config_parse(&tc, json, "fuzz.json") == 0)
        for (int s = 0; s < 4; s++) (void)train_lr_at(&tc, s * 1000);
    train_config_free(&tc);
    Qwen3Config qc;
    (void)qwen3_config_parse(&qc, json, "config.json");
    free(json);
    return 0;
}
