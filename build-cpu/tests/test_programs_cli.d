build-cpu/tests/test_programs_cli.o: tests/test_programs_cli.c \
 common/error.h common/fileio.h interpreter/program.h model/config.h \
 model/qwen3.h kernels/quant.h tests/world.h
common/error.h:
common/fileio.h:
interpreter/program.h:
model/config.h:
model/qwen3.h:
kernels/quant.h:
tests/world.h:
