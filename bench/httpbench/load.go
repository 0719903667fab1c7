package main

// Load generation: wrk against each configuration in each connection
// mode, and what its report says.

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// runConfig starts c, measures it in every mode and stops it. A failure
// is recorded in the results of the modes it prevented.
func (b *bench) runConfig(ctx context.Context, c config) []*result {
	if err := b.waitQuiet(ctx); err != nil {
		return b.failed(ctx, c, nil, err)
	}
	srv, err := b.startWarm(ctx, c)
	if srv != nil {
		defer b.stop(srv)
	}
	if err != nil {
		return b.failed(ctx, c, nil, err)
	}
	return b.measureModes(ctx, srv, c)
}

// failed completes out, the results of c measured so far, with err for
// every mode not measured.
func (b *bench) failed(ctx context.Context, c config, out []*result, err error) []*result {
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

// startWarm starts c's supervisor, waits until its workers listen, and
// warms them up. The server it returns (also with an error) is the
// caller's to stop.
func (b *bench) startWarm(ctx context.Context, c config) (*server, error) {
	logf("%s: starting %d workers", c, b.o.workers)
	srv, err := b.start(ctx, c)
	if err != nil {
		return srv, err
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
			return srv, fmt.Errorf("warm-up: %w", err)
		}
	}
	return srv, nil
}

// measureModes measures srv, running c, in every connection mode.
func (b *bench) measureModes(ctx context.Context, srv *server, c config) []*result {
	var out []*result
	for _, m := range modes {
		r, err := b.measure(ctx, srv, c, m)
		if err != nil {
			return b.failed(ctx, c, out, err)
		}
		out = append(out, r)
	}
	return out
}

// pairedRounds is -paired: every configuration's supervisor is started
// first and runs to the end, and each round measures each configuration
// once, in a rotated order, so that the configurations are compared
// minute by minute on the same machine (a supervisor whose workers are not
// measured takes no CPU). A configuration that does not start fails in
// every round.
func (b *bench) pairedRounds(ctx context.Context, configs []config) (results []*result, failed bool) {
	servers := make([]*server, len(configs))
	startErr := make([]error, len(configs))
	defer func() {
		// Every supervisor first, then the workers left over: stopping one
		// server must not take the others' workers for leftovers.
		for _, srv := range servers {
			if srv != nil {
				srv.sup.stop(8 * time.Second)
			}
		}
		b.procs.killWorkers()
	}()
	if err := b.waitQuiet(ctx); err != nil {
		return nil, true
	}
	for i, c := range configs {
		servers[i], startErr[i] = b.startWarm(ctx, c)
	}
	for round := range b.o.rounds {
		logf("round %d of %d (paired)", round+1, b.o.rounds)
		for i := range configs {
			if ctx.Err() != nil {
				return results, true
			}
			j := (i + round) % len(configs)
			var rs []*result
			if startErr[j] != nil {
				rs = b.failed(ctx, configs[j], nil, startErr[j])
			} else {
				rs = b.measureModes(ctx, servers[j], configs[j])
			}
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
	sup := []int{srv.sup.pid()}
	busy0, ours0, sup0, t0 := systemBusy(), processCPU(ours), processCPU(sup), time.Now()
	load0 := loadAverage()
	w, err := b.runWrk(ctx, srv.port, m.close, b.o.duration)
	busy1, ours1, sup1, wall := systemBusy(), processCPU(ours), processCPU(sup), time.Since(t0)
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
	r := &result{cfg: c, mode: m, wrk: w, rss: rss, otherCPU: float64(other) / float64(wall),
		supCPU: sup1 - sup0, load: load0}
	var diffs []workerCount
	for pid, n := range after {
		diffs = append(diffs, workerCount{n.requests - before[pid].requests, n.conns - before[pid].conns})
	}
	slices.SortFunc(diffs, func(a, b workerCount) int { return cmp.Compare(b.requests, a.requests) })
	for _, d := range diffs {
		r.perWorker = append(r.perWorker, d.requests)
		r.conns = append(r.conns, d.conns)
	}
	logf("%s: %s: %.0f req/s, p99 %s, per worker %v requests %v connections, supervisor RSS %s, supervisor CPU %s (%s per connection), other processes' CPU %s, load average %s%s",
		c, m.name, w.reqPerSec, fmtDur(w.p99), r.perWorker, r.conns, fmtMiB(rss), r.supCPU, fmtMicros(r.cpuPerConn()), fmtPct(r.otherCPU), load0, errSuffix(w))
	return r, nil
}

func errSuffix(w wrkResult) string {
	if s := w.errors(); s != "" {
		return ", errors: " + s
	}
	return ""
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
