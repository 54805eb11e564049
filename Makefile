# vqmail: build, test, run and benchmark.
#   make run    build, set up ./run/ (a sandbox root with a demo domain) and start the services
#   make stop   stop what make run started
#   make test   every test: unit tests, end-to-end tests under tcpserver, man page lint
#   make bench  benchmarks (see bench/README.md)

CARGO ?= cargo
PYTHON ?= python3
RUN_DIR ?= $(CURDIR)/run
E2E_JOBS ?= 3

.PHONY: all build release deps test unit e2e man lint fmt run stop bench clean

all: build

build:
	$(CARGO) build --bins

release:
	$(CARGO) build --release --bins

unit:
	$(CARGO) test --lib --bins

e2e: build
	$(PYTHON) tests/e2e/run.py -j $(E2E_JOBS) $(E2E)

man:
	scripts/check-man

deps:
	scripts/install-deps test

test: deps build man
	$(CARGO) test --lib --bins
	$(PYTHON) tests/e2e/run.py -j $(E2E_JOBS)

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

run: release
	scripts/install-deps run
	VQMAIL_BIN=$(CURDIR)/target/release scripts/run-local start $(RUN_DIR)

stop:
	scripts/run-local stop $(RUN_DIR)

bench: release
	bench/run $(BENCH)

clean:
	$(CARGO) clean
	rm -rf $(RUN_DIR)
