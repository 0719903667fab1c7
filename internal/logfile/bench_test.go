package logfile_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/paddock-sh/paddock/internal/logfile"
	"github.com/paddock-sh/paddock/internal/testkit"
)

// BenchmarkWriteDrained is the writer's own pace: 100-byte lines queued
// (the queue large enough for all) and written to a file of t.TempDir,
// the time to the last one written included.
func BenchmarkWriteDrained(b *testing.B) {
	path := filepath.Join(b.TempDir(), "web.log")
	s := logfile.New(logfile.Options{QueueLines: 1 << 30, QueueBytes: 1 << 40})
	s.Configure(map[string]logfile.App{"web": {Stdout: path, Stderr: path, Rotation: logfile.Rotation{MaxSize: 1 << 30, MaxFiles: 1}}})
	l := logfile.Line{App: "web", Worker: 1, PID: 4711, Stream: "stdout", Text: strings.Repeat("x", 100)}
	b.ResetTimer()
	for range b.N {
		s.Write(l, nil)
	}
	s.Close(testkit.Patience) // timed: the queue written to the file
	b.StopTimer()
	if d := s.Dropped()["web"]; d != 0 {
		b.Fatalf("%d dropped", d)
	}
}

// BenchmarkWrite is the cost of one 100-byte line on the copier's side
// (formatting, queueing), the writer draining the queue to a file of
// t.TempDir meanwhile; lines the writer cannot keep up with are dropped
// and reported.
func BenchmarkWrite(b *testing.B) {
	for _, format := range []string{logfile.FormatText, logfile.FormatJSON} {
		b.Run(format, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "web.log")
			s := logfile.New(logfile.Options{Format: format})
			s.Configure(map[string]logfile.App{"web": {Stdout: path, Stderr: path, Rotation: logfile.Rotation{MaxSize: 64 << 20, MaxFiles: 1}}})
			l := logfile.Line{App: "web", Worker: 1, PID: 4711, Stream: "stdout", Text: strings.Repeat("x", 100)}
			b.ReportAllocs()
			for b.Loop() {
				s.Write(l, nil)
			}
			b.StopTimer()
			s.Close(testkit.Patience)
			b.ReportMetric(float64(s.Dropped()["web"]), "dropped")
		})
	}
}
