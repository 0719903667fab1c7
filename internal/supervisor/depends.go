package supervisor

import (
	"time"

	"github.com/paddock-sh/paddock/manifest"
	"github.com/paddock-sh/paddock/reconcile"
)

// This file holds what the owner keeps and reports of the dependencies
// between apps (dependsOn); reconcile.Plan decides what they allow.

// dependsOn returns the dependencies app last declared: those of the
// running set, or, for an app removed from it whose workers remain,
// those of the last set that had it. The planner stops such an app's
// workers after those of its dependants; at shutdown every app is
// such an app.
func (o *owner) dependsOn(app string) []string {
	if o.set != nil {
		if a, ok := o.set.Apps[app]; ok {
			return a.DependsOn
		}
	}
	return o.removedDeps[app]
}

// rememberRemovedDeps keeps the dependsOn of the apps of the running set
// that next removes, and forgets those of apps that next declares again
// or that have no worker left. Call it before o.set becomes next.
func (o *owner) rememberRemovedDeps(next *manifest.Set) {
	for name := range o.removedDeps {
		if _, back := next.Apps[name]; back || !o.hasWorkers(name) {
			delete(o.removedDeps, name)
		}
	}
	if o.set == nil {
		return
	}
	for name, a := range o.set.Apps {
		if _, kept := next.Apps[name]; kept || len(a.DependsOn) == 0 || !o.hasWorkers(name) {
			continue
		}
		if o.removedDeps == nil {
			o.removedDeps = map[string][]string{}
		}
		o.removedDeps[name] = a.DependsOn
	}
}

// reportHeld emits dependency-wait for each app that began to wait for a
// dependency in the last plan (held, reconcile.Result.Held) and
// dependency-ready for each that no longer waits, and keeps held for
// status. During shutdown nothing starts and nothing is reported.
func (o *owner) reportHeld(held map[string]string) {
	if o.shutting {
		o.held = nil
		return
	}
	for _, app := range sortedKeys(held) {
		if _, was := o.held[app]; !was {
			o.emit(Event{Type: EventDependencyWait, App: app, Generation: o.specs[app].Generation, Detail: held[app]})
		}
	}
	for _, app := range sortedKeys(o.held) {
		if _, still := held[app]; !still {
			o.emit(Event{Type: EventDependencyReady, App: app, Generation: o.specs[app].Generation, Detail: "was " + o.held[app]})
		}
	}
	o.held = held
}

// heldOnTheWay reports whether an app waits for a dependency that is on
// its way to available: one of its workers is ready and has not been
// ready for its minReadyTime yet. The set has not converged then: the
// app starts soon.
func (o *owner) heldOnTheWay(now time.Time) bool {
	for app := range o.held {
		for _, dep := range o.specs[app].DependsOn {
			minReady := o.specs[dep].MinReadyTime
			for _, w := range o.workers {
				if w.App == dep && w.Phase == reconcile.Running && w.Ready && now.Before(w.ReadyAt.Add(minReady)) {
					return true
				}
			}
		}
	}
	return false
}
