build-cpu/compiler/mapper_io.o: compiler/mapper_io.c common/error.h \
 compiler/compiler.h model/qwen3.h model/config.h compiler/mapper.h \
 model/safetensors.h common/fileio.h
common/error.h:
compiler/compiler.h:
model/qwen3.h:
model/config.h:
compiler/mapper.h:
model/safetensors.h:
common/fileio.h:
