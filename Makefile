# edgelink — build, test and lint targets. `make test` is the one CI runs.
GO            ?= go
GOLANGCI_LINT := v2.15.0
BIN           := $(CURDIR)/bin
TEST_TIMEOUT  ?= 25m
FUZZTIME      ?= 200000x

.PHONY: build setup test test-unit test-integration fuzz lint tidy-check release release-test kafka bench bench-mirror bench-transforms bench-checkpoints bench-fleet bench-airgap bench-groups clean

build:
	$(GO) build -o $(BIN)/edgelink ./cmd/edgelink

## setup: install what the tests need (Go modules, kcat, Kafka jars)
setup:
	scripts/setup

## test: everything CI runs: unit tests (kfake) and real-Kafka integration
## tests, with -race, and beside them, at the lowest CPU priority (it takes
## what the tests leave idle while they wait for brokers), make release-test;
## its output follows the tests'
test: setup
	@mkdir -p $(BIN); rm -f $(BIN)/release-test.status; \
	( nice -n 19 $(MAKE) --no-print-directory release-test > $(BIN)/release-test.log 2>&1; echo $$? > $(BIN)/release-test.status ) & \
	EDGELINK_KAFKA=required EDGELINK_BROWSER=required $(GO) test -race -shuffle=on -count=1 -timeout $(TEST_TIMEOUT) ./...; status=$$?; \
	wait; echo "== make release-test (beside the tests), exit $$(cat $(BIN)/release-test.status):"; cat $(BIN)/release-test.log; \
	[ $$status -eq 0 ] && [ "$$(cat $(BIN)/release-test.status)" = 0 ]
	$(MAKE) fuzz
	scripts/kafka reap

## test-unit: fast tests only; real-Kafka tests skip with a message
test-unit:
	$(GO) test -race -shuffle=on ./...

## test-integration: only the real-Kafka tests
test-integration: setup
	EDGELINK_KAFKA=required $(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) -run 'RealKafka' ./...

## fuzz: a short fuzz run of the config loader, counted in inputs (a time-bounded run can end with a spurious "context deadline exceeded"); longer: make fuzz FUZZTIME=10m
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/config

$(BIN)/golangci-lint:
	GOBIN=$(BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT)

## lint: golangci-lint at a pinned version, installed into bin/
lint: $(BIN)/golangci-lint
	@$(BIN)/golangci-lint version | grep -q "version $(GOLANGCI_LINT:v%=%)" || GOBIN=$(BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT)
	$(BIN)/golangci-lint run ./...
	cd tools/release && $(GO) vet ./...

tidy-check:
	$(GO) mod tidy -diff
	cd tools/release && $(GO) mod tidy -diff

## release: static binaries for linux/amd64, linux/arm64 and linux/arm/v7, a
## .deb per architecture, the multi-arch OCI image and SHA256SUMS, in dist/;
## the same commit gives the same bytes (scripts/release; VERSION, DIST, ARCHES)
DIST ?= $(CURDIR)/dist
release:
	GO=$(GO) DIST=$(DIST) scripts/release

## release-test: make release, then the release's tests (tools/release, a
## module of its own): the files in dist/, the amd64 .deb installed with dpkg
## (as root) and its systemd unit verified, the OCI image, a second build that
## must give the same bytes, and the Helm chart (lint, template, strict decode);
## the tests compile while the release builds
release-test:
	GO=$(GO) DIST=$(DIST) scripts/release --test

## bench: edgelink against MirrorMaker 2 and the raw franz-go limit on two real
## Kafka clusters, 3 data profiles, median of 3 runs; rewrites its section of
## BENCHMARKS.md (e.g. make bench BENCH_VOLUME=2GB BENCH_ARGS="-profiles 1kb")
BENCH_VOLUME ?= 1GB
BENCH_RUNS   ?= 3
BENCH_ARGS   ?=
bench: setup build
	$(GO) run ./internal/bench/replbench -edgelink bin/edgelink -volume $(BENCH_VOLUME) -runs $(BENCH_RUNS) -write BENCHMARKS.md $(BENCH_ARGS)

## bench-mirror: one link's throughput, exactly-once and at-least-once, median of 3
BENCH_RECORDS ?= 500000
bench-mirror: setup
	$(GO) run ./internal/bench/mirrorbench -records $(BENCH_RECORDS) -size 1024 -partitions 12 -runs 3

## bench-transforms: a link's throughput with no transforms, a filter keeping
## 1% and a 1-minute aggregate, side by side on 1,000,000 JSON readings (median
## of 3), its bytes to the destination, and the stateful transforms' memory at
## 100,000 keys; rewrites its section of BENCHMARKS.md (several minutes; e.g.
## make bench-transforms TRANSFORM_ARGS="-records 2000000 -pprof bin/pprof")
TRANSFORM_RECORDS ?= 1000000
TRANSFORM_ARGS    ?=
bench-transforms: setup
	$(GO) run ./internal/bench/transformbench -records $(TRANSFORM_RECORDS) -partitions 12 -runs 3 -write BENCHMARKS.md $(TRANSFORM_ARGS)

## bench-checkpoints: a link's checkpoint read at start-up with 5,000 links'
## checkpoints present on a real Kafka broker (median of 5)
bench-checkpoints: setup
	@mkdir -p $(BIN); EDGELINK_KAFKA=required $(GO) test -count=1 -run '^TestRealKafkaCheckpointReadAtScale$$' -v ./internal/link/ > $(BIN)/bench-checkpoints.log 2>&1; status=$$?; \
	grep -E 'checkpoint read|wrote|load [0-9]|^(ok|FAIL|---)' $(BIN)/bench-checkpoints.log; exit $$status

## bench-fleet: the fleet service (bin/edgelink fleet serve) at 1,000 simulated
## sites reporting every 10 s on a real Kafka broker: CPU, memory, API latency
## under load, the page's first paint in Chromium and one site's bytes on the
## wire per day; rewrites its section of BENCHMARKS.md (about 6 minutes; e.g.
## make bench-fleet FLEET_DURATION=10m FLEET_ARGS="-viewers 20")
FLEET_SITES    ?= 1000
FLEET_DURATION ?= 3m
FLEET_ARGS     ?=
bench-fleet: setup build
	$(GO) run ./internal/bench/fleetbench -edgelink bin/edgelink -sites $(FLEET_SITES) -interval 10s -duration $(FLEET_DURATION) -write BENCHMARKS.md $(FLEET_ARGS)

## bench-airgap: a link across an air gap in bundles between two real Kafka
## clusters: edgelink bundle export of 1 GB of 1 KiB records and bundle
## import of it, each a process of its own (MB/s, CPU, peak RSS), median of
## 3, plus one encrypted run; every import checked record by record;
## rewrites its section of BENCHMARKS.md (several minutes; e.g.
## make bench-airgap AIRGAP_ARGS="-chunk-size 64MiB -pprof bin/pprof")
AIRGAP_VOLUME ?= 1GB
AIRGAP_ARGS   ?=
bench-airgap: setup build
	$(GO) run ./internal/bench/airgapbench -edgelink bin/edgelink -volume $(AIRGAP_VOLUME) -runs 3 -write BENCHMARKS.md $(AIRGAP_ARGS)

## bench-groups: a link's consumer group sync between two real Kafka
## clusters: 10,000 groups committed at random offsets of a topic with
## aborted transactions, synced by edgelink run (its first full round, end
## to end) and checked partition by partition against the exact offsets,
## median of 3, then MirrorMaker 2's checkpoint connector on the same data;
## rewrites its section of BENCHMARKS.md (about 7 minutes, at most 15; e.g.
## make bench-groups GROUPS_ARGS="-interval 5s -pprof bin/pprof")
GROUPS_ARGS ?=
bench-groups: setup build
	$(GO) run ./internal/bench/groupbench -edgelink bin/edgelink -groups 10000 -runs 3 -write BENCHMARKS.md $(GROUPS_ARGS)

## kafka: fetch and verify the Apache Kafka jars
kafka:
	scripts/kafka fetch

clean:
	rm -rf $(BIN) $(DIST)
