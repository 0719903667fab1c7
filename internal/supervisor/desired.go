package supervisor

import (
	"context"
	"sort"
	"strconv"

	"github.com/paddock-sh/paddock/manifest"
	"github.com/paddock-sh/paddock/reconcile"
)

// This file holds the desired state of each app, as the planner sees it:
// its manifest, with the runtime scale override and restart count.

// scaleOverride is a runtime `instances` set by Scale. It lasts until the
// manifest's own `instances` for the app changes: manifestInstances is the
// value it overrides.
type scaleOverride struct {
	instances         int
	manifestInstances int
}

// spec returns the reconcile spec of app a: its manifest, with the
// runtime scale override and the restart count applied; or while the app
// is rolled back, the release it was rolled back to, with a's instances
// and the scale override.
func (o *owner) spec(a *manifest.App) reconcile.AppSpec {
	run := a
	rb := o.rolledBack[a.Name]
	if rb != nil {
		run = rb.to.app
	}
	spec := reconcile.AppSpec{
		Name:           a.Name,
		Generation:     run.Generation(),
		Instances:      a.Instances,
		KillSignal:     run.KillSignal,
		KillTimeout:    run.KillTimeout,
		MaxSurge:       run.Rollout.MaxSurge,
		MaxUnavailable: run.Rollout.MaxUnavailable,
		MinReadyTime:   run.MinReadyTime,
		DependsOn:      a.DependsOn,
	}
	if ov, ok := o.scale[a.Name]; ok {
		spec.Instances = ov.instances
	}
	if rb != nil {
		spec.Generation = rb.to.generation
	} else if n := o.restartCount[a.Name]; n > 0 {
		// A restart is a new generation of the same spec: the rolling
		// update replaces every worker, with the app's rollout rules.
		spec.Generation += "-r" + strconv.Itoa(n)
	}
	return spec
}

// setSpec makes a's spec the desired one. When its generation
// differs from the spec it replaces and the app has workers, a rolling
// update to it begins (see reconcile.AppSpec.RollingOut); it lasts until
// reportRollouts sees it complete. A stall recorded for the generation is
// kept while the generation stays (a scale, a reload that leaves the app
// alone); a new generation starts without one. A rolled-back app stays so
// while a's generation is the one rolled back from (keepRollback).
func (o *owner) setSpec(a *manifest.App) {
	o.keepRollback(a)
	spec := o.spec(a)
	if prev, ok := o.specs[a.Name]; ok && prev.Generation != spec.Generation && o.hasWorkers(a.Name) {
		o.rollingOut[a.Name] = spec.Generation
	} else if ok && prev.Generation == spec.Generation {
		spec.Stall = prev.Stall
	}
	spec.RollingOut = o.rollingOut[a.Name] == spec.Generation
	o.specs[a.Name] = spec
}

// dropStaleOverrides forgets the scale overrides of apps that are
// gone, or whose manifest `instances` changed in set: the manifest speaks
// again. It returns the apps whose override was dropped. It also resets
// the restart count of apps whose spec changed. Call it before o.set
// becomes set.
func (o *owner) dropStaleOverrides(set *manifest.Set) []string {
	var dropped []string
	for name, ov := range o.scale {
		a, ok := set.Apps[name]
		if ok && a.Instances == ov.manifestInstances {
			continue
		}
		delete(o.scale, name)
		if ok {
			dropped = append(dropped, name)
		}
	}
	// A new spec is a new generation anyway: restarts count from 0 again.
	for name := range o.restartCount {
		if a, ok := set.Apps[name]; !ok || o.set == nil || o.set.Apps[name] == nil ||
			a.Generation() != o.set.Apps[name].Generation() {
			delete(o.restartCount, name)
		}
	}
	sort.Strings(dropped)
	return dropped
}

// effectiveChanges returns manifest.Diff(current, next) as the
// running supervisor sees it: an app scaled at run time counts from its
// override, and keeps it while next leaves its manifest `instances` alone.
func (o *owner) effectiveChanges(next *manifest.Set) []manifest.Change {
	changes := manifest.Diff(o.set, next)
	out := changes[:0]
	for _, c := range changes {
		if ov, ok := o.scale[c.App]; ok && c.Kind != manifest.ChangeAdded {
			c.From = ov.instances
			if a := next.Apps[c.App]; a != nil && a.Instances == ov.manifestInstances {
				c.To = ov.instances
			}
		}
		out = append(out, c)
	}
	return out
}

// Diff returns what applying next would change in the running supervisor,
// app by app, without applying it.
func (s *Supervisor) Diff(ctx context.Context, next *manifest.Set) ([]manifest.Change, error) {
	var out []manifest.Change
	err := s.do(ctx, func(o *owner) { out = o.effectiveChanges(next) })
	return out, err
}
