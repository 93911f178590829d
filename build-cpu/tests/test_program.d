build-cpu/tests/test_program.o: tests/test_program.c common/error.h \
 common/fileio.h common/sha256.h data/template.h interpreter/program.h \
 model/config.h model/qwen3.h kernels/quant.h model/gguf.h \
 model/safetensors.h
common/error.h:
common/fileio.h:
common/sha256.h:
data/template.h:
interpreter/program.h:
model/config.h:
model/qwen3.h:
kernels/quant.h:
model/gguf.h:
model/safetensors.h:
