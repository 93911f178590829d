build-cpu/compiler/compiler.o: compiler/compiler.c compiler/compiler.h \
 model/qwen3.h model/config.h common/error.h common/rng.h
compiler/compiler.h:
model/qwen3.h:
model/config.h:
common/error.h:
common/rng.h:
