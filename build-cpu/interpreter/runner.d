build-cpu/interpreter/runner.o: interpreter/runner.c interpreter/runner.h \
 data/tokenizer.h data/vocab_map.h model/qwen3.h model/config.h \
 common/error.h common/fileio.h data/template.h
interpreter/runner.h:
data/tokenizer.h:
data/vocab_map.h:
model/qwen3.h:
model/config.h:
common/error.h:
common/fileio.h:
data/template.h:
