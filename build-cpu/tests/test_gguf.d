build-cpu/tests/test_gguf.o: tests/test_gguf.c common/error.h \
 common/fileio.h kernels/quant.h model/gguf.h model/safetensors.h
common/error.h:
common/fileio.h:
kernels/quant.h:
model/gguf.h:
model/safetensors.h:
