build-cpu/data/loader.o: data/loader.c data/loader.h data/shard.h \
 common/error.h common/fileio.h
data/loader.h:
data/shard.h:
common/error.h:
common/fileio.h:
