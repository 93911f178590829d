// `paw data SUBCOMMAND`: the data pipeline's commands.
#include <stddef.h>

#include "common/args.h"
#include "common/commands.h"

static const PawSubcommand data_commands[] = {
    {"synth", cmd_data_synth, "generate FuzzyBench-style train/val/test JSONL from procedural task families"},
    {"build", cmd_data_build, "tokenize FuzzyBench JSONL into training shards"},
    {"help", NULL, "show this help"},
};

int cmd_data(int argc, char **argv) {
    return paw_dispatch("usage: paw data SUBCOMMAND [options]   (paw data SUBCOMMAND --help)", "subcommands", data_commands,
                        (int)(sizeof data_commands / sizeof data_commands[0]), argc, argv);
}
