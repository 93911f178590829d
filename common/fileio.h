// File helpers: whole-file reads, read-only memory maps, and atomic writes
// (temporary name in the same directory, fsync, rename, fsync of the directory), so that a
// crash never leaves a half-written file under the final name.
#ifndef PAW_COMMON_FILEIO_H
#define PAW_COMMON_FILEIO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

// Reads a whole file into a NUL-terminated buffer (caller frees). NULL + paw_error on failure.
char *paw_read_file(const char *path, size_t *size_out);

typedef struct {
    const uint8_t *data;  // NULL for an empty file
    size_t size;
} PawMap;
int paw_map_file(const char *path, PawMap *map);  // read-only, private mapping
void paw_unmap(PawMap *map);

// Atomic writer: writes go to "<path>.tmp.<pid>"; paw_atomic_commit fsyncs and renames it over
// path; paw_atomic_abort removes the temporary.
typedef struct {
    FILE *f;
    char *path;
    char *tmp_path;
} PawAtomicFile;
int paw_atomic_open(PawAtomicFile *af, const char *path);
int paw_atomic_write(PawAtomicFile *af, const void *data, size_t n);
int paw_atomic_commit(PawAtomicFile *af);
void paw_atomic_abort(PawAtomicFile *af);
// One-call version for a buffer.
int paw_write_file_atomic(const char *path, const void *data, size_t n);

int paw_mkdir_p(const char *path);          // like `mkdir -p`
int paw_fsync_dir(const char *path);        // fsync the directory holding path (or path itself if a dir)
int paw_fsync_parent(const char *path);     // fsync the directory holding path, a directory too (after its rename)
int paw_file_exists(const char *path);
int paw_is_dir(const char *path);
// For a file read as lines (JSONL): 0, or -1 + paw_error "PATH:LINE: a NUL byte" when text[0, n)
// holds one (its lines would end there without a word).
int paw_check_no_nul(const char *path, const char *text, size_t n);
// Removes a file or a directory tree (like `rm -rf`); a missing path is not an error.
int paw_rm_rf(const char *path);
// The same for a directory whose partial removal must not pass for the whole (a checkpoint, an
// export): it is renamed to PATH.removing first (a leftover of an interrupted removal goes too),
// the rename fsynced, then removed. A missing path is not an error.
int paw_rm_rf_renamed(const char *path);
// Joins a directory and a file name into a new string (caller frees).
char *paw_path_join(const char *dir, const char *name);

#endif
