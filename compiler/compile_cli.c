// `paw compile`: spec -> program file (.paw).
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/args.h"
#include "common/commands.h"
#include "common/error.h"
#include "common/fileio.h"
#include "common/progress.h"
#include "compiler/pseudo.h"
#include "compiler/trained.h"
#include "data/template.h"
#include "interpreter/program.h"
#include "kernels/quant.h"

typedef struct {
    char *spec, *pseudo, *out;
} Job;

// --pseudo-program names a file when one exists under that name, else it is the text itself.
static char *text_or_file(const char *arg) {
    if (paw_file_exists(arg) && !paw_is_dir(arg)) return paw_read_file(arg, NULL);
    return xstrdup(arg);
}

static int read_specs(const char *path, const char *out_dir, Job **jobs, int *n) {
    size_t len;
    char *text = paw_read_file(path, &len);
    if (!text) return -1;
    if (paw_check_no_nul(path, text, len) != 0) {
        free(text);
        return -1;
    }
    int cap = 16, k = 0, line_no = 0, rc = 0;
    Job *v = xcalloc((size_t)cap, sizeof(Job));
    for (char *line = text; line && *line && rc == 0;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        line_no++;
        if (strspn(line, " \t\r") != strlen(line)) {
            cJSON *o = cJSON_Parse(line);
            const cJSON *s = o ? cJSON_GetObjectItemCaseSensitive(o, "spec") : NULL;
            const cJSON *p = o ? cJSON_GetObjectItemCaseSensitive(o, "pseudo_program") : NULL;
            const cJSON *of = o ? cJSON_GetObjectItemCaseSensitive(o, "out") : NULL;
            if (!o) rc = paw_error("%s:%d: not valid JSON", path, line_no);
            else if (!cJSON_IsString(s)) rc = paw_error("%s:%d: missing string field \"spec\"", path, line_no);
            else if (p && !cJSON_IsString(p) && !cJSON_IsNull(p)) rc = paw_error("%s:%d: \"pseudo_program\" must be a string", path, line_no);
            else if (of && !cJSON_IsString(of)) rc = paw_error("%s:%d: \"out\" must be a string", path, line_no);
            else {
                if (k == cap) v = xrealloc(v, sizeof(Job) * (size_t)(cap *= 2)), memset(v + k, 0, sizeof(Job) * (size_t)(cap - k));
                v[k].spec = xstrdup(s->valuestring);
                v[k].pseudo = cJSON_IsString(p) ? xstrdup(p->valuestring) : NULL;
                char name[64];
                snprintf(name, sizeof name, "program-%05d.paw", k);
                v[k].out = paw_path_join(out_dir, cJSON_IsString(of) ? of->valuestring : name);
                for (int j = 0; j < k && rc == 0; j++)  // the later program would replace the earlier
                    if (!strcmp(v[j].out, v[k].out))
                        rc = paw_error("%s:%d: writes %s, as spec %d does", path, line_no, v[k].out, j + 1);
                k++;
            }
            cJSON_Delete(o);
        }
        line = nl ? nl + 1 : NULL;
    }
    free(text);
    *jobs = v;
    *n = k;
    if (rc == 0 && k == 0) rc = paw_error("%s: no specs", path);
    return rc;
}

int cmd_compile(int argc, char **argv) {
    const char *compiler = NULL, *spec = NULL, *spec_file = NULL, *specs = NULL, *out = NULL, *out_dir = NULL;
    const char *pseudo_arg = NULL, *pseudo_model = NULL, *dtype = "q4_0", *device = "cpu", *weights_s = "auto";
    int batch = 8, max_pseudo_tokens = 512, max_pseudo_chars = 8000;
    PawOpt opts[] = {
        {"compiler", PAW_OPT_STR, &compiler, "trained compiler directory (paw train's export)"},
        {"spec", PAW_OPT_STR, &spec, "the spec text"},
        {"spec-file", PAW_OPT_STR, &spec_file, "a file holding the spec"},
        {"specs", PAW_OPT_STR, &specs, "JSONL of {\"spec\", optional \"pseudo_program\", optional \"out\"}: compile all"},
        {"o", PAW_OPT_STR, &out, "the program file to write (one spec)"},
        {"out-dir", PAW_OPT_STR, &out_dir, "where --specs programs go"},
        {"pseudo-program", PAW_OPT_STR, &pseudo_arg, "use this pseudo-program (text, or a file) instead of generating one"},
        {"pseudo-model", PAW_OPT_STR, &pseudo_model, "instruct model directory that writes the pseudo-program"},
        {"adapter-dtype", PAW_OPT_STR, &dtype, "q4_0, q8_0, f16 or f32"},
        {"batch", PAW_OPT_INT, &batch, "specs per compiler forward"},
        {"max-pseudo-tokens", PAW_OPT_INT, &max_pseudo_tokens, "generation limit for the pseudo-program"},
        {"max-pseudo-chars", PAW_OPT_INT, &max_pseudo_chars, "longest pseudo-program accepted"},
        {"device", PAW_OPT_STR, &device, "where the compiler and the mapper run: cpu or cuda"},
        {"weights", PAW_OPT_STR, &weights_s, "the compiler's " QWEN3_WEIGHTS_HELP},
    };
    PawCommandSpec cs = {"paw compile --compiler DIR (--spec TEXT | --spec-file F) -o PROGRAM.paw [options]\n"
                         "       paw compile --compiler DIR --specs SPECS.jsonl --out-dir DIR [options]",
                         "Turns a spec into a program: a pseudo-program (written by --pseudo-model, or given with "
                         "--pseudo-program) and a LoRA adapter computed by the trained compiler.",
                         opts, (int)(sizeof opts / sizeof opts[0]), 0};
    char *pos[1];
    int npos, prc = paw_parse_args(&cs, argc, argv, pos, &npos);
    if (prc) return prc > 0 ? 0 : 2;
    int nsrc = (spec != NULL) + (spec_file != NULL) + (specs != NULL);
    const char *err = NULL;
    int adapter_type = ggml_type_from_name(dtype);
    if (!compiler) err = "--compiler is required";
    else if (nsrc != 1) err = "give exactly one of --spec, --spec-file, --specs";
    else if (specs && !out_dir) err = "--specs needs --out-dir";
    else if (!specs && !out) err = "-o PROGRAM.paw is required";
    else if (adapter_type != GGML_TYPE_Q4_0 && adapter_type != GGML_TYPE_Q8_0 && adapter_type != GGML_TYPE_F16 &&
             adapter_type != GGML_TYPE_F32)
        err = "--adapter-dtype must be q4_0, q8_0, f16 or f32";
    else if (batch < 1 || max_pseudo_tokens < 1 || max_pseudo_chars < 1) err = "--batch and the limits must be positive";
    else if (strcmp(device, "cpu") != 0 && strcmp(device, "cuda") != 0) err = "--device must be cpu or cuda";
    int weights = err ? 0 : qwen3_weights_for_device(weights_s, !strcmp(device, "cuda"));
    if (weights < 0) {
        fprintf(stderr, "paw compile: --%s\n", paw_last_error());
        return 2;
    }
    if (err) {
        fprintf(stderr, "paw compile: %s\n", err);
        paw_print_usage(&cs, 1);
        return 2;
    }
    Job *jobs = NULL;
    int njobs = 0, status = 0;
    if (specs) {
        if (paw_mkdir_p(out_dir) != 0 || read_specs(specs, out_dir, &jobs, &njobs) != 0) {
            fprintf(stderr, "paw compile: %s\n", paw_last_error());
            free(jobs);
            return 1;
        }
    } else {
        jobs = xcalloc(1, sizeof(Job));
        njobs = 1;
        jobs[0].spec = spec ? xstrdup(spec) : paw_read_file(spec_file, NULL);
        jobs[0].out = xstrdup(out);
        if (!jobs[0].spec) {
            fprintf(stderr, "paw compile: --spec-file: %s\n", paw_last_error());
            free(jobs);
            return 1;
        }
    }
    PawTrainedCompiler tc;
    Qwen3Lora *adapters = NULL;
    const char **sv = NULL, **pv = NULL;
    if (paw_trained_compiler_load(&tc, compiler, weights) != 0) {
        fprintf(stderr, "paw compile: %s\n", paw_last_error());
        status = 1;
        goto out;
    }
    paw_trained_compiler_describe(&tc, stderr);
    if (!strcmp(device, "cuda") && paw_trained_compiler_use_gpu(&tc) != 0) {
        fprintf(stderr, "paw compile: --device cuda: %s\n", paw_last_error());
        status = 2;
        goto out;
    }
    // 1. Pseudo-programs.
    for (int i = 0; i < njobs && status == 0; i++) {
        if (jobs[i].pseudo) continue;
        if (pseudo_arg) {
            if (!(jobs[i].pseudo = text_or_file(pseudo_arg))) {
                fprintf(stderr, "paw compile: --pseudo-program: %s\n", paw_last_error());
                status = 1;
            }
        } else if (pseudo_model) {
            fprintf(stderr, "writing the pseudo-program %d/%d with %s...\n", i + 1, njobs, pseudo_model);
            if (paw_pseudo_generate(pseudo_model, jobs[i].spec, max_pseudo_tokens, (size_t)max_pseudo_chars, &jobs[i].pseudo) != 0) {
                fprintf(stderr, "paw compile: spec %d: %s\n", i + 1, paw_last_error());
                status = 1;
            }
        } else {
            fprintf(stderr, "paw compile: spec %d has no pseudo-program: give --pseudo-model DIR or --pseudo-program\n", i + 1);
            status = 2;
        }
    }
    for (int i = 0; i < njobs && status == 0; i++)  // refused before the compute, not at the write
        if (strstr(jobs[i].spec, PAW_INPUT_PLACEHOLDER) || strstr(jobs[i].pseudo, PAW_INPUT_PLACEHOLDER)) {
            fprintf(stderr, "paw compile: spec %d: the spec or pseudo-program holds %s, which marks where the input goes "
                    "in a program's prompt\n", i + 1, PAW_INPUT_PLACEHOLDER);
            status = 2;
        }
    if (status) goto out;
    // 2. Adapters, in batches.
    adapters = xcalloc((size_t)njobs, sizeof(Qwen3Lora));
    sv = xmalloc(sizeof(char *) * (size_t)njobs);
    pv = xmalloc(sizeof(char *) * (size_t)njobs);
    for (int i = 0; i < njobs; i++) sv[i] = jobs[i].spec, pv[i] = jobs[i].pseudo;
    double t0 = paw_now();
    if (paw_trained_compiler_adapters(&tc, sv, pv, njobs, batch, adapters) != 0) {
        fprintf(stderr, "paw compile: %s\n", paw_last_error());
        status = 1;
        goto out;
    }
    double t_adapt = paw_now() - t0;
    // 3. Programs.
    PawProgress prog;
    paw_progress_start(&prog, "write", njobs);
    for (int i = 0; i < njobs && status == 0; i++) {
        PawProgram p;
        memset(&p, 0, sizeof p);
        p.spec = jobs[i].spec;
        p.interpreter = tc.interpreter_id;
        p.template_text = paw_interpreter_prompt_template(jobs[i].pseudo);
        p.pseudo_program = jobs[i].pseudo;
        p.compiler = tc.fingerprint;
        p.rank = tc.rank;
        p.alpha = tc.alpha;
        p.prefix_steps = tc.prefix_steps;
        p.shape = tc.icfg;
        p.L = tc.icfg.num_layers;
        for (int m = 0; m < LORA_NUM_MODULES; m++) {
            lora_module_dims(&tc.icfg, m, &p.d_in[m], &p.d_out[m]);
            p.A[m] = adapters[i].A[m];
            p.B[m] = adapters[i].B[m];
        }
        if (paw_program_write(jobs[i].out, &p, adapter_type) != 0) {
            fprintf(stderr, "paw compile: %s\n", paw_last_error());
            status = 1;
        } else if (njobs == 1) {
            printf("%s\n", jobs[i].out);
        }
        free(p.template_text);
        paw_progress_update(&prog, i + 1, NULL);
    }
    paw_progress_finish(&prog, njobs, NULL);
    if (status == 0 && njobs > 1)
        printf("compiled %d programs into %s (adapters %.2f s, %.1f specs/s)\n", njobs, out_dir, t_adapt, njobs / t_adapt);
out:
    if (adapters)
        for (int i = 0; i < njobs; i++) mapper_lora_free(&adapters[i]);
    free(adapters), free(sv), free(pv);
    for (int i = 0; i < njobs; i++) free(jobs[i].spec), free(jobs[i].pseudo), free(jobs[i].out);
    free(jobs);
    if (tc.tok || tc.comp.prefix) paw_trained_compiler_free(&tc);
    return status;
}
