// `paw ckpt SUBCOMMAND`: offline operations on training checkpoints.
#include <stdio.h>
#include <stdlib.h>

#include "common/args.h"
#include "common/commands.h"
#include "common/error.h"
#include "common/fileio.h"
#include "train/checkpoint.h"

static int cmd_ckpt_reshard(int argc, char **argv) {
    int world = 0, zero = -1;
    PawOpt opts[] = {
        {"world-size", PAW_OPT_INT, &world, "the number of ranks the new checkpoint is for"},
        {"zero", PAW_OPT_INT, &zero, "1: one optimizer shard per rank (ZeRO-1), 0: one whole optimizer file "
                                     "(-1: keep the input's setting)"},
    };
    PawCommandSpec spec = {
        "paw ckpt reshard IN_CHECKPOINT OUT_CHECKPOINT --world-size N [--zero 0|1]",
        "Rewrites a complete checkpoint directory (OUT/checkpoints/step-NNNNNNNN) for another number of ranks: the "
        "AdamW moments are gathered and split again, and the data position is re-expressed in steps of N ranks, so "
        "that `mpirun -np N paw train CONFIG --resume` continues where the old run stopped. Put OUT_CHECKPOINT under "
        "the new run's out_dir/checkpoints/. Keep N x grad_accum equal to the old run's to keep the global batch.",
        opts, (int)(sizeof opts / sizeof opts[0]), 2};
    char *pos[2];
    int npos, prc = paw_parse_args(&spec, argc, argv, pos, &npos);
    if (prc) return prc > 0 ? 0 : 2;
    if (npos != 2 || world < 1 || zero < -1 || zero > 1) {
        fprintf(stderr, "paw ckpt reshard: IN, OUT and --world-size N >= 1 are required (--zero 0 or 1)\n");
        paw_print_usage(&spec, 1);
        return 2;
    }
    if (zero < 0) {
        // Keep the input's layout: sharded when it has per-rank optimizer files.
        char *full = paw_path_join(pos[0], "optimizer.safetensors");
        zero = !paw_file_exists(full);
        free(full);
    }
    if (ckpt_reshard(pos[0], pos[1], world, zero) != 0) {
        fprintf(stderr, "paw ckpt reshard: %s\n", paw_last_error());
        return 1;
    }
    printf("wrote %s for %d rank%s (zero %d)\n", pos[1], world, world > 1 ? "s" : "", zero);
    return 0;
}

static const PawSubcommand ckpt_commands[] = {
    {"reshard", cmd_ckpt_reshard, "rewrite a checkpoint for another number of ranks (and/or ZeRO setting)"},
    {"help", NULL, "show this help"},
};

int cmd_ckpt(int argc, char **argv) {
    return paw_dispatch("usage: paw ckpt SUBCOMMAND [options]   (paw ckpt SUBCOMMAND --help)", "subcommands", ckpt_commands,
                        (int)(sizeof ckpt_commands / sizeof ckpt_commands[0]), argc, argv);
}
