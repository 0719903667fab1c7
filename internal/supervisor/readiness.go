package supervisor

import (
	"context"
	"fmt"

	"github.com/paddock-sh/paddock/reconcile"
)

// This file holds what the health endpoints (--health-addr) ask the
// owner loop: a small snapshot, taken without reading /proc, so that the
// answer measures the loop and nothing else.

// Readiness is the supervisor's state as a probe sees it.
type Readiness struct {
	// Stopping says paddock is shutting down: every worker is being
	// stopped and none starts.
	Stopping bool
	// Apps are the apps of the running set, in name order.
	Apps []AppReadiness
	// Manifests is the revision of the manifests that runs, and the one
	// last rejected, as Status has them.
	Manifests ManifestsStatus
}

// AppReadiness is one app's part of Readiness.
type AppReadiness struct {
	Name string
	// Instances is the desired worker count (the manifest's, or the
	// runtime override of paddock scale).
	Instances int
	// Available counts the workers running and ready for at least the
	// app's minReadyTime, of any generation; Need is how many the app
	// must have: max(1, Instances-rollout.maxUnavailable), 0 when no
	// instance is wanted. The app is ready when Available >= Need.
	Available, Need int
	// Critical says paddock gives up when the app fails (critical: true,
	// or --exit-on-failed); CrashLoop describes its crash loop ("14 exits
	// in 1m0s, last exit 1"), "" when it is not crash-looping.
	Critical  bool
	CrashLoop string
	// Waiting says which dependencies it waits for; Stalled why its
	// rolling update is stalled; "" when not.
	Waiting, Stalled string
}

// Ready reports whether the app has the available workers it needs.
func (a AppReadiness) Ready() bool { return a.Available >= a.Need }

// Failing reports whether the app is critical and crash-looping: paddock
// gives up on it (and exits 3) unless a worker stays up.
func (a AppReadiness) Failing() bool { return a.Critical && a.CrashLoop != "" }

// Why says, for an app that is not ready, what it lacks and what is known
// of the cause: "1/2 available; crash-looping: 5 exits in 1m0s, last
// exit 1".
func (a AppReadiness) Why() string {
	why := fmt.Sprintf("%d/%d available", a.Available, a.Need)
	if a.Waiting != "" {
		why += "; " + a.Waiting
	}
	if a.CrashLoop != "" {
		why += "; crash-looping: " + a.CrashLoop
	}
	if a.Stalled != "" {
		why += "; rolling update stalled: " + a.Stalled
	}
	return why
}

// Readiness returns the apps' availability as the owner loop sees it now.
// It is answered by the loop itself, so a caller bounding ctx learns
// whether the loop is responsive: ctx.Err() when the loop did not take
// the request in time, ErrNotRunning once Run has returned.
func (s *Supervisor) Readiness(ctx context.Context) (Readiness, error) {
	var r Readiness
	err := s.do(ctx, func(o *owner) { r = o.readiness() })
	return r, err
}

// readiness returns the snapshot Readiness returns.
func (o *owner) readiness() Readiness {
	r := Readiness{Stopping: o.shutting, Manifests: o.manifestsStatus()}
	if o.set == nil {
		return r
	}
	now := o.clock.Now()
	avail := map[string]int{}
	for _, w := range o.workers {
		spec, ok := o.specs[w.App]
		if ok && w.pid != 0 && w.Phase == reconcile.Running && w.Ready && !now.Before(w.ReadyAt.Add(spec.MinReadyTime)) {
			avail[w.App]++
		}
	}
	for _, name := range o.set.Names() {
		spec := o.specs[name]
		a := AppReadiness{Name: name, Instances: spec.Instances, Available: avail[name],
			Critical: o.critical(o.set.Apps[name]), Waiting: o.held[name]}
		if spec.Instances > 0 {
			a.Need = max(1, spec.Instances-spec.MaxUnavailable)
		}
		if c := o.crashLoopStatus(name, now); c != nil {
			a.CrashLoop = c.String()
		}
		if rs, ok := o.rollouts[name]; ok {
			a.Stalled = rs.Stalled
		}
		r.Apps = append(r.Apps, a)
	}
	return r
}
