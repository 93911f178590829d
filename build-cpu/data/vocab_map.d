build-cpu/data/vocab_map.o: data/vocab_map.c data/vocab_map.h \
 common/error.h common/fileio.h model/safetensors.h
data/vocab_map.h:
common/error.h:
common/fileio.h:
model/safetensors.h:
