package logfile_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/paddock-sh/paddock/internal/logfile"
	"github.com/paddock-sh/paddock/internal/testkit"
)

// lumberjack v2.2.1 starts a goroutine per logger that compresses and
// removes rotated files, and never ends it.
var ignoreMill = goleak.IgnoreTopFunction("gopkg.in/natefinch/lumberjack%2ev2.(*Logger).millRun")

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, ignoreMill) }

const mi = 1 << 20

func rot() logfile.Rotation { return logfile.Rotation{MaxSize: mi, MaxFiles: 5} }

// newSet returns a Set closed at the end of the test, and a channel poked
// by OnChange.
func newSet(t *testing.T, opts logfile.Options) (*logfile.Set, chan struct{}) {
	t.Helper()
	changed := make(chan struct{}, 1)
	opts.OnChange = func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	s := logfile.New(opts)
	t.Cleanup(func() { s.Close(testkit.Patience) })
	return s, changed
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// waitTransition waits for the next transition of the set.
func waitTransition(t *testing.T, s *logfile.Set, pending *[]logfile.Transition) logfile.Transition {
	t.Helper()
	testkit.WaitFor(t, "a transition", func() bool {
		*pending = append(*pending, s.Transitions()...)
		return len(*pending) > 0
	})
	tr := (*pending)[0]
	*pending = (*pending)[1:]
	return tr
}

// TestFormats: each line is "app/worker | text" (text) or one JSON object
// with time, app, worker, pid, stream and line (json); merged streams
// share the file, separate ones go apart; an app without a file writes
// none, and alongside runs for every line.
func TestFormats(t *testing.T) {
	dir := t.TempDir()
	for _, format := range []string{logfile.FormatText, logfile.FormatJSON} {
		t.Run(format, func(t *testing.T) {
			s, _ := newSet(t, logfile.Options{Format: format})
			merged := filepath.Join(dir, format+"-web.log")
			out, errPath := filepath.Join(dir, format+"-api.log"), filepath.Join(dir, format+"-api.stderr.log")
			s.Configure(map[string]logfile.App{
				"web": {Stdout: merged, Stderr: merged, Rotation: rot()},
				"api": {Stdout: out, Stderr: errPath, Rotation: rot()},
			})
			var along atomic.Int32
			at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
			for _, l := range []logfile.Line{
				{App: "web", Worker: 1, PID: 100, Stream: "stdout", Text: "hello"},
				{App: "web", Worker: 2, PID: 101, Stream: "stderr", Text: "oops | not a prefix"},
				{App: "api", Worker: 1, PID: 200, Stream: "stdout", Text: "to out"},
				{App: "api", Worker: 1, PID: 200, Stream: "stderr", Text: `to "err"`},
				{App: "other", Worker: 1, PID: 300, Stream: "stdout", Text: "nowhere"},
			} {
				l.Time = at
				s.Write(l, func() { along.Add(1) })
			}
			s.Close(testkit.Patience)
			if along.Load() != 5 {
				t.Errorf("alongside ran %d times, want 5", along.Load())
			}
			want := map[string]string{
				merged:  "web/1 | hello\nweb/2 | oops | not a prefix\n",
				out:     "api/1 | to out\n",
				errPath: "api/1 | to \"err\"\n",
			}
			if format == logfile.FormatJSON {
				want = map[string]string{
					merged: `{"time":"2026-12-02T10:00:00Z","app":"web","worker":1,"pid":100,"stream":"stdout","line":"hello"}` + "\n" +
						`{"time":"2026-12-02T10:00:00Z","app":"web","worker":2,"pid":101,"stream":"stderr","line":"oops | not a prefix"}` + "\n",
					out:     `{"time":"2026-12-02T10:00:00Z","app":"api","worker":1,"pid":200,"stream":"stdout","line":"to out"}` + "\n",
					errPath: `{"time":"2026-12-02T10:00:00Z","app":"api","worker":1,"pid":200,"stream":"stderr","line":"to \"err\""}` + "\n",
				}
			}
			for p, w := range want {
				if got := readFile(t, p); got != w {
					t.Errorf("%s:\ngot  %q\nwant %q", filepath.Base(p), got, w)
				}
				if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
					t.Errorf("%s: mode %v, want 0600", filepath.Base(p), fi.Mode().Perm())
				}
			}
		})
	}
}

// TestParseLine reads both formats back, and refuses what paddock did not
// write.
func TestParseLine(t *testing.T) {
	tests := []struct {
		in   string
		want logfile.Line
		ok   bool
	}{
		{"web/1 | hello", logfile.Line{App: "web", Worker: 1, Stream: "S", Text: "hello"}, true},
		{"web-2/12 | a | b", logfile.Line{App: "web-2", Worker: 12, Stream: "S", Text: "a | b"}, true},
		{"web/1 | ", logfile.Line{App: "web", Worker: 1, Stream: "S"}, true},
		{`{"time":"2026-12-02T10:00:00Z","app":"web","worker":3,"pid":7,"stream":"stderr","line":"x"}`,
			logfile.Line{Time: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC), App: "web", Worker: 3, PID: 7, Stream: "stderr", Text: "x"}, true},
		{"", logfile.Line{}, false},
		{"hello", logfile.Line{}, false},
		{"web | hello", logfile.Line{}, false},
		{"web/0 | hello", logfile.Line{}, false},
		{"web/x | hello", logfile.Line{}, false},
		{"/1 | hello", logfile.Line{}, false},
		{`{"app":""}`, logfile.Line{}, false},
		{`{not json`, logfile.Line{}, false},
	}
	for _, tt := range tests {
		got, ok := logfile.ParseLine([]byte(tt.in), "S")
		if ok != tt.ok || (ok && got != tt.want) {
			t.Errorf("ParseLine(%q) = %+v, %v; want %+v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func FuzzParseLine(f *testing.F) {
	f.Add([]byte("web/1 | hello"))
	f.Add([]byte(`{"time":"2026-12-02T10:00:00Z","app":"web","worker":3,"pid":7,"stream":"stderr","line":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, ok := logfile.ParseLine(b, "stdout")
		if ok && (l.App == "" || l.Worker < 1) {
			t.Errorf("ParseLine(%q) = %+v, true", b, l)
		}
	})
}

// writeLines writes n lines of app web/1, numbered from first, of width
// bytes each (newline included, in text format).
func writeLines(s *logfile.Set, first, n, width int) {
	for i := first; i < first+n; i++ {
		num := fmt.Sprintf("%08d ", i)
		s.Write(logfile.Line{App: "web", Worker: 1, Stream: "stdout", Text: num + strings.Repeat("x", width-len("web/1 | ")-len(num)-1)}, nil)
	}
}

// numbers returns the numbers of lines written by writeLines.
func numbers(lines []logfile.Line) []int {
	out := make([]int, len(lines))
	for i, l := range lines {
		fmt.Sscanf(l.Text, "%d", &out[i])
	}
	return out
}

// TestRotationAndTail: a file past maxSize is rotated, rotated ones are
// compressed and kept up to maxFiles; Tail reads the last lines back
// across the current file and the rotated ones, gzip ones included, in
// order and each once.
func TestRotationAndTail(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "web.log")
	s, _ := newSet(t, logfile.Options{})
	s.Configure(map[string]logfile.App{"web": {Stdout: path, Stderr: path, Rotation: logfile.Rotation{MaxSize: mi, MaxFiles: 2, Compress: true}}})
	// 4 MiB of 1 KiB lines: the current file and 3 rotations, of which
	// 2 are kept.
	const width, total = 1024, 4 * 1024
	for i := 0; i < total; i += 512 {
		writeLines(s, i, 512, width)
		// Within the queue's bounds: this test is not about drops.
		testkit.WaitFor(t, "the lines written", func() bool {
			lines, err := s.Tail(t.Context(), "web", 0, 1, nil)
			return err == nil && len(lines) == 1 && numbers(lines)[0] == i+511
		})
	}
	testkit.WaitFor(t, "two rotated files, compressed", func() bool {
		gz, _ := filepath.Glob(filepath.Join(dir, "web-*.log.gz"))
		plain, _ := filepath.Glob(filepath.Join(dir, "web-*.log"))
		return len(gz) == 2 && len(plain) == 0
	})
	if d := s.Dropped()["web"]; d != 0 {
		t.Fatalf("%d lines dropped", d)
	}
	lines, err := s.Tail(t.Context(), "web", 0, 100000, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The lines of the current file and of the two kept rotations: a
	// run of consecutive numbers ending with the last, beginning after
	// the removed rotation.
	consecutive(t, numbers(lines), 2*1000, total-1)
	// Fewer lines than the files hold: the last ones.
	lines, err = s.Tail(t.Context(), "web", 0, 1500, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := numbers(lines); len(got) != 1500 || got[0] != total-1500 || got[1499] != total-1 {
		t.Errorf("Tail(1500) = %d lines from %d to %d", len(got), got[0], got[len(got)-1])
	}
	// Worker and app filters.
	if lines, _ := s.Tail(t.Context(), "web", 2, 10, nil); len(lines) != 0 {
		t.Errorf("Tail of web/2 = %d lines, want none", len(lines))
	}
	if lines, _ := s.Tail(t.Context(), "api", 0, 10, nil); len(lines) != 0 {
		t.Errorf("Tail of api (no file) = %d lines, want none", len(lines))
	}
}

// consecutive fails unless got is at least n numbers, each one more than
// the one before, ending with last.
func consecutive(t *testing.T, got []int, n, last int) {
	t.Helper()
	if len(got) < n || got[len(got)-1] != last {
		t.Fatalf("Tail gave %d lines ending %v", len(got), got[max(0, len(got)-3):])
	}
	for i := 1; i < len(got); i++ {
		if got[i] != got[i-1]+1 {
			t.Fatalf("line %d is %d after %d: not in order, or a duplicate or gap", i, got[i], got[i-1])
		}
	}
}

// TestTailMarker: Tail gives every line written before its marker, those
// still queued included, and none written after; atMarker runs at that
// moment, with no line in between (Write's alongside).
func TestTailMarker(t *testing.T) {
	path := filepath.Join(t.TempDir(), "web.log")
	// Room for every line: a line dropped is kept by alongside, not in
	// the file.
	s, _ := newSet(t, logfile.Options{QueueLines: 1 << 20, QueueBytes: 1 << 30})
	s.Configure(map[string]logfile.App{"web": {Stdout: path, Stderr: path, Rotation: logfile.Rotation{MaxSize: 1 << 30}}})
	var mu sync.Mutex
	var kept []int // what alongside kept, in order
	var next atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				n := int(next.Add(1))
				if n > 50000 {
					return
				}
				s.Write(logfile.Line{App: "web", Worker: 1, Stream: "stdout", Text: fmt.Sprintf("%08d", n)}, func() {
					mu.Lock()
					kept = append(kept, n)
					mu.Unlock()
				})
			}
		})
	}
	for round := range 10 {
		var atMarker int
		lines, err := s.Tail(t.Context(), "web", 0, 1<<30, func() { atMarker = len(kept) })
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		want := slices.Clone(kept[:atMarker])
		mu.Unlock()
		if got := numbers(lines); !slices.Equal(got, want) {
			t.Fatalf("round %d: Tail gave %d lines, alongside kept %d before the marker", round, len(got), len(want))
		}
	}
	close(stop)
	wg.Wait()
	if d := s.Dropped()["web"]; d != 0 {
		t.Errorf("%d lines dropped", d)
	}
}

// TestFIFONeverBlocks: a log file that is a FIFO nobody reads blocks its
// writer in open, then in write; Write never waits for it: lines beyond
// the queue are dropped and counted (a dropping transition), and once a
// reader drains the FIFO writing resumes (a transition with the count)
// and new lines arrive.
func TestFIFONeverBlocks(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "web.log")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	s, _ := newSet(t, logfile.Options{QueueLines: 100})
	s.Configure(map[string]logfile.App{"web": {Stdout: path, Stderr: path, Rotation: rot()}})
	// 100 queued, 900 dropped; each Write returns at once, else this
	// test would hang here.
	writeLines(s, 0, 1000, 64)
	var pending []logfile.Transition
	tr := waitTransition(t, s, &pending)
	if !tr.Dropping || tr.Path != path || !slices.Equal(tr.Apps, []string{"web"}) || !strings.Contains(tr.Reason, "queue") {
		t.Fatalf("transition %+v, want web.log dropping because its queue is full", tr)
	}
	dropped := s.Dropped()["web"]
	if dropped < 900 {
		t.Fatalf("Dropped()[web] = %d, want at least 900", dropped)
	}

	// A reader: the writer's open returns, it writes the queue, and
	// says it resumed, with the count.
	r, err := os.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	lines := make(chan string, 2000)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	tr = waitTransition(t, s, &pending)
	if tr.Dropping || tr.Lost != dropped {
		t.Fatalf("transition %+v, want resumed with %d lost", tr, dropped)
	}
	writeLines(s, 5000, 1, 64)
	for l := range lines {
		if strings.HasPrefix(l, "web/1 | 00005000 ") {
			return
		}
	}
	t.Fatal("the line written after resuming never came")
}

// TestDevFull: writes that fail (ENOSPC) drop their lines and count them,
// with the error as the reason.
func TestDevFull(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full:", err)
	}
	s, _ := newSet(t, logfile.Options{})
	s.Configure(map[string]logfile.App{"web": {Stdout: "/dev/full", Stderr: "/dev/full", Rotation: rot()}})
	writeLines(s, 0, 10, 64)
	var pending []logfile.Transition
	tr := waitTransition(t, s, &pending)
	if !tr.Dropping || !strings.Contains(tr.Reason, "no space left on device") {
		t.Fatalf("transition %+v, want dropping: no space left on device", tr)
	}
	testkit.WaitFor(t, "10 lines counted as dropped", func() bool { return s.Dropped()["web"] == 10 })
	// Reading /dev/full back gives nothing (it is no regular file).
	if lines, err := s.Tail(t.Context(), "web", 0, 10, nil); err != nil || len(lines) != 0 {
		t.Errorf("Tail = %d lines, %v; want none", len(lines), err)
	}
}

// TestReopen: after the file is renamed (an external logrotate) and
// Reopen returns, the file exists again, lines go to it, and nothing more
// goes to the renamed one; nothing is lost.
func TestReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "web.log")
	s, _ := newSet(t, logfile.Options{})
	s.Configure(map[string]logfile.App{"web": {Stdout: path, Stderr: path, Rotation: rot()}})
	writeLines(s, 0, 10, 32)
	testkit.WaitFor(t, "10 lines in web.log", func() bool {
		b, _ := os.ReadFile(path)
		return strings.Count(string(b), "\n") == 10
	})
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	writeLines(s, 10, 5, 32) // before the reopen: to the renamed file
	files, err := s.Reopen(t.Context())
	if err != nil || !slices.Equal(files, []string{path}) {
		t.Fatalf("Reopen = %q, %v", files, err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("after Reopen: %v", err)
	}
	writeLines(s, 15, 5, 32)
	s.Close(testkit.Patience)
	old, cur := readFile(t, path+".1"), readFile(t, path)
	if strings.Count(old, "\n") != 15 || !strings.HasPrefix(old, "web/1 | 00000000 ") || !strings.Contains(old, "web/1 | 00000014 ") {
		t.Errorf("the renamed file has:\n%s", old)
	}
	if strings.Count(cur, "\n") != 5 || !strings.HasPrefix(cur, "web/1 | 00000015 ") {
		t.Errorf("the new file has:\n%s", cur)
	}
}

// TestConfigureLive: an app whose file changes writes to the new one from
// then on, and the old one is closed; an app removed writes none; the
// rotation of a file changes in place.
func TestConfigureLive(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	s, _ := newSet(t, logfile.Options{Format: logfile.FormatJSON})
	s.Configure(map[string]logfile.App{"web": {Stdout: a, Stderr: a, Rotation: rot()}})
	s.Write(logfile.Line{App: "web", Worker: 1, Stream: "stdout", Text: "one"}, nil)
	s.Configure(map[string]logfile.App{"web": {Stdout: b, Stderr: b, Rotation: logfile.Rotation{MaxSize: 2 * mi}}})
	s.Write(logfile.Line{App: "web", Worker: 1, Stream: "stderr", Text: "two"}, nil)
	if got := s.Files(); !slices.Equal(got, []string{b}) {
		t.Errorf("Files() = %q, want [b.log]", got)
	}
	s.Configure(map[string]logfile.App{"web": {Stdout: b, Stderr: b, Rotation: rot()}})
	s.Write(logfile.Line{App: "web", Worker: 1, Stream: "stdout", Text: "three"}, nil)
	if !s.Has("web") || !s.Has("") {
		t.Error("Has says web writes no file")
	}
	s.Configure(map[string]logfile.App{"web": {}, "api": {Stdout: a, Stderr: a, Rotation: rot()}})
	s.Write(logfile.Line{App: "web", Worker: 1, Stream: "stdout", Text: "four"}, nil)
	if s.Has("web") || !s.Has("api") || s.Has("") {
		t.Errorf("Has(web) %v, Has(api) %v, Has(\"\") %v: want false, true, false (web writes no file)", s.Has("web"), s.Has("api"), s.Has(""))
	}
	s.Configure(nil)
	s.Close(testkit.Patience)
	texts := func(p string) []string {
		var out []string
		for _, l := range strings.Split(strings.TrimSpace(readFile(t, p)), "\n") {
			var j struct{ Line string }
			if err := json.Unmarshal([]byte(l), &j); err != nil {
				t.Fatalf("%s: %q: %v", p, l, err)
			}
			out = append(out, j.Line)
		}
		return out
	}
	if got := texts(a); !slices.Equal(got, []string{"one"}) {
		t.Errorf("a.log: %q", got)
	}
	if got := texts(b); !slices.Equal(got, []string{"two", "three"}) {
		t.Errorf("b.log: %q", got)
	}
}

// TestWriteConcurrent: many writers, reconfigured meanwhile: every line
// is in a file once (none dropped), none torn.
func TestWriteConcurrent(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	s, _ := newSet(t, logfile.Options{QueueLines: 1 << 20, QueueBytes: 1 << 30})
	s.Configure(map[string]logfile.App{"web": {Stdout: a, Stderr: a, Rotation: rot()}})
	var wg sync.WaitGroup
	for w := 1; w <= 8; w++ {
		wg.Go(func() {
			for i := range 500 {
				s.Write(logfile.Line{App: "web", Worker: w, Stream: "stdout", Text: fmt.Sprintf("line %d", i)}, nil)
			}
		})
	}
	s.Configure(map[string]logfile.App{"web": {Stdout: b, Stderr: b, Rotation: rot()}})
	wg.Wait()
	s.Close(testkit.Patience)
	seen := map[string]bool{}
	for _, p := range []string{a, b} {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(f)
		f.Close()
		for l := range strings.Lines(string(data)) {
			l = strings.TrimSuffix(l, "\n")
			if _, ok := logfile.ParseLine([]byte(l), ""); !ok || seen[l] {
				t.Fatalf("%s: line %q torn or twice", filepath.Base(p), l)
			}
			seen[l] = true
		}
	}
	if len(seen) != 8*500 {
		t.Errorf("%d lines in the files, want %d", len(seen), 8*500)
	}
}

// TestClosed: after Close, Write only calls alongside, Reopen and Tail
// say the files are closed.
func TestClosed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "web.log")
	s := logfile.New(logfile.Options{})
	s.Configure(map[string]logfile.App{"web": {Stdout: path, Stderr: path, Rotation: rot()}})
	s.Close(testkit.Patience)
	called := false
	s.Write(logfile.Line{App: "web", Worker: 1, Stream: "stdout", Text: "late"}, func() { called = true })
	if !called {
		t.Error("alongside not called after Close")
	}
	if _, err := s.Reopen(context.Background()); err != logfile.ErrClosed {
		t.Errorf("Reopen after Close: %v", err)
	}
	if _, err := s.Tail(context.Background(), "web", 0, 1, nil); err != logfile.ErrClosed {
		t.Errorf("Tail after Close: %v", err)
	}
	if got := readFile(t, path); got != "" {
		t.Errorf("web.log has %q", got)
	}
}
