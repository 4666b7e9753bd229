# RecurrentKit: the two commands a new user needs, on a fresh Debian machine with Swift.
#   make demo   set up, convert a committed Keras model to PyTorch, verify it against Keras's outputs
#   make test   set up, then run the whole test suite and a short fuzz pass (what CI runs)

SWIFT ?= swift
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
RNNKIT := .build/release/rnnkit
DEMO_MODEL := fixtures/keras/tfk_text_bilstm.h5
DEMO_FIXTURE := fixtures/keras/tfk_text_bilstm.fixture.h5
DEMO_OUT := out/text_bilstm.pytorch.h5

.PHONY: deps build demo test release clean fuzz fuzz-ci

# libhdf5 and pkg-config from Debian, installed only when missing.
deps:
	@if ! pkg-config --exists hdf5 2>/dev/null; then \
		echo "Installing libhdf5-dev and pkg-config"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq libhdf5-dev pkg-config; \
	fi

build: deps
	$(SWIFT) build

# Release build; see README for the CPU-specific flags used when benchmarking.
release: deps
	$(SWIFT) build -c release --product rnnkit

demo: release
	@mkdir -p out
	$(RNNKIT) convert $(DEMO_MODEL) $(DEMO_OUT) --to pytorch --force --emit-python out/text_bilstm.py
	$(RNNKIT) inspect $(DEMO_OUT)
	$(RNNKIT) verify $(DEMO_OUT) $(DEMO_FIXTURE)

# FUZZ=0 leaves out the fuzz pass (it builds the package again with sanitizers, in .build-fuzz).
FUZZ ?= 1

# The suite runs on an optimized build (`-enable-testing` keeps `@testable import`): the
# engine's exhaustive bit-equality tests spend their time in SIMD kernels, which run many
# times faster at -O than at -Onone. Overflow and bounds checks stay on at -O. Its own
# build folder, so the `release` build that `demo` runs is untouched.
TEST_SCRATCH := .build-test

test: deps
	$(SWIFT) test -c release -Xswiftc -enable-testing --scratch-path $(TEST_SCRATCH) --disable-swift-testing
ifneq ($(FUZZ),0)
	$(MAKE) fuzz-ci
endif

# Fuzzing (scripts/fuzz.sh; libFuzzer, Linux toolchains): fuzz-ci replays the committed
# regressions and runs every target a few seconds from the seeds written from fixtures/;
# `make fuzz FUZZ_TARGET=all FUZZ_SECONDS=900` is a campaign (15 minutes per target).
FUZZ_TARGET ?= all
FUZZ_SECONDS ?= 900

fuzz: deps
	SWIFT=$(SWIFT) scripts/fuzz.sh $(FUZZ_TARGET) $(FUZZ_SECONDS)

fuzz-ci: deps
	SWIFT=$(SWIFT) scripts/fuzz.sh --ci

clean:
	rm -rf .build .build-fuzz $(TEST_SCRATCH)

# Benchmark build: CPU-specific code (AVX-512 where the machine has it) and fused multiply-add
# (see bench/BENCHMARKS.md), in its own build folder so the plain release build is untouched.
# Times BENCH_MODEL on random inputs; bench/compare.py times PyTorch and ONNX Runtime as well.
BENCH_SCRATCH := .build-bench
BENCH_FLAGS := -Xswiftc -target-cpu -Xswiftc native -Xswiftc -DRECURRENTKIT_FMA
BENCH_MODEL ?= $(DEMO_MODEL)
BENCH_ARGS ?= --batch 64 --time 256 --repeat 10 --threads 2

.PHONY: bench
bench: deps
	$(SWIFT) build -c release --product rnnkit --scratch-path $(BENCH_SCRATCH) $(BENCH_FLAGS)
	$(BENCH_SCRATCH)/release/rnnkit bench $(BENCH_MODEL) $(BENCH_ARGS)
