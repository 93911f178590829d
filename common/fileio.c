#include "common/fileio.h"

#include <errno.h>
#include <ftw.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"

char *paw_read_file(const char *path, size_t *size_out) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        paw_error("%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (n + 1 >= cap) buf = xrealloc(buf, cap *= 2);
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        paw_error("%s: read error", path);
        return NULL;
    }
    buf[n] = 0;
    if (size_out) *size_out = n;
    return buf;
}

int paw_map_file(const char *path, PawMap *map) {
    map->data = NULL;
    map->size = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return paw_error("%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return paw_error("%s: cannot stat: %s", path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return paw_error("%s: not a regular file", path);
    }
    if (st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            return paw_error("%s: mmap failed: %s", path, strerror(errno));
        }
        map->data = p;
        map->size = (size_t)st.st_size;
    }
    close(fd);
    return 0;
}

void paw_unmap(PawMap *map) {
    if (map->data) munmap((void *)map->data, map->size);
    map->data = NULL;
    map->size = 0;
}

int paw_fsync_dir(const char *path) {
    char *copy = xstrdup(path);
    const char *dir = paw_is_dir(path) ? copy : dirname(copy);
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    int rc = 0;
    if (fd < 0 || fsync(fd) != 0) rc = paw_error("%s: cannot fsync directory: %s", dir, strerror(errno));
    if (fd >= 0) close(fd);
    free(copy);
    return rc;
}

int paw_fsync_parent(const char *path) {
    char *copy = xstrdup(path);
    int rc = paw_fsync_dir(dirname(copy));  // dirname's result is a directory: that one is synced
    free(copy);
    return rc;
}

int paw_atomic_open(PawAtomicFile *af, const char *path) {
    memset(af, 0, sizeof *af);
    size_t n = strlen(path) + 32;
    af->path = xstrdup(path);
    af->tmp_path = xmalloc(n);
    snprintf(af->tmp_path, n, "%s.tmp.%ld", path, (long)getpid());
    af->f = fopen(af->tmp_path, "wb");
    if (!af->f) {
        int rc = paw_error("%s: cannot create: %s", af->tmp_path, strerror(errno));
        free(af->path);
        free(af->tmp_path);
        af->path = af->tmp_path = NULL;
        return rc;
    }
    return 0;
}

int paw_atomic_write(PawAtomicFile *af, const void *data, size_t n) {
    if (n && fwrite(data, 1, n, af->f) != n)
        return paw_error("%s: write failed: %s", af->tmp_path, strerror(errno));
    return 0;
}

int paw_atomic_commit(PawAtomicFile *af) {
    int rc = 0;
    if (fflush(af->f) != 0 || fsync(fileno(af->f)) != 0)
        rc = paw_error("%s: flush/fsync failed: %s", af->tmp_path, strerror(errno));
    if (fclose(af->f) != 0 && rc == 0) rc = paw_error("%s: close failed: %s", af->tmp_path, strerror(errno));
    af->f = NULL;
    if (rc == 0 && rename(af->tmp_path, af->path) != 0)
        rc = paw_error("%s: cannot rename to %s: %s", af->tmp_path, af->path, strerror(errno));
    if (rc != 0) unlink(af->tmp_path);
    else rc = paw_fsync_dir(af->path);
    free(af->path);
    free(af->tmp_path);
    af->path = af->tmp_path = NULL;
    return rc;
}

void paw_atomic_abort(PawAtomicFile *af) {
    if (af->f) fclose(af->f);
    if (af->tmp_path) unlink(af->tmp_path);
    free(af->path);
    free(af->tmp_path);
    memset(af, 0, sizeof *af);
}

int paw_write_file_atomic(const char *path, const void *data, size_t n) {
    PawAtomicFile af;
    if (paw_atomic_open(&af, path) != 0) return -1;
    if (paw_atomic_write(&af, data, n) != 0) {
        paw_atomic_abort(&af);
        return -1;
    }
    return paw_atomic_commit(&af);
}

int paw_mkdir_p(const char *path) {
    if (!*path) return paw_error("cannot create a directory with an empty name");
    char *p = xstrdup(path);
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == 0) {
            char c = *s;
            *s = 0;
            if (mkdir(p, 0755) != 0 && errno != EEXIST) {
                int rc = paw_error("%s: cannot create directory: %s", p, strerror(errno));
                free(p);
                return rc;
            }
            *s = c;
            if (c == 0) break;
        }
    }
    free(p);
    if (!paw_is_dir(path)) return paw_error("%s: exists and is not a directory", path);
    return 0;
}

int paw_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int paw_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

char *paw_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = xmalloc(a + b + 2);
    memcpy(p, dir, a);
    size_t k = a;
    if (a && dir[a - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path) != 0 && errno != ENOENT ? -1 : 0;
}

int paw_rm_rf_renamed(const char *path) {
    size_t n = strlen(path) + 10;
    char *gone = xmalloc(n);
    snprintf(gone, n, "%s.removing", path);
    int rc = paw_rm_rf(gone);
    if (rc == 0 && paw_file_exists(path)) {
        if (rename(path, gone) != 0) rc = paw_error("%s: cannot rename to %s: %s", path, gone, strerror(errno));
        if (rc == 0) rc = paw_fsync_parent(path);
        if (rc == 0) rc = paw_rm_rf(gone);
    }
    free(gone);
    return rc;
}

int paw_check_no_nul(const char *path, const char *text, size_t n) {
    const char *nul = memchr(text, 0, n);
    if (!nul) return 0;
    int line = 1;
    for (const char *c = text; c < nul; c++) line += *c == '\n';
    return paw_error("%s:%d: a NUL byte", path, line);
}

int paw_rm_rf(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : paw_error("%s: %s", path, strerror(errno));
    if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0) return paw_error("%s: cannot remove: %s", path, strerror(errno));
    return 0;
}
