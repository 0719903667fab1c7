package supervisor

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"syscall"

	"github.com/paddock-sh/paddock/internal/plural"
	"github.com/paddock-sh/paddock/manifest"
	"github.com/paddock-sh/paddock/reconcile"
)

// This file holds what the control API asks of a running supervisor
// besides its status: runtime scaling, rolling restarts, signals. Every
// method goes through the goroutine that owns the state.

// ErrUnknownApp is returned for an app the running manifests do not declare.
var ErrUnknownApp = errors.New("no such app in the running manifests")

// ScaleInfo is what Scale did.
type ScaleInfo struct {
	// From is the desired count before, Instances after;
	// ManifestInstances what the manifest says; Override whether
	// Instances overrides it.
	From, Instances, ManifestInstances int
	Override                           bool
}

// Scale sets app's worker count to n until the manifest's own `instances`
// for the app changes (or the app is removed).
func (s *Supervisor) Scale(ctx context.Context, app string, n int) (ScaleInfo, error) {
	if n < 0 || n > manifest.MaxInstances {
		return ScaleInfo{}, fmt.Errorf("instances must be from 0 to %d, got %d", manifest.MaxInstances, n)
	}
	info := ScaleInfo{Instances: n}
	var scaleErr error
	err := s.do(ctx, func(o *owner) {
		a := o.app(app)
		if a == nil {
			scaleErr = fmt.Errorf("%s: %w", app, ErrUnknownApp)
			return
		}
		if scaleErr = healthScaleError(a, n); scaleErr != nil {
			return
		}
		info.From, info.ManifestInstances = o.specs[app].Instances, a.Instances
		info.Override = n != a.Instances
		if info.Override {
			o.scale[app] = scaleOverride{instances: n, manifestInstances: a.Instances}
		} else {
			delete(o.scale, app) // back to what the manifest says
		}
		o.setSpec(a)
		detail := fmt.Sprintf("%d→%d", info.From, n)
		if info.Override {
			detail += fmt.Sprintf(" (runtime override of instances: %d, until the manifest's instances change)", a.Instances)
		}
		o.emit(Event{Type: EventScale, App: app, Generation: o.specs[app].Generation, Detail: detail})
	})
	if err != nil {
		return ScaleInfo{}, err
	}
	return info, scaleErr
}

// RestartInfo is what Restart started.
type RestartInfo struct {
	// Generation is the generation the new workers get.
	Generation string
	// Workers counts the live workers the rolling update replaces.
	Workers int
}

// Restart replaces every worker of app through a rolling update with the
// app's rollout rules, as a manifest change would. An app rolled back
// after a stalled rolling update (rollout.onStall: rollback) retries its
// manifest's release.
func (s *Supervisor) Restart(ctx context.Context, app string) (RestartInfo, error) {
	var info RestartInfo
	var restartErr error
	err := s.do(ctx, func(o *owner) {
		a := o.app(app)
		if a == nil {
			restartErr = fmt.Errorf("%s: %w", app, ErrUnknownApp)
			return
		}
		o.noteSettled(o.clock.Now())
		rb := o.rolledBack[app]
		delete(o.rolledBack, app)
		o.restartCount[app]++
		o.setSpec(a)
		info.Generation = o.specs[app].Generation
		for _, w := range o.workers {
			if w.App == app && w.Phase != reconcile.Stopping {
				info.Workers++
			}
		}
		detail := "rolling restart of " + plural.Count(info.Workers, "worker")
		if rb != nil {
			detail += fmt.Sprintf("; it was rolled back to generation %s: the manifest's release is tried again", rb.to.generation)
		}
		o.emit(Event{Type: EventRestartRequested, App: app, Generation: info.Generation, Detail: detail})
	})
	if err != nil {
		return info, err
	}
	return info, restartErr
}

// Signal sends sig to the processes of app's live workers: worker id only
// when id is not 0. It returns the IDs of the workers signalled. The
// signal goes to the worker process alone, as Node's worker.kill(signal)
// and supervisorctl's signal do; the worker's restart policy applies if it
// dies of it.
func (s *Supervisor) Signal(ctx context.Context, app string, id int, sig syscall.Signal) ([]int, error) {
	var ids []int
	var sigErr error
	err := s.do(ctx, func(o *owner) {
		if o.app(app) == nil && !o.hasWorkers(app) {
			sigErr = fmt.Errorf("%s: %w", app, ErrUnknownApp)
			return
		}
		for _, w := range o.workers {
			if w.App != app || (id != 0 && w.ID != id) || w.pid == 0 {
				continue
			}
			if err := w.proc.Signal(sig); err != nil {
				sigErr = errors.Join(sigErr, fmt.Errorf("%s/%d: %w", app, w.ID, err))
				continue
			}
			ids = append(ids, w.ID)
		}
		sort.Ints(ids)
		if len(ids) == 0 && sigErr == nil {
			if id != 0 {
				sigErr = fmt.Errorf("%s/%d: no such live worker", app, id)
			} else {
				sigErr = fmt.Errorf("%s: no live worker", app)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	return ids, sigErr
}

// app returns the app of the running set named name; nil if none.
func (o *owner) app(name string) *manifest.App {
	if o.set == nil {
		return nil
	}
	return o.set.Apps[name]
}

// hasWorkers reports whether app has workers, stopping ones included.
func (o *owner) hasWorkers(app string) bool {
	for _, w := range o.workers {
		if w.App == app {
			return true
		}
	}
	return false
}
