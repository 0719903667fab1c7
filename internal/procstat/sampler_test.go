package procstat

import (
	"context"
	"errors"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/paddock-sh/paddock/internal/testkit"
)

// fakeSource is a Source whose usage the test sets.
type fakeSource struct {
	mu    sync.Mutex
	usage map[int]Usage
	err   error
	calls int
	// during, when set, runs inside each call (to change the watched
	// groups while a reading is in progress).
	during func()
}

func (f *fakeSource) read(groups map[int]bool) (map[int]Usage, error) {
	f.mu.Lock()
	f.calls++
	during := f.during
	out := map[int]Usage{}
	for pgid, u := range f.usage {
		if groups[pgid] {
			out[pgid] = u
		}
	}
	err := f.err
	f.mu.Unlock()
	if during != nil {
		during()
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (f *fakeSource) set(pgid int, u Usage) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.usage == nil {
		f.usage = map[int]Usage{}
	}
	f.usage[pgid] = u
}

// TestSamplerSamples: the first sample of a group is read on demand by
// Latest, with the CPU average since the group started; later ones carry
// the CPU use over the interval, a CPU counter that never goes back (when
// a process leaves the group with its time) and the RSS of the sample
// before.
func TestSamplerSamples(t *testing.T) {
	src := &fakeSource{}
	s := &Sampler{Source: src.read, Interval: time.Nanosecond}
	src.set(10, Usage{Procs: 1, RSS: 100, CPU: time.Second})
	s.Watch(10, time.Now().Add(-10*time.Second), false)
	s.Watch(11, time.Now(), false) // no live process: never sampled
	got, err := s.Latest([]int{10, 11, 12})
	if err != nil {
		t.Fatal(err)
	}
	first, ok := got[10]
	if !ok || len(got) != 1 {
		t.Fatalf("Latest = %+v, want group 10 alone", got)
	}
	if first.Count != 1 || first.RSS != 100 || first.CPUTotal != time.Second {
		t.Errorf("first sample %+v", first)
	}
	// 1s of CPU in about 10s since the start: about 10%.
	if first.CPUPercent <= 5 || first.CPUPercent > 10 {
		t.Errorf("first CPUPercent = %.2f, want about 10", first.CPUPercent)
	}

	// A process left the group: its CPU leaves the sum, the counter stays.
	src.set(10, Usage{Procs: 1, RSS: 300, CPU: 500 * time.Millisecond})
	if err := s.read(nil); err != nil {
		t.Fatal(err)
	}
	second, _ := s.Last(10)
	if second.Count != 2 || second.PrevRSS != 100 || second.RSS != 300 || second.CPUTotal != time.Second || second.CPUPercent != 0 {
		t.Errorf("second sample %+v, want count 2, prev RSS 100, RSS 300, CPU total 1s, 0%%", second)
	}
	// Then it used 250ms more.
	src.set(10, Usage{Procs: 1, RSS: 200, CPU: 750 * time.Millisecond})
	if err := s.read(nil); err != nil {
		t.Fatal(err)
	}
	third, _ := s.Last(10)
	if third.Count != 3 || third.PrevRSS != 300 || third.CPUTotal != 1250*time.Millisecond || third.CPUPercent <= 0 {
		t.Errorf("third sample %+v, want count 3, prev RSS 300, CPU total 1.25s, a positive percentage", third)
	}
	if want := percent(250*time.Millisecond, third.Time.Sub(second.Time)); third.CPUPercent != want {
		t.Errorf("third CPUPercent = %f, want %f (250ms over the interval)", third.CPUPercent, want)
	}

	// Latest reads on demand only the groups never read (or not for two
	// intervals): the others keep their samples, so that asking often does
	// not add samples.
	s.Interval = time.Hour
	if _, err := s.Latest([]int{10}); err != nil {
		t.Fatal(err)
	}
	if again, _ := s.Last(10); again.Count != 3 {
		t.Errorf("Latest read group 10 again: %+v", again)
	}

	// Watching again starts afresh; forgetting drops the samples.
	s.Watch(10, time.Time{}, false)
	if _, ok := s.Last(10); ok {
		t.Error("a group watched again kept its samples")
	}
	s.Forget(10)
	if got, _ := s.Latest([]int{10}); len(got) != 0 {
		t.Errorf("a forgotten group: %+v", got)
	}
}

// TestSamplerSkipsFresh: a reading of every group leaves out a group read
// on demand less than half an interval before; the others are read.
func TestSamplerSkipsFresh(t *testing.T) {
	src := &fakeSource{}
	s := &Sampler{Source: src.read, Interval: time.Hour}
	src.set(1, Usage{Procs: 1, RSS: 1})
	src.set(2, Usage{Procs: 1, RSS: 2})
	s.Watch(1, time.Time{}, false)
	s.Watch(2, time.Time{}, false)
	if _, err := s.Latest([]int{1}); err != nil {
		t.Fatal(err)
	}
	if err := s.read(nil); err != nil {
		t.Fatal(err)
	}
	if one, _ := s.Last(1); one.Count != 1 {
		t.Errorf("group 1, read on demand just before, was read again: %+v", one)
	}
	if two, ok := s.Last(2); !ok || two.Count != 1 {
		t.Errorf("group 2 was not read: %+v", two)
	}
}

// TestSamplerLatestReadsStale: Latest reads again a group last read more
// than two intervals before (Run was idle), and not one read since.
func TestSamplerLatestReadsStale(t *testing.T) {
	src := &fakeSource{}
	s := &Sampler{Source: src.read, Interval: time.Minute}
	src.set(1, Usage{Procs: 1, RSS: 1})
	s.Watch(1, time.Time{}, false)
	if _, err := s.Latest([]int{1}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Latest([]int{1}); got[1].Count != 1 {
		t.Errorf("a fresh sample was read again: %+v", got[1])
	}
	s.mu.Lock()
	s.groups[1].last.Time = time.Now().Add(-3 * time.Minute)
	s.mu.Unlock()
	src.set(1, Usage{Procs: 1, RSS: 2})
	if got, _ := s.Latest([]int{1}); got[1].Count != 2 || got[1].RSS != 2 || got[1].PrevRSS != 1 {
		t.Errorf("a stale sample was not read again: %+v", got[1])
	}
}

// TestSamplerForgetDuringRead: a group forgotten (and watched again, as a
// new worker with a reused pid would be) while a reading is in progress
// gets nothing from that reading.
func TestSamplerForgetDuringRead(t *testing.T) {
	src := &fakeSource{}
	s := &Sampler{Source: src.read}
	src.set(7, Usage{Procs: 1, RSS: 1})
	s.Watch(7, time.Time{}, false)
	src.during = func() { s.Watch(7, time.Time{}, false) }
	if err := s.read(nil); err != nil {
		t.Fatal(err)
	}
	if smp, ok := s.Last(7); ok {
		t.Errorf("the new group got the old reading: %+v", smp)
	}
}

// TestSamplerError: a failed reading is returned by Latest and records
// nothing.
func TestSamplerError(t *testing.T) {
	src := &fakeSource{err: errors.New("no proc")}
	s := &Sampler{Source: src.read}
	src.set(7, Usage{Procs: 1, RSS: 1})
	s.Watch(7, time.Time{}, false)
	got, err := s.Latest([]int{7})
	if err == nil || len(got) != 0 {
		t.Errorf("Latest = %+v, %v; want nothing and the error", got, err)
	}
}

// TestSamplerActive: Run reads while a group is watched continuously, or
// for Hold after a Latest; otherwise not, and never without groups.
func TestSamplerActive(t *testing.T) {
	src := &fakeSource{}
	s := &Sampler{Source: src.read, Hold: time.Hour}
	if s.init(); s.active() {
		t.Error("active without groups")
	}
	s.Watch(1, time.Time{}, false)
	if s.active() {
		t.Error("active with a group no one asked about")
	}
	s.Latest([]int{1})
	if !s.active() {
		t.Error("not active right after Latest")
	}
	s.mu.Lock()
	s.asked = time.Now().Add(-2 * time.Hour)
	s.mu.Unlock()
	if s.active() {
		t.Error("still active after Hold")
	}
	s.Watch(2, time.Time{}, true)
	if !s.active() {
		t.Error("not active with a group watched continuously")
	}
	s.Forget(2)
	if s.active() {
		t.Error("active once the continuous group is forgotten")
	}
}

// TestSamplerRun: with a group watched continuously, Run reads at every
// interval and calls OnSample after each reading; it returns when its
// context is done.
func TestSamplerRun(t *testing.T) {
	src := &fakeSource{}
	var mu sync.Mutex
	samples := 0
	s := &Sampler{Source: src.read, Interval: time.Millisecond, OnSample: func(err error) {
		if err != nil {
			t.Error(err)
		}
		mu.Lock()
		samples++
		mu.Unlock()
	}}
	src.set(3, Usage{Procs: 1, RSS: 42})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	s.Watch(3, time.Time{}, true)
	testkit.WaitFor(t, "three samples", func() bool {
		smp, ok := s.Last(3)
		mu.Lock()
		defer mu.Unlock()
		return ok && smp.Count >= 3 && samples >= 3
	})
	cancel()
	<-done
}

// BenchmarkScan1000: one reading of 1000 process groups of one process
// each (1000 workers), on a machine with those 1000 processes and its
// own. The reported %cpu@5s is the share of one CPU that reading them
// every DefaultInterval costs.
func BenchmarkScan1000(b *testing.B) {
	const n = 1000
	groups := map[int]bool{}
	var cmds []*exec.Cmd
	b.Cleanup(func() {
		for _, c := range cmds {
			syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
			c.Wait()
		}
	})
	for range n {
		c := exec.Command("sleep", "3600")
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := c.Start(); err != nil {
			b.Fatal(err)
		}
		cmds = append(cmds, c)
		groups[c.Process.Pid] = true
	}
	var s Scanner
	got, err := s.Scan(groups)
	if err != nil {
		b.Fatal(err)
	}
	if len(got) != n {
		b.Fatalf("read %d groups, want %d", len(got), n)
	}
	b.ReportAllocs()
	b.ResetTimer()
	before := cpuTime(b)
	for b.Loop() {
		if _, err := s.Scan(groups); err != nil {
			b.Fatal(err)
		}
	}
	per := (cpuTime(b) - before) / time.Duration(b.N)
	b.ReportMetric(float64(per.Microseconds()), "cpu-µs/op")
	b.ReportMetric(100*per.Seconds()/DefaultInterval.Seconds(), "%cpu@5s")
}

// cpuTime returns the CPU time, user and system, this process used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
