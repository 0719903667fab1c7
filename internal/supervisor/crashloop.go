package supervisor

import (
	"fmt"
	"sort"
	"time"

	"github.com/paddock-sh/paddock/manifest"
	"github.com/paddock-sh/paddock/reconcile"
)

// This file holds the crash loops of apps, as the owner sees them: the
// record of each app's exits (reconcile.CrashLoop decides), the events
// and status that report them, and the end of Run when a critical app
// fails.

// AppFailedError is what Run returns when a critical app (`critical: true`,
// or every app with Options.ExitOnFailed) failed: it had been crash-looping,
// its restarts delayed by backoff.max, with none of its workers up and
// ready, for its failAfter. Run stopped every app gracefully before it
// returned.
type AppFailedError struct {
	App       string
	FailAfter time.Duration
	// CrashLoop describes the loop when the app failed ("14 exits in
	// 60s, last exit 1").
	CrashLoop string
	// Killed says some worker did not stop within its killTimeout on the
	// way out and was killed.
	Killed bool
}

func (e *AppFailedError) Error() string {
	s := fmt.Sprintf("critical app %s failed: crash-looping for failAfter (%s) with no worker up (%s); every app was stopped",
		e.App, e.FailAfter, e.CrashLoop)
	if e.Killed {
		s += ", some workers with SIGKILL after their killTimeout"
	}
	return s
}

// CrashLoopStatus describes an app that is crash-looping (see
// reconcile.CrashLoop): its workers keep exiting before they stayed up for
// its backoff.max.
type CrashLoopStatus struct {
	// Exits happened within Window, up to now (see reconcile.CrashLoop.Rate);
	// Since is when the crash loop began.
	Exits  int
	Window time.Duration
	Since  time.Time
	// The last exit: its code (-1 when a signal ended the worker), signal,
	// whether the program could not even start, and when.
	LastCode        int
	LastSignal      string
	LastStartFailed bool
	LastAt          time.Time
	// FailAt, for a critical app that is failing, is when paddock gives
	// up on it unless a worker stays up before; zero otherwise.
	FailAt time.Time
}

// String describes the crash loop in one line: "14 exits in 60s, last exit
// 1" (the signal's name when one ended the worker).
func (s CrashLoopStatus) String() string {
	last := "last exit " + fmt.Sprint(s.LastCode)
	switch {
	case s.LastStartFailed:
		last = "last start failed"
	case s.LastSignal != "":
		last = "last exit " + s.LastSignal
	}
	exits := "exits"
	if s.Exits == 1 {
		exits = "exit"
	}
	return fmt.Sprintf("%d %s in %s, %s", s.Exits, exits, formatWindow(s.Window), last)
}

// formatWindow prints a span the way the crash-loop line does: "60s" up to
// two minutes, "3m10s" beyond, to the second.
func formatWindow(d time.Duration) string {
	d = d.Round(time.Second)
	if d < 2*time.Minute {
		return fmt.Sprintf("%ds", int(d.Seconds()))
	}
	return d.String()
}

// appCrash is the owner's crash-loop record of one app, with the
// generation it last saw the app at.
type appCrash struct {
	reconcile.CrashLoop
	generation string
}

// crashPolicy returns the crash-loop settings of app a: its backoff.max,
// and its failAfter when it is critical.
func (o *owner) crashPolicy(a *manifest.App) reconcile.CrashPolicy {
	p := reconcile.CrashPolicy{BackoffMax: a.Backoff.Max}
	if o.critical(a) {
		p.FailAfter = a.FailAfter
	}
	return p
}

// critical reports whether paddock gives up when app a fails.
func (o *owner) critical(a *manifest.App) bool { return a.Critical || o.opts.ExitOnFailed }

// noteCrash records the exit of w, which exited on its own at now after
// running for uptime (ev is its exit event), in its app's crash-loop
// record when its restart policy replaces it, and reports a crash loop
// that begins with it. Call it once the restart policy was applied.
func (o *owner) noteCrash(w *worker, ev Event, uptime time.Duration, now time.Time) {
	if w.Phase != reconcile.Backoff || o.set == nil {
		return
	}
	a := o.set.Apps[w.App]
	if a == nil {
		return // a removed app's worker: it is not replaced
	}
	if o.crash == nil {
		o.crash = map[string]*appCrash{}
	}
	c := o.crash[w.App]
	if c == nil {
		c = &appCrash{generation: o.specs[w.App].Generation}
		o.crash[w.App] = c
	}
	e := reconcile.CrashExit{At: now, Uptime: uptime, Code: ev.ExitCode, Signal: ev.Signal, StartFailed: ev.StartFailed,
		Restarts: w.Restarts, Delay: w.RestartAt.Sub(now)}
	if c.Exit(e, o.crashPolicy(a)) {
		o.emit(Event{Type: EventCrashLoop, App: w.App, Generation: o.specs[w.App].Generation,
			Detail: o.crashLoopStatus(w.App, now).String()})
	}
}

// observeCrashLoops applies the crash-loop rule to every app with a
// record, at now: it reports the crash loops that ended, and when a
// critical app failed, it says so, begins the shutdown and returns true.
// wake is when to look again (zero: nothing due).
func (o *owner) observeCrashLoops(now time.Time) (wake time.Time, failed bool) {
	if len(o.crash) == 0 || o.shutting {
		return time.Time{}, false
	}
	byApp := map[string][]reconcile.CrashWorker{}
	for _, w := range o.workers {
		if _, ok := o.crash[w.App]; ok {
			byApp[w.App] = append(byApp[w.App], reconcile.CrashWorker{Phase: w.Phase, Ready: w.Ready, StartedAt: w.startedAt})
		}
	}
	names := make([]string, 0, len(o.crash))
	for name := range o.crash {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		c := o.crash[name]
		a := o.set.Apps[name]
		if a == nil {
			delete(o.crash, name) // removed: its workers are being retired
			continue
		}
		if gen := o.specs[name].Generation; gen != c.generation {
			c.generation = gen
			c.NewRelease()
		}
		p := o.crashPolicy(a)
		ended, appFailed, at := c.Observe(byApp[name], p, now)
		if ended {
			o.emit(Event{Type: EventCrashLoopEnded, App: name, Generation: c.generation,
				Detail: fmt.Sprintf("every worker stayed up for backoff.max (%s)", p.BackoffMax)})
		}
		if appFailed {
			o.appFailed(name, c, p, now)
			return time.Time{}, true
		}
		if c.Streak == 0 {
			delete(o.crash, name)
		}
		if !at.IsZero() && (wake.IsZero() || at.Before(wake)) {
			wake = at
		}
	}
	return wake, false
}

// appFailed reports that the critical app name failed and stops every
// app: Run returns an *AppFailedError once they stopped.
func (o *owner) appFailed(name string, c *appCrash, p reconcile.CrashPolicy, now time.Time) {
	summary := o.crashLoopStatus(name, now).String()
	o.failed = &AppFailedError{App: name, FailAfter: p.FailAfter, CrashLoop: summary}
	o.emit(Event{Type: EventAppFailed, App: name, Generation: c.generation,
		Detail: fmt.Sprintf("crash-looping for failAfter (%s), restarts delayed by backoff.max (%s), no worker up: %s; stopping every app",
			p.FailAfter, p.BackoffMax, summary)})
	o.beginShutdown()
}

// crashLoopStatus returns the crash loop of app name at now, nil when it
// is not crash-looping.
func (o *owner) crashLoopStatus(name string, now time.Time) *CrashLoopStatus {
	c := o.crash[name]
	if c == nil || !c.Looping {
		return nil
	}
	exits, window := c.Rate(now)
	st := &CrashLoopStatus{Exits: exits, Window: window, Since: c.LoopSince, LastCode: c.Last.Code,
		LastSignal: c.Last.Signal, LastStartFailed: c.Last.StartFailed, LastAt: c.Last.At}
	if a := o.set.Apps[name]; a != nil {
		st.FailAt = c.FailAt(o.crashPolicy(a))
	}
	return st
}
