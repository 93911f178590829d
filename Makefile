# paw: one Makefile. `make` builds ./paw, `make test` runs the Criterion tests,
# `make asan` runs them under AddressSanitizer + UBSan.
CC      ?= gcc
OPT     ?= -O2 -march=native
CFLAGS  ?=
CFLAGS  += $(OPT) -std=c11 -Wall -Wextra -fopenmp -I. -D_GNU_SOURCE
LDLIBS  += -lzstd -lcjson -lpcre2-8 -lutf8proc -lzip -lm
BUILD   ?= build

# The Qwen3 tokenizer used by tests and the demo (also read from $PAW_TOKENIZER at run time).
PAW_TOKENIZER ?= $(abspath ../shared/data/qwen3-tokenizer/tokenizer.json)
export PAW_TOKENIZER
CFLAGS  += -DPAW_DEFAULT_TOKENIZER='"$(PAW_TOKENIZER)"'

SRC_DIRS := common kernels model data compiler interpreter train eval
LIB_SRC  := $(wildcard $(addsuffix /*.c,$(SRC_DIRS)))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(wildcard tests/*.c)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o)

# MPI: multi-process training (`mpirun -np N paw train`) when mpicc is found, unless MPI=0.
# Only the compile and link flags of mpicc are used; gcc stays the compiler.
MPICC   ?= $(shell command -v mpicc 2>/dev/null)
MPI     ?= $(if $(MPICC),1,0)
ifeq ($(MPI),1)
CFLAGS  += -DPAW_MPI $(shell $(MPICC) --showme:compile 2>/dev/null || pkg-config --cflags ompi-c)
LDLIBS  += $(shell $(MPICC) --showme:link 2>/dev/null || pkg-config --libs ompi-c)
endif

# CUDA: built when nvcc is on PATH (or NVCC names it) unless CUDA=0. The .cu files are compiled
# for Hopper (sm_90a) and Ampere (sm_80) and linked by gcc; PAW_CUDA tells the C code that the
# GPU path exists. The binary touches the CUDA runtime only when a command asks for --device cuda.
NVCC    ?= $(shell command -v nvcc 2>/dev/null)
CUDA    ?= $(if $(NVCC),1,0)
# EMU=1 (`make test-emu`): the same CUDA code as host C++ on the CPU emulation of tests/emu/ instead
# of nvcc, cuBLASLt and the CUDA runtime; it needs only the CUDA headers.
EMU     ?= 0
ifeq ($(EMU),1)
override CUDA := 1
endif
CUDA_HOME ?= $(if $(NVCC),$(patsubst %/bin/nvcc,%,$(NVCC)),/usr/local/cuda)
ifeq ($(CUDA),1)
CU_SRC    := $(wildcard kernels/*.cu model/*.cu compiler/*.cu train/*.cu interpreter/*.cu)
CU_OBJ    := $(CU_SRC:%.cu=$(BUILD)/%.cu.o)
CU_ARCH   ?= -gencode=arch=compute_90a,code=sm_90a -gencode=arch=compute_80,code=sm_80
NVCCFLAGS ?= -O3 -std=c++17 $(CU_ARCH) -I. -Xcompiler -Wall,-Wextra
CFLAGS    += -DPAW_CUDA -I$(CUDA_HOME)/include
ifeq ($(EMU),1)
EMU_CXX   := g++ -std=c++17 $(OPT) -I. -I$(CUDA_HOME)/include -DPAW_EMU -ffp-contract=off -Wall -Wextra \
             -Wno-unused-parameter -Wno-unused-function -Wno-unknown-pragmas
CU_OBJ    += $(patsubst %.cc,$(BUILD)/%.o,$(wildcard tests/emu/*.cc))
LDLIBS    += -lstdc++
else
LDLIBS    += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublasLt -lcudart -lstdc++
endif
endif

# NCCL (train/comm_nccl.c, the GPU trainer's gradient sums under mpirun): only with NCCL=1, which needs
# the CUDA and MPI builds.
NCCL    ?= 0
ifeq ($(NCCL),1)
ifneq ($(CUDA)$(MPI),11)
$(error NCCL=1 needs CUDA=1 and MPI=1)
endif
CFLAGS  += -DPAW_NCCL
LDLIBS  += -lnccl
endif

.PHONY: all test asan clean fixtures test-gpu test-emu test-race fuzz
all: paw

paw: $(BUILD)/paw
	cp $< $@.tmp && mv -f $@.tmp $@

$(BUILD)/paw: $(BUILD)/paw.o $(LIB_OBJ) $(CU_OBJ)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/test_paw: $(TEST_OBJ) $(LIB_OBJ) $(CU_OBJ)
	$(CC) $(CFLAGS) -o $@ $^ -lcriterion $(LDLIBS)

# GPU tests (CUDA ops against the CPU references, the model against the fixtures). It needs a GPU
# to run; `make test-gpu` builds it and runs it, and prints "N passed, N failed" last.
$(BUILD)/test_gpu: $(BUILD)/tests/gpu/test_gpu.o $(LIB_OBJ) $(CU_OBJ)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

ifeq ($(CUDA),1)
test-gpu: paw $(BUILD)/test_gpu
	./$(BUILD)/test_gpu
else
test-gpu:
	@echo "make test-gpu: nvcc not found (or CUDA=0): the GPU tests need a CUDA build" >&2; exit 2
endif

ifeq ($(EMU),1)
$(BUILD)/%.cu.o: %.cu tests/emu/cu2cc.pl
	@mkdir -p $(dir $@)
	perl tests/emu/cu2cc.pl $< > $(BUILD)/$*.cu.cc
	$(EMU_CXX) -include tests/emu/emu.h -MMD -MP -MT $@ -MF $(BUILD)/$*.cu.d -c $(BUILD)/$*.cu.cc -o $@

# The emulated tensor cores and cuBLASLt are most of the emulation's time, and check their own
# operands' bounds: optimised and without sanitizers (the scheduler keeps them for its fibers).
$(BUILD)/tests/emu/ptx.o $(BUILD)/tests/emu/cublaslt.o: EMU_TU := -O3 -march=native -fno-sanitize=all -fopenmp
# The race check's own cases (tests/emu/selftest.cu), only for the emulation.
$(BUILD)/emu_selftest: $(BUILD)/tests/emu/selftest.cu.o $(LIB_OBJ) $(CU_OBJ)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# The race-check build (test-race): the scheduler and the runtime are not instrumented; they tell
# ThreadSanitizer which GPU thread runs and where the GPU orders memory.
ifneq ($(findstring PAW_EMU_RACE,$(OPT)),)
$(BUILD)/tests/emu/simt.o $(BUILD)/tests/emu/cudart.o: EMU_TU := -fno-sanitize=all
endif
$(BUILD)/tests/emu/%.o: tests/emu/%.cc
	@mkdir -p $(dir $@)
	$(EMU_CXX) $(EMU_TU) -MMD -MP -c $< -o $@
else
$(BUILD)/%.cu.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -MMD -MP -c $< -o $@
endif

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# Tests run from the project root (fixtures are found by relative path) and need ./paw for the CLI tests.
# Then the GPU tests on the CPU emulation (test-emu), where the CUDA headers are.
test: paw $(BUILD)/test_paw
	./$(BUILD)/test_paw -j2
	@if [ -f "$(CUDA_HOME)/include/cuda_runtime.h" ]; then $(MAKE) --no-print-directory test-emu; \
	else echo "make test: no CUDA headers in $(CUDA_HOME)/include: the GPU tests' CPU emulation (make test-emu) did not run"; fi

ASAN_OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
asan:
	$(MAKE) CUDA=0 BUILD=build-asan OPT="$(ASAN_OPT)" build-asan/paw build-asan/test_paw
	ASAN_OPTIONS=detect_leaks=0 PAW_BIN=build-asan/paw ./build-asan/test_paw -j2

# The GPU tests on the CPU: every .cu file compiled as host C++ against the SIMT emulation of
# tests/emu/ (fibers per thread, warp operations, tensor-core fragments, cuBLASLt and the runtime on
# host memory), under ASan + UBSan. It checks the kernels' logic, indexing, synchronisation and
# alignment; not their speed, nor the GPU's memory model (tests/emu/README.md).
# The decode attention's tests run a second time with an H100's 132 SMs: up to 64 slices of the
# cache per (sequence, KV head), a count the default 8 emulated SMs never reach.
# Then the multi-rank GPU training paths (two ranks through MPI, with and without ZeRO-1) against
# one process, with the tiny models (tests/gpu/multi_rank.sh), where mpirun is installed.
test-emu:
	$(MAKE) EMU=1 BUILD=build-emu OPT="$(ASAN_OPT)" build-emu/paw build-emu/test_gpu
	ASAN_OPTIONS=detect_leaks=0 PAW_BIN=build-emu/paw ./build-emu/test_gpu
	ASAN_OPTIONS=detect_leaks=0 PAW_EMU_SMS=132 PAW_GPU_TESTS=test_attention_cache ./build-emu/test_gpu
	@if command -v mpirun >/dev/null; then \
		ASAN_OPTIONS=detect_leaks=0 PAW=build-emu/paw SHAPES=tiny NCCL_PAW= EXACT=1 tests/gpu/multi_rank.sh build-emu/multirank 3; \
	else echo "make test-emu: no mpirun: the two-rank GPU runs did not run"; fi

# The GPU tests on the CPU emulation under ThreadSanitizer (tests/emu/README.md, Races): every GPU
# thread is a fiber ThreadSanitizer knows, ordered only where the GPU orders it (__syncthreads,
# __syncwarp, the end of a grid, griddepcontrol.wait after a programmatic launch), and neighbouring
# blocks are never ordered, so a missing barrier or two blocks writing the same memory is reported.
# OpenMP is kept to one thread (ThreadSanitizer does not know libgomp's barriers).
TSAN_OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=thread -DPAW_EMU_RACE
test-race:
	$(MAKE) EMU=1 MPI=0 BUILD=build-race OPT="$(TSAN_OPT)" build-race/paw build-race/test_gpu build-race/emu_selftest
	tests/emu/race_selftest.sh build-race/emu_selftest
	TSAN_OPTIONS="halt_on_error=1 history_size=4" OMP_NUM_THREADS=1 PAW_BIN=build-race/paw ./build-race/test_gpu

# Regenerates the committed fixtures (needs torch, transformers, tokenizers, safetensors and gguf
# from pip, and the zstd command). Nothing here is needed to build or test.
fixtures:
	python3 tests/make_qwen3_fixtures.py
	python3 tests/make_paw_fixtures.py
	python3 tests/make_tokenizer_fixtures.py
	python3 tests/make_safetensors_fixtures.py
	python3 tests/make_gguf_fixtures.py
	python3 tests/make_shard_fixtures.py

# libFuzzer targets for every reader of untrusted files (tests/fuzz/), under ASan + UBSan:
# `make fuzz` (60 s each) or `make fuzz FUZZ_SECONDS=600`. Needs clang; not part of `make test`.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := safetensors gguf shard shard_payload jsonl config tokenizer program program_members
FUZZ_OPT := -Wno-pass-failed -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
fuzz:
	$(MAKE) CC=clang CUDA=0 MPI=0 BUILD=build-fuzz OPT="$(FUZZ_OPT)" build-fuzz/paw \
		$(FUZZ_TARGETS:%=build-fuzz/fuzz_%)
	tests/fuzz/run.sh $(FUZZ_SECONDS)

$(BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(LIB_OBJ)
	$(CC) $(CFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

clean:
	rm -rf build build-asan build-fuzz build-emu paw

-include $(LIB_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(BUILD)/paw.d $(CU_OBJ:.o=.d) $(BUILD)/tests/gpu/test_gpu.d

# The README's main command: the whole pipeline on the CPU with tiny models.
.PHONY: demo
demo: paw
	configs/demo/run.sh
