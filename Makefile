# The two commands a newcomer runs (see README.md):
#   make synth   set up and synthesize examples/basic, offline
#   make test    set up and run every test tier (unit, template, bundling, integration, example synth)
#
# With empty caches the first run downloads Go modules and npm packages and compiles the AWS CDK bindings and the
# AWS SDK: each long phase says what it does before it starts.

SHELL := /bin/bash
GO ?= go
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

# Limits of each `go test` run of `make test`, sized for a cold run (empty module and build caches) on 2 cores; they
# add up to well within CI's 90 minutes. A limit stops a hung run, it is not a speed target.
TEST_TIMEOUT ?= 40m
E2E_TIMEOUT ?= 15m
NOEXPR_TIMEOUT ?= 5m
FLAGS_TIMEOUT ?= 15m

# Packages whose tests synthesize CDK templates: run a second time without any feature flag (see internal/testutil).
TEMPLATE_PACKAGES := ./kinesispipeline/... ./examples/...

# Where `make local` puts the demo's binary (.tmp is ignored by git), and the aws-lambda-rie the demo pins.
LOCAL_BIN := .tmp/local-demo
RIE_PACKAGE = $(shell sed -n 's/^const RIEPackage = "\(.*\)"$$/\1/p' internal/localrun/rie.go)

.PHONY: all setup synth test test-fast vet fuzz bench clean local e2e reliability

all: test

# npm ci re-runs only when package-lock.json changed since the last install.
node_modules/.package-lock.json: package-lock.json
	@echo "== npm ci: the pinned CDK CLI, dynalite and kinesalite (package-lock.json)"
	npm ci --no-audit --no-fund

setup: node_modules/.package-lock.json
	@echo "== go mod download (the first time: the AWS CDK bindings and the AWS SDK, a few hundred MB)"
	$(GO) mod download

synth: setup
	@echo "== go build ./examples/basic (the first time compiles the AWS CDK bindings: several minutes)"
	$(GO) build -o .tmp/basic ./examples/basic
	@echo "== cdk synth in examples/basic (runs the app, which compiles the processor for linux/arm64 with go build)"
	cd examples/basic && ../../node_modules/.bin/cdk synth --quiet
	@echo "Synthesized examples/basic into examples/basic/cdk.out"

vet:
	@echo "== go vet (default, integration e2e, and kdp_noexpr build tags) and gofmt"
	$(GO) vet ./...
	$(GO) vet -tags 'integration e2e' ./...
	$(GO) vet -tags kdp_noexpr ./runtime/...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

# Fast tier only: unit, template and bundling tests.
test-fast:
	$(GO) test -timeout $(TEST_TIMEOUT) ./...

# Every tier. Integration and end-to-end tests start their own emulators (dynalite, kinesalite) from node_modules on
# 127.0.0.1 and fail, never skip, when one is missing. The processor is also tested as the bundler builds it without
# expressions (build tag kdp_noexpr), and the template tests once more without feature flags.
test: setup vet
	@echo "== go test -tags integration ./... (unit, template, bundling, integration; the first run compiles every test binary)"
	$(GO) test -count=1 -tags integration -timeout $(TEST_TIMEOUT) ./...
	@echo "== go test -tags e2e ./internal/e2e (end to end: local event source mapping, bootstrap under aws-lambda-rie)"
	$(GO) test -count=1 -tags e2e -timeout $(E2E_TIMEOUT) ./internal/e2e
	@echo "== go test -tags kdp_noexpr ./runtime/... (the processor and the tools as bundled without expressions)"
	$(GO) test -count=1 -tags kdp_noexpr -timeout $(NOEXPR_TIMEOUT) ./runtime/...
	@echo "== template tests without feature flags (KDP_TEST_FEATURE_FLAGS=none: an app older than the recommended flags)"
	KDP_TEST_FEATURE_FLAGS=none $(GO) test -count=1 -timeout $(FLAGS_TIMEOUT) $(TEMPLATE_PACKAGES)
	$(MAKE) synth

# Run the pipeline locally: kinesalite, dynalite and the default processor on 127.0.0.1 (ARGS=-rie for the real bootstrap).
local: setup
	@echo "== go build ./examples/local-demo (the first time compiles the AWS SDK: a minute or two)"
	@mkdir -p $(dir $(LOCAL_BIN))
	$(GO) build -o $(LOCAL_BIN) ./examples/local-demo
ifneq ($(filter -rie,$(ARGS)),)
	@echo "== -rie: the demo runs the real bootstrap (./runtime/cmd/processor, built for this machine) under the AWS Lambda"
	@echo "   Runtime Interface Emulator (aws-lambda-rie) instead of the processor in process. Building both first"
	@echo "   (the first time: a few minutes; aws-lambda-rie comes from the Go module proxy)"
	GOFLAGS= CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=false -tags lambda.norpc -o .tmp/bootstrap ./runtime/cmd/processor
	GOFLAGS= CGO_ENABLED=0 GOBIN=$(CURDIR)/$(dir $(LOCAL_BIN)) $(GO) install $(RIE_PACKAGE)
endif
	$(LOCAL_BIN) $(ARGS)

# End-to-end tier only (under 10 minutes on 2 cores with warm caches).
e2e: setup
	$(GO) test -tags e2e -count=1 -timeout $(E2E_TIMEOUT) ./internal/e2e

# The e2e tier's reliability figures as a markdown table.
reliability: setup
	bash scripts/reliability.sh

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzHandle -fuzztime 60s ./runtime/processor

bench:
	bash scripts/bench.sh

clean:
	rm -rf examples/*/cdk.out .tmp
