// A tiny world for end-to-end tests through ./paw: synthetic data, token shards, and a
// trimmed-vocabulary tiny interpreter and compiler, in a fresh temporary directory.
#ifndef PAW_TESTS_WORLD_H
#define PAW_TESTS_WORLD_H

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static inline const char *paw_bin(void) {
    const char *b = getenv("PAW_BIN");
    return b ? b : "./paw";
}

// Runs a shell command; returns its exit status (128 + signal when killed).
static inline int sh(const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc);
}

static inline void make_world(char dir[64]) {
    strcpy(dir, "/tmp/paw_world_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    const char *p = paw_bin();
    cr_assert_eq(sh("%s data synth -o %s/jsonl --seed 5 --train 48 --val 8 --test 8 "
                    "--families first_word,parity,sentiment --pseudo-examples 1 >/dev/null 2>&1", p, dir), 0);
    cr_assert_eq(sh("%s data build %s/jsonl/train.jsonl -o %s/train --quiet", p, dir, dir), 0);
    cr_assert_eq(sh("%s data build %s/jsonl/val.jsonl -o %s/val --quiet", p, dir, dir), 0);
    cr_assert_eq(sh("%s data build %s/jsonl/test.jsonl -o %s/test --quiet", p, dir, dir), 0);
    cr_assert_eq(sh("%s init --shape tests/fixtures/train/interp-shape.json --out %s/interp "
                    "--vocab-from %s/jsonl/train.jsonl,%s/jsonl/val.jsonl,%s/jsonl/test.jsonl --seed 1 --std 0.1 >/dev/null 2>&1", p, dir, dir, dir, dir), 0);
    cr_assert_eq(sh("%s init --shape tests/fixtures/train/comp-shape.json --out %s/comp "
                    "--vocab-from %s/jsonl/train.jsonl,%s/jsonl/val.jsonl,%s/jsonl/test.jsonl --seed 2 --std 0.1 >/dev/null 2>&1", p, dir, dir, dir, dir), 0);
}

#endif
