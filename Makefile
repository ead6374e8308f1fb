# The two commands a newcomer needs: `make run` and `make test`.
GO        ?= go
ADDR      ?= :8080
TARGETS   ?=
BENCHTIME ?= 1s
FUZZTIME  ?= 30s
COMPARE_ROUNDS ?= 3

BUSY_COUNT ?= 3

.PHONY: run test test-busy test-deploy test-short bench lint loadtest demo compare build soak fuzz chaos

build:
	$(GO) build ./...

## run: start one productsd replica against the local PostgreSQL and Redis
run:
	$(GO) run ./cmd/productsd -addr $(ADDR)

## test: vet, then every test (real PostgreSQL and Redis) under the race detector,
## then the deployment checks of the nested deploy/ module
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 30m ./...
	$(MAKE) test-deploy

## test-busy: the suite as CI meets it on a shared machine: every test
## BUSY_COUNT times (default 3) under the race detector while two busy
## loops take a core each. Run it before every stop.
test-busy:
	@sh -c 'while :; do :; done' & b1=$$!; sh -c 'while :; do :; done' & b2=$$!; \
	trap 'kill $$b1 $$b2 2>/dev/null' EXIT INT TERM; \
	echo "test-busy: two busy loops running (pids $$b1 $$b2)"; \
	$(GO) test -race -count=$(BUSY_COUNT) -timeout 60m ./...

## test-deploy: the manifests, compose file, nginx config, alerts and dashboard,
## checked with krusty, kubectl kustomize, compose-go and a real productsd (deploy/)
test-deploy:
	cd deploy && $(GO) vet ./... && $(GO) test -race -count=1 -timeout 10m ./...

## test-short: the tests that need no servers
test-short:
	$(GO) test -race -count=1 -short ./...
	cd deploy && $(GO) test -race -count=1 -short ./...

## bench: the tiercache benchmarks, side by side with their baselines
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./tiercache/...

## lint: gofmt check and go vet
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd deploy && $(GO) vet ./...

## demo: start 3 productsd replicas on free ports (a fresh database on the local
## PostgreSQL, the local Redis), seed, run the default scenario (12s, read-heavy
## Zipf, writes through random replicas, consistency probe), print the summary,
## stop everything. Extra flags: make demo LOADTEST_FLAGS='-duration 30s -out html=report.html'
demo:
	$(GO) build -o bin/productsd ./cmd/productsd
	$(GO) build -o bin/loadtest ./cmd/loadtest
	./bin/loadtest demo -productsd bin/productsd $(LOADTEST_FLAGS)

## loadtest: the default scenario against TARGETS (comma-separated base URLs);
## without TARGETS, against the demo cluster. Exit status 99 when a threshold fails.
loadtest:
	$(GO) build -o bin/loadtest ./cmd/loadtest
	@if [ -n "$(TARGETS)" ]; then \
		echo ./bin/loadtest run -targets "$(TARGETS)" $(LOADTEST_FLAGS); \
		./bin/loadtest run -targets "$(TARGETS)" $(LOADTEST_FLAGS); \
	else \
		$(GO) build -o bin/productsd ./cmd/productsd && \
		echo ./bin/loadtest demo -productsd bin/productsd $(LOADTEST_FLAGS) && \
		./bin/loadtest demo -productsd bin/productsd $(LOADTEST_FLAGS); \
	fi

## compare: one scenario, same connections, against CACHE_MODE none, redis,
## local and tiered and a static handler writing the same bytes (the
## ceiling), 3 processes each, on a private redis-server; prints throughput,
## p50/p99, hit ratio per tier, database queries, stale reads and CPU per
## request (replicas, Redis, PostgreSQL) as a table; COMPARE_ROUNDS rounds
## (default 3) in which the configurations take turns, medians reported.
## Extra flags: make compare LOADTEST_FLAGS='-net-latency 500us -out summary=compare.json'
compare:
	$(GO) build -o bin/productsd ./cmd/productsd
	$(GO) build -o bin/loadtest ./cmd/loadtest
	./bin/loadtest compare -productsd bin/productsd -rounds $(COMPARE_ROUNDS) $(LOADTEST_FLAGS)

## soak: 10 minutes of the default scenario on three tiered replicas, sampling
## goroutines, heap and L1 size every 30s (SOAK_DURATION, SOAK_EVERY)
soak:
	$(GO) build -o bin/productsd ./cmd/productsd
	$(GO) build -o bin/loadtest ./cmd/loadtest
	scripts/soak.sh

## fuzz: run every fuzz target for FUZZTIME each, one at a time (their seed
## corpora already run in make test). A failing input lands in the package's
## testdata/fuzz and becomes a test case.
FUZZ_TARGETS = \
	FuzzDecodeInput:./products \
	FuzzListParams:./products \
	FuzzParseCacheStatus:./loadtest \
	FuzzParseThreshold:./loadtest \
	FuzzDecodeMessage:./tiercache \
	FuzzGroupedKeys:./tiercache
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		name=$${t%%:*}; pkg=$${t#*:}; \
		echo "$(GO) test -run '^$$' -fuzz '^$$name\$$' -fuzztime $(FUZZTIME) $$pkg"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

## chaos: the default scenario against 3 tiered replicas on a private
## redis-server and a fresh database, one fault per phase (Redis kill, Redis
## stall, pubsub kills, pg_terminate_backend, replica SIGKILL and SIGTERM, CPU
## starvation, a slowed and cut link to Redis, PostgreSQL closed for 5 s with
## half the reads sending stale-if-error); prints a table of figures per
## phase and exits 99 when a phase breaks its README bound. About 4 minutes.
## Where haproxy is on the PATH, replica-kill and replica-term go through it
## (a /readyz check as the readiness probe does); CHAOS_BALANCER=none sends
## them straight to the replicas.
## Extra flags: make chaos CHAOS_FLAGS='-phase 30s -phases redis-kill,net-cut'
CHAOS_BALANCER ?= $(if $(shell command -v haproxy),haproxy,none)
chaos:
	$(GO) build -o bin/productsd ./cmd/productsd
	$(GO) build -o bin/loadtest ./cmd/loadtest
	./bin/loadtest chaos -productsd bin/productsd -balancer $(CHAOS_BALANCER) $(CHAOS_FLAGS)
