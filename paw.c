// paw: the command-line entry point. Each subcommand lives beside the code it drives.
#include <stdio.h>
#include <string.h>

#include "common/commands.h"

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} Command;

static const Command commands[] = {
    {"logits", cmd_logits, "run a checkpoint on token ids; top-5 of the last position, or all logits to a file"},
    {"generate", cmd_generate, "greedy decoding from token ids with a KV cache"},
    {"bench", cmd_bench, "benchmarks (paw bench cpu|...)"},
    {"init", cmd_init, "write a new model directory with random weights (optionally a trimmed vocabulary)"},
    {"train", cmd_train, "train the compiler through the interpreter, or pre-train a tiny interpreter"},
    {"grad", cmd_grad, "one PAW step on the first batch: write the loss and every trainable gradient"},
    {"compile", cmd_compile, "spec -> program file (.paw): pseudo-program + LoRA from the trained compiler"},
    {"run", cmd_run, "run a program on inputs (an argument, or stdin lines as a filter)"},
    {"eval", cmd_eval, "exact match of compiled programs vs the no-compiler baseline and ablations"},
    {"data", cmd_data, "data pipeline: synthesize FuzzyBench-style data, build token shards"},
    {"tokenize", cmd_tokenize, "text on stdin -> Qwen3 token ids"},
    {"detokenize", cmd_detokenize, "token ids on stdin -> the exact text"},
    {"help", NULL, "show this help"},
};
static const int ncommands = (int)(sizeof commands / sizeof commands[0]);

static void usage(FILE *f) {
    fprintf(f,
            "paw: Program-as-Weights toolchain (Qwen3 compiler + interpreter in C)\n\n"
            "usage: paw COMMAND [options]    (paw COMMAND --help for details)\n\ncommands:\n");
    for (int i = 0; i < ncommands; i++) fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    for (int i = 0; i < ncommands; i++)
        if (commands[i].fn && strcmp(argv[1], commands[i].name) == 0) return commands[i].fn(argc - 2, argv + 2);
    fprintf(stderr, "paw: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
