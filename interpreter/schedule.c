// Row scheduling for batched greedy decoding (see schedule.h).
#include "interpreter/schedule.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"

typedef struct {
    const int *lens;
    int i;
} PlanKey;

static int cmp_plan(const void *a, const void *b) {
    const PlanKey *x = a, *y = b;
    int lx = x->lens[x->i], ly = y->lens[y->i];
    if (lx != ly) return lx > ly ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

int paw_run_plan(const int *lens, int n, int batch, int *order, int *starts) {
    if (batch < 1) batch = 1;
    PlanKey *keys = xmalloc(sizeof(PlanKey) * (size_t)(n ? n : 1));
    int kept = 0;
    for (int i = 0; i < n; i++)
        if (lens[i] >= 0) keys[kept++] = (PlanKey){lens, i};
    qsort(keys, (size_t)kept, sizeof(PlanKey), cmp_plan);
    for (int k = 0; k < kept; k++) order[k] = keys[k].i;
    free(keys);
    int nb = 0;
    for (int s = 0; s < kept; s += batch) starts[nb++] = s;
    starts[nb] = kept;
    return nb;
}

int paw_run_fill_count(int rows, int free_rows, int waiting, int refill) {
    if (waiting <= 0 || free_rows <= 0) return 0;
    int fit = free_rows < waiting ? free_rows : waiting;
    if (!refill) return free_rows == rows ? fit : 0;
    // A prefill costs about one step however few rows it fills (its launches), so refills wait
    // for an eighth of the rows; a row waits for at most that many others to end.
    int due = (rows + 7) / 8;
    return free_rows >= (due < waiting ? due : waiting) ? fit : 0;
}

int paw_run_decode(const PawDecodeModel *m, const int *order, int n, int batch, int refill, int max_new, int stop_id,
                   int *out, int *counts, PawDecodeStats *st) {
    PawDecodeStats s = {0};
    if (st) *st = s;
    if (n <= 0) return 0;
    if (batch < 1 || max_new < 1) return paw_error("decode: batch %d, max_new %d, expected at least 1", batch, max_new);
    const int rows = batch < n ? batch : n;
    for (int i = 0; i < n; i++) counts[order[i]] = 0;
    int *row_job = xmalloc(sizeof(int) * (size_t)rows), *next = xmalloc(sizeof(int) * (size_t)rows);
    int *active = xmalloc(sizeof(int) * (size_t)rows), *fill_rows = xmalloc(sizeof(int) * (size_t)rows);
    int *fill_jobs = xmalloc(sizeof(int) * (size_t)rows), *fill_next = xmalloc(sizeof(int) * (size_t)rows);
    for (int b = 0; b < rows; b++) row_job[b] = -1, active[b] = 0;
    int taken = 0, running = 0, rc = 0;
    for (;;) {
        // Fill free rows (lowest first) while the policy says so; a job may end at its first token.
        for (int k; rc == 0 && (k = paw_run_fill_count(rows, rows - running, n - taken, refill)) > 0;) {
            for (int b = 0, i = 0; i < k; b++)
                if (row_job[b] < 0) fill_rows[i] = b, fill_jobs[i] = order[taken + i], i++;
            taken += k;
            s.fills++;
            rc = m->fill(m->ctx, fill_rows, fill_jobs, k, fill_next);
            for (int i = 0; rc == 0 && i < k; i++) {
                int b = fill_rows[i], j = fill_jobs[i];
                row_job[b] = j, counts[j] = 0, next[b] = fill_next[i], active[b] = 1, running++;
            }
            for (int i = 0; rc == 0 && i < k; i++) {  // record the first tokens
                int b = fill_rows[i], j = row_job[b];
                out[(size_t)j * max_new + counts[j]++] = next[b];
                if (next[b] == stop_id || counts[j] == max_new) row_job[b] = -1, active[b] = 0, running--;
            }
        }
        if (rc != 0 || running == 0) break;  // nothing running: every job has been taken
        rc = m->step(m->ctx, active, next);
        if (rc != 0) break;
        s.steps++, s.row_steps += rows, s.idle_rows += rows - running;
        for (int b = 0; b < rows; b++) {
            if (!active[b]) continue;
            int j = row_job[b];
            out[(size_t)j * max_new + counts[j]++] = next[b];
            if (next[b] == stop_id || counts[j] == max_new) row_job[b] = -1, active[b] = 0, running--;
        }
    }
    free(row_job), free(next), free(active), free(fill_rows), free(fill_jobs), free(fill_next);
    if (st) *st = s;
    return rc;
}
