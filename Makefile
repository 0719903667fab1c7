# paddock: build, run the example, test.
GO      ?= go
BIN     := bin
FUZZTIME ?= 10s

.PHONY: all build run test vet race fuzz-smoke fuzz bench clean

all: build

build:
	$(GO) build -o $(BIN)/paddock ./cmd/paddock
	$(GO) build -o $(BIN)/heartbeat ./examples/heartbeat

## run: build, then supervise examples/hello.yaml (Ctrl-C stops it cleanly).
run: build
	exec $(BIN)/paddock run examples/hello.yaml

## test: vet, the race-enabled test suite, and a short fuzz of the manifest decoder.
test: vet race fuzz-smoke

vet:
	$(GO) vet ./...

race:
	$(GO) test -race -count=1 ./...

fuzz-smoke:
	$(GO) test -run='^$$' -fuzz='^FuzzDecode$$' -fuzztime=$(FUZZTIME) ./manifest

## fuzz: a longer fuzzing session, by hand: make fuzz FUZZTIME=10m
fuzz: fuzz-smoke

bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./...

clean:
	rm -rf $(BIN)
