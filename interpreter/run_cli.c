// `paw run PROGRAM.paw [INPUT | -]`: run a program on inputs, as a Unix filter when reading stdin.
// On the GPU (--device cuda) stdin is read up to 8 x --batch lines at a time (fewer when no more
// have arrived yet, so that an interactive user gets each answer) and each chunk is decoded in
// --batch rows, a row taking the next input when its own ends; outputs stay in input order.
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/args.h"
#include "common/commands.h"
#include "common/error.h"
#include "common/fileio.h"
#include "common/lines.h"
#include "interpreter/program.h"
#include "interpreter/runner.h"
#include "interpreter/runner_cuda.h"

// One stdin line: the input it carries, or why it has none.
typedef struct {
    char *line;
    cJSON *obj;         // --jsonl: the parsed object
    const char *input;  // NULL: a bad line
    char *output, *error;
} Line;

// Prints one result line (an empty line or an error object for a failed input, so that outputs
// stay aligned with inputs); -1 when it could not be written.
static int print_line(const Line *l, int jsonl) {
    if (!jsonl) {  // one line an input: an output's own line breaks are printed as spaces
        for (const char *c = l->output ? l->output : ""; *c; c++) putchar(*c == '\n' || *c == '\r' ? ' ' : *c);
        putchar('\n');
    } else if (!l->input) {
        printf("{\"error\":\"bad input line\"}\n");
    } else {
        if (l->output) {
            // "output" is set (replacing one already there, e.g. the expected answer of a test file).
            if (cJSON_GetObjectItemCaseSensitive(l->obj, "output"))
                cJSON_DeleteItemFromObjectCaseSensitive(l->obj, "output");
            cJSON_AddStringToObject(l->obj, "output", l->output);
        } else {
            cJSON_AddStringToObject(l->obj, "error", l->error ? l->error : "failed");
        }
        char *s = cJSON_PrintUnformatted(l->obj);
        printf("%s\n", s);
        free(s);
    }
    return fflush(stdout) != 0 || ferror(stdout) ? -1 : 0;
}

int cmd_run(int argc, char **argv) {
    const char *interp_dir = NULL, *device = "cpu", *weights_s = "auto";
    int jsonl = 0, max_new = 64, batch = 0, stats = 0;
    PawOpt opts[] = {
        {"interpreter", PAW_OPT_STR, &interp_dir, "interpreter checkpoint directory (default: the one the program names, if found)"},
        {"jsonl", PAW_OPT_FLAG, &jsonl, "stdin lines are JSON objects with \"input\"; each is printed back with \"output\""},
        {"max-new", PAW_OPT_INT, &max_new, "most tokens generated per input"},
        {"device", PAW_OPT_STR, &device, "cpu or cuda"},
        {"weights", PAW_OPT_STR, &weights_s, QWEN3_WEIGHTS_HELP},
        {"batch", PAW_OPT_INT, &batch, "rows decoded together, 0: 4 on cpu (up to 32 give each input the bits it gets "
                                       "alone), 32 on cuda; stdin is read up to 8 times this many lines at a time"},
        {"stats", PAW_OPT_FLAG, &stats, "print inputs/s, generated tokens/s, prefills, steps, the share of rows running "
                                        "and the prompt tokens prefilled to stderr at the end"},
    };
    PawCommandSpec cs = {"paw run PROGRAM.paw [INPUT | -] [--interpreter DIR] [--jsonl] [--device cpu|cuda] [--batch N]",
                         "Runs a program: the interpreter with the program's adapter, on its prompt with the input, greedy "
                         "until <|im_end|>; prints the stripped output. With no INPUT (or -) every stdin line is an input "
                         "and every output one line (its own line breaks printed as spaces; --jsonl keeps them), so that paw run "
                         "works as a filter. The inputs that have arrived are "
                         "decoded --batch rows at a time, rows whose output has ended taking the next inputs (once an "
                         "eighth of the rows are free), and the program's text before the input is computed once and "
                         "shared by every row. Batching pays on the CPU too: a decoding step reads every weight once "
                         "for all its rows. On the CPU a Q4_0 or Q8_0 adapter stays in its int8 blocks: under a third "
                         "of fp32's memory, the same outputs.",
                         opts, (int)(sizeof opts / sizeof opts[0]), 2};
    char *pos[2];
    int npos, prc = paw_parse_args(&cs, argc, argv, pos, &npos);
    if (prc) return prc > 0 ? 0 : 2;
    if (npos < 1) {
        fprintf(stderr, "paw run: a PROGRAM.paw is required\n");
        paw_print_usage(&cs, 1);
        return 2;
    }
    int cuda = strcmp(device, "cuda") == 0;
    if (!cuda && strcmp(device, "cpu") != 0) {
        fprintf(stderr, "paw run: --device '%s': expected cpu or cuda\n", device);
        return 2;
    }
    if (batch == 0) batch = cuda ? 32 : 4;
    if (max_new < 1 || batch < 1 || batch > 65536) {
        fprintf(stderr, "paw run: --max-new must be positive and --batch in [1, 65536] (0: the default)\n");
        return 2;
    }
    int weights = qwen3_weights_for_device(weights_s, cuda);
    if (weights < 0) {
        fprintf(stderr, "paw run: --%s\n", paw_last_error());
        return 2;
    }
    if (cuda && paw_gpu_available() != 0) {  // before loading anything
        fprintf(stderr, "paw run: --device cuda: %s\n", paw_last_error());
        return 2;
    }
    PawProgram prog;
    // On the CPU a Q4_0/Q8_0 adapter stays in Q8 blocks (the same outputs, a quarter of the bytes).
    if (paw_program_read_ex(pos[0], &prog, cuda ? 0 : PAW_PROGRAM_Q8_ADAPTER) != 0) {
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
    PawGpuRunner *gpu = NULL;
    int stop, status = 0;
    if (qwen3_load_ex(&model, interp_dir, 1, weights) != 0) {
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
    if (cuda && (!(gpu = paw_gpu_runner_create(&model, tok, &vm, stop, batch)) ||
                 paw_gpu_runner_add_program(gpu, prog.template_text, &lora) != 0)) {
        fprintf(stderr, "paw run: --device cuda: %s\n", paw_last_error());
        status = 1;
        goto out;
    }
    int single = npos == 2 && strcmp(pos[1], "-") != 0;
    int chunk = 8 * batch, line_no = 0, eof = 0;  // room for refills: more inputs than rows
    Line *lines = xcalloc((size_t)chunk, sizeof(Line));
    PawRunJob *jobs = xmalloc(sizeof(PawRunJob) * (size_t)chunk);
    int *job_line = xmalloc(sizeof(int) * (size_t)chunk);
    char **outs = xmalloc(sizeof(char *) * (size_t)chunk), **errs = xmalloc(sizeof(char *) * (size_t)chunk);
    const char **inputs = xmalloc(sizeof(char *) * (size_t)chunk);
    PawRunStats total = {0};
    PawLines in;
    paw_lines_open(&in, 0);
    while (!eof && status != 3) {
        int nl = 0, nj = 0;
        if (single) {
            lines[0].input = pos[1];
            nl = 1, eof = 1;
        }
        // A chunk takes the lines that have arrived: a file or a fast pipe fills it, while an
        // interactive user's line runs at once.
        while (!single && nl < chunk && (nl == 0 || paw_lines_ready(&in))) {
            char *text = paw_lines_next(&in);
            if (!text) {
                if (in.error) {
                    fprintf(stderr, "paw run: stdin: %s\n", paw_last_error());
                    status = 1;
                }
                eof = 1;
                break;
            }
            line_no++;
            Line *l = &lines[nl++];
            l->line = text;
            l->input = text;
            if (strlen(text) != in.last_len) {  // the input would end at the NUL without a word
                fprintf(stderr, "paw run: stdin:%d: the line holds a NUL byte\n", line_no);
                status = 1;
                l->input = NULL;
            } else if (jsonl) {
                l->obj = cJSON_Parse(text);
                const cJSON *in = l->obj ? cJSON_GetObjectItemCaseSensitive(l->obj, "input") : NULL;
                if (!cJSON_IsString(in)) {
                    fprintf(stderr, "paw run: stdin:%d: expected a JSON object with a string \"input\"\n", line_no);
                    status = 1;
                    l->input = NULL;
                } else {
                    l->input = in->valuestring;
                }
            }
        }
        for (int i = 0; i < nl; i++)
            if (lines[i].input) {
                jobs[nj] = (PawRunJob){0, lines[i].input};
                job_line[nj++] = i;
            }
        if (nj > 0) {
            PawRunStats st = {0};
            int mrc;
            if (cuda) {
                mrc = paw_gpu_runner_run(gpu, jobs, nj, max_new, outs, errs, &st);
            } else {
                for (int j = 0; j < nj; j++) inputs[j] = jobs[j].input;
                mrc = paw_runner_run_many(&r, inputs, nj, batch, max_new, outs, errs, &st);
            }
            if (mrc != 0) {
                fprintf(stderr, "paw run: %s%s\n", cuda ? "--device cuda: " : "", paw_last_error());
                status = 3;  // a model failure ends the run
            }
            paw_run_stats_add(&total, &st);
            for (int j = 0; mrc == 0 && j < nj; j++) lines[job_line[j]].output = outs[j], lines[job_line[j]].error = errs[j];
        }
        for (int i = 0; i < nl; i++) {
            Line *l = &lines[i];
            if (l->error) {
                if (single) fprintf(stderr, "paw run: %s\n", l->error);
                else fprintf(stderr, "paw run: stdin:%d: %s\n", line_no - nl + 1 + i, l->error);
                if (status == 0) status = 1;
            }
            if (single) {
                if (l->output) printf("%s\n", l->output);
            } else if (status != 3 && print_line(l, jsonl) != 0) {
                // the rest of the outputs would be lost too
                fprintf(stderr, "paw run: writing to stdout failed: %s\n", strerror(errno ? errno : EIO));
                status = 3;
            }
            free(l->output), free(l->error), free(l->line);
            cJSON_Delete(l->obj);
            memset(l, 0, sizeof *l);
        }
    }
    if (status == 3) status = 1;
    if (stats && total.rows > 0)
        fprintf(stderr,
                "paw run: %ld inputs, %.2f s: %.2f inputs/s, %.1f generated tokens/s; %ld prefills, %ld steps with "
                "%.0f%% of their rows running; %ld prompt tokens prefilled, %ld taken from the shared prefix\n",
                total.rows, total.seconds, total.rows / total.seconds, total.tokens / total.seconds, total.fills,
                total.steps, total.row_steps ? 100.0 * (total.row_steps - total.idle_rows) / total.row_steps : 0.0,
                total.prefill_tokens, total.prefix_tokens);
    free(lines), free(jobs), free(job_line), free(outs), free(errs), free(inputs);
    paw_lines_close(&in);
out:
    paw_gpu_runner_free(gpu);
    paw_runner_free(&r);
    if (tok) paw_tokenizer_free(tok);
    paw_vocab_map_free(&vm);
    qwen3_free(&model);
    paw_program_free(&prog);
    return status;
}
