// `paw data SUBCOMMAND`: the data pipeline's commands.
#include <stdio.h>
#include <string.h>

#include "common/commands.h"

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} DataCommand;

static const DataCommand data_commands[] = {
    {"synth", cmd_data_synth, "generate FuzzyBench-style train/val/test JSONL from procedural task families"},
    {"build", cmd_data_build, "tokenize FuzzyBench JSONL into training shards"},
    {"help", NULL, "show this help"},
};
static const int ndata = (int)(sizeof data_commands / sizeof data_commands[0]);

static void usage(FILE *f) {
    fprintf(f, "usage: paw data SUBCOMMAND [options]   (paw data SUBCOMMAND --help)\n\nsubcommands:\n");
    for (int i = 0; i < ndata; i++) fprintf(f, "  %-10s %s\n", data_commands[i].name, data_commands[i].summary);
}

int cmd_data(int argc, char **argv) {
    if (argc < 1) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h") || !strcmp(argv[0], "help")) {
        usage(stdout);
        return 0;
    }
    for (int i = 0; i < ndata; i++)
        if (data_commands[i].fn && !strcmp(argv[0], data_commands[i].name)) return data_commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "paw data: unknown subcommand '%s'\n", argv[0]);
    usage(stderr);
    return 2;
}
