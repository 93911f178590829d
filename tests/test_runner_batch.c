// The GPU batch runner's CPU side: batch planning, and --device cuda where no GPU can be used
// (a build without CUDA, or a machine without a GPU) giving a clear refusal.
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "common/fileio.h"
#include "common/rng.h"
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
    cr_assert_eq(sh("%s run %s/none.paw --batch 0 2>/dev/null", p, dir), 2);
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
