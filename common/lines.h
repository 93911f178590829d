// Lines from a file descriptor (stdin of a filter), with a way to ask whether the next one can be
// had without waiting: a batching reader takes what has arrived and runs it, instead of waiting
// for a full batch that an interactive user may never type.
#ifndef PAW_COMMON_LINES_H
#define PAW_COMMON_LINES_H

#include <stddef.h>

typedef struct {
    int fd;
    char *buf;
    size_t cap, start, end;  // buffered bytes are buf[start, end)
    int eof;                 // the descriptor reported its end (or an error, kept in error)
    int error;               // errno of a failed read, else 0
    size_t last_len;         // bytes of the last line paw_lines_next returned (a NUL in it: > strlen)
} PawLines;

void paw_lines_open(PawLines *r, int fd);
void paw_lines_close(PawLines *r);  // frees the buffer; the descriptor stays open
// The next line (malloc'd, without its "\n" or "\r\n"); a last line without a newline counts.
// Waits for it. NULL at the end, or after a read error (r->error set, paw_error says which).
char *paw_lines_next(PawLines *r);
// 1 when paw_lines_next will not wait for input: a whole line is buffered, the end was seen, or
// the descriptor has bytes to read now (the rest of that line may still be on its way).
int paw_lines_ready(PawLines *r);

#endif
