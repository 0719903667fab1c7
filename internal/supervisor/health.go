package supervisor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"

	"github.com/paddock-sh/paddock/internal/plural"
	"github.com/paddock-sh/paddock/manifest"
	"github.com/paddock-sh/paddock/procs"
	"github.com/paddock-sh/paddock/reconcile"
)

// This file holds the owner's side of health checks: which worker is
// probed where, what a probe's result does (readiness at the first pass
// of a probe readiness; replacement, new first, after failureThreshold
// failures in a row), and the counts behind paddock_health_checks_total.

// workerHealth is the health state of one worker, in its record.
type workerHealth struct {
	// target is the worker's health check in the prober; nil without
	// one, or once it is no longer probed.
	target *probeTarget
	// fails counts the probes failed in a row that count; last is the
	// last probe's answer.
	fails int
	last  string
}

// openHealthSocket binds w's own loopback socket when its app probes
// `port: worker`; the worker gets it at start.
func (o *owner) openHealthSocket(w *worker) error {
	h := w.app.HealthCheck
	if h.Port().From != manifest.PortWorker {
		return nil
	}
	f, addr, err := listenHealth(w.Name())
	if err != nil {
		return err
	}
	w.healthFile, w.healthAddr = f, addr
	return nil
}

// watchHealth starts probing w, which just started, when its app has a
// health check.
func (o *owner) watchHealth(w *worker) {
	h := w.app.HealthCheck
	if h.Kind() == "" {
		return
	}
	counts := o.healthCounts[w.App]
	if counts == nil {
		counts = &healthCounters{}
		o.healthCounts[w.App] = counts
	}
	t := &probeTarget{
		id: w.ID, name: w.Name(), kind: h.Kind(),
		interval: h.Interval, timeout: h.Timeout, startedAt: w.startedAt, startPeriod: h.StartPeriod,
		fast: w.app.ProbeReadiness(), counts: counts,
	}
	switch t.kind {
	case manifest.ProbeExec:
		t.exec = o.execProbeSpec(w)
	case manifest.ProbeHTTP:
		t.path = h.HTTP.Path
	}
	if t.kind != manifest.ProbeExec {
		t.addr, t.port = o.probeAddress(w)
	}
	w.health.target = t
	o.healthRoute(w)
	o.prober.add(t)
}

// probeAddress returns where an http or tcp probe of w connects: w's own
// health socket (port: worker), or a port the worker binds itself on
// 127.0.0.1; or, when paddock dispatches the probed port's connections
// (rr, sticky with an IPC channel), no address and the port, whose
// connections it hands to w (see healthRoute).
func (o *owner) probeAddress(w *worker) (string, int) {
	a := w.app
	port := a.HealthCheck.Port()
	if port.From == manifest.PortWorker {
		return w.healthAddr, 0
	}
	if ln, ok := a.HealthListen(); ok {
		// The port as bound: `listen: 0` gets one from the kernel.
		for i, l := range a.Listen {
			if l.Key() == ln.Key() && i < len(o.appSockets[a.Name]) {
				if ta, ok := o.appSockets[a.Name][i].Addr.(*net.TCPAddr); ok {
					return "", ta.Port
				}
			}
		}
		return "", ln.Port()
	}
	if a.Dispatched() {
		return "", port.Number // opened on demand when the worker listens
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port.Number)), 0
}

// execProbeSpec returns how w's exec probe is run: as w itself is (its
// environment, directory and identity), with PADDOCK_WORKER_PID, and its
// health socket's address when it has one.
func (o *owner) execProbeSpec(w *worker) procs.Spec {
	a := w.app
	env := workerEnv(o.opts.Environ, a, w.ID)
	env = append(env, WorkerPIDEnv+"="+strconv.Itoa(w.pid))
	if w.healthAddr != "" {
		env = append(env, HealthAddrEnv+"="+w.healthAddr)
	}
	argv := a.Resolved.HealthExec
	if len(argv) == 0 {
		argv = a.HealthCheck.Exec // not resolved (no CheckHost): as written
	}
	spec := procs.Spec{Path: argv[0], Argv: argv, Dir: a.Resolved.Dir, Env: env}
	if c := a.Resolved.Credential; c != nil {
		spec.Credential = credential(c)
	}
	return spec
}

// healthRoute gives w's dispatched probe the subscription its connections
// go through: w's listen() of the probed port, if it made one. Call it
// whenever w's subscriptions change.
func (o *owner) healthRoute(w *worker) {
	t := w.health.target
	if t == nil || t.addr != "" || t.kind == manifest.ProbeExec {
		return
	}
	var route *subscriber
	if w.cl != nil && w.Phase == reconcile.Running {
		for d, key := range w.subs {
			if ta, ok := d.sock.Addr.(*net.TCPAddr); ok && ta.Port == t.port {
				s := newSubscriber(w.cl, key)
				route = &s
				break
			}
		}
	}
	t.route.Store(route)
}

// unwatchHealth stops probing w at once: it is stopping, or gone.
func (o *owner) unwatchHealth(w *worker) {
	if w.health.target == nil {
		return
	}
	o.prober.remove(w.ID)
	w.health.target = nil
}

// handleHealth takes the probes' results: a pass makes a worker whose
// readiness waits for it ready, and starts its count of failures again;
// a failure counts once the worker is ready (before, it is starting, and
// readyTimeout bounds that), and failureThreshold of them in a row mark
// the worker for replacement, new first (reconcile.Worker.Replace), with
// a health-failed event that gives the last answer. A marked worker is no
// longer probed.
func (o *owner) handleHealth() {
	for _, r := range o.prober.take() {
		w := o.workers[r.target.id]
		if w == nil || w.health.target != r.target || w.Phase != reconcile.Running || w.pid == 0 {
			continue
		}
		w.health.last = r.answer
		h := w.app.HealthCheck
		if r.result == HealthPass {
			w.health.fails = 0
			if w.app.ProbeReadiness() && !w.Ready {
				o.markReady(w)
			}
			continue
		}
		if !w.Ready {
			continue // still starting: readyTimeout bounds that
		}
		w.health.fails++
		o.opts.Logger.Debug("health check failed", "app", w.App, "worker", w.ID, "pid", w.pid,
			"result", r.result, "answer", r.answer, "in a row", w.health.fails)
		if w.health.fails < h.FailureThreshold || w.Replace != "" {
			continue
		}
		in := plural.Count(w.health.fails, "probe") + " in a row"
		w.Replace = "health check failed (" + in + "): " + r.answer
		o.emit(Event{Type: EventHealthFailed, App: w.App, Worker: w.ID, PID: w.pid, Generation: w.Generation,
			Attempt: w.health.fails, Detail: fmt.Sprintf("%s failed %s; last answer: %s", h.Kind(), in, r.answer)})
		o.unwatchHealth(w)
	}
}

// ErrProbeNeedsOneWorker is returned by Scale for an app whose health check
// probes a port its worker binds itself: with more than one worker, the
// probe would reach whichever holds the port (manifest validation refuses
// such an app with more than one instance for the same reason).
var ErrProbeNeedsOneWorker = errors.New("its healthCheck probes a port the worker binds itself, which only one worker can hold: use port: worker or an exec probe")

// healthScaleError says why app a cannot run n workers: its health check
// probes a fixed port that each worker binds itself.
func healthScaleError(a *manifest.App, n int) error {
	h := a.HealthCheck
	if n <= 1 || (h.Kind() != manifest.ProbeHTTP && h.Kind() != manifest.ProbeTCP) {
		return nil
	}
	if _, shared := a.HealthListen(); shared || h.Port().From != "" || a.Dispatched() {
		return nil
	}
	return fmt.Errorf("%s cannot run %d workers: %w", a.Name, n, ErrProbeNeedsOneWorker)
}

// credential returns c as the identity a process starts with.
func credential(c *manifest.Credential) *syscall.Credential {
	return &syscall.Credential{Uid: c.Uid, Gid: c.Gid, Groups: c.Groups}
}

// healthCheckCounts returns the probes of each app by result, since
// paddock started.
func (o *owner) healthCheckCounts() map[string]HealthCounts {
	out := make(map[string]HealthCounts, len(o.healthCounts))
	for app, c := range o.healthCounts {
		out[app] = c.load()
	}
	return out
}

// HealthChecks returns the probes run of each app, by result, since
// paddock started (paddock_health_checks_total).
func (s *Supervisor) HealthChecks(ctx context.Context) (map[string]HealthCounts, error) {
	var out map[string]HealthCounts
	err := s.do(ctx, func(o *owner) { out = o.healthCheckCounts() })
	return out, err
}
