#include "train/checkpoint.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fileio.h"
#include "common/json.h"
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
        ts[i] = (StWriteTensor){.name = names[i], .dtype = ST_F32, .ndim = 1, .shape = {(int64_t)(p->hi - p->lo)},
                                .data = i % 2 ? p->v : p->m};
    }
    const char *meta[] = {"format", "pt"};
    int rc = st_write(path, ts, 2 * np, meta, 1);
    for (int i = 0; i < 2 * np; i++) free(names[i]);
    free(names);
    free(ts);
    return rc;
}

// Fault injection for the crash-safety tests: PAW_TEST_KILL_DURING_SAVE=N kills the process with
// SIGKILL halfway through writing the checkpoint of step N, as `kill -9` would; with
// PAW_TEST_KILL_RANK=R only rank R of a multi-process run dies.
static void maybe_die_here(long step, int rank) {
    const char *e = getenv("PAW_TEST_KILL_DURING_SAVE"), *r = getenv("PAW_TEST_KILL_RANK");
    if (e && atol(e) == step && (!r || atoi(r) == rank)) raise(SIGKILL);
}

static void optimizer_file_name(char *buf, size_t cap, int rank, int world, int zero) {
    if (zero) snprintf(buf, cap, "optimizer-%05d-of-%05d.safetensors", rank, world);
    else snprintf(buf, cap, "optimizer.safetensors");
}

// Every rank's status after a phase of a collective save: 0 when all succeeded, else -1 with an
// error naming the first rank that failed (its own message on that rank).
static int agree(PawComm *comm, int rc, const char *phase) {
    if (!comm || comm->world == 1) return rc;
    int *all = xcalloc((size_t)comm->world, sizeof(int));
    int mine = rc != 0;
    int crc = paw_allgather_bytes(comm, &mine, all, sizeof(int));
    int bad = -1;
    for (int r = 0; crc == 0 && r < comm->world && bad < 0; r++)
        if (all[r]) bad = r;
    free(all);
    if (crc != 0) return -1;
    if (bad < 0) return 0;
    if (mine) return -1;
    return paw_error("rank %d failed while %s", bad, phase);
}

static int is_step_name(const char *name, long *step) {
    if (strncmp(name, "step-", 5) != 0) return 0;
    char *end;
    long s = strtol(name + 5, &end, 10);
    if (end == name + 5 || *end) return 0;
    *step = s;
    return 1;
}

// Keeps the keep_last newest checkpoints, and always keep_step (the one just written: an old run's
// higher steps must not push it out). Leftovers of interrupted removals go too. A failure is
// reported, not fatal: the new checkpoint is complete.
static void prune(const char *dir, int keep_last, long keep_step) {
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "paw train: warning: %s: cannot list old checkpoints to remove: %s\n", dir, strerror(errno));
        return;
    }
    long steps[4096];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        long s;
        size_t len = strlen(e->d_name);
        if (is_step_name(e->d_name, &s) && s != keep_step && n < 4096) steps[n++] = s;
        else if (len > 9 && !strcmp(e->d_name + len - 9, ".removing") && !strncmp(e->d_name, "step-", 5)) {
            char *p = paw_path_join(dir, e->d_name);
            if (paw_rm_rf(p) != 0) fprintf(stderr, "paw train: warning: %s\n", paw_last_error());
            free(p);
        }
    }
    closedir(d);
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (steps[j] < steps[i]) {
                long t = steps[i];
                steps[i] = steps[j];
                steps[j] = t;
            }
    for (int i = 0; i + (keep_last - 1) < n; i++) {  // keep_step is one of the keep_last
        char name[64];
        snprintf(name, sizeof name, "step-%08ld", steps[i]);
        char *p = paw_path_join(dir, name);
        if (paw_rm_rf_renamed(p) != 0) fprintf(stderr, "paw train: warning: %s\n", paw_last_error());
        free(p);
    }
}

int ckpt_remove_all(const char *out_dir) {
    char *cdir = paw_path_join(out_dir, "checkpoints");
    int rc = paw_rm_rf_renamed(cdir);
    free(cdir);
    return rc;
}

unsigned long long ckpt_size_estimate(const TrainParam *ps, int np) {
    unsigned long long n = 0;
    for (int i = 0; i < np; i++) n += ps[i].n;
    return 12 * n + (1ull << 20);  // + headers and state.json
}

int ckpt_check_space(const char *dir, unsigned long long bytes) {
    char *d = xstrdup(dir);
    struct statvfs st;
    while (statvfs(d, &st) != 0) {  // not created yet: ask its parent
        char *slash = strrchr(d, '/');
        if (!slash || slash == d) {
            strcpy(d, slash == d ? "/" : ".");
            if (statvfs(d, &st) != 0) {
                free(d);
                return paw_error("%s: cannot query the file system's free space", dir);
            }
            break;
        }
        *slash = '\0';
    }
    free(d);
    unsigned long long avail = (unsigned long long)st.f_bavail * st.f_frsize;
    if (avail >= bytes) return 0;
    return paw_error("%s: a checkpoint of this run needs about %.1f GB and the file system has %.1f GB free (free "
                     "space, or point out_dir elsewhere)",
                     dir, bytes / 1e9, avail / 1e9);
}

int ckpt_save(const char *out_dir, long step, const TrainParam *ps, int np, const char *state_json, int keep_last,
              PawComm *comm, int zero) {
    int rank = comm ? comm->rank : 0, world = comm ? comm->world : 1;
    char *cdir = paw_path_join(out_dir, "checkpoints");
    char name[64], tmpname[64], optname[64];
    snprintf(name, sizeof name, "step-%08ld", step);
    snprintf(tmpname, sizeof tmpname, "step-%08ld.tmp", step);
    optimizer_file_name(optname, sizeof optname, rank, world, zero);
    char *final = paw_path_join(cdir, name), *tmp = paw_path_join(cdir, tmpname);
    char *pp = paw_path_join(tmp, "params.safetensors"), *op = paw_path_join(tmp, optname);
    char *sp = paw_path_join(tmp, "state.json"), *cp = paw_path_join(tmp, "COMPLETE");
    int rc = 0;
    if (rank == 0) {
        rc = paw_mkdir_p(cdir);
        if (rc == 0) rc = paw_fsync_dir(out_dir);  // "checkpoints" may be new: its entry durable too
        if (rc == 0) rc = paw_rm_rf(tmp);  // a leftover of a crashed save
        if (rc == 0) rc = paw_mkdir_p(tmp);
        if (rc == 0) rc = write_tensors(pp, ps, np, 0);
        if (rc == 0) maybe_die_here(step, rank);
        if (rc == 0 && !zero) rc = write_optimizer(op, ps, np);
    }
    // The other ranks write into the directory rank 0 made.
    rc = agree(comm, rc, "writing the parameters");
    if (rc == 0 && zero) {
        if (rank != 0) maybe_die_here(step, rank);
        rc = write_optimizer(op, ps, np);
        rc = agree(comm, rc, "writing its optimizer shard");
    }
    if (rank == 0 && rc == 0) {
        rc = paw_write_file_atomic(sp, state_json, strlen(state_json));
        if (rc == 0) rc = paw_write_file_atomic(cp, "complete\n", 9);
        if (rc == 0) rc = paw_fsync_dir(tmp);
        if (rc == 0 && paw_file_exists(final)) rc = paw_rm_rf(final);  // re-saving a step after a resume
        if (rc == 0 && rename(tmp, final) != 0) rc = paw_error("%s: cannot rename to %s: %s", tmp, final, strerror(errno));
        if (rc == 0) rc = paw_fsync_dir(cdir);
        if (rc == 0) prune(cdir, keep_last, step);
    }
    rc = agree(comm, rc, "completing the checkpoint");
    if (rc != 0) {
        paw_error_context("saving checkpoint %s", final);
        // A failed write (a full disk, say) leaves no half directory taking the space; the
        // previous checkpoints are untouched.
        if (rank == 0 && paw_file_exists(tmp)) paw_rm_rf(tmp);
    }
    free(cdir), free(final), free(tmp), free(pp), free(op), free(sp), free(cp);
    return rc;
}

char *ckpt_latest(const char *out_dir) {
    char *p = NULL;
    return ckpt_find_latest(out_dir, &p) == 0 ? p : NULL;
}

int ckpt_find_latest(const char *out_dir, char **path) {
    char *cdir = paw_path_join(out_dir, "checkpoints");
    DIR *d = opendir(cdir);
    char *best = NULL;
    long best_step = -1;
    *path = NULL;
    if (!d && errno != ENOENT) {  // not "no checkpoints": a resume must not start over silently
        int rc = paw_error("%s: cannot list the checkpoints: %s", cdir, strerror(errno));
        free(cdir);
        return rc;
    }
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
    *path = best;
    return 0;
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

int ckpt_load(const char *dir, TrainParam *ps, int np, char **state_json, int rank, int world, int zero) {
    char optname[64];
    optimizer_file_name(optname, sizeof optname, rank, world, zero);
    char *pp = paw_path_join(dir, "params.safetensors"), *op = paw_path_join(dir, optname);
    char *sp = paw_path_join(dir, "state.json");
    SafeTensors a, b;
    memset(&b, 0, sizeof b);
    int rc = st_open(&a, pp);
    if (rc == 0) {
        if (!paw_file_exists(op))
            rc = paw_error("%s: no %s: the checkpoint was written with another world size or zero setting; "
                           "convert it with `paw ckpt reshard %s OUT --world-size %d --zero %d`",
                           dir, optname, dir, world, zero);
        else rc = st_open(&b, op);
        if (rc != 0) memset(&b, 0, sizeof b);
        for (int i = 0; i < np && rc == 0; i++) {
            char nm[256];
            size_t len = ps[i].hi - ps[i].lo;
            rc = read_into(&a, ps[i].name, ps[i].p, ps[i].n);
            snprintf(nm, sizeof nm, "%s.m", ps[i].name);
            if (rc == 0) rc = read_into(&b, nm, ps[i].m, len);
            snprintf(nm, sizeof nm, "%s.v", ps[i].name);
            if (rc == 0) rc = read_into(&b, nm, ps[i].v, len);
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

// ---- re-sharding --------------------------------------------------------------------------------

// An integer of at most 1e12 in magnitude, as a number or a decimal string (-1: anything else), so
// that the products below cannot overflow.
static int json_int(const cJSON *o, const char *key, long long dflt, long long *out) {
    const cJSON *it = cJSON_GetObjectItem(o, key);
    if (!it) *out = dflt;
    else if (cJSON_IsNumber(it)) {
        if (!paw_json_is_int_in(it, -1e12, 1e12)) return -1;
        *out = (long long)it->valuedouble;
    } else if (cJSON_IsString(it)) {
        char *end;
        errno = 0;
        long long v = strtoll(it->valuestring, &end, 10);
        if (end == it->valuestring || *end || errno || v < -1000000000000LL || v > 1000000000000LL) return -1;
        *out = v;
    } else return -1;
    return 0;
}

// The new state.json: world size and zero replaced, the data position re-expressed in steps of
// the new world size (the loader's step s of W ranks is global batch s * W).
static char *reshard_state(const char *in_dir, const char *text, int world, int zero) {
    cJSON *o = cJSON_Parse(text);
    long long old_world, lws, step, old_zero;
    if (!o || json_int(o, "world_size", 1, &old_world) || json_int(o, "loader_step", -1, &step) ||
        json_int(o, "zero", 0, &old_zero) || step < 0 || old_world < 1 || old_world > CKPT_MAX_WORLD) {
        cJSON_Delete(o);
        paw_error("%s/state.json: malformed (world_size, loader_step)", in_dir);
        return NULL;
    }
    if (json_int(o, "loader_world_size", old_world, &lws)) lws = old_world;
    if ((step * old_world) % world != 0) {
        cJSON_Delete(o);
        paw_error("%s: the data position (step %lld of %lld ranks = global batch %lld) is not a multiple of %d ranks; "
                  "reshard a checkpoint at another step",
                  in_dir, step, old_world, step * old_world, world);
        return NULL;
    }
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", step * old_world / world);
    cJSON_ReplaceItemInObject(o, "loader_step", cJSON_CreateString(buf));
    cJSON_DeleteItemFromObject(o, "world_size");
    cJSON_DeleteItemFromObject(o, "zero");
    cJSON_DeleteItemFromObject(o, "loader_world_size");
    cJSON_AddNumberToObject(o, "world_size", world);
    cJSON_AddNumberToObject(o, "zero", zero);
    // The saved loader fingerprint was computed for this world size; resume checks it against it.
    cJSON_AddNumberToObject(o, "loader_world_size", (double)lws);
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    (void)old_zero;
    return s;
}

// Fills m[0..n) and v[0..n) of one tensor from the old layout.
static int gather_moments(const char *in_dir, const char *name, size_t n, float *m, float *v, int world, int zero) {
    int rc = 0;
    for (int r = 0; r < (zero ? world : 1) && rc == 0; r++) {
        char fn[64], nm[256];
        optimizer_file_name(fn, sizeof fn, r, world, zero);
        char *path = paw_path_join(in_dir, fn);
        SafeTensors st;
        rc = st_open(&st, path);
        free(path);
        if (rc) break;
        size_t lo = zero ? paw_shard_begin(n, world, r) : 0, hi = zero ? paw_shard_begin(n, world, r + 1) : n;
        snprintf(nm, sizeof nm, "%s.m", name);
        rc = read_into(&st, nm, m + lo, hi - lo);
        snprintf(nm, sizeof nm, "%s.v", name);
        if (rc == 0) rc = read_into(&st, nm, v + lo, hi - lo);
        st_close(&st);
    }
    return rc;
}

int ckpt_reshard(const char *in_dir, const char *out_dir, int world, int zero) {
    if (world < 1 || world > CKPT_MAX_WORLD)
        return paw_error("reshard: world size %d must be 1 to %d", world, CKPT_MAX_WORLD);
    if (paw_file_exists(out_dir)) return paw_error("reshard: %s already exists", out_dir);
    char *cp = paw_path_join(in_dir, "COMPLETE"), *sp = paw_path_join(in_dir, "state.json");
    char *pp = paw_path_join(in_dir, "params.safetensors");
    size_t tlen = strlen(out_dir) + 5;
    char *tmp = xmalloc(tlen);
    snprintf(tmp, tlen, "%s.tmp", out_dir);
    char *state = NULL, *new_state = NULL;
    SafeTensors ps;
    int have_ps = 0, rc = 0, np = 0;
    TrainParam *tp = NULL;
    if (!paw_file_exists(cp)) rc = paw_error("reshard: %s is not a complete checkpoint (no COMPLETE marker)", in_dir);
    if (rc == 0 && !(state = paw_read_file(sp, NULL))) rc = -1;
    long long old_world = 1, old_zero = 0;
    if (rc == 0) {
        cJSON *o = cJSON_Parse(state);
        if (!o || json_int(o, "world_size", 1, &old_world) || json_int(o, "zero", 0, &old_zero) || old_world < 1 ||
            old_world > CKPT_MAX_WORLD)
            rc = paw_error("%s: malformed world_size/zero", sp);
        cJSON_Delete(o);
    }
    if (rc == 0 && !(new_state = reshard_state(in_dir, state, world, zero))) rc = -1;
    if (rc == 0 && (rc = st_open(&ps, pp)) == 0) have_ps = 1;
    if (rc == 0) {
        np = ps.ntensors;
        tp = xcalloc((size_t)np, sizeof *tp);
        for (int i = 0; i < np && rc == 0; i++) {
            const StTensor *t = &ps.tensors[i];
            if (t->dtype != ST_F32 || t->ndim != 1) {
                rc = paw_error("%s: tensor \"%s\" is not a 1-D fp32 tensor", pp, t->name);
                break;
            }
            size_t n = (size_t)t->numel;
            tp[i] = (TrainParam){.name = t->name, .p = (float *)t->data, .n = n, .lo = 0, .hi = n};
            tp[i].m = xmalloc(sizeof(float) * (n ? n : 1));
            tp[i].v = xmalloc(sizeof(float) * (n ? n : 1));
            rc = gather_moments(in_dir, t->name, n, tp[i].m, tp[i].v, (int)old_world, (int)old_zero);
        }
    }
    if (rc == 0) rc = paw_rm_rf(tmp);
    if (rc == 0) rc = paw_mkdir_p(tmp);
    char *tpp = paw_path_join(tmp, "params.safetensors");
    if (rc == 0) rc = write_tensors(tpp, tp, np, 0);
    free(tpp);
    for (int r = 0; r < (zero ? world : 1) && rc == 0; r++) {
        char fn[64];
        optimizer_file_name(fn, sizeof fn, r, world, zero);
        TrainParam *view = xcalloc((size_t)np, sizeof *view);
        for (int i = 0; i < np; i++) {
            view[i] = tp[i];
            view[i].lo = zero ? paw_shard_begin(tp[i].n, world, r) : 0;
            view[i].hi = zero ? paw_shard_begin(tp[i].n, world, r + 1) : tp[i].n;
            view[i].m = tp[i].m + view[i].lo, view[i].v = tp[i].v + view[i].lo;
        }
        char *op = paw_path_join(tmp, fn);
        rc = write_optimizer(op, view, np);
        free(op);
        free(view);
    }
    char *tsp = paw_path_join(tmp, "state.json"), *tcp = paw_path_join(tmp, "COMPLETE");
    if (rc == 0) rc = paw_write_file_atomic(tsp, new_state, strlen(new_state));
    if (rc == 0) rc = paw_write_file_atomic(tcp, "complete\n", 9);
    if (rc == 0) rc = paw_fsync_dir(tmp);
    if (rc == 0 && rename(tmp, out_dir) != 0) rc = paw_error("%s: cannot rename to %s: %s", tmp, out_dir, strerror(errno));
    if (rc == 0) rc = paw_fsync_parent(out_dir);  // the new name, in the directory that holds it
    if (rc != 0 && paw_file_exists(tmp)) {  // no half copy left taking the space
        char *why = xstrdup(paw_last_error());
        paw_rm_rf(tmp);
        paw_error("%s", why);
        free(why);
    }
    free(tsp), free(tcp);
    for (int i = 0; tp && i < np; i++) free(tp[i].m), free(tp[i].v);
    free(tp);
    if (have_ps) st_close(&ps);
    free(cp), free(sp), free(pp), free(tmp), free(state), free(new_state);
    return rc;
}
