// Package reconcile computes the actions that move the running workers toward
// the manifests.
//
// Plan is a pure function of (desired apps, observed workers, now): no I/O, no
// clock of its own, no goroutines, deterministic order. It is level-based: it
// looks at the whole observed state every time, never at the last event, so
// a lost or doubled event cannot leave the workers wrong. "Come back at T"
// (a restart delay, a kill deadline) is data in the result.
package reconcile

import (
	"fmt"
	"sort"
	"time"
)

// AppSpec is what Plan needs to know of one desired app.
type AppSpec struct {
	Name string
	// Generation identifies the spec apart from Instances: workers of
	// another generation are replaced.
	Generation string
	// Instances is the number of workers wanted.
	Instances int
	// KillSignal and KillTimeout shape a graceful stop.
	KillSignal  string
	KillTimeout time.Duration
	// MaxSurge and MaxUnavailable bound a rolling update: at most
	// Instances+MaxSurge workers, at least Instances-MaxUnavailable ready.
	MaxSurge, MaxUnavailable int
	// MinReadyTime is how long a new worker must stay ready, without
	// exiting, before it counts as available: a rolling update retires
	// old workers only against available new ones, and a new worker that
	// exits before it is available stalls the update.
	MinReadyTime time.Duration
	// RollingOut says the app's workers are being replaced by this
	// generation (its spec changed, or a rolling restart was asked for)
	// and the rolling update has not completed: its status is reported
	// even once no old worker is left (they may all have been crashing),
	// until the new workers are all ready or the update stalls.
	RollingOut bool
	// DependsOn lists the apps this one depends on: its workers start
	// only while each of them is available, and it is planned after them
	// (see Plan).
	DependsOn []string
	// Stall is the stall of this generation's rolling update that the
	// supervisor recorded from an earlier plan (zero: none). Plan keeps
	// reporting it, whatever the workers do meanwhile, until the update
	// progresses: more new workers available than Stall.NewReady. A new
	// generation starts without one.
	Stall Stall
}

// Phase is where a worker is in its life, as the supervisor observes it.
type Phase int

const (
	// Running: the process is alive and not being stopped.
	Running Phase = iota
	// Stopping: the process was asked to stop (KillSignal, or SIGKILL when
	// Killed) and has not exited yet. It no longer counts toward Instances.
	Stopping
	// Backoff: the process exited and its replacement is due at RestartAt.
	// It still counts toward Instances.
	Backoff
	// Done: the process exited and its restart policy says it is not
	// replaced. It still counts toward Instances until the spec changes.
	Done
)

func (p Phase) String() string {
	switch p {
	case Running:
		return "running"
	case Stopping:
		return "stopping"
	case Backoff:
		return "backoff"
	case Done:
		return "done"
	}
	return fmt.Sprintf("phase(%d)", int(p))
}

// Worker is the observed state of one worker.
type Worker struct {
	ID         int
	App        string
	Generation string
	Phase      Phase
	// Restarts is the number of consecutive restarts that led to this
	// worker; for a worker in Backoff, the number its replacement will have.
	Restarts int
	// RestartAt is when a worker in Backoff is replaced.
	RestartAt time.Time
	// StopDeadline is when a Stopping worker that has not exited gets
	// SIGKILL; Killed says it already did.
	StopDeadline time.Time
	Killed       bool
	// Ready says a Running worker is ready to serve (see the app's
	// readiness), since ReadyAt; until then ReadyDeadline is when a
	// rolling update that waits for it is reported stalled. A ready worker
	// is available once it stayed ready for the app's MinReadyTime.
	// FailedUnready marks a worker in Backoff or Done that exited before
	// it was ever available: never ready, or ready for less than
	// MinReadyTime.
	Ready         bool
	ReadyAt       time.Time
	ReadyDeadline time.Time
	FailedUnready bool
	// KillSignal and KillTimeout are those of the spec the worker was
	// started with: an app removed from the manifest is still stopped its
	// own way.
	KillSignal  string
	KillTimeout time.Duration
	// Replace, when not empty, says why a Running worker of the current
	// generation must be replaced (a failed health check, memory above
	// its limit, a missed watchdog): it is replaced new first, like an
	// old worker of a rolling update — a new worker starts within the
	// app's maxSurge, and the marked one is stopped once enough new
	// workers are available. Until then it keeps serving.
	Replace string
	// DependsOn lists the apps the worker's app depends on, as last
	// declared. Plan reads it for apps no longer desired only (the
	// desired ones have AppSpec.DependsOn): their workers stop after
	// those of the apps that depend on them.
	DependsOn []string
}

// Name returns "app/id".
func (w Worker) Name() string { return fmt.Sprintf("%s/%d", w.App, w.ID) }

// availableAt returns when a ready worker becomes available.
func (w Worker) availableAt(minReady time.Duration) time.Time { return w.ReadyAt.Add(minReady) }

// Action is one step of a plan.
type Action interface {
	fmt.Stringer
	isAction()
}

// Start a new worker of App at Generation. Restarts carries the consecutive
// restart count; Replaces, when not 0, is the worker in Backoff that the new
// one replaces (and that is forgotten).
type Start struct {
	App        string
	Generation string
	Restarts   int
	Replaces   int
}

// Stop a running worker gracefully: Signal now, SIGKILL to its process group
// after Timeout.
type Stop struct {
	Worker  int
	App     string
	Signal  string
	Timeout time.Duration
}

// Kill sends SIGKILL to the process group of a worker whose graceful stop
// timed out.
type Kill struct {
	Worker int
	App    string
}

// Forget drops a worker that has exited (Backoff or Done) and is no longer
// wanted.
type Forget struct {
	Worker int
	App    string
}

func (Start) isAction()  {}
func (Stop) isAction()   {}
func (Kill) isAction()   {}
func (Forget) isAction() {}

func (a Start) String() string {
	s := fmt.Sprintf("start %s gen=%s", a.App, a.Generation)
	if a.Replaces != 0 {
		s += fmt.Sprintf(" replacing %s/%d restart=%d", a.App, a.Replaces, a.Restarts)
	}
	return s
}
func (a Stop) String() string {
	return fmt.Sprintf("stop %s/%d %s %s", a.App, a.Worker, a.Signal, a.Timeout)
}
func (a Kill) String() string   { return fmt.Sprintf("kill %s/%d", a.App, a.Worker) }
func (a Forget) String() string { return fmt.Sprintf("forget %s/%d", a.App, a.Worker) }

// Result is a plan: the actions to take now, in order, and when to plan
// again if nothing else happens first (zero: no need).
type Result struct {
	Actions   []Action
	RequeueAt time.Time
	// Rollouts holds the apps in a rolling update (workers of an older
	// generation remain), by name.
	Rollouts map[string]RolloutStatus
	// Held holds, by name, the apps that have workers to start (or a
	// rolling update to carry on) and wait for a dependency, with why:
	// "waiting for db-proxy: 0/1 available".
	Held map[string]string
}

func (r *Result) requeue(t time.Time) {
	if r.RequeueAt.IsZero() || t.Before(r.RequeueAt) {
		r.RequeueAt = t
	}
}

// Plan returns the actions that move observed toward desired at time now.
//
// For each app: workers of an app no longer desired are stopped (or
// forgotten when already exited); workers of another generation are
// replaced; the workers of the current generation that count (Running,
// Backoff, Done) are brought to Instances, scale-down dropping exited
// workers first and then stopping the newest; a worker in Backoff is
// replaced once its RestartAt has come. Stopping workers past their deadline
// are killed. Workers are visited in ID order.
//
// Dependencies (AppSpec.DependsOn) order the apps: an app is planned after
// those it depends on, ties in name order, so that it sees their state
// after this plan's actions. Its Start actions (first start, scale-up,
// restarts, the new workers of a rolling update) are held, and the
// retirement of the ready old workers of its rolling update with them,
// while a dependency is not available (see availability); Result.Held
// says why. Its running workers are never stopped for it. The running
// workers of an app no longer desired are stopped only once no worker of
// an app that depends on it (desired, or no longer desired: see
// Worker.DependsOn) is alive, running or stopping. A dependency cycle,
// which manifest.Validate refuses, is broken at the app first in name
// order: the dependencies that go against the order are not followed, so
// that no set of apps waits for itself.
func Plan(desired map[string]AppSpec, observed []Worker, now time.Time) Result {
	var r Result
	byApp := map[string][]Worker{}
	for _, w := range observed {
		byApp[w.App] = append(byApp[w.App], w)
	}
	names := make([]string, 0, len(desired)+len(byApp))
	for n := range desired {
		names = append(names, n)
	}
	for n := range byApp {
		if _, ok := desired[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	g := newGraph(desired, byApp, names)
	for _, name := range g.order {
		ws := byApp[name]
		sort.Slice(ws, func(i, j int) bool { return ws[i].ID < ws[j].ID })
		spec, wanted := desired[name]
		var gt gate
		if wanted {
			gt.hold = g.waitFor(&r, spec, now)
		} else {
			gt.stopAfter = g.aliveDependant(name, byApp)
		}
		first := len(r.Actions)
		if planApp(&r, spec, wanted, ws, now, gt) {
			if r.Held == nil {
				r.Held = map[string]string{}
			}
			r.Held[name] = gt.hold
		}
		if wanted && g.isDependency[name] {
			g.avail[name] = availability(spec, ws, r.Actions[first:], r.Rollouts[name], now)
		}
	}
	return r
}

// gate is what an app's dependencies allow of its plan.
type gate struct {
	// hold, when not empty, says why the app's workers may not start:
	// "waiting for db: 0/1 available".
	hold string
	// stopAfter, when not empty, names an app that depends on this one,
	// no longer desired, and has live workers: this one's running workers
	// stay until they are gone.
	stopAfter string
}

// planApp plans one app. It reports whether the app has workers to start
// (or a rolling update to carry on) that gt holds back.
func planApp(r *Result, spec AppSpec, wanted bool, ws []Worker, now time.Time, gt gate) bool {
	var current []Worker // current generation, counted toward Instances
	var old []Worker     // running workers of an older generation
	for _, w := range ws {
		switch {
		case w.Phase == Stopping:
			if w.Killed {
				continue
			}
			if !now.Before(w.StopDeadline) {
				r.Actions = append(r.Actions, Kill{Worker: w.ID, App: w.App})
			} else {
				r.requeue(w.StopDeadline)
			}
		case !wanted:
			if w.Phase == Running && gt.stopAfter != "" {
				continue // its dependants stop first
			}
			retire(r, w)
		case w.Generation != spec.Generation:
			if w.Phase == Running {
				old = append(old, w)
			} else {
				retire(r, w) // an exited worker of an old spec is not replaced
			}
		default:
			current = append(current, w)
		}
	}
	if !wanted {
		return false
	}
	held := false
	// Marked workers do not count toward Instances: they are on their way
	// out, like old ones, and go once their replacements are available.
	current, sick := splitReplaced(current)
	current = scaleDown(r, spec, current)
	for _, w := range current {
		if w.Phase != Backoff {
			continue
		}
		if now.Before(w.RestartAt) {
			r.requeue(w.RestartAt)
			continue
		}
		if gt.hold != "" {
			held = true
			continue
		}
		r.Actions = append(r.Actions, Start{App: spec.Name, Generation: spec.Generation, Restarts: w.Restarts, Replaces: w.ID})
	}
	if len(old) == 0 && !spec.RollingOut {
		if len(sick) == 0 {
			if gt.hold != "" {
				return held || len(current) < spec.Instances
			}
			for i := len(current); i < spec.Instances; i++ {
				r.Actions = append(r.Actions, Start{App: spec.Name, Generation: spec.Generation})
			}
			return held
		}
		// Replacing marked workers is not a rolling update: it is not
		// reported as one, and does not stall.
		_, moved := replace(r, spec, current, sick, now, gt.hold != "")
		return moved || held
	}
	// During a rolling update, a marked worker goes like an old one.
	st, moved := replace(r, spec, current, append(old, sick...), now, gt.hold != "")
	if r.Rollouts == nil {
		r.Rollouts = map[string]RolloutStatus{}
	}
	r.Rollouts[spec.Name] = st
	return moved || held
}

// scaleDown retires the workers of the current generation beyond Instances:
// exited ones first (nothing to stop), newest first, then the newest
// running ones. It returns the workers kept.
func scaleDown(r *Result, spec AppSpec, current []Worker) []Worker {
	excess := len(current) - spec.Instances
	if excess <= 0 {
		return current
	}
	drop := map[int]bool{}
	for _, phase := range []Phase{Backoff, Done, Running} {
		for i := len(current) - 1; i >= 0 && excess > 0; i-- {
			if current[i].Phase == phase {
				drop[current[i].ID] = true
				excess--
			}
		}
	}
	var keep []Worker
	for _, w := range current {
		if drop[w.ID] {
			retire(r, w)
		} else {
			keep = append(keep, w)
		}
	}
	return keep
}

// retire stops a running worker or forgets an exited one.
func retire(r *Result, w Worker) {
	if w.Phase == Running {
		r.Actions = append(r.Actions, Stop{Worker: w.ID, App: w.App, Signal: w.KillSignal, Timeout: w.KillTimeout})
	} else {
		r.Actions = append(r.Actions, Forget{Worker: w.ID, App: w.App})
	}
}
