package watch

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/paddock-sh/paddock/internal/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const debounce = 100 * time.Millisecond

// watching runs a Watcher over paths; each reported change sends, on the
// returned channel, the content of read (a file) at that moment.
func watching(t *testing.T, read string, paths ...string) <-chan string {
	t.Helper()
	changes := make(chan string, 100)
	ready := make(chan struct{})
	w := &Watcher{Paths: paths, Debounce: debounce, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Ready: func() { close(ready) }}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	ended := make(chan struct{})
	wg.Go(func() {
		defer close(ended)
		if err := w.Run(ctx, func() {
			b, _ := os.ReadFile(read)
			changes <- string(b)
		}); err != nil {
			t.Error(err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	// The watches are in place before the test touches the files.
	select {
	case <-ready:
	case <-ended:
		t.Fatal("the watcher ended before it was ready")
	case <-time.After(60 * time.Second):
		t.Fatal("the watcher never became ready")
	}
	return changes
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// expect waits for one reported change and checks the content seen then.
func expect(t *testing.T, changes <-chan string, want string) {
	t.Helper()
	select {
	case got := <-changes:
		if got != want {
			t.Fatalf("change reported while the file held %q, want %q", got, want)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("no change reported")
	}
}

// expectEdited is expect after an edit made of several steps that took
// took: if the machine stalled the edit for about the debounce, the watcher
// may rightly have reported a state in between, and reports before the
// one wanted are let pass.
func expectEdited(t *testing.T, changes <-chan string, want string, took time.Duration) {
	t.Helper()
	if took < debounce/2 {
		expect(t, changes, want)
		return
	}
	deadline := time.After(60 * time.Second)
	for {
		select {
		case got := <-changes:
			if got == want {
				return
			}
			t.Logf("the edit took %s, against a debounce of %s: a change reported with %q in between", took, debounce, got)
		case <-deadline:
			t.Fatalf("no change reported with %q", want)
		}
	}
}

// quiet checks that no change is reported for several debounce intervals.
func quiet(t *testing.T, changes <-chan string) {
	t.Helper()
	select {
	case got := <-changes:
		t.Fatalf("unexpected change reported (file: %q)", got)
	case <-time.After(5 * debounce):
	}
}

func TestAtomicRename(t *testing.T) {
	dir := t.TempDir()
	m := filepath.Join(dir, "paddock.yaml")
	write(t, m, "v1")
	changes := watching(t, m, m)
	tmp := filepath.Join(dir, ".paddock.yaml.tmp")
	write(t, tmp, "v2")
	if err := os.Rename(tmp, m); err != nil {
		t.Fatal(err)
	}
	expect(t, changes, "v2")
	quiet(t, changes)
	// The watch survives the replacement: a second rename is seen too.
	write(t, tmp, "v3")
	if err := os.Rename(tmp, m); err != nil {
		t.Fatal(err)
	}
	expect(t, changes, "v3")
}

func TestTruncateAndWriteInTwoSteps(t *testing.T) {
	dir := t.TempDir()
	m := filepath.Join(dir, "paddock.yaml")
	write(t, m, "apps: {}\n")
	changes := watching(t, m, m)
	f, err := os.OpenFile(m, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("apps:\n  web:\n"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(debounce / 3) // a slow writer, still within the debounce
	if _, err := f.WriteString("    exec: /bin/true\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// One change, seen only once the file is whole.
	expect(t, changes, "apps:\n  web:\n    exec: /bin/true\n")
	quiet(t, changes)
}

func TestConfigMapSymlinkSwap(t *testing.T) {
	// The layout kubelet gives a ConfigMap volume:
	//   dir/paddock.yaml -> ..data/paddock.yaml
	//   dir/..data -> ..2026_11_26_v1
	dir := t.TempDir()
	mkVersion := func(name, content string) {
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(dir, name, "paddock.yaml"), content)
	}
	mkVersion("..2026_11_26_v1", "v1")
	if err := os.Symlink("..2026_11_26_v1", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..data/paddock.yaml", filepath.Join(dir, "paddock.yaml")); err != nil {
		t.Fatal(err)
	}
	for _, asDir := range []bool{false, true} {
		name := "file path"
		path := filepath.Join(dir, "paddock.yaml")
		if asDir {
			name, path = "directory path", dir
		}
		t.Run(name, func(t *testing.T) {
			m := filepath.Join(dir, "paddock.yaml")
			changes := watching(t, m, path)
			// kubelet's update: a new timestamped directory, a new symlink
			// renamed over ..data, the old directory removed.
			version := "..2026_11_26_" + name[:4]
			begun := time.Now()
			mkVersion(version, "new "+name)
			old, _ := os.Readlink(filepath.Join(dir, "..data"))
			if err := os.Symlink(version, filepath.Join(dir, "..data_tmp")); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
				t.Fatal(err)
			}
			if err := os.RemoveAll(filepath.Join(dir, old)); err != nil {
				t.Fatal(err)
			}
			expectEdited(t, changes, "new "+name, time.Since(begun))
		})
	}
}

func TestFilesAddedAndRemovedInDirectory(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.yaml"), "a")
	changes := watching(t, filepath.Join(dir, "a.yaml"), dir)

	write(t, filepath.Join(dir, "b.yml"), "b")
	expect(t, changes, "a")
	if err := os.Remove(filepath.Join(dir, "b.yml")); err != nil {
		t.Fatal(err)
	}
	expect(t, changes, "a")
	// Deleted, then created again.
	if err := os.Remove(filepath.Join(dir, "a.yaml")); err != nil {
		t.Fatal(err)
	}
	expect(t, changes, "")
	write(t, filepath.Join(dir, "a.yaml"), "a again")
	expect(t, changes, "a again")
	// Files that are not manifests do not count: editor swap files, other
	// documents.
	write(t, filepath.Join(dir, ".a.yaml.swp"), "x")
	write(t, filepath.Join(dir, "README.md"), "x")
	quiet(t, changes)
}

func TestManifestDirectoryRecreated(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "manifests")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	m := filepath.Join(dir, "m.yaml")
	write(t, m, "v1")
	changes := watching(t, m, dir)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	expect(t, changes, "")
	begun := time.Now()
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, m, "v2")
	expectEdited(t, changes, "v2", time.Since(begun))
	// The new directory is watched.
	write(t, m, "v3")
	expect(t, changes, "v3")
}

// watchingLogged runs a Watcher over paths with its debug log in the
// returned buffer, and returns once its watches are in place; each
// reported change sends the content of read at that moment, and counts.
func watchingLogged(t *testing.T, read string, reports *atomic.Int64, paths ...string) (<-chan string, *testkit.Buffer) {
	t.Helper()
	return watchingWith(t, &Watcher{Paths: paths, Debounce: debounce}, read, reports)
}

// watchingWith is watchingLogged for the Watcher w, whose Logger and Ready
// it sets.
func watchingWith(t *testing.T, w *Watcher, read string, reports *atomic.Int64) (<-chan string, *testkit.Buffer) {
	t.Helper()
	changes := make(chan string, 10000)
	logs := &testkit.Buffer{}
	ready := make(chan struct{})
	w.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	w.Ready = func() { close(ready) }
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := w.Run(ctx, func() {
			b, _ := os.ReadFile(read)
			if reports != nil {
				reports.Add(1)
			}
			changes <- string(b)
		}); err != nil {
			t.Error(err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatal("the watcher never got ready")
	}
	return changes, logs
}

// writerHolds is what the watcher logs when a writer holds a change back.
const writerHolds = "a writer has a manifest file open"

// TestWriterHoldingFileDelaysReport: a writer truncates the file and writes
// half of it, then holds it open for longer than the debounce: the change
// is reported once it wrote the rest and closed the file, never before.
func TestWriterHoldingFileDelaysReport(t *testing.T) {
	dir := t.TempDir()
	m := filepath.Join(dir, "paddock.yaml")
	write(t, m, "v1")
	changes, logs := watchingLogged(t, m, nil, m)
	f, err := os.OpenFile(m, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("first half, "); err != nil {
		t.Fatal(err)
	}
	// The debounce is over and the watcher found the writer: a watcher
	// without the check would have reported the half file by now.
	logs.WaitFor(t, writerHolds)
	if _, err := f.WriteString("second half"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	expect(t, changes, "first half, second half")
}

// TestWriterClosingWithoutWritingIsSeen: a writer that wrote everything,
// held the file open past the debounce, then closes it without writing
// more makes no event; the change is reported all the same.
func TestWriterClosingWithoutWritingIsSeen(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.yaml"), "v1")
	m := filepath.Join(dir, "a.yaml")
	changes, logs := watchingLogged(t, m, nil, dir)
	f, err := os.OpenFile(m, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("v2"); err != nil {
		t.Fatal(err)
	}
	logs.WaitFor(t, writerHolds)
	f.Close()
	expect(t, changes, "v2")
}

// TestContinuousEditsReportedWithinMaxWait makes edits 20ms apart, a
// stream without a quiet debounce interval, until a change is reported
// while it goes on, as it must be at the latest MaxWait after the first
// unreported edit (1000 edits, 20 s, bound a failure); then the last edit
// is reported too. MaxWait is shorter than the debounce here, so that only
// a stall of the edits for a whole second (the debounce) could make a
// report without MaxWait.
func TestContinuousEditsReportedWithinMaxWait(t *testing.T) {
	dir := t.TempDir()
	m := filepath.Join(dir, "paddock.yaml")
	write(t, m, "v0")
	var reports atomic.Int64
	changes, _ := watchingWith(t, &Watcher{Paths: []string{m}, Debounce: time.Second, MaxWait: 200 * time.Millisecond}, m, &reports)
	last := 0
	for last < 1000 && reports.Load() == 0 {
		last++
		write(t, m, fmt.Sprintf("v%d", last))
		time.Sleep(20 * time.Millisecond) // the pace of the edits
	}
	during := reports.Load()
	t.Logf("%d changes reported during the stream of %d edits", during, last)
	if during == 0 {
		t.Fatal("no change reported while the edits went on")
	}
	// The last edit is reported too.
	want := fmt.Sprintf("v%d", last)
	deadline := time.After(30 * time.Second)
	for {
		select {
		case got := <-changes:
			if got == want {
				return
			}
		case <-deadline:
			t.Fatalf("the last edit (%s) was never reported", want)
		}
	}
}
