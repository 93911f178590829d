build-cpu/common/fileio.o: common/fileio.c common/fileio.h common/error.h
common/fileio.h:
common/error.h:
