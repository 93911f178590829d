build-cpu/train/config.o: train/config.c train/config.h common/error.h \
 common/fileio.h
train/config.h:
common/error.h:
common/fileio.h:
