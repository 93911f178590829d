// Programs end to end through ./paw on a tiny world: train a few steps, compile single and
// batched, run as an argument and as a filter, evaluate and resume, and the command-line errors.
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>

#include "common/error.h"
#include "common/fileio.h"
#include "interpreter/program.h"
#include "kernels/quant.h"
#include "data/template.h"
#include "data/vocab_map.h"
#include "model/safetensors.h"
#include "tests/interactive.h"
#include "tests/testutil.h"
#include "tests/world.h"

static char W[64];

static char *slurp(const char *fmt, ...) {
    char path[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(path, sizeof path, fmt, ap);
    va_end(ap);
    char *s = paw_read_file(path, NULL);
    cr_assert_not_null(s, "%s", paw_last_error());
    return s;
}

// The first test example's fields, written to files for the CLI.
static void first_test_example(char **input, char **output) {
    char *text = slurp("%s/jsonl/test.jsonl", W);
    *strchr(text, '\n') = 0;
    cJSON *o = cJSON_Parse(text);
    char path[256];
    snprintf(path, sizeof path, "%s/spec.txt", W);
    const char *spec = cJSON_GetObjectItem(o, "spec")->valuestring;
    cr_assert_eq(paw_write_file_atomic(path, spec, strlen(spec)), 0);
    snprintf(path, sizeof path, "%s/pp.txt", W);
    const char *pp = cJSON_GetObjectItem(o, "pseudo_program")->valuestring;
    cr_assert_eq(paw_write_file_atomic(path, pp, strlen(pp)), 0);
    // The same spec twice in a --specs file, plus the pseudo-program given inline.
    cJSON *line = cJSON_CreateObject();
    cJSON_AddStringToObject(line, "spec", spec);
    cJSON_AddStringToObject(line, "pseudo_program", pp);
    cJSON_AddStringToObject(line, "out", "a.paw");
    char *l1 = cJSON_PrintUnformatted(line);
    cJSON_ReplaceItemInObject(line, "out", cJSON_CreateString("b.paw"));
    char *l2 = cJSON_PrintUnformatted(line);
    char buf[16384];
    snprintf(buf, sizeof buf, "%s\n%s\n", l1, l2);
    snprintf(path, sizeof path, "%s/specs.jsonl", W);
    cr_assert_eq(paw_write_file_atomic(path, buf, strlen(buf)), 0);
    *input = xstrdup(cJSON_GetObjectItem(o, "input")->valuestring);
    *output = xstrdup(cJSON_GetObjectItem(o, "output")->valuestring);
    free(l1), free(l2);
    cJSON_Delete(line);
    cJSON_Delete(o);
    free(text);
}

// Two eval reports of the same set give every example the same outputs.
static void same_outputs(const char *a_path, const char *b_path, int n, const char *what) {
    char *ja = slurp("%s", a_path), *jb = slurp("%s", b_path);
    cJSON *ra = cJSON_Parse(ja), *rb = cJSON_Parse(jb);
    const cJSON *ea = cJSON_GetObjectItem(ra, "examples"), *eb = cJSON_GetObjectItem(rb, "examples");
    cr_assert_eq(cJSON_GetArraySize(ea), n);
    cr_assert_eq(cJSON_GetArraySize(eb), n);
    for (int i = 0; i < n; i++) {
        char *a = cJSON_PrintUnformatted(cJSON_GetObjectItem(cJSON_GetArrayItem(ea, i), "outputs"));
        char *b = cJSON_PrintUnformatted(cJSON_GetObjectItem(cJSON_GetArrayItem(eb, i), "outputs"));
        cr_assert_str_eq(a, b, "%s: example %d", what, i);
        free(a), free(b);
    }
    cJSON_Delete(ra), cJSON_Delete(rb);
    free(ja), free(jb);
}

// Trains 3 steps and exports; extra: more config keys (",\"key\":value...") or "".
static void train_tiny(const char *extra) {
    char path[256], text[1024];
    snprintf(path, sizeof path, "%s/paw.json", W);
    snprintf(text, sizeof text,
             "{\"compiler\":\"%s/comp\",\"interpreter\":\"%s/interp\",\"train_data\":\"%s/train\",\"out_dir\":\"%s/run\","
             "\"lora_rank\":4,\"lora_alpha\":8,\"mapper_bases\":3,\"prefix_steps\":4,\"steps\":3,\"max_batch_examples\":4,"
             "\"lr\":0.01%s}",
             W, W, W, W, extra);
    cr_assert_eq(paw_write_file_atomic(path, text, strlen(text)), 0);
    cr_assert_eq(sh("%s train %s 2>/dev/null", paw_bin(), path), 0);
}

Test(programs_cli, compile_run_eval_end_to_end, .timeout = 300) {
    make_world(W);
    train_tiny("");
    const char *p = paw_bin();
    char *input, *target;
    first_test_example(&input, &target);
    // Single compile, then the same spec twice through the batched path.
    cr_assert_eq(sh("%s compile --compiler %s/run/export --spec-file %s/spec.txt --pseudo-program %s/pp.txt "
                    "-o %s/one.paw --adapter-dtype f32 >/dev/null", p, W, W, W, W), 0);
    cr_assert_eq(sh("%s compile --compiler %s/run/export --specs %s/specs.jsonl --out-dir %s/many --adapter-dtype f32 "
                    "--batch 2 >/dev/null", p, W, W, W), 0);
    char path[256];
    PawProgram one, a, b;
    snprintf(path, sizeof path, "%s/one.paw", W);
    cr_assert_eq(paw_program_read(path, &one), 0, "%s", paw_last_error());
    snprintf(path, sizeof path, "%s/many/a.paw", W);
    cr_assert_eq(paw_program_read(path, &a), 0, "%s", paw_last_error());
    snprintf(path, sizeof path, "%s/many/b.paw", W);
    cr_assert_eq(paw_program_read(path, &b), 0, "%s", paw_last_error());
    cr_assert_str_eq(one.template_text, a.template_text);
    for (int m = 0; m < LORA_NUM_MODULES; m++) {
        size_t na = (size_t)one.L * one.rank * one.d_in[m], nb = (size_t)one.L * one.d_out[m] * one.rank;
        // Batched and single compiles give the same adapter up to fp32 summation order.
        for (size_t i = 0; i < na; i++) cr_assert(fabsf(one.A[m][i] - a.A[m][i]) <= 1e-5f * (1 + fabsf(one.A[m][i])));
        for (size_t i = 0; i < nb; i++) cr_assert(fabsf(one.B[m][i] - b.B[m][i]) <= 1e-5f * (1 + fabsf(one.B[m][i])));
        cr_assert(memcmp(a.A[m], b.A[m], sizeof(float) * na) == 0);  // two rows of one batch
    }
    paw_program_free(&one), paw_program_free(&a), paw_program_free(&b);

    // An exported paw.json with a rank out of the config's range is refused, naming the file.
    snprintf(path, sizeof path, "%s/run/export/paw.json", W);
    char *desc = slurp("%s", path);
    const double bad_ranks[] = {0, 1e300, 4.5};
    for (int i = 0; i < 3; i++) {
        write_json_with_number(path, desc, "lora_rank", bad_ranks[i]);
        cr_assert_neq(sh("%s compile --compiler %s/run/export --spec-file %s/spec.txt -o %s/bad.paw 2>%s/bad.err", p, W, W,
                         W, W), 0);
        char *err = slurp("%s/bad.err", W);
        cr_assert(strstr(err, "paw.json") && strstr(err, "lora_rank") && strstr(err, "[1, 4096]"), "%g: %s",
                  bad_ranks[i], err);
        free(err);
    }
    cr_assert_eq(paw_write_file_atomic(path, desc, strlen(desc)), 0);
    free(desc);

    // Run: an argument, then the same input three times through stdin, as a filter.
    snprintf(path, sizeof path, "%s/in.txt", W);
    char lines[4096];
    snprintf(lines, sizeof lines, "%s\n%s\n%s\n", input, input, input);
    cr_assert_eq(paw_write_file_atomic(path, lines, strlen(lines)), 0);
    cr_assert_eq(sh("%s run %s/one.paw '%s' --max-new 6 > %s/arg.out", p, W, input, W), 0);
    cr_assert_eq(sh("%s run %s/one.paw --max-new 6 < %s/in.txt > %s/filter.out", p, W, W, W), 0);
    char *arg = slurp("%s/arg.out", W), *filt = slurp("%s/filter.out", W);
    char want[8192];
    snprintf(want, sizeof want, "%s%s%s", arg, arg, arg);
    cr_assert_str_eq(filt, want, "filter output differs from single runs (prompt cache?)");
    // A line holding a NUL byte is refused by line number (not run as the text before the NUL),
    // with an empty output line that keeps the others aligned.
    {
        size_t n = strlen(input);
        char *bytes = xmalloc(3 * n + 16);
        memcpy(bytes, input, n), bytes[n] = '\n';
        memcpy(bytes + n + 1, input, n), bytes[2 * n + 1] = '\0', bytes[2 * n + 2] = 'x', bytes[2 * n + 3] = '\n';
        memcpy(bytes + 2 * n + 4, input, n), bytes[3 * n + 4] = '\n';
        snprintf(path, sizeof path, "%s/nul.txt", W);
        cr_assert_eq(paw_write_file_atomic(path, bytes, 3 * n + 5), 0);
        free(bytes);
        cr_assert_eq(sh("%s run %s/one.paw --max-new 6 < %s/nul.txt > %s/nul.out 2> %s/nul.err", p, W, W, W, W), 1);
        char *nout = slurp("%s/nul.out", W), *nerr = slurp("%s/nul.err", W);
        snprintf(want, sizeof want, "%s\n%s", arg, arg);
        cr_assert_str_eq(nout, want);
        cr_assert(strstr(nerr, "stdin:2: the line holds a NUL byte"), "%s", nerr);
        free(nout), free(nerr);
    }
    // Typed one line at a time, each is answered before the next (the batch takes the lines that
    // have arrived), with the argument run's output.
    {
        char prog[300], *answers[3];
        snprintf(prog, sizeof prog, "%s/one.paw", W);
        char *argv[] = {(char *)p, "run", prog, "--max-new", "6", NULL};
        const char *typed[3] = {input, input, input};
        int got = run_interactive(argv, typed, 3, 120, answers);
        cr_assert_eq(got, 3, "%d of 3 typed lines answered before the next", got);
        char *argl = xstrdup(arg);
        argl[strcspn(argl, "\n")] = 0;
        for (int i = 0; i < 3; i++) {
            cr_assert_str_eq(answers[i], argl);
            free(answers[i]);
        }
        free(argl);
    }
    // JSONL mode keeps the other fields and adds "output".
    cr_assert_eq(sh("printf '{\"input\":\"%s\",\"id\":7}\\n' | %s run %s/one.paw --jsonl --max-new 6 > %s/j.out", input, p, W, W), 0);
    char *j = slurp("%s/j.out", W);
    cJSON *jo = cJSON_Parse(j);
    cr_assert_not_null(jo);
    cr_assert_eq(cJSON_GetObjectItem(jo, "id")->valueint, 7);
    char *argline = xstrdup(arg);
    argline[strcspn(argline, "\n")] = 0;
    cr_assert_str_eq(cJSON_GetObjectItem(jo, "output")->valuestring, argline);
    cJSON_Delete(jo);

    // The same interpreter stored as bf16: --weights auto keeps its matrices in bf16. paw logits of
    // all 8 positions (--out) gives the same bits as the f32 load (the products sum in one order
    // for both weight types); paw run works with either, and a bad --weights is refused.
    cr_assert_eq(sh("%s init --shape tests/fixtures/train/interp-shape.json --out %s/interp16 --dtype bfloat16 "
                    "--vocab-from %s/jsonl/train.jsonl,%s/jsonl/val.jsonl,%s/jsonl/test.jsonl --seed 1 --std 0.1 "
                    ">/dev/null 2>&1", p, W, W, W, W), 0);
    cr_assert_eq(sh("%s logits --model %s/interp16 --ids 5,1,9,2,7,3,4,6 --out %s/l16.bin > %s/l16.out", p, W, W, W), 0);
    cr_assert_eq(sh("%s logits --model %s/interp16 --ids 5,1,9,2,7,3,4,6 --out %s/l32.bin --weights f32 > %s/l32.out", p,
                    W, W, W), 0);
    char *l16 = slurp("%s/l16.out", W), *l32 = slurp("%s/l32.out", W);
    cr_assert_str_eq(l16, l32);
    cr_assert_eq(sh("cmp -s %s/l16.bin %s/l32.bin", W, W), 0);
    free(l16), free(l32);
    // q8 too (lossy: its outputs may differ); on cuda it is refused as a usage error.
    const char *wkinds[3] = {"auto", "f32", "q8"};
    for (int k = 0; k < 3; k++) {
        cr_assert_eq(sh("%s run %s/one.paw --interpreter %s/interp16 --weights %s --max-new 6 < %s/in.txt > %s/w16.out",
                        p, W, W, wkinds[k], W, W), 0);
        char *w16 = slurp("%s/w16.out", W);
        int nl = 0;
        for (char *c = w16; *c; c++) nl += *c == '\n';
        cr_assert_eq(nl, 3, "%s: %s", wkinds[k], w16);
        free(w16);
    }
    cr_assert_eq(sh("%s run %s/one.paw x --weights fp8 2>/dev/null", p, W), 2);
    cr_assert_eq(sh("%s run %s/one.paw x --weights q8 --device cuda 2>/dev/null", p, W), 2);

    // Eval: four conditions, a complete report, and the compiled output of example 0 equal to paw run's
    // (its program is the same spec and pseudo-program, compiled by eval in its own batch).
    cr_assert_eq(sh("%s eval --compiler %s/run/export --interpreter %s/interp --data %s/jsonl/test.jsonl --max-new 6 "
                    "--report %s/report.json > %s/eval.out 2>&1", p, W, W, W, W, W), 0);
    char *rep = slurp("%s/report.json", W);
    cJSON *r = cJSON_Parse(rep);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "complete")));
    const cJSON *em = cJSON_GetObjectItem(r, "exact_match");
    const char *names[] = {"compiled", "baseline", "pseudo", "lora"};
    for (int c = 0; c < 4; c++) cr_assert_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(em, names[c]), "total")->valueint, 8);
    const cJSON *ex0 = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "examples"), 0);
    cr_assert_eq(cJSON_GetObjectItem(ex0, "index")->valueint, 0);
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(ex0, "outputs"), "compiled")->valuestring, argline);
    cJSON_Delete(r);
    // A second run resumes: nothing left to run.
    cr_assert_eq(sh("%s eval --compiler %s/run/export --interpreter %s/interp --data %s/jsonl/test.jsonl --max-new 6 "
                    "--report %s/report.json 2>&1 | grep -q '0 to run'", p, W, W, W, W), 0);
    // Another setting on the same report is refused, not mixed in.
    cr_assert_eq(sh("%s eval --compiler %s/run/export --interpreter %s/interp --data %s/jsonl/test.jsonl --max-new 5 "
                    "--report %s/report.json >/dev/null 2>&1", p, W, W, W, W), 2);
    cr_assert_eq(sh("%s eval --compiler %s/run/export --interpreter %s/interp --data %s/jsonl/test.jsonl --max-new 6 "
                    "--weights q8 --report %s/report.json > %s/e.out 2>&1", p, W, W, W, W, W), 2);
    char *eo = slurp("%s/e.out", W);
    cr_assert(strstr(eo, "\"weights\" differs"), "%s", eo);
    free(eo);
    // One program for every example (the first one's spec and pseudo-program, the others' inputs):
    // eval decodes the group's inputs 4 rows at a time on the CPU, with the outputs of one at a time.
    char *all = slurp("%s/jsonl/test.jsonl", W), *save = NULL;
    cJSON *first = NULL;
    char *same_spec = xmalloc(strlen(all) * 2 + 1024);
    same_spec[0] = 0;
    for (char *line = strtok_r(all, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *o = cJSON_Parse(line);
        if (!first) first = cJSON_Duplicate(o, 1);
        cJSON_ReplaceItemInObject(o, "spec", cJSON_CreateString(cJSON_GetObjectItem(first, "spec")->valuestring));
        cJSON_ReplaceItemInObject(o, "pseudo_program",
                                  cJSON_CreateString(cJSON_GetObjectItem(first, "pseudo_program")->valuestring));
        char *l = cJSON_PrintUnformatted(o);
        strcat(same_spec, l);
        strcat(same_spec, "\n");
        free(l);
        cJSON_Delete(o);
    }
    snprintf(path, sizeof path, "%s/same.jsonl", W);
    cr_assert_eq(paw_write_file_atomic(path, same_spec, strlen(same_spec)), 0);
    for (int k = 0; k < 2; k++)
        cr_assert_eq(sh("%s eval --compiler %s/run/export --interpreter %s/interp --data %s/same.jsonl --max-new 6 "
                        "--conditions compiled,baseline --run-batch %d --report %s/same%d.json > %s/same%d.out 2>&1",
                        p, W, W, W, k ? 1 : 0, W, k, W, k), 0);
    char *so = slurp("%s/same0.out", W);
    cr_assert(strstr(so, "8 examples, 1 distinct programs"), "%s", so);
    char pa[256], pb[256];
    snprintf(pa, sizeof pa, "%s/same0.json", W), snprintf(pb, sizeof pb, "%s/same1.json", W);
    same_outputs(pa, pb, 8, "one program, 4 rows vs one at a time");
    // 8 programs and all four conditions, rows of any of them decoding together.
    cr_assert_eq(sh("%s eval --compiler %s/run/export --interpreter %s/interp --data %s/jsonl/test.jsonl --max-new 6 "
                    "--run-batch 1 --report %s/report1.json > /dev/null 2>&1", p, W, W, W, W), 0);
    snprintf(pa, sizeof pa, "%s/report.json", W), snprintf(pb, sizeof pb, "%s/report1.json", W);
    same_outputs(pa, pb, 8, "eight programs, 4 rows vs one at a time");
    cJSON_Delete(first);
    free(all), free(same_spec), free(so);
    free(rep), free(arg), free(filt), free(j), free(argline), free(input), free(target);
    sh("rm -rf %s", W);
}

Test(programs_cli, command_line_errors, .timeout = 300) {
    make_world(W);
    train_tiny("");
    const char *p = paw_bin();
    cr_assert_eq(sh("%s compile --spec x -o %s/x.paw 2>/dev/null", p, W), 2);                   // no --compiler
    cr_assert_eq(sh("%s compile --compiler %s/nope --spec x --pseudo-program y -o %s/x.paw 2>%s/e1", p, W, W, W), 1);
    char *e1 = slurp("%s/e1", W);
    cr_assert(strstr(e1, "nope"), "%s", e1);
    cr_assert_eq(sh("%s compile --compiler %s/run/export --spec x -o %s/x.paw 2>%s/e2", p, W, W, W), 2);  // no pseudo
    char *e2 = slurp("%s/e2", W);
    cr_assert(strstr(e2, "--pseudo-model"), "%s", e2);
    cr_assert_eq(sh("%s compile --compiler %s/run/export --spec x --pseudo-program y -o %s/x.paw --adapter-dtype q3 2>/dev/null",
                    p, W, W), 2);
    // Refused with the reason, before any compute: a --pseudo-program file that cannot be read
    // (this crashed), a spec holding the input placeholder, two specs writing one file, a NUL.
    {
        cr_assert_eq(sh("%s compile --compiler %s/run/export --spec x --pseudo-program /proc/self/mem -o %s/x.paw 2>%s/e9", p,
                        W, W, W), 1);
        char *e9 = slurp("%s/e9", W);
        cr_assert(strstr(e9, "--pseudo-program"), "%s", e9);
        free(e9);
        cr_assert_eq(sh("%s compile --compiler %s/run/export --spec 'say {INPUT_PLACEHOLDER}' --pseudo-program y -o %s/x.paw "
                        "2>%s/e9", p, W, W, W), 2);
        e9 = slurp("%s/e9", W);
        cr_assert(strstr(e9, "spec 1") && strstr(e9, "{INPUT_PLACEHOLDER}"), "%s", e9);
        free(e9);
        char sp[512];
        snprintf(sp, sizeof sp, "%s/dup.jsonl", W);
        const char *dup = "{\"spec\":\"a\",\"out\":\"p.paw\"}\n{\"spec\":\"b\",\"out\":\"p.paw\"}\n";
        cr_assert_eq(paw_write_file_atomic(sp, dup, strlen(dup)), 0);
        cr_assert_eq(sh("%s compile --compiler %s/run/export --specs %s --out-dir %s/dup --pseudo-program y 2>%s/e9", p, W,
                        sp, W, W), 1);
        e9 = slurp("%s/e9", W);
        cr_assert(strstr(e9, "dup.jsonl:2") && strstr(e9, "as spec 1 does"), "%s", e9);
        free(e9);
        const char nulspec[] = "{\"spec\":\"a\"}\n{\"spec\":\"b\0\"}\n";
        cr_assert_eq(paw_write_file_atomic(sp, nulspec, sizeof nulspec - 1), 0);
        cr_assert_eq(sh("%s compile --compiler %s/run/export --specs %s --out-dir %s/dup --pseudo-program y 2>%s/e9", p, W,
                        sp, W, W), 1);
        e9 = slurp("%s/e9", W);
        cr_assert(strstr(e9, "dup.jsonl:2: a NUL byte"), "%s", e9);
        free(e9);
    }
    // A spec with words the tiny vocabulary lacks is refused with the reason.
    cr_assert_eq(sh("%s compile --compiler %s/run/export --spec 'zebra quantum' --pseudo-program y -o %s/x.paw 2>%s/e3", p, W,
                    W, W), 1);
    char *e3 = slurp("%s/e3", W);
    cr_assert(strstr(e3, "vocabulary"), "%s", e3);
    cr_assert_eq(sh("%s run %s/missing.paw x 2>/dev/null", p, W), 1);
    cr_assert_eq(sh("head -c 300 %s/interp/model.safetensors > %s/garbage.paw && %s run %s/garbage.paw x 2>%s/e4", W, W, p, W, W), 1);
    char *e4 = slurp("%s/e4", W);
    cr_assert(strstr(e4, "garbage.paw"), "%s", e4);
    // Empty input and an input longer than the context: messages, not crashes.
    char *text = slurp("%s/jsonl/test.jsonl", W);
    *strchr(text, '\n') = 0;
    cJSON *o = cJSON_Parse(text);
    char sp[256];
    snprintf(sp, sizeof sp, "%s/s.txt", W);
    const char *spec = cJSON_GetObjectItem(o, "spec")->valuestring;
    paw_write_file_atomic(sp, spec, strlen(spec));
    cr_assert_eq(sh("%s compile --compiler %s/run/export --spec-file %s --pseudo-program %s/s.txt -o %s/t.paw >/dev/null", p, W,
                    sp, W, W), 0);
    cr_assert_eq(sh("%s run %s/t.paw '   ' 2>%s/e5", p, W, W), 1);
    char *e5 = slurp("%s/e5", W);
    cr_assert(strstr(e5, "empty input"), "%s", e5);
    // Outputs that cannot be written (stdout on a full disk) fail the run, as an argument and as a
    // filter, and stop the filter at its first lost line.
    if (access("/dev/full", W_OK) == 0) {
        const char *in0 = cJSON_GetObjectItem(o, "input")->valuestring;
        cr_assert_eq(sh("%s run %s/t.paw '%s' --max-new 4 >/dev/full 2>%s/e8", p, W, in0, W), 1);
        char *e8 = slurp("%s/e8", W);
        cr_assert(strstr(e8, "writing to stdout failed"), "%s", e8);
        free(e8);
        cr_assert_eq(sh("printf 'a\\nb\\nc\\n' | %s run %s/t.paw --max-new 4 >/dev/full 2>%s/e9", p, W, W), 1);
        char *e9 = slurp("%s/e9", W);
        cr_assert(strstr(e9, "paw run: writing to stdout failed"), "%s", e9);
        free(e9);
    }
    // No room left in the context (the tiny interpreter has 512 positions): refused, not truncated.
    cr_assert_eq(sh("%s run %s/t.paw '%s' --max-new 600 2>%s/e6", p, W, cJSON_GetObjectItem(o, "input")->valuestring, W), 1);
    char *e6 = slurp("%s/e6", W);
    cr_assert(strstr(e6, "context"), "%s", e6);
    cr_assert_eq(sh("%s eval --compiler %s/run/export --interpreter %s/interp --data %s/jsonl/test.jsonl --conditions best 2>/dev/null",
                    p, W, W, W), 2);
    // Test sets refused by file and line: a NUL byte, a spec holding the input placeholder.
    {
        const char good[] = "{\"spec\":\"s\",\"input\":\"i\",\"output\":\"o\"}\n";
        char path[512];
        char bytes[256];
        size_t n = strlen(good);
        memcpy(bytes, good, n), memcpy(bytes + n, good, n), bytes[n + 3] = '\0';  // line 2: {"s\0ec"...
        snprintf(path, sizeof path, "%s/nul.jsonl", W);
        cr_assert_eq(paw_write_file_atomic(path, bytes, 2 * n), 0);
        snprintf(path, sizeof path, "%s/ph.jsonl", W);
        const char *ph = "{\"spec\":\"s\",\"input\":\"i\",\"output\":\"o\"}\n\n"
                         "{\"spec\":\"say {INPUT_PLACEHOLDER}\",\"input\":\"i\",\"output\":\"o\"}\n";
        cr_assert_eq(paw_write_file_atomic(path, ph, strlen(ph)), 0);
        const char *files[2] = {"nul.jsonl", "ph.jsonl"}, *want[2] = {"nul.jsonl:2: a NUL byte", "ph.jsonl:3: the spec"};
        for (int k = 0; k < 2; k++) {
            cr_assert_neq(sh("%s eval --compiler %s/run/export --interpreter %s/interp --data %s/%s --report %s/x.json "
                             "2>%s/e8", p, W, W, W, files[k], W, W), 0);
            char *e8 = slurp("%s/e8", W);
            cr_assert(strstr(e8, want[k]), "%s", e8);
            free(e8);
        }
    }
    // The compiler on the GPU: works where a GPU is (the program then runs like the CPU's),
    // refused with the reason elsewhere, and an unknown device is a usage error.
    cr_assert_eq(sh("%s compile --compiler %s/run/export --spec-file %s --pseudo-program %s/s.txt -o %s/g.paw --device tpu 2>/dev/null",
                    p, W, sp, W, W), 2);
    int grc = sh("%s compile --compiler %s/run/export --spec-file %s --pseudo-program %s/s.txt -o %s/g.paw --device cuda 2>%s/e7",
                 p, W, sp, W, W, W);
    char *e7 = slurp("%s/e7", W);
    if (grc == 0) {
        cr_assert_eq(sh("%s run %s/g.paw '%s' >/dev/null", p, W, cJSON_GetObjectItem(o, "input")->valuestring), 0);
    } else {
        cr_assert_eq(grc, 2, "%s", e7);
        cr_assert(strstr(e7, "--device cuda") && strstr(e7, "CUDA"), "%s", e7);
        char gp[256];
        snprintf(gp, sizeof gp, "%s/g.paw", W);
        cr_assert(!paw_file_exists(gp), "a refused compile wrote %s", gp);
    }
    free(e7);
    cJSON_Delete(o);
    free(text), free(e1), free(e2), free(e3), free(e4), free(e5), free(e6);
    sh("rm -rf %s", W);
}

// "export_dtype": "bfloat16" halves the exported compiler. paw compile then keeps its matrices in
// bf16 (--weights auto), and the adapters are bit for bit those of the same values widened to f32
// on load (--weights f32): the products sum in one order for both weight types.
Test(programs_cli, bf16_export_compiles_as_f32, .timeout = 300) {
    make_world(W);
    train_tiny(",\"export_dtype\":\"bfloat16\"");
    const char *p = paw_bin();
    char path[256];
    SafeTensors st;
    snprintf(path, sizeof path, "%s/run/export/model.safetensors", W);
    cr_assert_eq(st_open(&st, path), 0, "%s", paw_last_error());
    cr_assert_gt(st.ntensors, 0);
    for (int i = 0; i < st.ntensors; i++) cr_assert_eq(st.tensors[i].dtype, ST_BF16, "%s", st.tensors[i].name);
    st_close(&st);
    snprintf(path, sizeof path, "%s/run/export/mapper.safetensors", W);
    cr_assert_eq(st_open(&st, path), 0, "%s", paw_last_error());
    for (int i = 0; i < st.ntensors; i++) cr_assert_eq(st.tensors[i].dtype, ST_F32, "%s", st.tensors[i].name);
    st_close(&st);

    char *input, *target;
    first_test_example(&input, &target);
    const char *wts[2] = {"auto", "f32"};
    PawProgram prog[2];
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(sh("%s compile --compiler %s/run/export --spec-file %s/spec.txt --pseudo-program %s/pp.txt "
                        "-o %s/w%d.paw --adapter-dtype f32 --weights %s >/dev/null 2>%s/w%d.err", p, W, W, W, W, k,
                        wts[k], W, k), 0);
        char *err = slurp("%s/w%d.err", W, k);
        cr_assert(strstr(err, k ? "f32 matrices" : "bf16 matrices"), "--weights %s: %s", wts[k], err);
        free(err);
        snprintf(path, sizeof path, "%s/w%d.paw", W, k);
        cr_assert_eq(paw_program_read(path, &prog[k]), 0, "%s", paw_last_error());
    }
    double sumsq = 0;
    for (int m = 0; m < LORA_NUM_MODULES; m++) {
        size_t na = (size_t)prog[0].L * prog[0].rank * prog[0].d_in[m];
        size_t nb = (size_t)prog[0].L * prog[0].d_out[m] * prog[0].rank;
        cr_assert(memcmp(prog[0].A[m], prog[1].A[m], sizeof(float) * na) == 0, "module %d: A differs", m);
        cr_assert(memcmp(prog[0].B[m], prog[1].B[m], sizeof(float) * nb) == 0, "module %d: B differs", m);
        for (size_t i = 0; i < nb; i++) sumsq += (double)prog[0].B[m][i] * prog[0].B[m][i];
    }
    cr_assert_gt(sumsq, 0, "trained B is still zero: the comparison above would be empty");
    paw_program_free(&prog[0]), paw_program_free(&prog[1]);
    // paw eval's compiler: the same outputs either way.
    for (int k = 0; k < 2; k++)
        cr_assert_eq(sh("%s eval --compiler %s/run/export --interpreter %s/interp --data %s/jsonl/test.jsonl --max-new 6 "
                        "--max-examples 4 --conditions compiled,lora --compiler-weights %s --report %s/cw%d.json "
                        ">%s/cw%d.out 2>&1", p, W, W, W, wts[k], W, k, W, k), 0);
    for (int k = 0; k < 2; k++) {
        char *out = slurp("%s/cw%d.out", W, k);
        cr_assert(strstr(out, k ? "f32 matrices" : "bf16 matrices"), "--compiler-weights %s: %s", wts[k], out);
        free(out);
    }
    char pa[256], pb[256];
    snprintf(pa, sizeof pa, "%s/cw0.json", W), snprintf(pb, sizeof pb, "%s/cw1.json", W);
    same_outputs(pa, pb, 4, "compiler weights auto (bf16) vs f32");
    // Refusals: an unknown --weights, and bf16 on the GPU (whose upload reads f32).
    cr_assert_eq(sh("%s compile --compiler %s/run/export --spec x --pseudo-program y -o %s/x.paw --weights fp8 2>/dev/null",
                    p, W, W), 2);
    cr_assert_eq(sh("%s compile --compiler %s/run/export --spec x --pseudo-program y -o %s/x.paw --weights bf16 "
                    "--device cuda 2>%s/e1", p, W, W, W), 2);
    char *e1 = slurp("%s/e1", W);
    cr_assert(strstr(e1, "--weights bf16"), "%s", e1);
    // q8 needs rows of multiples of 32 values; this compiler's hidden size is 24.
    cr_assert_eq(sh("%s compile --compiler %s/run/export --spec x --pseudo-program y -o %s/x.paw --weights q8 2>%s/e3", p,
                    W, W, W), 1);
    char *e3 = slurp("%s/e3", W);
    cr_assert(strstr(e3, "multiple of 32"), "%s", e3);
    free(e3);
    cr_assert_eq(sh("%s eval --compiler %s/run/export --interpreter %s/interp --data %s/jsonl/test.jsonl "
                    "--compiler-weights half 2>%s/e2", p, W, W, W, W), 2);
    char *e2 = slurp("%s/e2", W);
    cr_assert(strstr(e2, "--compiler-weights"), "%s", e2);
    free(e1), free(e2), free(input), free(target);
    sh("rm -rf %s", W);
}

// paw generate --prompt: the text goes through the directory's tokenizer and vocabulary map, and
// the answer back. It must equal the --ids route built from paw tokenize, the map, and paw detokenize.
Test(programs_cli, generate_prompt_text, .timeout = 120) {
    make_world(W);
    const char *p = paw_bin();
    char *text = slurp("%s/jsonl/test.jsonl", W);
    *strchr(text, '\n') = 0;
    cJSON *o = cJSON_Parse(text);
    char prompt[2048];
    snprintf(prompt, sizeof prompt, "%s", cJSON_GetObjectItem(o, "input")->valuestring);
    cr_assert(!strchr(prompt, '\'') && strlen(prompt) > 0, "%s", prompt);
    // The --ids route, by hand.
    cr_assert_eq(sh("%s tokenize --text '%s' > %s/tok.txt", p, prompt, W), 0);
    char *tk = slurp("%s/tok.txt", W);
    PawVocabMap vm;
    char dir[128];
    snprintf(dir, sizeof dir, "%s/interp", W);
    cr_assert_eq(paw_vocab_map_load(&vm, dir), 0, "the world's interpreter has a trimmed vocabulary");
    int32_t ids[512];
    int n = 0;
    for (char *s = strtok(tk, " \n"); s; s = strtok(NULL, " \n")) ids[n++] = (int32_t)atoi(s);
    cr_assert_gt(n, 0);
    cr_assert_eq(paw_vocab_map_to_model(&vm, ids, n), 0, "%s", paw_last_error());
    char list[4096] = "";
    for (int i = 0; i < n; i++) snprintf(list + strlen(list), sizeof list - strlen(list), i ? ",%d" : "%d", ids[i]);
    cr_assert_eq(sh("%s generate --model %s --ids %s --max-new 8 --stop -1 > %s/gen_ids.txt", p, dir, list, W), 0);
    char *gi = slurp("%s/gen_ids.txt", W);
    char back[4096] = "";
    int ng = 0;
    for (char *s = strtok(gi, " \n"); s; s = strtok(NULL, " \n"), ng++)
        snprintf(back + strlen(back), sizeof back - strlen(back), " %d", paw_vocab_map_to_tokenizer(&vm, atoi(s)));
    cr_assert_eq(ng, 8);
    cr_assert_eq(sh("echo '%s' | %s detokenize > %s/want.txt && echo >> %s/want.txt", back, p, W, W), 0);
    // The --prompt route.
    cr_assert_eq(sh("%s generate --model %s --prompt '%s' --max-new 8 --stop -1 > %s/got.txt 2>%s/got.err", p, dir, prompt,
                    W, W), 0);
    char *want = slurp("%s/want.txt", W), *got = slurp("%s/got.txt", W), *err = slurp("%s/got.err", W);
    cr_assert_str_eq(got, want);
    cr_assert(strstr(err, "8 new tokens"), "%s", err);
    // --chat is the Qwen3 chat turn with thinking off, written out.
    cr_assert_eq(sh("%s generate --model %s --prompt '%s' --chat --max-new 6 --stop -1 > %s/chat1.txt", p, dir, prompt, W), 0);
    // (the x keeps $(...) from dropping the final newlines)
    cr_assert_eq(sh("P=\"$(printf '<|im_start|>user\\n%%s<|im_end|>\\n<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\nx' "
                    "'%s')\"; %s generate --model %s --prompt \"${P%%x}\" --max-new 6 --stop -1 > %s/chat2.txt", prompt, p, dir,
                    W), 0);
    char *c1 = slurp("%s/chat1.txt", W), *c2 = slurp("%s/chat2.txt", W);
    cr_assert_str_eq(c1, c2);
    // Refusals: both or neither of --ids and --prompt, --chat without --prompt, a word the trimmed
    // vocabulary lacks.
    cr_assert_eq(sh("%s generate --model %s --ids 1 --prompt x 2>/dev/null", p, dir), 2);
    cr_assert_eq(sh("%s generate --model %s 2>/dev/null", p, dir), 2);
    cr_assert_eq(sh("%s generate --model %s --ids 1 --chat 2>/dev/null", p, dir), 2);
    cr_assert_eq(sh("%s generate --model %s --prompt 'zebra quantum xylophone' 2>%s/e1", p, dir, W), 1);
    char *e1 = slurp("%s/e1", W);
    cr_assert(strstr(e1, "vocabulary"), "%s", e1);
    paw_vocab_map_free(&vm);
    cJSON_Delete(o);
    free(text), free(tk), free(gi), free(want), free(got), free(err), free(c1), free(c2), free(e1);
    sh("rm -rf %s", W);
}

// paw run on the CPU holds a Q4_0 adapter as Q8 blocks. Through the command line, its outputs are
// those of the same program written with F32 adapters (the Q4_0 values, exactly), which runs the
// fp32 products; and they differ from a zero adapter's, so the adapter is in use.
Test(programs_cli, q4_0_program_runs_from_q8_blocks, .timeout = 300) {
    make_world(W);
    const char *p = paw_bin();
    char path[256];
    Qwen3Config shape;
    snprintf(path, sizeof path, "%s/interp/config.json", W);
    cr_assert_eq(qwen3_config_load(&shape, path), 0, "%s", paw_last_error());
    PawProgram prog = {0}, back;
    prog.interpreter = xstrdup(W), prog.spec = xstrdup("test");
    char *input, *target;
    first_test_example(&input, &target);
    char *pp = slurp("%s/pp.txt", W);
    prog.template_text = paw_interpreter_prompt_template(pp);  // tokens of the trimmed vocabulary
    prog.rank = 32, prog.alpha = 32.0f, prog.shape = shape;
    unsigned long long st = 99;
    for (int m = 0; m < LORA_NUM_MODULES; m++) {
        int din, dout;
        lora_module_dims(&shape, m, &din, &dout);
        size_t na = (size_t)shape.num_layers * 32 * din, nb = (size_t)shape.num_layers * dout * 32;
        prog.A[m] = xmalloc(sizeof(float) * na), prog.B[m] = xmalloc(sizeof(float) * nb);
        for (size_t i = 0; i < na + nb; i++) {
            st = st * 6364136223846793005ull + 1442695040888963407ull;
            float v = 0.6f * ((float)(st >> 40) / (float)(1 << 24) - 0.5f);
            if (i < na) prog.A[m][i] = v;
            else prog.B[m][i - na] = v;
        }
    }
    snprintf(path, sizeof path, "%s/q4.paw", W);
    cr_assert_eq(paw_program_write(path, &prog, GGML_TYPE_Q4_0), 0, "%s", paw_last_error());
    cr_assert_eq(paw_program_read(path, &back), 0, "%s", paw_last_error());
    snprintf(path, sizeof path, "%s/f32.paw", W);
    cr_assert_eq(paw_program_write(path, &back, GGML_TYPE_F32), 0, "%s", paw_last_error());
    for (int m = 0; m < LORA_NUM_MODULES; m++) {
        int din, dout;
        lora_module_dims(&shape, m, &din, &dout);
        memset(back.B[m], 0, sizeof(float) * (size_t)shape.num_layers * dout * 32);
    }
    snprintf(path, sizeof path, "%s/zero.paw", W);
    cr_assert_eq(paw_program_write(path, &back, GGML_TYPE_F32), 0, "%s", paw_last_error());
    paw_program_free(&prog), paw_program_free(&back);
    // The test set's inputs, one a line.
    char *text = slurp("%s/jsonl/test.jsonl", W), *ins = xcalloc(strlen(text) + 1, 1), *line = text;
    for (char *nl; (nl = strchr(line, '\n')); line = nl + 1) {
        *nl = 0;
        cJSON *o = cJSON_Parse(line);
        const char *in = cJSON_GetObjectItem(o, "input")->valuestring;
        if (!strchr(in, '\n')) strcat(strcat(ins, in), "\n");
        cJSON_Delete(o);
    }
    snprintf(path, sizeof path, "%s/in.txt", W);
    cr_assert_eq(paw_write_file_atomic(path, ins, strlen(ins)), 0);
    free(text), free(ins), free(pp), free(input), free(target);
    const char *names[3] = {"q4", "f32", "zero"};
    char *out[3];
    for (int k = 0; k < 3; k++) {
        cr_assert_eq(sh("%s run %s/%s.paw --interpreter %s/interp --max-new 8 < %s/in.txt > %s/%s.out 2>%s/err", p, W, names[k],
                        W, W, W, names[k], W), 0, "%s", slurp("%s/err", W));
        out[k] = slurp("%s/%s.out", W, names[k]);
    }
    cr_assert_str_eq(out[0], out[1], "the Q4_0 program held as Q8 blocks against its values in fp32");
    cr_assert_str_neq(out[0], out[2], "the adapter changes nothing: the comparison above would be empty");
    for (int k = 0; k < 3; k++) free(out[k]);
    sh("rm -rf %s", W);
}
