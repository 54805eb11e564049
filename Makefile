# vqmail: build, test, run and benchmark.
#   make run    build, set up ./run/ (a sandbox root with a demo domain) and start the services
#   make stop   stop what make run started
#   make test   every test: unit tests, end-to-end tests under tcpserver, man page lint
#   make bench  benchmarks (see bench/README.md)

CARGO ?= cargo
PYTHON ?= python3
RUN_DIR ?= $(CURDIR)/run
E2E_JOBS ?= 3
# The programs are linked statically: against musl when its Rust target and musl-gcc
# are installed (scripts/install-deps adds them on Debian), else against glibc
# (.cargo/config.toml). A program that starts once per connection or delivery starts
# in about half the time with musl. VQMAIL_TARGET=... overrides; the programs land in
# target/$(VQMAIL_TARGET)/debug and target/$(VQMAIL_TARGET)/release.
HOST_TRIPLE := $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')
MUSL_TRIPLE := $(subst -gnu,-musl,$(HOST_TRIPLE))
VQMAIL_TARGET ?= $(shell rustup target list --installed 2>/dev/null | grep -qx '$(MUSL_TRIPLE)' && command -v musl-gcc >/dev/null && echo '$(MUSL_TRIPLE)' || echo '$(HOST_TRIPLE)')
DEBUG_BIN = $(CURDIR)/target/$(VQMAIL_TARGET)/debug
RELEASE_BIN = $(CURDIR)/target/$(VQMAIL_TARGET)/release

.PHONY: all build release deps test unit e2e man lint fmt run stop bench clean

all: build

build:
	$(CARGO) build --bins --target $(VQMAIL_TARGET)

release:
	$(CARGO) build --release --bins --target $(VQMAIL_TARGET)

unit:
	$(CARGO) test --lib --bins --target $(VQMAIL_TARGET)

e2e: build
	VQMAIL_BIN=$(DEBUG_BIN) $(PYTHON) tests/e2e/run.py -j $(E2E_JOBS) $(E2E)

man:
	scripts/check-man

deps:
	scripts/install-deps test

test: deps
	$(MAKE) build man
	$(CARGO) test --lib --bins --target $(VQMAIL_TARGET)
	VQMAIL_BIN=$(DEBUG_BIN) $(PYTHON) tests/e2e/run.py -j $(E2E_JOBS)

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

run:
	scripts/install-deps run
	$(MAKE) release
	VQMAIL_BIN=$(RELEASE_BIN) scripts/run-local start $(RUN_DIR)

stop:
	scripts/run-local stop $(RUN_DIR)

bench: release
	VQMAIL_BIN=$(RELEASE_BIN) bench/run $(BENCH)

clean:
	$(CARGO) clean
	rm -rf $(RUN_DIR)
