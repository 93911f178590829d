build-cpu/model/gguf.o: model/gguf.c model/gguf.h common/fileio.h \
 kernels/quant.h common/error.h model/safetensors.h
model/gguf.h:
common/fileio.h:
kernels/quant.h:
common/error.h:
model/safetensors.h:
