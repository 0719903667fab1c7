package supervisor

import (
	"context"
	"fmt"
	"time"

	"github.com/paddock-sh/paddock/reconcile"
)

// This file holds the reports of rolling updates.

// reportRollouts emits rollout-progress when an app's rolling update
// moved, rollout-stalled when it stalls, and rollout-progress "complete"
// when it is over: its new workers are all ready and no old one serves, or
// the app has no rolling update any more (it was removed, or its old
// workers went while nothing was rolling out).
//
// It records each app's stall in its spec (reconcile.AppSpec.Stall), so
// that the next plans keep it until the update progresses. A new stall
// about a worker that exited is reported once that worker's last lines are
// read, or stallLinesWait after its exit at the latest.
func (o *owner) reportRollouts(now map[string]reconcile.RolloutStatus, at time.Time) {
	for app, st := range now {
		if spec, ok := o.specs[app]; ok && spec.Stall != reconcile.StallOf(st) {
			spec.Stall = reconcile.StallOf(st)
			o.specs[app] = spec
		}
		prev, was := o.rollouts[app]
		if st.Stalled != "" && st.Stalled != prev.Stalled {
			if until, wait := o.stallLinesPending(app, at); wait {
				if o.wakeAt.IsZero() || until.Before(o.wakeAt) {
					o.wakeAt = until
				}
				continue
			}
		}
		if !was || prev != st {
			o.rollouts[app] = st
			gen := o.specs[app].Generation
			o.emit(Event{Type: EventRolloutProgress, App: app, Generation: gen, Detail: st.String()})
			if st.Stalled != "" && st.Stalled != prev.Stalled {
				o.reportStall(app, st)
			}
		}
		if st.Complete() {
			o.finishRollout(app)
		}
	}
	for app := range o.rollouts {
		if _, ok := now[app]; !ok {
			o.finishRollout(app)
		}
	}
}

// finishRollout ends app's rolling update: "complete".
func (o *owner) finishRollout(app string) {
	delete(o.rollouts, app)
	delete(o.rollingOut, app)
	if spec, ok := o.specs[app]; ok && (spec.RollingOut || spec.Stall != (reconcile.Stall{})) {
		spec.RollingOut, spec.Stall = false, reconcile.Stall{}
		o.specs[app] = spec
	}
	o.emit(Event{Type: EventRolloutProgress, App: app, Generation: o.specs[app].Generation, Detail: "complete"})
}

// Rollouts returns the status of every app in a rolling update.
func (s *Supervisor) Rollouts(ctx context.Context) (map[string]reconcile.RolloutStatus, error) {
	out := map[string]reconcile.RolloutStatus{}
	err := s.do(ctx, func(o *owner) {
		for k, v := range o.rollouts {
			out[k] = v
		}
	})
	return out, err
}

// StallInfo is what paddock knows of a stalled rolling update beyond its
// reason (reconcile.RolloutStatus.Stalled).
type StallInfo struct {
	// Exit is the last exit of a worker of the generation rolling out: the
	// worker the stall is about, or a later replacement of it. Nil when
	// none of them exited (a worker not ready within its readyTimeout).
	Exit *ExitInfo
	// Lines are the last output lines of the worker the stall is about
	// while it still runs (not ready within its readyTimeout); nil once it
	// exited (Exit has them).
	Lines []string
}

// stallInfo returns what is known of app's stalled rollout st; nil when
// st is not stalled.
func (o *owner) stallInfo(app string, st reconcile.RolloutStatus) *StallInfo {
	if st.Stalled == "" {
		return nil
	}
	info := &StallInfo{}
	if ex := o.lastExit[app]; ex != nil && ex.Generation == o.specs[app].Generation {
		info.Exit = ex.clone()
	}
	if w := o.workers[st.StalledWorker]; w != nil && w.pid != 0 && w.tail != nil {
		info.Lines, _ = w.tail.snapshot()
	}
	return info
}

// reportStall emits rollout-stalled for app's rolling update st: why, what
// happens now, and the failing worker's last exit; then, with
// rollout.onStall: rollback, it rolls the app back.
func (o *owner) reportStall(app string, st reconcile.RolloutStatus) {
	info := o.stallInfo(app, st)
	detail := st.Stalled
	if info.Exit != nil {
		detail += "; last exit: " + info.Exit.describe(app)
		if n := len(info.Exit.Lines); n > 0 {
			detail += fmt.Sprintf("; its last line: %q", info.Exit.Lines[n-1])
		}
	}
	to, action := o.stallAction(app)
	switch {
	case to != nil:
	case st.Old == 0:
		detail += "; no old worker is left to serve"
	default:
		detail += "; the old workers keep serving until a later change"
	}
	if action != "" {
		detail += "; " + action
	}
	o.emit(Event{Type: EventRolloutStalled, App: app, Generation: o.specs[app].Generation, Detail: detail,
		Stall: info})
	if to != nil {
		o.rollBack(app, *to, st.Stalled)
	}
}
