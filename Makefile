# astrid — build, test and benchmark targets. `make help` lists them.
GO        ?= go
PKG       ?= ./...
T         ?=
FUZZTIME  ?= 30s
BENCHCOUNT ?= 6
BENCHTIME ?= 1s
RESULTS   ?= bench/results/latest.txt
# Tools are pinned; `go run pkg@version` uses the module proxy once, then the cache.
BENCHSTAT := golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da

WASM_ENV  := GOOS=wasip1 GOARCH=wasm
EXAMPLES  := $(wildcard examples/*/main.go)
GUESTS    := $(wildcard capsule/testdata/guests/*/main.go)

.PHONY: help build examples guests test test-short lint depcheck fuzz bench bench-scaling bench-compare run clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

build: ## build bin/astrid
	$(GO) build -o bin/astrid ./cmd/astrid

examples: ## build every example capsule's .wasm beside its Capsule.toml
	@for f in $(EXAMPLES); do d=$$(dirname $$f); n=$$(basename $$d); \
		echo "wasm  $$d/$$n.wasm"; \
		$(WASM_ENV) $(GO) build -buildmode=c-shared -trimpath -o $$d/$$n.wasm ./$$d || exit 1; done

guests: ## build the test guests under capsule/testdata/guests
	@for f in $(GUESTS); do d=$$(dirname $$f); n=$$(basename $$d); \
		echo "wasm  $$d/$$n.wasm"; \
		$(WASM_ENV) $(GO) build -buildmode=c-shared -trimpath -o $$d/$$n.wasm ./$$d || exit 1; done

test: examples ## run every test (unit, golden, integration) with -race
	$(GO) test -race -count=1 -timeout 20m $(if $(T),-run '$(T)') $(PKG)

test-short: ## fast unit tests only
	$(GO) test -short -count=1 $(if $(T),-run '$(T)') $(PKG)

lint: depcheck ## gofmt, go vet and the import-graph check
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1)
	$(GO) vet ./...

depcheck: ## enforce the package DAG (DESIGN.md) and library ownership
	@sh scripts/depcheck.sh

fuzz: ## run each fuzz target for FUZZTIME
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./manifests
	$(GO) test -run '^$$' -fuzz '^FuzzEncodeStrings$$' -fuzztime $(FUZZTIME) ./manifests
	$(GO) test -run '^$$' -fuzz '^FuzzLocate$$' -fuzztime $(FUZZTIME) ./manifests
	$(GO) test -run '^$$' -fuzz '^FuzzMatch$$' -fuzztime $(FUZZTIME) ./bus
	$(GO) test -run '^$$' -fuzz '^FuzzEscape$$' -fuzztime $(FUZZTIME) ./bus
	$(GO) test -run '^$$' -fuzz '^FuzzEnvelopeJSON$$' -fuzztime $(FUZZTIME) ./hoststate

bench: examples ## run the benchmark suite and write $(RESULTS)
	@mkdir -p $(dir $(RESULTS))
	$(GO) test -run '^$$' -bench . -benchmem -count $(BENCHCOUNT) -benchtime $(BENCHTIME) -timeout 60m ./bench/... | tee $(RESULTS)

bench-scaling: examples ## scaling curves (1..1000 capsules, 1..3 nodes; ~4 GiB) into bench/results/scaling.txt and docs/scaling-*.png
	@mkdir -p bench/results
	ASTRID_BENCH_SCALING=1 $(GO) test -run '^$$' -bench 'BenchmarkScaling' -benchmem -count 1 -timeout 60m ./bench/ | tee bench/results/scaling.txt
	$(GO) run ./cmd/benchplot -in bench/results/scaling.txt -out docs

bench-compare: ## benchstat the last committed results against $(RESULTS)
	@git show HEAD:bench/results/latest.txt > /tmp/astrid-bench-base.txt
	$(GO) run $(BENCHSTAT) /tmp/astrid-bench-base.txt $(RESULTS)

run: build examples ## run a node on the example capsules (embedded NATS on 127.0.0.1:4222)
	./bin/astrid run --log-format=console examples

clean: ## remove build outputs
	rm -rf bin astrid-data
	find examples capsule/testdata -name '*.wasm' -delete
