package supervisor

import (
	"fmt"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// cpuTime returns the CPU time this process used so far, user and system,
// all threads (getrusage RUSAGE_SELF): the supervisor's own, not its
// workers'.
func cpuTime(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkHealthChecks200Workers measures what health checks cost
// paddock: 200 workers (the test binary serving HTTP, health mode), each
// probed with an HTTP GET every second, and paddock's own CPU time per
// second of wall time, reported as "%cpu" (percent of one CPU), with the
// probes it ran per second. Each iteration is one second: -benchtime=20x
// measures over 20 s. port=worker: each worker's own loopback socket
// (none); rr: the probe's connection handed to the worker over its IPC
// channel (package worker).
func BenchmarkHealthChecks200Workers(b *testing.B) {
	const workers = 200
	for _, c := range []struct{ name, app string }{
		{"port=worker", "schedulingPolicy: none\n    ipc: off\n    listen: [\"127.0.0.1:0\"]\n    healthCheck:\n      http: {path: /healthz, port: worker}"},
		{"rr", "schedulingPolicy: rr\n    ipc: node\n    readiness: listening\n    listen: [\"127.0.0.1:%d\"]\n    healthCheck:\n      http: {path: /healthz}"},
	} {
		b.Run(c.name, func(b *testing.B) {
			app, port := c.app, 0
			if c.name == "rr" {
				port = freePort(b)
				app = fmt.Sprintf(app, port)
			}
			h := start(b, fmt.Sprintf(`
apps:
  web:
    exec: $SELF
    instances: %d
    readyTimeout: 5m
    killTimeout: 60s
    %s
      interval: 1s
      timeout: 1s
    env: {PADDOCK_TEST_HELPER: health, HEALTHY_IDS: all, PORT: "%d", GOMAXPROCS: "1", GOGC: "400"}
`, workers, app, port))
			h.waitWorkers("200 ready workers", func(ws []WorkerInfo) bool {
				n := 0
				for _, w := range ws {
					if w.Ready && w.PID != 0 {
						n++
					}
				}
				return n == workers
			})
			// Every worker passed a few probes: their start is over.
			before := h.healthCounts("web")
			h.waitHealth("web", "3 rounds of probes", func(c HealthCounts) bool { return c.Pass >= before.Pass+3*workers })
			start := h.healthCounts("web")
			cpu0, wall0 := cpuTime(b), time.Now()
			for b.Loop() {
				time.Sleep(time.Second)
			}
			cpu, wall := cpuTime(b)-cpu0, time.Since(wall0)
			end := h.healthCounts("web")
			probes := (end.Pass + end.Fail + end.Timeout) - (start.Pass + start.Fail + start.Timeout)
			// Failures while the workers started (before they listened)
			// are left out: only the measured window counts.
			if fail, timeout := end.Fail-start.Fail, end.Timeout-start.Timeout; fail+timeout > 0 {
				b.Logf("probes that did not pass while measured: %d failed, %d timed out (of %d)", fail, timeout, probes)
			}
			b.ReportMetric(100*cpu.Seconds()/wall.Seconds(), "%cpu")
			b.ReportMetric(float64(probes)/wall.Seconds(), "probes/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}
