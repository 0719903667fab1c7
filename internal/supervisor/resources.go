package supervisor

import (
	"fmt"
	"time"

	"github.com/paddock-sh/paddock/internal/bytesize"
	"github.com/paddock-sh/paddock/internal/plural"
	"github.com/paddock-sh/paddock/internal/procstat"
	"github.com/paddock-sh/paddock/reconcile"
)

// This file holds the resource use of the workers: what Status shows of
// it, and maxMemory. The readings come from one procstat.Sampler, which
// reads /proc in a goroutine of its own, only while something needs it;
// the owner loop never reads /proc.

// Usage is the resource use of a worker's process group (the worker and
// every process it started that stayed in its group), or the sum of an
// app's workers, as last read from /proc.
type Usage struct {
	// RSS is the resident memory in bytes, summed over the processes (a
	// page two of them share counts twice, as in ps).
	RSS int64
	// CPUPercent is the CPU used over the last sampling interval, in
	// percent of one CPU (two busy CPUs make 200); on a worker's first
	// reading, its average since it started.
	CPUPercent float64
	// CPUTime is the CPU time, user and system, used since the worker
	// started (a counter: it never decreases).
	CPUTime time.Duration
	// Procs counts the processes.
	Procs int
	// At is when it was read (for an app, the latest of its workers').
	At time.Time
}

// usageOf converts a sample.
func usageOf(s procstat.Sample) *Usage {
	return &Usage{RSS: s.RSS, CPUPercent: s.CPUPercent, CPUTime: s.CPUTotal, Procs: s.Procs, At: s.Time}
}

// add adds u to the sum a.
func (a *Usage) add(u *Usage) {
	a.RSS += u.RSS
	a.CPUPercent += u.CPUPercent
	a.CPUTime += u.CPUTime
	a.Procs += u.Procs
	if u.At.After(a.At) {
		a.At = u.At
	}
}

// addUsage fills in the resource use of st's live workers, and their
// apps' totals, from the last readings; workers never read yet are read
// now. It runs in Status's caller's goroutine, never in the owner loop.
// A worker whose group has no live process left has none.
func (s *Supervisor) addUsage(st *Status) {
	var pids []int
	for _, w := range st.Workers {
		if w.PID != 0 {
			pids = append(pids, w.PID)
		}
	}
	if len(pids) == 0 {
		return
	}
	samples, err := s.usage.Latest(pids)
	if err != nil {
		s.opts.Logger.Debug("reading the workers' resource use", "err", err)
	}
	byApp := map[string]*AppStatus{}
	for i := range st.Apps {
		byApp[st.Apps[i].Name] = &st.Apps[i]
	}
	for i := range st.Workers {
		w := &st.Workers[i]
		smp, ok := samples[w.PID]
		if w.PID == 0 || !ok {
			continue
		}
		w.Usage = usageOf(smp)
		if a := byApp[w.App]; a != nil && w.Phase != reconcile.Stopping {
			if a.Usage == nil {
				a.Usage = &Usage{}
			}
			a.Usage.add(w.Usage)
		}
	}
}

// sampled is the Sampler's OnSample: it logs when reading /proc starts or
// stops failing, and pokes the owner loop to check maxMemory. It does not
// block.
func (s *Supervisor) sampled(err error) {
	if failing := err != nil; s.usageFailing.Swap(failing) != failing {
		if failing {
			s.opts.Logger.Error("cannot read the workers' memory use: maxMemory is not enforced", "err", err)
		} else {
			s.opts.Logger.Info("the workers' memory use is read again")
		}
	}
	select {
	case s.usageSampled <- struct{}{}:
	default:
	}
}

// checkMemory marks for replacement, new first, every running worker whose
// process group was above its app's maxMemory in its last two readings,
// and reports it (memory-exceeded). The owner loop calls it after each
// reading.
func (o *owner) checkMemory() {
	if o.shutting {
		return
	}
	for _, w := range o.workers {
		limit := w.app.MaxMemory
		if limit <= 0 || w.pid == 0 || w.Phase != reconcile.Running || w.Replace != "" {
			continue
		}
		smp, ok := o.sup.usage.Last(w.pid)
		if !ok || !memoryExceeded(smp, limit) {
			continue
		}
		detail := fmt.Sprintf("resident memory %s (%s) above maxMemory %s in two readings in a row",
			bytesize.Format(smp.RSS), plural.Count(smp.Procs, "process"), bytesize.Format(limit))
		w.Replace = "memory: " + detail
		o.emit(Event{Type: EventMemoryExceeded, App: w.App, Worker: w.ID, PID: w.pid, Generation: w.Generation,
			Detail: detail + "; replacing it new first"})
	}
}

// memoryExceeded reports whether s, a worker's last reading, and the one
// before it both found its process group above limit bytes.
func memoryExceeded(s procstat.Sample, limit int64) bool {
	return s.Count >= 2 && s.RSS > limit && s.PrevRSS > limit
}
