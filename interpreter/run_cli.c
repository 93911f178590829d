// `paw run PROGRAM.paw [INPUT | -]`: run a program on inputs, as a Unix filter when reading stdin.
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/args.h"
#include "common/commands.h"
#include "common/error.h"
#include "common/fileio.h"
#include "interpreter/program.h"
#include "interpreter/runner.h"

// Reads one line of any length from f (without the newline); NULL at the end.
static char *read_line(FILE *f) {
    size_t cap = 256, n = 0;
    char *s = xmalloc(cap);
    int c;
    while ((c = fgetc(f)) != EOF && c != '\n') {
        if (n + 1 >= cap) s = xrealloc(s, cap *= 2);
        s[n++] = (char)c;
    }
    if (c == EOF && n == 0) {
        free(s);
        return NULL;
    }
    if (n && s[n - 1] == '\r') n--;
    s[n] = 0;
    return s;
}

int cmd_run(int argc, char **argv) {
    const char *interp_dir = NULL, *device = "cpu";
    int jsonl = 0, max_new = 64;
    PawOpt opts[] = {
        {"interpreter", PAW_OPT_STR, &interp_dir, "interpreter checkpoint directory (default: the one the program names, if found)"},
        {"jsonl", PAW_OPT_FLAG, &jsonl, "stdin lines are JSON objects with \"input\"; each is printed back with \"output\""},
        {"max-new", PAW_OPT_INT, &max_new, "most tokens generated per input"},
        {"device", PAW_OPT_STR, &device, "cpu or cuda"},
    };
    PawCommandSpec cs = {"paw run PROGRAM.paw [INPUT | -] [--interpreter DIR] [--jsonl]",
                         "Runs a program: the interpreter with the program's adapter, on its prompt with the input, greedy "
                         "until <|im_end|>; prints the stripped output. With no INPUT (or -) every stdin line is an input "
                         "and every output one line, so that paw run works as a filter.",
                         opts, 4, 2};
    char *pos[2];
    int npos, prc = paw_parse_args(&cs, argc, argv, pos, &npos);
    if (prc) return prc > 0 ? 0 : 2;
    if (npos < 1) {
        fprintf(stderr, "paw run: a PROGRAM.paw is required\n");
        paw_print_usage(&cs, 1);
        return 2;
    }
    if (strcmp(device, "cpu") != 0) {
        fprintf(stderr, "paw run: --device %s: this build runs programs on the CPU\n", device);
        return 2;
    }
    if (max_new < 1) {
        fprintf(stderr, "paw run: --max-new must be positive\n");
        return 2;
    }
    PawProgram prog;
    if (paw_program_read(pos[0], &prog) != 0) {
        fprintf(stderr, "paw run: %s\n", paw_last_error());
        return 1;
    }
    if (!interp_dir) {
        if (prog.interpreter && paw_is_dir(prog.interpreter)) interp_dir = prog.interpreter;
        else {
            fprintf(stderr, "paw run: the program was compiled for interpreter \"%s\", which is not a local directory; "
                            "give --interpreter DIR\n", prog.interpreter ? prog.interpreter : "?");
            paw_program_free(&prog);
            return 2;
        }
    }
    Qwen3 model;
    PawTokenizer *tok = NULL;
    PawVocabMap vm = {0};
    int stop, status = 0;
    if (qwen3_load(&model, interp_dir, 1) != 0) {
        fprintf(stderr, "paw run: %s\n", paw_last_error());
        paw_program_free(&prog);
        return 1;
    }
    PawRunner r;
    memset(&r, 0, sizeof r);
    Qwen3Lora lora;
    paw_program_lora_view(&prog, &lora);
    if (paw_program_check_interpreter(&prog, &model.cfg) != 0 || paw_runner_resources(interp_dir, &tok, &vm, &stop) != 0 ||
        paw_runner_init(&r, &model, tok, &vm, stop, prog.template_text, &lora) != 0) {
        fprintf(stderr, "paw run: %s\n", paw_last_error());
        status = 1;
        goto out;
    }
    if (npos == 2 && strcmp(pos[1], "-") != 0) {
        char *output;
        if (paw_runner_run(&r, pos[1], max_new, &output) != 0) {
            fprintf(stderr, "paw run: %s\n", paw_last_error());
            status = 1;
        } else {
            printf("%s\n", output);
            free(output);
        }
        goto out;
    }
    char *line;
    int line_no = 0;
    while ((line = read_line(stdin)) != NULL) {
        line_no++;
        const char *input = line;
        cJSON *obj = NULL;
        if (jsonl) {
            obj = cJSON_Parse(line);
            const cJSON *in = obj ? cJSON_GetObjectItemCaseSensitive(obj, "input") : NULL;
            if (!cJSON_IsString(in)) {
                fprintf(stderr, "paw run: stdin:%d: expected a JSON object with a string \"input\"\n", line_no);
                status = 1;
                printf("{\"error\":\"bad input line\"}\n");
                fflush(stdout);
                cJSON_Delete(obj);
                free(line);
                continue;
            }
            input = in->valuestring;
        }
        char *output = NULL;
        if (paw_runner_run(&r, input, max_new, &output) != 0) {
            // A bad line is reported and leaves an empty line (or an error object), so that
            // outputs stay aligned with inputs.
            fprintf(stderr, "paw run: stdin:%d: %s\n", line_no, paw_last_error());
            status = 1;
            if (jsonl) {
                cJSON_AddStringToObject(obj, "error", paw_last_error());
                char *s = cJSON_PrintUnformatted(obj);
                printf("%s\n", s);
                free(s);
            } else {
                printf("\n");
            }
        } else if (jsonl) {
            // "output" is set (replacing one already there, e.g. the expected answer of a test file).
            if (cJSON_GetObjectItemCaseSensitive(obj, "output")) cJSON_DeleteItemFromObjectCaseSensitive(obj, "output");
            cJSON_AddStringToObject(obj, "output", output);
            char *s = cJSON_PrintUnformatted(obj);
            printf("%s\n", s);
            free(s);
        } else {
            printf("%s\n", output);
        }
        fflush(stdout);
        free(output);
        cJSON_Delete(obj);
        free(line);
    }
out:
    paw_runner_free(&r);
    if (tok) paw_tokenizer_free(tok);
    paw_vocab_map_free(&vm);
    qwen3_free(&model);
    paw_program_free(&prog);
    return status;
}
