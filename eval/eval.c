// `paw eval`: exact match of compiled programs on a FuzzyBench-style test set, overall and per
// family, beside the baselines:
//   compiled   pseudo-program prompt + the compiled LoRA          (the PAW program)
//   baseline   raw spec in place of the pseudo-program, no LoRA   (no compiler at all)
//   pseudo     pseudo-program prompt, no LoRA                     (the text half alone)
//   lora       raw spec prompt + the compiled LoRA                (the weight half alone)
// Each distinct (spec, pseudo-program) is compiled once; its examples share one prompt cache per
// condition. With --device cuda the interpreter runs on the GPU: all examples and conditions of a
// compile batch (--batch specs) are one job list for the GPU batch runner, --run-batch rows at a
// time with a different program (template + adapter) per row. The JSON report is rewritten atomically after every program, and a rerun with the
// same data, compiler and settings resumes from it without redoing finished examples.
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/args.h"
#include "common/commands.h"
#include "common/error.h"
#include "common/sha256.h"
#include "common/fileio.h"
#include "common/progress.h"
#include "compiler/pseudo.h"
#include "compiler/trained.h"
#include "data/shard_build.h"
#include "data/template.h"
#include "interpreter/runner.h"
#include "interpreter/runner_cuda.h"

enum { C_COMPILED, C_BASELINE, C_PSEUDO, C_LORA, NCOND };
static const char *cond_names[NCOND] = {"compiled", "baseline", "pseudo", "lora"};

typedef struct {
    char *spec, *input, *output, *pseudo, *family;
    int line;  // in the data file
    int group;
    int done;
    char *got[NCOND];
} Example;

typedef struct {
    int nex;
    Example *ex;
    int ngroups;
    int *group_first;  // an example index of each group
} TestSet;

static void free_set(TestSet *t) {
    for (int i = 0; i < t->nex; i++) {
        Example *e = &t->ex[i];
        free(e->spec), free(e->input), free(e->output), free(e->pseudo), free(e->family);
        for (int c = 0; c < NCOND; c++) free(e->got[c]);
    }
    free(t->ex);
    free(t->group_first);
}

static int read_set(const char *path, int max_examples, TestSet *t) {
    memset(t, 0, sizeof *t);
    size_t len;
    char *text = paw_read_file(path, &len);
    if (!text) return -1;
    if (paw_check_no_nul(path, text, len) != 0) {
        free(text);
        return -1;
    }
    int cap = 64, line_no = 0, rc = 0;
    t->ex = xcalloc((size_t)cap, sizeof(Example));
    for (char *line = text; line && *line && rc == 0 && (max_examples <= 0 || t->nex < max_examples);) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        line_no++;
        if (strspn(line, " \t\r") != strlen(line)) {
            cJSON *o = cJSON_Parse(line);
            const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "spec"), *in = cJSON_GetObjectItemCaseSensitive(o, "input");
            const cJSON *out = cJSON_GetObjectItemCaseSensitive(o, "output");
            const cJSON *pp = cJSON_GetObjectItemCaseSensitive(o, "pseudo_program");
            const cJSON *fam = cJSON_GetObjectItemCaseSensitive(o, "family");
            if (!fam) fam = cJSON_GetObjectItemCaseSensitive(o, "task_id");
            if (!o) rc = paw_error("%s:%d: not valid JSON", path, line_no);
            else if (!cJSON_IsString(s) || !cJSON_IsString(in) || !cJSON_IsString(out))
                rc = paw_error("%s:%d: needs string fields spec, input and output", path, line_no);
            else if (strstr(s->valuestring, PAW_INPUT_PLACEHOLDER) ||
                     (cJSON_IsString(pp) && strstr(pp->valuestring, PAW_INPUT_PLACEHOLDER)))
                rc = paw_error("%s:%d: the spec or pseudo_program holds %s, which marks where the input goes in "
                               "a program's prompt", path, line_no, PAW_INPUT_PLACEHOLDER);
            else {
                if (t->nex == cap) {
                    t->ex = xrealloc(t->ex, sizeof(Example) * (size_t)(cap * 2));
                    memset(t->ex + cap, 0, sizeof(Example) * (size_t)cap);
                    cap *= 2;
                }
                Example *e = &t->ex[t->nex++];
                e->line = line_no;
                e->spec = xstrdup(s->valuestring);
                e->input = xstrdup(in->valuestring);
                e->output = xstrdup(out->valuestring);
                e->pseudo = cJSON_IsString(pp) ? xstrdup(pp->valuestring) : NULL;
                e->family = xstrdup(cJSON_IsString(fam) ? fam->valuestring : "all");
            }
            cJSON_Delete(o);
        }
        line = nl ? nl + 1 : NULL;
    }
    free(text);
    if (rc == 0 && t->nex == 0) rc = paw_error("%s: no examples", path);
    return rc;
}

// Groups examples by (spec, pseudo-program): one compile each.
static void group_set(TestSet *t) {
    t->group_first = xmalloc(sizeof(int) * (size_t)t->nex);
    for (int i = 0; i < t->nex; i++) {
        Example *e = &t->ex[i];
        e->group = -1;
        for (int g = 0; g < t->ngroups; g++) {
            Example *f = &t->ex[t->group_first[g]];
            if (!strcmp(f->spec, e->spec) && !strcmp(f->pseudo, e->pseudo)) {
                e->group = g;
                break;
            }
        }
        if (e->group < 0) {
            e->group = t->ngroups;
            t->group_first[t->ngroups++] = i;
        }
    }
}

typedef struct {
    const char *path;
    char data_sha[65];
    const char *compiler_fp;
    const char *interpreter;
    int max_new;
    double seconds;
    // What else changes the outputs: the weights' kinds, the device, the pseudo-program model.
    const char *weights, *compiler_weights, *device, *pseudo_model;
} ReportInfo;

static cJSON *report_json(const TestSet *t, const ReportInfo *ri, const int *conds, int final) {
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "data_sha256", ri->data_sha);
    cJSON_AddStringToObject(r, "compiler", ri->compiler_fp);
    cJSON_AddStringToObject(r, "interpreter", ri->interpreter);
    cJSON_AddNumberToObject(r, "max_new_tokens", ri->max_new);
    cJSON_AddStringToObject(r, "weights", ri->weights);
    cJSON_AddStringToObject(r, "compiler_weights", ri->compiler_weights);
    cJSON_AddStringToObject(r, "device", ri->device);
    cJSON_AddStringToObject(r, "pseudo_model", ri->pseudo_model);
    cJSON_AddBoolToObject(r, "complete", final);
    cJSON *summary = cJSON_AddObjectToObject(r, "exact_match");
    for (int c = 0; c < NCOND; c++) {
        if (!conds[c]) continue;
        int hit = 0, tot = 0;
        cJSON *cj = cJSON_AddObjectToObject(summary, cond_names[c]);
        cJSON *fams = cJSON_CreateObject();
        for (int i = 0; i < t->nex; i++) {
            const Example *e = &t->ex[i];
            if (!e->done) continue;
            int ok = strcmp(e->got[c], e->output) == 0;
            hit += ok, tot++;
            cJSON *f = cJSON_GetObjectItemCaseSensitive(fams, e->family);
            if (!f) {
                f = cJSON_AddObjectToObject(fams, e->family);
                cJSON_AddNumberToObject(f, "correct", 0);
                cJSON_AddNumberToObject(f, "total", 0);
            }
            cJSON_SetNumberValue(cJSON_GetObjectItem(f, "correct"), cJSON_GetObjectItem(f, "correct")->valuedouble + ok);
            cJSON_SetNumberValue(cJSON_GetObjectItem(f, "total"), cJSON_GetObjectItem(f, "total")->valuedouble + 1);
        }
        cJSON_AddNumberToObject(cj, "accuracy", tot ? (double)hit / tot : 0);
        cJSON_AddNumberToObject(cj, "correct", hit);
        cJSON_AddNumberToObject(cj, "total", tot);
        cJSON_AddItemToObject(cj, "per_family", fams);
    }
    cJSON_AddNumberToObject(r, "seconds", ri->seconds);
    cJSON *exs = cJSON_AddArrayToObject(r, "examples");
    for (int i = 0; i < t->nex; i++) {
        const Example *e = &t->ex[i];
        if (!e->done) continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "index", i);
        cJSON_AddStringToObject(o, "family", e->family);
        cJSON *outs = cJSON_AddObjectToObject(o, "outputs");
        for (int c = 0; c < NCOND; c++)
            if (conds[c]) cJSON_AddStringToObject(outs, cond_names[c], e->got[c]);
        cJSON_AddItemToArray(exs, o);
    }
    return r;
}

static int save_report(const TestSet *t, const ReportInfo *ri, const int *conds, int final) {
    cJSON *r = report_json(t, ri, conds, final);
    char *s = cJSON_Print(r);
    cJSON_Delete(r);
    int rc = paw_write_file_atomic(ri->path, s, strlen(s));
    free(s);
    return rc;
}

// Takes finished examples from an earlier report of the same run.
static int resume_report(TestSet *t, const ReportInfo *ri, const int *conds) {
    if (!paw_file_exists(ri->path)) return 0;
    char *text = paw_read_file(ri->path, NULL);
    cJSON *r = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (!r) return paw_error("%s: an existing report that is not valid JSON; move it away or pick another --report", ri->path);
    const cJSON *mn = cJSON_GetObjectItem(r, "max_new_tokens");
    const char *keys[7] = {"data_sha256", "compiler", "interpreter", "weights", "compiler_weights", "device", "pseudo_model"};
    const char *want[7] = {ri->data_sha, ri->compiler_fp, ri->interpreter, ri->weights, ri->compiler_weights, ri->device,
                           ri->pseudo_model};
    const char *differs = !cJSON_IsNumber(mn) || mn->valueint != ri->max_new ? "max_new_tokens" : NULL;
    for (int k = 0; k < 7 && !differs; k++) {
        const cJSON *v = cJSON_GetObjectItem(r, keys[k]);
        if (!cJSON_IsString(v) || strcmp(v->valuestring, want[k])) differs = keys[k];
    }
    if (differs) {
        cJSON_Delete(r);
        return paw_error("%s: an existing report of another run (its \"%s\" differs); move it away or pick another --report",
                         ri->path, differs);
    }
    int taken = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(r, "examples")) {
        const cJSON *idx = cJSON_GetObjectItem(e, "index"), *outs = cJSON_GetObjectItem(e, "outputs");
        if (!cJSON_IsNumber(idx) || idx->valueint < 0 || idx->valueint >= t->nex || !cJSON_IsObject(outs)) continue;
        Example *x = &t->ex[idx->valueint];
        int ok = 1;
        for (int c = 0; c < NCOND; c++)
            if (conds[c] && !cJSON_IsString(cJSON_GetObjectItem(outs, cond_names[c]))) ok = 0;
        if (!ok) continue;
        for (int c = 0; c < NCOND; c++)
            if (conds[c]) x->got[c] = xstrdup(cJSON_GetObjectItem(outs, cond_names[c])->valuestring);
        x->done = 1;
        taken++;
    }
    cJSON_Delete(r);
    if (taken) fprintf(stderr, "resuming: %d of %d examples already in %s\n", taken, t->nex, ri->path);
    return 0;
}

static void print_table(const TestSet *t, const int *conds, double seconds, int ran, const PawRunStats *gpu) {
    // Families in order of first appearance.
    const char **fams = xmalloc(sizeof(char *) * (size_t)t->nex);
    int nf = 0;
    for (int i = 0; i < t->nex; i++) {
        int seen = 0;
        for (int k = 0; k < nf && !seen; k++) seen = !strcmp(fams[k], t->ex[i].family);
        if (!seen) fams[nf++] = t->ex[i].family;
    }
    printf("\n%-22s %6s", "family", "n");
    for (int c = 0; c < NCOND; c++)
        if (conds[c]) printf(" %9s", cond_names[c]);
    printf("\n");
    for (int f = -1; f < nf; f++) {
        int tot = 0, hit[NCOND] = {0};
        for (int i = 0; i < t->nex; i++) {
            const Example *e = &t->ex[i];
            if (!e->done || (f >= 0 && strcmp(e->family, fams[f]))) continue;
            tot++;
            for (int c = 0; c < NCOND; c++)
                if (conds[c]) hit[c] += !strcmp(e->got[c], e->output);
        }
        printf("%-22s %6d", f < 0 ? "ALL" : fams[f], tot);
        for (int c = 0; c < NCOND; c++)
            if (conds[c]) printf(" %8.1f%%", tot ? 100.0 * hit[c] / tot : 0.0);
        printf("\n");
    }
    if (ran) printf("\n%d examples in %.1f s: %.2f examples/s (all conditions)\n", ran, seconds, ran / seconds);
    if (gpu && gpu->rows)
        printf("interpreter on the GPU: %ld rows, %.1f s: %.2f rows/s, %.1f generated tokens/s; %ld prefills, %ld steps "
               "with %.0f%% of their rows running; %ld prompt tokens prefilled, %ld taken from shared prefixes\n",
               gpu->rows, gpu->seconds, gpu->rows / gpu->seconds, gpu->tokens / gpu->seconds, gpu->fills, gpu->steps,
               gpu->row_steps ? 100.0 * (gpu->row_steps - gpu->idle_rows) / gpu->row_steps : 0.0, gpu->prefill_tokens,
               gpu->prefix_tokens);
    free(fams);
}

// The GPU path for one compile batch: every unfinished example of the ng groups under every
// condition is one job (a program per group and condition), all run by the batch runner.
// An input the interpreter cannot take counts as a miss, with the reason kept (as on the CPU).
static int run_groups_gpu(PawGpuRunner *gpu, TestSet *t, const int *conds, const int *gid, int ng, const Qwen3Lora *ad,
                          int max_new, PawRunStats *total) {
    int status = 0, *prog_of = xmalloc(sizeof(int) * (size_t)(ng ? ng : 1) * NCOND);
    for (int k = 0; k < ng && status == 0; k++) {
        const Example *f = &t->ex[t->group_first[gid[k]]];
        for (int c = 0; c < NCOND && status == 0; c++) {
            if (!conds[c]) continue;
            char *tmpl = paw_interpreter_prompt_template(c == C_COMPILED || c == C_PSEUDO ? f->pseudo : f->spec);
            const Qwen3Lora *l = c == C_COMPILED || c == C_LORA ? &ad[k] : NULL;
            prog_of[k * NCOND + c] = paw_gpu_runner_add_program(gpu, tmpl, l);
            if (prog_of[k * NCOND + c] < 0) status = 1;
            free(tmpl);
        }
    }
    int nj = 0;
    size_t most = (size_t)(t->nex ? t->nex : 1) * NCOND;
    PawRunJob *jobs = xmalloc(sizeof(PawRunJob) * most);
    int *job_ex = xmalloc(sizeof(int) * most), *job_c = xmalloc(sizeof(int) * most);
    for (int k = 0; k < ng && status == 0; k++)
        for (int i = 0; i < t->nex; i++) {
            const Example *e = &t->ex[i];
            if (e->group != gid[k] || e->done) continue;
            for (int c = 0; c < NCOND; c++)
                if (conds[c]) {
                    jobs[nj] = (PawRunJob){prog_of[k * NCOND + c], e->input};
                    job_ex[nj] = i, job_c[nj++] = c;
                }
        }
    char **outs = xcalloc((size_t)(nj ? nj : 1), sizeof(char *)), **errs = xcalloc((size_t)(nj ? nj : 1), sizeof(char *));
    PawRunStats st = {0};
    if (status == 0 && nj > 0 && paw_gpu_runner_run(gpu, jobs, nj, max_new, outs, errs, &st) != 0) status = 1;
    paw_run_stats_add(total, &st);
    for (int j = 0; j < nj && status == 0; j++) {
        Example *e = &t->ex[job_ex[j]];
        if (outs[j]) {
            e->got[job_c[j]] = outs[j];
            outs[j] = NULL;
        } else {
            size_t n = strlen(errs[j] ? errs[j] : "") + 16;
            e->got[job_c[j]] = xmalloc(n);
            snprintf(e->got[job_c[j]], n, "<error: %s>", errs[j] ? errs[j] : "");
        }
    }
    for (int j = 0; j < nj && status == 0; j++) t->ex[job_ex[j]].done = 1;
    for (int j = 0; j < nj; j++) free(outs[j]), free(errs[j]);
    free(outs), free(errs), free(jobs), free(job_ex), free(job_c), free(prog_of);
    paw_gpu_runner_clear_programs(gpu);
    return status;
}

int cmd_eval(int argc, char **argv) {
    const char *compiler = NULL, *interp_dir = NULL, *data = NULL, *report = NULL, *cond_arg = "all", *pseudo_model = NULL;
    const char *device = "cpu", *weights_s = "auto", *cweights_s = "auto";
    int max_examples = 0, max_new = 32, batch = 8, run_batch = 0;
    PawOpt opts[] = {
        {"compiler", PAW_OPT_STR, &compiler, "trained compiler directory"},
        {"interpreter", PAW_OPT_STR, &interp_dir, "interpreter directory"},
        {"data", PAW_OPT_STR, &data, "test JSONL (spec, input, output, optional pseudo_program and family)"},
        {"report", PAW_OPT_STR, &report, "JSON report (default: DATA.report.json); an unfinished one is resumed"},
        {"conditions", PAW_OPT_STR, &cond_arg, "all, or a comma list of compiled,baseline,pseudo,lora"},
        {"pseudo-model", PAW_OPT_STR, &pseudo_model, "instruct model for examples without a pseudo_program"},
        {"max-examples", PAW_OPT_INT, &max_examples, "evaluate only the first N examples (0: all)"},
        {"max-new", PAW_OPT_INT, &max_new, "most tokens generated per example"},
        {"batch", PAW_OPT_INT, &batch, "specs per compiler forward"},
        {"device", PAW_OPT_STR, &device, "where the compiler, the mapper and the interpreter run: cpu or cuda"},
        {"run-batch", PAW_OPT_INT, &run_batch, "interpreter rows decoded together, any mix of programs and conditions; "
                                               "0: 4 on cpu (up to 32 give each input the bits it gets alone), 32 on cuda"},
        {"weights", PAW_OPT_STR, &weights_s, "the interpreter's " QWEN3_WEIGHTS_HELP},
        {"compiler-weights", PAW_OPT_STR, &cweights_s, "the compiler's " QWEN3_WEIGHTS_HELP},
    };
    PawCommandSpec cs = {"paw eval --compiler DIR --interpreter DIR --data TEST.jsonl [options]",
                         "Exact match (stripped output == stripped target) of compiled programs, overall and per family, "
                         "beside the no-compiler baseline (raw spec, no LoRA) and the pseudo-program-only and LoRA-only "
                         "ablations. Prints a table and writes a JSON report.",
                         opts, (int)(sizeof opts / sizeof opts[0]), 0};
    char *pos[1];
    int npos, prc = paw_parse_args(&cs, argc, argv, pos, &npos);
    if (prc) return prc > 0 ? 0 : 2;
    if (!compiler || !interp_dir || !data) {
        fprintf(stderr, "paw eval: --compiler, --interpreter and --data are required\n");
        paw_print_usage(&cs, 1);
        return 2;
    }
    int conds[NCOND] = {0};
    if (!strcmp(cond_arg, "all")) {
        for (int c = 0; c < NCOND; c++) conds[c] = 1;
    } else {
        char *list = xstrdup(cond_arg);
        for (char *tk = strtok(list, ","); tk; tk = strtok(NULL, ",")) {
            int found = 0;
            for (int c = 0; c < NCOND; c++)
                if (!strcmp(tk, cond_names[c])) conds[c] = found = 1;
            if (!found) {
                fprintf(stderr, "paw eval: --conditions: unknown condition '%s'\n", tk);
                free(list);
                return 2;
            }
        }
        free(list);
    }
    int cuda = strcmp(device, "cuda") == 0;
    if (run_batch == 0) run_batch = cuda ? 32 : 4;
    if (max_new < 1 || batch < 1 || run_batch < 1) {
        fprintf(stderr, "paw eval: --max-new, --batch and --run-batch must be positive (--run-batch 0: the default)\n");
        return 2;
    }
    if (!cuda && strcmp(device, "cpu") != 0) {
        fprintf(stderr, "paw eval: --device '%s': expected cpu or cuda\n", device);
        return 2;
    }
    if (cuda && paw_gpu_available() != 0) {  // before loading anything
        fprintf(stderr, "paw eval: --device cuda: %s\n", paw_last_error());
        return 2;
    }
    int weights = qwen3_weights_for_device(weights_s, cuda);
    if (weights < 0) {
        fprintf(stderr, "paw eval: --%s\n", paw_last_error());
        return 2;
    }
    int cweights = qwen3_weights_for_device(cweights_s, cuda);
    if (cweights < 0) {
        fprintf(stderr, "paw eval: --compiler-%s\n", paw_last_error());
        return 2;
    }
    char *report_path = report ? xstrdup(report) : NULL;
    if (!report_path) {
        size_t n = strlen(data) + 16;
        report_path = xmalloc(n);
        snprintf(report_path, n, "%s.report.json", data);
    }
    TestSet t;
    PawTrainedCompiler tc;
    memset(&tc, 0, sizeof tc);
    Qwen3 model;
    memset(&model, 0, sizeof model);
    PawTokenizer *tok = NULL;
    PawVocabMap vm = {0};
    PawGpuRunner *gpu = NULL;
    PawRunStats gpu_total = {0};
    int stop, status = 0;
    ReportInfo ri = {.path = report_path, .interpreter = interp_dir, .max_new = max_new};
    if (read_set(data, max_examples, &t) != 0 || paw_sha256_file(data, ri.data_sha) != 0) {
        fprintf(stderr, "paw eval: %s\n", paw_last_error());
        free(report_path);
        return 1;
    }
    if (paw_trained_compiler_load(&tc, compiler, cweights) != 0 || qwen3_load_ex(&model, interp_dir, 1, weights) != 0 ||
        paw_runner_resources(interp_dir, &tok, &vm, &stop) != 0) {
        fprintf(stderr, "paw eval: %s\n", paw_last_error());
        status = 1;
        goto out;
    }
    if (model.cfg.num_layers != tc.icfg.num_layers || model.cfg.hidden_size != tc.icfg.hidden_size ||
        model.cfg.intermediate_size != tc.icfg.intermediate_size) {
        fprintf(stderr, "paw eval: the compiler was trained for another interpreter (%d layers, hidden %d) than %s (%d layers, hidden %d)\n",
                tc.icfg.num_layers, tc.icfg.hidden_size, interp_dir, model.cfg.num_layers, model.cfg.hidden_size);
        status = 2;
        goto out;
    }
    ri.compiler_fp = tc.fingerprint;
    ri.weights = qwen3_weights_kind(&model), ri.compiler_weights = qwen3_weights_kind(&tc.comp.model);
    ri.device = cuda ? "cuda" : "cpu", ri.pseudo_model = pseudo_model ? pseudo_model : "";
    paw_trained_compiler_describe(&tc, stderr);
    if (cuda && paw_trained_compiler_use_gpu(&tc) != 0) {  // the compiler and mapper run there too
        fprintf(stderr, "paw eval: --device cuda: %s\n", paw_last_error());
        status = 1;
        goto out;
    }
    if (cuda && !(gpu = paw_gpu_runner_create(&model, tok, &vm, stop, run_batch))) {
        fprintf(stderr, "paw eval: --device cuda: %s\n", paw_last_error());
        status = 1;
        goto out;
    }
    // Pseudo-programs for examples without one.
    for (int i = 0; i < t.nex && status == 0; i++) {
        Example *e = &t.ex[i];
        if (e->pseudo) continue;
        for (int j = 0; j < i; j++)
            if (!strcmp(t.ex[j].spec, e->spec)) {
                e->pseudo = xstrdup(t.ex[j].pseudo);
                break;
            }
        if (e->pseudo) continue;
        if (pseudo_model) {
            if (paw_pseudo_generate(pseudo_model, e->spec, 512, 8000, &e->pseudo) != 0) {
                fprintf(stderr, "paw eval: %s:%d: %s\n", data, e->line, paw_last_error());
                status = 1;
            } else if (strstr(e->pseudo, PAW_INPUT_PLACEHOLDER)) {
                fprintf(stderr, "paw eval: %s:%d: the generated pseudo-program holds %s\n", data, e->line,
                        PAW_INPUT_PLACEHOLDER);
                status = 1;
            }
        } else {
            e->pseudo = paw_default_pseudo_program(e->spec);
        }
    }
    if (status) goto out;
    group_set(&t);
    for (int i = 0; i < t.nex; i++) {  // compare stripped against stripped
        char *s = paw_strip(t.ex[i].output, strlen(t.ex[i].output));
        free(t.ex[i].output);
        t.ex[i].output = s;
    }
    if (resume_report(&t, &ri, conds) != 0) {
        fprintf(stderr, "paw eval: %s\n", paw_last_error());
        status = 2;
        goto out;
    }
    int todo = 0;
    for (int i = 0; i < t.nex; i++) todo += !t.ex[i].done;
    fprintf(stderr, "%d examples, %d distinct programs, %d to run\n", t.nex, t.ngroups, todo);
    PawProgress prog;
    paw_progress_start(&prog, "eval", todo);
    double t0 = paw_now();
    int ran = 0, em_hit = 0, em_tot = 0;
    for (int i = 0; i < t.nex; i++)
        if (t.ex[i].done && conds[C_COMPILED]) em_tot++, em_hit += !strcmp(t.ex[i].got[C_COMPILED], t.ex[i].output);
    for (int g0 = 0; g0 < t.ngroups && status == 0; g0 += batch) {
        int G = t.ngroups - g0 < batch ? t.ngroups - g0 : batch;
        // Compile the groups of this batch that still have work.
        const char **sv = xmalloc(sizeof(char *) * (size_t)G), **pv = xmalloc(sizeof(char *) * (size_t)G);
        int *gid = xmalloc(sizeof(int) * (size_t)G), ng = 0;
        for (int g = g0; g < g0 + G; g++) {
            int need = 0;
            for (int i = 0; i < t.nex && !need; i++) need = t.ex[i].group == g && !t.ex[i].done;
            if (!need) continue;
            const Example *f = &t.ex[t.group_first[g]];
            sv[ng] = f->spec, pv[ng] = f->pseudo, gid[ng] = g, ng++;
        }
        Qwen3Lora *ad = xcalloc((size_t)(ng ? ng : 1), sizeof(Qwen3Lora));
        if (ng && paw_trained_compiler_adapters(&tc, sv, pv, ng, batch, ad) != 0) {
            fprintf(stderr, "paw eval: %s\n", paw_last_error());
            status = 1;
        }
        if (gpu && status == 0) {
            status = run_groups_gpu(gpu, &t, conds, gid, ng, ad, max_new, &gpu_total);
            if (status == 0) {
                int now = 0;
                for (int i = 0; i < t.nex; i++) now += t.ex[i].done;
                ran = now - (t.nex - todo);
                em_hit = em_tot = 0;
                for (int i = 0; i < t.nex; i++)
                    if (t.ex[i].done && conds[C_COMPILED])
                        em_tot++, em_hit += !strcmp(t.ex[i].got[C_COMPILED], t.ex[i].output);
                char extra[64];
                snprintf(extra, sizeof extra, "compiled EM %.1f%%", em_tot ? 100.0 * em_hit / em_tot : 0.0);
                paw_progress_update(&prog, ran, conds[C_COMPILED] ? extra : NULL);
                ri.seconds = paw_now() - t0;
                if (save_report(&t, &ri, conds, 0) != 0) status = 1;
            }
            if (status) fprintf(stderr, "paw eval: %s\n", paw_last_error());
        }
        if (!gpu && status == 0 && ng > 0) {
            // Every (example, condition) of these groups, run_batch rows at a time: rows of any
            // program and condition decode together, each with its program's adapter or none.
            PawRunner *runners = xcalloc((size_t)ng * NCOND, sizeof(PawRunner));
            PawRunner **rp = xmalloc(sizeof(PawRunner *) * (size_t)ng * NCOND);
            int *rindex = xmalloc(sizeof(int) * (size_t)ng * NCOND), nr = 0;
            for (int k = 0; k < ng && status == 0; k++) {
                const Example *f = &t.ex[t.group_first[gid[k]]];
                for (int c = 0; c < NCOND && status == 0; c++) {
                    if (!conds[c]) continue;
                    char *tmpl = paw_interpreter_prompt_template(c == C_COMPILED || c == C_PSEUDO ? f->pseudo : f->spec);
                    const Qwen3Lora *l = c == C_COMPILED || c == C_LORA ? &ad[k] : NULL;
                    if (paw_runner_init(&runners[k * NCOND + c], &model, tok, &vm, stop, tmpl, l) != 0) status = 1;
                    free(tmpl);
                    rp[nr] = &runners[k * NCOND + c], rindex[k * NCOND + c] = nr++;
                }
            }
            int nj = 0;
            for (int k = 0; k < ng; k++)
                for (int i = 0; i < t.nex; i++) nj += t.ex[i].group == gid[k] && !t.ex[i].done;
            nj *= NCOND;
            size_t cap = (size_t)(nj ? nj : 1);
            int *job_runner = xmalloc(sizeof(int) * cap), *job_cond = xmalloc(sizeof(int) * cap);
            Example **job_ex = xmalloc(sizeof(Example *) * cap);
            const char **inputs = xmalloc(sizeof(char *) * cap);
            char **outs = xmalloc(sizeof(char *) * cap), **errs = xmalloc(sizeof(char *) * cap);
            nj = 0;
            for (int k = 0; k < ng && status == 0; k++)
                for (int i = 0; i < t.nex; i++) {
                    Example *e = &t.ex[i];
                    if (e->group != gid[k] || e->done) continue;
                    for (int c = 0; c < NCOND; c++)
                        if (conds[c])
                            job_runner[nj] = rindex[k * NCOND + c], job_cond[nj] = c, job_ex[nj] = e, inputs[nj++] = e->input;
                }
            if (status == 0 && paw_runner_run_jobs(rp, job_runner, inputs, nj, run_batch, max_new, outs, errs, NULL) != 0)
                status = 1;
            for (int j = 0; j < nj && status == 0; j++) {
                Example *e = job_ex[j];
                e->got[job_cond[j]] = outs[j];
                if (errs[j]) {  // an input the interpreter cannot take counts as a miss, with the reason kept
                    size_t n = strlen(errs[j]) + 16;
                    e->got[job_cond[j]] = xmalloc(n);
                    snprintf(e->got[job_cond[j]], n, "<error: %s>", errs[j]);
                    free(errs[j]);
                }
            }
            for (int k = 0; k < ng && status == 0; k++)
                for (int i = 0; i < t.nex; i++) {
                    Example *e = &t.ex[i];
                    if (e->group != gid[k] || e->done) continue;
                    e->done = 1;
                    ran++;
                    if (conds[C_COMPILED]) em_tot++, em_hit += !strcmp(e->got[C_COMPILED], e->output);
                }
            if (status) fprintf(stderr, "paw eval: %s\n", paw_last_error());
            char extra[64];
            snprintf(extra, sizeof extra, "compiled EM %.1f%%", em_tot ? 100.0 * em_hit / em_tot : 0.0);
            if (status == 0) paw_progress_update(&prog, ran, conds[C_COMPILED] ? extra : NULL);
            for (int r = 0; r < ng * NCOND; r++)
                if (runners[r].model) paw_runner_free(&runners[r]);
            free(runners), free(rp), free(rindex), free(job_runner), free(job_cond), free(job_ex), free(inputs);
            free(outs), free(errs);
            ri.seconds = paw_now() - t0;
            if (status == 0 && save_report(&t, &ri, conds, 0) != 0) {
                fprintf(stderr, "paw eval: %s\n", paw_last_error());
                status = 1;
            }
        }
        for (int k = 0; k < ng; k++) mapper_lora_free(&ad[k]);
        free(ad), free(sv), free(pv), free(gid);
    }
    paw_progress_finish(&prog, ran, NULL);
    ri.seconds = paw_now() - t0;
    if (status == 0) {
        if (save_report(&t, &ri, conds, 1) != 0) {
            fprintf(stderr, "paw eval: %s\n", paw_last_error());
            status = 1;
        } else {
            print_table(&t, conds, ri.seconds, ran, gpu ? &gpu_total : NULL);
            printf("report: %s\n", report_path);
        }
    }
out:
    paw_gpu_runner_free(gpu);
    free_set(&t);
    if (tc.tok || tc.comp.prefix) paw_trained_compiler_free(&tc);
    if (model.params_memory) qwen3_free(&model);
    if (tok) paw_tokenizer_free(tok);
    paw_vocab_map_free(&vm);
    free(report_path);
    return status;
}
