// Error reporting for library code: functions return an error code (or NULL) and leave a
// message that says what and where; command-line code prints it. Fatal helpers are for
// conditions nothing can recover from (out of memory).
#ifndef PAW_COMMON_ERROR_H
#define PAW_COMMON_ERROR_H

#include <stddef.h>

#if defined(__GNUC__)
#define PAW_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define PAW_NORETURN __attribute__((noreturn))
#else
#define PAW_PRINTF(a, b)
#define PAW_NORETURN
#endif

// Sets the message of the last error (thread-local). Always returns -1 so that callers can
// write `return paw_error("...")`.
int paw_error(const char *fmt, ...) PAW_PRINTF(1, 2);
// Prefixes the current message with more context ("loading X: " + old message). Returns -1.
int paw_error_context(const char *fmt, ...) PAW_PRINTF(1, 2);
const char *paw_last_error(void);
void paw_clear_error(void);

// Prints "paw: message" to stderr and exits with status 1.
PAW_NORETURN void paw_die(const char *fmt, ...) PAW_PRINTF(1, 2);

// Allocation that never returns NULL: on failure it exits naming the size and the call site.
#define xmalloc(n) paw_xmalloc((n), __FILE__, __LINE__)
#define xcalloc(n, s) paw_xcalloc((n), (s), __FILE__, __LINE__)
#define xrealloc(p, n) paw_xrealloc((p), (n), __FILE__, __LINE__)
#define xstrdup(s) paw_xstrdup((s), __FILE__, __LINE__)
void *paw_xmalloc(size_t n, const char *file, int line);
void *paw_xcalloc(size_t n, size_t size, const char *file, int line);
// For the big buffers (weights, optimizer state): aligned to 2 MiB and marked for transparent huge
// pages, which makes first touch of a multi-GB buffer several times cheaper. Free with free().
#define xmalloc_big(n) paw_xmalloc_big((n), __FILE__, __LINE__)
void *paw_xmalloc_big(size_t n, const char *file, int line);
// Aligned to a 64-byte cache line, for buffers that vector loads stream through (malloc's 16
// bytes let half of the 32-byte loads straddle two lines). Free with free().
#define xmalloc_line(n) paw_xmalloc_line((n), __FILE__, __LINE__)
void *paw_xmalloc_line(size_t n, const char *file, int line);
void *paw_xrealloc(void *p, size_t n, const char *file, int line);
char *paw_xstrdup(const char *s, const char *file, int line);

#endif
