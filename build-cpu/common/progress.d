build-cpu/common/progress.o: common/progress.c common/progress.h
common/progress.h:
