package supervisor

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paddock-sh/paddock/internal/procstat"
)

const mib = 1 << 20

// fakeUsage stands in for /proc: the resident memory of each process
// group, as the test sets it (10 MiB unless told), one process each.
type fakeUsage struct {
	mu  sync.Mutex
	rss map[int]int64
	cpu map[int]time.Duration
}

func (f *fakeUsage) source(groups map[int]bool) (map[int]procstat.Usage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[int]procstat.Usage{}
	for pgid := range groups {
		rss, ok := f.rss[pgid]
		if !ok {
			rss = 10 * mib
		}
		out[pgid] = procstat.Usage{Procs: 1, RSS: rss, CPU: f.cpu[pgid]}
	}
	return out, nil
}

func (f *fakeUsage) set(pid int, rss int64, cpu time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rss == nil {
		f.rss, f.cpu = map[int]int64{}, map[int]time.Duration{}
	}
	f.rss[pid], f.cpu[pid] = rss, cpu
}

// startFakeUsage is startFake with the fake /proc of u, read every
// millisecond.
func startFakeUsage(t *testing.T, yaml string, u *fakeUsage) *fakeHarness {
	t.Helper()
	return startFake(t, yaml, func(_ *harness, o *Options) {
		o.usageSource = u.source
		o.SampleInterval = time.Millisecond
	})
}

func TestMemoryExceeded(t *testing.T) {
	const limit = 100
	for _, tt := range []struct {
		s    procstat.Sample
		want bool
	}{
		{procstat.Sample{Usage: procstat.Usage{RSS: 200}, Count: 1}, false}, // one reading
		{procstat.Sample{Usage: procstat.Usage{RSS: 200}, PrevRSS: 200, Count: 2}, true},
		{procstat.Sample{Usage: procstat.Usage{RSS: 101}, PrevRSS: 101, Count: 7}, true},
		{procstat.Sample{Usage: procstat.Usage{RSS: 200}, PrevRSS: 100, Count: 2}, false}, // at the limit is not above
		{procstat.Sample{Usage: procstat.Usage{RSS: 100}, PrevRSS: 200, Count: 2}, false},
		{procstat.Sample{Usage: procstat.Usage{RSS: 50}, PrevRSS: 200, Count: 3}, false}, // a spike
	} {
		if got := memoryExceeded(tt.s, limit); got != tt.want {
			t.Errorf("memoryExceeded(%+v, %d) = %v, want %v", tt.s, limit, got, tt.want)
		}
	}
}

// TestMemoryLimitReplacesNewFirst: a worker whose process group stays
// above maxMemory is marked (memory-exceeded, with the figure and the
// limit) and replaced new first; its sibling below the limit is not.
func TestMemoryLimitReplacesNewFirst(t *testing.T) {
	t.Parallel()
	u := &fakeUsage{}
	h := startFakeUsage(t, `
apps:
  web:
    exec: $SELF
    instances: 2
    readiness: notify
    readyTimeout: 1h
    minReadyTime: 0s
    maxMemory: 100Mi
    env: {PADDOCK_TEST_HELPER: serve}
`, u)
	h.forks(2)
	h.readyAll(h.workers())
	u.set(h.procs.worker(t, 1).pid, 200*mib, 0)
	exceeded := h.waitEvent("memory-exceeded", isType(EventMemoryExceeded))
	if want := "resident memory 200Mi (1 process) above maxMemory 100Mi in two readings in a row"; exceeded.Worker != 1 || !strings.HasPrefix(exceeded.Detail, want) {
		t.Fatalf("memory-exceeded: %s, want worker 1's: %q", describe([]Event{exceeded}), want)
	}
	next := h.waitEvent("the replacement's fork", isType(EventFork))
	if ws := live(h.workers(), "web"); len(ws) != 3 {
		t.Fatalf("with the replacement starting: %s, want 3 serving", summary(ws))
	}
	h.ready(next.Worker)
	h.expectReplaced(1, "memory: resident memory 200Mi", 2, next.Worker)
	h.noEvent(EventMemoryExceeded, 2, "worker 2 stayed below the limit")
}

// TestStatusUsage: Status carries each live worker's resource use and its
// app's sum, read on demand the first time; Workers does not read it.
func TestStatusUsage(t *testing.T) {
	t.Parallel()
	u := &fakeUsage{}
	h := startFakeUsage(t, `
apps:
  web:
    exec: $SELF
    instances: 2
    env: {PADDOCK_TEST_HELPER: serve}
`, u)
	h.forks(2)
	u.set(h.procs.worker(t, 1).pid, 30*mib, 2*time.Second)
	u.set(h.procs.worker(t, 2).pid, 12*mib, time.Second)
	st, err := h.sup.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range st.Workers {
		want := map[int]int64{1: 30 * mib, 2: 12 * mib}[w.ID]
		if w.Usage == nil || w.Usage.RSS != want || w.Usage.Procs != 1 || w.Usage.CPUTime < time.Second {
			t.Errorf("worker %d usage %+v, want RSS %d", w.ID, w.Usage, want)
		}
	}
	if a := st.Apps[0].Usage; a == nil || a.RSS != 42*mib || a.Procs != 2 || a.CPUTime != 3*time.Second {
		t.Errorf("app usage %+v, want the sum of its workers' (42 MiB, 2 processes, 3s)", a)
	}
	for _, w := range h.workers() {
		if w.Usage != nil {
			t.Errorf("Workers carries usage: %+v", w)
		}
	}
}
