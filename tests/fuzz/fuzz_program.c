// libFuzzer target: program bundles (.paw, a ZIP of adapter.gguf, prompt_template.txt,
// meta.json and adapter_config.json).
#include "interpreter/program.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    PawProgram p;
    if (paw_program_read(fuzz_write_temp(data, size, ".paw"), &p) == 0) paw_program_free(&p);
    return 0;
}
