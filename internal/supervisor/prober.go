package supervisor

import (
	"container/heap"
	"context"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/paddock-sh/paddock/procs"
)

// This file holds the prober: one goroutine that runs the health checks of
// every worker that has one, each at its interval, and hands the results
// to the owner loop, which it never blocks. Each probe in flight runs in a
// goroutine of its own that ends by the probe's timeout; a worker has at
// most one probe in flight, and none once it is stopping or gone.

// maxProbesInFlight bounds the probes that run at once, whatever the
// number of workers: the others wait for a slot (their timeout starts
// once they have one).
const maxProbesInFlight = 256

// probeTick is the grid the probes run on: a probe's time is rounded up
// to the next multiple of probeTick, so that the prober wakes at most ten
// times a second and starts the probes due together. Probes spread evenly
// over the second cost paddock several times more (a thread woken for
// each; see BenchmarkHealthChecks200Workers), while the workers' phases
// on the grid stay random: 200 workers probed every second are about 20
// probes every 100ms, never 200 at once.
const probeTick = 100 * time.Millisecond

// onTick returns t rounded up to the probe grid.
func onTick(t time.Time) time.Time {
	if r := t.Truncate(probeTick); !r.Equal(t) {
		return r.Add(probeTick)
	}
	return t
}

// readinessCadence is how often a worker whose readiness waits for its
// health check is probed until it passes once, when its interval is
// longer: a new worker is not kept unready for a whole interval.
const readinessCadence = time.Second

// Results of a probe, the result label of paddock_health_checks_total.
const (
	HealthPass    = "pass"    // the probe passed
	HealthFail    = "fail"    // it got an answer that fails (a status, an exit code, a refused connection)
	HealthTimeout = "timeout" // it got no answer within the healthCheck's timeout
)

// HealthCounts counts an app's probes by result.
type HealthCounts struct {
	Pass, Fail, Timeout int64
}

// healthCounters are an app's HealthCounts as probes finish.
type healthCounters struct {
	pass, fail, timeout atomic.Int64
}

// add counts a probe's result.
func (c *healthCounters) add(result string) {
	switch result {
	case HealthPass:
		c.pass.Add(1)
	case HealthFail:
		c.fail.Add(1)
	case HealthTimeout:
		c.timeout.Add(1)
	}
}

// load returns the counts.
func (c *healthCounters) load() HealthCounts {
	return HealthCounts{Pass: c.pass.Load(), Fail: c.fail.Load(), Timeout: c.timeout.Load()}
}

// probeResult is what one probe of a worker found.
type probeResult struct {
	target *probeTarget
	// result is HealthPass, HealthFail or HealthTimeout; answer says what
	// the probe got (a status and the start of the body, an exit code and
	// the last line of output, an error).
	result string
	answer string
}

// probeTarget is one worker's health check as the prober runs it. What
// the owner sets when it creates the target does not change; route is
// the owner's to change, and the fields below it belong to the prober
// (under its mutex).
type probeTarget struct {
	id   int
	name string // app/id
	// kind is manifest.ProbeHTTP, ProbeTCP or ProbeExec; interval and
	// timeout pace it; startPeriod delays its first probe; fast probes
	// it every readinessCadence until it first passes.
	kind              string
	interval, timeout time.Duration
	startedAt         time.Time
	startPeriod       time.Duration
	fast              bool
	path              string // http
	addr              string // where http and tcp probes connect; "" when dispatched
	port              int    // the port of a dispatched probe
	exec              procs.Spec
	counts            *healthCounters
	route             atomic.Pointer[subscriber] // dispatched: the worker's subscription to the probed socket
	// ctx lives as long as the target is probed: removing it cancels
	// the probe in flight (stop).
	ctx                  context.Context
	stop                 context.CancelFunc
	due                  time.Time
	index                int // in the queue; -1 when not queued
	inFlight, removed    bool
	passedOnce, lastPass bool
	// conn is the connection an http probe left open for the next; busy
	// the one the probe in flight uses.
	conn, busy *probeConn
}

// prober runs the health checks. The owner adds a target when a worker
// starts and removes it when the worker is stopped or exits; Run probes
// each target at its interval until removed, in a goroutine of its own
// that Run's caller waits for. Results wait in results until the owner
// takes them (take), poked through report.
type prober struct {
	procs processes
	execs execExits
	pairs pairMaker

	mu      sync.Mutex
	targets map[int]*probeTarget
	queue   probeQueue
	results []probeResult
	// wake makes Run look at the queue again (a target was added);
	// report tells the owner results are waiting. Neither blocks.
	wake, report chan struct{}
	slots        chan struct{}
	inFlight     sync.WaitGroup
}

// newProber returns a prober that starts exec probes with p; it starts
// nothing.
func newProber(p processes) *prober {
	return &prober{procs: p, targets: map[int]*probeTarget{},
		wake: make(chan struct{}, 1), report: make(chan struct{}, 1), slots: make(chan struct{}, maxProbesInFlight)}
}

// poke sends on c without blocking.
func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// add starts probing t: first at its start time plus startPeriod, with a
// jitter of up to a tenth of its interval (of a second at most), so that
// workers started together do not probe in step; every probe after that
// adds its own jitter (see finish). It never blocks.
func (p *prober) add(t *probeTarget) {
	t.due = onTick(t.startedAt.Add(t.startPeriod + jitter(min(t.interval, readinessCadence)/10)))
	t.index = -1
	t.ctx, t.stop = context.WithCancel(context.Background())
	p.mu.Lock()
	if old := p.targets[t.id]; old != nil {
		p.removeLocked(old)
	}
	p.targets[t.id] = t
	heap.Push(&p.queue, t)
	first := t.index == 0
	p.mu.Unlock()
	if first {
		poke(p.wake)
	}
}

// remove stops probing worker id at once: a probe in flight is cancelled
// (an exec probe's process group is killed) and its result dropped. It
// never blocks.
func (p *prober) remove(id int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if t := p.targets[id]; t != nil {
		p.removeLocked(t)
	}
}

func (p *prober) removeLocked(t *probeTarget) {
	delete(p.targets, t.id)
	t.removed = true
	t.stop()
	t.conn.close()
	t.conn = nil
	if t.busy != nil {
		t.busy.c.SetDeadline(time.Unix(1, 0)) // its probe gives up at once
	}
	if t.index >= 0 {
		heap.Remove(&p.queue, t.index)
	}
}

// take returns the results that wait for the owner, and forgets them.
func (p *prober) take() []probeResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.results
	p.results = nil
	return out
}

// exited takes the exit of a process the owner does not know: an exec
// probe's, which it hands to the probe; it reports whether it did.
func (p *prober) exited(ex procs.Exit) bool { return p.execs.deliver(ex) }

// Run probes the targets as they come due until ctx is done; then it
// cancels the probes in flight, waits for their goroutines and returns.
func (p *prober) Run(ctx context.Context) {
	defer p.pairs.close()
	defer p.inFlight.Wait()
	defer p.cancelAll()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		p.mu.Lock()
		for len(p.queue) > 0 && !p.queue[0].due.After(now) {
			t := heap.Pop(&p.queue).(*probeTarget)
			p.launchLocked(t)
		}
		next := time.Duration(-1)
		if len(p.queue) > 0 {
			next = p.queue[0].due.Sub(now)
		}
		p.mu.Unlock()
		var wake <-chan time.Time
		if next >= 0 {
			timer.Reset(next)
			wake = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		case <-wake:
		}
		timer.Stop()
	}
}

// cancelAll cancels every probe in flight and closes the connections
// kept open: the prober stops.
func (p *prober) cancelAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range p.targets {
		p.removeLocked(t)
	}
}

// launchLocked starts t's probe in a goroutine of its own, which takes a
// slot, probes within t's timeout and hands the result to finish.
func (p *prober) launchLocked(t *probeTarget) {
	t.inFlight = true
	p.inFlight.Go(func() {
		select {
		case p.slots <- struct{}{}:
		case <-t.ctx.Done():
			p.finish(t, time.Now(), probeResult{})
			return
		}
		defer func() { <-p.slots }()
		start := time.Now()
		res := p.probe(t, start.Add(t.timeout))
		if t.ctx.Err() != nil {
			res = probeResult{} // cancelled: the worker is gone
		}
		p.finish(t, start, res)
	})
}

// finish records the result of t's probe, started at start, and queues
// its next probe an interval (within a tenth either way) after start. A
// result is handed to the owner when it can change something there: a
// failure, a pass after a failure, the first pass. A probe cancelled
// (result empty), or of a target removed meanwhile, counts for nothing.
func (p *prober) finish(t *probeTarget, start time.Time, res probeResult) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t.inFlight = false
	if t.removed || res.result == "" {
		return
	}
	t.counts.add(res.result)
	pass := res.result == HealthPass
	report := !pass || !t.lastPass || !t.passedOnce
	t.lastPass = pass
	if pass {
		t.passedOnce = true
	}
	cadence := t.interval
	if t.fast && !t.passedOnce {
		cadence = min(cadence, readinessCadence)
	}
	// Rounded to the nearest tick: the mean interval stays the interval.
	t.due = start.Add(cadence - cadence/10 + jitter(cadence/5) + probeTick/2).Truncate(probeTick)
	if now := time.Now(); t.due.Before(now) {
		t.due = onTick(now)
	}
	heap.Push(&p.queue, t)
	if t.index == 0 {
		poke(p.wake) // sooner than what Run waits for
	}
	if report {
		res.target = t
		p.results = append(p.results, res)
		poke(p.report)
	}
}

// jitter returns a random duration in [0, d).
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(d)))
}

// probeQueue is a min-heap of targets by due time.
type probeQueue []*probeTarget

func (q probeQueue) Len() int           { return len(q) }
func (q probeQueue) Less(i, j int) bool { return q[i].due.Before(q[j].due) }
func (q probeQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}

func (q *probeQueue) Push(x any) {
	t := x.(*probeTarget)
	t.index = len(*q)
	*q = append(*q, t)
}

func (q *probeQueue) Pop() any {
	old := *q
	t := old[len(old)-1]
	old[len(old)-1] = nil
	t.index = -1
	*q = old[:len(old)-1]
	return t
}

// execExits hands the exits of exec probes, which the owner's reaper
// takes, to the probes waiting for them. An exit may come before its
// probe knows its pid (the process exits at once): while a probe is being
// started, exits of unknown processes are kept for it.
type execExits struct {
	mu       sync.Mutex
	waiting  map[int]chan procs.Exit
	early    map[int]procs.Exit
	starting int
}

// begin says a probe is being started.
func (e *execExits) begin() {
	e.mu.Lock()
	e.starting++
	e.mu.Unlock()
}

// started says the probe begun is process pid, started at startedAt, and
// returns where its exit will come; failed (pid 0) that none started.
func (e *execExits) started(pid int, startedAt time.Time) <-chan procs.Exit {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.starting--
	ch := make(chan procs.Exit, 1)
	if pid > 0 {
		// An exit of that pid reaped before the process started was
		// another process's.
		if ex, ok := e.early[pid]; ok && !ex.Time.Before(startedAt) {
			ch <- ex
		} else {
			if e.waiting == nil {
				e.waiting = map[int]chan procs.Exit{}
			}
			e.waiting[pid] = ch
		}
	}
	if e.starting == 0 {
		clear(e.early)
	}
	return ch
}

// forget stops waiting for pid's exit (its probe gave up).
func (e *execExits) forget(pid int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.waiting, pid)
}

// deliver hands ex to the probe waiting for it, or keeps it while probes
// are being started; it reports whether it did either.
func (e *execExits) deliver(ex procs.Exit) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if ch, ok := e.waiting[ex.Pid]; ok {
		delete(e.waiting, ex.Pid)
		ch <- ex
		return true
	}
	if e.starting > 0 {
		if e.early == nil {
			e.early = map[int]procs.Exit{}
		}
		e.early[ex.Pid] = ex
		return true
	}
	return false
}

// pairMaker makes the connections a dispatched probe hands to a worker:
// it dials a private loopback listener of its own and accepts the other
// end, which goes to the worker as any connection of the probed address
// would (rr, sticky).
type pairMaker struct {
	mu sync.Mutex
	ln *net.TCPListener
}

// close closes the listener, if one was opened.
func (m *pairMaker) close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ln != nil {
		m.ln.Close()
		m.ln = nil
	}
}
