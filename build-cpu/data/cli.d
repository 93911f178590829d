build-cpu/data/cli.o: data/cli.c common/args.h common/commands.h
common/args.h:
common/commands.h:
