#include "common/lines.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"

void paw_lines_open(PawLines *r, int fd) {
    memset(r, 0, sizeof *r);
    r->fd = fd;
    r->cap = 1 << 16;
    r->buf = xmalloc(r->cap);
}

void paw_lines_close(PawLines *r) {
    free(r->buf);
    memset(r, 0, sizeof *r);
    r->fd = -1;
}

// Reads once (waiting for data) into the buffer; sets eof at the end or on an error.
static void fill(PawLines *r) {
    if (r->start > 0) {  // keep the partial line at the front
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start, r->start = 0;
    }
    if (r->end == r->cap) r->buf = xrealloc(r->buf, r->cap *= 2);
    ssize_t n;
    do n = read(r->fd, r->buf + r->end, r->cap - r->end);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        r->error = errno;
        r->eof = 1;
        paw_error("reading input: %s", strerror(errno));
    } else if (n == 0) {
        r->eof = 1;
    } else {
        r->end += (size_t)n;
    }
}

char *paw_lines_next(PawLines *r) {
    for (;;) {
        char *nl = memchr(r->buf + r->start, '\n', r->end - r->start);
        if (nl || (r->eof && r->end > r->start)) {
            size_t len = nl ? (size_t)(nl - (r->buf + r->start)) : r->end - r->start;
            char *s = xmalloc(len + 1);
            memcpy(s, r->buf + r->start, len);
            r->start += len + (nl != NULL);
            if (len && s[len - 1] == '\r') len--;
            s[len] = 0;
            r->last_len = len;
            return s;
        }
        if (r->eof) return NULL;
        fill(r);
    }
}

int paw_lines_ready(PawLines *r) {
    if (r->eof || memchr(r->buf + r->start, '\n', r->end - r->start)) return 1;
    struct pollfd p = {.fd = r->fd, .events = POLLIN};
    int n;
    do n = poll(&p, 1, 0);
    while (n < 0 && errno == EINTR);
    return n > 0;  // readable, at its end, or in error: read() will not wait
}
