// Command httpbench compares paddock with Node's own cluster primary serving
// the same Node hello-world workers (bench/hello.js) over HTTP on 127.0.0.1.
//
// For each configuration (paddock none, paddock reuseport, Node cluster rr,
// Node cluster none) it starts the supervisor with the same number of
// workers, warms them up, then runs wrk twice, with keep-alive and with a
// new connection per request (Connection: close), and records requests/s,
// the 99th percentile latency, the requests each worker answered (the
// workers count them, and the connections they accept, and write the counts
// to a file), the largest RSS of the supervisor process while wrk ran, and
// the CPU time that processes other than the benchmark's took meanwhile (a
// disturbed measurement shows). It prints the machine description, a
// markdown table of the results, the ratios against Node's best policy in
// each connection mode, and the team's targets with whether they hold.
// With -rounds N it measures everything N times, starting one
// configuration later each round, and reports medians.
//
// Progress goes to stderr, the report to stdout. Every process it starts
// leads a process group of its own and is stopped, its group killed, and
// any worker left over killed, on success, failure, timeout, Ctrl-C or
// SIGTERM; if the runner itself is killed, the kernel kills them
// (PR_SET_PDEATHSIG), and paddock's workers and Node's follow their
// supervisor.
//
//	go build -o bin/paddock ./cmd/paddock
//	go run ./bench/httpbench -paddock bin/paddock
//
// or `make bench-http`. It needs wrk (Debian's package: apt-get install
// wrk) and Node; it says so, and installs nothing, when one is missing.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// options are the command-line flags.
type options struct {
	paddock     string
	node        string
	wrk         string
	dir         string
	workers     int
	threads     int
	connections int
	duration    time.Duration
	warmup      time.Duration
	configs     string
	timeout     time.Duration
	keep        bool
	rounds      int
	paired      bool
	quietWait   time.Duration
	paddockIPC  string
}

func main() {
	var o options
	flag.StringVar(&o.paddock, "paddock", "bin/paddock", "the paddock binary to benchmark (build it without -race)")
	flag.StringVar(&o.node, "node", "node", "the Node.js binary")
	flag.StringVar(&o.wrk, "wrk", "wrk", "the wrk binary")
	flag.StringVar(&o.dir, "dir", "bench", "the directory holding hello.js and primary.js")
	flag.IntVar(&o.workers, "workers", 2, "workers per configuration, on both sides")
	flag.IntVar(&o.threads, "threads", 2, "wrk threads (-t)")
	flag.IntVar(&o.connections, "connections", 64, "wrk connections (-c)")
	flag.DurationVar(&o.duration, "duration", 8*time.Second, "length of each measurement (whole seconds)")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "keep-alive warm-up before each configuration's measurements (0: none)")
	flag.StringVar(&o.configs, "configs", "paddock-none,paddock-reuseport,paddock-rr,node-rr,node-none",
		"configurations to run, comma-separated: paddock-none, paddock-reuseport, paddock-rr, node-rr, node-none")
	flag.DurationVar(&o.timeout, "timeout", 0, "give up on the whole run after this long (0: a bound computed from the other flags)")
	flag.IntVar(&o.rounds, "rounds", 1, "measure every configuration this many times, in a rotated order each round, and report medians")
	flag.BoolVar(&o.paired, "paired", false, "start every configuration at once and alternate their measurements round by round\n"+
		"(idle supervisors take no CPU), so that their ratios come from the same minutes of a shared machine")
	flag.StringVar(&o.paddockIPC, "paddock-ipc", "",
		"the `ipc:` of the paddock app: auto, node or off (empty: paddock's default). With a channel, hello.js is a cluster\n"+
			"worker and its listen({fd: 3}) is answered by paddock over the cluster protocol; without, it serves the inherited socket")
	flag.DurationVar(&o.quietWait, "quiet-wait", 20*time.Second,
		"before each configuration, wait up to this long for other processes to leave the CPUs idle (0: do not wait)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (manifests, logs, request counts)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: httpbench [flags]\n\n"+
			"Benchmarks paddock against Node's cluster primary with wrk; prints a markdown report on stdout.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	os.Exit(run(o))
}

// run does the whole benchmark and returns the exit code: 0 when every
// measurement was made, 1 when one failed or the run was interrupted, 2 on
// a usage or set-up error.
func run(o options) int {
	configs, err := parseConfigs(o.configs)
	if err == nil {
		err = checkOptions(o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "httpbench:", err)
		return 2
	}

	if o.timeout == 0 {
		o.timeout = defaultTimeout(o, len(configs))
	}

	// Ctrl-C, SIGTERM and SIGHUP cancel the run; they stay caught until
	// the end, so a second Ctrl-C cannot cut the clean-up short.
	sigCtx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stopSignals()
	ctx, cancel := context.WithTimeout(sigCtx, o.timeout)
	defer cancel()

	procs := &procSet{}
	defer procs.cleanup()

	b := &bench{o: o, procs: procs}
	if err := b.setup(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "httpbench:", err)
		return 2
	}
	if !o.keep {
		defer os.RemoveAll(b.work)
	} else {
		defer logf("work directory kept: %s", b.work)
	}

	machine := describeMachine(ctx, o, b)
	start := time.Now()
	results, failed := b.rounds(ctx, configs)
	procs.cleanup()
	if ctx.Err() != nil {
		failed = true
		if sigCtx.Err() != nil {
			logf("interrupted; every process started has been stopped")
		} else {
			logf("timed out after %s; every process started has been stopped", o.timeout)
		}
	}
	logf("done in %s", time.Since(start).Round(time.Second))
	machine.addListenPaths(b)
	report(os.Stdout, o, machine, configs, results)
	if failed {
		return 1
	}
	return 0
}

// defaultTimeout bounds a run of n configurations when -timeout is 0.
func defaultTimeout(o options, n int) time.Duration {
	// Per configuration: waiting for a quiet machine, start-up, the
	// warm-up, two measurements with their pauses, and the stop.
	per := o.quietWait + 20*time.Second + o.warmup + 2*(o.duration+time.Second)
	if o.paired {
		// Started once, measured every round.
		return o.quietWait + time.Duration(n)*(20*time.Second+o.warmup) + time.Duration(o.rounds*n)*2*(o.duration+time.Second)
	}
	return time.Duration(o.rounds*n) * per
}

// rounds measures every configuration -rounds times, until ctx ends, and
// returns the results and whether any measurement failed.
func (b *bench) rounds(ctx context.Context, configs []config) (results []*result, failed bool) {
	if b.o.paired {
		return b.pairedRounds(ctx, configs)
	}
	for round := range b.o.rounds {
		if b.o.rounds > 1 {
			logf("round %d of %d", round+1, b.o.rounds)
		}
		// Each round starts one configuration later, so that no
		// configuration always runs first, on a cold machine.
		for i := range configs {
			if ctx.Err() != nil {
				break
			}
			rs := b.runConfig(ctx, configs[(i+round)%len(configs)])
			for _, r := range rs {
				if r.err != nil {
					failed = true
				}
			}
			results = append(results, rs...)
		}
	}
	return results, failed
}

func checkOptions(o options) error {
	switch {
	case o.workers < 1:
		return errors.New("-workers must be at least 1")
	case o.threads < 1 || o.connections < o.threads:
		return errors.New("-threads must be at least 1 and -connections at least -threads")
	case o.duration < time.Second || o.duration%time.Second != 0:
		return errors.New("-duration must be a whole number of seconds, at least 1s")
	case o.warmup < 0 || o.warmup%time.Second != 0:
		return errors.New("-warmup must be a whole number of seconds")
	case o.timeout < 0:
		return errors.New("-timeout must not be negative")
	case o.rounds < 1:
		return errors.New("-rounds must be at least 1")
	case o.paddockIPC != "" && o.paddockIPC != "auto" && o.paddockIPC != "node" && o.paddockIPC != "off":
		return errors.New("-paddock-ipc must be auto, node or off")
	}
	return nil
}

// config is one way of running the workers.
type config struct {
	side   string // "paddock" or "node"
	policy string // none, reuseport (paddock), rr, none (node)
}

func (c config) String() string { return c.side + " " + c.policy }

func parseConfigs(s string) ([]config, error) {
	var out []config
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		side, policy, _ := strings.Cut(name, "-")
		ok := false
		switch side {
		case "paddock":
			// rr: paddock accepts and hands each connection to a worker
			// over the cluster IPC channel (hello.js is a cluster worker
			// under paddock's default ipc: auto).
			ok = policy == "none" || policy == "reuseport" || policy == "rr"
		case "node":
			ok = policy == "none" || policy == "rr"
		}
		if !ok {
			return nil, fmt.Errorf("unknown configuration %q (want paddock-none, paddock-reuseport, paddock-rr, node-rr or node-none)", name)
		}
		out = append(out, config{side, policy})
	}
	if len(out) == 0 {
		return nil, errors.New("no configuration to run")
	}
	return out, nil
}

// mode is how wrk uses connections.
type mode struct {
	name  string
	close bool // a new connection per request: Connection: close
}

var modes = []mode{{"keep-alive", false}, {"close", true}}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "httpbench: "+format+"\n", args...)
}

// ---- processes ----

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
