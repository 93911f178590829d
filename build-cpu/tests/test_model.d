build-cpu/tests/test_model.o: tests/test_model.c common/fileio.h \
 model/qwen3.h model/config.h tests/testutil.h common/error.h \
 model/safetensors.h
common/fileio.h:
model/qwen3.h:
model/config.h:
tests/testutil.h:
common/error.h:
model/safetensors.h:
