package supervisor

import (
	"context"
	"fmt"
	"time"

	"github.com/paddock-sh/paddock/manifest"
	"github.com/paddock-sh/paddock/reconcile"
)

// This file holds the rollback of a stalled rolling update
// (rollout.onStall: rollback): the generations that proved themselves, the
// rollback to the last of them, and how it ends.

// release is a generation of an app that ran: the spec its workers were
// started with, and the generation they have (with a restart's "-rN").
type release struct {
	app        *manifest.App
	generation string
}

// rollback is an app running an earlier release than its manifest says.
type rollback struct {
	// to is the release that runs; from the generation whose rolling
	// update stalled, and fromManifest the manifest's generation of the
	// app then (without a restart's "-rN"): a manifest whose app has
	// another generation rolls forward.
	to           release
	from         string
	fromManifest string
	reason       string
}

// RollbackInfo says that an app runs an earlier generation than its
// manifest's, and why.
type RollbackInfo struct {
	// From is the generation whose rolling update stalled (the
	// manifest's, or a restart of it), To the generation that runs.
	From, To string
	// Reason is why the rolling update of From stalled.
	Reason string
}

// desiredApp returns the spec the workers of app are started with: the
// manifest's, or while the app is rolled back, the release it was rolled
// back to, with the manifest's instances.
func (o *owner) desiredApp(name string) *manifest.App {
	a := o.app(name)
	rb := o.rolledBack[name]
	if rb == nil || a == nil {
		return a
	}
	to := *rb.to.app
	to.Instances, to.InstancesAuto = a.Instances, a.InstancesAuto
	return &to
}

// noteSettled records, for every app whose workers are all available
// (reconcile.Settled), its generation as the one a stalled rolling update
// returns to.
func (o *owner) noteSettled(now time.Time) {
	var byApp map[string][]reconcile.Worker
	for name, spec := range o.specs {
		if g, ok := o.lastGood[name]; ok && g.generation == spec.Generation {
			continue
		}
		if byApp == nil {
			byApp = map[string][]reconcile.Worker{}
			for _, w := range o.workers {
				byApp[w.App] = append(byApp[w.App], w.Worker)
			}
		}
		if a := o.desiredApp(name); a != nil && reconcile.Settled(spec, byApp[name], now) {
			o.lastGood[name] = release{app: a, generation: spec.Generation}
		}
	}
}

// stallAction decides what app's stalled rolling update does, by its
// manifest's rollout.onStall: it returns the release to roll back to (nil:
// keep), and what to say of it.
func (o *owner) stallAction(app string) (*release, string) {
	a := o.app(app)
	if a == nil || a.Rollout.OnStall != manifest.OnStallRollback {
		return nil, ""
	}
	gen := o.specs[app].Generation
	if rb := o.rolledBack[app]; rb != nil {
		return nil, fmt.Sprintf("rollout.onStall is rollback, but this is the rollback to generation %s already: nothing earlier to roll back to", gen)
	}
	good, ok := o.lastGood[app]
	if !ok || good.generation == gen {
		return nil, fmt.Sprintf("rollout.onStall is rollback, but no generation of %s ever had all its workers available: nothing to roll back to", app)
	}
	return &good, fmt.Sprintf("rolling back to generation %s (rollout.onStall: rollback)", good.generation)
}

// rollBack makes app run release to again, as a rolling update of its own:
// the workers of to that still serve stay, the others are replaced. reason
// is why the rolling update of the current generation stalled.
func (o *owner) rollBack(app string, to release, reason string) {
	a := o.app(app)
	from := o.specs[app].Generation
	o.rolledBack[app] = &rollback{to: to, from: from, fromManifest: a.Generation(), reason: reason}
	o.setSpec(a)
	o.wakeAt = o.clock.Now() // plan again at once, for the new spec
	o.opts.Logger.Warn("rolling back a stalled rolling update", "app", app, "from", from, "to", to.generation, "reason", reason)
	o.emit(Event{Type: EventRolloutRollback, App: app, Generation: to.generation, FromGeneration: from,
		Detail: fmt.Sprintf("rolled back from generation %s to %s: %s", from, to.generation, reason)})
}

// keepRollback reports whether app, rolled back, stays so with a as its
// manifest: a's generation is still the one rolled back from. A rollback
// that does not stay is dropped (logged): the manifest rolls forward.
func (o *owner) keepRollback(a *manifest.App) bool {
	rb := o.rolledBack[a.Name]
	if rb == nil {
		return false
	}
	if a.Generation() == rb.fromManifest {
		return true
	}
	delete(o.rolledBack, a.Name)
	o.opts.Logger.Info("the manifest changed a rolled-back app: rolling forward", "app", a.Name, "rolledBackFrom", rb.from)
	return false
}

// rollbackInfo returns what status says of app's rollback; nil if it is
// not rolled back.
func (o *owner) rollbackInfo(app string) *RollbackInfo {
	rb := o.rolledBack[app]
	if rb == nil {
		return nil
	}
	return &RollbackInfo{From: rb.from, To: rb.to.generation, Reason: rb.reason}
}

// forgetReleases drops the releases and rollbacks of apps no longer in the
// running set.
func (o *owner) forgetReleases() {
	for name := range o.lastGood {
		if o.app(name) == nil {
			delete(o.lastGood, name)
		}
	}
	for name := range o.rolledBack {
		if o.app(name) == nil {
			delete(o.rolledBack, name)
		}
	}
}

// Rollbacks returns the apps that applying next would leave rolled back
// (rollout.onStall: rollback): those whose app in next has the generation
// their rolling update stalled at. Applying next changes nothing for them;
// the running app differs from next all the same.
func (s *Supervisor) Rollbacks(ctx context.Context, next *manifest.Set) (map[string]RollbackInfo, error) {
	out := map[string]RollbackInfo{}
	err := s.do(ctx, func(o *owner) {
		for name, rb := range o.rolledBack {
			if a := next.Apps[name]; a != nil && a.Generation() == rb.fromManifest {
				out[name] = *o.rollbackInfo(name)
			}
		}
	})
	return out, err
}
