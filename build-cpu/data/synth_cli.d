build-cpu/data/synth_cli.o: data/synth_cli.c common/args.h \
 common/commands.h common/error.h common/progress.h data/synth.h
common/args.h:
common/commands.h:
common/error.h:
common/progress.h:
data/synth.h:
