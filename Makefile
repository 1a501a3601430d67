# wsrelay: `make run` starts the relay on :8080, `make test` runs every test.

GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
PKGS    := ./...
FUZZTIME ?= 10s

.PHONY: run build test vet fmt-check test-race test-norace bench-once bench bench-load fuzz docker clean test-web test-browser demo-screenshot check-deploy

## run: build bin/wsrelay, then start it on :8080 with the defaults and the demo page at
## http://localhost:8080/; Ctrl-C drains and stops it. The binary runs directly
## (not under go run, nor under a shell, which would report the Ctrl-C to make
## as an error), so make ends quietly when wsrelay exits 0.
run: build
	env WSRELAY_DEMO=true ./bin/wsrelay

## build: a static binary in bin/wsrelay (the Dockerfile runs the same target)
build:
	@echo "building bin/wsrelay $(VERSION) (the first build downloads and compiles the dependencies: a minute or two)"
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/wsrelay .

## test: vet, gofmt check, race tests in random order, the tests built
## without the race detector only (allocations, and the cross-node handover
## under traffic, which the detector slows past what NATS keeps in order),
## every benchmark once
test: vet fmt-check test-race test-norace bench-once

vet:
	$(GO) vet $(PKGS)

fmt-check:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

test-race:
	$(GO) test -race -shuffle=on -count=1 -timeout 600s $(PKGS)

# The tests in files built without the race detector only (//go:build !race).
test-norace:
	$(GO) test -count=1 -run 'Allocs$$|UnderTraffic$$' $(PKGS)

bench-once:
	$(GO) test -run '^$$' -bench . -benchtime 1x -count=1 $(PKGS)

## bench: the Go micro-benchmarks with allocation counts
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count=1 $(PKGS)

## bench-load: one load scenario against a freshly built relay (BENCHMARKS.md),
## e.g. make bench-load SCENARIO=fanout BENCHFLAGS="-members 5000 -report fanout.html"
SCENARIO   ?= idle
BENCHFLAGS ?=
bench-load:
	$(GO) run ./bench $(BENCHFLAGS) $(SCENARIO)

## fuzz: each fuzz target for FUZZTIME (default 10s)
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzScanEnvelope$$' -fuzztime $(FUZZTIME) ./frame
	$(GO) test -run '^$$' -fuzz '^FuzzParseHeader$$' -fuzztime $(FUZZTIME) ./frame
	$(GO) test -run '^$$' -fuzz '^FuzzReader$$' -fuzztime $(FUZZTIME) ./frame
	$(GO) test -run '^$$' -fuzz '^FuzzParseCount$$' -fuzztime $(FUZZTIME) ./frame
	$(GO) test -run '^$$' -fuzz '^FuzzInflate$$' -fuzztime $(FUZZTIME) ./frame
	$(GO) test -run '^$$' -fuzz '^FuzzDeflateRoundTrip$$' -fuzztime $(FUZZTIME) ./frame
	$(GO) test -run '^$$' -fuzz '^FuzzNegotiateDeflate$$' -fuzztime $(FUZZTIME) ./frame
	$(GO) test -run '^$$' -fuzz '^FuzzBinaryTypes$$' -fuzztime $(FUZZTIME) ./config
	$(GO) test -run '^$$' -fuzz '^FuzzRooms$$' -fuzztime $(FUZZTIME) ./auth
	$(GO) test -run '^$$' -fuzz '^FuzzParseAuth$$' -fuzztime $(FUZZTIME) ./auth
	$(GO) test -run '^$$' -fuzz '^FuzzParseBody$$' -fuzztime $(FUZZTIME) ./api
	$(GO) test -run '^$$' -fuzz '^FuzzOnMessage$$' -fuzztime $(FUZZTIME) ./session
	$(GO) test -run '^$$' -fuzz '^FuzzLiveConnection$$' -fuzztime $(FUZZTIME) -parallel 1 ./loop
	$(GO) test -run '^$$' -fuzz '^FuzzHandle$$' -fuzztime $(FUZZTIME) -parallel 1 ./cluster
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeMoved$$' -fuzztime $(FUZZTIME) ./cluster

## test-web: the browser client's types, unit tests and tests against bin/wsrelay (Node.js 20+)
test-web: build web/node_modules
	cd web && npx tsc -p test
	cd web && node --test --test-timeout=60000 test/client.test.mjs test/keyauth.test.mjs test/relay.test.mjs

## test-browser: the demo page in headless Chromium (CHROMIUM, default /usr/bin/chromium) against bin/wsrelay
test-browser: build web/node_modules
	cd web && node --test --test-timeout=120000 test/browser.test.mjs

## demo-screenshot: regenerate docs/demo.png from the browser test
demo-screenshot: build web/node_modules
	cd web && DEMO_SCREENSHOT=../docs/demo.png node --test --test-timeout=120000 test/browser.test.mjs

web/node_modules: web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	@touch $@

## check-deploy: check deploy/ with systemd-analyze and promtool (Debian: systemd, prometheus),
## and deploy/kubernetes against the Kubernetes API schemas (Node.js; npm ci in deploy/ first)
check-deploy: build deploy/node_modules
	deploy/check.sh bin/wsrelay

deploy/node_modules: deploy/package-lock.json
	cd deploy && npm ci --no-audit --no-fund
	@touch $@

## docker: build the container image wsrelay:latest, its binary stamped with VERSION (git describe)
docker:
	docker build --build-arg VERSION=$(VERSION) -t wsrelay:latest .

clean:
	rm -rf bin
