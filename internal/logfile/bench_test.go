package logfile_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/paddock-sh/paddock/internal/logfile"
	"github.com/paddock-sh/paddock/internal/testkit"
)

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
