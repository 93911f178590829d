// libFuzzer target: program bundles, past the ZIP's CRCs. The input is read as the four members
// (adapter.gguf, prompt_template.txt, meta.json, adapter_config.json, each u16-length-prefixed),
// which are zipped into a well-formed bundle; what is fuzzed is the validation of their contents
// and of how they agree with each other (paw_program_read).
#include <stdlib.h>
#include <string.h>
#include <zip.h>

#include "interpreter/program.h"
#include "tests/fuzz/fuzz_util.h"

static const char *const MEMBERS[4] = {"adapter.gguf", "prompt_template.txt", "meta.json", "adapter_config.json"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write_temp(NULL, 0, ".paw");
    remove(path);
    int err = 0;
    zip_t *za = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &err);
    if (!za) abort();
    const uint8_t *p = data;
    size_t left = size;
    for (int m = 0; m < 4; m++) {
        size_t len = 0;
        if (left >= 2) len = (size_t)p[0] | (size_t)p[1] << 8, p += 2, left -= 2;
        if (len > left) len = left;
        zip_source_t *s = zip_source_buffer(za, p, len, 0);
        if (!s || zip_file_add(za, MEMBERS[m], s, ZIP_FL_OVERWRITE) < 0) abort();
        p += len, left -= len;
    }
    if (zip_close(za) != 0) abort();
    PawProgram prog;
    if (paw_program_read(path, &prog) == 0) paw_program_free(&prog);
    // And as paw run reads it on the CPU: Q4_0/Q8_0 modules kept in Q8 blocks.
    if (paw_program_read_ex(path, &prog, PAW_PROGRAM_Q8_ADAPTER) == 0) paw_program_free(&prog);
    return 0;
}
