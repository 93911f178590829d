build-cpu/tests/test_common.o: tests/test_common.c common/args.h \
 common/error.h common/fileio.h
common/args.h:
common/error.h:
common/fileio.h:
