# make test: everything CI checks. make bench: the Go benchmarks and the
# suite that compares livekv with its peers (docs/benchmarks.md).
GO ?= go

# The Go tools, pinned in tools/go.mod (it says why not in go.mod).
TOOL := $(GO) tool -modfile=$(CURDIR)/tools/go.mod
STATICCHECK := $(TOOL) staticcheck

# Tests that need Node.js or Chromium are behind this build tag, so that a
# plain go test ./... runs without them; make test always sets it, so in
# CI they run and fail if what they need is missing, never skip.
TAGS := browser

# The platforms that make cross vets and builds every package for.
PLATFORMS := linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64

.PHONY: test vet staticcheck cross npm chromium unit bench-module bench

test: vet staticcheck cross npm chromium unit bench-module

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: the files above need formatting"; exit 1; }
	$(GO) vet -tags $(TAGS) ./...
	cd bench && $(GO) vet ./...

staticcheck:
	$(STATICCHECK) -tags $(TAGS) ./...
	cd bench && $(STATICCHECK) ./...

# Every package, its tests too, vetted and built for each platform, so
# that code for one OS (vfs/lock_*.go) or architecture (the engine's
# assembly on amd64, none on arm64) cannot break another. The platforms
# share the build cache, so a second run takes seconds.
cross:
	@for p in $(PLATFORMS); do \
		echo "GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) vet -tags $(TAGS) ./... && $(GO) build ./..."; \
		GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) vet -tags $(TAGS) ./... && \
		GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) build ./... || exit 1; \
	done

# The official HPKV client that the adapter's tests drive, and Playwright
# for the browser tests of the apps, pinned by their lockfiles.
npm:
	cd adapter/testdata/hpkv && npm ci --no-audit --no-fund
	cd cmd/livekv/testdata/browser && npm ci --no-audit --no-fund

# Debian's Chromium, which the browser tests drive headless.
chromium:
	@test -x "$${CHROMIUM:-/usr/bin/chromium}" || { \
		echo "installing chromium with apt-get"; \
		$$(command -v sudo) apt-get update && $$(command -v sudo) apt-get install -y chromium; }

# The engine's scans prefetch with assembly on amd64; purego builds them
# without it, as on other architectures, and the engine's tests run both.
unit:
	$(GO) test -race -count=1 -tags $(TAGS) ./...
	$(GO) test -count=1 -tags purego ./engine

# The benchmark module: its tests run the suite in -quick mode, which
# checks that it works and writes well-formed results, not its speed.
bench-module:
	cd bench && $(GO) test -count=1 -run . ./...

# The Go benchmarks of every package, then the suite against the peers.
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...
	cd bench && $(GO) run . -out results
