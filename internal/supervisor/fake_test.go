package supervisor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/paddock-sh/paddock/internal/notify"
	"github.com/paddock-sh/paddock/procs"
)

// This file holds the fakes of the owner loop's seam (seam.go): processes
// that are never forked and a clock that only the test moves. The loop's
// logic tests drive a Supervisor with them: no process, no sleep, and
// every delay exact.

// fakeEpoch is when every fake clock starts.
var fakeEpoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// fakeClock is a clock that moves only when the test calls Advance.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers map[*fakeTimer]bool // the active ones
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: fakeEpoch, timers: map[*fakeTimer]bool{}}
}

// Now implements clock.
func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer implements clock.
func (c *fakeClock) NewTimer(d time.Duration) timer {
	t := &fakeTimer{c: c, ch: make(chan time.Time, 1)}
	t.Reset(d)
	return t
}

// Advance moves the clock d forward and fires every timer due by then. A
// test calls it through fakeHarness.advance, in the owner loop's
// goroutine, so that the loop sees the new time at once, all of it.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for t := range c.timers {
		if !t.when.After(c.now) {
			t.fireLocked()
		}
	}
}

// fakeTimer is a timer of a fakeClock. As a time.Timer's (Go 1.23 and
// later), its channel holds at most one value, and none once the timer is
// stopped or reset.
type fakeTimer struct {
	c    *fakeClock
	ch   chan time.Time
	when time.Time // guarded by c.mu
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

// Reset implements timer.
func (t *fakeTimer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	active := t.stopLocked()
	t.when = t.c.now.Add(d)
	t.c.timers[t] = true
	if d <= 0 {
		t.fireLocked()
	}
	return active
}

// Stop implements timer.
func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	return t.stopLocked()
}

// stopLocked deactivates the timer and drops a value not received; c.mu
// is held.
func (t *fakeTimer) stopLocked() bool {
	active := t.c.timers[t]
	delete(t.c.timers, t)
	select {
	case <-t.ch:
	default:
	}
	return active
}

// fireLocked sends the time on the timer's channel and deactivates it;
// c.mu is held.
func (t *fakeTimer) fireLocked() {
	delete(t.c.timers, t)
	select {
	case t.ch <- t.c.now:
	default:
	}
}

// fakeProcesses is processes without processes. Start "starts" a worker at
// once; what it does then is told by the PADDOCK_TEST_HELPER of its
// environment, as the real helper modes are (helpers_test.go):
//
//	serve        exits 0 on SIGTERM (the default)
//	ignore-term  ignores every signal but SIGKILL
//	exit:N       exits with code N at once
//
// The test ends a worker with exit or kill; SIGKILL (KillGroup, or a
// signal) always ends it. A Start of a program in failStart fails with a
// *procs.StartError, as a program that vanished would.
type fakeProcesses struct {
	clock *fakeClock
	exits chan procs.Exit // buffered generously: the loop never blocks on it

	mu        sync.Mutex
	nextPid   int
	byPid     map[int]*fakeProcess
	failStart map[string]bool
}

func newFakeProcesses(c *fakeClock) *fakeProcesses {
	return &fakeProcesses{clock: c, exits: make(chan procs.Exit, 10000), nextPid: 1000,
		byPid: map[int]*fakeProcess{}, failStart: map[string]bool{}}
}

// fakeProcess is one fake worker.
type fakeProcess struct {
	f      *fakeProcesses
	pid    int
	worker int // its PADDOCK_WORKER_ID
	spec   procs.Spec
	mode   string

	// Guarded by f.mu.
	signals     []syscall.Signal
	groupKills  int
	released    bool
	exited      bool
	exitStatus  unix.WaitStatus
	startedTime time.Time
}

// Start implements processes.
func (f *fakeProcesses) Start(spec procs.Spec) (process, int, time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failStart[spec.Path] {
		return nil, 0, time.Time{}, &procs.StartError{Op: "fork/exec", Path: spec.Path, Err: syscall.ENOENT}
	}
	f.nextPid++
	p := &fakeProcess{f: f, pid: f.nextPid, spec: spec, mode: envOf(spec.Env, "PADDOCK_TEST_HELPER"),
		startedTime: f.clock.Now()}
	p.worker, _ = strconv.Atoi(envOf(spec.Env, "PADDOCK_WORKER_ID"))
	if p.mode == "" {
		p.mode = "serve"
	}
	f.byPid[p.pid] = p
	if code, ok := strings.CutPrefix(p.mode, "exit:"); ok {
		n, _ := strconv.Atoi(code)
		p.exitLocked(unix.WaitStatus(n << 8))
	}
	return p, p.pid, p.startedTime, nil
}

// Run implements processes: it forwards the exits until ctx is done.
func (f *fakeProcesses) Run(ctx context.Context, out chan<- procs.Exit) {
	for {
		select {
		case ex := <-f.exits:
			select {
			case out <- ex:
			case <-ctx.Done():
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

// envOf returns the value of name in env, "" if unset.
func envOf(env []string, name string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return ""
}

// worker returns the live or exited fake process of worker id, failing the
// test when there is none.
func (f *fakeProcesses) worker(t testing.TB, id int) *fakeProcess {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.byPid {
		if p.worker == id {
			return p
		}
	}
	t.Fatalf("no fake process for worker %d", id)
	return nil
}

// exitLocked records that p exited with st and queues its Exit; f.mu is
// held.
func (p *fakeProcess) exitLocked(st unix.WaitStatus) {
	if p.exited {
		return
	}
	p.exited, p.exitStatus = true, st
	p.f.exits <- procs.Exit{Pid: p.pid, Status: st, Time: p.f.clock.Now()}
}

// exit makes p exit with code.
func (p *fakeProcess) exit(code int) {
	p.f.mu.Lock()
	defer p.f.mu.Unlock()
	p.exitLocked(unix.WaitStatus(code << 8))
}

// kill makes p die of sig, as if someone else sent it.
func (p *fakeProcess) kill(sig syscall.Signal) {
	p.f.mu.Lock()
	defer p.f.mu.Unlock()
	p.exitLocked(unix.WaitStatus(sig))
}

// Signal implements process.
func (p *fakeProcess) Signal(sig syscall.Signal) error {
	p.f.mu.Lock()
	defer p.f.mu.Unlock()
	p.signals = append(p.signals, sig)
	switch {
	case p.exited:
	case sig == syscall.SIGKILL:
		p.exitLocked(unix.WaitStatus(sig))
	case sig == syscall.SIGTERM && p.mode == "serve":
		p.exitLocked(0)
	}
	return nil
}

// KillGroup implements process.
func (p *fakeProcess) KillGroup() error {
	p.f.mu.Lock()
	defer p.f.mu.Unlock()
	p.groupKills++
	p.exitLocked(unix.WaitStatus(syscall.SIGKILL))
	return nil
}

// Release implements process.
func (p *fakeProcess) Release() {
	p.f.mu.Lock()
	defer p.f.mu.Unlock()
	p.released = true
}

// record returns what p was sent, and whether it was released.
func (p *fakeProcess) record() (signals []syscall.Signal, groupKills int, released bool) {
	p.f.mu.Lock()
	defer p.f.mu.Unlock()
	return append([]syscall.Signal(nil), p.signals...), p.groupKills, p.released
}

// fakeHarness is a harness (helpers_test.go) whose Supervisor runs on the
// fakes.
type fakeHarness struct {
	*harness
	clock *fakeClock
	procs *fakeProcesses
}

// startFake starts a Supervisor on the fakes with the manifest yaml (see
// load); configure, when not nil, changes its options further. Its
// workers are left to the test: at cleanup the supervisor is killed,
// which ends every fake worker at once.
func startFake(t *testing.T, yaml string, configure func(*harness, *Options)) *fakeHarness {
	t.Helper()
	c := newFakeClock()
	fp := newFakeProcesses(c)
	h := startWith(t, yaml, func(h *harness, o *Options) {
		o.processes, o.clock = fp, c
		if configure != nil {
			configure(h, o)
		}
	})
	t.Cleanup(h.sup.Kill) // before startWith's cleanup, which waits for Run
	return &fakeHarness{harness: h, clock: c, procs: fp}
}

// advance moves the fake clock d forward, in the owner loop's goroutine:
// the loop plans with the new time as soon as it is back, and a request
// made next (workers, say) is answered after it acted on it.
func (h *fakeHarness) advance(d time.Duration) {
	h.t.Helper()
	err := h.sup.do(context.Background(), func(*owner) { h.clock.Advance(d) })
	if errors.Is(err, ErrNotRunning) {
		h.clock.Advance(d)
	} else if err != nil {
		h.t.Fatal(err)
	}
}

// wakeAt returns when the owner loop is to wake next: the deadline of the
// earliest timer set (zero if none). It asks from within the loop, whose
// timer is set while it waits, as when it took the request.
func (h *fakeHarness) wakeAt() time.Time {
	h.t.Helper()
	var at time.Time
	err := h.sup.do(context.Background(), func(*owner) {
		h.clock.mu.Lock()
		defer h.clock.mu.Unlock()
		for t := range h.clock.timers {
			if at.IsZero() || t.when.Before(at) {
				at = t.when
			}
		}
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return at
}

// workers returns the supervisor's workers now: the answer comes after
// the loop handled everything it was woken for before.
func (h *fakeHarness) workers() []WorkerInfo {
	h.t.Helper()
	ws, err := h.sup.Workers(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return ws
}

// ready makes worker id say READY=1 through the loop's notify path.
func (h *fakeHarness) ready(id int) {
	h.t.Helper()
	pid := h.procs.worker(h.t, id).pid
	m := notify.Message{PID: pid, PGID: pid, Fields: map[string]string{"READY": "1"}, Time: h.clock.Now()}
	if err := h.sup.do(context.Background(), func(o *owner) { o.handleNotify(m) }); err != nil {
		h.t.Fatal(err)
	}
}

// forks returns the next n fork events.
func (h *fakeHarness) forks(n int) []Event {
	h.t.Helper()
	var out []Event
	for range n {
		out = append(out, h.waitEvent("fork", isType(EventFork)))
	}
	return out
}

// live returns the workers of app with a process that are not stopping.
func live(ws []WorkerInfo, app string) []WorkerInfo {
	var out []WorkerInfo
	for _, w := range ws {
		if w.App == app && w.PID != 0 && w.Phase == 0 {
			out = append(out, w)
		}
	}
	return out
}

// summary describes workers for failure messages.
func summary(ws []WorkerInfo) string {
	var b strings.Builder
	for _, w := range ws {
		fmt.Fprintf(&b, " %s/%d(pid=%d %s ready=%v gen=%s)", w.App, w.ID, w.PID, w.Phase, w.Ready, w.Generation)
	}
	return b.String()
}
