build-cpu/train/train.o: train/train.c train/train.h common/args.h \
 common/error.h common/fileio.h common/progress.h common/sha256.h \
 data/loader.h data/shard.h data/tokenizer.h data/vocab_map.h \
 interpreter/runner.h model/qwen3.h model/config.h kernels/adamw.h \
 model/safetensors.h train/checkpoint.h train/comm.h train/config.h \
 train/grad_sync.h train/train_gpu.h train/paw_step.h compiler/compiler.h \
 compiler/mapper.h
train/train.h:
common/args.h:
common/error.h:
common/fileio.h:
common/progress.h:
common/sha256.h:
data/loader.h:
data/shard.h:
data/tokenizer.h:
data/vocab_map.h:
interpreter/runner.h:
model/qwen3.h:
model/config.h:
kernels/adamw.h:
model/safetensors.h:
train/checkpoint.h:
train/comm.h:
train/config.h:
train/grad_sync.h:
train/train_gpu.h:
train/paw_step.h:
compiler/compiler.h:
compiler/mapper.h:
