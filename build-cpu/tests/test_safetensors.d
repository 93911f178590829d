build-cpu/tests/test_safetensors.o: tests/test_safetensors.c \
 common/error.h common/fileio.h model/safetensors.h
common/error.h:
common/fileio.h:
model/safetensors.h:
