build-cpu/model/config.o: model/config.c model/config.h common/error.h \
 common/fileio.h
model/config.h:
common/error.h:
common/fileio.h:
