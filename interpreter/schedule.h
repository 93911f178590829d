// Scheduling the rows of batched greedy decoding, apart from the model: which jobs go into which
// rows of a running batch and when. Plain C, so that a CPU test drives it with a scripted model;
// the GPU batch runner (runner_cuda.h) drives it with the real one.
//
// Jobs are taken longest prompt first. With refill (continuous batching), a row whose job has
// ended is given the next waiting job while the other rows go on; a refill is one prefill of the
// new rows together, made once at least ceil(rows / 8) rows are free (or every waiting job fits),
// so that prefills are shared without keeping many rows idle. Without refill, the rows are filled
// together and all run until the last of them ends (what a fixed batch does).
#ifndef PAW_INTERPRETER_SCHEDULE_H
#define PAW_INTERPRETER_SCHEDULE_H

// Batch planning: job i has a prompt of lens[i] tokens (< 0: skipped, it failed before the model).
// order receives the kept job indices, longest prompt first (ties in job order); batch k is
// order[starts[k] .. starts[k+1]-1], at most `batch` rows. order holds n entries and starts n + 1.
// Returns the number of batches.
int paw_run_plan(const int *lens, int n, int batch, int *order, int *starts);

// How many free rows to fill now, of `rows` rows of which free_rows have no job, with `waiting`
// jobs left; 0: step the running rows first.
int paw_run_fill_count(int rows, int free_rows, int waiting, int refill);

// The model side of the decoding loop.
typedef struct {
    void *ctx;
    // Prefill jobs[i] into row rows[i] (i < k; those rows are free) and set next[i] to its first
    // greedy token. 0, or -1 + paw_error.
    int (*fill)(void *ctx, const int *rows, const int *jobs, int k, int *next);
    // One token for every row; rows with active[b] == 0 are computed and discarded. next[b]
    // receives row b's next greedy token. 0, or -1 + paw_error.
    int (*step)(void *ctx, const int *active, int *next);
} PawDecodeModel;

typedef struct {
    long steps;       // decoding steps (one token for every row each)
    long row_steps;   // steps x rows
    long idle_rows;   // rows of those steps with no running job (computed, discarded)
    long fills;       // prefill calls
    long prefill_tokens, prefix_tokens;  // the model side's: prompt tokens computed in prefills, and
                                         // taken from shared prefixes instead (0 from paw_run_decode)
} PawDecodeStats;

// Greedy decoding of jobs order[0..n) in min(batch, n) rows: job j's tokens go to
// out + j * max_new, their count to counts[j]; a job ends after stop_id (kept) or max_new
// tokens. st (may be NULL) receives the figures. Returns 0, or -1 when the model failed.
int paw_run_decode(const PawDecodeModel *m, const int *order, int n, int batch, int refill, int max_new, int stop_id,
                   int *out, int *counts, PawDecodeStats *st);

#endif
