build-cpu/interpreter/program.o: interpreter/program.c \
 interpreter/program.h model/config.h model/qwen3.h common/error.h \
 common/fileio.h common/sha256.h data/template.h kernels/quant.h \
 model/gguf.h
interpreter/program.h:
model/config.h:
model/qwen3.h:
common/error.h:
common/fileio.h:
common/sha256.h:
data/template.h:
kernels/quant.h:
model/gguf.h:
