// libFuzzer target: safetensors files. Every tensor of a file that opens is converted, so a
// header that passes validation but points outside the file shows up as an ASan report.
#include <stdlib.h>

#include "model/safetensors.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    SafeTensors st;
    if (st_open(&st, fuzz_write_temp(data, size, ".safetensors")) != 0) return 0;
    for (int i = 0; i < st.ntensors; i++) {
        const StTensor *t = &st.tensors[i];
        if (t->numel > (1 << 20)) continue;
        float *dst = malloc((size_t)(t->numel ? t->numel : 1) * sizeof(float));
        if (!dst) abort();
        (void)st_to_f32(&st, t, dst);
        free(dst);
        (void)st_find(&st, t->name);
    }
    for (int i = 0; i < st.nmeta; i++) (void)st_meta(&st, st.meta_keys[i]);
    st_close(&st);
    return 0;
}
