// paw: the command-line entry point. Each subcommand lives beside the code it drives.
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "common/args.h"
#include "common/commands.h"

static const PawSubcommand commands[] = {
    {"logits", cmd_logits, "run a checkpoint on token ids; top-5 of the last position, or all logits to a file"},
    {"generate", cmd_generate, "greedy decoding from token ids with a KV cache"},
    {"bench", cmd_bench, "benchmarks (paw bench cpu|...)"},
    {"init", cmd_init, "write a new model directory with random weights (optionally a trimmed vocabulary)"},
    {"train", cmd_train, "train the compiler through the interpreter, or pre-train a tiny interpreter"},
    {"grad", cmd_grad, "one PAW step on the first batch: write the loss and every trainable gradient"},
    {"ckpt", cmd_ckpt, "checkpoint tools: re-shard a checkpoint for another number of ranks"},
    {"compile", cmd_compile, "spec -> program file (.paw): pseudo-program + LoRA from the trained compiler"},
    {"run", cmd_run, "run a program on inputs (an argument, or stdin lines as a filter)"},
    {"eval", cmd_eval, "exact match of compiled programs vs the no-compiler baseline and ablations"},
    {"data", cmd_data, "data pipeline: synthesize FuzzyBench-style data, build token shards"},
    {"tokenize", cmd_tokenize, "text on stdin -> Qwen3 token ids"},
    {"detokenize", cmd_detokenize, "token ids on stdin -> the exact text"},
    {"help", NULL, "show this help"},
};
int main(int argc, char **argv) {
    int rc = paw_dispatch("paw: Program-as-Weights toolchain (Qwen3 compiler + interpreter in C)\n\n"
                          "usage: paw COMMAND [options]    (paw COMMAND --help for details)",
                          "commands", commands, (int)(sizeof commands / sizeof commands[0]), argc - 1, argv + 1);
    // A command's printed results that did not reach stdout (a full disk) are a failure, not a
    // silent success; a command that failed has said why already.
    if ((fflush(stdout) != 0 || ferror(stdout)) && rc == 0) {
        fprintf(stderr, "paw: writing to stdout failed: %s\n", strerror(errno ? errno : EIO));
        rc = 1;
    }
    return rc;
}
