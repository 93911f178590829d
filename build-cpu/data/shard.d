build-cpu/data/shard.o: data/shard.c data/shard.h common/error.h \
 common/fileio.h
data/shard.h:
common/error.h:
common/fileio.h:
