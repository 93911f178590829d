build-cpu/model/weights.o: model/weights.c common/error.h common/fileio.h \
 model/qwen3.h model/config.h model/safetensors.h
common/error.h:
common/fileio.h:
model/qwen3.h:
model/config.h:
model/safetensors.h:
