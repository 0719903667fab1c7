package metrics

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/paddock-sh/paddock/internal/supervisor"
	"github.com/paddock-sh/paddock/reconcile"
)

func TestExitCause(t *testing.T) {
	for _, tc := range []struct {
		e    supervisor.Event
		want string
	}{
		{supervisor.Event{Intended: true, PID: 5, Signal: "SIGTERM", ExitCode: -1}, CauseStopped},
		{supervisor.Event{PID: 0, ExitCode: -1, Detail: "start failed"}, CauseStartFailed},
		{supervisor.Event{PID: 5, Signal: "SIGKILL", ExitCode: -1}, CauseSignal},
		{supervisor.Event{PID: 5, ExitCode: 0}, CauseExited},
		{supervisor.Event{PID: 5, ExitCode: 3}, CauseFailed},
	} {
		if got := exitCause(tc.e); got != tc.want {
			t.Errorf("exitCause(%+v) = %s, want %s", tc.e, got, tc.want)
		}
	}
}

func TestObserveAndCollect(t *testing.T) {
	m := New(func(context.Context) (supervisor.Status, error) {
		return supervisor.Status{
			Apps: []supervisor.AppStatus{
				{Name: "web", Instances: 3, ManifestInstances: 2, Override: true, Running: 3, Ready: 2},
				{Name: "api", Instances: 1, ManifestInstances: 1, Running: 2, Ready: 1,
					Rollout: &reconcile.RolloutStatus{Instances: 1, New: 1, Old: 1, Stalled: "api/4 exited before it was ready"}},
			},
			Workers: []supervisor.WorkerInfo{
				{ID: 7, App: "web", PID: 100, HandedOut: 42},
				{ID: 8, App: "web", PID: 0, HandedOut: 5}, // exited: not reported
			},
		}, nil
	})
	t0 := time.Now()
	m.Observe(supervisor.Event{Type: supervisor.EventRolloutProgress, App: "web", Time: t0, Detail: "0/3 new ready"})
	m.Observe(supervisor.Event{Type: supervisor.EventRolloutProgress, App: "web", Time: t0.Add(time.Second), Detail: "1/3 new ready"})
	m.Observe(supervisor.Event{Type: supervisor.EventRolloutProgress, App: "web", Time: t0.Add(4 * time.Second), Detail: "complete"})
	m.Observe(supervisor.Event{Type: supervisor.EventReady, App: "web", Delay: 30 * time.Millisecond})
	m.Observe(supervisor.Event{Type: supervisor.EventExit, App: "web", PID: 9, ExitCode: 1})
	m.Observe(supervisor.Event{Type: supervisor.EventRestart, App: "web"})
	m.Observe(supervisor.Event{Type: supervisor.EventRolloutStalled, App: "api", Detail: "api/4 exited before it was ready"})
	m.Observe(supervisor.Event{Type: supervisor.EventRolloutRollback, App: "api", Generation: "a", FromGeneration: "b"})
	m.OnReload("applied")

	want := `
# HELP paddock_workers_desired Workers the app wants: its manifest's instances, or the runtime override of paddock scale.
# TYPE paddock_workers_desired gauge
paddock_workers_desired{app="api"} 1
paddock_workers_desired{app="web"} 3
# HELP paddock_workers_ready Live workers of the app that are ready to serve.
# TYPE paddock_workers_ready gauge
paddock_workers_ready{app="api"} 1
paddock_workers_ready{app="web"} 2
# HELP paddock_rollout_stalled 1 while the app's rolling update is stalled (the old workers keep serving), else 0.
# TYPE paddock_rollout_stalled gauge
paddock_rollout_stalled{app="api"} 1
paddock_rollout_stalled{app="web"} 0
# HELP paddock_rollout_stalls_total Rolling updates that stalled (a new worker not ready within readyTimeout, or exited before it was available), by app.
# TYPE paddock_rollout_stalls_total counter
paddock_rollout_stalls_total{app="api"} 1
# HELP paddock_rollout_rollbacks_total Stalled rolling updates rolled back to the last generation whose workers were all available (rollout.onStall: rollback), by app.
# TYPE paddock_rollout_rollbacks_total counter
paddock_rollout_rollbacks_total{app="api"} 1
# HELP paddock_worker_connections_handed_out_total Connections paddock accepted and handed to the worker (rr, sticky), by app and worker id.
# TYPE paddock_worker_connections_handed_out_total counter
paddock_worker_connections_handed_out_total{app="web",worker="7"} 42
# HELP paddock_worker_exits_total Worker exits by app and cause (stopped, exited, failed, signal, start-failed).
# TYPE paddock_worker_exits_total counter
paddock_worker_exits_total{app="web",cause="failed"} 1
# HELP paddock_worker_restarts_total Replacements scheduled for workers that exited on their own, by app.
# TYPE paddock_worker_restarts_total counter
paddock_worker_restarts_total{app="web"} 1
# HELP paddock_reloads_total Manifest reloads by result (applied, unchanged, failed).
# TYPE paddock_reloads_total counter
paddock_reloads_total{result="applied"} 1
paddock_reloads_total{result="failed"} 0
paddock_reloads_total{result="unchanged"} 0
`
	names := []string{"paddock_workers_desired", "paddock_workers_ready", "paddock_rollout_stalled", "paddock_rollout_stalls_total", "paddock_rollout_rollbacks_total",
		"paddock_worker_connections_handed_out_total",
		"paddock_worker_exits_total", "paddock_worker_restarts_total", "paddock_reloads_total"}
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	// One rollout of 4 s; one start of 30 ms.
	if n := testutil.CollectAndCount(m.rollouts); n != 1 {
		t.Errorf("%d rollout series", n)
	}
	if got := testutil.ToFloat64(m.reloads.WithLabelValues("applied")); got != 1 {
		t.Errorf("applied reloads %v", got)
	}
	mfs, _ := m.Registry().Gather()
	for _, mf := range mfs {
		switch mf.GetName() {
		case "paddock_rollout_duration_seconds":
			if s := mf.Metric[0].Histogram.GetSampleSum(); s != 4 {
				t.Errorf("rollout duration sum %v, want 4", s)
			}
		case "paddock_worker_start_seconds":
			if s := mf.Metric[0].Histogram.GetSampleSum(); s != 0.03 {
				t.Errorf("start latency sum %v, want 0.03", s)
			}
		}
	}
}

// TestHealthChecksCollected: paddock_health_checks_total gives each app's
// probes by result, as the supervisor counts them.
func TestHealthChecksCollected(t *testing.T) {
	m := New(func(context.Context) (supervisor.Status, error) {
		return supervisor.Status{
			HealthChecks: map[string]supervisor.HealthCounts{"web": {Pass: 40, Fail: 3, Timeout: 2}, "gone": {Pass: 1}},
		}, nil
	})
	want := `
# HELP paddock_health_checks_total Health probes of the app's workers by result: pass, fail (an answer that fails: a status, an exit code, a refused connection), timeout (no answer within the healthCheck's timeout).
# TYPE paddock_health_checks_total counter
paddock_health_checks_total{app="gone",result="fail"} 0
paddock_health_checks_total{app="gone",result="pass"} 1
paddock_health_checks_total{app="gone",result="timeout"} 0
paddock_health_checks_total{app="web",result="fail"} 3
paddock_health_checks_total{app="web",result="pass"} 40
paddock_health_checks_total{app="web",result="timeout"} 2
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "paddock_health_checks_total"); err != nil {
		t.Error(err)
	}
}

// TestResourceMetrics: each live worker with a reading gets its resident
// memory (gauge) and CPU seconds (counter); a worker without one, or gone,
// gets neither.
func TestResourceMetrics(t *testing.T) {
	m := New(func(context.Context) (supervisor.Status, error) {
		return supervisor.Status{
			Apps: []supervisor.AppStatus{{Name: "web", Instances: 3, Running: 2}},
			Workers: []supervisor.WorkerInfo{
				{ID: 7, App: "web", PID: 100, Usage: &supervisor.Usage{RSS: 64 << 20, CPUTime: 1500 * time.Millisecond, Procs: 2}},
				{ID: 8, App: "web", PID: 101}, // not read yet
				{ID: 9, App: "web", PID: 0, Usage: &supervisor.Usage{RSS: 1, CPUTime: 1}}, // gone
			},
		}, nil
	})
	want := `
# HELP paddock_worker_resident_bytes Resident memory of the worker's process group (the worker and the processes it started in its group), as last read from /proc, by app and worker id.
# TYPE paddock_worker_resident_bytes gauge
paddock_worker_resident_bytes{app="web",worker="7"} 6.7108864e+07
# HELP paddock_worker_cpu_seconds_total CPU time, user and system, that the worker's process group used since the worker started, by app and worker id.
# TYPE paddock_worker_cpu_seconds_total counter
paddock_worker_cpu_seconds_total{app="web",worker="7"} 1.5
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "paddock_worker_resident_bytes", "paddock_worker_cpu_seconds_total"); err != nil {
		t.Error(err)
	}
}
