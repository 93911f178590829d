build-cpu/tests/test_quant.o: tests/test_quant.c common/error.h \
 kernels/quant.h model/gguf.h common/fileio.h model/safetensors.h
common/error.h:
kernels/quant.h:
model/gguf.h:
common/fileio.h:
model/safetensors.h:
