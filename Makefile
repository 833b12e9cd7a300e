# upgrader — see README.md. `make demo` and `make test` work on a fresh machine.
GO      ?= go
BIN     := bin/upgrader
PROCEDURE ?= pom-3.1.1-sp1-upgrade
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
# Customer servers run old glibc: the binary is static.
export CGO_ENABLED := 0

.PHONY: all build deps test lint demo bench fuzz clean

all: build

build:
	$(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(BIN) ./cmd/upgrader

deps:
	@.ci/deps

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./... ./testdata/simhost/...

test: deps build lint
	$(GO) test -count=1 ./... ./testdata/simhost/...

demo: build
	@testdata/demo.sh $(BIN) $(PROCEDURE)

# Engine cost per step against the fsync floor of the same disk, measured
# side by side in one run.
bench: build
	@testdata/bench.sh

fuzz:
	$(GO) test ./orchestrator/ -run '^$$' -fuzz FuzzParseVersion -fuzztime 30s
	$(GO) test ./steps/ -run '^$$' -fuzz FuzzSetMPPParams -fuzztime 30s

clean:
	rm -rf bin
