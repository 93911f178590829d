build-cpu/paw.o: paw.c common/commands.h
common/commands.h:
