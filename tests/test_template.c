// Prompt templates against HF apply_chat_template (fixture from tests/make_tokenizer_fixtures.py).
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileio.h"
#include "data/template.h"
#include "data/tokenizer.h"

static cJSON *load_cases(void) {
    char *text = paw_read_file("tests/fixtures/tokenizer/templates.json", NULL);
    cr_assert(text, "%s", paw_last_error());
    cJSON *cases = cJSON_Parse(text);
    free(text);
    cr_assert(cJSON_IsArray(cases) && cJSON_GetArraySize(cases) >= 5);
    return cases;
}

static const char *field(const cJSON *c, const char *name) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(c, name);
    cr_assert(cJSON_IsString(f), "field %s", name);
    return f->valuestring;
}

Test(template, matches_hf_chat_template) {
    cJSON *cases = load_cases();
    const cJSON *c;
    int i = 0;
    cJSON_ArrayForEach(c, cases) {
        const char *prog = field(c, "pseudo_program"), *input = field(c, "input"), *spec = field(c, "spec");
        char *got = paw_interpreter_prompt(prog, input);
        cr_assert_str_eq(got, field(c, "interpreter"), "case %d", i);
        free(got);
        char *user = paw_interpreter_user_text(prog, input);
        got = paw_chat_user_turn(user, 1);
        cr_assert_str_eq(got, field(c, "interpreter"), "case %d", i);
        free(got);
        free(user);
        got = paw_compiler_prompt(spec);
        cr_assert_str_eq(got, field(c, "compiler_no_think"), "case %d", i);
        free(got);
        user = paw_compiler_user_text(spec);
        got = paw_chat_user_turn(user, 1);
        cr_assert_str_eq(got, field(c, "compiler_empty_think"), "case %d", i);
        free(got);
        got = paw_chat_user_turn(user, 0);
        cr_assert_str_eq(got, field(c, "compiler_no_think"), "case %d", i);
        free(got);
        free(user);
        i++;
    }
    cJSON_Delete(cases);
}

Test(template, split_and_placeholder_rebuild_the_prompt) {
    cJSON *cases = load_cases();
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        const char *prog = field(c, "pseudo_program"), *input = field(c, "input"), *want = field(c, "interpreter");
        char *prefix, *suffix;
        paw_interpreter_prompt_split(prog, &prefix, &suffix);
        size_t np = strlen(prefix), ni = strlen(input);
        cr_assert_eq(strlen(want), np + ni + strlen(suffix));
        cr_assert_eq(strncmp(want, prefix, np), 0);
        cr_assert_eq(strncmp(want + np, input, ni), 0);
        cr_assert_str_eq(want + np + ni, suffix);
        free(prefix);
        free(suffix);

        char *tmpl = paw_interpreter_prompt_template(prog);
        cr_assert_eq(paw_prompt_template_split(tmpl, &prefix, &suffix), 0, "%s", paw_last_error());
        char *rebuilt = malloc(strlen(prefix) + ni + strlen(suffix) + 1);
        strcpy(rebuilt, prefix);
        strcat(rebuilt, input);
        strcat(rebuilt, suffix);
        cr_assert_str_eq(rebuilt, want);
        free(rebuilt);
        free(prefix);
        free(suffix);
        free(tmpl);
    }
    cJSON_Delete(cases);
}

Test(template, placeholder_must_appear_once) {
    char *prefix, *suffix;
    cr_assert_eq(paw_prompt_template_split("no placeholder", &prefix, &suffix), -1);
    cr_assert(strstr(paw_last_error(), "found none"));
    cr_assert_eq(paw_prompt_template_split("a{INPUT_PLACEHOLDER}b{INPUT_PLACEHOLDER}", &prefix, &suffix), -1);
    cr_assert(strstr(paw_last_error(), "more than one"));
    cr_assert_eq(paw_prompt_template_split("{INPUT_PLACEHOLDER}", &prefix, &suffix), 0);
    cr_assert_str_eq(prefix, "");
    cr_assert_str_eq(suffix, "");
    free(prefix);
    free(suffix);
}

// The rendered interpreter prompt tokenizes (added tokens recognised) as HF's tokenizer does it.
Test(template, rendered_prompt_tokens_match_hf) {
    cJSON *cases = load_cases();
    PawTokenizer *t = paw_tokenizer_load(paw_tokenizer_default_path());
    cr_assert(t, "%s", paw_last_error());
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        char *prompt = paw_interpreter_prompt(field(c, "pseudo_program"), field(c, "input"));
        PawIds ids = {0};
        cr_assert_eq(paw_tokenizer_encode(t, prompt, strlen(prompt), 1, &ids), 0);
        const cJSON *ref = cJSON_GetObjectItemCaseSensitive(c, "interpreter_ids");
        cr_assert_eq(ids.n, (size_t)cJSON_GetArraySize(ref));
        size_t k = 0;
        const cJSON *id;
        cJSON_ArrayForEach(id, ref) cr_assert_eq(ids.ids[k++], id->valueint);
        cr_assert_eq(ids.ids[0], 151644);  // <|im_start|>
        paw_ids_free(&ids);
        free(prompt);
    }
    paw_tokenizer_free(t);
    cJSON_Delete(cases);
}
