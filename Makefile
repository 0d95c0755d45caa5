# sagabox — `make run` starts everything locally, `make test` proves it.
GO      ?= go
FRESH   ?=
UP_ARGS  = $(if $(FRESH),-fresh,)

.PHONY: run test fuzz chaos bench scale soak build jaeger deps clean

## run: Postgres (local cluster), Kafka (embedded), relays, the three services and Jaeger; Ctrl-C stops.
##      FRESH=1 starts empty. Jaeger is built once into bin/ (~5 min); SKIP_JAEGER=1 skips that.
run: deps
	@if [ -z "$(SKIP_JAEGER)" ]; then scripts/build-jaeger.sh || echo "make run: Jaeger could not be built; running without traces" >&2; fi
	$(GO) run ./cmd/sagabox up $(UP_ARGS)

## test: vet, formatting and every test (real Postgres, broker and relay), with the race detector.
test: deps
	$(GO) vet ./...
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) test -race -count=1 -timeout 20m ./...
	cd bench && $(GO) vet ./... && $(GO) test -count=1 -timeout 10m ./...

## fuzz: every fuzz target (go test -list '^Fuzz' ./...) for FUZZTIME each (default 45s), one after
##       the other; FUZZ=<regexp> picks targets. A failing input lands in the package's
##       testdata/fuzz/<target>/: commit it as a regression seed (make test runs every seed corpus).
fuzz:
	GO=$(GO) scripts/fuzz.sh

## chaos: the local system with two instances of each service, 300 orders, 25 SIGKILLs of instances,
##        the relay, the broker, Postgres and the whole stack; checks every saga ended and the money.
##        SEED=N replays a run's schedule.
chaos: deps
	$(GO) test -count=1 -timeout 60m -run 'TestChaos$$' -v ./e2e/chaos/ -args -chaos.kills=25 -chaos.orders=300 $(if $(SEED),-chaos.seed=$(SEED),)

## bench: throughput, latency, CPU and memory of the local system (make run's) against the Postgres
##        commit ceiling of the same run, tracing on and off, and the relay against Watermill's SQL
##        forwarder; one table, kept in bench/results/<date>.txt. Run it alone on the machine.
bench: deps
	@scripts/build-jaeger.sh
	cd bench && $(GO) run .

## scale: the system measured empty, then with the rows of SAGAS (10,000,000) finished sagas written into
##        its databases: saturation, p99 at half load, every admin and console read, with the ratios.
##        Kept in bench/results/scale-<date>.txt; about an hour, 25 GB of disk. Run it alone on the machine.
SAGAS ?= 10000000
scale: deps
	cd bench && $(GO) run . -scale $(SAGAS) -orders 5000 -latency-for 30s -out results/scale-$$(date +%F).txt

## soak: an hour at 100 orders/s with every retention a few minutes; every table's size at the start, after
##       the first retention period and at the end. Kept in bench/results/soak-<date>.txt.
soak: deps
	cd bench && $(GO) run . -soak 1h -soak-rate 100 -out results/soak-$$(date +%F).txt

## build: the sagabox binary into bin/.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/sagabox ./cmd/sagabox

## jaeger: build Jaeger v2 (v1.76.0) into bin/jaeger for local traces (~5 min the first time).
jaeger:
	scripts/build-jaeger.sh

## deps: PostgreSQL server binaries (apt) when missing.
deps:
	@scripts/ensure-postgres.sh

clean:
	rm -rf bin .data
