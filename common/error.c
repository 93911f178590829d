#include "common/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>

static _Thread_local char g_msg[2048];

int paw_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_msg, sizeof g_msg, fmt, ap);
    va_end(ap);
    return -1;
}

int paw_error_context(const char *fmt, ...) {
    char prefix[1024], old[sizeof g_msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, g_msg, sizeof old);
    size_t n = strlen(prefix);
    if (n > sizeof g_msg - 3) n = sizeof g_msg - 3;
    memcpy(g_msg, prefix, n);
    memcpy(g_msg + n, ": ", 2);
    size_t rest = sizeof g_msg - n - 3;
    size_t m = strnlen(old, rest);
    memcpy(g_msg + n + 2, old, m);
    g_msg[n + 2 + m] = 0;
    return -1;
}

const char *paw_last_error(void) { return g_msg[0] ? g_msg : "unknown error"; }
void paw_clear_error(void) { g_msg[0] = 0; }

void paw_die(const char *fmt, ...) {
    va_list ap;
    fflush(stdout);
    fputs("paw: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

void *paw_xmalloc(size_t n, const char *file, int line) {
    void *p = malloc(n ? n : 1);
    if (!p) paw_die("out of memory allocating %zu bytes at %s:%d", n, file, line);
    return p;
}

void *paw_xmalloc_big(size_t n, const char *file, int line) {
    const size_t huge = (size_t)2 << 20;
    if (n < 2 * huge) return paw_xmalloc(n, file, line);
    void *p = NULL;
    int e = posix_memalign(&p, huge, (n + huge - 1) / huge * huge);
    if (e != 0) paw_die("out of memory allocating %zu bytes at %s:%d", n, file, line);
#ifdef MADV_HUGEPAGE
    (void)madvise(p, (n + huge - 1) / huge * huge, MADV_HUGEPAGE);  // a hint: 512x fewer page faults on first touch
#endif
    return p;
}

void *paw_xmalloc_line(size_t n, const char *file, int line) {
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 1) != 0) paw_die("out of memory allocating %zu bytes at %s:%d", n, file, line);
    return p;
}

void *paw_xcalloc(size_t n, size_t size, const char *file, int line) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) paw_die("out of memory allocating %zu x %zu bytes at %s:%d", n, size, file, line);
    return p;
}

void *paw_xrealloc(void *q, size_t n, const char *file, int line) {
    void *p = realloc(q, n ? n : 1);
    if (!p) paw_die("out of memory reallocating %zu bytes at %s:%d", n, file, line);
    return p;
}

char *paw_xstrdup(const char *s, const char *file, int line) {
    size_t n = strlen(s) + 1;
    char *p = paw_xmalloc(n, file, line);
    memcpy(p, s, n);
    return p;
}
