build-cpu/compiler/pseudo.o: compiler/pseudo.c compiler/pseudo.h \
 common/error.h data/template.h interpreter/runner.h data/tokenizer.h \
 data/vocab_map.h model/qwen3.h model/config.h
compiler/pseudo.h:
common/error.h:
data/template.h:
interpreter/runner.h:
data/tokenizer.h:
data/vocab_map.h:
model/qwen3.h:
model/config.h:
