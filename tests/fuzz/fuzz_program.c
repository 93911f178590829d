// libFuzzer target: program bundles (.paw, a ZIP of adapter.gguf, prompt_template.txt,
// meta.json and adapter_config.json).
#include "interpreter/program.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    PawProgram p;
    const char *path = fuzz_write_temp(data, size, ".paw");
    if (paw_program_read(path, &p) == 0) paw_program_free(&p);
    if (paw_program_read_ex(path, &p, PAW_PROGRAM_Q8_ADAPTER) == 0) paw_program_free(&p);  // as paw run on the CPU
    return 0;
}
