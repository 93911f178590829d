build-cpu/data/cli.o: data/cli.c common/commands.h
common/commands.h:
