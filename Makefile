# The two commands a newcomer needs: `make run` and `make test`.
GO        ?= go
ADDR      ?= :8080
TARGETS   ?=
BENCHTIME ?= 1s

.PHONY: run test test-short bench lint loadtest demo compare build

build:
	$(GO) build ./...

## run: start one productsd replica against the local PostgreSQL and Redis
run:
	$(GO) run ./cmd/productsd -addr $(ADDR)

## test: vet, then every test (real PostgreSQL and Redis) under the race detector
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 30m ./...

## test-short: the tests that need no servers
test-short:
	$(GO) test -race -count=1 -short ./...

## bench: the tiercache benchmarks, side by side with their baselines
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./tiercache/...

## lint: gofmt check and go vet
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
