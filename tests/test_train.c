// The training loop: configuration refusals, schedule, AdamW, and, through ./paw on tiny models,
// bit-exact resume, crash safety of checkpoints, export, and vocabulary checks.
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fileio.h"
#include "kernels/adamw.h"
#include "train/checkpoint.h"
#include "train/config.h"
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
        {"[1,2]", "malformed"},
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
             "\"warmup_steps\":2,\"save_every\":3,\"keep_last\":5,\"eval_every\":0,\"seed\":3%s}",
             g_dir, g_dir, g_dir, g_dir, g_dir, out, extra);
    cr_assert_eq(paw_write_file_atomic(path, text, strlen(text)), 0);
}

// step -> loss from a log (the last line for each step wins, as after a resume).
static int read_losses(const char *run, double *loss, int max) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s/log.jsonl", g_dir, run);
    char *text = paw_read_file(path, NULL);
    cr_assert_not_null(text, "%s", paw_last_error());
    int n = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *o = cJSON_Parse(line);
        const cJSON *s = cJSON_GetObjectItem(o, "step"), *l = cJSON_GetObjectItem(o, "loss");
        if (cJSON_IsNumber(s) && cJSON_IsNumber(l) && s->valueint >= 1 && s->valueint <= max) {
            loss[s->valueint - 1] = l->valuedouble;
            if (s->valueint > n) n = s->valueint;
        }
        cJSON_Delete(o);
    }
    free(text);
    return n;
}

Test(train_e2e, resume_is_bit_exact_and_a_killed_save_leaves_the_previous_checkpoint, .timeout = 300) {
    make_world(g_dir);
    const char *p = paw_bin();
    write_config("a.json", "run_a", "");
    cr_assert_eq(sh("%s train %s/a.json 2>%s/a.err", p, g_dir, g_dir), 0);
    double a[6], b[6];
    cr_assert_eq(read_losses("run_a", a, 6), 6);

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
    for (int i = 0; i < 6; i++) cr_assert(a[i] == b[i], "step %d: %.17g uninterrupted vs %.17g resumed", i + 1, a[i], b[i]);

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

Test(train_e2e, pretrain_mode_and_mismatched_vocabularies, .timeout = 300) {
    make_world(g_dir);
    const char *p = paw_bin();
    char path[256], text[1024];
    snprintf(path, sizeof path, "%s/pre.json", g_dir);
    snprintf(text, sizeof text,
             "{\"mode\":\"pretrain\",\"interpreter\":\"%s/interp\",\"train_data\":\"%s/train\",\"val_data\":\"%s/val\","
             "\"out_dir\":\"%s/pre\",\"steps\":8,\"lr\":0.01,\"max_batch_examples\":8,\"batch_tokens\":8192,"
             "\"eval_every\":8,\"eval_examples\":4,\"max_new_tokens\":4}",
             g_dir, g_dir, g_dir, g_dir);
    cr_assert_eq(paw_write_file_atomic(path, text, strlen(text)), 0);
    cr_assert_eq(sh("%s train %s 2>%s/pre.err", p, path, g_dir), 0);
    double l[8];
    cr_assert_eq(read_losses("pre", l, 8), 8);
    cr_assert(l[7] < l[0], "pre-training loss should fall: %f -> %f", l[0], l[7]);
    snprintf(path, sizeof path, "%s/pre/log.jsonl", g_dir);
    char *log = paw_read_file(path, NULL);
    cr_assert(strstr(log, "\"event\":\"eval\"") && strstr(log, "val_exact_match"));
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
