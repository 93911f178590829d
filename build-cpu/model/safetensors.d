build-cpu/model/safetensors.o: model/safetensors.c model/safetensors.h \
 common/fileio.h common/error.h
model/safetensors.h:
common/fileio.h:
common/error.h:
