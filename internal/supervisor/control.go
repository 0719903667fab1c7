package supervisor

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/paddock-sh/paddock/internal/plural"
	"github.com/paddock-sh/paddock/manifest"
	"github.com/paddock-sh/paddock/reconcile"
)

// This file holds what the control API asks of a running supervisor: a
// status snapshot, runtime scaling, rolling restarts, signals and diffs.
// Every method goes through the goroutine that owns the state.

// ErrUnknownApp is returned for an app the running manifests do not declare.
var ErrUnknownApp = errors.New("no such app in the running manifests")

// scaleOverride is a runtime `instances` set by Scale. It lasts until the
// manifest's own `instances` for the app changes: manifestInstances is the
// value it overrides.
type scaleOverride struct {
	instances         int
	manifestInstances int
}

// AppStatus describes one app of the running set.
type AppStatus struct {
	Name string
	// Instances is the desired worker count: ManifestInstances, or the
	// runtime override when Override is true.
	Instances         int
	ManifestInstances int
	Override          bool
	// Running counts live processes (stopping ones aside), Ready those of
	// them ready to serve.
	Running, Ready   int
	Generation       string
	SchedulingPolicy string
	// Silent says the app's output goes through paddock (and is kept for
	// paddock logs); otherwise its workers write to paddock's own stdout
	// and stderr themselves.
	Silent bool
	// Listen holds the addresses the app's workers listen on: its
	// `listen:` sockets as bound, then the sockets opened for it on
	// demand (a cluster worker's listen() of an address `listen:` does
	// not name).
	Listen []string
	// Rollout is the state of a rolling update in progress, else nil.
	Rollout *reconcile.RolloutStatus
}

// Status is a snapshot of the whole supervisor.
type Status struct {
	Apps    []AppStatus // in name order
	Workers []WorkerInfo
	// LostOutput counts the lines of silent workers that could not be
	// written to paddock's "stdout" and "stderr" since it started.
	LostOutput map[string]int64
}

// Status returns the apps and workers as they are now.
func (s *Supervisor) Status(ctx context.Context) (Status, error) {
	var st Status
	err := s.do(ctx, func(o *owner) { st = o.status() })
	return st, err
}

func (o *owner) status() Status {
	st := Status{Workers: o.workerList(), LostOutput: map[string]int64{}}
	for _, out := range []*outputStream{o.sup.stdout, o.sup.stderr} {
		st.LostOutput[out.name] = out.lost.Load()
	}
	if o.set == nil {
		return st
	}
	byApp := map[string]*AppStatus{}
	for _, name := range o.set.Names() {
		a := o.set.Apps[name]
		spec := o.specs[name]
		as := AppStatus{Name: name, Instances: spec.Instances, ManifestInstances: a.Instances,
			Generation: spec.Generation, SchedulingPolicy: a.SchedulingPolicy, Silent: a.Silent}
		_, as.Override = o.scale[name]
		for _, sock := range o.appSockets[name] {
			as.Listen = append(as.Listen, sock.Addr.String())
		}
		var onDemand []string
		for _, sock := range o.onDemand[name] {
			onDemand = append(onDemand, sock.Addr.String())
		}
		sort.Strings(onDemand)
		as.Listen = append(as.Listen, onDemand...)
		if r, ok := o.rollouts[name]; ok {
			as.Rollout = &r
		}
		st.Apps = append(st.Apps, as)
	}
	for i := range st.Apps {
		byApp[st.Apps[i].Name] = &st.Apps[i]
	}
	for _, w := range st.Workers {
		as := byApp[w.App]
		if as == nil || w.PID == 0 || w.Phase == reconcile.Stopping {
			continue
		}
		as.Running++
		if w.Ready {
			as.Ready++
		}
	}
	return st
}

func (o *owner) workerList() []WorkerInfo {
	out := make([]WorkerInfo, 0, len(o.workers))
	for _, w := range o.workers {
		info := WorkerInfo{ID: w.ID, App: w.App, PID: w.pid, Phase: w.Phase, Ready: w.Ready,
			Generation: w.Generation, Restarts: w.Restarts, StartedAt: w.startedAt, Status: w.status}
		if w.Phase == reconcile.Backoff {
			info.RestartAt = w.RestartAt
		}
		if w.pid != 0 {
			seen := map[string]bool{}
			for _, sock := range w.sockets {
				if a := sock.Addr.String(); !seen[a] {
					seen[a] = true
					info.Listen = append(info.Listen, a)
				}
			}
			for d := range w.subs {
				if a := d.sock.Addr.String(); !seen[a] {
					seen[a] = true
					info.Listen = append(info.Listen, a)
				}
			}
			sort.Strings(info.Listen)
			if w.cl != nil {
				info.HandedOut = w.cl.handedOut.Load()
			}
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// spec returns the reconcile spec of app a: its manifest, with the
// runtime scale override and the restart count applied.
func (o *owner) spec(a *manifest.App) reconcile.AppSpec {
	spec := reconcile.AppSpec{
		Name:           a.Name,
		Generation:     a.Generation(),
		Instances:      a.Instances,
		KillSignal:     a.KillSignal,
		KillTimeout:    a.KillTimeout,
		MaxSurge:       a.Rollout.MaxSurge,
		MaxUnavailable: a.Rollout.MaxUnavailable,
		MinReadyTime:   a.MinReadyTime,
	}
	if ov, ok := o.scale[a.Name]; ok {
		spec.Instances = ov.instances
	}
	if n := o.restartCount[a.Name]; n > 0 {
		// A restart is a new generation of the same spec: the rolling
		// update replaces every worker, with the app's rollout rules.
		spec.Generation += "-r" + strconv.Itoa(n)
	}
	return spec
}

// setSpec makes a's spec the desired one. When its generation
// differs from the spec it replaces and the app has workers, a rolling
// update to it begins (see reconcile.AppSpec.RollingOut); it lasts until
// reportRollouts sees it complete.
func (o *owner) setSpec(a *manifest.App) {
	spec := o.spec(a)
	if prev, ok := o.specs[a.Name]; ok && prev.Generation != spec.Generation && o.hasWorkers(a.Name) {
		o.rollingOut[a.Name] = spec.Generation
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
// app's rollout rules, as a manifest change would.
func (s *Supervisor) Restart(ctx context.Context, app string) (RestartInfo, error) {
	var info RestartInfo
	var restartErr error
	err := s.do(ctx, func(o *owner) {
		a := o.app(app)
		if a == nil {
			restartErr = fmt.Errorf("%s: %w", app, ErrUnknownApp)
			return
		}
		o.restartCount[app]++
		o.setSpec(a)
		info.Generation = o.specs[app].Generation
		for _, w := range o.workers {
			if w.App == app && w.Phase != reconcile.Stopping {
				info.Workers++
			}
		}
		o.emit(Event{Type: EventRestartRequested, App: app, Generation: info.Generation,
			Detail: "rolling restart of " + plural.Count(info.Workers, "worker")})
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

func (o *owner) app(name string) *manifest.App {
	if o.set == nil {
		return nil
	}
	return o.set.Apps[name]
}

func (o *owner) hasWorkers(app string) bool {
	for _, w := range o.workers {
		if w.App == app {
			return true
		}
	}
	return false
}

// converged reports whether no worker is still on its way to ready:
// each is ready, or failed (backoff, done), or missed its readyTimeout.
// Run asks it once a plan has nothing left to do; the first time it holds,
// paddock tells systemd it is ready.
func (o *owner) converged(now time.Time) bool {
	for _, w := range o.workers {
		if w.Phase == reconcile.Running && !w.Ready && now.Before(w.ReadyDeadline) {
			return false // still starting
		}
	}
	return true
}
