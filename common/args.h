// A small option parser shared by every `paw` subcommand, so that all of them accept
// `--name value` and `--name=value`, print the same --help, and name a bad option.
#ifndef PAW_COMMON_ARGS_H
#define PAW_COMMON_ARGS_H

typedef enum { PAW_OPT_FLAG, PAW_OPT_INT, PAW_OPT_FLOAT, PAW_OPT_STR } PawOptType;

typedef struct {
    const char *name;  // without the leading "--"
    PawOptType type;
    void *ptr;         // int* for FLAG and INT, float* for FLOAT, const char** for STR
    const char *help;  // one line; the default is printed from *ptr
} PawOpt;

typedef struct {
    const char *usage;        // "paw logits --model DIR --ids 1,2,3 [options]"
    const char *description;  // a paragraph, or NULL
    const PawOpt *opts;
    int nopts;
    int max_positional;       // positional arguments accepted
} PawCommandSpec;

// Returns 0 when parsed, 1 when --help was printed (the caller exits 0), -1 on a bad command
// line (the message is printed to stderr with the usage). Positionals land in pos[0..*npos).
int paw_parse_args(const PawCommandSpec *spec, int argc, char **argv, char **pos, int *npos);
void paw_print_usage(const PawCommandSpec *spec, int to_stderr);

// A table of subcommands ("paw data build", "paw bench cpu", ...) and the shared dispatcher:
// runs the entry named by argv[0] with the rest of argv, prints the table for help, and names an
// unknown subcommand. Entries with fn == NULL are listed but not run ("help").
typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} PawSubcommand;
int paw_dispatch(const char *usage_line, const char *heading, const PawSubcommand *table, int n, int argc, char **argv);

// Parses "1,2,3" into a new int array (caller frees). -1 with paw_error on bad input.
int paw_parse_int_list(const char *s, int **out, int *n);

#endif
