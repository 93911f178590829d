// Code and natural-language command families: device and shell commands, arithmetic, identifier
// styles, SQL, boolean and integer expressions.
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/synth_internal.h"

#define W(name) char name[SYNTH_MAXW][SYNTH_WORD]

static const char *const no_details[] = {NULL};

static int has_word(char w[][SYNTH_WORD], int n, const char *x) {
    for (int i = 0; i < n; i++)
        if (!strcmp(w[i], x)) return i + 1;
    return 0;
}
static const char *first_in(char w[][SYNTH_WORD], int n, const char *const *l) {
    for (int i = 0; i < n; i++)
        if (synth_in_list(w[i], l) >= 0) return w[i];
    return NULL;
}
static const char *first_number(char w[][SYNTH_WORD], int n) {
    for (int i = 0; i < n; i++)
        if (synth_is_number(w[i])) return w[i];
    return NULL;
}

// ---- device_command
SYNTH_LIST(ph_dev, "Map the smart-home command to a function call.", "Translate the request into a device API call.",
           "Convert the spoken command into code like light_on(room).", "Turn the instruction into the matching function call.",
           "Which device call does this command correspond to?", "Write the API call that carries out the command.");
SYNTH_LIST(dt_dev, "Calls are light_on, light_off, window_open, window_close and set_temp(room,degrees).");
static void in_dev(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    (void)p, (void)max;
    const char *room = synth_pick(r, synth_rooms);
    switch (synth_rng_below(r, 5)) {
    case 0: synth_buf_addf(b, synth_rng_below(r, 2) ? "turn on the %s light" : "switch the %s light on", room); break;
    case 1: synth_buf_addf(b, synth_rng_below(r, 2) ? "turn off the %s light" : "switch the %s light off", room); break;
    case 2: synth_buf_addf(b, "%s the %s window", synth_rng_below(r, 2) ? "open" : "please open", room); break;
    case 3: synth_buf_addf(b, "%s the %s window", synth_rng_below(r, 2) ? "close" : "shut", room); break;
    default: synth_buf_addf(b, "set the %s heat to %d", room, synth_range(r, 15, 25)); break;
    }
}
static int so_dev(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    W(w);
    int n = synth_split_words(in, w, SYNTH_MAXW);
    const char *room = first_in(w, n, synth_rooms), *num = first_number(w, n);
    if (!room) return -1;
    if (has_word(w, n, "light")) synth_buf_addf(b, "%s(%s)", has_word(w, n, "off") ? "light_off" : "light_on", room);
    else if (has_word(w, n, "window")) synth_buf_addf(b, "%s(%s)", has_word(w, n, "open") ? "window_open" : "window_close", room);
    else if (num) synth_buf_addf(b, "set_temp(%s,%s)", room, num);
    else return -1;
    return 0;
}

// ---- shell_command
SYNTH_LIST(ph_sh, "Translate the request into a shell command.", "Which Unix command does this describe?",
           "Write the bash command for the instruction.", "Convert the English request to a terminal command.",
           "Give the shell one-liner that does what is asked.", "Map the description to a command such as ls, cd or rm.");
SYNTH_LIST(dt_sh, "Use ls, pwd, rm, mkdir, cd, cat and cp.");
SYNTH_LIST(sh_files, "notes.txt", "a.txt", "data.csv", "main.c", "log.txt", "todo.md");
SYNTH_LIST(sh_dirs, "docs", "src", "tmp", "home", "build", "photos");
static void in_sh(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    (void)p, (void)max;
    const char *f = synth_pick(r, sh_files), *d = synth_pick(r, sh_dirs);
    switch (synth_rng_below(r, 7)) {
    case 0: synth_buf_add(b, synth_rng_below(r, 2) ? "list the files" : "list files here"); break;
    case 1: synth_buf_add(b, synth_rng_below(r, 2) ? "show the current folder" : "where am i"); break;
    case 2: synth_buf_addf(b, "%s %s", synth_rng_below(r, 2) ? "delete" : "remove", f); break;
    case 3: synth_buf_addf(b, "%s folder %s", synth_rng_below(r, 2) ? "make" : "create", d); break;
    case 4: synth_buf_addf(b, "%s %s", synth_rng_below(r, 2) ? "go to" : "enter folder", d); break;
    case 5: synth_buf_addf(b, "%s %s", synth_rng_below(r, 2) ? "show file" : "print", f); break;
    default: synth_buf_addf(b, "copy %s to %s", f, d); break;
    }
}
static int so_sh(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    W(w);
    int n = synth_split_words(in, w, SYNTH_MAXW);
    if (n < 1) return -1;
    const char *last = w[n - 1];
    int file_named = strchr(last, '.') != NULL;
    if (!strcmp(w[0], "copy") && n == 4) synth_buf_addf(b, "cp %s %s", w[1], w[3]);
    else if (!strcmp(w[0], "delete") || !strcmp(w[0], "remove")) synth_buf_addf(b, "rm %s", last);
    else if (!strcmp(w[0], "make") || !strcmp(w[0], "create")) synth_buf_addf(b, "mkdir %s", last);
    else if (!strcmp(w[0], "go") || !strcmp(w[0], "enter")) synth_buf_addf(b, "cd %s", last);
    else if (file_named) synth_buf_addf(b, "cat %s", last);
    else if (has_word(w, n, "current") || has_word(w, n, "where")) synth_buf_add(b, "pwd");
    else if (!strcmp(w[0], "list")) synth_buf_add(b, "ls");
    else return -1;
    return 0;
}

// ---- math_words
SYNTH_LIST(ph_math, "Compute the arithmetic described in words.", "Solve the simple math question.", "Evaluate the spoken calculation.",
           "What number does the expression come to?", "Work out the result of the operation in the text.", "Answer the sum, difference or product.");
SYNTH_LIST(dt_math, "Answer with an integer.", "plus adds, minus subtracts, times multiplies.");
static void in_math(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    (void)p, (void)max;
    static const char *const ops[] = {"plus", "minus", "times"};
    int a = synth_range(r, 0, 20), c = synth_range(r, 0, 20);
    const char *op = ops[synth_rng_below(r, 3)];
    if (synth_rng_below(r, 2)) synth_buf_addf(b, "what is %d %s %d?", a, op, c);
    else synth_buf_addf(b, "%d %s %d", a, op, c);
}
static int so_math(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    char buf[SYNTH_FIELD];
    snprintf(buf, sizeof buf, "%s", in);
    for (char *s = buf; *s; s++)
        if (*s == '?') *s = ' ';
    W(w);
    int n = synth_split_words(buf, w, SYNTH_MAXW), v[2], nv = 0;
    const char *op = NULL;
    for (int i = 0; i < n; i++) {
        if (synth_is_number(w[i]) && nv < 2) v[nv++] = atoi(w[i]);
        else if (!strcmp(w[i], "plus") || !strcmp(w[i], "minus") || !strcmp(w[i], "times")) op = w[i];
    }
    if (nv != 2 || !op) return -1;
    synth_buf_addf(b, "%d", op[0] == 'p' ? v[0] + v[1] : op[0] == 'm' ? v[0] - v[1] : v[0] * v[1]);
    return 0;
}

// ---- identifier styles
SYNTH_LIST(ph_snake, "Convert the name to snake_case.", "Rewrite the identifier in snake case.", "Make it a snake_case variable name.",
           "Join the words with underscores, all lowercase.", "Turn the phrase into a lower_snake_case identifier.", "Give the snake_case form.");
SYNTH_LIST(ph_camel, "Convert the name to camelCase.", "Rewrite the identifier in camel case.", "Make it a camelCase variable name.",
           "Join the words with no spaces, capitalizing every word after the first.", "Turn the phrase into a lowerCamelCase identifier.",
           "Give the camelCase form.");
SYNTH_LIST(id_words, "user", "name", "id", "count", "max", "total", "file", "path", "item", "price", "last", "first");
static void in_ident(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    (void)p;
    const char *w[3];
    int n = synth_fit_count(r, max, 6, 2, 3), style = (int)synth_rng_below(r, 3);
    synth_pick_distinct(r, id_words, w, n);
    for (int i = 0; i < n; i++) {
        char x[SYNTH_WORD];
        strcpy(x, w[i]);
        if (style == 1 && i) x[0] = (char)toupper((unsigned char)x[0]);  // camelCase
        synth_buf_add(b, i == 0 || style == 1 ? "" : style == 0 ? " " : "_");
        synth_buf_add(b, x);
    }
}
// Splits at spaces, '_' and '-' and before capitals; words come out lowercase.
static int ident_words(const char *in, char w[][SYNTH_WORD]) {
    int n = 0;
    size_t k = 0;
    for (const char *s = in;; s++) {
        int brk = !*s || *s == ' ' || *s == '_' || *s == '-' || (isupper((unsigned char)*s) && k);
        if (brk && k) {
            w[n][k] = 0;
            if (++n == SYNTH_MAXW) return n;
            k = 0;
        }
        if (!*s) break;
        if (isalnum((unsigned char)*s) && k < SYNTH_WORD - 1) w[n][k++] = (char)tolower((unsigned char)*s);
    }
    return n;
}
static int so_snake(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    W(w);
    int n = ident_words(in, w);
    if (!n) return -1;
    synth_join(b, w, n, "_");
    return 0;
}
static int so_camel(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    W(w);
    int n = ident_words(in, w);
    if (!n) return -1;
    for (int i = 1; i < n; i++) w[i][0] = (char)toupper((unsigned char)w[i][0]);
    synth_join(b, w, n, "");
    return 0;
}

// ---- sql_select
SYNTH_LIST(ph_sql, "Translate the request into a SQL query.", "Write the SQL SELECT statement for this.", "Convert the English question to SQL.",
           "Give the SQL that answers the request.", "Turn the description into a SELECT query.", "What SQL query does this ask for?");
SYNTH_LIST(dt_sql, "Use uppercase SQL keywords and no semicolon.");
SYNTH_LIST(sql_tables, "users", "orders", "items", "pets");
SYNTH_LIST(sql_cols, "name", "age", "city", "id", "price");
static void in_sql(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    (void)p, (void)max;
    const char *t = synth_pick(r, sql_tables), *c[2];
    synth_pick_distinct(r, sql_cols, c, 2);
    switch (synth_rng_below(r, 4)) {
    case 0: synth_buf_addf(b, "get %s from %s", c[0], t); break;
    case 1: synth_buf_addf(b, "show all %s", t); break;
    case 2: synth_buf_addf(b, "count %s", t); break;
    default: synth_buf_addf(b, "get %s from %s where %s is %d", c[0], t, c[1], synth_range(r, 1, 50)); break;
    }
}
static int so_sql(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    W(w);
    int n = synth_split_words(in, w, SYNTH_MAXW);
    if (n == 3 && !strcmp(w[0], "show") && !strcmp(w[1], "all")) synth_buf_addf(b, "SELECT * FROM %s", w[2]);
    else if (n == 2 && !strcmp(w[0], "count")) synth_buf_addf(b, "SELECT COUNT(*) FROM %s", w[1]);
    else if (n >= 4 && !strcmp(w[0], "get") && !strcmp(w[2], "from")) {
        synth_buf_addf(b, "SELECT %s FROM %s", w[1], w[3]);
        if (n == 8 && !strcmp(w[4], "where") && !strcmp(w[6], "is")) synth_buf_addf(b, " WHERE %s = %s", w[5], w[7]);
        else if (n != 4) return -1;
    } else return -1;
    return 0;
}

// ---- bool_eval: true/false with not > and > or
SYNTH_LIST(ph_bool, "Evaluate the boolean expression.", "Is the logical expression true or false?", "Compute the truth value.",
           "Work out the result of the and/or/not expression.", "Output true or false for the formula.", "What does this boolean expression evaluate to?");
SYNTH_LIST(dt_bool, "not binds tightest, then and, then or.");
typedef struct {
    char (*w)[SYNTH_WORD];
    int n, i, bad;
} BoolParser;
static int b_atom(BoolParser *s) {
    if (s->i >= s->n) return s->bad = 1, 0;
    if (!strcmp(s->w[s->i], "not")) return s->i++, !b_atom(s);
    if (!strcmp(s->w[s->i], "true")) return s->i++, 1;
    if (!strcmp(s->w[s->i], "false")) return s->i++, 0;
    return s->bad = 1, 0;
}
static int b_and(BoolParser *s) {
    int v = b_atom(s);
    while (s->i < s->n && !strcmp(s->w[s->i], "and")) s->i++, v = b_atom(s) && v;
    return v;
}
static int b_or(BoolParser *s) {
    int v = b_and(s);
    while (s->i < s->n && !strcmp(s->w[s->i], "or")) s->i++, v = b_and(s) || v;
    return v;
}
static void in_bool(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    (void)p;
    int n = synth_fit_count(r, max, 12, 2, 3);
    for (int i = 0; i < n; i++) {
        if (i) synth_buf_add(b, synth_rng_below(r, 2) ? " and " : " or ");
        if (synth_rng_below(r, 3) == 0) synth_buf_add(b, "not ");
        synth_buf_add(b, synth_rng_below(r, 2) ? "true" : "false");
    }
}
static int so_bool(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    W(w);
    BoolParser s = {w, synth_split_words(in, w, SYNTH_MAXW), 0, 0};
    int v = b_or(&s);
    if (s.bad || s.i != s.n) return -1;
    synth_buf_add(b, v ? "true" : "false");
    return 0;
}

// ---- eval_expr: digits with + - * and the usual precedence
SYNTH_LIST(ph_expr, "Evaluate the arithmetic expression.", "Compute the value of the formula.", "What does the expression equal?",
           "Calculate the result, multiplying before adding.", "Give the numeric value of the expression.", "Work out the expression and output the integer.");
SYNTH_LIST(dt_expr, "Multiplication comes before addition and subtraction.");
static void in_expr(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    (void)p;
    int n = synth_fit_count(r, max, 2, 2, 3);
    for (int i = 0; i < n; i++) {
        if (i) synth_buf_addc(b, "+-*"[synth_rng_below(r, 3)]);
        synth_buf_addf(b, "%d", synth_range(r, 1, 9));
    }
}
static int so_expr(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    long total = 0, term = 0;
    int sign = 1, have = 0;
    const char *s = in;
    for (;;) {
        if (!isdigit((unsigned char)*s)) return -1;
        long v = strtol(s, (char **)&s, 10);
        term = have == 2 ? term * v : v;
        have = 1;
        if (*s == '*') {
            have = 2;
            s++;
            continue;
        }
        total += sign * term;
        if (!*s) break;
        if (*s != '+' && *s != '-') return -1;
        sign = *s == '+' ? 1 : -1;
        s++;
    }
    synth_buf_addf(b, "%ld", total);
    return 0;
}

static const SynthFamily fams[] = {
    {"device_command", SYNTH_AREA_CODE, "Map the smart-home command to light_on(room), light_off(room), window_open(room), window_close(room) or set_temp(room,N).", ph_dev, dt_dev, NULL, in_dev, so_dev},
    {"shell_command", SYNTH_AREA_CODE, "Output the shell command: ls, pwd, rm FILE, mkdir DIR, cd DIR, cat FILE or cp FILE DIR.", ph_sh, dt_sh, NULL, in_sh, so_sh},
    {"math_words", SYNTH_AREA_CODE, "Compute 'A plus/minus/times B' and output the integer.", ph_math, dt_math, NULL, in_math, so_math},
    {"snake_case", SYNTH_AREA_CODE, "Split the name into words and join them lowercase with underscores.", ph_snake, no_details, NULL, in_ident, so_snake},
    {"camel_case", SYNTH_AREA_CODE, "Split the name into words and join them in camelCase.", ph_camel, no_details, NULL, in_ident, so_camel},
    {"sql_select", SYNTH_AREA_CODE, "Translate the request into SELECT ... FROM ... [WHERE col = v].", ph_sql, dt_sql, NULL, in_sql, so_sql},
    {"bool_eval", SYNTH_AREA_CODE, "Evaluate the boolean expression (not, then and, then or) and output true or false.", ph_bool, dt_bool, NULL, in_bool, so_bool},
    {"eval_expr", SYNTH_AREA_CODE, "Evaluate the integer expression with + - * (multiplication first).", ph_expr, dt_expr, NULL, in_expr, so_expr},
};
const SynthFamilyTable synth_code_table = {fams, (int)(sizeof fams / sizeof fams[0])};
