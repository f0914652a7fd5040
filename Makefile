# The two commands a newcomer runs (see README.md):
#   make synth   set up and synthesize examples/basic, offline
#   make test    set up and run every test tier (unit, template, bundling, integration, example synth)

SHELL := /bin/bash
GO ?= go
TEST_TIMEOUT ?= 40m
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

.PHONY: all setup synth test test-fast vet fuzz bench clean local e2e reliability

all: test

# npm ci re-runs only when package-lock.json changed since the last install.
node_modules/.package-lock.json: package-lock.json
	npm ci --no-audit --no-fund

setup: node_modules/.package-lock.json
	$(GO) mod download

synth: setup
	cd examples/basic && ../../node_modules/.bin/cdk synth --quiet
	@echo "Synthesized examples/basic into examples/basic/cdk.out"

vet:
	$(GO) vet ./...
	$(GO) vet -tags 'integration e2e' ./...
	$(GO) vet -tags kdp_noexpr ./runtime/...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

# Fast tier only: unit, template and bundling tests.
test-fast:
	$(GO) test -timeout $(TEST_TIMEOUT) ./...

# Every tier. Integration and end-to-end tests start their own emulators (dynalite, kinesalite) from node_modules on
# 127.0.0.1 and fail, never skip, when one is missing. The processor is also tested as the bundler builds it without
# expressions (build tag kdp_noexpr).
test: setup vet
	$(GO) test -count=1 -tags integration -timeout $(TEST_TIMEOUT) ./...
	$(GO) test -count=1 -tags e2e -timeout $(TEST_TIMEOUT) ./internal/e2e
	$(GO) test -count=1 -tags kdp_noexpr -timeout $(TEST_TIMEOUT) ./runtime/processor
	$(MAKE) synth

# Run the pipeline locally: kinesalite, dynalite and the default processor on 127.0.0.1 (ARGS=-rie for the real bootstrap).
local: setup
	$(GO) run ./examples/local-demo $(ARGS)

# End-to-end tier only (under 10 minutes on 2 cores).
e2e: setup
	$(GO) test -tags e2e -count=1 -timeout 10m ./internal/e2e

# The e2e tier's reliability figures as a markdown table.
reliability: setup
	bash scripts/reliability.sh

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzHandle -fuzztime 60s ./runtime/processor

bench:
	bash scripts/bench.sh

clean:
	rm -rf examples/*/cdk.out
