#include "data/template.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

#define TURN_OPEN "<|im_start|>user\n"
#define TURN_CLOSE "<|im_end|>\n<|im_start|>assistant\n"
#define EMPTY_THINK "<think>\n\n</think>\n\n"

// Joins n strings into a new one.
static char *concat(int n, ...) {
    va_list ap;
    size_t total = 0;
    va_start(ap, n);
    for (int i = 0; i < n; i++) total += strlen(va_arg(ap, const char *));
    va_end(ap);
    char *out = xmalloc(total + 1), *p = out;
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        const char *s = va_arg(ap, const char *);
        size_t len = strlen(s);
        memcpy(p, s, len);
        p += len;
    }
    va_end(ap);
    *p = 0;
    return out;
}

char *paw_chat_user_turn(const char *text, int with_empty_think) {
    return concat(4, TURN_OPEN, text, TURN_CLOSE, with_empty_think ? EMPTY_THINK : "");
}

char *paw_interpreter_user_text(const char *pseudo_program, const char *input) {
    return concat(4, pseudo_program, "\n\n[INPUT]\n", input, "\n[END_INPUT]");
}

char *paw_compiler_user_text(const char *spec) { return concat(3, "[SPEC]\n", spec, "\n[END_SPEC]\n\n[PSEUDO_PROGRAM]"); }

char *paw_interpreter_prompt(const char *pseudo_program, const char *input) {
    char *prefix, *suffix;
    paw_interpreter_prompt_split(pseudo_program, &prefix, &suffix);
    char *out = concat(3, prefix, input, suffix);
    free(prefix);
    free(suffix);
    return out;
}

char *paw_compiler_prompt(const char *spec) {
    char *user = paw_compiler_user_text(spec);
    char *out = paw_chat_user_turn(user, 0);
    free(user);
    return out;
}

void paw_interpreter_prompt_split(const char *pseudo_program, char **prefix, char **suffix) {
    *prefix = concat(3, TURN_OPEN, pseudo_program, "\n\n[INPUT]\n");
    *suffix = xstrdup("\n[END_INPUT]" TURN_CLOSE EMPTY_THINK);
}

char *paw_interpreter_prompt_template(const char *pseudo_program) {
    return paw_interpreter_prompt(pseudo_program, PAW_INPUT_PLACEHOLDER);
}

int paw_prompt_template_split(const char *template_text, char **prefix, char **suffix) {
    *prefix = *suffix = NULL;
    const char *at = strstr(template_text, PAW_INPUT_PLACEHOLDER);
    if (!at) return paw_error("prompt template: expected one %s, found none", PAW_INPUT_PLACEHOLDER);
    const char *rest = at + strlen(PAW_INPUT_PLACEHOLDER);
    if (strstr(rest, PAW_INPUT_PLACEHOLDER))
        return paw_error("prompt template: expected one %s, found more than one", PAW_INPUT_PLACEHOLDER);
    size_t n = (size_t)(at - template_text);
    *prefix = xmalloc(n + 1);
    memcpy(*prefix, template_text, n);
    (*prefix)[n] = 0;
    *suffix = xstrdup(rest);
    return 0;
}
