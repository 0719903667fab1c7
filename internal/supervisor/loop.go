package supervisor

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/paddock-sh/paddock/internal/notify"
	"github.com/paddock-sh/paddock/internal/watch"
	"github.com/paddock-sh/paddock/manifest"
	"github.com/paddock-sh/paddock/procs"
	"github.com/paddock-sh/paddock/reconcile"
)

// This file holds Run: the goroutines it starts and waits for, and the
// owner loop, which plans, carries the plan out, and waits for what
// happens next.

// Run starts the workers of set and keeps them as set says until ctx is
// done; then it stops every worker gracefully, in parallel but for
// dependencies (an app's workers stop once those of the apps that depend
// on it exited), and returns once all have exited: nil when each stopped within its killTimeout, else
// ErrStopTimeout. After Kill it returns ErrKilled at once. A manifest read
// still blocked then (a filesystem that does not answer) is waited for no
// longer than 2s, and its result is dropped.
//
// Run reaps every child of the process (see procs.Reaper.Run): only one Run may be
// active in a process, and nothing else in it may wait for children.
func (s *Supervisor) Run(ctx context.Context, set *manifest.Set) error {
	o := s.own
	h := s.startReaping(ctx)
	defer close(s.ended)
	go s.stdout.write()
	go s.stderr.write()
	defer func() {
		s.stdout.stop()
		s.stderr.stop()
	}()
	defer func() {
		s.stopHelpers(h)
		o.release() // closes every dispatcher, waiting for its Run
		h.stopDispatch()
		// The workers' output is all copied: write what is queued.
		s.logs.Close(outputDrain)
	}()
	if err := s.startListening(h); err != nil {
		return err
	}
	if _, err := o.apply(set); err != nil {
		return err
	}
	return o.loop(ctx.Done(), h)
}

// runHelpers are the goroutines Run starts, and what they feed it.
type runHelpers struct {
	// exits receives the reaped processes, notes the sd_notify messages.
	exits chan procs.Exit
	notes chan notify.Message
	// The reaper and the notify socket's reader stop with reapCtx, when
	// Run returns. The reloader and the watcher stop with watchCtx: with
	// Run's ctx (no reload during shutdown), or when Run returns.
	reapCtx, watchCtx   context.Context
	stopReap, stopWatch context.CancelFunc
	// The dispatchers of rr and sticky sockets run with dispatchCtx until
	// the workers are gone, past Run's ctx: release stops them.
	dispatchCtx  context.Context
	stopDispatch context.CancelFunc
	wg           sync.WaitGroup
	// watcherDone is closed when the watcher returned; nil: none.
	watcherDone chan struct{}
}

// startReaping starts the reaper (Options.processes' Run).
func (s *Supervisor) startReaping(ctx context.Context) *runHelpers {
	h := &runHelpers{exits: make(chan procs.Exit, 64), notes: make(chan notify.Message, 64)}
	h.reapCtx, h.stopReap = context.WithCancel(context.Background())
	h.watchCtx, h.stopWatch = context.WithCancel(ctx)
	h.dispatchCtx, h.stopDispatch = context.WithCancel(context.Background())
	h.wg.Go(func() { s.own.procs.Run(h.reapCtx, h.exits) })
	h.wg.Go(func() { s.own.prober.Run(h.reapCtx) })
	return h
}

// startListening opens the notify socket and starts its reader, the
// reloader, the reader of resource use (which reads nothing until asked)
// and, with Options.Watch, the manifest watcher.
func (s *Supervisor) startListening(h *runHelpers) error {
	sock, err := notify.Listen(s.opts.NotifyDir)
	if err != nil {
		return err
	}
	s.own.notify = sock
	h.wg.Go(func() { sock.Run(h.reapCtx, h.notes) })
	h.wg.Go(func() { s.reloader(h.watchCtx) })
	h.wg.Go(func() { s.usage.Run(h.reapCtx) })
	if len(s.opts.Watch) == 0 {
		return nil
	}
	// Once watching, read the manifests again: an edit made since they
	// were loaded, before the watches were in place, is not lost.
	w := &watch.Watcher{Paths: s.opts.Watch, Debounce: s.opts.ReloadDebounce, Logger: s.opts.Logger,
		Ready: func() { s.watching <- struct{}{} }}
	h.watcherDone = make(chan struct{})
	go func() {
		defer close(h.watcherDone)
		if err := w.Run(h.watchCtx, s.RequestReload); err != nil {
			s.opts.Logger.Error("manifests are not watched; reload with SIGHUP", "err", err)
		}
	}()
	return nil
}

// stopHelpers stops what Run started and waits for it. The reloader
// returns without waiting for a load in progress (see load); the watcher
// and such a load are waited for no longer than readDrain, since reading a
// file on a filesystem that does not answer can block for ever.
func (s *Supervisor) stopHelpers(h *runHelpers) {
	s.markStopping()
	h.stopWatch()
	h.stopReap()
	h.wg.Wait()
	s.waitReaders(h.watcherDone, readDrain)
}

// release closes what the owner holds as Run returns: the workers' IPC
// channels (waiting for their goroutines), the dispatchers, every socket
// reference, the notify socket; and it waits, up to outputDrain, for the
// output of the workers to be copied, and for paddock's stdout and stderr
// to take what was queued for them.
func (o *owner) release() {
	for _, w := range o.workers {
		if w.cl != nil {
			w.cl.ch.Close()
		}
	}
	o.sup.channelsWG.Wait()
	o.closeDispatchers()
	for _, w := range o.workers {
		w.releaseSockets()
	}
	o.closeUDPHandles()
	for _, socks := range o.onDemand {
		for _, sock := range socks {
			sock.Release()
		}
	}
	for _, socks := range o.appSockets {
		for _, sock := range socks {
			sock.Release()
		}
	}
	if o.notify != nil {
		o.notify.Close()
	}
	o.copiers.drain(outputDrain)
	o.sup.stdout.flush(outputDrain)
	o.sup.stderr.flush(outputDrain)
}

// loop is the owner loop: it plans, carries the plan out, and waits for
// the next thing to happen (an exit, a notification, an IPC message, a
// deadline, a request), until every worker stopped after done is closed,
// or Kill.
func (o *owner) loop(done <-chan struct{}, h *runHelpers) error {
	timer := o.clock.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		now := o.clock.Now()
		watchdogAt := o.checkWatchdogs(now)
		desired := o.specs
		if o.shutting {
			desired = nil
		}
		plan := reconcile.Plan(desired, o.observed(), now)
		// Before the plan is carried out: a critical app that failed
		// now is not restarted once more.
		crashWake, failed := o.observeCrashLoops(now)
		if failed {
			continue // every worker is to be stopped: plan it
		}
		// Before the actions: an app released by this plan is said
		// to be so before its workers fork.
		o.reportHeld(plan.Held)
		o.execute(plan, now)
		o.releaseIdleHandles()
		o.wakeAt = time.Time{}
		o.reportRollouts(plan.Rollouts, now)
		if !o.shutting {
			o.noteSettled(now)
		}
		if o.shutting && len(o.workers) == 0 {
			if o.failed != nil {
				o.failed.Killed = o.forced
				return o.failed
			}
			if o.forced {
				return ErrStopTimeout
			}
			return nil
		}
		if len(plan.Actions) > 0 {
			// Carrying out a plan changes the state (a start that
			// failed is now in backoff): plan again before waiting.
			// This converges: no action repeats on unchanged state.
			continue
		}
		o.notifySystemd(now)
		var wake <-chan time.Time
		if at := earliest(earliest(earliest(plan.RequeueAt, watchdogAt), crashWake), o.wakeAt); !at.IsZero() {
			timer.Reset(max(at.Sub(o.clock.Now()), 0))
			wake = timer.C()
		}
		select {
		case ex := <-h.exits:
			o.handleExit(ex)
		case m := <-h.notes:
			o.handleNotify(m)
		case m := <-o.sup.ipcIn:
			o.handleIPC(h.dispatchCtx, m, o.clock.Now())
		case <-o.sup.ipcFaults:
			o.handleChannelFaults(o.clock.Now())
		case <-wake:
		case <-done:
			done = nil
			o.beginShutdown()
		case req := <-o.sup.requests:
			req(o)
		case <-o.sup.outputChanged:
			o.reportOutput()
			o.refreshExits()
		case <-o.sup.logsChanged:
			o.reportLogs()
		case <-o.sup.usageSampled:
			o.checkMemory()
		case <-o.prober.report:
			o.handleHealth()
		case <-o.sup.kill:
			o.killAll()
			return ErrKilled
		}
		timer.Stop()
	}
}

// beginShutdown makes every plan from now on stop every worker. It does
// nothing the second time (a critical app failed, then ctx is done).
func (o *owner) beginShutdown() {
	if o.shutting {
		return
	}
	o.shutting = true
	o.sup.markStopping()
	o.sup.sdNotify("STOPPING=1")
	o.opts.Logger.Info("stopping all workers")
}

// Done is closed when Run has returned.
func (s *Supervisor) Done() <-chan struct{} { return s.ended }

// Kill makes Run send SIGKILL to the process group of every worker and
// return at once. It does not block.
func (s *Supervisor) Kill() {
	select {
	case s.kill <- struct{}{}:
	default:
	}
}

// do runs f in the Run goroutine, with the state it owns, and waits for it
// to finish. It returns ctx.Err() when ctx is done before Run took f, and
// ErrNotRunning once Run has returned; f has not run then.
func (s *Supervisor) do(ctx context.Context, f func(o *owner)) error {
	done := make(chan struct{})
	select {
	case s.requests <- func(o *owner) { f(o); close(done) }:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.ended:
		return ErrNotRunning
	}
	// Run calls f as soon as it receives it: wait for it whatever ctx
	// says, since the caller reads what f writes.
	<-done
	return nil
}

// execute carries out the actions of plan: starts, stops, kills, and
// the forgetting of workers replaced or gone.
func (o *owner) execute(plan reconcile.Result, now time.Time) {
	for _, a := range plan.Actions {
		switch a := a.(type) {
		case reconcile.Start:
			if a.Replaces != 0 {
				delete(o.workers, a.Replaces)
			}
			o.start(o.desiredApp(a.App), a.Restarts, now)
		case reconcile.Stop:
			w := o.workers[a.Worker]
			if w.Replace != "" && w.Phase == reconcile.Running {
				o.emit(Event{Type: EventReplaced, App: w.App, Worker: w.ID, PID: w.pid, Generation: w.Generation,
					Detail: w.Replace})
			}
			o.stop(w, now)
		case reconcile.Kill:
			w := o.workers[a.Worker]
			if !w.signaled {
				// A disconnected worker still running at killTimeout:
				// killSignal now, SIGKILL after another killTimeout.
				o.signalStop(w)
				w.StopDeadline = now.Add(w.KillTimeout)
				continue
			}
			w.Killed = true
			if w.proc != nil {
				if err := w.proc.KillGroup(); err != nil {
					o.opts.Logger.Error("kill", "app", w.App, "worker", w.ID, "pid", w.pid, "err", err)
				}
			}
			if o.shutting {
				o.forced = true
			}
			o.emit(Event{Type: EventKill, App: w.App, Worker: w.ID, PID: w.pid, Generation: w.Generation,
				Detail: fmt.Sprintf("did not stop within killTimeout %s", w.KillTimeout)})
		case reconcile.Forget:
			delete(o.workers, a.Worker)
		}
	}
}

// emit logs e, at warn for an unintended exit, lost output, a crash loop
// or a failed health check, at error for a critical app that failed, and
// hands it to Options.OnEvent, stamped with the clock's time.
func (o *owner) emit(e Event) {
	e.Time = o.clock.Now()
	level := slog.LevelInfo
	switch e.Type {
	case EventExit:
		if !e.Intended {
			level = slog.LevelWarn
		}
	case EventOutputLost, EventCrashLoop, EventHealthFailed, EventRolloutStalled, EventRolloutRollback,
		EventMemoryExceeded, EventWatchdogMissed, EventRelayDropped:
		// Something the operator should look at; paddock acts on it.
		level = slog.LevelWarn
	case EventAppFailed:
		level = slog.LevelError
	}
	o.opts.Logger.Log(context.Background(), level, e.Type, e.attrs()...)
	if o.opts.OnEvent != nil {
		o.opts.OnEvent(e)
	}
}
