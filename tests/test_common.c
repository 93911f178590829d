#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/args.h"
#include "common/error.h"
#include "common/fileio.h"

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
