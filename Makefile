# mailarc build targets. SQLite FTS5 needs the sqlite_fts5 build tag.
GO       ?= go
TAGS     ?= sqlite_fts5
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.1.0-dev)
LDFLAGS  := -X github.com/mailarc/mailarc/internal/version.Version=$(VERSION)
FUZZTIME ?= 20s
PKGS     ?= ./...

.PHONY: build test check fuzz bench bench-report clean

build:
	$(GO) build -tags $(TAGS) -ldflags "$(LDFLAGS)" -o bin/mailarc ./cmd/mailarc

# The test command of the README and of .ci/run.
# third_party/go-smtp is a patched fork with its own module (see its MAILARC.md).
test:
	$(GO) test -tags $(TAGS) -timeout 30m $(PKGS)
	cd third_party/go-smtp && $(GO) test ./...

check:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet -tags $(TAGS) ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 -tags $(TAGS) ./...

# Runs every fuzz target for FUZZTIME each (see scripts/fuzz.sh).
fuzz:
	FUZZTIME=$(FUZZTIME) TAGS=$(TAGS) scripts/fuzz.sh

bench:
	$(GO) test -tags $(TAGS) -run '^$$' -bench . -benchtime 1x $(PKGS)

# The whole benchmark report of docs/benchmarks.md (mailarc-bench scale,
# smtp, mirror, backends): BENCH_N=100000,1000000 for the million-message run.
BENCH_N ?= 100000
bench-report:
	scripts/bench-report.sh $(BENCH_N) bench-report.md

clean:
	rm -rf bin
