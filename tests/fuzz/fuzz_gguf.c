// libFuzzer target: GGUF bytes (the adapters inside program files). Every key is looked up and
// every tensor decoded, so anything that passes validation is also read.
#include <stdlib.h>

#include "model/gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Gguf g;
    if (gguf_parse(&g, data, size, "fuzz.gguf") != 0) return 0;
    for (int i = 0; i < g.nkv; i++) {
        double x;
        (void)gguf_find_kv(&g, g.kv[i].key);
        (void)gguf_get_str(&g, g.kv[i].key);
        (void)gguf_get_number(&g, g.kv[i].key, &x);
    }
    for (int i = 0; i < g.ntensors; i++) {
        const GgufTensor *t = &g.tensors[i];
        if (t->numel > (1 << 20)) continue;
        float *dst = malloc((size_t)(t->numel ? t->numel : 1) * sizeof(float));
        if (!dst) abort();
        (void)gguf_tensor_to_f32(&g, t, dst);
        free(dst);
    }
    gguf_close(&g);
    return 0;
}
