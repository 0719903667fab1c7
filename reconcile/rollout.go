package reconcile

import (
	"fmt"
	"sort"
	"time"
)

// This file holds rolling updates and the replacement of marked workers:
// new workers first, old ones retired against available new ones.

// RolloutStatus describes a rolling update after the plan's actions.
type RolloutStatus struct {
	// Instances is the target worker count.
	Instances int
	// New counts the workers of the new generation (running, about to be
	// restarted, or started by this plan), NewReady those of them
	// available (ready for at least MinReadyTime); Old the workers of
	// older generations still serving after this plan.
	New, NewReady, Old int
	// Stalled, when not empty, says why the update cannot progress: a new
	// worker missed its readyTimeout, or exited before it was ready, or
	// exited before the update completed. The old workers keep serving.
	// Once stalled, an update stays so until it progresses (see
	// AppSpec.Stall).
	Stalled string
	// StalledWorker is the worker Stalled is about (0 when not stalled).
	StalledWorker int
}

// Complete reports whether the update is over: every new worker wanted is
// ready and no old worker serves any more.
func (s RolloutStatus) Complete() bool {
	return s.Stalled == "" && s.Old == 0 && s.NewReady >= s.Instances
}

// String is a one-line summary: "2/3 new ready, 1 starting, 1 old".
func (s RolloutStatus) String() string {
	out := fmt.Sprintf("%d/%d new ready, %d starting, %d old", s.NewReady, s.Instances, s.New-s.NewReady, s.Old)
	if s.Stalled != "" {
		out += ", stalled: " + s.Stalled
	}
	return out
}

// splitReplaced separates the running workers marked Replace from the
// others, keeping the order.
func splitReplaced(current []Worker) (keep, marked []Worker) {
	for _, w := range current {
		if w.Phase == Running && w.Replace != "" {
			marked = append(marked, w)
		} else {
			keep = append(keep, w)
		}
	}
	return keep, marked
}

// replace moves an app whose old workers remain (of an older generation,
// or marked Replace) toward new ones, within its surge and availability
// bounds: new workers start while the total stays at most
// Instances+MaxSurge; old workers that are not ready go at once (they serve
// nothing); ready old workers go, the most recently ready first (a worker
// of an intermediate release that stalled goes before those that proved
// themselves), while at least Instances-MaxUnavailable available workers
// remain, and the last ready old worker stays until a
// new worker is available (unless maxSurge is 0: then no new worker can
// start before an old one goes, and the operator chose that). With hold (a
// dependency is not available) the update does not move: no new worker
// starts and no ready old worker goes. It returns the state of the update,
// and whether hold stopped it from moving.
func replace(r *Result, spec AppSpec, current, old []Worker, now time.Time, hold bool) (RolloutStatus, bool) {
	status := RolloutStatus{Instances: spec.Instances, New: len(current)}
	stall := func(w Worker, reason string) {
		if status.Stalled == "" {
			status.Stalled, status.StalledWorker = reason, w.ID
		}
	}
	for _, w := range current {
		switch {
		case w.Phase == Running && w.Ready:
			if at := w.availableAt(spec.MinReadyTime); now.Before(at) {
				r.requeue(at)
			} else {
				status.NewReady++
			}
		case w.Phase == Running:
			if now.Before(w.ReadyDeadline) {
				r.requeue(w.ReadyDeadline)
			} else {
				stall(w, w.Name()+" was not ready within its readyTimeout")
			}
		case w.FailedUnready && w.ReadyAt.IsZero():
			stall(w, w.Name()+" exited before it was ready")
		case w.FailedUnready:
			stall(w, fmt.Sprintf("%s exited within minReadyTime (%s) of becoming ready", w.Name(), spec.MinReadyTime))
		default:
			// Backoff or Done: it was ready, then exited on its own.
			stall(w, w.Name()+" exited before the rolling update completed")
		}
	}
	if s := spec.Stall; s.Reason != "" && status.NewReady <= s.NewReady {
		// Stalled before, and no progress since: a crash-looping
		// worker's replacement, running within its readyTimeout, does
		// not make the update look healthy again.
		status.Stalled, status.StalledWorker = s.Reason, s.Worker
	}

	var readyOld []Worker
	for _, w := range old {
		if w.Ready {
			readyOld = append(readyOld, w)
		} else {
			retire(r, w)
		}
	}
	// The most recently ready go first, as Kubernetes deletes first the
	// pods ready for the least time: a worker of a release that stalled,
	// ready for a moment, goes before the workers that proved themselves
	// (whatever the new spec's minReadyTime says of them).
	sort.SliceStable(readyOld, func(i, j int) bool { return readyOld[i].ReadyAt.After(readyOld[j].ReadyAt) })
	canRetire := status.NewReady + len(readyOld) - (spec.Instances - spec.MaxUnavailable)
	if spec.Instances > 0 && status.NewReady == 0 && spec.MaxSurge > 0 {
		canRetire = min(canRetire, len(readyOld)-1)
	}
	canRetire = max(0, min(canRetire, len(readyOld)))
	// Workers being stopped do not count toward the surge.
	room := spec.Instances + spec.MaxSurge - (len(readyOld) - canRetire) - len(current)
	starts := min(room, spec.Instances-len(current))
	held := hold && (canRetire > 0 || starts > 0)
	if hold {
		canRetire, starts = 0, 0
	}
	for _, w := range readyOld[:canRetire] {
		retire(r, w)
	}
	for i := 0; i < starts; i++ {
		r.Actions = append(r.Actions, Start{App: spec.Name, Generation: spec.Generation})
		status.New++
	}
	status.Old = len(readyOld) - canRetire
	return status, held
}
