build-cpu/paw.o: paw.c common/args.h common/commands.h
common/args.h:
common/commands.h:
