package supervisor

import (
	"context"
	"sort"
	"time"

	"github.com/paddock-sh/paddock/reconcile"
)

// This file holds the snapshots of a running supervisor: its apps and
// workers.

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
	// Silent says the app's lines reach paddock's stdout and stderr
	// prefixed with "app/id | "; otherwise as the workers wrote them.
	Silent bool
	// Listen holds the addresses the app's workers listen on: its
	// `listen:` sockets as bound, then the sockets opened for it on
	// demand (a cluster worker's listen() of an address `listen:` does
	// not name), then the UDP sockets bound for its workers' dgram
	// sockets. A UDP socket's address begins with "udp:".
	Listen []string
	// Rollout is the state of a rolling update in progress, else nil.
	Rollout *reconcile.RolloutStatus
	// Critical says paddock gives up when the app fails (`critical:
	// true`, or --exit-on-failed); CrashLoop describes its crash loop,
	// nil when it is not crash-looping.
	Critical  bool
	CrashLoop *CrashLoopStatus
	// LastExit is the last exit of one of the app's workers that paddock
	// did not ask for (a crash, an exit on its own, a start failure), with
	// the worker's last output lines; nil when there was none.
	LastExit *ExitInfo
	// Usage sums the resource use of the app's live workers that were
	// read (stopping ones aside); nil when none was.
	Usage *Usage
	// Waiting, when not empty, says which dependencies the app's workers
	// wait for before they start: "waiting for db: 0/1 available".
	Waiting string
	// Stall, while Rollout is stalled, is what is known of the failing
	// worker: its last exit and output lines.
	Stall *StallInfo
	// RolledBack, when not nil, says the app runs an earlier generation
	// than its manifest's (rollout.onStall: rollback): Generation is the
	// one that runs.
	RolledBack *RollbackInfo
}

// Status is a snapshot of the whole supervisor.
type Status struct {
	Apps    []AppStatus // in name order
	Workers []WorkerInfo
	// LostOutput counts the lines of workers that could not be
	// written to paddock's "stdout" and "stderr" since it started.
	LostOutput map[string]int64
	// HealthChecks counts the health probes of each app by result since
	// paddock started (apps removed since included).
	HealthChecks map[string]HealthCounts
	// Relay counts the relayed messages (ipc.relay) of each app that
	// relayed one since paddock started (apps removed since included).
	Relay map[string]RelayCounts
	// LogDropped counts, by app, the lines that could not be written to
	// its log file (`logs:`) since paddock started: dropped because the
	// file's queue was full or a write failed.
	LogDropped map[string]int64
	// Manifests is the revision of the manifests that runs, and the one
	// last rejected (see Options.Revision).
	Manifests ManifestsStatus
}

// Status returns the apps and workers as they are now, with the resource
// use of each live worker and app as last read (see Usage). A worker never
// read before is read now, in the caller's goroutine (one pass over /proc
// for them all); asking keeps the readings going for a minute, so that the
// next Status finds the CPU use over an interval.
func (s *Supervisor) Status(ctx context.Context) (Status, error) {
	var st Status
	if err := s.do(ctx, func(o *owner) { st = o.status() }); err != nil {
		return st, err
	}
	s.addUsage(&st)
	return st, nil
}

// status returns the snapshot Status returns.
func (o *owner) status() Status {
	st := Status{Workers: o.workerList(), LostOutput: map[string]int64{}, HealthChecks: o.healthCheckCounts(), Relay: o.relayCounts()}
	for _, out := range []*outputStream{o.sup.stdout, o.sup.stderr} {
		st.LostOutput[out.name] = out.lost.Load()
	}
	st.LogDropped = o.sup.logs.Dropped()
	st.Manifests = o.manifestsStatus()
	if o.set == nil {
		return st
	}
	o.refreshExits()
	byApp := map[string]*AppStatus{}
	for _, name := range o.set.Names() {
		a := o.set.Apps[name]
		spec := o.specs[name]
		as := AppStatus{Name: name, Instances: spec.Instances, ManifestInstances: a.Instances,
			Generation: spec.Generation, SchedulingPolicy: a.SchedulingPolicy, Silent: a.Silent}
		_, as.Override = o.scale[name]
		for _, sock := range o.appSockets[name] {
			as.Listen = append(as.Listen, sock.String())
		}
		var onDemand []string
		for _, sock := range o.onDemand[name] {
			onDemand = append(onDemand, sock.Addr.String())
		}
		sort.Strings(onDemand)
		as.Listen = append(as.Listen, onDemand...)
		as.Listen = append(as.Listen, o.udpListening(name)...)
		if r, ok := o.rollouts[name]; ok {
			as.Rollout = &r
			as.Stall = o.stallInfo(name, r)
		}
		as.Critical = o.critical(a)
		as.CrashLoop = o.crashLoopStatus(name, o.clock.Now())
		as.LastExit = o.lastExit[name].clone()
		as.Waiting = o.held[name]
		as.RolledBack = o.rollbackInfo(name)
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

// WorkerInfo describes one worker, for status listings and tests.
type WorkerInfo struct {
	ID         int
	App        string
	PID        int // 0 when the worker has exited
	Phase      reconcile.Phase
	Ready      bool
	Generation string
	Restarts   int
	StartedAt  time.Time
	// RestartAt is when a worker in backoff is replaced.
	RestartAt time.Time
	// Status is the last STATUS= the worker sent with sd_notify.
	Status string
	// Listen holds the addresses the live worker serves: sockets it was
	// given and rr/sticky sockets it takes connections from.
	Listen []string
	// HandedOut counts the connections paddock handed to the worker
	// (rr, sticky).
	HandedOut int64
	// Usage is the resource use of the live worker's process group, as
	// last read (Status only; nil from Workers, and for a worker gone).
	Usage *Usage
	// HealthFailures counts the health probes it failed in a row (that
	// count: once it is ready); HealthAnswer is the answer of the last
	// probe the owner was told of (the first pass, each failure, a pass
	// after a failure).
	HealthFailures int
	HealthAnswer   string
}

// Workers lists the workers in ID order.
func (s *Supervisor) Workers(ctx context.Context) ([]WorkerInfo, error) {
	var out []WorkerInfo
	err := s.do(ctx, func(o *owner) { out = o.workerList() })
	return out, err
}

// workerList returns every worker, in ID order.
func (o *owner) workerList() []WorkerInfo {
	out := make([]WorkerInfo, 0, len(o.workers))
	for _, w := range o.workers {
		info := WorkerInfo{ID: w.ID, App: w.App, PID: w.pid, Phase: w.Phase, Ready: w.Ready,
			Generation: w.Generation, Restarts: w.Restarts, StartedAt: w.startedAt, Status: w.status,
			HealthFailures: w.health.fails, HealthAnswer: w.health.last}
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
