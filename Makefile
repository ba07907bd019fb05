# stateguard: build, test and lint. Everything it builds goes into bin/ (git-ignored).
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
BIN := bin/stateguard
FUZZTIME ?= 20s

# Control-plane binaries for the integration tests, built from Go modules
# (hack/tools) into a folder named by their versions, so a clone builds them
# once and later runs reuse them.
KUBE_VERSION := 1.36.3
ETCD_VERSION := 3.6.8
HELM_VERSION := 4.3.1
TOOLS := $(CURDIR)/bin/tools/k8s-$(KUBE_VERSION)-etcd-$(ETCD_VERSION)-helm-$(HELM_VERSION)
export KUBEBUILDER_ASSETS := $(TOOLS)
export STATEGUARD_HELM := $(TOOLS)/helm

.PHONY: all demo demo-down image build test unit fuzz lint bench bench-check bench-webhook bench-audit check-examples tools chart-crds clean

all: lint test

## demo: a local control plane with stateguard installed by its chart; applies the examples and waits (Ctrl-C or make demo-down)
demo: build tools
	$(GO) run ./hack/demo -assets $(TOOLS) -helm $(TOOLS)/helm -binary $(BIN) -state bin/demo

## demo-down: stop what make demo started
demo-down:
	@if [ -f bin/demo/pid ]; then kill -TERM $$(cat bin/demo/pid) && echo "stopping the demo"; else echo "no demo is running"; fi

## image: the OCI image archive bin/stateguard-image.tar (no Docker engine, no base image), named as the chart's default image
image: build
	$(GO) run ./hack/image -binary $(BIN) -chart charts/stateguard -o bin/stateguard-image.tar \
		-revision "$$(git rev-parse HEAD 2>/dev/null)" -created "$${SOURCE_DATE_EPOCH:-$$(git log -1 --format=%ct 2>/dev/null || echo 0)}"

## build: the static stateguard binary in bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/stateguard

## test: lint, every test (including the integration tests on a real kube-apiserver), and a short fuzz run
test: lint build tools unit fuzz

## tools: kube-apiserver, kubectl, etcd and helm in bin/tools (about 5 minutes cold, seconds warm)
tools: $(TOOLS)/kube-apiserver $(TOOLS)/kubectl $(TOOLS)/etcd $(TOOLS)/helm

$(TOOLS)/kube-apiserver $(TOOLS)/kubectl:
	cd hack/tools/kubernetes && $(GO) build -o $@ k8s.io/kubernetes/cmd/$(@F)

$(TOOLS)/etcd:
	cd hack/tools/etcd && $(GO) build -o $@ go.etcd.io/etcd/server/v3

$(TOOLS)/helm:
	cd hack/tools/helm && $(GO) build -o $@ helm.sh/helm/v4/cmd/helm

unit:
	$(GO) test -race -count=1 ./...

## fuzz: short runs of the check input and admission review fuzzers (FUZZTIME=20s each)
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzCheckInput$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 2s ./check/
	$(GO) test -run '^$$' -fuzz '^FuzzReviewHandler$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 2s ./webhook/

## lint: gofmt and go vet
lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed on:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

## bench: the engine, check and admission review benchmarks (see README "Speed")
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./engine/ ./check/ ./webhook/

## bench-check: wall time and peak memory of the binary on generated 10k and 40k object inputs, alternated
bench-check: build
	$(GO) run ./test/genmanifests -objects 10000 > bin/check-10k.yaml
	$(GO) run ./test/genmanifests -objects 40000 > bin/check-40k.yaml
	@for i in 1 2 3 4 5; do for n in 10k 40k; do \
		/usr/bin/time -f "$$n objects: %e s wall, %M KiB peak RSS" ./$(BIN) check -f bin/check-$$n.yaml -o json > /dev/null; \
	done; done

## bench-webhook: p50/p99 of 500 StatefulSet creates with and 500 without the webhook, alternated, on a real kube-apiserver
bench-webhook: tools
	$(GO) test -run '^$$' -bench '^BenchmarkStatefulSetCreateLatency$$' -benchtime 1x -v ./test/integration/

## bench-audit: wall time and peak memory of `stateguard audit -A` and of one background pass over 5,000 StatefulSets and 5,000 Deployments with their Services and claims
bench-audit: tools
	$(GO) test -run '^$$' -bench '^BenchmarkAuditScale$$' -benchtime 1x -timeout 30m -v ./test/integration/

## chart-crds: copy the PolicyReport CRD the chart can install from the kyverno module in go.mod (chart_test.go checks the copy)
# The module cache is read-only, and so would the copy be: chmod.
chart-crds:
	mkdir -p charts/stateguard/files
	cp "$$($(GO) list -m -f '{{.Dir}}' github.com/kyverno/kyverno)/config/crds/policyreport/wgpolicyk8s.io_policyreports.yaml" charts/stateguard/files/
	chmod 644 charts/stateguard/files/wgpolicyk8s.io_policyreports.yaml

## check-examples: what `stateguard check -f examples/` prints
check-examples: build
	@./$(BIN) check -f examples/ || echo "(exit status $$?: 0 nothing at deny, 1 something at deny, 2 unreadable input)"

clean:
	rm -rf bin
