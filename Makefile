# wsrelay: `make run` starts the relay on :8080, `make test` runs every test.

GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
PKGS    := ./...
FUZZTIME ?= 10s

.PHONY: run build test vet fmt-check test-race bench-once bench fuzz docker clean

## run: start the relay on :8080 with the default configuration
run:
	$(GO) run -ldflags "$(LDFLAGS)" .

## build: a static binary in bin/wsrelay (the Dockerfile runs the same target)
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/wsrelay .

## test: vet, gofmt check, race tests in random order, every benchmark once
test: vet fmt-check test-race bench-once

vet:
	$(GO) vet $(PKGS)

fmt-check:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

test-race:
	$(GO) test -race -shuffle=on -count=1 -timeout 600s $(PKGS)

bench-once:
	$(GO) test -run '^$$' -bench . -benchtime 1x -count=1 $(PKGS)

## bench: the Go micro-benchmarks with allocation counts
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count=1 $(PKGS)

## fuzz: each fuzz target for FUZZTIME (default 10s)
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzScanEnvelope$$' -fuzztime $(FUZZTIME) ./frame
	$(GO) test -run '^$$' -fuzz '^FuzzParseHeader$$' -fuzztime $(FUZZTIME) ./frame
	$(GO) test -run '^$$' -fuzz '^FuzzReader$$' -fuzztime $(FUZZTIME) ./frame
	$(GO) test -run '^$$' -fuzz '^FuzzBinaryTypes$$' -fuzztime $(FUZZTIME) ./config

## docker: build the container image wsrelay:latest
docker:
	docker build -t wsrelay:latest .

clean:
	rm -rf bin
