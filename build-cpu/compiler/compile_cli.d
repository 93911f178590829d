build-cpu/compiler/compile_cli.o: compiler/compile_cli.c common/args.h \
 common/commands.h common/error.h common/fileio.h common/progress.h \
 compiler/pseudo.h compiler/trained.h compiler/compiler.h model/qwen3.h \
 model/config.h compiler/mapper.h data/tokenizer.h data/vocab_map.h \
 data/template.h interpreter/program.h kernels/quant.h
common/args.h:
common/commands.h:
common/error.h:
common/fileio.h:
common/progress.h:
compiler/pseudo.h:
compiler/trained.h:
compiler/compiler.h:
model/qwen3.h:
model/config.h:
compiler/mapper.h:
data/tokenizer.h:
data/vocab_map.h:
data/template.h:
interpreter/program.h:
kernels/quant.h:
