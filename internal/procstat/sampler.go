package procstat

import (
	"context"
	"sync"
	"time"

	"github.com/paddock-sh/paddock/internal/ondemand"
)

// DefaultInterval is how often a Sampler reads /proc unless told
// otherwise. With 1000 processes on the machine a reading costs a few
// milliseconds of CPU (BenchmarkScan), well under 1% of one CPU at this
// interval.
const DefaultInterval = 5 * time.Second

// DefaultHold is how long a Sampler goes on sampling after the last call
// of Latest when no group needs sampling for itself: long enough for the
// next scrape of a metrics collector, or the next look of an operator, to
// find the CPU use over a whole interval.
const DefaultHold = time.Minute

// Sample is the last reading of one process group.
type Sample struct {
	Usage
	// Time is when it was read.
	Time time.Time
	// CPUPercent is the CPU the group used between its previous sample
	// and this one, in percent of one CPU (two busy CPUs make 200). For
	// its first sample, it is the average since the group started (the
	// started time given to Watch), or 0 when that is unknown.
	CPUPercent float64
	// CPUTotal is the CPU time the group used since it was first read,
	// as a counter: it never decreases, although Usage.CPU may (a process
	// that leaves the group takes its time with it).
	CPUTotal time.Duration
	// Count counts the group's samples, 1 for the first; PrevRSS is the
	// RSS of the one before when Count > 1.
	Count   int
	PrevRSS int64
}

// Sampler reads the usage of a changing set of process groups at an
// interval, in one goroutine (Run), while something needs it: a group
// watched continuously, or a reader that called Latest within Hold. Each
// reading is one pass over /proc for all the groups (Scanner). Its methods
// are safe for concurrent use. Watch, Forget and Last never wait for /proc
// (its lock is never held during a reading): the supervisor's owner loop
// calls them. Latest reads the groups never read (or stale) itself, and
// may wait for a reading in progress. Set the exported fields before Run.
type Sampler struct {
	// Interval is the time between readings. Zero means DefaultInterval.
	Interval time.Duration
	// Hold is how long readings go on after the last Latest when no
	// group is watched continuously. Zero means DefaultHold.
	Hold time.Duration
	// Source reads the usage of groups, by pgid. Nil means a Scanner of
	// /proc. Calls to it are serialized.
	Source func(groups map[int]bool) (map[int]Usage, error)
	// OnSample, when set, is called by Run after each reading that
	// included a group watched continuously, with the reading's error
	// (nil when it succeeded). It must not block.
	OnSample func(err error)

	// scan serializes readings: one Scanner, and samples in time order.
	scan    sync.Mutex
	scanner Scanner

	mu     sync.Mutex
	groups map[int]*group
	asked  time.Time // the last Latest
	loop   ondemand.Loop
	once   sync.Once
}

// group is the state of one watched process group.
type group struct {
	started    time.Time
	continuous bool
	last       Sample
	rawCPU     time.Duration // Usage.CPU at the last sample
}

func (s *Sampler) init() {
	s.once.Do(func() {
		if s.groups == nil {
			s.groups = map[int]*group{}
		}
	})
}

func (s *Sampler) interval() time.Duration {
	if s.Interval > 0 {
		return s.Interval
	}
	return DefaultInterval
}

func (s *Sampler) hold() time.Duration {
	if s.Hold > 0 {
		return s.Hold
	}
	return DefaultHold
}

// poke wakes Run without blocking.
func (s *Sampler) poke() { s.loop.Poke() }

// Watch adds the process group pgid, whose leader started at started, to
// the groups read. continuous says a rule depends on its readings: Run
// then reads at every interval as long as the group is watched, whether or
// not anyone calls Latest. Watching a pgid again starts it afresh.
func (s *Sampler) Watch(pgid int, started time.Time, continuous bool) {
	s.init()
	s.mu.Lock()
	s.groups[pgid] = &group{started: started, continuous: continuous}
	s.mu.Unlock()
	if continuous {
		s.poke()
	}
}

// Forget drops the process group pgid: it is no longer read, and its
// samples are gone.
func (s *Sampler) Forget(pgid int) {
	s.init()
	s.mu.Lock()
	delete(s.groups, pgid)
	s.mu.Unlock()
}

// Last returns the last sample of pgid, if it was read since Watch. It
// neither reads nor counts as a reader's demand (see Latest).
func (s *Sampler) Last(pgid int) (Sample, bool) {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[pgid]
	if !ok || g.last.Count == 0 {
		return Sample{}, false
	}
	return g.last, true
}

// Latest returns the last sample of each watched group of pgids. A group
// never read yet, or last read more than two intervals ago (Run was idle),
// is read now, in the caller's goroutine (one pass over /proc for all such
// groups), so that the answer has every group that has a live process, and
// nothing stale. The call also keeps Run reading for Hold from now, so
// that the next call finds each group's CPU use over an interval. It
// returns the error of that reading, if one was made and failed, with what
// it has.
func (s *Sampler) Latest(pgids []int) (map[int]Sample, error) {
	s.init()
	s.mu.Lock()
	s.asked = time.Now()
	stale := s.asked.Add(-2 * s.interval())
	var missing []int
	for _, pgid := range pgids {
		if g, ok := s.groups[pgid]; ok && (g.last.Count == 0 || g.last.Time.Before(stale)) {
			missing = append(missing, pgid)
		}
	}
	s.mu.Unlock()
	s.poke()
	var err error
	if len(missing) > 0 {
		err = s.read(missing)
	}
	out := make(map[int]Sample, len(pgids))
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, pgid := range pgids {
		if g, ok := s.groups[pgid]; ok && g.last.Count > 0 {
			out[pgid] = g.last
		}
	}
	return out, err
}

// Run reads the watched groups every Interval while something needs it
// (see Sampler), until ctx is done; otherwise it waits, reading nothing.
// Call it once, in a goroutine of its own.
func (s *Sampler) Run(ctx context.Context) {
	s.init()
	s.loop.Run(ctx, s.interval(), s.active, func() {
		continuous := s.hasContinuous()
		err := s.read(nil)
		if continuous && s.OnSample != nil {
			s.OnSample(err)
		}
	})
}

// active reports whether Run is to read now.
func (s *Sampler) active() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.groups) == 0 {
		return false
	}
	if !s.asked.IsZero() && time.Since(s.asked) < s.hold() {
		return true
	}
	for _, g := range s.groups {
		if g.continuous {
			return true
		}
	}
	return false
}

func (s *Sampler) hasContinuous() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range s.groups {
		if g.continuous {
			return true
		}
	}
	return false
}

// read reads the groups of only (every watched group when nil) and
// records a sample for each that has a live process. Reading every group,
// it leaves out those read less than half an interval ago (by Latest, on
// demand): a CPU percentage over a few milliseconds would be mostly the
// rounding of the kernel's clock ticks, and two readings that close are
// not two readings in a row for a rule.
func (s *Sampler) read(only []int) error {
	s.scan.Lock()
	defer s.scan.Unlock()
	s.mu.Lock()
	set := make(map[int]*group, len(s.groups))
	if only == nil {
		fresh := time.Now().Add(-s.interval() / 2)
		for pgid, g := range s.groups {
			if g.last.Count == 0 || g.last.Time.Before(fresh) {
				set[pgid] = g
			}
		}
	} else {
		for _, pgid := range only {
			if g, ok := s.groups[pgid]; ok {
				set[pgid] = g
			}
		}
	}
	s.mu.Unlock()
	if len(set) == 0 {
		return nil
	}
	want := make(map[int]bool, len(set))
	for pgid := range set {
		want[pgid] = true
	}
	var usage map[int]Usage
	var err error
	if s.Source != nil {
		usage, err = s.Source(want)
	} else {
		usage, err = s.scanner.Scan(want)
	}
	if err != nil {
		return err
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for pgid, g := range set {
		u, ok := usage[pgid]
		if !ok || s.groups[pgid] != g {
			continue // no live process, or forgotten meanwhile
		}
		g.record(u, now)
	}
	return nil
}

// record makes u, read at now, the group's last sample.
func (g *group) record(u Usage, now time.Time) {
	prev := g.last
	smp := Sample{Usage: u, Time: now, Count: prev.Count + 1}
	if prev.Count == 0 {
		smp.CPUTotal = u.CPU
		if !g.started.IsZero() {
			smp.CPUPercent = percent(u.CPU, now.Sub(g.started))
		}
	} else {
		used := max(u.CPU-g.rawCPU, 0)
		smp.CPUTotal = prev.CPUTotal + used
		smp.CPUPercent = percent(used, now.Sub(prev.Time))
		smp.PrevRSS = prev.RSS
	}
	g.rawCPU = u.CPU
	g.last = smp
}

// percent returns cpu over elapsed, in percent; 0 when elapsed is not
// positive.
func percent(cpu, elapsed time.Duration) float64 {
	if elapsed <= 0 {
		return 0
	}
	return 100 * cpu.Seconds() / elapsed.Seconds()
}
