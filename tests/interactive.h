// Running a command as an interactive filter, as a user at a terminal would (shared by the CPU
// and GPU tests of paw run).
#ifndef PAW_TESTS_INTERACTIVE_H
#define PAW_TESTS_INTERACTIVE_H

#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"

// Runs argv as an interactive filter: writes lines[i], then waits (at most timeout_s) for its
// output line before writing the next, as a user at a terminal would. out[i] gets each line
// (malloc'd) or NULL when none came in time. Returns the number of lines answered in time.
static inline int run_interactive(char *const argv[], const char *const *lines, int n, int timeout_s, char **out) {
    int in[2], res[2];
    for (int i = 0; i < n; i++) out[i] = NULL;
    if (pipe(in) != 0) return 0;
    if (pipe(res) != 0) {
        close(in[0]), close(in[1]);
        return 0;
    }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in[0], 0), dup2(res[1], 1);
        close(in[0]), close(in[1]), close(res[0]), close(res[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(in[0]), close(res[1]);
    int answered = 0;
    size_t cap = 1 << 16, len = 0;
    char *buf = xmalloc(cap);
    for (int i = 0; i < n && pid > 0; i++) {
        size_t ll = strlen(lines[i]);
        if (write(in[1], lines[i], ll) != (ssize_t)ll || write(in[1], "\n", 1) != 1) break;
        time_t end = time(NULL) + timeout_s;
        char *nl = NULL;
        while (!(nl = memchr(buf, '\n', len)) && time(NULL) < end) {
            struct pollfd p = {.fd = res[0], .events = POLLIN};
            if (poll(&p, 1, 1000) <= 0) continue;
            if (len == cap) buf = xrealloc(buf, cap *= 2);
            ssize_t k = read(res[0], buf + len, cap - len);
            if (k <= 0) break;
            len += (size_t)k;
        }
        if (!nl) break;  // no answer in time: the rest would wait too
        size_t l = (size_t)(nl - buf);
        out[i] = xmalloc(l + 1);
        memcpy(out[i], buf, l), out[i][l] = 0;
        memmove(buf, nl + 1, len - l - 1), len -= l + 1;
        answered++;
    }
    close(in[1]);
    if (pid > 0) {
        if (answered < n) kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    close(res[0]);
    free(buf);
    return answered;
}

#endif
