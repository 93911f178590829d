// The training loader: coverage across ranks, determinism, resume, token budget.
#define _XOPEN_SOURCE 700
#include <criterion/criterion.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileio.h"
#include "data/loader.h"
#include "data/shard_build.h"

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

// One token per byte of each text; lengths follow the texts, which the fixture varies.
static int bytes_encode(void *ctx, const PawRawExample *ex, PawIds seg[PAW_SEG_COUNT]) {
    (void)ctx;
    const char *texts[PAW_SEG_COUNT] = {ex->spec, ex->pseudo_program, ex->input, ex->output};
    for (int k = 0; k < PAW_SEG_COUNT; k++)
        for (const char *t = texts[k]; *t; t++) paw_ids_push(&seg[k], (unsigned char)*t);
    return 0;
}

static const int N_EXAMPLES = 257;  // prime: no world size divides it

static char *g_dir, *g_data;

// Builds a dataset of N_EXAMPLES with lengths 40..~350 tokens over 3 shards.
static void setup(void) {
    g_dir = xstrdup("/tmp/paw_test_loader_XXXXXX");
    cr_assert_not_null(mkdtemp(g_dir));
    char *jsonl = paw_path_join(g_dir, "d.jsonl");
    g_data = paw_path_join(g_dir, "data");
    FILE *f = fopen(jsonl, "w");
    uint64_t s = 12345;
    for (int i = 0; i < N_EXAMPLES; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        int nin = (int)(s >> 33) % 250, nout = 1 + (int)(s >> 20) % 40;
        fprintf(f, "{\"spec\": \"s%d\", \"pseudo_program\": \"p\", \"input\": \"", i);
        for (int k = 0; k < nin; k++) fputc('a' + k % 26, f);
        fprintf(f, "\", \"output\": \"");
        for (int k = 0; k < nout; k++) fputc('z', f);
        fprintf(f, "\", \"family\": \"f\", \"task_id\": \"%d\"}\n", i);
    }
    fclose(f);
    PawBuildOptions o;
    paw_build_options_default(&o);
    o.out_dir = g_data;
    o.encode = bytes_encode;
    o.examples_per_block = 8;
    o.examples_per_shard = 100;
    o.max_tokens = 0;
    o.log = stderr;
    PawBuildSummary sum;
    const char *in[] = {jsonl};
    cr_assert_eq(paw_build_shards(in, 1, &o, &sum), 0, "%s", paw_last_error());
    cr_assert_eq(sum.examples, (uint64_t)N_EXAMPLES);
    cr_assert_eq(sum.shards, 3);
    free(jsonl);
}

static void teardown(void) {
    nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(g_dir);
    free(g_data);
}

TestSuite(loader, .init = setup, .fini = teardown);

static PawLoaderConfig config(uint64_t seed, int rank, int world, int64_t budget, int max_ex, PawBudgetMode mode, int window) {
    PawLoaderConfig c;
    paw_loader_config_default(&c);
    c.seed = seed, c.rank = rank, c.world_size = world, c.token_budget = budget;
    c.max_examples = max_ex, c.mode = mode, c.sort_window = window;
    return c;
}

// Cost computed here from scratch, not with the library's helper.
static int64_t cost_of(const PawBatch *b, PawBudgetMode mode) {
    int64_t sum = 0, mc = 0, mi = 0;
    for (int j = 0; j < b->n; j++) {
        const uint32_t *l = b->ex[j].len;
        int64_t c = (int64_t)l[0] + l[1], i = (int64_t)l[2] + l[3];
        sum += c + i;
        mc = c > mc ? c : mc;
        mi = i > mi ? i : mi;
    }
    return mode == PAW_BUDGET_SUM ? sum : b->n * (mc + mi);
}

static void check_coverage(int world, PawBudgetMode mode, int window, int max_ex) {
    PawDataset *ds[3];
    PawLoader *l[3];
    for (int r = 0; r < world; r++) {
        ds[r] = paw_dataset_open(g_data);
        cr_assert_not_null(ds[r], "%s", paw_last_error());
        PawLoaderConfig c = config(5, r, world, 1500, max_ex, mode, window);
        l[r] = paw_loader_new(ds[r], &c);
        cr_assert_not_null(l[r], "%s", paw_last_error());
    }
    int *seen = xcalloc((size_t)N_EXAMPLES, sizeof *seen);
    PawBatch b = {0};
    for (uint64_t epoch = 0; epoch < 3; epoch++) {
        memset(seen, 0, sizeof *seen * (size_t)N_EXAMPLES);
        uint64_t steps = paw_loader_steps_in_epoch(l[0]);
        cr_assert_gt(steps, 1);
        for (int r = 1; r < world; r++) cr_assert_eq(paw_loader_steps_in_epoch(l[r]), steps, "ranks in lockstep");
        for (uint64_t s = 0; s < steps; s++)
            for (int r = 0; r < world; r++) {
                cr_assert_eq(paw_loader_next(l[r], &b, 1), 0, "%s", paw_last_error());
                cr_assert_eq(b.epoch, epoch);
                cr_assert_eq(b.step, s);
                cr_assert(b.n > 0 || s == steps - 1, "only the last step may be empty");
                cr_assert_leq(cost_of(&b, mode), 1500);
                cr_assert_eq(cost_of(&b, mode), b.cost);
                if (max_ex) cr_assert_leq(b.n, max_ex);
                for (int j = 0; j < b.n; j++) {
                    cr_assert_lt(b.index[j], (uint64_t)N_EXAMPLES);
                    seen[b.index[j]]++;
                    // The batch's copy matches the dataset.
                    char want[16];
                    snprintf(want, sizeof want, "%llu", (unsigned long long)b.index[j]);
                    cr_assert_str_eq(b.ex[j].task_id, want);
                    PawExample ex;
                    cr_assert_eq(paw_dataset_get(ds[r], b.index[j], &ex), 0);
                    for (int k = 0; k < PAW_SEG_COUNT; k++) {
                        cr_assert_eq(ex.len[k], b.ex[j].len[k]);
                        cr_assert_eq(memcmp(ex.seg[k], b.ex[j].seg[k], 4 * ex.len[k]), 0);
                    }
                    cr_assert_str_eq(ex.output, b.ex[j].output);
                }
            }
        for (int i = 0; i < N_EXAMPLES; i++)
            cr_assert_eq(seen[i], 1, "world %d epoch %llu: example %d seen %d times", world, (unsigned long long)epoch, i, seen[i]);
    }
    free(seen);
    paw_batch_free(&b);
    for (int r = 0; r < world; r++) {
        paw_loader_free(l[r]);
        paw_dataset_close(ds[r]);
    }
}

Test(loader, each_example_once_per_epoch_world_1) { check_coverage(1, PAW_BUDGET_PADDED, 0, 0); }
Test(loader, each_example_once_per_epoch_world_2) { check_coverage(2, PAW_BUDGET_PADDED, 0, 6); }
Test(loader, each_example_once_per_epoch_world_3) { check_coverage(3, PAW_BUDGET_SUM, 0, 0); }
Test(loader, each_example_once_per_epoch_sorted_windows) {
    check_coverage(3, PAW_BUDGET_PADDED, 64, 0);
    check_coverage(2, PAW_BUDGET_SUM, 1000, 5);
}

// The sequence of (epoch, step, indices) over `steps` calls, as one flat list.
static uint64_t *sequence(PawLoader *l, int steps, size_t *count) {
    size_t cap = 4096, n = 0;
    uint64_t *v = xmalloc(sizeof *v * cap);
    PawBatch b = {0};
    for (int s = 0; s < steps; s++) {
        cr_assert_eq(paw_loader_next(l, &b, 0), 0, "%s", paw_last_error());
        if (n + (size_t)b.n + 3 > cap) v = xrealloc(v, sizeof *v * (cap *= 2));
        v[n++] = b.epoch;
        v[n++] = b.step;
        v[n++] = (uint64_t)b.n;
        for (int j = 0; j < b.n; j++) v[n++] = b.index[j];
    }
    paw_batch_free(&b);
    *count = n;
    return v;
}

static uint64_t *sequence_for(PawDataset *ds, PawLoaderConfig c, int steps, size_t *count) {
    PawLoader *l = paw_loader_new(ds, &c);
    cr_assert_not_null(l, "%s", paw_last_error());
    uint64_t *v = sequence(l, steps, count);
    paw_loader_free(l);
    return v;
}

Test(loader, deterministic_by_seed) {
    PawDataset *ds = paw_dataset_open(g_data);
    cr_assert_not_null(ds);
    size_t na, nb, nc;
    uint64_t *a = sequence_for(ds, config(1, 1, 2, 2000, 0, PAW_BUDGET_PADDED, 32), 120, &na);
    uint64_t *b = sequence_for(ds, config(1, 1, 2, 2000, 0, PAW_BUDGET_PADDED, 32), 120, &nb);
    uint64_t *c = sequence_for(ds, config(2, 1, 2, 2000, 0, PAW_BUDGET_PADDED, 32), 120, &nc);
    cr_assert_eq(na, nb);
    cr_assert_eq(memcmp(a, b, na * sizeof *a), 0, "same seed, same batches");
    cr_assert(na != nc || memcmp(a, c, na * sizeof *a) != 0, "another seed, other batches");
    // Epochs differ from each other: the first indices of epoch 0 and epoch 1.
    PawLoaderConfig cfg = config(1, 0, 1, 100000, 0, PAW_BUDGET_SUM, 0);
    PawLoader *l = paw_loader_new(ds, &cfg);
    PawBatch batch = {0};
    uint64_t steps = paw_loader_steps_in_epoch(l);
    cr_assert_eq(paw_loader_next(l, &batch, 0), 0);
    uint64_t first0[8];
    memcpy(first0, batch.index, sizeof first0);
    for (uint64_t s = 1; s < steps; s++) cr_assert_eq(paw_loader_next(l, &batch, 0), 0);
    cr_assert_eq(paw_loader_next(l, &batch, 0), 0);
    cr_assert_eq(batch.epoch, 1);
    cr_assert_neq(memcmp(first0, batch.index, sizeof first0), 0);
    // And the order is shuffled, not the file order.
    int in_order = 1;
    for (int j = 1; j < 8; j++) in_order &= first0[j] == first0[j - 1] + 1;
    cr_assert_not(in_order);
    paw_batch_free(&batch);
    paw_loader_free(l);
    free(a), free(b), free(c);
    paw_dataset_close(ds);
}

Test(loader, resume_from_saved_position_reproduces_sequence) {
    PawDataset *ds = paw_dataset_open(g_data);
    cr_assert_not_null(ds);
    PawLoaderConfig c = config(9, 2, 3, 1200, 4, PAW_BUDGET_PADDED, 16);
    PawLoader *l = paw_loader_new(ds, &c);
    uint64_t steps = paw_loader_steps_in_epoch(l);
    // Save at several points, including the epoch's last step and right at its end.
    int saves[] = {0, 1, 7, (int)steps - 1, (int)steps, (int)steps + 3};
    for (size_t k = 0; k < sizeof saves / sizeof saves[0]; k++) {
        PawLoader *run = paw_loader_new(ds, &c);
        size_t n0, n1, n2;
        uint64_t *pre = sequence(run, saves[k], &n0);
        PawLoaderPos pos = paw_loader_tell(run), next = paw_loader_tell_next(run);
        cr_assert(saves[k] == (int)steps ? next.epoch == 1 && next.step == 0
                                         : next.epoch == pos.epoch && next.step == pos.step, "save at %d", saves[k]);
        uint64_t *rest = sequence(run, 2 * (int)steps, &n1);  // crosses at least one epoch boundary
        for (int t = 0; t < 2; t++) {  // from the position as it is, and as a checkpoint saves it
            PawLoader *resumed = paw_loader_new(ds, &c);
            cr_assert_eq(paw_loader_seek(resumed, t ? next : pos), 0, "%s", paw_last_error());
            uint64_t *again = sequence(resumed, 2 * (int)steps, &n2);
            cr_assert_eq(n1, n2);
            cr_assert_eq(memcmp(rest, again, n1 * sizeof *rest), 0, "resume at step %d (%s)", saves[k], t ? "next" : "tell");
            free(again);
            paw_loader_free(resumed);
        }
        free(pre), free(rest);
        paw_loader_free(run);
    }
    // A position from another configuration is refused.
    PawLoaderConfig other = c;
    other.token_budget = 1300;
    PawLoader *o = paw_loader_new(ds, &other);
    PawLoaderPos pos = paw_loader_tell(l);
    cr_assert_eq(paw_loader_seek(o, pos), -1);
    cr_assert_not_null(strstr(paw_last_error(), "configuration"));
    paw_loader_free(o);
    paw_loader_free(l);
    paw_dataset_close(ds);
}

Test(loader, budget_is_filled_and_too_small_a_budget_is_refused) {
    PawDataset *ds = paw_dataset_open(g_data);
    cr_assert_not_null(ds);
    uint32_t longest = 0;
    for (uint64_t i = 0; i < paw_dataset_size(ds); i++) {
        uint32_t len[PAW_SEG_COUNT];
        paw_dataset_lengths(ds, i, len);
        uint32_t t = len[0] + len[1] + len[2] + len[3];
        longest = t > longest ? t : longest;
    }
    PawLoaderConfig c = config(3, 0, 1, longest - 1, 0, PAW_BUDGET_SUM, 0);
    cr_assert_null(paw_loader_new(ds, &c));
    cr_assert_not_null(strstr(paw_last_error(), "budget"));
    // With a budget of exactly the longest example, every batch fits, and a batch closes only
    // when the next example would not fit (greedy).
    c.token_budget = longest;
    PawLoader *l = paw_loader_new(ds, &c);
    cr_assert_not_null(l, "%s", paw_last_error());
    PawBatch b = {0};
    uint64_t steps = paw_loader_steps_in_epoch(l), total = 0;
    int64_t prev_cost = -1;
    for (uint64_t s = 0; s < steps; s++) {
        cr_assert_eq(paw_loader_next(l, &b, 0), 0);
        int64_t cost = cost_of(&b, PAW_BUDGET_SUM);
        cr_assert_leq(cost, (int64_t)longest);
        const uint32_t *first = b.ex[0].len;
        if (prev_cost >= 0)
            cr_assert_gt(prev_cost + first[0] + first[1] + first[2] + first[3], (int64_t)longest, "greedy: would have fit");
        prev_cost = cost;
        total += (uint64_t)b.n;
    }
    cr_assert_eq(total, (uint64_t)N_EXAMPLES);
    paw_batch_free(&b);
    paw_loader_free(l);
    // Bad configurations.
    PawLoaderConfig bad = config(0, 2, 2, 1000, 0, PAW_BUDGET_SUM, 0);
    cr_assert_null(paw_loader_new(ds, &bad));
    paw_dataset_close(ds);
}

Test(loader, dataset_refuses_a_manifest_that_disagrees_with_a_shard) {
    char *mpath = paw_path_join(g_data, "manifest.json");
    char *m = paw_read_file(mpath, NULL);
    char *at = strstr(m, "\"examples\":\t100");  // the first shard's count
    cr_assert_not_null(at, "%s", m);
    at[strlen("\"examples\":\t")] = '9';
    cr_assert_eq(paw_write_file_atomic(mpath, m, strlen(m)), 0);
    cr_assert_null(paw_dataset_open(g_data));
    cr_assert_not_null(strstr(paw_last_error(), "shard-00000.pawshard"), "%s", paw_last_error());
    free(m);
    free(mpath);
}

// A count that is not an integer a double holds exactly is refused before it is converted.
Test(loader, dataset_refuses_a_count_out_of_range) {
    const char *bad[] = {"1e300", "2.5", "-1"};
    for (int i = 0; i < 3; i++) {
        char *mpath = paw_path_join(g_data, "manifest.json");
        char *m = paw_read_file(mpath, NULL);
        const char *key = "\"examples\":\t100";
        char *at = strstr(m, key);
        cr_assert_not_null(at, "%s", m);
        size_t head = (size_t)(at - m) + strlen("\"examples\":\t");
        char *t = xmalloc(strlen(m) + 16);
        snprintf(t, strlen(m) + 16, "%.*s%s%s", (int)head, m, bad[i], at + strlen(key));
        cr_assert_eq(paw_write_file_atomic(mpath, t, strlen(t)), 0);
        cr_assert_null(paw_dataset_open(g_data), "%s", bad[i]);
        cr_assert_not_null(strstr(paw_last_error(), "non-negative integer"), "%s: %s", bad[i], paw_last_error());
        cr_assert_eq(paw_write_file_atomic(mpath, m, strlen(m)), 0);
        free(t), free(m), free(mpath);
    }
}

// The end of an epoch as a checkpoint saves it (the next epoch's start) is a position that
// another world size can take: 4 ranks' step count times 4 is past the end of the epoch in
// steps of 2 ranks whenever 4 does not divide the batches. The same next batch for both.
Test(loader, an_epochs_end_saved_as_the_next_start_reshards) {
    PawDataset *ds = paw_dataset_open(g_data);
    cr_assert_not_null(ds);
    PawLoaderConfig c4 = config(9, 0, 4, 1200, 4, PAW_BUDGET_PADDED, 16), c2 = c4;
    c2.world_size = 2;
    PawLoader *l4 = paw_loader_new(ds, &c4), *l2 = paw_loader_new(ds, &c2);
    uint64_t steps4 = paw_loader_steps_in_epoch(l4), steps2 = paw_loader_steps_in_epoch(l2);
    size_t n;
    free(sequence(l4, (int)steps4, &n));
    PawLoaderPos end = paw_loader_tell(l4), next = paw_loader_tell_next(l4);
    cr_assert(end.epoch == 0 && end.step == steps4 && next.epoch == 1 && next.step == 0);
    // As a step count of 2 ranks, the end itself is past the epoch's end, and refused.
    end.step = end.step * 4 / 2, end.fingerprint = paw_loader_tell(l2).fingerprint;
    cr_assert_gt(end.step, steps2, "the case this test is for: 4 does not divide the epoch's batches");
    cr_assert_eq(paw_loader_seek(l2, end), -1);
    next.fingerprint = end.fingerprint;
    cr_assert_eq(paw_loader_seek(l2, next), 0, "%s", paw_last_error());
    PawBatch a = {0}, b = {0};
    cr_assert_eq(paw_loader_next(l4, &a, 0), 0);
    cr_assert_eq(paw_loader_next(l2, &b, 0), 0);
    cr_assert(a.epoch == 1 && b.epoch == 1 && a.n == b.n && !memcmp(a.index, b.index, sizeof *a.index * (size_t)a.n),
              "global batch 0 of epoch 1 for both world sizes");
    paw_batch_free(&a), paw_batch_free(&b);
    paw_loader_free(l4), paw_loader_free(l2);
    paw_dataset_close(ds);
}
