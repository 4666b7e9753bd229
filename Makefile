# RecurrentKit: the two commands a new user needs, on a fresh Debian machine with Swift.
#   make demo   set up, convert a committed Keras model to PyTorch, verify it against Keras's outputs
#   make test   set up, then run the whole test suite, build the DocC catalog, verify every
#               committed fixture through `rnnkit verify` with a JUnit report, run the Python
#               checks, check the pip wheel as a user installs it and a short fuzz pass (what
#               CI runs); a compiler warning in Sources/ or a DocC warning fails it
#   make wheel  the pip wheel, dist/rnnkit-VERSION-py3-none-manylinux_*.whl (see `wheel` below)

SWIFT ?= swift
CLANG ?= clang
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# SCRATCH: the build folder of `release` (bench/compare.py builds each CPU level in its own).
SCRATCH ?= .build
RNNKIT := $(SCRATCH)/release/rnnkit
DEMO_MODEL := fixtures/keras/tfk_text_bilstm.h5
DEMO_FIXTURE := fixtures/keras/tfk_text_bilstm.fixture.h5
DEMO_OUT := out/text_bilstm.pytorch.h5

.PHONY: deps build demo test release clean fuzz fuzz-ci ci-python check-fixtures frameworks-venv \
	differential differential-ci docs python wheel wheel-venv wheel-check

# libhdf5, zlib and pkg-config from Debian, installed only when missing.
deps:
	@if ! pkg-config --exists hdf5 zlib 2>/dev/null; then \
		echo "Installing libhdf5-dev, zlib1g-dev and pkg-config"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq libhdf5-dev zlib1g-dev pkg-config; \
	fi

build: deps
	$(SWIFT) build

# CPU: the processor `release` (and so `demo`, `bench` and `test`) builds for, by LLVM's name:
# `native` (default) is the machine running make — AVX-512, AVX2 or neither, with fused
# multiply-add where it has it; `haswell` is AVX2 with FMA (any x86-64 CPU since 2013–2015:
# Intel Haswell, AMD Zen); `x86-64` is the baseline every x86-64 CPU runs (SSE2, no FMA).
# The flags go on the command line, not in Package.swift (unsafeFlags would stop other
# packages from depending on this one). `-DRECURRENTKIT_FMA` is added when the CPU has FMA,
# as clang's predefined macros for it say (`__FMA__`); arm64 always has FMA and needs nothing.
# The binary records what it was built for and refuses, in one line, a CPU that lacks it.
CPU ?= native
ifeq ($(shell uname -m),x86_64)
CPU_HAS_FMA := $(shell echo | $(CLANG) -march=$(CPU) -dM -E -x c - 2>/dev/null | grep -c '__FMA__ ')
else
CPU_HAS_FMA := 0
endif
CPU_FLAGS := -Xswiftc -target-cpu -Xswiftc $(CPU) $(if $(filter 1,$(CPU_HAS_FMA)),-Xswiftc -DRECURRENTKIT_FMA)

# The release build at .build/release/rnnkit, for CPU (see above). RELEASE_FLAGS: more
# `swift build` options (`wheel` adds --static-swift-stdlib).
RELEASE_FLAGS ?=
release: deps
	$(SWIFT) build -c release --product rnnkit --scratch-path $(SCRATCH) $(CPU_FLAGS) $(RELEASE_FLAGS)
	@# What it was built for; a build for another machine's CPU says, here, what this one lacks.
	@$(RNNKIT) --version || true

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
# build folder, so the `release` build that `demo` runs is untouched. It builds for CPU, as
# `release` does, so the suite tests the build users get (`make test CPU=x86-64 FUZZ=0` tests
# the baseline build, in its own folder).
TEST_SCRATCH := $(if $(filter native,$(CPU)),.build-test,.build-test-$(CPU))

# RECURRENTKIT_WARNINGS_AS_ERRORS (Package.swift): a compiler warning in Sources/ fails the
# build. RNNKIT_REQUIRE_PYTHON: a test that needs python3 fails where it is missing instead
# of skipping (`python` installs it first).
test: deps python ci-python
	RECURRENTKIT_WARNINGS_AS_ERRORS=1 RNNKIT_REQUIRE_PYTHON=1 RNNKIT_ONNX_PYTHON=$(CI_VENV)/bin/python \
		$(SWIFT) test -c release -Xswiftc -enable-testing --scratch-path $(TEST_SCRATCH) --disable-swift-testing $(CPU_FLAGS)
	$(MAKE) docs
	$(MAKE) check-fixtures RNNKIT_UNDER_TEST=$(TEST_SCRATCH)/release/rnnkit
	$(MAKE) differential-ci RNNKIT_UNDER_TEST=$(TEST_SCRATCH)/release/rnnkit
ifneq ($(WHEEL_TEST),0)
	$(MAKE) wheel-check
endif
ifneq ($(FUZZ),0)
	$(MAKE) fuzz-ci
endif

# The fixture comparison as a user's CI runs it, with the binary the suite just built:
# `rnnkit verify` over the committed fixture folders, writing a JUnit report (out/ci/); the
# Python fixture writer's tests (python/), which also verify fixtures it writes with that
# binary; scripts/check_reports.py, which checks the JUnit report against the common JUnit
# schema (scripts/junit-10.xsd) and reads it with a JUnit parser, with one fixture broken
# and one model missing; and the CI example's steps (examples/ci/run-locally.sh). numpy,
# h5py, xmlschema and junitparser come from PyPI into .venv-ci; no ML framework is needed.
RNNKIT_UNDER_TEST ?= $(RNNKIT)
PYTHON ?= python3
CI_VENV := .venv-ci

python:
	@command -v $(PYTHON) >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3 python3-venv; }

ci-python: python
	@if ! [ -x $(CI_VENV)/bin/python ]; then \
		$(PYTHON) -m venv $(CI_VENV) 2>/dev/null || { rm -rf $(CI_VENV); \
			$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(CI_VENV); }; \
	fi
	$(CI_VENV)/bin/python -m pip install -q --disable-pip-version-check -r python/requirements-test.txt -r scripts/requirements-reports.txt \
		-r scripts/requirements-onnx-ci.txt

# scripts/check_onnx_runtime.py (onnx and onnxruntime from PyPI, scripts/requirements-onnx-ci.txt):
# every committed ONNX fixture in ONNX Runtime, and, where the binary has `convert --to onnx`
# (ONNX_CONVERT=auto converts only then), every fixture's model converted to ONNX and run
# there, compared at the fixture's tolerances; a table, exit 1 on any failed row. `make test`
# converts (ONNX_CONVERT=yes): a binary without the ONNX writer fails it.
# ONNX_PAIRS: more folders of (MODEL.onnx, MODEL.fixture.h5) pairs to run, e.g. what the suite wrote.
ONNX_CONVERT ?= yes
ONNX_PAIRS ?=

check-fixtures: ci-python
	@mkdir -p out/ci
	$(RNNKIT_UNDER_TEST) verify fixtures/pytorch fixtures/keras fixtures/pytorch-files fixtures/seams --jobs 2 \
		--junit out/ci/fixtures.junit.xml --json out/ci/fixtures.json
	RNNKIT=$(RNNKIT_UNDER_TEST) $(CI_VENV)/bin/python -m unittest discover -s python -v
	$(CI_VENV)/bin/python scripts/check_reports.py --rnnkit $(RNNKIT_UNDER_TEST)
	examples/ci/run-locally.sh $(RNNKIT_UNDER_TEST)
	$(CI_VENV)/bin/python -m unittest discover -s scripts -p test_check_onnx_runtime.py
	$(CI_VENV)/bin/python scripts/check_onnx_runtime.py --rnnkit $(RNNKIT_UNDER_TEST) --convert $(ONNX_CONVERT) \
		$(foreach d,$(ONNX_PAIRS),--pairs $(d)) --keep out/ci/onnx --json out/ci/onnx-runtime.json

# The differential check (fixtures/convert/differential.py, fixtures/convert/README.md): models
# built in the real torch, tf-keras and Keras 3, converted with `rnnkit convert` along every
# axis the converter branches on, each result loaded and run in the real target framework and
# compared with the source's outputs, and `rnnkit verify`'s verdict compared with the
# framework's; a table, exit 1 on any failed row. `differential-ci` (in `make test`) runs the
# subset that takes every value of every axis at least once; `differential` the full matrix,
# with the release build. The frameworks (fixtures/requirements-frameworks.txt) go into
# .venv-frameworks, installed when missing or when the requirements changed. The wheels are
# kept in WHEELHOUSE (pip download), and a reinstall takes them from there without the
# network: pip's own HTTP cache keeps a wheel only when the index sends caching headers, and
# an index or mirror that sends none would have every run download torch again.
FRAMEWORKS_VENV := .venv-frameworks
FRAMEWORKS_REQUIREMENTS := fixtures/requirements-frameworks.txt
WHEELHOUSE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/rnnkit/wheels
DIFFERENTIAL_JOBS ?= 2
PIP_QUIET := -q --disable-pip-version-check --progress-bar off

frameworks-venv:
	@command -v $(PYTHON) >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3 python3-venv; }
	@if ! cmp -s $(FRAMEWORKS_REQUIREMENTS) $(FRAMEWORKS_VENV)/installed-requirements.txt \
			|| ! [ -x $(FRAMEWORKS_VENV)/bin/python ]; then \
		echo "Installing $(FRAMEWORKS_REQUIREMENTS) into $(FRAMEWORKS_VENV) (wheels kept in $(WHEELHOUSE))"; \
		rm -rf $(FRAMEWORKS_VENV); \
		$(PYTHON) -m venv $(FRAMEWORKS_VENV) 2>/dev/null || { rm -rf $(FRAMEWORKS_VENV); \
			$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(FRAMEWORKS_VENV); }; \
		mkdir -p $(WHEELHOUSE); \
		$(FRAMEWORKS_VENV)/bin/python -m pip install $(PIP_QUIET) --no-index --find-links $(WHEELHOUSE) \
			-r $(FRAMEWORKS_REQUIREMENTS) 2>/dev/null \
		|| { $(FRAMEWORKS_VENV)/bin/python -m pip download $(PIP_QUIET) -d $(WHEELHOUSE) -r $(FRAMEWORKS_REQUIREMENTS) \
			&& $(FRAMEWORKS_VENV)/bin/python -m pip install $(PIP_QUIET) --no-index --find-links $(WHEELHOUSE) \
				-r $(FRAMEWORKS_REQUIREMENTS); } \
		&& cp $(FRAMEWORKS_REQUIREMENTS) $(FRAMEWORKS_VENV)/installed-requirements.txt; \
	fi

# The Python fixture writer's from_torch and from_keras tests, which .venv-ci (no framework)
# skips, run here with the frameworks, where a skip would be a failure.
differential-ci: frameworks-venv
	RNNKIT=$(RNNKIT_UNDER_TEST) RNNKIT_REQUIRE_FRAMEWORKS=1 $(FRAMEWORKS_VENV)/bin/python -m unittest discover -s python
	@mkdir -p out/differential
	RNNKIT=$(RNNKIT_UNDER_TEST) $(FRAMEWORKS_VENV)/bin/python fixtures/convert/differential.py --subset \
		--jobs $(DIFFERENTIAL_JOBS) --keep out/differential/subset

differential: release frameworks-venv
	@mkdir -p out/differential
	RNNKIT=$(RNNKIT) $(FRAMEWORKS_VENV)/bin/python fixtures/convert/differential.py \
		--jobs $(DIFFERENTIAL_JOBS) --keep out/differential/full

# Fuzzing (scripts/fuzz.sh; libFuzzer, Linux toolchains): fuzz-ci replays the committed
# regressions and runs every target a few seconds from the seeds written from fixtures/;
# `make fuzz FUZZ_TARGET=all FUZZ_SECONDS=900` is a campaign (15 minutes per target).
FUZZ_TARGET ?= all
FUZZ_SECONDS ?= 900

fuzz: deps
	SWIFT=$(SWIFT) scripts/fuzz.sh $(FUZZ_TARGET) $(FUZZ_SECONDS)

fuzz-ci: deps
	SWIFT=$(SWIFT) scripts/fuzz.sh --ci

# The DocC catalog (Sources/RecurrentKit/RecurrentKit.docc) with swift-docc-plugin and the
# toolchain's docc: a link to a symbol that does not exist, an undocumented parameter or any
# other DocC warning fails it. It builds the library's symbol graph in TEST_SCRATCH (debug),
# beside the suite's build, with the same checkouts; the archive goes to
# $(TEST_SCRATCH)/plugins/Swift-DocC/outputs/RecurrentKit.doccarchive.
docs: deps
	RECURRENTKIT_WARNINGS_AS_ERRORS=1 $(SWIFT) package --scratch-path $(TEST_SCRATCH) \
		generate-documentation --target RecurrentKit --warnings-as-errors

clean:
	rm -rf .build .build-fuzz .build-test .build-test-* .build-cpu-* .build-wheel-*

# Times BENCH_MODEL on random inputs with the release build (for CPU); bench/compare.py
# times PyTorch and ONNX Runtime as well, for each CPU level (see bench/BENCHMARKS.md).
BENCH_MODEL ?= $(DEMO_MODEL)
BENCH_ARGS ?= --batch 64 --time 256 --repeat 10 --threads 2

.PHONY: bench
bench: release
	$(RNNKIT) bench $(BENCH_MODEL) $(BENCH_ARGS)

# The pip wheel (python/package, scripts/build_wheel.sh): `rnnkit` as a command and a Python
# package (rnnkit.verify/convert/inspect, rnnkit.fixture, rnnkit.testing), with no Swift
# toolchain needed where it is installed. One release build per CPU level in WHEEL_LEVELS,
# fastest first (each `make release CPU=LEVEL` with the Swift standard library linked in, in
# .build-wheel-LEVEL): skylake-avx512 (AVX-512 with FMA: Intel since Skylake-SP, AMD since
# Zen 4; swiftc does not take the generic x86-64-v4), haswell (AVX2 with FMA) and x86-64 (the
# baseline). A launcher built for the baseline picks the fastest the CPU runs when `rnnkit`
# starts (RNNKIT_CPU_LEVEL=NAME forces one). auditwheel bundles libhdf5 and what it needs and
# tags the wheel manylinux for the oldest glibc its symbols allow (manylinux_2_35 from
# Debian 12: Swift's runtime uses hypot@GLIBC_2.35). The wheel's version is the binary's
# (Sources/RecurrentKit/RecurrentKit.swift). Each level is a full build of the package (about
# 3.5 minutes on 2 idle cores), so `make wheel` takes about 12.
WHEEL_LEVELS ?= skylake-avx512 haswell x86-64
WHEEL_DIR ?= dist
WHEEL_VENV := .venv-wheel
WHEEL_REQUIREMENTS := python/package/requirements-build.txt

wheel-venv: python
	@if ! cmp -s $(WHEEL_REQUIREMENTS) $(WHEEL_VENV)/installed-requirements.txt \
			|| ! [ -x $(WHEEL_VENV)/bin/python ]; then \
		echo "Installing $(WHEEL_REQUIREMENTS) into $(WHEEL_VENV)"; \
		rm -rf $(WHEEL_VENV); \
		$(PYTHON) -m venv $(WHEEL_VENV) 2>/dev/null || { rm -rf $(WHEEL_VENV); \
			$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(WHEEL_VENV); }; \
		$(WHEEL_VENV)/bin/python -m pip install $(PIP_QUIET) -r $(WHEEL_REQUIREMENTS) \
		&& cp $(WHEEL_REQUIREMENTS) $(WHEEL_VENV)/installed-requirements.txt; \
	fi

WHEEL_ZIP_LEVEL ?=
wheel: deps wheel-venv
	@for level in $(WHEEL_LEVELS); do \
		$(MAKE) --no-print-directory release CPU=$$level SCRATCH=.build-wheel-$$level RELEASE_FLAGS=--static-swift-stdlib || exit 1; \
	done
	WHEEL_ZIP_LEVEL=$(WHEEL_ZIP_LEVEL) scripts/build_wheel.sh $(WHEEL_VENV)/bin/python $(WHEEL_DIR) $(WHEEL_LEVELS)

# What `make test` checks of the wheel (scripts/check_wheel.sh): built into out/wheel-test
# with one level, the baseline (x86-64) — the build every x86-64 CPU runs and the one this
# suite's own build (CPU=native) does not test — so that `make test` stays well within CI's
# 30 minutes (each level is a whole release build, about 3.5 minutes on 2 idle cores; the
# launcher's choice among levels is checked on a `make wheel` wheel: `scripts/check_wheel.sh
# dist/rnnkit-*.whl LEVEL`). Then installed into a fresh venv and run from another folder with
# an empty environment (`env -i`, no Swift toolchain): ldd, --version, `rnnkit verify` over
# fixtures/pytorch and fixtures/keras, the Python API's tests (python/package/tests) and the
# CI example's steps. `make test WHEEL_TEST_LEVELS="haswell x86-64" WHEEL_TEST_PICKS=haswell`
# checks two. WHEEL_TEST=0 leaves it out of `make test`; on a CPU other than x86-64 there is no wheel.
WHEEL_TEST ?= $(if $(filter x86_64,$(shell uname -m)),1,0)
WHEEL_HOST_LEVEL := $(shell if grep -qw avx512f /proc/cpuinfo 2>/dev/null && grep -qw avx512bw /proc/cpuinfo \
	&& grep -qw avx512vl /proc/cpuinfo && grep -qw avx512dq /proc/cpuinfo; then echo skylake-avx512; \
	elif grep -qw avx2 /proc/cpuinfo 2>/dev/null && grep -qw fma /proc/cpuinfo; then echo haswell; else echo x86-64; fi)
WHEEL_TEST_LEVELS ?= x86-64
# The level the launcher must pick from WHEEL_TEST_LEVELS on this machine.
WHEEL_TEST_PICKS ?= $(if $(filter $(WHEEL_HOST_LEVEL),$(WHEEL_TEST_LEVELS)),$(WHEEL_HOST_LEVEL),x86-64)

wheel-check:
	$(MAKE) wheel WHEEL_LEVELS="$(WHEEL_TEST_LEVELS)" WHEEL_DIR=out/wheel-test WHEEL_ZIP_LEVEL=1
	scripts/check_wheel.sh out/wheel-test/rnnkit-*.whl $(WHEEL_TEST_PICKS)
