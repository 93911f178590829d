#include "compiler/pseudo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "data/template.h"
#include "interpreter/runner.h"
#include "model/qwen3.h"

char *paw_pseudo_request(const char *spec, int attempt) {
    const char *head =
        "Rewrite the task specification below as a pseudo-program for a small model that will run it on many "
        "inputs. Write a short, clean restatement of the task, then three examples, each as an \"Input:\" line "
        "followed by an \"Output:\" line with exactly the expected output. Put everything between " PAW_PSEUDO_BEGIN
        " and " PAW_PSEUDO_END ".";
    const char *strict = " Reply with the block only: begin with " PAW_PSEUDO_BEGIN ", end with " PAW_PSEUDO_END
                         ", and write nothing before or after it.";
    size_t n = strlen(head) + strlen(strict) + strlen(spec) + 64;
    char *s = xmalloc(n);
    snprintf(s, n, "%s%s\n\nSpecification:\n%s", head, attempt ? strict : "", spec);
    return s;
}

char *paw_pseudo_extract(const char *text, size_t max_chars) {
    const char *b = strstr(text, PAW_PSEUDO_BEGIN);
    if (!b) {
        paw_error("the generated text has no " PAW_PSEUDO_BEGIN " marker");
        return NULL;
    }
    const char *e = strstr(b + strlen(PAW_PSEUDO_BEGIN), PAW_PSEUDO_END);
    if (!e) {
        paw_error("the generated text has no " PAW_PSEUDO_END " marker after " PAW_PSEUDO_BEGIN);
        return NULL;
    }
    const char *body = b + strlen(PAW_PSEUDO_BEGIN);
    int blank = 1;
    for (const char *p = body; p < e && blank; p++) blank = *p == ' ' || *p == '\n' || *p == '\t' || *p == '\r';
    if (blank) {
        paw_error("the generated pseudo-program is empty");
        return NULL;
    }
    size_t n = (size_t)(e - b) + strlen(PAW_PSEUDO_END);
    if (n > max_chars) {
        paw_error("the generated pseudo-program is %zu characters, over the limit of %zu", n, max_chars);
        return NULL;
    }
    char *r = xmalloc(n + 1);
    memcpy(r, b, n);
    r[n] = 0;
    return r;
}

int paw_pseudo_generate(const char *model_dir, const char *spec, int max_new, size_t max_chars, char **out) {
    *out = NULL;
    Qwen3 m;
    // bf16 when the instruct checkpoint stores bf16 (the released ones do): half the memory and time.
    if (qwen3_load_ex(&m, model_dir, 1, QWEN3_WEIGHTS_AUTO) != 0) return paw_error_context("--pseudo-model");
    PawTokenizer *tok;
    PawVocabMap vm;
    int stop, rc = paw_runner_resources(model_dir, &tok, &vm, &stop);
    char first_error[512] = "";
    for (int attempt = 0; rc == 0 && attempt < 2 && !*out; attempt++) {
        // The request is the input of a one-placeholder template whose assistant turn starts the block.
        char *req = paw_pseudo_request(spec, attempt);
        char *turn = paw_chat_user_turn(PAW_INPUT_PLACEHOLDER, 0);
        size_t tl = strlen(turn) + strlen(PAW_PSEUDO_BEGIN) + 2;
        char *tmpl = xmalloc(tl);
        snprintf(tmpl, tl, "%s%s\n", turn, PAW_PSEUDO_BEGIN);
        PawRunner r;
        char *text = NULL;
        rc = paw_runner_init(&r, &m, tok, &vm, stop, tmpl, NULL);
        if (rc == 0) rc = paw_runner_run(&r, req, max_new, &text);
        paw_runner_free(&r);
        if (rc == 0) {
            size_t n = strlen(text) + strlen(PAW_PSEUDO_BEGIN) + 2;
            char *full = xmalloc(n);
            snprintf(full, n, "%s\n%s", PAW_PSEUDO_BEGIN, text);
            *out = paw_pseudo_extract(full, max_chars);
            if (!*out && attempt == 0) snprintf(first_error, sizeof first_error, "%s", paw_last_error());
            free(full);
        }
        free(text), free(tmpl), free(turn), free(req);
    }
    if (rc == 0 && !*out)
        rc = paw_error("the pseudo-program model did not produce a valid block in two attempts (first: %s; retry: %s)",
                       first_error, paw_last_error());
    if (tok) paw_tokenizer_free(tok);
    paw_vocab_map_free(&vm);
    qwen3_free(&m);
    return rc;
}
