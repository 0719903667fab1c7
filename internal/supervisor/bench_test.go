package supervisor

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkReloadLatency measures, for a supervisor watching its manifest,
// the time from a manifest write to the first action it causes (the fork of
// a new worker, or the stop of a retired one), reported beside the
// debounce that makes up most of it: latency-over-debounce is what paddock
// itself adds (watching, reading, validating, planning, forking).
func BenchmarkReloadLatency(b *testing.B) {
	for _, debounce := range []time.Duration{50 * time.Millisecond, 200 * time.Millisecond} {
		b.Run(fmt.Sprintf("debounce=%s", debounce), func(b *testing.B) {
			const manifest = `
apps:
  web:
    exec: $SELF
    instances: %d
    env: {PADDOCK_TEST_HELPER: serve}
`
			h := startWatching(b, fmt.Sprintf(manifest, 1), debounce)
			h.waitWorkers("1 worker", running("web", 1))
			var total time.Duration
			n := 1
			for b.Loop() {
				n = 3 - n // 1 → 2 → 1 ...
				h.drain()
				start := time.Now()
				h.write(fmt.Sprintf(manifest, n))
				e := h.waitEvent("first action", func(e Event) bool {
					return (e.Type == EventFork || e.Type == EventStopping) && e.Time.After(start)
				})
				total += e.Time.Sub(start)
				// Let the change settle before the next one.
				h.waitWorkers("settled", running("web", n))
			}
			mean := total / time.Duration(b.N)
			b.ReportMetric(float64(mean)/float64(time.Millisecond), "ms/reload")
			b.ReportMetric(float64(debounce)/float64(time.Millisecond), "ms-debounce")
			b.ReportMetric(float64(mean-debounce)/float64(time.Millisecond), "ms-over-debounce")
		})
	}
}
