// Multi-process training on the CPU through `mpirun ./paw train` on the tiny world: -np 2 against
// -np 1 with the same global batch (with and without ZeRO-1), exact resume across ranks after a
// rank died mid-checkpoint, re-sharding 2 -> 1 -> 2 ranks, a killed and a hung rank ending the job
// within a bounded time and naming the rank (also in the middle of the gradient reduction that
// overlaps the backward), the overlapped reduction against the one after the backward, and
// mismatched configurations refused. Shard arithmetic and the single-process communicator are
// checked without MPI.
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fileio.h"
#include "common/progress.h"
#include "model/safetensors.h"
#include "tests/testutil.h"
#include "train/checkpoint.h"
#include "train/comm.h"
#include "tests/world.h"

Test(comm, shards_cover_every_element_once) {
    size_t ns[] = {0, 1, 7, 8, 1000003};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        for (int w = 1; w <= 5; w++) {
            size_t counts[5], total = 0;
            paw_shard_counts(ns[i], w, counts);
            for (int r = 0; r < w; r++) {
                cr_assert_eq(paw_shard_begin(ns[i], w, r), total, "n %zu w %d r %d", ns[i], w, r);
                cr_assert(counts[r] + 1 >= counts[0] && counts[r] <= counts[0], "unbalanced n %zu w %d", ns[i], w);
                total += counts[r];
            }
            cr_assert_eq(total, ns[i]);
            cr_assert_eq(paw_shard_begin(ns[i], w, w), ns[i]);
        }
}

// A round's byte count must fit an int even for doubles (MPI counts; old OpenMPI byte offsets).
Test(comm, collective_rounds_stay_under_2_gib_whatever_the_override) {
    unsetenv("PAW_COMM_CHUNK");
    cr_assert_eq(paw_comm_chunk_elems(), (size_t)1 << 26);
    const char *set[] = {"1000", "134217728", "134217729", "4294967296", "0", "-5"};
    size_t want[] = {1000, (size_t)1 << 27, (size_t)1 << 27, (size_t)1 << 27, (size_t)1 << 26, (size_t)1 << 26};
    for (int i = 0; i < 6; i++) {
        setenv("PAW_COMM_CHUNK", set[i], 1);
        size_t got = paw_comm_chunk_elems();
        cr_assert_eq(got, want[i], "PAW_COMM_CHUNK=%s: %zu elements a round, expected %zu", set[i], got, want[i]);
        cr_assert_lt(got * sizeof(double), (size_t)INT_MAX + 1);
    }
    unsetenv("PAW_COMM_CHUNK");
}

Test(comm, single_process_collectives_are_identities) {
    PawComm *c = paw_comm_single();
    cr_assert_eq(c->rank, 0);
    cr_assert_eq(c->world, 1);
    float v[3] = {1, 2, 3}, out[3] = {0};
    size_t counts[1] = {3};
    cr_assert_eq(paw_allreduce_f32(c, v, 3), 0);
    cr_assert_eq(paw_reduce_scatter_f32(c, v, out, counts), 0);
    cr_assert(out[0] == 1 && out[1] == 2 && out[2] == 3);
    cr_assert_eq(paw_allgather_f32(c, v, counts), 0);
    cr_assert(v[0] == 1 && v[2] == 3);
    cr_assert_eq(paw_barrier(c), 0);
    cr_assert_eq(paw_broadcast(c, v, sizeof v, 0), 0);
    cr_assert_eq(paw_broadcast(c, v, sizeof v, 1), -1);
    paw_comm_close(c);
}

// ---- through mpirun -----------------------------------------------------------------------------

static char g_dir[64];
static char g_mpirun[512];

// mpirun as the tests need it: root is refused by OpenMPI unless allowed; two ranks on a 2-core
// machine need --oversubscribe; shared memory + self transports and no single-copy mechanism work
// in containers; one OpenMP thread per rank keeps the ranks off each other's cores.
static int have_mpirun(void) {
    if (!paw_comm_have_mpi() || sh("command -v mpirun >/dev/null 2>&1") != 0) return 0;
    snprintf(g_mpirun, sizeof g_mpirun,
             "OMP_NUM_THREADS=1 OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none "
             "OMPI_MCA_rmaps_base_oversubscribe=1 mpirun %s --oversubscribe --bind-to none",
             geteuid() == 0 ? "--allow-run-as-root" : "");
    return 1;
}

#define NEED_MPI()                                                                                                     \
    do {                                                                                                               \
        if (!have_mpirun()) cr_skip_test("paw built without MPI, or no mpirun");                                      \
    } while (0)

static void write_config(const char *name, const char *out, const char *extra) {
    char path[256], text[2048];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    snprintf(text, sizeof text,
             "{\"mode\":\"paw\",\"compiler\":\"%s/comp\",\"interpreter\":\"%s/interp\",\"train_data\":\"%s/train\","
             "\"out_dir\":\"%s/%s\",\"lora_rank\":4,\"lora_alpha\":8,\"mapper_bases\":3,\"prefix_steps\":4,"
             "\"steps\":6,\"batch_tokens\":4096,\"max_batch_examples\":4,\"lr\":0.003,\"warmup_steps\":2,"
             "\"save_every\":2,\"keep_last\":5,\"eval_every\":0,\"seed\":3}",
             g_dir, g_dir, g_dir, g_dir, out);
    cr_assert_eq(write_json_merged(path, text, extra), 0);
}

typedef struct {
    double loss[8], gnorm[8];
    int n;
} RunLog;

// step -> loss and grad norm (the last line for each step wins, as after a resume).
static RunLog read_log(const char *run) {
    RunLog r;
    memset(&r, 0, sizeof r);
    char path[256];
    snprintf(path, sizeof path, "%s/%s/log.jsonl", g_dir, run);
    char *text = paw_read_file(path, NULL);
    cr_assert_not_null(text, "%s", paw_last_error());
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *o = cJSON_Parse(line);
        const cJSON *s = cJSON_GetObjectItem(o, "step"), *l = cJSON_GetObjectItem(o, "loss");
        const cJSON *g = cJSON_GetObjectItem(o, "grad_norm");
        if (cJSON_IsNumber(s) && cJSON_IsNumber(l) && cJSON_IsNumber(g) && s->valueint >= 1 && s->valueint <= 8) {
            r.loss[s->valueint - 1] = l->valuedouble;
            r.gnorm[s->valueint - 1] = g->valuedouble;
            if (s->valueint > r.n) r.n = s->valueint;
        }
        cJSON_Delete(o);
    }
    free(text);
    return r;
}

// Largest absolute difference between two runs' parameters at a checkpoint step (0 = identical bits).
static double params_diff(const char *run_a, const char *run_b, int step) {
    char pa[256], pb[256];
    snprintf(pa, sizeof pa, "%s/%s/checkpoints/step-%08d/params.safetensors", g_dir, run_a, step);
    snprintf(pb, sizeof pb, "%s/%s/checkpoints/step-%08d/params.safetensors", g_dir, run_b, step);
    SafeTensors a, b;
    cr_assert_eq(st_open(&a, pa), 0, "%s", paw_last_error());
    cr_assert_eq(st_open(&b, pb), 0, "%s", paw_last_error());
    cr_assert_eq(a.ntensors, b.ntensors);
    double worst = 0;
    for (int i = 0; i < a.ntensors; i++) {
        const StTensor *ta = &a.tensors[i], *tb = st_find(&b, ta->name);
        cr_assert_not_null(tb, "%s lacks %s", pb, ta->name);
        cr_assert_eq(ta->numel, tb->numel);
        const float *x = (const float *)ta->data, *y = (const float *)tb->data;
        for (int64_t k = 0; k < ta->numel; k++) {
            double d = fabs((double)x[k] - y[k]);
            if (!(d <= worst)) worst = d;  // NaN counts as the worst
        }
    }
    st_close(&a), st_close(&b);
    return worst;
}

// Float tolerance of a multi-rank run against one process: the same examples, but the rank
// gradients are summed in another order (allreduce instead of accumulation into one buffer),
// which changes each gradient by rounding only (~1e-7 relative). Losses and grad norms then agree
// to ~1e-7; parameters move by AdamW steps of size ~lr = 3e-3 per element, and a rounding-level
// change of the gradient moves them by far less (~1e-6 seen). A wrong normalisation (local
// instead of global token counts), a missing or doubled rank gradient, or a wrong shard shows as
// differences of order lr in the parameters and 1e-3 in losses: 1e-5 relative on the losses and
// grad norms and 1e-4 absolute on the parameters separate the two by an order of magnitude or more.
static void assert_close_runs(const char *a, const char *b) {
    RunLog x = read_log(a), y = read_log(b);
    cr_assert_eq(x.n, 6, "%s: %d steps logged", a, x.n);
    cr_assert_eq(y.n, 6, "%s: %d steps logged", b, y.n);
    for (int i = 0; i < 6; i++) {
        cr_assert(fabs(x.loss[i] - y.loss[i]) <= 1e-5 * fabs(x.loss[i]), "step %d loss: %s %.9g vs %s %.9g", i + 1, a,
                  x.loss[i], b, y.loss[i]);
        cr_assert(fabs(x.gnorm[i] - y.gnorm[i]) <= 1e-5 * fabs(x.gnorm[i]) + 1e-9, "step %d grad norm: %s %.9g vs %s %.9g",
                  i + 1, a, x.gnorm[i], b, y.gnorm[i]);
    }
    double d = params_diff(a, b, 6);
    cr_assert(d <= 1e-4, "final parameters of %s and %s differ by %g", a, b, d);
}

Test(mpi_train, np2_matches_np1_with_the_same_global_batch_with_and_without_zero1, .timeout = 240) {
    NEED_MPI();
    make_world(g_dir);
    const char *p = paw_bin();
    // One process with 2 micro-batches per step sees loader batches 2s and 2s+1; two ranks with
    // one each see the same two (rank r gets 2s+r).
    write_config("one.json", "one", ",\"grad_accum\":2");
    write_config("two.json", "two", "");
    write_config("zero.json", "zero", ",\"zero\":1");
    cr_assert_eq(sh("OMP_NUM_THREADS=1 %s train %s/one.json 2>%s/one.err", p, g_dir, g_dir), 0);
    cr_assert_eq(sh("%s -np 2 %s train %s/two.json >%s/two.err 2>&1", g_mpirun, p, g_dir, g_dir), 0);
    // Small rounds for the collectives, so that the chunked path is the one tested.
    cr_assert_eq(sh("PAW_COMM_CHUNK=1000 %s -x PAW_COMM_CHUNK -np 2 %s train %s/zero.json >%s/zero.err 2>&1", g_mpirun, p,
                    g_dir, g_dir), 0);
    assert_close_runs("one", "two");
    assert_close_runs("one", "zero");
    // ZeRO-1 checkpoints hold one optimizer shard per rank and no whole optimizer file.
    char path[256];
    snprintf(path, sizeof path, "%s/zero/checkpoints/step-00000006/optimizer-00001-of-00002.safetensors", g_dir);
    cr_assert(paw_file_exists(path), "missing %s", path);
    snprintf(path, sizeof path, "%s/zero/checkpoints/step-00000006/optimizer.safetensors", g_dir);
    cr_assert(!paw_file_exists(path));
    // Only rank 0 logs and exports.
    snprintf(path, sizeof path, "%s/zero/export/mapper.safetensors", g_dir);
    cr_assert(paw_file_exists(path));
    sh("rm -rf %s", g_dir);
}

Test(mpi_train, a_rank_killed_mid_checkpoint_leaves_no_complete_checkpoint_and_resume_is_exact, .timeout = 240) {
    NEED_MPI();
    make_world(g_dir);
    const char *p = paw_bin();
    write_config("a.json", "a", ",\"zero\":1");
    write_config("b.json", "b", ",\"zero\":1");
    cr_assert_eq(sh("%s -np 2 %s train %s/a.json >%s/a.err 2>&1", g_mpirun, p, g_dir, g_dir), 0);
    // Rank 1 is killed (SIGKILL) after rank 0 wrote the step-4 parameters, before rank 1 wrote
    // its optimizer shard.
    double t0 = paw_now();
    int rc = sh("PAW_TEST_KILL_RANK=1 PAW_TEST_KILL_DURING_SAVE=4 %s -x PAW_TEST_KILL_RANK -x PAW_TEST_KILL_DURING_SAVE "
                "-np 2 %s train %s/b.json >%s/b.err 2>&1", g_mpirun, p, g_dir, g_dir);
    double dt = paw_now() - t0;
    cr_assert_neq(rc, 0);
    cr_assert(dt < 60, "the job took %.0f s to end", dt);
    char path[256];
    snprintf(path, sizeof path, "%s/b", g_dir);
    char *latest = ckpt_latest(path);
    cr_assert_not_null(latest);
    cr_assert(strstr(latest, "step-00000002"), "newest complete checkpoint: %s", latest);
    free(latest);
    snprintf(path, sizeof path, "%s/b/checkpoints/step-00000004", g_dir);
    cr_assert(!paw_file_exists(path), "a half-written checkpoint was completed");
    // Resumed on 2 ranks: the same bits as the uninterrupted run.
    cr_assert_eq(sh("%s -np 2 %s train %s/b.json --resume >%s/b2.err 2>&1", g_mpirun, p, g_dir, g_dir), 0);
    RunLog a = read_log("a"), b = read_log("b");
    cr_assert_eq(b.n, 6);
    for (int i = 0; i < 6; i++) cr_assert(a.loss[i] == b.loss[i], "step %d: %.17g vs %.17g", i + 1, a.loss[i], b.loss[i]);
    cr_assert(params_diff("a", "b", 6) == 0, "resumed parameters differ");
    // SIGINT to rank 1 alone after step 2: the ranks agree to stop after step 3 (the signal joins
    // that step's sums), save its checkpoint whole, and resume to the same bits.
    write_config("d.json", "d", ",\"zero\":1");
    rc = sh("PAW_TEST_KILL_RANK=1 PAW_TEST_SIGNAL_AT_STEP=2 %s -x PAW_TEST_KILL_RANK -x PAW_TEST_SIGNAL_AT_STEP "
            "-np 2 %s train %s/d.json >%s/d.err 2>&1", g_mpirun, p, g_dir, g_dir);
    cr_assert_neq(rc, 0);
    snprintf(path, sizeof path, "%s/d", g_dir);
    latest = ckpt_latest(path);
    cr_assert(latest && strstr(latest, "step-00000003"), "checkpoint after the signal: %s", latest ? latest : "(none)");
    free(latest);
    cr_assert_eq(sh("%s -np 2 %s train %s/d.json --resume >%s/d2.err 2>&1", g_mpirun, p, g_dir, g_dir), 0);
    RunLog d = read_log("d");
    cr_assert_eq(d.n, 6);
    for (int i = 0; i < 6; i++) cr_assert(a.loss[i] == d.loss[i], "step %d: %.17g vs %.17g", i + 1, a.loss[i], d.loss[i]);
    // Resuming on another number of ranks is refused with the way out.
    write_config("c.json", "b", ",\"zero\":1,\"steps\":8");
    cr_assert_neq(sh("OMP_NUM_THREADS=1 %s train %s/c.json --resume 2>%s/c.err", p, g_dir, g_dir), 0);
    snprintf(path, sizeof path, "%s/c.err", g_dir);
    char *err = paw_read_file(path, NULL);
    cr_assert(err && strstr(err, "paw ckpt reshard"), "%s", err ? err : "");
    free(err);
    sh("rm -rf %s", g_dir);
}

static char *read_err(const char *name);
static char *run_failing(const char *vars, const char *name, double limit);

Test(mpi_train, resharding_2_to_1_to_2_ranks_continues_the_same_run, .timeout = 240) {
    NEED_MPI();
    make_world(g_dir);
    const char *p = paw_bin();
    write_config("full.json", "full", ",\"zero\":1");
    write_config("r2.json", "r2", ",\"zero\":1");
    write_config("r1.json", "r1", ",\"grad_accum\":2");
    write_config("r2b.json", "r2b", ",\"zero\":1");
    cr_assert_eq(sh("%s -np 2 %s train %s/full.json >%s/full.err 2>&1", g_mpirun, p, g_dir, g_dir), 0);
    // Steps 1-2 on 2 ranks (stopped at step 3), 3-4 on 1 rank (stopped at step 5), 5-6 on 2 ranks.
    cr_assert_neq(sh("PAW_TEST_KILL_STEP=3 %s -x PAW_TEST_KILL_STEP -np 2 %s train %s/r2.json >%s/r2.err 2>&1", g_mpirun,
                     p, g_dir, g_dir), 0);
    cr_assert_eq(sh("%s ckpt reshard %s/r2/checkpoints/step-00000002 %s/r1/checkpoints/step-00000002 --world-size 1 "
                    "--zero 0 >/dev/null", p, g_dir, g_dir), 0);
    cr_assert_eq(sh("PAW_TEST_KILL_STEP=5 OMP_NUM_THREADS=1 %s train %s/r1.json --resume 2>%s/r1.err", p, g_dir, g_dir),
                 128 + 9);
    cr_assert_eq(sh("%s ckpt reshard %s/r1/checkpoints/step-00000004 %s/r2b/checkpoints/step-00000004 --world-size 2 "
                    "--zero 1 >/dev/null", p, g_dir, g_dir), 0);
    cr_assert_eq(sh("%s -np 2 %s train %s/r2b.json --resume >%s/r2b.err 2>&1", g_mpirun, p, g_dir, g_dir), 0);
    RunLog full = read_log("full"), a = read_log("r2"), b = read_log("r1"), c = read_log("r2b");
    cr_assert_eq(a.n, 2);
    cr_assert_eq(b.n, 4);
    cr_assert_eq(c.n, 6);
    double got[6] = {a.loss[0], a.loss[1], b.loss[2], b.loss[3], c.loss[4], c.loss[5]};
    for (int i = 0; i < 6; i++)  // same tolerance argument as assert_close_runs
        cr_assert(fabs(got[i] - full.loss[i]) <= 1e-5 * fabs(full.loss[i]), "step %d: %.9g resharded vs %.9g", i + 1,
                  got[i], full.loss[i]);
    double d = params_diff("full", "r2b", 6);
    cr_assert(d <= 1e-4, "final parameters differ by %g", d);
    // A position that the new world size cannot express is refused (step 1 of 1 rank -> 2 ranks).
    write_config("odd.json", "odd", ",\"save_every\":1,\"steps\":1,\"warmup_steps\":0");
    cr_assert_eq(sh("OMP_NUM_THREADS=1 %s train %s/odd.json 2>/dev/null", p, g_dir), 0);
    cr_assert_eq(sh("%s ckpt reshard %s/odd/checkpoints/step-00000001 %s/odd2 --world-size 2 2>/dev/null", p, g_dir, g_dir), 1);
    // A world size that is not an integer of sane size is refused before any arithmetic on it.
    char sp[512];
    snprintf(sp, sizeof sp, "%s/odd/checkpoints/step-00000001/state.json", g_dir);
    char *state = paw_read_file(sp, NULL);
    cr_assert_not_null(state);
    const double bad_worlds[] = {1e300, 2.5};
    for (int i = 0; i < 2; i++) {
        write_json_with_number(sp, state, "world_size", bad_worlds[i]);
        cr_assert_eq(sh("%s ckpt reshard %s/odd/checkpoints/step-00000001 %s/odd3 --world-size 1 2>%s/odd3.err", p, g_dir,
                        g_dir, g_dir), 1);
        char *err = read_err("odd3.err");
        cr_assert(err && strstr(err, "malformed world_size"), "%g: %s", bad_worlds[i], err ? err : "");
        free(err);
    }
    free(state);
    sh("rm -rf %s", g_dir);
}


// Pre-training of the tiny interpreter (tied embeddings, every weight trained).
static void write_pretrain_config(const char *name, const char *out, const char *extra) {
    char path[256], text[2048];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    snprintf(text, sizeof text,
             "{\"mode\":\"pretrain\",\"interpreter\":\"%s/interp\",\"train_data\":\"%s/train\",\"out_dir\":\"%s/%s\","
             "\"steps\":6,\"batch_tokens\":4096,\"max_batch_examples\":4,\"lr\":0.003,\"warmup_steps\":2,"
             "\"save_every\":2,\"keep_last\":5,\"eval_every\":0,\"seed\":3}",
             g_dir, g_dir, g_dir, out);
    cr_assert_eq(write_json_merged(path, text, extra), 0);
}

// The run's bucket count (start event) and, per step, the buckets started during the backward.
static int read_overlap(const char *run, int started[6]) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s/log.jsonl", g_dir, run);
    char *text = paw_read_file(path, NULL);
    cr_assert_not_null(text, "%s", paw_last_error());
    int buckets = -1;
    for (int i = 0; i < 6; i++) started[i] = -1;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *o = cJSON_Parse(line);
        const cJSON *b = cJSON_GetObjectItem(o, "overlap_buckets"), *s = cJSON_GetObjectItem(o, "step");
        const cJSON *k = cJSON_GetObjectItem(o, "buckets_overlapped");
        if (cJSON_IsNumber(b)) buckets = b->valueint;
        if (cJSON_IsNumber(k) && cJSON_IsNumber(s) && s->valueint >= 1 && s->valueint <= 6) started[s->valueint - 1] = k->valueint;
        cJSON_Delete(o);
    }
    free(text);
    return buckets;
}

// The overlapped run really started its buckets during the backward; the other did not overlap.
static void assert_overlapped(const char *on, const char *off) {
    int started[6];
    int buckets = read_overlap(on, started);
    cr_assert_geq(buckets, 2, "%s: %d buckets", on, buckets);
    for (int i = 0; i < 6; i++)
        cr_assert_eq(started[i], buckets, "%s step %d: %d of %d buckets started during the backward", on, i + 1,
                     started[i], buckets);
    cr_assert_eq(read_overlap(off, started), 0, "%s overlapped", off);
}

// The gradient reduction overlapped with the backward (the default) against the reduction after
// it ("overlap_comm": false): the same sums of the same gradients, only cut into buckets and
// started earlier, so the runs agree within the float tolerance of assert_close_runs (2 ranks add
// two values either way). Covered: grad_accum 2 (only the last micro-batch's backward may start
// buckets), ZeRO-1 (pieces reduced to their shard owners, in small rounds), a frozen compiler
// (prefix + mapper only) and pre-training (one whole tied model).
Test(mpi_train, overlapped_reduction_matches_the_reduction_after_the_backward, .timeout = 300) {
    NEED_MPI();
    make_world(g_dir);
    const char *p = paw_bin();
    write_config("off.json", "off", ",\"grad_accum\":2,\"overlap_comm\":false");
    write_config("on.json", "on", ",\"grad_accum\":2");
    write_config("zoff.json", "zoff", ",\"grad_accum\":2,\"zero\":1,\"overlap_comm\":false");
    write_config("zon.json", "zon", ",\"grad_accum\":2,\"zero\":1,\"overlap_comm\":true");
    write_config("foff.json", "foff", ",\"freeze_compiler\":true,\"overlap_comm\":false");
    write_config("fon.json", "fon", ",\"freeze_compiler\":true");
    write_pretrain_config("poff.json", "poff", ",\"grad_accum\":2,\"zero\":1,\"overlap_comm\":false");
    write_pretrain_config("pon.json", "pon", ",\"grad_accum\":2,\"zero\":1");
    const char *runs[] = {"off", "on", "zoff", "zon", "foff", "fon", "poff", "pon"};
    for (int i = 0; i < 8; i++)
        cr_assert_eq(sh("PAW_COMM_CHUNK=1000 %s -x PAW_COMM_CHUNK -np 2 %s train %s/%s.json >%s/%s.err 2>&1", g_mpirun, p,
                        g_dir, runs[i], g_dir, runs[i]), 0, "run %s failed", runs[i]);
    for (int i = 0; i < 8; i += 2) {
        assert_close_runs(runs[i], runs[i + 1]);
        assert_overlapped(runs[i + 1], runs[i]);
    }
    sh("rm -rf %s", g_dir);
}

// A rank that dies or hangs in the middle of the overlapped reduction (its backward stops at
// layer 0, after it started the buckets before that layer) still ends the job in bounded time,
// and the hung rank is named by the watchdog of the other rank's wait for the buckets.
Test(mpi_train, a_rank_lost_during_the_overlapped_reduction_ends_the_job_naming_it, .timeout = 240) {
    NEED_MPI();
    make_world(g_dir);
    write_config("k.json", "k", ",\"comm_timeout_s\":3,\"grad_accum\":2");
    char *err = run_failing("PAW_TEST_FAIL_IN_BACKWARD=1 PAW_TEST_KILL_RANK=1 PAW_TEST_KILL_STEP=3", "k", 60);
    cr_assert(strstr(err, "rank 1"), "the dead rank is not named:\n%s", err);
    free(err);
    RunLog k = read_log("k");
    cr_assert_eq(k.n, 2, "%d steps logged before the failure at step 3", k.n);

    write_config("h.json", "h", ",\"comm_timeout_s\":3,\"zero\":1");
    err = run_failing("PAW_TEST_FAIL_IN_BACKWARD=1 PAW_TEST_KILL_RANK=1 PAW_TEST_HANG_STEP=3", "h", 3 + 30);
    cr_assert(strstr(err, "rank(s) 1 did not reach") && strstr(err, "overlapped"),
              "the hung rank or the overlapped reduction is not named:\n%s", err);
    free(err);
    sh("rm -rf %s", g_dir);
}

static char *read_err(const char *name) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    char *e = paw_read_file(path, NULL);
    cr_assert_not_null(e);
    return e;
}

// Runs NAME.json on 2 ranks with the fault-injection variables VARS ("A=1 B=3", exported to both
// ranks), checks that the job failed within `limit` seconds, and returns its stderr.
static char *run_failing(const char *vars, const char *name, double limit) {
    char exports[512] = "", copy[256];
    snprintf(copy, sizeof copy, "%s", vars);
    for (char *t = strtok(copy, " "); t; t = strtok(NULL, " ")) {
        char *eq = strchr(t, '=');
        if (eq) *eq = '\0';
        snprintf(exports + strlen(exports), sizeof exports - strlen(exports), " -x %s", t);
    }
    double t0 = paw_now();
    int rc = sh("%s %s%s -np 2 %s train %s/%s.json >%s/%s.err 2>&1", vars, g_mpirun, exports, paw_bin(), g_dir, name,
                g_dir, name);
    double dt = paw_now() - t0;
    char file[64];
    snprintf(file, sizeof file, "%s.err", name);
    char *err = read_err(file);
    cr_assert_neq(rc, 0, "%s", err);
    cr_assert(dt < limit, "took %.0f s (limit %.0f s)", dt, limit);
    return err;
}

Test(mpi_train, a_killed_or_hung_rank_ends_the_job_in_bounded_time_naming_it, .timeout = 240) {
    NEED_MPI();
    make_world(g_dir);
    write_config("k.json", "k", ",\"comm_timeout_s\":3");
    char *err = run_failing("PAW_TEST_KILL_RANK=1 PAW_TEST_KILL_STEP=3", "k", 60);
    // The fault injection prints nothing: the rank is named by the launcher or the watchdog.
    cr_assert(strstr(err, "rank 1"), "the dead rank is not named:\n%s", err);
    free(err);

    write_config("h.json", "h", ",\"comm_timeout_s\":3");
    err = run_failing("PAW_TEST_KILL_RANK=1 PAW_TEST_HANG_STEP=3", "h", 3 + 30);
    cr_assert(strstr(err, "rank(s) 1 did not reach"), "the hung rank is not named:\n%s", err);
    free(err);
    sh("rm -rf %s", g_dir);
}

Test(mpi_train, ranks_with_different_configurations_are_refused_at_start, .timeout = 240) {
    NEED_MPI();
    make_world(g_dir);
    const char *p = paw_bin();
    write_config("a.json", "m", "");
    write_config("b.json", "m", ",\"lr\":0.002");
    int rc = sh("%s -np 1 %s train %s/a.json : -np 1 %s train %s/b.json >%s/m.err 2>&1", g_mpirun, p, g_dir, p, g_dir, g_dir);
    char *err = read_err("m.err");
    cr_assert_eq(rc, 2, "%s", err);
    cr_assert(strstr(err, "rank 1's configuration or data differ"), "%s", err);
    free(err);
    char path[256];
    snprintf(path, sizeof path, "%s/m/checkpoints", g_dir);
    cr_assert(!paw_file_exists(path), "a refused run wrote checkpoints");
    // The same with --zero given to one rank only.
    rc = sh("%s -np 1 %s train %s/a.json : -np 1 %s train %s/a.json --zero 1 >%s/z.err 2>&1", g_mpirun, p, g_dir, p, g_dir,
            g_dir);
    cr_assert_eq(rc, 2);
    sh("rm -rf %s", g_dir);
}

// Device "cuda" under mpirun: the combinations the GPU path does not support are refused at
// start, on every rank, naming the key (before any GPU is touched, so this runs anywhere).
Test(mpi_train, unsupported_gpu_combinations_are_refused_at_start, .timeout = 240) {
    NEED_MPI();
    make_world(g_dir);
    const char *p = paw_bin();
    struct {
        const char *extra, *needle;
    } cases[] = {
        {",\"device\":\"cuda\",\"gpu_comm\":\"mpi\",\"bf16_grads\":true", "bf16"},
#ifndef PAW_NCCL
        {",\"device\":\"cuda\",\"zero\":1", "make NCCL=1"},  // "gpu_comm" is "nccl" by default
#endif
    };
    for (int i = 0; i < (int)(sizeof cases / sizeof cases[0]); i++) {
        char name[32], err_name[32];
        snprintf(name, sizeof name, "g%d.json", i);
        snprintf(err_name, sizeof err_name, "g%d.err", i);
        write_config(name, "g", cases[i].extra);
        int rc = sh("%s -np 2 %s train %s/%s >%s/%s 2>&1", g_mpirun, p, g_dir, name, g_dir, err_name);
        char *err = read_err(err_name);
        cr_assert(rc != 0, "case %d accepted", i);
        // A build without CUDA refuses every "cuda" run first, for that reason.
        int cpu_only = strstr(err, "this build has no CUDA") != NULL;
        cr_assert(cpu_only || (strstr(err, cases[i].needle) && strstr(err, "cuda")), "case %d: %s", i, err);
        free(err);
    }
    sh("rm -rf %s", g_dir);
}

// Every collective of the communicator, run by `paw bench comm` on 2 and 3 ranks with odd sizes
// (unequal blocks) and 1000-element rounds: every element of every result is checked on every
// rank against exact integer sums and copies (the bench exits 1 on any difference).
Test(mpi_comm, every_collective_gives_exact_results_on_2_and_3_ranks, .timeout = 120) {
    NEED_MPI();
    const char *p = paw_bin();
    for (int np = 2; np <= 3; np++) {
        char out[64];
        snprintf(out, sizeof out, "/tmp/paw_bench_comm_%d.out", (int)getpid());
        int rc = sh("PAW_COMM_CHUNK=1000 %s -x PAW_COMM_CHUNK -np %d %s bench comm --mib 0.05 --iters 1 >%s 2>&1",
                    g_mpirun, np, p, out);
        char *text = paw_read_file(out, NULL);
        cr_assert_eq(rc, 0, "%d ranks: %s", np, text ? text : "(no output)");
        cr_assert(text && strstr(text, "all correct") && strstr(text, "reduce to block owners") &&
                      strstr(text, "broadcast from block owners"),
                  "%s", text ? text : "");
        free(text);
        unlink(out);
    }
    cr_assert_eq(sh("%s bench comm --mib 0.01 --iters 1 >/dev/null 2>&1", p), 0, "one process");
}
