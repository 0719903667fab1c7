package supervisor

import (
	"fmt"
	"time"

	"github.com/paddock-sh/paddock/internal/notify"
	"github.com/paddock-sh/paddock/internal/plural"
	"github.com/paddock-sh/paddock/manifest"
	"github.com/paddock-sh/paddock/reconcile"
	"golang.org/x/sys/unix"
)

// This file holds sd_notify both ways: the notifications of workers, and
// paddock's own to systemd.

// handleNotify takes an sd_notify message: the sender must be a
// worker or a process in a worker's process group. A message whose sender
// was reaped before it was read (known with SCM_PIDFD) counts for nobody:
// its pid may be a new worker's by now, and a worker that is gone has
// nothing to declare.
func (o *owner) handleNotify(m notify.Message) {
	if m.Reaped {
		o.opts.Logger.Warn("notification from a process reaped before it was read, ignored", "pid", m.PID)
		return
	}
	w, ok := o.byPID[m.PID]
	if !ok && m.PGID != 0 {
		w, ok = o.byPID[m.PGID]
	}
	if !ok {
		o.opts.Logger.Warn("notification from a process that is not a worker, ignored", "pid", m.PID)
		return
	}
	if st, ok := m.Fields["STATUS"]; ok {
		w.status = st
	}
	if m.Ready() && !w.Ready && w.Phase == reconcile.Running && w.app.Readiness == manifest.ReadinessNotify {
		o.markReady(w)
	}
	if w.app.Readiness == manifest.ReadinessNotify {
		o.handleWatchdog(w, m.Fields)
	}
}

// notifySystemd tells systemd (Options.Notify) that paddock is ready, the
// first time the running set converged, and keeps STATUS= up to date.
func (o *owner) notifySystemd(now time.Time) {
	if o.opts.Notify == nil {
		return
	}
	if !o.sup.notifiedReady.Load() && !o.shutting && o.converged(now) {
		o.sup.notifiedReady.Store(true)
		o.sup.sdNotify("READY=1")
	}
	want, ready := 0, 0
	for _, spec := range o.specs {
		want += spec.Instances
	}
	for _, w := range o.workers {
		if w.Phase == reconcile.Running && w.Ready {
			ready++
		}
	}
	line := fmt.Sprintf("%s, %d/%s ready", plural.Count(len(o.specs), "app"), ready, plural.Count(want, "worker"))
	if len(o.rollouts) > 0 {
		line += fmt.Sprintf(", %d rolling out", len(o.rollouts))
	}
	if o.shutting {
		line = "stopping, " + plural.Count(len(o.workers), "worker") + " left"
	}
	if line != o.statusLine {
		o.statusLine = line
		o.sup.sdNotify("STATUS=" + line)
	}
}

// sdNotify passes state to Options.Notify, if set.
func (s *Supervisor) sdNotify(state string) {
	if s.opts.Notify != nil {
		s.opts.Notify(state)
	}
}

// monotonicUsec is CLOCK_MONOTONIC in microseconds, as systemd wants it
// with RELOADING=1.
func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Nano() / 1000
}

// converged reports whether no worker is still on its way to ready:
// each is ready, or failed (backoff, done), or missed its readyTimeout;
// and no app waits for a dependency that is about to be available (see
// heldOnTheWay). Run asks it once a plan has nothing left to do; the
// first time it holds, paddock tells systemd it is ready.
func (o *owner) converged(now time.Time) bool {
	for _, w := range o.workers {
		if w.Phase == reconcile.Running && !w.Ready && now.Before(w.ReadyDeadline) {
			return false // still starting
		}
	}
	return !o.heldOnTheWay(now)
}
