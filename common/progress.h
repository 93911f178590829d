// Progress display for long work: a one-line bar redrawn on stderr when it is a terminal
// (at most ~10 times a second); silent otherwise, so logs stay clean.
#ifndef PAW_COMMON_PROGRESS_H
#define PAW_COMMON_PROGRESS_H

#include <stdint.h>

typedef struct {
    const char *label;
    int64_t total, first;  // first: work already done before the start (a resumed run)
    double t_start, t_last;
    int tty;
} PawProgress;

double paw_now(void);  // monotonic seconds
void paw_progress_start(PawProgress *p, const char *label, int64_t total);
// The same for work that resumes after `first` units: the ETA is measured from this start.
void paw_progress_start_at(PawProgress *p, const char *label, int64_t total, int64_t first);
// extra: a short text appended to the line (may be NULL)
void paw_progress_update(PawProgress *p, int64_t done, const char *extra);
void paw_progress_finish(PawProgress *p, int64_t done, const char *extra);

#endif
