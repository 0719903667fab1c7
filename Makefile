# paddock: build, run the example, test.
GO      ?= go
BIN     := bin
FUZZTIME ?= 10s

.PHONY: all build run test test-node npm-deps test-deps browser-deps status-page-screenshot check-files vet race fuzz-smoke fuzz mutate bench bench-go bench-http top-screen clean docs-cli reliability k8s-schema

all: build

# VERSION is stamped into bin/paddock: the git description of the checkout
# (tag, commits since, commit, -dirty), or the commit Go records itself.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)
LDFLAGS := $(if $(VERSION),-X main.version=$(VERSION))

build:
	$(GO) build -buildvcs=auto -ldflags "$(LDFLAGS)" -o $(BIN)/paddock ./cmd/paddock
	$(GO) build -o $(BIN)/heartbeat ./examples/heartbeat

## run: build, then supervise examples/hello.yaml (Ctrl-C stops it cleanly).
run: build
	exec $(BIN)/paddock run examples/hello.yaml

## top-screen: the 80x24 screen of paddock top against examples/hello.yaml,
## captured under tmux (needs tmux: apt-get install tmux), into
## docs/top-screen.txt, which the README shows.
top-screen: build
	$(GO) test -count=1 -run '^TestTopScreen$$' ./cmd/paddock -top.screen=$(CURDIR)/docs/top-screen.txt
	@cat docs/top-screen.txt
	@echo "copy it into README.md (Watching it live): TestREADMEShowsTopScreen checks"

## test: no build output tracked, gofmt and vet, the npm packages of the
## tests that run npm libraries, the browser of the status page's test, the
## race-enabled test suite, and a short run of each fuzzer.
test: check-files vet npm-deps test-deps race k8s-schema fuzz-smoke

## npm-deps: the npm packages some tests run (NPM_TEST_DIRS: socket.io and
## @socket.io/cluster-adapter for ipc.relay; dockerfile-utils, the linter of
## the Dockerfile, for internal/dockerfile), installed with npm ci from their
## package-lock.json into each directory's node_modules (not tracked), again
## only when the lock file changed. Needs npm and the npm registry; without
## node on the machine the Node tests skip, and this does nothing.
NPM_TEST_DIRS := internal/supervisor/testdata/socketio internal/dockerfile/testdata/lint
npm-deps: $(addsuffix /node_modules/.package-lock.json,$(NPM_TEST_DIRS))

%/node_modules/.package-lock.json: %/package-lock.json %/package.json
	@if ! command -v node >/dev/null 2>&1; then echo "node is not installed: $* not installed, its tests skip"; exit 0; fi; \
	echo "npm ci in $*"; cd $* && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.package-lock.json

## test-deps: the Debian packages some tests drive for real: chromium
## (TestStatusPageInBrowser drives it headless to test the status page of
## --http-addr as a person sees it), tmux (the end-to-end tests of paddock top
## type into it and read its screen; TestCompletionZsh types into zsh in it),
## bash-completion (TestCompletion sources the generated bash script with it),
## zsh and fish (TestCompletionZsh and TestCompletionFish complete with their
## generated scripts in those shells; without them the tests fail unless
## PADDOCK_SKIP_SHELLS=1), systemd (TestSystemdUnitVerify
## runs systemd-analyze verify on deploy/systemd/paddock.service; without it
## the test fails unless PADDOCK_SKIP_SYSTEMD=1) and git (the revision tests
## make real repositories with it; paddock itself reads .git without it).
## Each missing one is installed
## with apt-get when apt-get can be run (as root). Without chromium or tmux
## their tests fail, unless PADDOCK_SKIP_BROWSER=1 or PADDOCK_SKIP_TMUX=1.
## browser-deps is the old name of this target.
CHROMIUM ?= /usr/bin/chromium
test-deps:
	@missing=""; \
	[ -x "$(CHROMIUM)" ] || missing="$$missing chromium"; \
	command -v tmux >/dev/null 2>&1 || missing="$$missing tmux"; \
	[ -f /usr/share/bash-completion/bash_completion ] || missing="$$missing bash-completion"; \
	command -v zsh >/dev/null 2>&1 || missing="$$missing zsh"; \
	command -v fish >/dev/null 2>&1 || missing="$$missing fish"; \
	command -v systemd-analyze >/dev/null 2>&1 || missing="$$missing systemd"; \
	command -v git >/dev/null 2>&1 || missing="$$missing git"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing with apt-get:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else \
		echo "missing:$$missing, and apt-get cannot install them: their tests fail unless PADDOCK_SKIP_BROWSER=1 / PADDOCK_SKIP_TMUX=1 / PADDOCK_SKIP_SYSTEMD=1 / PADDOCK_SKIP_SHELLS=1"; \
	fi
browser-deps: test-deps

## status-page-screenshot: docs/status-page.png, the README's picture of the
## status page, taken by TestStatusPageInBrowser once its charts have 12
## readings (about a minute). The test alone writes bin/status-page.png.
status-page-screenshot: browser-deps
	PADDOCK_SCREENSHOT=$(CURDIR)/docs/status-page.png PADDOCK_SCREENSHOT_SAMPLES=12 \
		$(GO) test -count=1 -run '^TestStatusPageInBrowser$$' ./cmd/paddock

## test-node: the Node cluster parity harness (internal/nodecompat), every
## case: the worker side of Node's test-cluster-* tests under Node's own
## primary and under paddock, side by side. Fails when a case fails under
## Node's primary (a harness defect) or fails under paddock without being
## listed in internal/nodecompat/testdata/known-failures.txt. Prints the
## table (bin/node-parity.md; docs/node-parity.md keeps the latest). About
## three minutes; make test runs its fast share (the cases expected to pass).
test-node:
	@mkdir -p $(BIN)
	@rm -f $(BIN)/node-parity.md
	$(GO) test -count=1 -timeout 30m ./internal/nodecompat -run '^TestNodeParity$$' -parity.all \
		-parity.markdown $(CURDIR)/$(BIN)/node-parity.md; status=$$?; \
		if [ -f $(BIN)/node-parity.md ]; then cat $(BIN)/node-parity.md; fi; exit $$status

## reliability: the long part of the reliability suite (internal/reliability):
## the real binary through 50 rolling updates under load per policy, kill -9
## with 50 workers, a crash loop beside a healthy app for 60 s, 1000 reload
## cycles, hostile manifest files, a reader of its output that stops reading;
## prints the report table (docs/reliability.md keeps one). Exits non-zero
## when anything was lost. make test runs its short part.
reliability:
	$(GO) test -count=1 -timeout 60m -v ./internal/reliability -reliability.long

## check-files: fail when git tracks an executable binary or a file over 1 MiB.
check-files:
	@./scripts/check-files.sh

vet:
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet ./...

race:
	$(GO) test -race -count=1 ./...

## k8s-schema: the Kubernetes files under deploy/kubernetes decoded strictly
## into the Kubernetes API's Go types (k8s.io/api): an unknown or misspelled
## field, or a value of the wrong type, fails. A module of its own
## (internal/tools/k8sschema), so that paddock's does not depend on k8s.io/api.
k8s-schema:
	cd internal/tools/k8sschema && $(GO) vet ./... && $(GO) test -count=1 ./...

## docs-cli: regenerate docs/cli/, the Markdown reference of the command line,
## from paddock's command tree (cmd/paddock's TestCLIDocs fails when it is stale).
docs-cli:
	$(GO) test -count=1 -run '^TestCLIDocs$$' ./cmd/paddock -update

## fuzz-smoke: each fuzzer for FUZZTIME: the manifest decoder, the IPC wire
## (framing and descriptors), a worker's IPC channel, the cluster protocol
## handler, the relay's reading of messages (ipc.relay), the control API,
## the JSON to YAML of -o yaml, a log file's line read back (paddock logs),
## the query of /readyz, the supervisord INI reader and converter (paddock
## import), the GitHub workflow commands of --format github, a repository's
## .git read for the manifests' revision, its object store (loose objects,
## packfile entries, deltas), the Dockerfile reader.
## scripts/fuzz.sh runs each, and runs again a fuzzer that failed only with
## Go's own end-of-fuzztime race (go.dev/issue/75804, fixed in Go 1.27).
fuzz-smoke:
	@./scripts/fuzz.sh $(GO) $(FUZZTIME) FuzzDecode ./manifest
	@./scripts/fuzz.sh $(GO) $(FUZZTIME) FuzzWire ./internal/nodeipc
	@./scripts/fuzz.sh $(GO) $(FUZZTIME) FuzzChannel ./internal/ipc
	@./scripts/fuzz.sh $(GO) $(FUZZTIME) FuzzClusterMessage ./internal/supervisor
	@./scripts/fuzz.sh $(GO) $(FUZZTIME) FuzzRelayMessage ./internal/supervisor
	@./scripts/fuzz.sh $(GO) $(FUZZTIME) FuzzControlRequest ./internal/control
	@./scripts/fuzz.sh $(GO) $(FUZZTIME) FuzzJSONToYAML ./cmd/paddock
	@./scripts/fuzz.sh $(GO) $(FUZZTIME) FuzzParseLine ./internal/logfile
	@./scripts/fuzz.sh $(GO) $(FUZZTIME) FuzzReadyz ./internal/healthz
	@./scripts/fuzz.sh $(GO) $(FUZZTIME) FuzzSupervisord ./internal/importer
	@./scripts/fuzz.sh $(GO) $(FUZZTIME) FuzzGitHubCommand ./internal/annotate
	@./scripts/fuzz.sh $(GO) $(FUZZTIME) FuzzGitDir ./internal/revision
	@./scripts/fuzz.sh $(GO) $(FUZZTIME) FuzzObjects ./internal/revision
	@./scripts/fuzz.sh $(GO) $(FUZZTIME) FuzzDelta ./internal/revision
	@./scripts/fuzz.sh $(GO) $(FUZZTIME) FuzzParse ./internal/dockerfile

## fuzz: a longer fuzzing session, by hand: make fuzz FUZZTIME=10m
fuzz: fuzz-smoke

## mutate: plant each mutation of internal/tools/mutate/mutations.yaml in a
## temporary copy, run the owning package's tests, report which survive (exit
## 1 if any). Not part of test: it takes about half an hour. One mutation:
## make mutate MUTATE_FLAGS='-run ^supervisor-rr-always-first$$'
MUTATE_FLAGS ?=
mutate:
	$(GO) run ./internal/tools/mutate $(MUTATE_FLAGS)

## bench: the Go benchmarks, then the HTTP benchmark against Node's cluster
## primary; one after the other even under make -j, so neither disturbs the other.
bench:
	$(MAKE) --no-print-directory bench-go
	$(MAKE) --no-print-directory bench-http

bench-go:
	$(GO) test -run='^$$' -bench=. -benchmem ./...

## bench-http: paddock none/reuseport vs Node's cluster rr/none with wrk (needs
## wrk: apt-get install wrk); prints a markdown report. About 80 s per round:
## make bench-http ROUNDS=4 for medians; HTTPBENCH_FLAGS for any other flag
## (go run ./bench/httpbench -help).
ROUNDS ?= 1
HTTPBENCH_FLAGS ?=
bench-http:
	$(GO) build -o $(BIN)/paddock ./cmd/paddock
	$(GO) build -o $(BIN)/httpbench ./bench/httpbench
	$(BIN)/httpbench -paddock $(BIN)/paddock -dir bench -rounds $(ROUNDS) $(HTTPBENCH_FLAGS)

clean:
	rm -rf $(BIN)
