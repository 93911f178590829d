#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/args.h"
#include "common/error.h"
#include "common/fileio.h"
#include "common/lines.h"

#include <fcntl.h>

Test(args, parses_options_and_positionals) {
    int n = 1, flag = 0;
    float x = 0.5f;
    const char *s = NULL;
    PawOpt opts[] = {{"n", PAW_OPT_INT, &n, "count"}, {"flag", PAW_OPT_FLAG, &flag, "a flag"},
                     {"x", PAW_OPT_FLOAT, &x, "a number"}, {"s", PAW_OPT_STR, &s, "a string"}};
    PawCommandSpec spec = {"paw t", NULL, opts, (int)(sizeof opts / sizeof opts[0]), 2};
    char *argv[] = {"--n", "7", "pos1", "--flag", "--x=2.5", "--s", "hi", "pos2"};
    char *pos[2];
    int npos;
    cr_assert_eq(paw_parse_args(&spec, 8, argv, pos, &npos), 0);
    cr_assert_eq(n, 7);
    cr_assert_eq(flag, 1);
    cr_assert_float_eq(x, 2.5f, 1e-6);
    cr_assert_str_eq(s, "hi");
    cr_assert_eq(npos, 2);
    cr_assert_str_eq(pos[1], "pos2");
}

Test(args, rejects_bad_input) {
    int n = 1;
    PawOpt opts[] = {{"n", PAW_OPT_INT, &n, "count"}};
    PawCommandSpec spec = {"paw t", NULL, opts, (int)(sizeof opts / sizeof opts[0]), 0};
    char *pos[1];
    int npos;
    char *a1[] = {"--n", "seven"};
    cr_assert_eq(paw_parse_args(&spec, 2, a1, pos, &npos), -1);
    char *a2[] = {"--bogus"};
    cr_assert_eq(paw_parse_args(&spec, 1, a2, pos, &npos), -1);
    char *a3[] = {"--n"};
    cr_assert_eq(paw_parse_args(&spec, 1, a3, pos, &npos), -1);
    char *a4[] = {"extra"};
    cr_assert_eq(paw_parse_args(&spec, 1, a4, pos, &npos), -1);
}

Test(args, int_list) {
    int *v, n;
    cr_assert_eq(paw_parse_int_list("1,22, 333", &v, &n), 0);
    cr_assert_eq(n, 3);
    cr_assert_eq(v[2], 333);
    free(v);
    cr_assert_eq(paw_parse_int_list("1,x", &v, &n), -1);
    cr_assert_eq(paw_parse_int_list("", &v, &n), -1);
}

Test(fileio, atomic_write_replaces_and_leaves_no_temporary) {
    char dir[] = "/tmp/paw_test_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char *path = paw_path_join(dir, "f.bin");
    cr_assert_eq(paw_write_file_atomic(path, "old", 3), 0);
    PawAtomicFile af;
    cr_assert_eq(paw_atomic_open(&af, path), 0);
    paw_atomic_write(&af, "half", 4);
    paw_atomic_abort(&af);  // a crashed writer: the old content stays
    size_t n;
    char *s = paw_read_file(path, &n);
    cr_assert_str_eq(s, "old");
    free(s);
    cr_assert_eq(paw_write_file_atomic(path, "new!", 4), 0);
    s = paw_read_file(path, &n);
    cr_assert_eq(n, 4);
    cr_assert_str_eq(s, "new!");
    free(s);
    cr_assert_null(paw_read_file("/nonexistent/x", &n));
    cr_assert(strstr(paw_last_error(), "/nonexistent/x") != NULL);
    unlink(path);
    rmdir(dir);
    free(path);
}

static void write_all(int fd, const char *s) { cr_assert_eq(write(fd, s, strlen(s)), (ssize_t)strlen(s)); }

static void expect_line(PawLines *r, const char *want) {
    char *got = paw_lines_next(r);
    cr_assert(got != NULL, "expected the line \"%s\", got the end", want);
    cr_assert_str_eq(got, want);
    cr_assert_eq(r->last_len, strlen(want), "a line with no NUL: its length");
    free(got);
}

Test(lines, last_len_counts_the_bytes_past_a_nul) {
    int p[2];
    cr_assert_eq(pipe(p), 0);
    cr_assert_eq(write(p[1], "a\0b\r\nc\n", 7), 7);
    close(p[1]);
    PawLines r;
    paw_lines_open(&r, p[0]);
    char *got = paw_lines_next(&r);
    cr_assert(got && !strcmp(got, "a") && r.last_len == 3, "the NUL line: %zu bytes", r.last_len);
    free(got);
    expect_line(&r, "c");
    cr_assert_null(paw_lines_next(&r));
    paw_lines_close(&r);
    close(p[0]);
}

Test(lines, splits_lines_and_keeps_a_last_line_without_newline) {
    int p[2];
    cr_assert_eq(pipe(p), 0);
    write_all(p[1], "ab\r\n\ncd\nef");
    close(p[1]);
    PawLines r;
    paw_lines_open(&r, p[0]);
    expect_line(&r, "ab");
    expect_line(&r, "");
    expect_line(&r, "cd");
    expect_line(&r, "ef");
    cr_assert_null(paw_lines_next(&r));
    cr_assert_null(paw_lines_next(&r));
    cr_assert_eq(r.error, 0);
    paw_lines_close(&r);
    close(p[0]);
}

// ready says whether next would wait: the batching reader of `paw run --device cuda` stops
// taking lines there, so that an interactive user's line runs without a full batch.
Test(lines, ready_only_when_a_line_can_be_had_without_waiting) {
    int p[2];
    cr_assert_eq(pipe(p), 0);
    PawLines r;
    paw_lines_open(&r, p[0]);
    cr_assert_eq(paw_lines_ready(&r), 0, "nothing written yet");
    write_all(p[1], "one\ntwo\n");
    cr_assert_eq(paw_lines_ready(&r), 1, "bytes waiting in the pipe");
    expect_line(&r, "one");
    cr_assert_eq(paw_lines_ready(&r), 1, "a whole line buffered");
    expect_line(&r, "two");
    cr_assert_eq(paw_lines_ready(&r), 0, "all read, writer still open");
    write_all(p[1], "thr");
    cr_assert_eq(paw_lines_ready(&r), 1, "part of a line has arrived");
    write_all(p[1], "ee\n");
    expect_line(&r, "three");
    close(p[1]);
    cr_assert_eq(paw_lines_ready(&r), 1, "the end is there to be read");
    cr_assert_null(paw_lines_next(&r));
    cr_assert_eq(paw_lines_ready(&r), 1);
    paw_lines_close(&r);
    close(p[0]);
}

Test(lines, lines_longer_than_the_buffer) {
    char path[] = "/tmp/paw_lines_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    size_t n = 300000;  // several times the initial 64 KiB buffer
    char *big = malloc(n + 1);
    for (size_t i = 0; i < n; i++) big[i] = (char)('a' + i % 26);
    big[n] = 0;
    write_all(fd, "x\n");
    write_all(fd, big);
    write_all(fd, "\ny\n");
    cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
    PawLines r;
    paw_lines_open(&r, fd);
    expect_line(&r, "x");
    expect_line(&r, big);
    expect_line(&r, "y");
    cr_assert_null(paw_lines_next(&r));
    paw_lines_close(&r);
    close(fd);
    unlink(path);
    free(big);
}

Test(lines, read_error_ends_with_the_reason) {
    int fd = open("/tmp", O_RDONLY | O_DIRECTORY);
    cr_assert(fd >= 0);
    PawLines r;
    paw_lines_open(&r, fd);
    cr_assert_null(paw_lines_next(&r));
    cr_assert_neq(r.error, 0);
    cr_assert(strstr(paw_last_error(), "reading input") != NULL, "%s", paw_last_error());
    paw_lines_close(&r);
    close(fd);
}

Test(alloc, line_and_big_buffers_are_aligned) {
    // Sizes either side of xmalloc_big's huge-page threshold, and odd ones.
    size_t sizes[] = {1, 17, 4096 + 16, (size_t)3 << 20, ((size_t)5 << 20) + 3};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char *a = xmalloc_line(sizes[i]), *b = xmalloc_line(sizes[i]);
        cr_assert_eq((uintptr_t)a % 64, 0, "xmalloc_line(%zu) at %p", sizes[i], (void *)a);
        cr_assert_eq((uintptr_t)b % 64, 0, "xmalloc_line(%zu) at %p", sizes[i], (void *)b);
        a[sizes[i] - 1] = b[sizes[i] - 1] = 1;  // the whole size is usable (ASan checks the bound)
        free(a), free(b);
    }
    char *big = xmalloc_big((size_t)5 << 20);
    cr_assert_eq((uintptr_t)big % ((size_t)2 << 20), 0);
    free(big);
}
