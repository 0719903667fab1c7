package supervisor

import (
	"context"
	"syscall"
	"time"

	"github.com/paddock-sh/paddock/procs"
)

// This file holds the seam between the owner loop and the world: the
// processes it starts, signals and reaps, and the clock it reads. The
// real ones are procs.Reaper and the time package; the loop's own tests
// use fakes that neither fork nor sleep.

// processes is what the owner loop needs to run worker processes.
type processes interface {
	// Start starts the process spec describes, as the leader of a new
	// process group, and returns it with its pid and start time. An error
	// is a *procs.StartError naming spec.Path. It does not block on the
	// program's own start-up.
	Start(spec procs.Spec) (proc process, pid int, startedAt time.Time, err error)
	// Run sends every exited process (workers and re-parented orphans) to
	// out until ctx is done. Run's goroutine calls it once, in a goroutine
	// of its own.
	Run(ctx context.Context, out chan<- procs.Exit)
}

// process is one started worker process.
type process interface {
	// Signal sends sig to the process alone; a process that exited is not
	// an error.
	Signal(sig syscall.Signal) error
	// KillGroup sends SIGKILL to the process's group, unless the process
	// was reaped already.
	KillGroup() error
	// Release frees what is held for the process once it was reaped.
	Release()
}

// reaperProcesses is processes over a procs.Reaper: real forks, real
// signals, and the reaping of every child of this process.
type reaperProcesses struct {
	r *procs.Reaper
}

// Start implements processes.
func (p reaperProcesses) Start(spec procs.Spec) (process, int, time.Time, error) {
	proc, err := p.r.Start(spec)
	if err != nil {
		return nil, 0, time.Time{}, err
	}
	return proc, proc.Pid, proc.StartedAt, nil
}

// Run implements processes.
func (p reaperProcesses) Run(ctx context.Context, out chan<- procs.Exit) { p.r.Run(ctx, out) }

// clock is the time as the owner loop reads it: its now, and the timers
// that wake it.
type clock interface {
	Now() time.Time
	// NewTimer returns a timer that sends the time on its channel once d
	// has passed.
	NewTimer(d time.Duration) timer
}

// timer is a time.Timer that a fake clock can stand in for.
type timer interface {
	C() <-chan time.Time
	// Reset and Stop work as time.Timer's (Go 1.23 and later: no stale
	// value is received after either).
	Reset(d time.Duration) bool
	Stop() bool
}

// realClock is the time package's clock.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTimer(d time.Duration) timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time        { return t.t.C }
func (t realTimer) Reset(d time.Duration) bool { return t.t.Reset(d) }
func (t realTimer) Stop() bool                 { return t.t.Stop() }
