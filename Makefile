# RecurrentKit: the two commands a new user needs, on a fresh Debian machine with Swift.
#   make demo   set up, then verify a committed PyTorch model against real PyTorch outputs
#   make test   set up, then run the whole test suite (what CI runs)

SWIFT ?= swift
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
RNNKIT := .build/release/rnnkit
DEMO_MODEL := fixtures/pytorch/clf_embed_lstm_last_hidden.h5
DEMO_FIXTURE := fixtures/pytorch/clf_embed_lstm_last_hidden.fixture.h5

.PHONY: deps build demo test release clean

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
	$(RNNKIT) inspect $(DEMO_MODEL)
	$(RNNKIT) verify $(DEMO_MODEL) $(DEMO_FIXTURE)

test: deps
	$(SWIFT) test --disable-swift-testing

clean:
	rm -rf .build
