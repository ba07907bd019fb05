# stateguard: build, test and lint. Everything it builds goes into bin/ (git-ignored).
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
BIN := bin/stateguard
FUZZTIME ?= 20s

.PHONY: all build test unit fuzz lint bench bench-check check-examples clean

all: lint test

## build: the static stateguard binary in bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/stateguard

## test: lint, every test (including the ones that run the built binary), and a short fuzz run
test: lint build unit fuzz

unit:
	$(GO) test -race -count=1 ./...

## fuzz: a short run of the check input fuzzer (FUZZTIME=20s)
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzCheckInput$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 2s ./check/

## lint: gofmt and go vet
lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed on:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

## bench: the engine and check benchmarks (see README "Speed")
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./engine/ ./check/

## bench-check: wall time and peak memory of the binary on generated 10k and 40k object inputs, alternated
bench-check: build
	$(GO) run ./test/genmanifests -objects 10000 > bin/check-10k.yaml
	$(GO) run ./test/genmanifests -objects 40000 > bin/check-40k.yaml
	@for i in 1 2 3 4 5; do for n in 10k 40k; do \
		/usr/bin/time -f "$$n objects: %e s wall, %M KiB peak RSS" ./$(BIN) check -f bin/check-$$n.yaml -o json > /dev/null; \
	done; done

## check-examples: what `stateguard check -f examples/` prints
check-examples: build
	@./$(BIN) check -f examples/ || echo "(exit status $$?: 0 nothing at deny, 1 something at deny, 2 unreadable input)"

clean:
	rm -rf bin
