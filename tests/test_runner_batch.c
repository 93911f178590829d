// Batched running: batch planning and the decoding loop with a scripted model, the CPU runner's
// batches against one input at a time, and --device cuda where no GPU can be used (a build
// without CUDA, or a machine without a GPU) giving a clear refusal.
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "common/fileio.h"
#include "common/rng.h"
#include "data/template.h"
#include "interpreter/runner_cuda.h"
#include "tests/world.h"

Test(runner_batch, plan_covers_every_job_once_longest_first) {
    PawRng rng = {99};
    for (int trial = 0; trial < 50; trial++) {
        int n = (int)paw_rng_below(&rng, 40), batch = 1 + (int)paw_rng_below(&rng, 9);
        int lens[40], order[40], starts[41], seen[40] = {0}, kept = 0;
        for (int i = 0; i < n; i++) {
            lens[i] = (int)paw_rng_below(&rng, 6) - 1;  // -1: a refused job; many ties
            kept += lens[i] >= 0;
        }
        int nb = paw_run_plan(lens, n, batch, order, starts);
        cr_assert_eq(nb, (kept + batch - 1) / batch);
        cr_assert_eq(starts[0], 0);
        cr_assert_eq(starts[nb], kept);
        for (int k = 0; k < nb; k++) {
            cr_assert(starts[k + 1] - starts[k] >= 1 && starts[k + 1] - starts[k] <= batch);
            if (k + 1 < nb) cr_assert_eq(starts[k + 1] - starts[k], batch, "only the last batch may be short");
        }
        for (int k = 0; k < kept; k++) {
            int j = order[k];
            cr_assert(j >= 0 && j < n && lens[j] >= 0 && !seen[j], "job %d planned twice or refused", j);
            seen[j] = 1;
            if (k > 0) {
                int p = order[k - 1];
                // longest first; equal lengths keep job order
                cr_assert(lens[p] > lens[j] || (lens[p] == lens[j] && p < j));
            }
        }
    }
}

Test(runner_batch, plan_of_nothing) {
    int lens[3] = {-1, -1, -1}, order[3], starts[4];
    cr_assert_eq(paw_run_plan(lens, 3, 4, order, starts), 0);
    cr_assert_eq(starts[0], 0);
    cr_assert_eq(paw_run_plan(lens, 0, 4, order, starts), 0);
}

// Without a usable GPU the check fails with a reason that names CUDA; with one it passes and
// the runner is left to the GPU tests.
Test(runner_batch, availability_has_a_reason) {
    if (paw_gpu_available() == 0) return;
    const char *why = paw_last_error();
    cr_assert(strstr(why, "CUDA") != NULL, "unclear reason: %s", why);
}

Test(runner_batch, cli_device_cuda_refused_clearly, .timeout = 120) {
    if (paw_gpu_available() == 0) return;  // a GPU machine: tests/gpu covers --device cuda
    char dir[] = "/tmp/paw_cuda_cli_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    const char *p = paw_bin();
    // The refusal comes before any file is read: a missing program still gets the device message.
    cr_assert_eq(sh("echo hi | %s run %s/none.paw --device cuda --batch 4 2>%s/e1", p, dir, dir), 2);
    char path[256];
    snprintf(path, sizeof path, "%s/e1", dir);
    char *e1 = paw_read_file(path, NULL);
    cr_assert_not_null(e1);
    cr_assert(strstr(e1, "--device cuda") && strstr(e1, "CUDA"), "%s", e1);
    cr_assert_eq(sh("%s eval --compiler %s/c --interpreter %s/i --data %s/d.jsonl --device cuda 2>%s/e2", p, dir, dir,
                    dir, dir), 2);
    snprintf(path, sizeof path, "%s/e2", dir);
    char *e2 = paw_read_file(path, NULL);
    cr_assert_not_null(e2);
    cr_assert(strstr(e2, "--device cuda") && strstr(e2, "CUDA"), "%s", e2);
    // Unknown devices and a zero batch are usage errors.
    cr_assert_eq(sh("%s run %s/none.paw --device tpu 2>/dev/null", p, dir), 2);
    cr_assert_eq(sh("%s run %s/none.paw --batch -1 2>/dev/null", p, dir), 2);
    cr_assert_eq(sh("%s eval --compiler x --interpreter y --data z --device tpu 2>/dev/null", p), 2);
    free(e1), free(e2);
    sh("rm -rf %s", dir);
}

// The decoding loop (interpreter/schedule.h) with a scripted model: job j emits tokens
// 1000*j + 101, 1000*j + 102, ... and its stop token after end[j] tokens (0: never, so max_new ends
// it). The script checks what a real batch needs: a fill only names free rows, a step's active
// rows are exactly the rows with a running job, and every job runs once.
typedef struct {
    int rows, njobs, max_new;
    const int *end;
    int row_job[32], row_pos[32], filled[256];
    int errors;
    long fills;
} Script;

enum { STOP = 7 };

static int script_token(const Script *s, int j, int pos) {
    return s->end[j] && pos == s->end[j] ? STOP : 1000 * j + 100 + pos;  // never STOP by accident
}

static int script_fill(void *ctx, const int *rows, const int *jobs, int k, int *next) {
    Script *s = ctx;
    s->fills++;
    for (int i = 0; i < k; i++) {
        int b = rows[i], j = jobs[i];
        if (b < 0 || b >= s->rows || s->row_job[b] >= 0 || j < 0 || j >= s->njobs || s->filled[j]++) s->errors++;
        if (b < 0 || b >= s->rows) continue;
        s->row_job[b] = j, s->row_pos[b] = 1;
        next[i] = script_token(s, j, 1);
    }
    return 0;
}

static int script_step(void *ctx, const int *active, int *next) {
    Script *s = ctx;
    for (int b = 0; b < s->rows; b++) {
        if (!active[b]) {
            next[b] = -5;  // a discarded row's token: must not be recorded
            continue;
        }
        if (s->row_job[b] < 0) {
            s->errors++;
            continue;
        }
        next[b] = script_token(s, s->row_job[b], ++s->row_pos[b]);
    }
    return 0;
}

// Marks row b free once the loop has recorded its job's last token (the loop does not tell the
// model; the script infers it from the tokens: the stop token or max_new).
static void script_retire(Script *s) {
    for (int b = 0; b < s->rows; b++) {
        int j = s->row_job[b];
        if (j >= 0 && ((s->end[j] && s->row_pos[b] >= s->end[j]) || s->row_pos[b] >= s->max_new)) s->row_job[b] = -1;
    }
}

static int retiring_fill(void *ctx, const int *rows, const int *jobs, int k, int *next) {
    script_retire(ctx);
    return script_fill(ctx, rows, jobs, k, next);
}

static int retiring_step(void *ctx, const int *active, int *next) {
    Script *s = ctx;
    script_retire(s);
    for (int b = 0; b < s->rows; b++)
        if ((active[b] != 0) != (s->row_job[b] >= 0)) s->errors++;  // active exactly where a job runs
    return script_step(ctx, active, next);
}

Test(runner_batch, decode_loop_runs_every_job_once_with_and_without_refill) {
    PawRng rng = {4242};
    for (int trial = 0; trial < 200; trial++) {
        int n = 1 + (int)paw_rng_below(&rng, 60), batch = 1 + (int)paw_rng_below(&rng, 16);
        int max_new = 1 + (int)paw_rng_below(&rng, 12), end[64], order[64];
        for (int j = 0; j < n; j++) {
            end[j] = (int)paw_rng_below(&rng, 15);  // 0: no stop token; past max_new: max_new ends it
            order[j] = n - 1 - j;                   // any order; the loop takes it as given
        }
        long steps[2], idle[2];
        for (int refill = 0; refill < 2; refill++) {
            Script s = {.rows = batch < n ? batch : n, .njobs = n, .max_new = max_new, .end = end};
            for (int b = 0; b < 32; b++) s.row_job[b] = -1;
            memset(s.filled, 0, sizeof s.filled);
            PawDecodeModel m = {&s, retiring_fill, retiring_step};
            int out[64 * 12], counts[64];
            PawDecodeStats st;
            cr_assert_eq(paw_run_decode(&m, order, n, batch, refill, max_new, STOP, out, counts, &st), 0);
            cr_assert_eq(s.errors, 0, "trial %d refill %d: %d protocol errors", trial, refill, s.errors);
            for (int j = 0; j < n; j++) {
                cr_assert_eq(s.filled[j], 1, "job %d filled %d times", j, s.filled[j]);
                int want = end[j] && end[j] <= max_new ? end[j] : max_new;
                cr_assert_eq(counts[j], want, "trial %d refill %d job %d: %d tokens, expected %d", trial, refill, j,
                             counts[j], want);
                for (int k = 0; k < want; k++)
                    cr_assert_eq(out[j * max_new + k], script_token(&s, j, k + 1), "job %d token %d", j, k);
            }
            cr_assert_eq(st.fills, s.fills);
            cr_assert_eq(st.row_steps, st.steps * s.rows);
            cr_assert(st.idle_rows >= 0 && st.idle_rows < st.row_steps + 1);
            steps[refill] = st.steps, idle[refill] = st.idle_rows;
            if (!refill) {  // fixed batches: one fill per group of `rows` jobs
                cr_assert_eq(st.fills, (n + s.rows - 1) / s.rows);
            }
        }
        // Not a theorem for list scheduling, but on these cases (and 50,000 more tried once) refill
        // never took more steps than fixed batches or left more rows idle.
        cr_assert(steps[1] <= steps[0], "trial %d: %ld steps with refill, %ld without", trial, steps[1], steps[0]);
        cr_assert(idle[1] <= idle[0], "trial %d: %ld idle rows with refill, %ld without", trial, idle[1], idle[0]);
    }
}

Test(runner_batch, fill_policy) {
    // Without refill: only an empty batch is filled, as far as the waiting jobs go.
    cr_assert_eq(paw_run_fill_count(8, 8, 20, 0), 8);
    cr_assert_eq(paw_run_fill_count(8, 8, 3, 0), 3);
    cr_assert_eq(paw_run_fill_count(8, 7, 20, 0), 0);
    // With refill: once an eighth of the rows (rounded up) is free, or every waiting job fits.
    cr_assert_eq(paw_run_fill_count(32, 3, 20, 1), 0);
    cr_assert_eq(paw_run_fill_count(32, 4, 20, 1), 4);
    cr_assert_eq(paw_run_fill_count(32, 9, 20, 1), 9);
    cr_assert_eq(paw_run_fill_count(32, 2, 2, 1), 2);   // the last jobs do not wait
    cr_assert_eq(paw_run_fill_count(32, 1, 2, 1), 0);
    cr_assert_eq(paw_run_fill_count(5, 1, 9, 1), 1);    // small batches refill at once
    cr_assert_eq(paw_run_fill_count(32, 32, 0, 1), 0);  // nothing waiting
    cr_assert_eq(paw_run_fill_count(32, 0, 5, 1), 0);   // no free row
}

// Utilisation on a spread of output lengths (the reason for refilling): 256 jobs of 1 to 64
// tokens in 32 rows. Printed; refill must keep most rows busy and finish in fewer steps.
Test(runner_batch, refill_keeps_rows_busy) {
    PawRng rng = {77};
    enum { N = 256, ROWS = 32, MAXN = 64 };
    static int end[N], order[N], out[N * MAXN], counts[N];
    for (int j = 0; j < N; j++) end[j] = 1 + (int)paw_rng_below(&rng, MAXN), order[j] = j;
    PawDecodeStats st[2];
    for (int refill = 0; refill < 2; refill++) {
        static Script s;
        memset(&s, 0, sizeof s);
        s.rows = ROWS, s.njobs = N, s.max_new = MAXN, s.end = end;
        for (int b = 0; b < ROWS; b++) s.row_job[b] = -1;
        PawDecodeModel m = {&s, retiring_fill, retiring_step};
        cr_assert_eq(paw_run_decode(&m, order, N, ROWS, refill, MAXN, STOP, out, counts, &st[refill]), 0);
        cr_assert_eq(s.errors, 0);
    }
    double busy[2];
    for (int k = 0; k < 2; k++) busy[k] = 1.0 - (double)st[k].idle_rows / (double)st[k].row_steps;
    printf("decode loop, %d jobs of 1..%d tokens in %d rows: fixed batches %ld steps, %.0f%% of rows busy, %ld "
           "prefills; refill %ld steps, %.0f%% busy, %ld prefills\n",
           N, MAXN, ROWS, st[0].steps, 100 * busy[0], st[0].fills, st[1].steps, 100 * busy[1], st[1].fills);
    cr_assert(busy[1] > 0.85, "refill keeps only %.0f%% of the rows busy", 100 * busy[1]);
    cr_assert(st[1].steps < st[0].steps);
}

// The CPU runner's batches (paw_runner_run_many) against paw_runner_run one input at a time, on a
// tiny random interpreter with a random adapter: up to MATMUL_GEMV_MAX_ROWS rows every output is
// the same text, since each row's products are computed as if alone (bit for bit); blank and too-long inputs
// are refused one by one; the prompt tokens are either prefilled or taken from the prefix.
static void random_lora(const Qwen3Config *cfg, int r, Qwen3Lora *lo) {
    memset(lo, 0, sizeof *lo);
    lo->rank = r, lo->scale = 1.0f, lo->nb = 1;
    PawRng rng = {99};
    for (int m = 0; m < LORA_NUM_MODULES; m++) {
        int din, dout;
        lora_module_dims(cfg, m, &din, &dout);
        size_t na = (size_t)cfg->num_layers * r * din, nb = (size_t)cfg->num_layers * dout * r;
        lo->A[m] = xmalloc(sizeof(float) * na);
        lo->B[m] = xmalloc(sizeof(float) * nb);
        for (size_t i = 0; i < na; i++) lo->A[m][i] = 0.3f * paw_rng_normal(&rng);
        for (size_t i = 0; i < nb; i++) lo->B[m][i] = 0.3f * paw_rng_normal(&rng);
    }
}

Test(runner_batch, cpu_batches_equal_one_input_at_a_time, .timeout = 300) {
    char dir[] = "/tmp/paw_cpu_batch_XXXXXX", path[512];
    cr_assert_not_null(mkdtemp(dir));
    const char *p = paw_bin();
    cr_assert_eq(sh("%s data synth -o %s/jsonl --seed 5 --train 8 --val 4 --test 12 --families first_word,parity,sentiment "
                    "--pseudo-examples 1 >/dev/null 2>&1 && %s init --shape tests/fixtures/train/interp-shape.json --out %s/interp "
                    "--vocab-from %s/jsonl/train.jsonl,%s/jsonl/val.jsonl,%s/jsonl/test.jsonl --seed 1 --std 0.1 "
                    ">/dev/null 2>&1", p, dir, p, dir, dir, dir, dir), 0);
    snprintf(path, sizeof path, "%s/jsonl/test.jsonl", dir);
    char *text = paw_read_file(path, NULL);
    cr_assert_not_null(text);
    enum { NIN = 14 };
    const char *inputs[NIN];
    char *pseudo = NULL, *pseudo2 = NULL;
    int nin = 0;
    for (char *line = strtok(text, "\n"); line && nin < NIN - 2; line = strtok(NULL, "\n")) {
        cJSON *o = cJSON_Parse(line);
        const cJSON *in = cJSON_GetObjectItem(o, "input"), *pp = cJSON_GetObjectItem(o, "pseudo_program");
        cr_assert(cJSON_IsString(in) && cJSON_IsString(pp));
        inputs[nin++] = xstrdup(in->valuestring);
        if (!pseudo) pseudo = xstrdup(pp->valuestring);  // its words are in the trimmed vocabulary
        else if (!pseudo2 && strcmp(pp->valuestring, pseudo)) pseudo2 = xstrdup(pp->valuestring);
        cJSON_Delete(o);
    }
    inputs[nin++] = " \t ";  // blank: refused
    char *longin = xmalloc(3001);
    for (int i = 0; i < 3000; i++) longin[i] = "ab "[i % 3];
    longin[3000] = 0;
    inputs[nin++] = longin;  // past the 512-token context: refused
    snprintf(path, sizeof path, "%s/interp", dir);
    for (int wt = 0; wt < 2; wt++) {
        Qwen3 m;
        PawTokenizer *tok = NULL;
        PawVocabMap vm = {0};
        int stop;
        cr_assert_eq(qwen3_load_ex(&m, path, 1, wt ? QWEN3_WEIGHTS_BF16 : QWEN3_WEIGHTS_F32), 0, "%s", paw_last_error());
        cr_assert_eq(paw_runner_resources(path, &tok, &vm, &stop), 0, "%s", paw_last_error());
        Qwen3Lora lo;
        random_lora(&m.cfg, 3, &lo);
        char *tmpl = paw_interpreter_prompt_template(pseudo);
        PawRunner one, many;
        cr_assert_eq(paw_runner_init(&one, &m, tok, &vm, stop, tmpl, &lo), 0);
        cr_assert_eq(paw_runner_init(&many, &m, tok, &vm, stop, tmpl, &lo), 0);
        const int max_new = 10;
        char *want[NIN], *want_err[NIN];
        long prompt_tokens = 0;
        for (int i = 0; i < nin; i++) {
            want[i] = want_err[i] = NULL;
            if (paw_runner_run(&one, inputs[i], max_new, &want[i]) != 0) want_err[i] = xstrdup(paw_last_error());
            PawIds ids;
            if (paw_runner_prompt_ids(&one, inputs[i], max_new, &ids) == 0) prompt_tokens += (long)ids.n;
            paw_ids_free(&ids);
        }
        cr_assert(want_err[nin - 1] && want_err[nin - 2] && !want_err[0], "%s / %s / %s", want_err[nin - 1], want_err[nin - 2],
                  want_err[0]);
        cr_assert_not_null(pseudo2, "a second pseudo-program in the test split");
        const int row_counts[] = {1, 3, 4, 5, 4, 9, 12};
        for (size_t k = 0; k < sizeof row_counts / sizeof row_counts[0]; k++) {
            char *out[NIN], *err[NIN];
            PawRunStats st;
            cr_assert_eq(paw_runner_run_many(&many, inputs, nin, row_counts[k], max_new, out, err, &st), 0, "%s",
                         paw_last_error());
            for (int i = 0; i < nin; i++) {
                cr_assert((out[i] != NULL) != (err[i] != NULL), "input %d: exactly one of output and error", i);
                if (want_err[i]) cr_assert_str_eq(err[i], want_err[i]);
                else cr_assert_str_eq(out[i], want[i], "%s weights, %d rows, input %d: \"%s\" vs alone \"%s\"",
                                      wt ? "bf16" : "f32", row_counts[k], i, out[i], want[i]);
                free(out[i]), free(err[i]);
            }
            cr_assert_eq(st.rows, nin - 2);
            cr_assert_eq(st.prefill_tokens + st.prefix_tokens, prompt_tokens);
            cr_assert_gt(st.prefix_tokens, 10 * (nin - 2), "the template prefix is shared: %ld", st.prefix_tokens);
            cr_assert_geq(st.tokens, nin - 2);
            // One row: a fill per input. More rows: the first fill takes a row per input.
            cr_assert(row_counts[k] == 1 ? st.fills == nin - 2 : st.fills >= 1 && st.fills <= nin - 2 - row_counts[k] + 1,
                      "%d rows: %ld fills for %d inputs", row_counts[k], st.fills, nin - 2);
        }
        // Two programs in one batch, rows of both decoding together: the first with its adapter, the
        // second another template and no adapter; each job as its program's runner gives it alone.
        for (int jrows = 4; jrows <= 9; jrows += 5) {
            char *tmpl2 = paw_interpreter_prompt_template(pseudo2);
            PawRunner two, two_alone;
            cr_assert_eq(paw_runner_init(&two, &m, tok, &vm, stop, tmpl2, NULL), 0);
            cr_assert_eq(paw_runner_init(&two_alone, &m, tok, &vm, stop, tmpl2, NULL), 0);
            PawRunner *progs[2] = {&many, &two};
            int job_prog[2 * NIN];
            const char *job_in[2 * NIN];
            char *out[2 * NIN], *err[2 * NIN];
            for (int i = 0; i < 2 * nin; i++) job_prog[i] = (i / 3) % 2, job_in[i] = inputs[(i * 5) % nin];
            PawRunStats st;
            cr_assert_eq(paw_runner_run_jobs(progs, job_prog, job_in, 2 * nin, jrows, max_new, out, err, &st), 0, "%s",
                         paw_last_error());
            int ran = 0;
            for (int i = 0; i < 2 * nin; i++) {
                char *w = NULL;
                PawRunner *alone = job_prog[i] ? &two_alone : &one;
                int wrc = paw_runner_run(alone, job_in[i], max_new, &w);
                cr_assert_eq(wrc != 0, err[i] != NULL, "job %d: refused alone %d, in the batch %d", i, wrc != 0, err[i] != NULL);
                if (w) {
                    cr_assert_str_eq(out[i], w, "%s weights, two programs, %d rows, job %d (program %d): \"%s\" vs alone \"%s\"",
                                     wt ? "bf16" : "f32", jrows, i, job_prog[i], out[i], w);
                    ran++;
                }
                free(w), free(out[i]), free(err[i]);
            }
            cr_assert_eq(st.rows, ran);
            paw_runner_free(&two);
            paw_runner_free(&two_alone);
            free(tmpl2);
        }
        char *none_out[1], *none_err[1];
        cr_assert_eq(paw_runner_run_many(&many, inputs, 0, 4, max_new, none_out, none_err, NULL), 0);
        // A template that starts with the input has no prefix to share: batched runs compute
        // every prompt whole (this divided by zero copying a prefix from a cache never made).
        {
            PawRunner bare, bare_alone;
            cr_assert_eq(paw_runner_init(&bare, &m, tok, &vm, stop, PAW_INPUT_PLACEHOLDER, &lo), 0, "%s", paw_last_error());
            cr_assert_eq(paw_runner_init(&bare_alone, &m, tok, &vm, stop, PAW_INPUT_PLACEHOLDER, &lo), 0);
            char *out[3], *err[3];
            PawRunStats st;
            cr_assert_eq(paw_runner_run_many(&bare, inputs, 3, 2, max_new, out, err, &st), 0, "%s", paw_last_error());
            cr_assert_eq(st.prefix_tokens, 0);
            for (int i = 0; i < 3; i++) {
                char *w = NULL;
                cr_assert_eq(paw_runner_run(&bare_alone, inputs[i], max_new, &w), 0, "%s", paw_last_error());
                cr_assert(out[i] && !err[i] && !strcmp(out[i], w), "input %d: \"%s\" vs alone \"%s\"", i, out[i], w);
                free(w), free(out[i]);
            }
            // --max-new near INT_MAX: refused as past the context, not wrapped into a small number.
            char *w = NULL;
            cr_assert_eq(paw_runner_run(&bare_alone, inputs[0], INT_MAX, &w), -1);
            cr_assert(strstr(paw_last_error(), "context"), "%s", paw_last_error());
            cr_assert_eq(paw_runner_run_many(&bare, inputs, 3, 2, INT_MAX, out, err, NULL), -1);
            cr_assert(strstr(paw_last_error(), "context"), "%s", paw_last_error());
            paw_runner_free(&bare);
            paw_runner_free(&bare_alone);
        }
        for (int i = 0; i < nin; i++) free(want[i]), free(want_err[i]);
        paw_runner_free(&one);
        paw_runner_free(&many);
        free(tmpl);
        for (int mod = 0; mod < LORA_NUM_MODULES; mod++) free(lo.A[mod]), free(lo.B[mod]);
        paw_tokenizer_free(tok);
        paw_vocab_map_free(&vm);
        qwen3_free(&m);
    }
    for (int i = 0; i < nin - 2; i++) free((char *)inputs[i]);
    free(longin);
    free(pseudo);
    free(pseudo2);
    free(text);
    sh("rm -rf %s", dir);
}
