#include "common/progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

double paw_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void paw_progress_start_at(PawProgress *p, const char *label, int64_t total, int64_t first) {
    p->label = label;
    p->total = total;
    p->first = first;
    p->t_start = p->t_last = paw_now();
    p->tty = isatty(fileno(stderr));
}

void paw_progress_start(PawProgress *p, const char *label, int64_t total) { paw_progress_start_at(p, label, total, 0); }

static void draw(PawProgress *p, int64_t done, const char *extra, double now) {
    double el = now - p->t_start;
    double frac = p->total > 0 ? (double)done / (double)p->total : 0.0;
    if (frac > 1) frac = 1;
    char bar[21];
    int fill = (int)(frac * 20);
    for (int i = 0; i < 20; i++) bar[i] = i < fill ? '#' : '.';
    bar[20] = 0;
    // The rate of this start's work only: a resumed run's earlier steps took no time here.
    double eta = done > p->first ? el * (double)(p->total - done) / (double)(done - p->first) : 0;
    if (eta < 0) eta = 0;
    fprintf(stderr, "\r\033[K%s [%s] %3.0f%% %lld/%lld %.0fs eta %.0fs%s%s", p->label, bar, 100 * frac,
            (long long)done, (long long)p->total, el, eta, extra ? "  " : "", extra ? extra : "");
    fflush(stderr);
}

void paw_progress_update(PawProgress *p, int64_t done, const char *extra) {
    if (!p->tty) return;
    double now = paw_now();
    if (now - p->t_last < 0.1 && done < p->total) return;
    p->t_last = now;
    draw(p, done, extra, now);
}

void paw_progress_finish(PawProgress *p, int64_t done, const char *extra) {
    if (!p->tty) return;
    draw(p, done, extra, paw_now());
    fputc('\n', stderr);
}
