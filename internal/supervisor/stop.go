package supervisor

import (
	"time"

	"github.com/paddock-sh/paddock/manifest"
	"github.com/paddock-sh/paddock/procs"
	"github.com/paddock-sh/paddock/reconcile"
	"golang.org/x/sys/unix"
)

// This file holds the stop of a worker: its killSignal, or cluster's own
// disconnect, then SIGKILL; its exit, and what follows it.

// stop retires w: a cluster worker is asked to disconnect, others get
// their killSignal; the plan sends SIGKILL after killTimeout.
func (o *owner) stop(w *worker, now time.Time) {
	// No new connection reaches its SO_REUSEPORT sockets from before it
	// is told to stop; those queued there are accepted by it, or moved to
	// the other workers when it exits.
	o.unwatchHealth(w) // a worker being stopped is not probed
	o.setMembersReady(w, false)
	w.Phase = reconcile.Stopping
	w.StopDeadline = now.Add(w.KillTimeout)
	if w.cl != nil {
		// Cluster's own graceful path: no new connection from now on,
		// then disconnect (the worker closes its servers and exits);
		// killSignal after killTimeout, SIGKILL after another.
		o.unsubscribe(w)
		if err := w.cl.send(map[string]any{"act": "disconnect"}, -1, nil); err == nil {
			o.emit(Event{Type: EventDisconnect, App: w.App, Worker: w.ID, PID: w.pid, Generation: w.Generation,
				Delay: w.KillTimeout})
			return
		}
	}
	o.signalStop(w)
}

// signalStop sends the worker its killSignal.
func (o *owner) signalStop(w *worker) {
	w.signaled = true
	sig, _ := manifest.SignalNumber(w.KillSignal)
	o.emit(Event{Type: EventStopping, App: w.App, Worker: w.ID, PID: w.pid, Generation: w.Generation,
		Signal: w.KillSignal, Delay: w.KillTimeout, Detail: w.fault.detail()})
	if err := w.proc.Signal(sig); err != nil {
		o.opts.Logger.Error("signal", "app", w.App, "worker", w.ID, "pid", w.pid, "err", err)
	}
}

// handleExit takes a reaped process: a worker's exit is reported and its
// worker forgotten (it was stopping), left done (it disconnected itself)
// or handed to its restart policy; anything else was an orphan.
func (o *owner) handleExit(ex procs.Exit) {
	w, ok := o.byPID[ex.Pid]
	if !ok {
		if !o.prober.exited(ex) { // an exec probe's
			o.opts.Logger.Debug("reaped orphan", "pid", ex.Pid, "status", ex.String())
		}
		return
	}
	delete(o.byPID, ex.Pid)
	o.unwatchHealth(w)
	o.sup.usage.Forget(ex.Pid)
	w.proc.Release()
	if err := w.releaseSockets(); err != nil {
		o.opts.Logger.Warn("new connections may reach a worker that is not ready", "app", w.App, "worker", w.ID, "err", err)
	}
	o.releaseUDP(w)
	o.dropHolds(w)
	faulted := o.closeChannelOnExit(w)
	// A worker's process group does not outlive it: the reaper killed
	// whatever it left behind in its group before reaping it.
	if ex.GroupKilled {
		o.opts.Logger.Info("killed leftover processes of exited worker", "app", w.App, "worker", w.ID, "pgid", w.pid)
	}
	ev := Event{Type: EventExit, App: w.App, Worker: w.ID, PID: w.pid, Generation: w.Generation, ExitCode: -1,
		Intended: w.Phase == reconcile.Stopping, Detail: w.fault.detail()}
	if ex.Status.Signaled() {
		ev.Signal = unix.SignalName(ex.Status.Signal())
	} else {
		ev.ExitCode = ex.Status.ExitStatus()
	}
	if ex.StartErr != nil {
		// The exec shim could not execute the program: a start failure,
		// reported as such, naming the program.
		o.markStartFailed(&ev, w, ex.StartErr)
	}
	o.emit(ev)
	if w.Phase != reconcile.Stopping {
		info := ExitInfo{Code: ev.ExitCode, Signal: ev.Signal, At: ex.Time, Uptime: ex.Time.Sub(w.startedAt)}
		if ex.StartErr != nil {
			info.Lines = []string{"paddock: " + ev.Detail}
		}
		o.recordExit(w, info)
	}
	w.pid = 0
	w.proc = nil
	if w.Phase == reconcile.Stopping {
		delete(o.workers, w.ID)
		return
	}
	if w.exitedAfterDisconnect && !faulted {
		// cluster.worker.disconnect() in the worker: it left on purpose,
		// as Node's primary sees it; it is not replaced.
		w.Phase = reconcile.Done
		o.opts.Logger.Info("not restarted: the worker disconnected itself", "app", w.App, "worker", w.ID)
		return
	}
	o.afterExit(w, ex.Success() && !faulted, ex.Time.Sub(w.startedAt), ex.Time)
	o.noteCrash(w, ev, ex.Time.Sub(w.startedAt), ex.Time)
}

// afterExit moves a worker that exited on its own to Backoff or Done.
func (o *owner) afterExit(w *worker, success bool, uptime time.Duration, now time.Time) {
	w.Worker = reconcile.AfterExit(w.Worker, reconcile.ExitPolicy{
		Restart:      w.app.Restart,
		Delay:        w.app.Backoff.Delay,
		ResetAfter:   w.app.Backoff.Max,
		MinReadyTime: w.app.MinReadyTime,
	}, success, uptime, now)
	if w.Phase == reconcile.Backoff {
		o.emit(Event{Type: EventRestart, App: w.App, Worker: w.ID, Generation: w.Generation,
			Delay: w.RestartAt.Sub(now), Attempt: w.Restarts})
	} else {
		o.opts.Logger.Info("not restarted", "app", w.App, "worker", w.ID, "restart", w.app.Restart)
	}
}

// killAll sends SIGKILL to the process group of every worker (Kill).
func (o *owner) killAll() {
	for _, w := range o.workers {
		if w.proc != nil {
			_ = w.proc.KillGroup()
		}
	}
}
