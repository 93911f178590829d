#include "common/args.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

void paw_print_usage(const PawCommandSpec *spec, int to_stderr) {
    FILE *f = to_stderr ? stderr : stdout;
    fprintf(f, "usage: %s\n", spec->usage);
    if (spec->description) fprintf(f, "\n%s\n", spec->description);
    if (spec->nopts) fprintf(f, "\noptions:\n");
    for (int i = 0; i < spec->nopts; i++) {
        const PawOpt *o = &spec->opts[i];
        char left[96];
        const char *meta = o->type == PAW_OPT_INT ? " N" : o->type == PAW_OPT_FLOAT ? " X" : o->type == PAW_OPT_STR ? " S" : "";
        snprintf(left, sizeof left, "%s%s%s", o->name[1] ? "--" : "-", o->name, meta);
        fprintf(f, "  %-26s %s", left, o->help);
        switch (o->type) {
        case PAW_OPT_INT: fprintf(f, " (default %d)", *(int *)o->ptr); break;
        case PAW_OPT_FLOAT: fprintf(f, " (default %g)", *(float *)o->ptr); break;
        case PAW_OPT_STR:
            if (*(const char **)o->ptr) fprintf(f, " (default %s)", *(const char **)o->ptr);
            break;
        default: break;
        }
        fputc('\n', f);
    }
    fprintf(f, "  %-26s %s\n", "--help", "show this help");
}

static int bad(const PawCommandSpec *spec, const char *fmt, const char *a, const char *b) {
    fprintf(stderr, "paw: ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\n");
    paw_print_usage(spec, 1);
    return -1;
}

static int parse_int(const char *s, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < INT_MIN || v > INT_MAX) return -1;
    *out = (int)v;
    return 0;
}

int paw_parse_args(const PawCommandSpec *spec, int argc, char **argv, char **pos, int *npos) {
    *npos = 0;
    int only_pos = 0;
    for (int i = 0; i < argc; i++) {
        char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == 0) {
            if (*npos >= spec->max_positional) return bad(spec, "unexpected argument '%s'%s", a, "");
            pos[(*npos)++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            paw_print_usage(spec, 0);
            return 1;
        }
        // A one-letter option may be written with one dash ("-o DIR" is "--o DIR").
        int short_form = a[1] != '-' && a[2] == 0;
        if (a[1] != '-' && !short_form) return bad(spec, "unknown option '%s'%s", a, "");
        const char *name = short_form ? a + 1 : a + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const PawOpt *o = NULL;
        for (int k = 0; k < spec->nopts; k++)
            if (strlen(spec->opts[k].name) == nlen && strncmp(spec->opts[k].name, name, nlen) == 0) o = &spec->opts[k];
        if (!o) return bad(spec, "unknown option '%s'%s", a, "");
        if (o->type == PAW_OPT_FLAG) {
            if (eq) return bad(spec, "option '--%s' takes no value%s", o->name, "");
            *(int *)o->ptr = 1;
            continue;
        }
        const char *val = eq ? eq + 1 : NULL;
        if (!val) {
            if (i + 1 >= argc) return bad(spec, "option '--%s' needs a value%s", o->name, "");
            val = argv[++i];
        }
        if (o->type == PAW_OPT_INT) {
            if (parse_int(val, (int *)o->ptr) != 0) return bad(spec, "option '--%s': '%s' is not an integer", o->name, val);
        } else if (o->type == PAW_OPT_FLOAT) {
            char *end;
            errno = 0;
            float v = strtof(val, &end);
            if (errno || end == val || *end) return bad(spec, "option '--%s': '%s' is not a number", o->name, val);
            *(float *)o->ptr = v;
        } else {
            *(const char **)o->ptr = val;
        }
    }
    return 0;
}

int paw_parse_int_list(const char *s, int **out, int *n) {
    int cap = 16, k = 0;
    int *v = xmalloc(sizeof(int) * (size_t)cap);
    const char *p = s;
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (end == p || errno || x < INT_MIN || x > INT_MAX || (*end && *end != ',' && *end != ' ')) {
            free(v);
            return paw_error("bad integer list '%s' at offset %ld", s, (long)(p - s));
        }
        if (k == cap) v = xrealloc(v, sizeof(int) * (size_t)(cap *= 2));
        v[k++] = (int)x;
        p = end;
    }
    if (k == 0) {
        free(v);
        return paw_error("empty integer list '%s'", s);
    }
    *out = v;
    *n = k;
    return 0;
}

static void print_table(FILE *f, const char *usage_line, const char *heading, const PawSubcommand *t, int n) {
    fprintf(f, "%s\n\n%s:\n", usage_line, heading);
    for (int i = 0; i < n; i++) fprintf(f, "  %-12s %s\n", t[i].name, t[i].summary);
}

int paw_dispatch(const char *usage_line, const char *heading, const PawSubcommand *t, int n, int argc, char **argv) {
    if (argc < 1) {
        print_table(stderr, usage_line, heading, t, n);
        return 2;
    }
    if (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h") || !strcmp(argv[0], "help")) {
        print_table(stdout, usage_line, heading, t, n);
        return 0;
    }
    for (int i = 0; i < n; i++)
        if (t[i].fn && !strcmp(argv[0], t[i].name)) return t[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "paw: '%s' is not one of the %s below\n\n", argv[0], heading);
    print_table(stderr, usage_line, heading, t, n);
    return 2;
}
