# fluent-bit-teleport: build, test and benchmark the Fluent Bit input plugin.
GO        ?= go
BUILD     ?= build
PLUGIN    := $(BUILD)/in_teleport.so
GOFLAGS_BUILD := -buildmode=c-shared -trimpath -ldflags "-s -w"
SOURCES   := $(shell find conf db election emit handover input metrics plugin teleportsrc -name '*.go' -not -name '*_test.go') plugin/shim.c plugin/shim.h go.mod go.sum

.PHONY: build test unit integration e2e bench demo run clean kube

build: $(PLUGIN)

$(PLUGIN): $(SOURCES)
	@mkdir -p $(BUILD)
	$(GO) build $(GOFLAGS_BUILD) -o $@ ./plugin
	@rm -f $(BUILD)/in_teleport.h

# A real kube-apiserver v1.37.2 and etcd v3.7.0 for the leader-election
# tests (tests/kubeapi, tests/failover), built from the Go module proxy in a
# module of their own (tests/realkube). Cold: about 16 CPU-minutes and 4 GB of
# Go build cache; `go build` leaves up-to-date binaries alone in seconds.
KUBE_BINS := $(BUILD)/kube-apiserver $(BUILD)/etcd

kube:
	@mkdir -p $(BUILD)
	cd tests/realkube && GOWORK=off $(GO) build -mod=readonly -ldflags "-s -w" -o $(abspath $(BUILD))/etcd ./etcd
	cd tests/realkube && GOWORK=off $(GO) build -mod=readonly -ldflags "-s -w" -o $(abspath $(BUILD))/kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver

# Everything CI runs: vet, unit tests, the plugin .so under the test host,
# and the real-fluent-bit end-to-end tests (they say plainly when they skip:
# set FLUENT_BIT=/path/to/fluent-bit to run them; the systemd unit check
# needs systemd-analyze).
test: $(PLUGIN) kube
	$(GO) vet ./...
	@if [ -z "$$FLUENT_BIT" ]; then echo "NOTE: FLUENT_BIT is not set: the tests with a real fluent-bit (tests/e2e, and docker/manifests' configuration check) are SKIPPED"; \
	 else echo "end-to-end tests use FLUENT_BIT=$$FLUENT_BIT"; fi
	@command -v systemd-analyze >/dev/null 2>&1 || echo "NOTE: systemd-analyze is not on PATH: the systemd unit check (conf/systemd_test.go) is SKIPPED"
	TELEPORT_PLUGIN_SO=$(abspath $(PLUGIN)) $(GO) test -count=1 -timeout 20m ./...
	cd docker/manifests && $(GO) vet ./... && TELEPORT_PLUGIN_SO=$(abspath $(PLUGIN)) $(GO) test -count=1 -timeout 10m ./...

# Speed and memory: Badger's footprint, then 200,000 events exported from the
# Teleport test double through the .so (see tests/bench), then backfills from
# a real Teleport Auth Service side by side with its own page rate (see
# tests/e2e BenchmarkRealTeleport).
bench: $(PLUGIN)
	$(GO) test ./db -run XXX -bench Footprint -benchtime 1x
	$(GO) test ./emit -run XXX -bench . -benchmem
	TELEPORT_PLUGIN_SO=$(abspath $(PLUGIN)) $(GO) test ./tests/bench -run XXX -bench Export -benchtime 1x -timeout 30m -args -events 200000
	@if [ -n "$$FLUENT_BIT" ]; then TELEPORT_PLUGIN_SO=$(abspath $(PLUGIN)) $(GO) test ./tests/e2e -run XXX -bench Backfill -benchtime 1x -timeout 30m; \
	 else echo "NOTE: FLUENT_BIT is not set: the real fluent-bit backfill benchmark is SKIPPED"; fi
	@[ -n "$$FLUENT_BIT" ] || echo "NOTE: FLUENT_BIT is not set: the real-Teleport benchmark measures the plugin through tests/host only"
	TELEPORT_PLUGIN_SO=$(abspath $(PLUGIN)) $(GO) test ./tests/e2e -run XXX -bench RealTeleport -benchtime 1x -timeout 30m

# Runs the plugin against the Teleport test double (a steady stream of audit
# events) and prints the records: in fluent-bit if FLUENT_BIT is set or
# fluent-bit is on PATH, else under the test host. Ctrl-C stops it.
demo: $(PLUGIN)
	TELEPORT_PLUGIN_SO=$(abspath $(PLUGIN)) $(GO) run ./tests/cmd/demo

run: demo

clean:
	rm -rf $(BUILD)
