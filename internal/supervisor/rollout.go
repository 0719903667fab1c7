package supervisor

import (
	"context"

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
// that the next plans keep it until the update progresses.
func (o *owner) reportRollouts(now map[string]reconcile.RolloutStatus) {
	for app, st := range now {
		if spec, ok := o.specs[app]; ok && spec.Stall != reconcile.StallOf(st) {
			spec.Stall = reconcile.StallOf(st)
			o.specs[app] = spec
		}
		if prev, was := o.rollouts[app]; !was || prev != st {
			o.rollouts[app] = st
			gen := o.specs[app].Generation
			o.emit(Event{Type: EventRolloutProgress, App: app, Generation: gen, Detail: st.String()})
			if st.Stalled != "" && st.Stalled != prev.Stalled {
				keep := "; the old workers keep serving until a later change"
				if st.Old == 0 {
					keep = "; no old worker is left to serve"
				}
				o.emit(Event{Type: EventRolloutStalled, App: app, Generation: gen, Detail: st.Stalled + keep})
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
