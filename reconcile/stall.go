package reconcile

import "time"

// Stall is a stall of a rolling update, as recorded from a plan's
// RolloutStatus: the supervisor passes it back in AppSpec.Stall so that Plan
// keeps it (a stall is sticky) until the update progresses.
type Stall struct {
	// Reason is RolloutStatus.Stalled; empty: no stall.
	Reason string
	// Worker is RolloutStatus.StalledWorker.
	Worker int
	// NewReady is how many new workers were available when it stalled:
	// the update progresses, and the stall ends, once more are.
	NewReady int
}

// StallOf returns the stall st reports, to record in AppSpec.Stall; the
// zero Stall when st is not stalled.
func StallOf(st RolloutStatus) Stall {
	if st.Stalled == "" {
		return Stall{}
	}
	return Stall{Reason: st.Stalled, Worker: st.StalledWorker, NewReady: st.NewReady}
}

// Settled reports whether spec's app is settled at now: no worker of
// another generation runs (none is being replaced), and Instances workers of
// spec's generation run and are available, ready for at least MinReadyTime.
// An app of 0 instances with no worker left is settled. The supervisor
// takes a settled generation as one that proved itself, to roll back to
// (see manifest.Rollout.OnStall). Workers being stopped do not count.
func Settled(spec AppSpec, observed []Worker, now time.Time) bool {
	available := 0
	for _, w := range observed {
		if w.App != spec.Name || w.Phase == Stopping {
			continue
		}
		if w.Generation != spec.Generation {
			if w.Phase == Running {
				return false
			}
			continue
		}
		if w.Phase == Running && w.Ready && !now.Before(w.availableAt(spec.MinReadyTime)) {
			available++
		}
	}
	return available >= spec.Instances
}
