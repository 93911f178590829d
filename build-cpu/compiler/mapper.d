build-cpu/compiler/mapper.o: compiler/mapper.c compiler/mapper.h \
 model/qwen3.h model/config.h common/error.h common/rng.h \
 kernels/matmul.h
compiler/mapper.h:
model/qwen3.h:
model/config.h:
common/error.h:
common/rng.h:
kernels/matmul.h:
