// Package metrics exposes a supervisor's state and history as Prometheus
// metrics (github.com/prometheus/client_golang).
//
// Gauges (workers desired, running, ready; connections handed out; health
// probes by result) are read from the supervisor at each scrape; counters
// and histograms (exits, restarts, reloads, rollout durations and stalls,
// start latency) are fed by its
// events through Observe and OnReload.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/paddock-sh/paddock/internal/revision"
	"github.com/paddock-sh/paddock/internal/supervisor"
)

// Exit causes, the cause label of paddock_worker_exits_total.
const (
	CauseStopped     = "stopped"      // paddock asked it to stop (scale down, rollout, shutdown)
	CauseExited      = "exited"       // exited with status 0 on its own
	CauseFailed      = "failed"       // exited with a non-zero status
	CauseSignal      = "signal"       // ended by a signal paddock did not send
	CauseStartFailed = "start-failed" // could not be started
)

// StatusFunc returns the supervisor's status (supervisor.Status).
type StatusFunc func(context.Context) (supervisor.Status, error)

// Metrics holds the registry. Create it with New.
type Metrics struct {
	reg *prometheus.Registry

	exits    *prometheus.CounterVec
	restarts *prometheus.CounterVec
	reloads  *prometheus.CounterVec
	rollouts *prometheus.HistogramVec
	start    *prometheus.HistogramVec
	stalls   *prometheus.CounterVec
	rollback *prometheus.CounterVec

	mu           sync.Mutex
	rolloutSince map[string]time.Time
}

// New returns metrics reading the current state with status.
func New(status StatusFunc) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		exits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "paddock_worker_exits_total",
			Help: "Worker exits by app and cause (stopped, exited, failed, signal, start-failed).",
		}, []string{"app", "cause"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "paddock_worker_restarts_total",
			Help: "Replacements scheduled for workers that exited on their own, by app.",
		}, []string{"app"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "paddock_reloads_total",
			Help: "Manifest reloads by result (applied, unchanged, failed).",
		}, []string{"result"}),
		rollouts: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "paddock_rollout_duration_seconds",
			Help:    "Time from the start of a rolling update to its completion, by app.",
			Buckets: []float64{0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800},
		}, []string{"app"}),
		start: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "paddock_worker_start_seconds",
			Help:    "Time from a worker's start to its readiness (as its app's readiness: says), by app.",
			Buckets: []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}, []string{"app"}),
		stalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "paddock_rollout_stalls_total",
			Help: "Rolling updates that stalled (a new worker not ready within readyTimeout, or exited before it was available), by app.",
		}, []string{"app"}),
		rollback: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "paddock_rollout_rollbacks_total",
			Help: "Stalled rolling updates rolled back to the last generation whose workers were all available (rollout.onStall: rollback), by app.",
		}, []string{"app"}),
		rolloutSince: map[string]time.Time{},
	}
	for _, reload := range []string{"applied", "unchanged", "failed"} {
		m.reloads.WithLabelValues(reload) // present from the start, at 0
	}
	m.reg.MustRegister(m.exits, m.restarts, m.reloads, m.rollouts, m.start, m.stalls, m.rollback,
		&stateCollector{status: status},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry returns the registry, for tests and embedding.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// OnReload counts a reload's result (supervisor.Options.OnReload).
func (m *Metrics) OnReload(result string) { m.reloads.WithLabelValues(result).Inc() }

// Observe takes one supervisor event (supervisor.Options.OnEvent). It does
// not block.
func (m *Metrics) Observe(e supervisor.Event) {
	switch e.Type {
	case supervisor.EventExit:
		m.exits.WithLabelValues(e.App, exitCause(e)).Inc()
	case supervisor.EventRestart:
		m.restarts.WithLabelValues(e.App).Inc()
	case supervisor.EventReady:
		m.start.WithLabelValues(e.App).Observe(e.Delay.Seconds())
	case supervisor.EventRolloutStalled:
		m.stalls.WithLabelValues(e.App).Inc()
	case supervisor.EventRolloutRollback:
		m.rollback.WithLabelValues(e.App).Inc()
	case supervisor.EventRolloutProgress:
		m.mu.Lock()
		defer m.mu.Unlock()
		since, running := m.rolloutSince[e.App]
		switch {
		case e.Detail == "complete" && running:
			m.rollouts.WithLabelValues(e.App).Observe(e.Time.Sub(since).Seconds())
			delete(m.rolloutSince, e.App)
		case e.Detail != "complete" && !running:
			m.rolloutSince[e.App] = e.Time
		}
	}
}

func exitCause(e supervisor.Event) string {
	switch {
	case e.Intended:
		return CauseStopped
	case e.StartFailed || e.PID == 0:
		return CauseStartFailed
	case e.Signal != "":
		return CauseSignal
	case e.ExitCode == 0:
		return CauseExited
	}
	return CauseFailed
}

// stateCollector reads the gauges from the supervisor at each scrape.
type stateCollector struct {
	status StatusFunc
}

var (
	descDesired = prometheus.NewDesc("paddock_workers_desired",
		"Workers the app wants: its manifest's instances, or the runtime override of paddock scale.", []string{"app"}, nil)
	descRunning = prometheus.NewDesc("paddock_workers_running",
		"Live worker processes of the app, stopping ones aside.", []string{"app"}, nil)
	descReady = prometheus.NewDesc("paddock_workers_ready",
		"Live workers of the app that are ready to serve.", []string{"app"}, nil)
	descOverride = prometheus.NewDesc("paddock_app_scale_override",
		"1 while the app runs with a runtime instances override (paddock scale).", []string{"app"}, nil)
	descHanded = prometheus.NewDesc("paddock_worker_connections_handed_out_total",
		"Connections paddock accepted and handed to the worker (rr, sticky), by app and worker id.", []string{"app", "worker"}, nil)
	descLostOutput = prometheus.NewDesc("paddock_output_lost_lines_total",
		"Workers' lines that could not be written to paddock's stdout or stderr (a broken pipe, a full disk).", []string{"stream"}, nil)
	descLogDropped = prometheus.NewDesc("paddock_log_dropped_lines_total",
		"Workers' lines that could not be written to their app's log file (logs:): its queue was full (a slow or blocked disk) or a write failed (a full disk), by app.", []string{"app"}, nil)
	descResident = prometheus.NewDesc("paddock_worker_resident_bytes",
		"Resident memory of the worker's process group (the worker and the processes it started in its group), as last read from /proc, by app and worker id.", []string{"app", "worker"}, nil)
	descCPU = prometheus.NewDesc("paddock_worker_cpu_seconds_total",
		"CPU time, user and system, that the worker's process group used since the worker started, by app and worker id.", []string{"app", "worker"}, nil)
	descStalled = prometheus.NewDesc("paddock_rollout_stalled",
		"1 while the app's rolling update is stalled (the old workers keep serving), else 0.", []string{"app"}, nil)
	descUp = prometheus.NewDesc("paddock_up",
		"1 when the supervisor answered the scrape.", nil, nil)
	descHealth = prometheus.NewDesc("paddock_health_checks_total",
		"Health probes of the app's workers by result: pass, fail (an answer that fails: a status, an exit code, a refused connection), timeout (no answer within the healthCheck's timeout).",
		[]string{"app", "result"}, nil)
	descCrashLooping = prometheus.NewDesc("paddock_app_crash_looping",
		"1 while the app's workers keep exiting before they stayed up for its backoff.max (a crash loop).", []string{"app"}, nil)
	descRelayed = prometheus.NewDesc("paddock_relayed_messages_total",
		"Workers' messages relayed to other workers of the app (ipc.relay), by result: delivered (a copy queued to a worker), dropped (a copy a worker that does not read its IPC channel could not take), unrouted (a message for a worker or alias that is no running worker of the app).",
		[]string{"app", "result"}, nil)
	descManifest = prometheus.NewDesc("paddock_manifest_info",
		"1 for the revision of the manifests that runs: the commit HEAD names (kind git) or the git-sync or ConfigMap ..data link's target (kind link); absent when none is known.",
		[]string{"revision", "kind"}, nil)
	descManifestRejected = prometheus.NewDesc("paddock_manifest_rejected_info",
		"1 for the revision of the manifests whose reload was last rejected, while no reload was applied since; absent otherwise. applied_revision is the one that runs instead.",
		[]string{"revision", "kind", "applied_revision"}, nil)
	descManifestModified = prometheus.NewDesc("paddock_manifest_modified",
		"For a git revision that runs: 1 when manifest files read differ from its commit (edited in place, or not committed; files lists them, relative to the work tree, comma-separated), 0 when they all match it; absent when that could not be told, or for a link revision.",
		[]string{"revision", "kind", "files"}, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDesired, descRunning, descReady, descOverride, descHanded, descLostOutput, descLogDropped, descResident, descCPU, descUp,
		descCrashLooping, descStalled, descHealth, descRelayed, descManifest, descManifestRejected, descManifestModified} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.status(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 1)
	collectManifests(ch, st.Manifests)
	for stream, n := range st.LostOutput {
		ch <- prometheus.MustNewConstMetric(descLostOutput, prometheus.CounterValue, float64(n), stream)
	}
	for app, n := range st.LogDropped {
		ch <- prometheus.MustNewConstMetric(descLogDropped, prometheus.CounterValue, float64(n), app)
	}
	for _, a := range st.Apps {
		ch <- prometheus.MustNewConstMetric(descDesired, prometheus.GaugeValue, float64(a.Instances), a.Name)
		ch <- prometheus.MustNewConstMetric(descRunning, prometheus.GaugeValue, float64(a.Running), a.Name)
		ch <- prometheus.MustNewConstMetric(descReady, prometheus.GaugeValue, float64(a.Ready), a.Name)
		override := 0.0
		if a.Override {
			override = 1
		}
		ch <- prometheus.MustNewConstMetric(descOverride, prometheus.GaugeValue, override, a.Name)
		looping := 0.0
		if a.CrashLoop != nil {
			looping = 1
		}
		ch <- prometheus.MustNewConstMetric(descCrashLooping, prometheus.GaugeValue, looping, a.Name)
		stalled := 0.0
		if a.Rollout != nil && a.Rollout.Stalled != "" {
			stalled = 1
		}
		ch <- prometheus.MustNewConstMetric(descStalled, prometheus.GaugeValue, stalled, a.Name)
	}
	for _, w := range st.Workers {
		if w.PID != 0 && w.Usage != nil {
			id := strconv.Itoa(w.ID)
			ch <- prometheus.MustNewConstMetric(descResident, prometheus.GaugeValue, float64(w.Usage.RSS), w.App, id)
			ch <- prometheus.MustNewConstMetric(descCPU, prometheus.CounterValue, w.Usage.CPUTime.Seconds(), w.App, id)
		}
		if w.PID == 0 || w.HandedOut == 0 {
			continue
		}
		ch <- prometheus.MustNewConstMetric(descHanded, prometheus.CounterValue, float64(w.HandedOut), w.App, strconv.Itoa(w.ID))
	}
	for app, c := range st.Relay {
		for result, n := range map[string]int64{"delivered": c.Delivered, "dropped": c.Dropped, "unrouted": c.Unrouted} {
			ch <- prometheus.MustNewConstMetric(descRelayed, prometheus.CounterValue, float64(n), app, result)
		}
	}
	for app, c := range st.HealthChecks {
		for result, n := range map[string]int64{supervisor.HealthPass: c.Pass, supervisor.HealthFail: c.Fail, supervisor.HealthTimeout: c.Timeout} {
			ch <- prometheus.MustNewConstMetric(descHealth, prometheus.CounterValue, float64(n), app, result)
		}
	}
}

// collectManifests sends paddock_manifest_info for the revision that runs,
// when one is known, paddock_manifest_modified for a git one whose files
// could be compared with the commit, and paddock_manifest_rejected_info
// while the last reload was rejected.
func collectManifests(ch chan<- prometheus.Metric, m supervisor.ManifestsStatus) {
	id, kind := labelValue(m.Revision.ID), labelValue(m.Revision.Kind)
	if !m.Revision.IsZero() {
		ch <- prometheus.MustNewConstMetric(descManifest, prometheus.GaugeValue, 1, id, kind)
	}
	if m.Revision.Kind == revision.KindGit && !m.Revision.ModifiedUnknown {
		v := 0.0
		if m.Revision.Modified != "" {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descManifestModified, prometheus.GaugeValue, v, id, kind, labelValue(m.Revision.Modified))
	}
	if r := m.Rejected; r != nil {
		ch <- prometheus.MustNewConstMetric(descManifestRejected, prometheus.GaugeValue, 1, labelValue(r.Revision.ID), labelValue(r.Revision.Kind), id)
	}
}

// labelValue is s made valid UTF-8, as a label value must be (a link
// target's or a file's name need not be): MustNewConstMetric would panic.
func labelValue(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
