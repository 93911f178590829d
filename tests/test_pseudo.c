// Pseudo-program validation: the block between the markers is taken out of generated text, and
// anything else is refused with the reason.
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "compiler/pseudo.h"

Test(pseudo, extract_and_refuse) {
    char *p = paw_pseudo_extract("Sure!\n[PSEUDO_PROGRAM]\nTask: x.\nInput: a\nOutput: b\n[END_PSEUDO_PROGRAM]\nbye", 1000);
    cr_assert_not_null(p);
    cr_assert_str_eq(p, "[PSEUDO_PROGRAM]\nTask: x.\nInput: a\nOutput: b\n[END_PSEUDO_PROGRAM]");
    free(p);
    cr_assert_null(paw_pseudo_extract("Task: x. [END_PSEUDO_PROGRAM]", 1000));
    cr_assert(strstr(paw_last_error(), "[PSEUDO_PROGRAM]"));
    cr_assert_null(paw_pseudo_extract("[PSEUDO_PROGRAM]\nTask: x.", 1000));
    cr_assert(strstr(paw_last_error(), "[END_PSEUDO_PROGRAM]"));
    cr_assert_null(paw_pseudo_extract("[PSEUDO_PROGRAM]\n  \n[END_PSEUDO_PROGRAM]", 1000));
    cr_assert(strstr(paw_last_error(), "empty"));
    cr_assert_null(paw_pseudo_extract("[PSEUDO_PROGRAM]\nTask: a long one.\n[END_PSEUDO_PROGRAM]", 20));
    cr_assert(strstr(paw_last_error(), "limit"));
    char *req = paw_pseudo_request("Classify the log line.", 1);
    cr_assert(strstr(req, "Classify the log line.") && strstr(req, "[END_PSEUDO_PROGRAM]") && strstr(req, "only"));
    free(req);
}

Test(pseudo, a_model_that_cannot_write_one_is_a_clear_error) {
    // A tiny random model with a 256-token vocabulary cannot even read the request: an error, not a crash.
    char *out = NULL;
    cr_assert_eq(paw_pseudo_generate("tests/fixtures/qwen3/tiny-gqa-tied", "Classify.", 16, 1000, &out), -1);
    cr_assert_null(out);
    cr_assert(strlen(paw_last_error()) > 0);
    cr_assert_eq(paw_pseudo_generate("/nonexistent", "x", 16, 1000, &out), -1);
    cr_assert(strstr(paw_last_error(), "--pseudo-model"), "%s", paw_last_error());
}
