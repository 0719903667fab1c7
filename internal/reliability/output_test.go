package reliability

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/paddock-sh/paddock/internal/testkit"
)

// TestSlowReaderOfOutput: paddock's stdout is a pipe whose reader reads a
// little and then stops reading, without closing it, while a worker writes
// lines without pause. The worker must never be blocked by it (it goes on
// writing well past what the pipe holds), the lines paddock could not
// write must be counted (lostOutput), and once the reader reads again the
// worker's lines reach it again.
func TestSlowReaderOfOutput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	progressFile := filepath.Join(dir, "progress")
	manifest := filepath.Join(dir, "paddock.yaml")
	writeFile(t, manifest, fmt.Sprintf(`
apps:
  chatty:
    exec: %s
    env: {%s: lines, PROGRESS: %q}
`, selfBin, helperEnv, progressFile))
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	s := startPaddock(t, pw, manifest)
	pw.Close()
	// Read a little, then stop reading (the pipe stays open).
	if _, err := io.ReadFull(pr, make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	var written, lostLines int64
	lost := "nothing"
	record(t, func() (string, string, string) {
		return "paddock's stdout read by a reader that stops reading (pipe kept open) while a worker writes without pause",
			fmt.Sprintf("the worker wrote %d lines meanwhile, never blocked; %d lines counted lost (lostOutput), then delivered again once read", written, lostLines), lost
	})
	start := progress(t, progressFile)
	// A pipe holds 64 KiB, about 600 of these lines: a worker that wrote
	// 20000 more was not held up by the reader.
	testkit.WaitFor(t, "the worker writing 20000 lines past the stalled reader", func() bool {
		written = progress(t, progressFile) - start
		return written > 20000
	})
	testkit.WaitFor(t, "lines counted lost", func() bool {
		lostLines = s.status().LostOutput["stdout"]
		return lostLines > 0
	})
	// Reading again, the worker's lines arrive again.
	got := make(chan string, 1)
	go func() {
		b := make([]byte, 64<<10)
		for {
			n, err := pr.Read(b)
			if err != nil {
				return
			}
			if n > 0 {
				select {
				case got <- string(b[:n]):
				default:
				}
			}
		}
	}()
	testkit.WaitFor(t, "lines once the reader reads again", func() bool {
		select {
		case s := <-got:
			return len(s) > 0
		default:
			return false
		}
	})
	if ws := s.pids("chatty"); len(ws) != 1 {
		lost = fmt.Sprintf("the worker is not running: %v", ws)
		t.Error(lost)
	}
}
