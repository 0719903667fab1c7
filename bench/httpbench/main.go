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
	"bufio"
	"bytes"
	"cmp"
	"context"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
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
		// Per configuration: waiting for a quiet machine, start-up, the
		// warm-up, two measurements with their pauses, and the stop.
		per := o.quietWait + 20*time.Second + o.warmup + 2*(o.duration+time.Second)
		o.timeout = time.Duration(o.rounds*len(configs)) * per
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
	var results []*result
	failed := false
	for round := range o.rounds {
		if o.rounds > 1 {
			logf("round %d of %d", round+1, o.rounds)
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
	procs.cleanup()
	interrupted := ctx.Err() != nil
	if interrupted {
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

// result is one measurement: a configuration in a connection mode.
type result struct {
	cfg       config
	mode      mode
	wrk       wrkResult
	perWorker []int64 // requests each worker answered, largest first
	conns     []int64 // connections each worker accepted, in the order of perWorker
	rss       int64   // largest VmRSS of the supervisor process, bytes
	otherCPU  float64 // CPU used by other processes meanwhile, in CPUs (1 = one CPU busy)
	err       error
}

// balance is the largest over the smallest per-worker request count (+Inf
// when a worker answered none; NaN when there are no counts).
func (r *result) balance() float64 {
	if len(r.perWorker) == 0 {
		return math.NaN()
	}
	hi, lo := r.perWorker[0], r.perWorker[len(r.perWorker)-1]
	if lo == 0 {
		if hi == 0 {
			return math.NaN()
		}
		return math.Inf(1)
	}
	return float64(hi) / float64(lo)
}

// bench holds what every configuration shares.
type bench struct {
	o       options
	procs   *procSet
	work    string // temporary directory: manifests, logs, counts
	paddock string // absolute paths
	node    string
	wrk     string
	hello   string
	primary string
	seq     int // supervisors started, to name their files

	mu            sync.Mutex
	paddockListen []string // how paddock's workers took their socket, as seen
}

// listenPath tells, from a paddock worker's environment, how it took its
// socket: as one of paddock's cluster workers (an IPC channel), or by
// socket activation alone.
func listenPath(pid int) string {
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return "unknown"
	}
	cluster := false
	for _, kv := range bytes.Split(env, []byte{0}) {
		if bytes.HasPrefix(kv, []byte("NODE_UNIQUE_ID=")) {
			cluster = true
		}
	}
	if cluster {
		return "cluster workers: `listen({fd: 3})` answered by paddock over the cluster protocol (IPC channel)"
	}
	return "socket activation: `listen({fd: 3})` on the inherited socket (LISTEN_FDS, no IPC channel)"
}

func (b *bench) setup(ctx context.Context) error {
	var err error
	if b.paddock, err = filepath.Abs(b.o.paddock); err != nil {
		return err
	}
	if fi, err := os.Stat(b.paddock); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable paddock binary (build it: go build -o bin/paddock ./cmd/paddock)", b.o.paddock)
	}
	if b.node, err = exec.LookPath(b.o.node); err != nil {
		return fmt.Errorf("node: %v", err)
	}
	if b.node, err = filepath.Abs(b.node); err != nil {
		return err
	}
	dir, err := filepath.Abs(b.o.dir)
	if err != nil {
		return err
	}
	b.hello, b.primary = filepath.Join(dir, "hello.js"), filepath.Join(dir, "primary.js")
	for _, f := range []string{b.hello, b.primary} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("%v (run from the repository root, or pass -dir)", err)
		}
	}
	if b.wrk, err = findWrk(b.o.wrk); err != nil {
		return err
	}
	b.work, err = os.MkdirTemp("", "paddock-httpbench-")
	return err
}

// findWrk returns the path of wrk, or an error that says how to get it.
func findWrk(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s is not installed: install Debian's package (apt-get install wrk) or give its path with -wrk", name)
	}
	return p, nil
}

// server is a running supervisor with its workers, ready to serve.
type server struct {
	sup      *proc
	port     int
	countDir string
	workers  []int // worker pids
}

// runConfig starts c, measures it in every mode and stops it. A failure
// is recorded in the results of the modes it prevented.
func (b *bench) runConfig(ctx context.Context, c config) []*result {
	var out []*result
	fail := func(err error) []*result {
		switch ctx.Err() {
		case context.Canceled:
			err = errors.New("interrupted")
		case context.DeadlineExceeded:
			err = fmt.Errorf("the run timed out (-timeout %s)", b.o.timeout)
		default:
			logf("%s: FAILED: %v", c, err)
		}
		for _, m := range modes[len(out):] {
			out = append(out, &result{cfg: c, mode: m, err: err})
		}
		return out
	}
	if err := b.waitQuiet(ctx); err != nil {
		return fail(err)
	}
	logf("%s: starting %d workers", c, b.o.workers)
	srv, err := b.start(ctx, c)
	if srv != nil {
		defer b.stop(srv)
	}
	if err != nil {
		return fail(err)
	}
	logf("%s: %d workers listening on 127.0.0.1:%d (supervisor pid %d, workers %v)", c, len(srv.workers), srv.port, srv.sup.pid(), srv.workers)
	if c.side == "paddock" {
		how := listenPath(srv.workers[0])
		logf("%s: the workers listen as %s", c, how)
		b.mu.Lock()
		if !slices.Contains(b.paddockListen, how) {
			b.paddockListen = append(b.paddockListen, how)
		}
		b.mu.Unlock()
	}
	if b.o.warmup > 0 {
		logf("%s: warm-up, %s keep-alive", c, b.o.warmup)
		if _, err := b.runWrk(ctx, srv.port, false, b.o.warmup); err != nil {
			return fail(fmt.Errorf("warm-up: %w", err))
		}
	}
	for _, m := range modes {
		r, err := b.measure(ctx, srv, c, m)
		if err != nil {
			return fail(err)
		}
		out = append(out, r)
	}
	return out
}

// measure runs wrk once against srv and gathers the per-worker counts and
// the supervisor's RSS.
func (b *bench) measure(ctx context.Context, srv *server, c config, m mode) (*result, error) {
	// Let the workers write counts that include everything so far.
	if err := sleep(ctx, 300*time.Millisecond); err != nil {
		return nil, err
	}
	before, err := readCounts(srv.countDir)
	if err != nil {
		return nil, err
	}
	logf("%s: %s, %s", c, m.name, b.o.duration)
	rssDone := make(chan struct{})
	rssMax := make(chan int64, 1)
	go func() { rssMax <- sampleRSS(srv.sup.pid(), rssDone) }()
	// CPU time used meanwhile by processes that are not the benchmark's:
	// all the machine's, less this runner's, the supervisor's, the
	// workers' and wrk's.
	ours := append([]int{os.Getpid(), srv.sup.pid()}, srv.workers...)
	busy0, ours0, t0 := systemBusy(), processCPU(ours), time.Now()
	w, err := b.runWrk(ctx, srv.port, m.close, b.o.duration)
	busy1, ours1, wall := systemBusy(), processCPU(ours), time.Since(t0)
	close(rssDone)
	rss := <-rssMax
	if err != nil {
		return nil, err
	}
	other := max(0, (busy1-busy0)-(ours1-ours0)-w.cpu)
	if err := sleep(ctx, 300*time.Millisecond); err != nil {
		return nil, err
	}
	after, err := readCounts(srv.countDir)
	if err != nil {
		return nil, err
	}
	if err := srv.check(); err != nil {
		return nil, err
	}
	r := &result{cfg: c, mode: m, wrk: w, rss: rss, otherCPU: float64(other) / float64(wall)}
	var diffs []workerCount
	for pid, n := range after {
		diffs = append(diffs, workerCount{n.requests - before[pid].requests, n.conns - before[pid].conns})
	}
	slices.SortFunc(diffs, func(a, b workerCount) int { return cmp.Compare(b.requests, a.requests) })
	for _, d := range diffs {
		r.perWorker = append(r.perWorker, d.requests)
		r.conns = append(r.conns, d.conns)
	}
	logf("%s: %s: %.0f req/s, p99 %s, per worker %v requests %v connections, supervisor RSS %s, other processes' CPU %s%s",
		c, m.name, w.reqPerSec, fmtDur(w.p99), r.perWorker, r.conns, fmtMiB(rss), fmtPct(r.otherCPU), errSuffix(w))
	return r, nil
}

func errSuffix(w wrkResult) string {
	if s := w.errors(); s != "" {
		return ", errors: " + s
	}
	return ""
}

// check reports an error when the supervisor or a worker has exited.
func (s *server) check() error {
	if s.sup.exited() {
		return fmt.Errorf("the supervisor exited during the measurement: %v\n%s", s.sup.exitErr(), s.sup.tail())
	}
	for _, pid := range s.workers {
		if !alive(pid) {
			return fmt.Errorf("worker %d exited during the measurement\n%s", pid, s.sup.tail())
		}
	}
	counts, err := readCounts(s.countDir)
	if err != nil {
		return err
	}
	if len(counts) != len(s.workers) {
		return fmt.Errorf("%d workers wrote counts, %d were started (a worker was restarted?)\n%s", len(counts), len(s.workers), s.sup.tail())
	}
	return nil
}

// waitQuiet waits, up to -quiet-wait, until the processes other than this
// one use less than the disturbed share of a CPU over a second. A machine
// that stays busy is only reported: the measurement goes ahead and its
// "other CPU" column tells.
func (b *bench) waitQuiet(ctx context.Context) error {
	if b.o.quietWait <= 0 {
		return nil
	}
	deadline := time.Now().Add(b.o.quietWait)
	self := []int{os.Getpid()}
	logged := false
	for {
		busy0, ours0, t0 := systemBusy(), processCPU(self), time.Now()
		if err := sleep(ctx, time.Second); err != nil {
			return err
		}
		other := float64((systemBusy()-busy0)-(processCPU(self)-ours0)) / float64(time.Since(t0))
		if other < disturbed {
			if logged {
				logf("the machine is quiet again")
			}
			return nil
		}
		if time.Now().After(deadline) {
			logf("other processes still use %s of a CPU after %s: measuring anyway", fmtPct(other), b.o.quietWait)
			return nil
		}
		if !logged {
			logf("other processes use %s of a CPU: waiting up to %s for them to finish", fmtPct(other), b.o.quietWait)
			logged = true
		}
	}
}

// start starts the supervisor of c and waits until its workers listen.
func (b *bench) start(ctx context.Context, c config) (*server, error) {
	b.seq++
	name := fmt.Sprintf("%d-%s", b.seq, strings.ReplaceAll(c.String(), " ", "-"))
	countDir := filepath.Join(b.work, name+"-counts")
	if err := os.Mkdir(countDir, 0o755); err != nil {
		return nil, err
	}
	var cmd *exec.Cmd
	env := cleanEnv()
	switch c.side {
	case "paddock":
		manifest := filepath.Join(b.work, name+".yaml")
		if err := os.WriteFile(manifest, []byte(b.manifest(c.policy, countDir)), 0o644); err != nil {
			return nil, err
		}
		// A control socket of its own: the benchmark never meets an
		// operator's supervisor.
		cmd = exec.Command(b.paddock, "run", "--log-format", "json", "--socket", filepath.Join(b.work, name+".sock"), manifest)
	case "node":
		cmd = exec.Command(b.node, b.primary)
		env = append(env, "BENCH_SCHED_POLICY="+c.policy, "BENCH_WORKERS="+strconv.Itoa(b.o.workers),
			"HOST=127.0.0.1", "PORT=0", "HELLO_COUNT_DIR="+countDir)
	}
	cmd.Env = env
	cmd.Dir = b.work
	logFile, err := os.Create(filepath.Join(b.work, name+".log"))
	if err != nil {
		return nil, err
	}
	sup, err := b.procs.start(name, cmd, logFile)
	if err != nil {
		logFile.Close()
		return nil, err
	}
	srv := &server{sup: sup, countDir: countDir}

	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := ctx.Err(); err != nil {
			return srv, err
		}
		if sup.exited() {
			return srv, fmt.Errorf("%s exited before its workers listened: %v\n%s", c.side, sup.exitErr(), sup.tail())
		}
		counts, err := readCounts(countDir)
		if err != nil {
			return srv, err
		}
		for pid := range counts {
			b.procs.addWorker(pid)
		}
		port := sup.port(c.side, b.o.workers)
		if port > 0 && len(counts) >= b.o.workers {
			srv.port = port
			for pid := range counts {
				srv.workers = append(srv.workers, pid)
			}
			slices.Sort(srv.workers)
			if len(counts) > b.o.workers {
				return srv, fmt.Errorf("%d workers started, %d asked for\n%s", len(counts), b.o.workers, sup.tail())
			}
			return srv, nil
		}
		if time.Now().After(deadline) {
			return srv, fmt.Errorf("%s: workers not listening after 20s (%d of %d ready)\n%s", c.side, len(counts), b.o.workers, sup.tail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// manifest is the paddock manifest for policy. Strings are written as JSON
// strings, which YAML reads as double-quoted scalars.
func (b *bench) manifest(policy, countDir string) string {
	q := func(s string) string {
		j, _ := json.Marshal(s)
		return string(j)
	}
	ipc := ""
	if b.o.paddockIPC != "" {
		ipc = "    ipc: " + b.o.paddockIPC + "\n"
	}
	return fmt.Sprintf(`# written by bench/httpbench
apps:
  hello:
    exec: %s
    execPath: %s
    instances: %d
    listen: ["127.0.0.1:0"]
    schedulingPolicy: %s
    env: {HELLO_COUNT_DIR: %s}
    restart: never
    killTimeout: 5s
`, q(b.hello), q(b.node), b.o.workers, policy, q(countDir)) + ipc
}

// stop stops a supervisor and whatever it left behind.
func (b *bench) stop(srv *server) {
	srv.sup.stop(8 * time.Second)
	b.procs.killWorkers()
}

// runWrk runs wrk against 127.0.0.1:port for d.
func (b *bench) runWrk(ctx context.Context, port int, close bool, d time.Duration) (wrkResult, error) {
	args := b.wrkArgs(close, d)
	args = append(args, fmt.Sprintf("http://127.0.0.1:%d/", port))
	var out bytes.Buffer
	cmd := exec.Command(b.wrk, args...)
	cmd.Stdout = &out
	cmd.Env = cleanEnv()
	p, err := b.procs.start("wrk", cmd, nil)
	if err != nil {
		return wrkResult{}, err
	}
	defer p.stop(time.Second)
	select {
	case <-p.done:
	case <-ctx.Done():
		return wrkResult{}, ctx.Err()
	case <-time.After(d + 15*time.Second):
		return wrkResult{}, fmt.Errorf("wrk did not finish within %s", d+15*time.Second)
	}
	if err := p.exitErr(); err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %v\n%s%s", err, out.String(), p.tail())
	}
	w, err := parseWrk(out.String())
	if err != nil {
		return w, fmt.Errorf("%v in wrk's output:\n%s", err, out.String())
	}
	w.cpu = p.cmd.ProcessState.UserTime() + p.cmd.ProcessState.SystemTime()
	return w, nil
}

func (b *bench) wrkArgs(close bool, d time.Duration) []string {
	args := []string{"-t" + strconv.Itoa(b.o.threads), "-c" + strconv.Itoa(b.o.connections),
		fmt.Sprintf("-d%ds", int(d/time.Second)), "--latency"}
	if close {
		args = append(args, "-H", "Connection: close")
	}
	return args
}

// cleanEnv is this process's environment without the socket-activation
// variables, which must not reach Node's primary or paddock by accident.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET", "NODE_CLUSTER_SCHED_POLICY", "HELLO_COUNT_DIR":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// workerCount is what a worker wrote: the requests it answered and the
// connections it accepted so far.
type workerCount struct{ requests, conns int64 }

// readCounts reads the counts of every worker that wrote them: file name
// pid, content "requests connections".
func readCounts(dir string) (map[int]workerCount, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := map[int]workerCount{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue // a .tmp file being written
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, err
		}
		var n workerCount
		if _, err := fmt.Sscan(string(b), &n.requests, &n.conns); err != nil {
			return nil, fmt.Errorf("count file %s: %q: %v", e.Name(), b, err)
		}
		out[pid] = n
	}
	return out, nil
}

// sampleRSS samples the VmRSS of pid every 50 ms until stop is closed and
// returns the largest, in bytes.
func sampleRSS(pid int, stop <-chan struct{}) int64 {
	var hi int64
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if v := rss(pid); v > hi {
			hi = v
		}
		select {
		case <-stop:
			return hi
		case <-t.C:
		}
	}
}

func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n * 1024
			}
		}
	}
	return 0
}

// clockTick is the unit of the CPU times in /proc: USER_HZ, 100 on Linux.
const clockTick = 10 * time.Millisecond

// systemBusy is the CPU time all CPUs have spent running processes (user,
// nice and system; not interrupts, idle or steal) since boot.
func systemBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 4 || f[0] != "cpu" {
		return 0
	}
	var ticks int64
	for _, v := range f[1:4] {
		n, _ := strconv.ParseInt(v, 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * clockTick
}

// processCPU is the CPU time (user and system) the processes pids have used.
func processCPU(pids []int) time.Duration {
	var ticks int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		// After the command name: state is field 3; utime and stime are 14 and 15.
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 13 {
			continue
		}
		for _, v := range f[11:13] {
			n, _ := strconv.ParseInt(v, 10, 64)
			ticks += n
		}
	}
	return time.Duration(ticks) * clockTick
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// State is the field after the parenthesised command name; Z is a zombie.
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] != 'Z'
	}
	return true
}

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

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "httpbench: "+format+"\n", args...)
}

// ---- processes ----

// procSet is every process the run started, for the final clean-up.
type procSet struct {
	mu      sync.Mutex
	procs   []*proc
	workers map[int]bool // worker pids seen (children of a supervisor)
}

// proc is a started process, leader of its own process group.
type proc struct {
	set  *procSet
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when it has exited and been waited for
	err  error

	mu    sync.Mutex
	lines []string // the last lines of its output
	addr  string   // paddock: the bound address from the "listening" line
	ports []int    // node primary: the port of each "listening" line
}

const tailLines = 40

// start starts cmd in a process group of its own, killed by the kernel if
// this process dies. Unless cmd.Stdout is set, its stdout and stderr are
// read line by line (kept in log when not nil, the last lines in memory).
func (ps *procSet) start(name string, cmd *exec.Cmd, log io.WriteCloser) (*proc, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &proc{set: ps, name: name, cmd: cmd, done: make(chan struct{})}
	// Our own pipe, not cmd.StdoutPipe: Wait must return when the process
	// exits even if a child of it still holds the pipe open.
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	if cmd.Stdout == nil {
		cmd.Stdout = w
	}
	cmd.Stderr = w
	ps.mu.Lock() // no clean-up between the start and the registration
	err = cmd.Start()
	if err == nil {
		ps.procs = append(ps.procs, p)
	}
	ps.mu.Unlock()
	w.Close()
	if err != nil {
		r.Close()
		return nil, err
	}
	go p.read(r, log)
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) read(r io.ReadCloser, log io.WriteCloser) {
	defer r.Close()
	if log != nil {
		defer log.Close()
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if log != nil {
			fmt.Fprintln(log, line)
		}
		var ev struct {
			Msg     string `json:"msg"`
			Address string `json:"address"`
			Port    int    `json:"port"`
		}
		_ = json.Unmarshal([]byte(line), &ev)
		p.mu.Lock()
		p.lines = append(p.lines, line)
		if len(p.lines) > tailLines {
			p.lines = p.lines[len(p.lines)-tailLines:]
		}
		if ev.Msg == "listening" {
			if ev.Address != "" && p.addr == "" {
				p.addr = ev.Address // paddock: the socket it bound
			}
			if ev.Port > 0 {
				p.ports = append(p.ports, ev.Port) // Node's primary: a worker listens
			}
		}
		p.mu.Unlock()
	}
}

// port is the port the workers listen on, once known: for paddock from its
// "listening" line, for Node's primary once n workers reported listening.
func (p *proc) port(side string, n int) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if side == "paddock" {
		if p.addr == "" {
			return 0
		}
		_, port, err := net.SplitHostPort(p.addr)
		if err != nil {
			return 0
		}
		v, _ := strconv.Atoi(port)
		return v
	}
	if len(p.ports) < n {
		return 0
	}
	return p.ports[0]
}

func (p *proc) tail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.lines) == 0 {
		return ""
	}
	return "last output of " + p.name + ":\n  " + strings.Join(p.lines, "\n  ")
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) exitErr() error {
	if !p.exited() {
		return nil
	}
	return p.err
}

// stop sends SIGTERM to the process, SIGKILL to its group after grace, and
// SIGKILL to what is left of its group once it has exited.
func (p *proc) stop(grace time.Duration) {
	pid := p.pid()
	if !p.exited() {
		_ = syscall.Kill(pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
			logf("%s (pid %d) still running %s after SIGTERM: killing its process group", p.name, pid, grace)
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			select {
			case <-p.done:
			case <-time.After(5 * time.Second):
				logf("%s (pid %d) did not exit after SIGKILL", p.name, pid)
			}
		}
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL) // ESRCH when the group is empty
	ps := p.set
	ps.mu.Lock()
	ps.procs = slices.DeleteFunc(ps.procs, func(q *proc) bool { return q == p })
	ps.mu.Unlock()
}

func (ps *procSet) addWorker(pid int) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.workers == nil {
		ps.workers = map[int]bool{}
	}
	ps.workers[pid] = true
}

// killWorkers kills every worker seen that is still running: a supervisor
// should have stopped them, so one left is reported.
func (ps *procSet) killWorkers() {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for pid := range ps.workers {
		delete(ps.workers, pid)
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !alive(pid) || !bytes.Contains(cmdline, []byte("hello.js")) {
			continue
		}
		logf("worker %d outlived its supervisor: killing it", pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// cleanup stops every process not stopped yet, then any worker left.
func (ps *procSet) cleanup() {
	ps.mu.Lock()
	procs := slices.Clone(ps.procs)
	ps.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.stop(8 * time.Second)
		}()
	}
	wg.Wait()
	ps.killWorkers()
}

// ---- wrk ----

// wrkResult is what is read from wrk's report.
type wrkResult struct {
	reqPerSec float64
	p99       time.Duration
	requests  int64
	connect   int64 // socket errors
	read      int64
	write     int64
	timeout   int64
	non2xx    int64
	cpu       time.Duration // wrk's own CPU time
}

func (w wrkResult) errors() string {
	var parts []string
	for _, e := range []struct {
		name string
		n    int64
	}{{"connect", w.connect}, {"read", w.read}, {"write", w.write}, {"timeout", w.timeout}, {"non-2xx", w.non2xx}} {
		if e.n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", e.name, e.n))
		}
	}
	return strings.Join(parts, ", ")
}

var (
	reqPerSecRe = regexp.MustCompile(`(?m)^Requests/sec:\s+([0-9.]+)`)
	p99Re       = regexp.MustCompile(`(?m)^\s+99(?:\.0+)?%\s+([0-9.]+)(us|ms|s|m|h)\s*$`)
	requestsRe  = regexp.MustCompile(`(?m)^\s+(\d+) requests in `)
	socketRe    = regexp.MustCompile(`(?m)^\s+Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	non2xxRe    = regexp.MustCompile(`(?m)^\s+Non-2xx or 3xx responses: (\d+)`)
)

func parseWrk(out string) (wrkResult, error) {
	var w wrkResult
	m := reqPerSecRe.FindStringSubmatch(out)
	if m == nil {
		return w, errors.New("no Requests/sec line")
	}
	w.reqPerSec, _ = strconv.ParseFloat(m[1], 64)
	m = p99Re.FindStringSubmatch(out)
	if m == nil {
		return w, errors.New("no 99% latency line (was --latency given?)")
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second, "m": time.Minute, "h": time.Hour}[m[2]]
	w.p99 = time.Duration(v * float64(unit))
	if m = requestsRe.FindStringSubmatch(out); m != nil {
		w.requests, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m = socketRe.FindStringSubmatch(out); m != nil {
		w.connect, _ = strconv.ParseInt(m[1], 10, 64)
		w.read, _ = strconv.ParseInt(m[2], 10, 64)
		w.write, _ = strconv.ParseInt(m[3], 10, 64)
		w.timeout, _ = strconv.ParseInt(m[4], 10, 64)
	}
	if m = non2xxRe.FindStringSubmatch(out); m != nil {
		w.non2xx, _ = strconv.ParseInt(m[1], 10, 64)
	}
	return w, nil
}

// ---- the machine ----

type machineInfo struct {
	rows [][2]string
}

func describeMachine(ctx context.Context, o options, b *bench) machineInfo {
	var m machineInfo
	add := func(k, v string) { m.rows = append(m.rows, [2]string{k, v}) }

	model := "unknown"
	if s, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(s), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	add("CPUs", fmt.Sprintf("%d usable (nproc), %s", runtime.NumCPU(), model))
	if s, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(s), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				f := strings.Fields(rest)
				if kb, err := strconv.ParseFloat(f[0], 64); err == nil {
					add("memory", fmt.Sprintf("%.1f GiB", kb/(1<<20)))
				}
			}
		}
	}
	var uts syscall.Utsname
	if syscall.Uname(&uts) == nil {
		add("kernel", utsString(uts.Sysname[:])+" "+utsString(uts.Release[:])+" "+utsString(uts.Machine[:]))
	}
	if s, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(s))
		if len(f) >= 3 {
			add("load average before the run", strings.Join(f[:3], " "))
		}
	}
	goVersion := runtime.Version() + " (this runner)"
	if bi, err := buildinfo.ReadFile(b.paddock); err == nil {
		goVersion = bi.GoVersion + " (paddock built with it)"
	}
	add("Go", goVersion)
	add("Node", firstLine(ctx, b.node, "--version"))
	wrkVersion, _, _ := strings.Cut(firstLine(ctx, b.wrk, "-v"), " Copyright")
	add("wrk", wrkVersion)
	add("workers", fmt.Sprintf("%d per configuration, on both sides", o.workers))
	warm := "no warm-up"
	if o.warmup > 0 {
		warm = fmt.Sprintf("after a %s keep-alive warm-up per configuration", o.warmup)
	}
	add("wrk settings", fmt.Sprintf("`wrk %s URL`, and with `-H 'Connection: close'`; %s", strings.Join(b.wrkArgs(false, o.duration), " "), warm))
	add("rounds", strconv.Itoa(o.rounds))
	return m
}

// addListenPaths adds how paddock's workers took their sockets, known once
// they ran.
func (m *machineInfo) addListenPaths(b *bench) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.paddockListen) == 0 {
		return
	}
	v := strings.Join(b.paddockListen, "; ")
	if b.o.paddockIPC != "" {
		v += fmt.Sprintf(" (`ipc: %s`)", b.o.paddockIPC)
	} else {
		v += " (paddock's default `ipc:`)"
	}
	m.rows = append(m.rows, [2]string{"paddock's workers", v})
}

func utsString(b []int8) string {
	var s []byte
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}

// firstLine is the first line of a version command's output (wrk -v exits
// with 1, so the exit status is ignored).
func firstLine(ctx context.Context, name string, args ...string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, name, args...).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if line == "" {
		return "unknown"
	}
	return strings.TrimSpace(line)
}

// ---- the report ----

// agg is every round of one configuration in one connection mode.
type agg struct {
	cfg   config
	mode  mode
	runs  []*result // the measurements made, in round order
	fails []error
}

func (a *agg) ok() bool { return len(a.runs) > 0 }

func (a *agg) name() string {
	if a.cfg.side == "node" {
		return "node cluster " + a.cfg.policy
	}
	return a.cfg.String()
}

func (a *agg) reqPerSec() float64 {
	return median(a.runs, func(r *result) float64 { return r.wrk.reqPerSec })
}

func (a *agg) p99() time.Duration {
	return time.Duration(median(a.runs, func(r *result) float64 { return float64(r.wrk.p99) }))
}

func (a *agg) balance() float64 { return median(a.runs, (*result).balance) }

func (a *agg) worstBalance() float64 {
	v := math.NaN()
	for _, r := range a.runs {
		if b := r.balance(); math.IsNaN(v) || b > v {
			v = b
		}
	}
	return v
}

func (a *agg) rss() int64 {
	var v int64
	for _, r := range a.runs {
		v = max(v, r.rss)
	}
	return v
}

func (a *agg) otherCPU() float64 {
	var v float64
	for _, r := range a.runs {
		v = max(v, r.otherCPU)
	}
	return v
}

func (a *agg) errors() string {
	var sum wrkResult
	for _, r := range a.runs {
		sum.connect += r.wrk.connect
		sum.read += r.wrk.read
		sum.write += r.wrk.write
		sum.timeout += r.wrk.timeout
		sum.non2xx += r.wrk.non2xx
	}
	if s := sum.errors(); s != "" {
		return s
	}
	return "0"
}

// median of f over rs (the mean of the middle two for an even count).
func median(rs []*result, f func(*result) float64) float64 {
	if len(rs) == 0 {
		return math.NaN()
	}
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// aggregate groups results by configuration (in the order of configs) and
// connection mode.
func aggregate(configs []config, results []*result) []*agg {
	var out []*agg
	for _, c := range configs {
		for _, m := range modes {
			a := &agg{cfg: c, mode: m}
			for _, r := range results {
				if r.cfg != c || r.mode != m {
					continue
				}
				if r.err != nil {
					a.fails = append(a.fails, r.err)
				} else {
					a.runs = append(a.runs, r)
				}
			}
			out = append(out, a)
		}
	}
	return out
}

// disturbed is the share of a CPU used by other processes above which a
// measurement is flagged.
const disturbed = 0.05

func report(out io.Writer, o options, m machineInfo, configs []config, results []*result) {
	fmt.Fprintf(out, "### Machine\n\n| | |\n|---|---|\n")
	for _, r := range m.rows {
		fmt.Fprintf(out, "| %s | %s |\n", r[0], r[1])
	}
	aggs := aggregate(configs, results)
	many := o.rounds > 1

	fmt.Fprintf(out, "\n### Results\n\n")
	if many {
		fmt.Fprintf(out, "%d rounds, configurations in a rotated order each round. req/s, p99 and max/min are the medians "+
			"over the rounds, each round's value in brackets; supervisor RSS is the largest sample of all rounds; "+
			"errors are summed; other CPU is the largest of the rounds.\n\n", o.rounds)
	}
	var other float64
	for _, a := range aggs {
		other = max(other, a.otherCPU())
	}
	fmt.Fprintf(out, "Requests per worker: as counted by the workers, busiest first; with keep-alive, also the connections each accepted. ")
	fmt.Fprintf(out, "Other CPU: CPU time used by processes other than the benchmark's (the supervisor, its workers, wrk, "+
		"this runner) during the measurement, as a share of one CPU; above a few %% the figures are disturbed.\n\n")
	if other > disturbed {
		fmt.Fprintf(out, "**Other processes used up to %s of a CPU during some measurements: those figures are disturbed; "+
			"run again on a quiet machine.**\n\n", fmtPct(other))
	}
	fmt.Fprintf(out, "| configuration | connections | req/s | p99 | requests per worker | max/min | supervisor RSS | errors | other CPU |\n")
	fmt.Fprintf(out, "|---|---|---:|---:|---|---:|---:|---|---:|\n")
	for _, a := range aggs {
		if len(a.fails) > 0 {
			fmt.Fprintf(out, "| %s | %s | failed (%d of %d): %s | | | | | | |\n", a.name(), a.mode.name,
				len(a.fails), len(a.fails)+len(a.runs), mdCell(firstOf(a.fails[0].Error())))
			continue
		}
		if !a.ok() {
			continue // not reached: the run was interrupted
		}
		var reqs, p99s, counts, bals []string
		for _, r := range a.runs {
			reqs = append(reqs, fmt.Sprintf("%.0f", r.wrk.reqPerSec))
			p99s = append(p99s, fmtDur(r.wrk.p99))
			cell := joinCounts(r.perWorker)
			if !r.mode.close {
				// With keep-alive, how wrk's few connections were split
				// between the workers (by the kernel or the primary).
				cell += " (" + joinCounts(r.conns) + " conns)"
			}
			counts = append(counts, cell)
			bals = append(bals, fmtRatio(r.balance()))
		}
		req, p99, bal := fmt.Sprintf("%.0f", a.reqPerSec()), fmtDur(a.p99()), fmtRatio(a.balance())
		if many {
			req += " (" + strings.Join(reqs, ", ") + ")"
			p99 += " (" + strings.Join(p99s, ", ") + ")"
			bal += " (" + strings.Join(bals, ", ") + ")"
		}
		fmt.Fprintf(out, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", a.name(), a.mode.name, req, p99,
			strings.Join(counts, "; "), bal, fmtMiB(a.rss()), a.errors(), fmtPct(a.otherCPU()))
	}

	find := func(side, policy string, m mode) *agg {
		for _, a := range aggs {
			if a.ok() && len(a.fails) == 0 && a.cfg.side == side && a.cfg.policy == policy && a.mode == m {
				return a
			}
		}
		return nil
	}
	// Node's best policy in each mode: the one with more requests/s.
	best := map[mode]*agg{}
	for _, a := range aggs {
		if a.cfg.side == "node" && a.ok() && len(a.fails) == 0 && (best[a.mode] == nil || a.reqPerSec() > best[a.mode].reqPerSec()) {
			best[a.mode] = a
		}
	}
	var paddockPolicies []string
	for _, c := range configs {
		if c.side == "paddock" && !slices.Contains(paddockPolicies, c.policy) {
			paddockPolicies = append(paddockPolicies, c.policy)
		}
	}
	ratio := func(pol string, m mode) (req, p99 float64, ok bool) {
		p, b := find("paddock", pol, m), best[m]
		if p == nil || b == nil {
			return 0, 0, false
		}
		return p.reqPerSec() / b.reqPerSec(), float64(p.p99()) / float64(b.p99()), true
	}

	if len(best) > 0 && len(paddockPolicies) > 0 {
		fmt.Fprintf(out, "\n### Ratios against Node's best policy\n\n")
		fmt.Fprintf(out, "Node's best policy is, in each connection mode, the one with more requests/s. ")
		fmt.Fprintf(out, "Requests/s: above 1 is better for paddock; p99 latency: below 1 is better.\n\n")
		fmt.Fprintf(out, "| | keep-alive | close |\n|---|---:|---:|\n")
		row := "| Node's best policy |"
		for _, m := range modes {
			if b := best[m]; b != nil {
				row += fmt.Sprintf(" %s (%.0f req/s, p99 %s) |", b.cfg.policy, b.reqPerSec(), fmtDur(b.p99()))
			} else {
				row += " — |"
			}
		}
		fmt.Fprintln(out, row)
		for _, pol := range paddockPolicies {
			for _, metric := range []string{"req/s", "p99"} {
				row := fmt.Sprintf("| paddock %s, %s |", pol, metric)
				for _, m := range modes {
					req, p99, ok := ratio(pol, m)
					switch {
					case !ok:
						row += " — |"
					case metric == "req/s":
						row += " " + fmtRatio(req) + "× |"
					default:
						row += " " + fmtRatio(p99) + "× |"
					}
				}
				fmt.Fprintln(out, row)
			}
		}
	}

	fmt.Fprintf(out, "\n### Targets\n\n| target | measured | met |\n|---|---|---|\n")
	for _, t := range []struct {
		pol  string
		m    mode
		want float64
	}{{"reuseport", modes[1], 1.1}, {"none", modes[1], 1.0}, {"rr", modes[1], 0.9}, {"reuseport", modes[0], 1.0}, {"none", modes[0], 1.0}, {"rr", modes[0], 1.0}} {
		what := fmt.Sprintf("%s: paddock %s req/s ≥ %.1f× Node's best", t.m.name, t.pol, t.want)
		if v, _, ok := ratio(t.pol, t.m); ok {
			fmt.Fprintf(out, "| %s | %.3f× | %s |\n", what, v, yesNo(v >= t.want))
		} else {
			fmt.Fprintf(out, "| %s | not measured | — |\n", what)
		}
	}
	// paddock's rr against Node's own rr primary, on the same workers.
	if p, n := find("paddock", "rr", modes[1]), find("node", "rr", modes[1]); p != nil && n != nil {
		v := p.reqPerSec() / n.reqPerSec()
		fmt.Fprintf(out, "| %s: paddock rr req/s ≥ 1.5× Node's rr | %.3f× | %s |\n", modes[1].name, v, yesNo(v >= 1.5))
	}
	var bal []string
	balOK, balAny := true, false
	for _, m := range modes {
		if a := find("paddock", "reuseport", m); a != nil {
			v := a.balance()
			s := fmtRatio(v) + " (" + m.name
			if many {
				s += ", worst round " + fmtRatio(a.worstBalance())
			}
			bal = append(bal, s+")")
			balAny = true
			if !(v < 1.2) {
				balOK = false
			}
		}
	}
	what := "paddock reuseport: max/min requests per worker < 1.2"
	if balAny {
		fmt.Fprintf(out, "| %s | %s | %s |\n", what, strings.Join(bal, ", "), yesNo(balOK))
	} else {
		fmt.Fprintf(out, "| %s | not measured | — |\n", what)
	}
	var padRSS, nodeRSS int64
	for _, a := range aggs {
		if a.cfg.side == "paddock" {
			padRSS = max(padRSS, a.rss())
		} else {
			nodeRSS = max(nodeRSS, a.rss())
		}
	}
	if padRSS > 0 {
		fmt.Fprintf(out, "| paddock's RSS ≤ 10 MiB while serving (largest sample) | %s | %s |\n", fmtMiB(padRSS), yesNo(padRSS <= 10<<20))
	}
	if nodeRSS > 0 {
		fmt.Fprintf(out, "| for reference: Node primary's RSS while serving (largest sample) | %s | — |\n", fmtMiB(nodeRSS))
	}
}

func joinCounts(ns []int64) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.FormatInt(n, 10)
	}
	return strings.Join(s, " / ")
}

func firstOf(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func mdCell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "**no**"
}

func fmtRatio(v float64) string {
	switch {
	case math.IsNaN(v):
		return "—"
	case math.IsInf(v, 1):
		return "∞"
	}
	return fmt.Sprintf("%.2f", v)
}

func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

// fmtPct formats a number of CPUs as a percentage of one CPU.
func fmtPct(cpus float64) string { return fmt.Sprintf("%.0f%%", 100*cpus) }

func fmtMiB(b int64) string {
	if b <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}
