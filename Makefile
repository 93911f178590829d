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

.PHONY: all test asan clean fixtures
all: paw

paw: $(BUILD)/paw
	cp $< $@.tmp && mv -f $@.tmp $@

$(BUILD)/paw: $(BUILD)/paw.o $(LIB_OBJ)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/test_paw: $(TEST_OBJ) $(LIB_OBJ)
	$(CC) $(CFLAGS) -o $@ $^ -lcriterion $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# Tests run from the project root (fixtures are found by relative path) and need ./paw for the CLI tests.
test: paw $(BUILD)/test_paw
	./$(BUILD)/test_paw -j2

ASAN_OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
asan:
	$(MAKE) BUILD=build-asan OPT="$(ASAN_OPT)" build-asan/paw build-asan/test_paw
	ASAN_OPTIONS=detect_leaks=0 PAW_BIN=build-asan/paw ./build-asan/test_paw -j2

# Regenerates the committed fixtures (needs torch, transformers, tokenizers, safetensors from pip).
fixtures:
	python3 tests/make_qwen3_fixtures.py

clean:
	rm -rf build build-asan paw

-include $(LIB_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(BUILD)/paw.d
