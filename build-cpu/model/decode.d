build-cpu/model/decode.o: model/decode.c common/error.h model/qwen3.h \
 model/config.h
common/error.h:
model/qwen3.h:
model/config.h:
