build-cpu/train/train.o: train/train.c train/train.h common/args.h \
 common/error.h common/fileio.h common/progress.h data/loader.h \
 data/shard.h data/tokenizer.h data/vocab_map.h kernels/adamw.h \
 model/safetensors.h train/checkpoint.h train/config.h train/paw_step.h \
 compiler/compiler.h model/qwen3.h model/config.h compiler/mapper.h
train/train.h:
common/args.h:
common/error.h:
common/fileio.h:
common/progress.h:
data/loader.h:
data/shard.h:
data/tokenizer.h:
data/vocab_map.h:
kernels/adamw.h:
model/safetensors.h:
train/checkpoint.h:
train/config.h:
train/paw_step.h:
compiler/compiler.h:
model/qwen3.h:
model/config.h:
compiler/mapper.h:
