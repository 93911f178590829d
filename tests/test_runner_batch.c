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
