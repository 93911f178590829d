#include "train/checkpoint.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fileio.h"
#include "model/safetensors.h"

static int write_tensors(const char *path, const TrainParam *ps, int np, int which) {
    StWriteTensor *ts = xcalloc((size_t)np, sizeof *ts);
    for (int i = 0; i < np; i++) {
        ts[i].name = ps[i].name;
        ts[i].dtype = ST_F32;
        ts[i].ndim = 1;
        ts[i].shape[0] = (int64_t)ps[i].n;
        ts[i].data = which == 0 ? ps[i].p : which == 1 ? ps[i].m : ps[i].v;
    }
    const char *meta[] = {"format", "pt"};
    int rc = st_write(path, ts, np, meta, 1);
    free(ts);
    return rc;
}

static int write_optimizer(const char *path, const TrainParam *ps, int np) {
    StWriteTensor *ts = xcalloc((size_t)np * 2, sizeof *ts);
    char **names = xcalloc((size_t)np * 2, sizeof(char *));
    for (int i = 0; i < 2 * np; i++) {
        const TrainParam *p = &ps[i / 2];
        size_t len = strlen(p->name) + 4;
        names[i] = xmalloc(len);
        snprintf(names[i], len, "%s.%c", p->name, i % 2 ? 'v' : 'm');
        ts[i] = (StWriteTensor){.name = names[i], .dtype = ST_F32, .ndim = 1, .shape = {(int64_t)p->n},
                                .data = i % 2 ? p->v : p->m};
    }
    const char *meta[] = {"format", "pt"};
    int rc = st_write(path, ts, 2 * np, meta, 1);
    for (int i = 0; i < 2 * np; i++) free(names[i]);
    free(names);
    free(ts);
    return rc;
}

// Fault injection for the crash-safety test: PAW_TEST_KILL_DURING_SAVE=N kills the process with
// SIGKILL halfway through writing the checkpoint of step N, as `kill -9` would.
static void maybe_die_here(long step) {
    const char *e = getenv("PAW_TEST_KILL_DURING_SAVE");
    if (e && atol(e) == step) raise(SIGKILL);
}

static int is_step_name(const char *name, long *step) {
    if (strncmp(name, "step-", 5) != 0) return 0;
    char *end;
    long s = strtol(name + 5, &end, 10);
    if (end == name + 5 || *end) return 0;
    *step = s;
    return 1;
}

static int prune(const char *dir, int keep_last) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    long steps[4096];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 4096) {
        long s;
        if (is_step_name(e->d_name, &s)) steps[n++] = s;
    }
    closedir(d);
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (steps[j] < steps[i]) {
                long t = steps[i];
                steps[i] = steps[j];
                steps[j] = t;
            }
    for (int i = 0; i + keep_last < n; i++) {
        char name[64];
        snprintf(name, sizeof name, "step-%08ld", steps[i]);
        char *p = paw_path_join(dir, name);
        paw_rm_rf(p);
        free(p);
    }
    return 0;
}

int ckpt_save(const char *out_dir, long step, const TrainParam *ps, int np, const char *state_json, int keep_last) {
    char *cdir = paw_path_join(out_dir, "checkpoints");
    char name[64], tmpname[64];
    snprintf(name, sizeof name, "step-%08ld", step);
    snprintf(tmpname, sizeof tmpname, "step-%08ld.tmp", step);
    char *final = paw_path_join(cdir, name), *tmp = paw_path_join(cdir, tmpname);
    char *pp = paw_path_join(tmp, "params.safetensors"), *op = paw_path_join(tmp, "optimizer.safetensors");
    char *sp = paw_path_join(tmp, "state.json"), *cp = paw_path_join(tmp, "COMPLETE");
    int rc = paw_mkdir_p(cdir);
    if (rc == 0) rc = paw_rm_rf(tmp);  // a leftover of a crashed save
    if (rc == 0) rc = paw_mkdir_p(tmp);
    if (rc == 0) rc = write_tensors(pp, ps, np, 0);
    if (rc == 0) maybe_die_here(step);
    if (rc == 0) rc = write_optimizer(op, ps, np);
    if (rc == 0) rc = paw_write_file_atomic(sp, state_json, strlen(state_json));
    if (rc == 0) rc = paw_write_file_atomic(cp, "complete\n", 9);
    if (rc == 0) rc = paw_fsync_dir(tmp);
    if (rc == 0 && paw_file_exists(final)) rc = paw_rm_rf(final);  // re-saving a step after a resume
    if (rc == 0 && rename(tmp, final) != 0) rc = paw_error("%s: cannot rename to %s", tmp, final);
    if (rc == 0) rc = paw_fsync_dir(cdir);
    if (rc == 0) prune(cdir, keep_last);
    if (rc != 0) paw_error_context("saving checkpoint %s", final);
    free(cdir), free(final), free(tmp), free(pp), free(op), free(sp), free(cp);
    return rc;
}

char *ckpt_latest(const char *out_dir) {
    char *cdir = paw_path_join(out_dir, "checkpoints");
    DIR *d = opendir(cdir);
    char *best = NULL;
    long best_step = -1;
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            long s;
            if (!is_step_name(e->d_name, &s) || s <= best_step) continue;
            char *p = paw_path_join(cdir, e->d_name);
            char *c = paw_path_join(p, "COMPLETE");
            if (paw_file_exists(c)) {
                free(best);
                best = p;
                best_step = s;
            } else {
                free(p);
            }
            free(c);
        }
        closedir(d);
    }
    free(cdir);
    return best;
}

static int read_into(const SafeTensors *st, const char *name, float *dst, size_t n) {
    const StTensor *t = st_find(st, name);
    if (!t) return paw_error("%s: missing tensor \"%s\"", st->path, name);
    if (t->dtype != ST_F32 || t->ndim != 1 || (size_t)t->numel != n)
        return paw_error("%s: tensor \"%s\" has %lld elements, this run needs %zu (a different configuration?)",
                         st->path, name, (long long)t->numel, n);
    memcpy(dst, t->data, sizeof(float) * n);
    return 0;
}

int ckpt_load(const char *dir, TrainParam *ps, int np, char **state_json) {
    char *pp = paw_path_join(dir, "params.safetensors"), *op = paw_path_join(dir, "optimizer.safetensors");
    char *sp = paw_path_join(dir, "state.json");
    SafeTensors a, b;
    memset(&b, 0, sizeof b);
    int rc = st_open(&a, pp);
    if (rc == 0) {
        rc = st_open(&b, op);
        if (rc != 0) memset(&b, 0, sizeof b);
        for (int i = 0; i < np && rc == 0; i++) {
            char nm[256];
            rc = read_into(&a, ps[i].name, ps[i].p, ps[i].n);
            snprintf(nm, sizeof nm, "%s.m", ps[i].name);
            if (rc == 0) rc = read_into(&b, nm, ps[i].m, ps[i].n);
            snprintf(nm, sizeof nm, "%s.v", ps[i].name);
            if (rc == 0) rc = read_into(&b, nm, ps[i].v, ps[i].n);
        }
        if (b.path) st_close(&b);
        st_close(&a);
    }
    if (rc == 0) {
        *state_json = paw_read_file(sp, NULL);
        if (!*state_json) rc = -1;
    }
    free(pp), free(op), free(sp);
    return rc;
}
