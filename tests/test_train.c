// The training loop: configuration refusals, schedule, AdamW, and, through ./paw on tiny models,
// bit-exact resume, crash safety of checkpoints, export, and vocabulary checks.
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fileio.h"
#include "interpreter/runner_cuda.h"
#include "kernels/adamw.h"
#include "model/safetensors.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "tests/testutil.h"
#include "tests/world.h"

Test(train_config, refusals_name_the_key) {
    struct {
        const char *json, *needle;
    } cases[] = {
        {"{\"interpreter\":\"tests\",\"train_data\":\"tests\",\"out_dir\":\"x\",\"mode\":\"pretrain\",\"lrr\":1}", "\"lrr\""},
        {"{\"interpreter\":\"tests\",\"train_data\":\"tests\",\"out_dir\":\"x\",\"mode\":\"pretrain\",\"lr\":\"big\"}", "\"lr\""},
        {"{\"interpreter\":\"tests\",\"train_data\":\"tests\",\"out_dir\":\"x\",\"mode\":\"pretrain\",\"steps\":2.5}", "\"steps\""},
        {"{\"interpreter\":\"/nonexistent\",\"train_data\":\"tests\",\"out_dir\":\"x\",\"mode\":\"pretrain\"}", "\"interpreter\""},
        {"{\"interpreter\":\"tests\",\"train_data\":\"tests\",\"out_dir\":\"x\"}", "\"compiler\""},
        {"{\"interpreter\":\"tests\",\"train_data\":\"tests\",\"out_dir\":\"x\",\"mode\":\"fly\"}", "\"mode\""},
        {"{\"interpreter\":\"tests\",\"train_data\":\"tests\",\"out_dir\":\"x\",\"mode\":\"pretrain\",\"freeze_compiler\":1}", "\"freeze_compiler\""},
        {"{\"interpreter\":\"tests\",\"train_data\":\"tests\",\"out_dir\":\"x\",\"mode\":\"pretrain\",\"beta2\":1.5}", "\"beta2\""},
        {"{\"interpreter\":\"tests\",\"train_data\":\"tests\",\"mode\":\"pretrain\"}", "\"out_dir\""},
        {"{\"interpreter\":\"tests\",\"train_data\":\"tests\",\"out_dir\":\"x\",\"mode\":\"pretrain\",\"overlap_comm\":1}", "\"overlap_comm\""},
        {"{\"interpreter\":\"tests\",\"train_data\":\"tests\",\"out_dir\":\"x\",\"mode\":\"pretrain\",\"gpu_comm\":\"gloo\"}", "\"gpu_comm\""},
        {"{\"interpreter\":\"tests\",\"train_data\":\"tests\",\"out_dir\":\"x\",\"mode\":\"pretrain\",\"device\":\"tpu\"}", "\"device\""},
        {"{\"interpreter\":\"tests\",\"train_data\":\"tests\",\"out_dir\":\"x\",\"mode\":\"pretrain\",\"bf16_grads\":2}", "\"bf16_grads\""},
        {"{\"interpreter\":\"tests\",\"train_data\":\"tests\",\"out_dir\":\"x\",\"mode\":\"pretrain\",\"recompute_keep\":4}", "\"recompute_keep\""},
        {"{\"interpreter\":\"tests\",\"train_data\":\"tests\",\"out_dir\":\"x\",\"mode\":\"pretrain\",\"recompute\":true,\"recompute_keep\":-1}", "\"recompute_keep\""},
        {"{\"interpreter\":\"tests\",\"train_data\":\"tests\",\"out_dir\":\"x\",\"compiler\":\"tests\",\"recompute_keep_interpreter\":2}", "\"recompute_keep_interpreter\""},
        {"{\"interpreter\":\"tests\",\"train_data\":\"tests\",\"out_dir\":\"x\",\"mode\":\"pretrain\",\"recompute\":true,\"recompute_keep_interpreter\":2}", "\"recompute_keep_interpreter\""},
        {"{\"interpreter\":\"tests\",\"train_data\":\"tests\",\"out_dir\":\"x\",\"mode\":\"pretrain\",\"export_dtype\":\"float16\"}", "\"export_dtype\""},
        {"{\"interpreter\":\"tests\",\"train_data\":\"tests\",\"out_dir\":\"x\",\"mode\":\"pretrain\",\"export_dtype\":16}", "\"export_dtype\""},
        {"[1,2]", "malformed"},
        {"{\"interpreter\":\"tests\",\"train_data\":\"tests\",\"out_dir\":\"x\",\"mode\":\"pretrain\"}{\"steps\":5}", "text after"},
        {"{\"interpreter\":\"tests\",\"train_data\":\"tests\",\"out_dir\":\"x\",\"mode\":\"pretrain\",\"lr\":1,\"lr\":2}", "\"lr\" given twice"},
        {"{\"interpreter\":\"tests\",\"train_data\":\"tests\",\"out_dir\":\"\",\"mode\":\"pretrain\"}", "\"out_dir\""},
        {"{\"interpreter\":\"tests\",\"train_data\":\"tests\",\"out_dir\":\"x\",\"mode\":\"pretrain\",\"beta2\":0.99999999}", "\"beta2\""},
        {"{\"interpreter\":\"tests\",\"train_data\":\"tests\",\"out_dir\":\"x\",\"mode\":\"pretrain\",\"eps\":0}", "\"eps\""},
        {"{\"interpreter\":\"tests\",\"train_data\":\"tests\",\"out_dir\":\"x\",\"mode\":\"pretrain\",\"eval_every\":5}", "\"eval_every\""},
        {"{\"interpreter\":\"tests\",\"train_data\":\"tests\",\"val_data\":\"tests\",\"out_dir\":\"x\",\"mode\":\"pretrain\",\"eval_every\":5,\"eval_examples\":0}", "\"eval_examples\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        TrainConfig c;
        cr_assert_eq(train_config_parse(&c, cases[i].json, "run.json"), -1, "case %zu accepted", i);
        cr_assert(strstr(paw_last_error(), cases[i].needle) && strstr(paw_last_error(), "run.json"), "case %zu: %s", i,
                  paw_last_error());
    }
    TrainConfig c;
    cr_assert_eq(train_config_parse(&c, "{\"interpreter\":\"tests\",\"train_data\":\"tests\",\"out_dir\":\"x\",\"mode\":\"pretrain\",\"lr\":0.01}", "ok"), 0,
                 "%s", paw_last_error());
    cr_assert_float_eq(c.lr, 0.01f, 1e-9);
    cr_assert_str_eq(c.export_dtype, "float32");  // the default export is lossless
    train_config_free(&c);
    cr_assert_eq(train_config_parse(&c, "{\"interpreter\":\"tests\",\"train_data\":\"tests\",\"out_dir\":\"x\",\"compiler\":\"tests\",\"recompute\":true,\"recompute_keep\":4,\"recompute_keep_interpreter\":28}", "ok"),
                 0, "%s", paw_last_error());
    cr_assert(c.recompute && c.recompute_keep == 4 && c.recompute_keep_interpreter == 28);
    train_config_free(&c);
}

Test(train_config, learning_rate_schedules) {
    TrainConfig c;
    train_config_defaults(&c);
    c.lr = 1.0f, c.steps = 110, c.warmup_steps = 10, c.min_lr_ratio = 0.1f;
    cr_assert_float_eq(train_lr_at(&c, 0), 0.1f, 1e-6);
    cr_assert_float_eq(train_lr_at(&c, 9), 1.0f, 1e-6);
    cr_assert_float_eq(train_lr_at(&c, 10), 1.0f, 1e-6);
    cr_assert_float_eq(train_lr_at(&c, 109), 0.1f, 1e-6);
    cr_assert_float_eq(train_lr_at(&c, 10 + 99 / 2), 0.1f + 0.45f * (1 + cosf(3.14159265f * 49 / 99)), 1e-5);
    c.schedule = SCHED_STEP, c.step_every = 50, c.step_factor = 0.5f;
    // steps count from the end of the warmup
    cr_assert_float_eq(train_lr_at(&c, 59), 1.0f, 1e-6);
    cr_assert_float_eq(train_lr_at(&c, 60), 0.5f, 1e-6);
    c.step_every = 40;
    cr_assert_float_eq(train_lr_at(&c, 90), 0.25f, 1e-6);
    c.schedule = SCHED_CONSTANT;
    cr_assert_float_eq(train_lr_at(&c, 100), 1.0f, 1e-6);
}

Test(train_optimizer, adamw_matches_the_update_rule) {
    float p[3] = {1.0f, -2.0f, 0.5f}, g[3] = {0.1f, -0.3f, 0.0f}, m[3] = {0}, v[3] = {0};
    AdamWParams hp = {0.01f, 0.9f, 0.999f, 1e-8f, 0.1f};
    double pd[3] = {1.0, -2.0, 0.5}, md[3] = {0}, vd[3] = {0};
    for (int t = 1; t <= 3; t++) {
        adamw_update(p, g, m, v, 3, &hp, t, 0.5f);
        for (int i = 0; i < 3; i++) {
            double gi = 0.5 * g[i];
            md[i] = 0.9 * md[i] + 0.1 * gi;
            vd[i] = 0.999 * vd[i] + 0.001 * gi * gi;
            double mh = md[i] / (1 - pow(0.9, t)), vh = vd[i] / (1 - pow(0.999, t));
            pd[i] -= 0.01 * (mh / (sqrt(vh) + 1e-8) + 0.1 * pd[i]);
            cr_assert(fabs(p[i] - pd[i]) < 1e-6, "t=%d i=%d: %f vs %f", t, i, p[i], pd[i]);
        }
    }
    float big[200000];
    for (int i = 0; i < 200000; i++) big[i] = (float)(i % 7) - 3.0f;
    double want = 0;
    for (int i = 0; i < 200000; i++) want += (double)big[i] * big[i];
    cr_assert_eq(sum_squares(big, 200000), want);
}

// ---- end to end on tiny models ------------------------------------------------------------------

static char g_dir[64];

static void write_config(const char *name, const char *out, const char *extra) {
    char path[256], text[2048];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    snprintf(text, sizeof text,
             "{\"mode\":\"paw\",\"compiler\":\"%s/comp\",\"interpreter\":\"%s/interp\",\"train_data\":\"%s/train\","
             "\"val_data\":\"%s/val\",\"out_dir\":\"%s/%s\",\"lora_rank\":4,\"lora_alpha\":8,\"mapper_bases\":3,"
             "\"prefix_steps\":4,\"steps\":6,\"batch_tokens\":4096,\"max_batch_examples\":4,\"lr\":0.003,"
             "\"warmup_steps\":2,\"save_every\":3,\"keep_last\":5,\"eval_every\":0,\"seed\":3}",
             g_dir, g_dir, g_dir, g_dir, g_dir, out);
    cr_assert_eq(write_json_merged(path, text, extra), 0);
}

// step -> loss from a run's log (the last line for each step wins, as after a resume).
static int read_losses(const char *run, double *loss, int max) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s/log.jsonl", g_dir, run);
    int n = read_log_losses(path, loss, max);
    cr_assert_geq(n, 0, "%s", paw_last_error());
    return n;
}

// A run that could not write its checkpoint is refused before it trains.
Test(train_checkpoint, free_space_is_checked_before_training) {
    TrainParam ps[2] = {{.n = 1000}, {.n = 24}};
    cr_assert_eq(ckpt_size_estimate(ps, 2), 12ull * 1024 + (1ull << 20));
    cr_assert_eq(ckpt_check_space("/tmp/paw-not-created/run/out", 1), 0, "%s", paw_last_error());
    cr_assert_neq(ckpt_check_space("/tmp/paw-not-created/run/out", 1ull << 62), 0);
    const char *e = paw_last_error();
    cr_assert(strstr(e, "/tmp/paw-not-created/run/out") && strstr(e, "GB free"), "%s", e);
}

static void touch(const char *dir, const char *name) {
    cr_assert_eq(paw_mkdir_p(dir), 0);
    char *p = paw_path_join(dir, name);
    cr_assert_eq(paw_write_file_atomic(p, "x\n", 2), 0);
    free(p);
}

// Pruning keeps the checkpoint just written whatever higher steps are there (an old run's, when
// a resume found none), removes leftovers of interrupted removals, and never leaves a half
// checkpoint that looks complete; a checkpoints path that cannot be listed is an error, not
// "no checkpoint" (a resume would otherwise start over).
Test(train_checkpoint, pruning_keeps_the_new_checkpoint_and_listing_errors_are_errors) {
    char dir[] = "/tmp/paw-prune-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char *cdir = paw_path_join(dir, "checkpoints"), *old = paw_path_join(cdir, "step-00000100");
    char *gone = paw_path_join(cdir, "step-00000050.removing");
    touch(old, "COMPLETE"), touch(gone, "params.safetensors");
    float p[3] = {1, 2, 3}, m[3] = {0}, v[3] = {0};
    TrainParam ps[1] = {{.name = "w", .p = p, .m = m, .v = v, .n = 3, .lo = 0, .hi = 3}};
    cr_assert_eq(ckpt_save(dir, 1, ps, 1, "{}", 2, NULL, 0), 0, "%s", paw_last_error());
    char *latest = NULL;
    cr_assert_eq(ckpt_find_latest(dir, &latest), 0);
    cr_assert(latest && strstr(latest, "step-00000100"), "%s", latest ? latest : "(none)");
    free(latest);
    char *s1 = paw_path_join(cdir, "step-00000001/COMPLETE");
    cr_assert(paw_file_exists(s1) && paw_file_exists(old) && !paw_file_exists(gone), "keep_last 2: both, no leftover");
    cr_assert_eq(ckpt_save(dir, 2, ps, 1, "{}", 1, NULL, 0), 0, "%s", paw_last_error());
    char *s2 = paw_path_join(cdir, "step-00000002/COMPLETE");
    cr_assert(paw_file_exists(s2) && !paw_file_exists(old) && !paw_file_exists(s1), "keep_last 1: only the new one");
    cr_assert_eq(ckpt_remove_all(dir), 0, "%s", paw_last_error());
    char *removing = paw_path_join(dir, "checkpoints.removing");
    cr_assert(!paw_file_exists(cdir) && !paw_file_exists(removing));
    cr_assert_eq(ckpt_find_latest(dir, &latest), 0);
    cr_assert_null(latest);
    cr_assert_eq(paw_write_file_atomic(cdir, "not a directory\n", 16), 0);
    cr_assert_eq(ckpt_find_latest(dir, &latest), -1);
    cr_assert(strstr(paw_last_error(), "cannot list the checkpoints"), "%s", paw_last_error());
    paw_rm_rf(dir);
    free(cdir), free(old), free(gone), free(s1), free(s2), free(removing);
}

Test(train_e2e, resume_is_bit_exact_and_a_killed_save_leaves_the_previous_checkpoint, .timeout = 300) {
    make_world(g_dir);
    const char *p = paw_bin();
    write_config("a.json", "run_a", "");
    cr_assert_eq(sh("%s train %s/a.json 2>%s/a.err", p, g_dir, g_dir), 0);
    double a[6], b[6];
    cr_assert_eq(read_losses("run_a", a, 6), 6);
    // --overwrite starts over: the run's checkpoints, log and export go (a stale export file
    // too), and the same losses come again; with --export-only or --resume it is refused.
    cr_assert_eq(sh("%s train %s/a.json --overwrite --export-only 2>/dev/null", p, g_dir), 2);
    // A new run that fails its setup (no room for max_new_tokens in the context) keeps the old one.
    write_config("a_bad.json", "run_a", ",\"eval_every\":1,\"max_new_tokens\":100000");
    cr_assert_eq(sh("%s train %s/a_bad.json --overwrite 2>%s/a_bad.err", p, g_dir, g_dir), 1);
    {
        char ap[256];
        snprintf(ap, sizeof ap, "%s/run_a", g_dir);
        char *kept = ckpt_latest(ap);
        cr_assert(kept && strstr(kept, "step-00000006"), "the refused --overwrite deleted %s", ap);
        free(kept);
        snprintf(ap, sizeof ap, "%s/a_bad.err", g_dir);
        char *be = paw_read_file(ap, NULL);
        cr_assert(be && strstr(be, "max_new_tokens"), "%s", be ? be : "");
        free(be);
    }
    cr_assert_eq(sh("%s train %s/a.json --overwrite --resume 2>/dev/null", p, g_dir), 2);
    {
        char ex[256];
        snprintf(ex, sizeof ex, "%s/run_a/export", g_dir);
        touch(ex, "stale.txt");
        cr_assert_eq(sh("%s train %s/a.json --overwrite 2>/dev/null", p, g_dir), 0);
        snprintf(ex, sizeof ex, "%s/run_a/export/stale.txt", g_dir);
        cr_assert(!paw_file_exists(ex), "a stale export file outlived --overwrite");
        double a2[12];
        cr_assert_eq(read_losses("run_a", a2, 12), 6, "the log holds the new run only");
        for (int i = 0; i < 6; i++) cr_assert(a2[i] == a[i], "step %d", i + 1);
        // A second export replaces the first in one swap: the same files, no temporary left.
        snprintf(ex, sizeof ex, "%s/run_a/export/model.safetensors", g_dir);
        char *before = paw_read_file(ex, NULL);
        cr_assert_not_null(before);
        cr_assert_eq(sh("%s train %s/a.json --export-only 2>/dev/null", p, g_dir), 0);
        char *after = paw_read_file(ex, NULL);
        cr_assert(after && !memcmp(before, after, 64), "re-exported weights");
        snprintf(ex, sizeof ex, "%s/run_a/export.tmp", g_dir);
        cr_assert(!paw_file_exists(ex), "export.tmp left behind");
        snprintf(ex, sizeof ex, "%s/run_a/export/paw.json", g_dir);
        cr_assert(paw_file_exists(ex));
        free(before), free(after);
    }

    // Interrupted run: killed (SIGKILL) while writing the step-6 checkpoint, then resumed.
    write_config("b.json", "run_b", "");
    int rc = sh("PAW_TEST_KILL_DURING_SAVE=6 %s train %s/b.json 2>/dev/null", p, g_dir);
    cr_assert_eq(rc, 128 + 9, "expected death by SIGKILL, got %d", rc);
    char path[256];
    snprintf(path, sizeof path, "%s/run_b", g_dir);
    char *latest = ckpt_latest(path);
    cr_assert_not_null(latest);
    cr_assert(strstr(latest, "step-00000003"), "%s", latest);
    free(latest);
    // Without --resume, an existing run is not overwritten.
    cr_assert_eq(sh("%s train %s/b.json 2>/dev/null", p, g_dir), 2);
    cr_assert_eq(sh("%s train %s/b.json --resume 2>%s/b.err", p, g_dir, g_dir), 0);
    cr_assert_eq(read_losses("run_b", b, 6), 6);
    // Steps 4-6, logged before the kill, are logged once: the resume dropped the old lines.
    {
        snprintf(path, sizeof path, "%s/run_b/log.jsonl", g_dir);
        char *log = paw_read_file(path, NULL);
        cr_assert_not_null(log);
        int step_lines = 0;
        for (char *l = strstr(log, "\"loss\""); l; l = strstr(l + 1, "\"loss\"")) step_lines++;
        cr_assert_eq(step_lines, 6, "%d step lines for 6 steps:\n%s", step_lines, log);
        free(log);
    }
    for (int i = 0; i < 6; i++) cr_assert(a[i] == b[i], "step %d: %.17g uninterrupted vs %.17g resumed", i + 1, a[i], b[i]);

    // Stopped by a signal (SIGINT, as Ctrl-C sends) after step 2: a checkpoint of step 2, no
    // export, exit 130; resumed, the same losses as the uninterrupted run.
    write_config("c.json", "run_c", "");
    rc = sh("PAW_TEST_SIGNAL_AT_STEP=2 %s train %s/c.json 2>%s/c.err", p, g_dir, g_dir);
    snprintf(path, sizeof path, "%s/c.err", g_dir);
    char *cerr = paw_read_file(path, NULL);
    cr_assert_eq(rc, 130, "exit %d:\n%s", rc, cerr ? cerr : "");
    cr_assert(cerr && strstr(cerr, "stopped by SIGINT at step 2") && strstr(cerr, "--resume"), "%s", cerr);
    free(cerr);
    snprintf(path, sizeof path, "%s/run_c", g_dir);
    latest = ckpt_latest(path);
    cr_assert(latest && strstr(latest, "step-00000002"), "checkpoint after the signal: %s", latest ? latest : "(none)");
    free(latest);
    snprintf(path, sizeof path, "%s/run_c/export", g_dir);
    cr_assert(!paw_file_exists(path), "a stopped run exported %s", path);
    cr_assert_eq(sh("%s train %s/c.json --resume 2>/dev/null", p, g_dir), 0);
    double c6[6];
    cr_assert_eq(read_losses("run_c", c6, 6), 6);
    for (int i = 0; i < 6; i++) cr_assert(a[i] == c6[i], "step %d: %.17g uninterrupted vs %.17g stopped and resumed", i + 1, a[i], c6[i]);
    snprintf(path, sizeof path, "%s/run_b", g_dir);

    // A state.json whose step is not a step count is refused, naming the file.
    latest = ckpt_latest(path);
    cr_assert_not_null(latest);
    char *state_path = paw_path_join(latest, "state.json");
    char *saved = paw_read_file(state_path, NULL);
    cr_assert_not_null(saved);
    const double bad_steps[] = {-3, 1e300, 2.5};
    for (int i = 0; i < 3; i++) {
        write_json_with_number(state_path, saved, "step", bad_steps[i]);
        cr_assert_neq(sh("%s train %s/b.json --resume 2>%s/bad.err", p, g_dir, g_dir), 0, "step %g", bad_steps[i]);
        char errp[256];
        snprintf(errp, sizeof errp, "%s/bad.err", g_dir);
        char *err = paw_read_file(errp, NULL);
        cr_assert(err && strstr(err, "state.json") && strstr(err, "not a step count"), "step %g: %s", bad_steps[i], err);
        free(err);
    }
    cr_assert_eq(paw_write_file_atomic(state_path, saved, strlen(saved)), 0);
    free(saved), free(state_path), free(latest);

    // Export: the compiler as a Hugging Face directory plus the mapper.
    snprintf(path, sizeof path, "%s/run_b/export", g_dir);
    const char *files[] = {"config.json", "model.safetensors", "mapper.safetensors", "paw.json", "vocab_map.safetensors",
                           "tokenizer.json"};
    for (int i = 0; i < 6; i++) {
        char *f = paw_path_join(path, files[i]);
        cr_assert(paw_file_exists(f), "missing %s", f);
        free(f);
    }
    sh("rm -rf %s", g_dir);
}

// A log that cannot be written (a full disk: /dev/full) is reported once, and the run still
// trains, saves its checkpoint and exports.
Test(train_e2e, a_log_that_cannot_be_written_is_reported_once_and_training_goes_on, .timeout = 300) {
    if (access("/dev/full", W_OK) != 0) cr_skip_test("no writable /dev/full on this machine");
    make_world(g_dir);
    const char *p = paw_bin();
    write_config("f.json", "run_f", ",\"steps\":3,\"save_every\":3");
    char path[256];
    snprintf(path, sizeof path, "%s/run_f", g_dir);
    cr_assert_eq(paw_mkdir_p(path), 0, "%s", paw_last_error());
    snprintf(path, sizeof path, "%s/run_f/log.jsonl", g_dir);
    cr_assert_eq(symlink("/dev/full", path), 0);
    int rc = sh("%s train %s/f.json 2>%s/f.err", p, g_dir, g_dir);
    snprintf(path, sizeof path, "%s/f.err", g_dir);
    char *err = paw_read_file(path, NULL);
    cr_assert_not_null(err);
    cr_assert_eq(rc, 0, "exit %d:\n%s", rc, err);
    const char *w = strstr(err, "log.jsonl: cannot write");
    cr_assert(w != NULL, "no warning about the log:\n%s", err);
    cr_assert(strstr(w + strlen("log.jsonl: cannot write"), "cannot write") == NULL,
              "the warning came more than once:\n%s", err);
    free(err);
    snprintf(path, sizeof path, "%s/run_f", g_dir);
    char *latest = ckpt_latest(path);
    cr_assert(latest && strstr(latest, "step-00000003"), "final checkpoint: %s", latest ? latest : "(none)");
    free(latest);
    snprintf(path, sizeof path, "%s/run_f/export/model.safetensors", g_dir);
    cr_assert(paw_file_exists(path), "missing %s", path);
    sh("rm -rf %s", g_dir);
}

// A pre-training run of the world's interpreter into g_dir/NAME with these extra settings (JSON
// members); it must succeed.
static void pretrain_run(const char *name, const char *settings) {
    char path[256], text[1024];
    snprintf(path, sizeof path, "%s/%s.json", g_dir, name);
    snprintf(text, sizeof text,
             "{\"mode\":\"pretrain\",\"interpreter\":\"%s/interp\",\"train_data\":\"%s/train\",\"val_data\":\"%s/val\","
             "\"out_dir\":\"%s/%s\",\"lr\":0.01,\"max_batch_examples\":8,%s}",
             g_dir, g_dir, g_dir, g_dir, name, settings);
    cr_assert_eq(paw_write_file_atomic(path, text, strlen(text)), 0);
    cr_assert_eq(sh("%s train %s 2>%s/%s.err", paw_bin(), path, g_dir, name), 0, "see %s/%s.err", g_dir, name);
}

Test(train_e2e, pretrain_mode_and_mismatched_vocabularies, .timeout = 300) {
    make_world(g_dir);
    const char *p = paw_bin();
    char path[256], text[1024];
    pretrain_run("pre", "\"steps\":8,\"batch_tokens\":8192,\"eval_every\":8,\"eval_examples\":4,\"max_new_tokens\":4");
    double l[8];
    cr_assert_eq(read_losses("pre", l, 8), 8);
    cr_assert(l[7] < l[0], "pre-training loss should fall: %f -> %f", l[0], l[7]);
    snprintf(path, sizeof path, "%s/pre/log.jsonl", g_dir);
    char *log = paw_read_file(path, NULL);
    cr_assert(strstr(log, "\"event\":\"eval\"") && strstr(log, "val_exact_match"));
    // Every step row splits its time: data_s (loading, converting) within step_s, wall_s growing.
    double last_wall = 0;
    int rows = 0;
    for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *o = cJSON_Parse(line);
        const cJSON *st = cJSON_GetObjectItem(o, "step_s"), *d = cJSON_GetObjectItem(o, "data_s");
        const cJSON *w = cJSON_GetObjectItem(o, "wall_s");
        if (cJSON_IsNumber(st)) {
            cr_assert(cJSON_IsNumber(d) && cJSON_IsNumber(w), "%s", line);
            cr_assert(d->valuedouble >= 0 && d->valuedouble <= st->valuedouble, "%s", line);
            cr_assert(w->valuedouble >= last_wall && w->valuedouble >= st->valuedouble * 0.999, "%s", line);
            last_wall = w->valuedouble;
            rows++;
        }
        cJSON_Delete(o);
    }
    cr_assert_eq(rows, 8);
    free(log);
    // Evaluation chunks follow the training budget (batch_tokens 200: every example of this world
    // fits alone, 116-150 tokens, and no two fit together: one example each, every
    // fetched example waits for the next chunk) and still cover every requested example.
    pretrain_run("pre1", "\"steps\":1,\"batch_tokens\":200,\"eval_every\":1,\"eval_examples\":5,\"max_new_tokens\":2");
    snprintf(path, sizeof path, "%s/pre1/log.jsonl", g_dir);
    log = paw_read_file(path, NULL);
    int evals = 0;
    for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *o = cJSON_Parse(line);
        const cJSON *ve = cJSON_GetObjectItem(o, "val_examples");
        if (cJSON_IsNumber(ve)) {
            cr_assert_eq(ve->valueint, 5, "%s", line);
            evals++;
        }
        cJSON_Delete(o);
    }
    cr_assert_eq(evals, 2, "evaluations at steps 0 and 1");
    free(log);
    // A compiler whose trimmed vocabulary differs from the interpreter's is refused up front.
    cr_assert_eq(sh("%s init --shape tests/fixtures/train/comp-shape.json --out %s/comp2 --vocab-from %s/val >/dev/null 2>&1",
                    p, g_dir, g_dir), 0);
    snprintf(path, sizeof path, "%s/bad.json", g_dir);
    snprintf(text, sizeof text,
             "{\"compiler\":\"%s/comp2\",\"interpreter\":\"%s/interp\",\"train_data\":\"%s/train\",\"out_dir\":\"%s/bad\"}",
             g_dir, g_dir, g_dir, g_dir);
    cr_assert_eq(paw_write_file_atomic(path, text, strlen(text)), 0);
    cr_assert_eq(sh("%s train %s 2>%s/bad.err", p, path, g_dir), 1);
    snprintf(path, sizeof path, "%s/bad.err", g_dir);
    char *err = paw_read_file(path, NULL);
    cr_assert(strstr(err, "vocabulary") || strstr(err, "vocab_size"), "%s", err);
    free(err);
    sh("rm -rf %s", g_dir);
}

// `paw grad` through the command line against finite differences of its own loss: one
// coefficient bias of a trained mapper, moved by +-h through "mapper_init".
static void write_grad_config(const char *name, const char *mapper) {
    char path[256], text[2048];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    snprintf(text, sizeof text,
             "{\"compiler\":\"%s/comp\",\"interpreter\":\"%s/interp\",\"train_data\":\"%s/train\",\"out_dir\":\"%s/g\","
             "\"lora_rank\":4,\"lora_alpha\":8,\"mapper_bases\":3,\"prefix_steps\":4,\"max_batch_examples\":4,"
             "\"batch_tokens\":4096,\"seed\":3,\"mapper_init\":\"%s\"}",
             g_dir, g_dir, g_dir, g_dir, mapper);
    cr_assert_eq(paw_write_file_atomic(path, text, strlen(text)), 0);
}

static float grad_file_value(const char *file, const char *tensor, int k) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", g_dir, file);
    SafeTensors st;
    cr_assert_eq(st_open(&st, path), 0, "%s", paw_last_error());
    const StTensor *t = st_find(&st, tensor);
    cr_assert_not_null(t, "%s lacks %s", file, tensor);
    float v;
    memcpy(&v, t->data + sizeof(float) * (size_t)k, sizeof v);
    st_close(&st);
    return v;
}

// Copies a mapper file with element k of one tensor moved by delta.
static void shifted_mapper(const char *src, const char *dst, const char *tensor, int k, float delta) {
    SafeTensors st;
    cr_assert_eq(st_open(&st, src), 0);
    StWriteTensor ts[64];
    float *copy = NULL;
    for (int i = 0; i < st.ntensors; i++) {
        const StTensor *t = &st.tensors[i];
        ts[i] = (StWriteTensor){.name = t->name, .dtype = t->dtype, .ndim = t->ndim, .data = t->data};
        memcpy(ts[i].shape, t->shape, sizeof ts[i].shape);
        if (!strcmp(t->name, tensor)) {
            copy = xmalloc(t->nbytes);
            memcpy(copy, t->data, t->nbytes);
            copy[k] += delta;
            ts[i].data = copy;
        }
    }
    cr_assert_not_null(copy);
    cr_assert_eq(st_write(dst, ts, st.ntensors, NULL, 0), 0);
    free(copy);
    st_close(&st);
}

Test(train_e2e, paw_grad_matches_finite_differences_through_the_cli, .timeout = 300) {
    make_world(g_dir);
    const char *p = paw_bin();
    write_config("a.json", "run_a", ",\"steps\":4,\"lr\":0.01");
    cr_assert_eq(sh("%s train %s/a.json 2>/dev/null", p, g_dir), 0);
    char m0[256], mp[256], mm[256];
    snprintf(m0, sizeof m0, "%s/run_a/export/mapper.safetensors", g_dir);
    snprintf(mp, sizeof mp, "%s/m_plus.safetensors", g_dir);
    snprintf(mm, sizeof mm, "%s/m_minus.safetensors", g_dir);
    write_grad_config("g0.json", m0);
    cr_assert_eq(sh("%s grad %s/g0.json --out %s/g0.safetensors >/dev/null", p, g_dir, g_dir), 0);
    // The file holds the loss and every trainable tensor's gradient.
    char path[256];
    snprintf(path, sizeof path, "%s/g0.safetensors", g_dir);
    SafeTensors st;
    cr_assert_eq(st_open(&st, path), 0);
    const char *need[] = {"loss", "grad.prefix", "grad.mapper.fc1.weight", "grad.mapper.fc2.bias", "grad.mapper.A.q_proj",
                          "grad.mapper.B.down_proj", "grad.compiler.model.embed_tokens.weight",
                          "grad.compiler.model.layers.2.mlp.down_proj.weight", "grad.compiler.model.norm.weight"};
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++) cr_assert_not_null(st_find(&st, need[i]), "missing %s", need[i]);
    // Pick the coefficient bias with the largest gradient.
    const StTensor *gb = st_find(&st, "grad.mapper.fc2.bias");
    int best = 0;
    const float *gv = (const float *)gb->data;
    for (int i = 1; i < gb->numel; i++)
        if (fabsf(gv[i]) > fabsf(gv[best])) best = i;
    float g = gv[best];
    st_close(&st);
    cr_assert(fabsf(g) > 1e-4f, "gradient too small to test: %g", g);
    float h = 1e-2f;
    shifted_mapper(m0, mp, "mapper.fc2.bias", best, h);
    shifted_mapper(m0, mm, "mapper.fc2.bias", best, -h);
    write_grad_config("gp.json", mp);
    write_grad_config("gm.json", mm);
    cr_assert_eq(sh("%s grad %s/gp.json --out %s/gp.safetensors >/dev/null", p, g_dir, g_dir), 0);
    cr_assert_eq(sh("%s grad %s/gm.json --out %s/gm.safetensors >/dev/null", p, g_dir, g_dir), 0);
    double fd = ((double)grad_file_value("gp.safetensors", "loss", 0) - grad_file_value("gm.safetensors", "loss", 0)) / (2 * h);
    // fp32 losses differ by ~1e-6 / 2h of noise; the O(h^2) term is smaller still.
    cr_assert(fabs(fd - g) < 2e-4 + 2e-2 * fabs(g), "finite difference %g vs paw grad %g", fd, g);
    sh("rm -rf %s", g_dir);
}

// Device "cuda": on a machine with a usable GPU the tiny run trains there (tests/gpu compares the
// GPU step with the reference); without one, paw train and paw grad stop with a message that
// names CUDA, before any checkpoint or gradient file is written.
Test(train_e2e, device_cuda_trains_on_a_gpu_or_is_refused_clearly, .timeout = 300) {
    make_world(g_dir);
    const char *p = paw_bin();
    write_config("c.json", "run_c", ",\"device\":\"cuda\",\"steps\":3,\"save_every\":0");
    int rc = sh("%s train %s/c.json 2>%s/c.err", p, g_dir, g_dir);
    char path[256];
    snprintf(path, sizeof path, "%s/c.err", g_dir);
    char *err = paw_read_file(path, NULL);
    cr_assert_not_null(err);
    snprintf(path, sizeof path, "%s/run_c", g_dir);
    char *latest = ckpt_latest(path);
    if (paw_gpu_available() != 0) {
        cr_assert(rc == 1 || rc == 2, "device cuda without a GPU: exit %d\n%s", rc, err);
        cr_assert(strstr(err, "CUDA") != NULL, "unclear refusal: %s", err);
        cr_assert_null(latest, "a refused run wrote %s", latest);
        cr_assert_neq(sh("%s grad %s/c.json --out %s/g.safetensors 2>/dev/null >/dev/null", p, g_dir, g_dir), 0);
        snprintf(path, sizeof path, "%s/g.safetensors", g_dir);
        cr_assert(!paw_file_exists(path), "a refused paw grad wrote %s", path);
    } else {
        cr_assert_eq(rc, 0, "GPU training failed: %s", err);
        double loss[3];
        cr_assert_eq(read_losses("run_c", loss, 3), 3);
        for (int i = 0; i < 3; i++) cr_assert(isfinite(loss[i]) && loss[i] > 0, "step %d loss %g", i + 1, loss[i]);
        cr_assert_not_null(latest, "the final checkpoint is missing");
    }
    free(latest), free(err);
    // Pre-training on the GPU: trains there and the loss falls, or is refused the same way.
    char text[1024];
    snprintf(path, sizeof path, "%s/pre.json", g_dir);
    snprintf(text, sizeof text,
             "{\"mode\":\"pretrain\",\"device\":\"cuda\",\"interpreter\":\"%s/interp\",\"train_data\":\"%s/train\","
             "\"out_dir\":\"%s/pre\",\"steps\":8,\"lr\":0.01,\"max_batch_examples\":8,\"batch_tokens\":8192}",
             g_dir, g_dir, g_dir);
    cr_assert_eq(paw_write_file_atomic(path, text, strlen(text)), 0);
    rc = sh("%s train %s 2>%s/pre.err", p, path, g_dir);
    snprintf(path, sizeof path, "%s/pre.err", g_dir);
    err = paw_read_file(path, NULL);
    cr_assert_not_null(err);
    if (paw_gpu_available() != 0) {
        cr_assert(rc == 1 || rc == 2, "pretrain on cuda without a GPU: exit %d\n%s", rc, err);
        cr_assert(strstr(err, "CUDA") != NULL, "unclear refusal: %s", err);
    } else {
        cr_assert_eq(rc, 0, "GPU pre-training failed: %s", err);
        double l[8];
        cr_assert_eq(read_losses("pre", l, 8), 8);
        cr_assert(l[7] < l[0], "GPU pre-training loss should fall: %f -> %f", l[0], l[7]);
    }
    free(err);
    sh("rm -rf %s", g_dir);
}
