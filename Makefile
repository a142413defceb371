# pinhole: the two commands a newcomer needs are `make demo` and `make test`.
GO       ?= go
BIN      := bin/pinhole
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -buildid= -X main.version=$(VERSION) -X main.commit=$(COMMIT)
# Fuzz smoke: every Fuzz target runs this many inputs inside `make test`.
# A count, not a duration: a duration races the fuzzing coordinator's
# deadline on a loaded machine and fails with "context deadline exceeded"
# and no reproducer (golang/go#51484); a count only runs slower.
FUZZTIME ?= 100000x

.PHONY: all build test test-setup unit vet fmt-check fuzz-smoke demo bench soak clean

# PINHOLE_SKIPS collects what a suite could not run here (not root, a
# missing Debian package) for the one line `make test` ends with.
export PINHOLE_SKIPS := $(CURDIR)/.cache/skipped

# The lab and packaging fragments append their suites to TEST_EXTRA; they
# must be read before the test rule, whose prerequisites expand at once.
.DEFAULT_GOAL := all
TEST_EXTRA :=
include lab/lab.mk
-include build/build.mk

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/pinhole

# test runs everything CI runs: static checks, the unit and loopback tests
# with the race detector, a short run of every fuzz target, and the extra
# suites the lab and packaging fragments add to TEST_EXTRA. It sets itself
# up first: as root with apt it installs the Debian packages of
# .ci/apt-packages that are missing; otherwise it runs what it can and
# ends with one line naming what it skipped.
test: test-setup vet fmt-check unit fuzz-smoke $(TEST_EXTRA)
	@sh .ci/skipped.sh

test-setup:
	@mkdir -p $(dir $(PINHOLE_SKIPS)) && : > $(PINHOLE_SKIPS)
	@sh .ci/setup.sh

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

unit:
	$(GO) test -race -shuffle=on -timeout 15m $$($(GO) list ./... | grep -v /lab)

fuzz-smoke:
	@./build/fuzz-smoke.sh $(FUZZTIME)

demo: build
	$(GO) run ./internal/demo -bin $(BIN)

# bench: loopback benchmarks, then the lossy-link benchmark in the NAT lab
# (20 ms each way, 1% and 5% loss; needs root, skips loudly without it).
bench: build
	$(GO) test -run '^$$' -bench . -benchtime 2x -timeout 20m ./bench/... | tee bin/bench.txt
	$(GO) test -run '^$$' -bench LossyLink -benchtime 1x -timeout 15m ./lab/ | tee -a bin/bench.txt

# soak: the 10-minute churn soak against the real binary (16 clients
# opening, echoing 64 KiB and closing), outside `make test`.
soak: build
	SOAK_DURATION=10m $(GO) test -run '^$$' -bench '^BenchmarkSoak$$' -benchtime 1x -timeout 20m ./bench/... | tee bin/soak.txt

clean:
	rm -rf bin dist
