package manifest_test

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/paddock-sh/paddock/manifest"
)

const trueApp = "apps:\n  web:\n    exec: /bin/true\n"

// loadDir writes files (name → content) to a new directory.
func loadDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// loadReturns runs Load(paths) and fails the test if it does not return:
// the reads under test must never block. A Load that reads without bound
// (a link to /dev/zero) crashes the test binary once the heap passes
// 1 GiB, before it can hurt the machine.
func loadReturns(t *testing.T, paths ...string) (*manifest.Set, error) {
	t.Helper()
	type result struct {
		set *manifest.Set
		err error
	}
	done := make(chan result, 1)
	go func() {
		set, err := manifest.Load(paths, manifest.CurrentHost())
		done <- result{set, err}
	}()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case r := <-done:
			return r.set, r.err
		case <-deadline:
			t.Fatalf("Load(%v) blocks", paths)
			return nil, nil
		case <-time.After(10 * time.Millisecond):
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > 1<<30 {
				panic(fmt.Sprintf("Load(%v) read more than 1 GiB", paths))
			}
		}
	}
}

// wantFileError checks that err holds exactly one problem: a FileError for
// path wrapping target, whose text is text.
func wantFileError(t *testing.T, err error, path string, target error, text string) {
	t.Helper()
	errs := manifest.Errors(err)
	if len(errs) != 1 {
		t.Fatalf("errors %q, want one for %s", err, path)
	}
	var fe *manifest.FileError
	if !errors.As(errs[0], &fe) || fe.Path != path || !errors.Is(errs[0], target) {
		t.Fatalf("error %#v (%v), want a FileError for %s wrapping %v", errs[0], errs[0], path, target)
	}
	if errs[0].Error() != text {
		t.Errorf("error text %q, want %q", errs[0].Error(), text)
	}
	if manifest.IsPathError(err) {
		t.Errorf("%v counts as an unreadable path", err)
	}
}

// TestLoadZeroSymlink: a *.yaml link to /dev/zero, in a directory or named
// itself, is reported by name and never read (it used to be read until
// memory ran out).
func TestLoadZeroSymlink(t *testing.T) {
	dir := loadDir(t, map[string]string{"good.yaml": trueApp})
	zero := filepath.Join(dir, "zero.yaml")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, zero} {
		_, err := loadReturns(t, p)
		wantFileError(t, err, zero, manifest.ErrNotRegular, zero+": is a character device, not a regular file")
	}
}

// TestLoadFIFO: a FIFO named *.yaml, in a directory or named itself, is
// reported by name; nothing blocks on it (open(2) of a FIFO without a
// writer used to block the reader for ever).
func TestLoadFIFO(t *testing.T) {
	dir := loadDir(t, map[string]string{"good.yaml": trueApp})
	fifo := filepath.Join(dir, "x.yaml")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, fifo} {
		_, err := loadReturns(t, p)
		wantFileError(t, err, fifo, manifest.ErrNotRegular, fifo+": is a FIFO, not a regular file")
	}
	files, err := manifest.Files([]string{dir})
	if len(files) != 1 || files[0] != filepath.Join(dir, "good.yaml") {
		t.Errorf("Files listed %v", files)
	}
	wantFileError(t, err, fifo, manifest.ErrNotRegular, fifo+": is a FIFO, not a regular file")
}

// TestLoadStopsAtLimit: a file larger than 8 MiB is reported without being
// read: a sparse terabyte, and a file one byte over the limit.
func TestLoadStopsAtLimit(t *testing.T) {
	dir := t.TempDir()
	huge := filepath.Join(dir, "huge.yaml")
	f, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 40); err != nil {
		t.Skipf("no sparse terabyte here: %v", err)
	}
	f.Close()
	_, err = loadReturns(t, huge)
	wantFileError(t, err, huge, manifest.ErrTooLarge, huge+": is larger than 8388608 bytes: file too large")

	over := filepath.Join(dir, "over.yaml")
	atLimit := "#" + strings.Repeat("x", 8<<20-2) + "\n" // a comment of 8 MiB
	if err := os.WriteFile(over, []byte("#"+atLimit), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = loadReturns(t, over)
	wantFileError(t, err, over, manifest.ErrTooLarge, over+": is larger than 8388608 bytes: file too large")

	// At the limit exactly, the file is read.
	if err := os.WriteFile(over, []byte(atLimit), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadReturns(t, over); err != nil {
		t.Errorf("a file of 8 MiB: %.200v", err)
	}
}

// TestLoadRefusesFileOpenForWriting: a file that a process has open for
// writing may be half-written: Load reports it by name, and reads it once
// it is closed.
func TestLoadRefusesFileOpenForWriting(t *testing.T) {
	dir := loadDir(t, map[string]string{"a.yaml": trueApp})
	m := filepath.Join(dir, "m.yaml")
	f, err := os.Create(m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("apps:\n  api:\n"); err != nil {
		t.Fatal(err)
	}
	_, err = loadReturns(t, dir)
	wantFileError(t, err, m, manifest.ErrOpenForWriting, "a writer still has "+m+" open")
	if !manifest.IsOpenForWriting(err) {
		t.Errorf("IsOpenForWriting(%v) = false", err)
	}
	if _, err := f.WriteString("    exec: /bin/true\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	set, err := loadReturns(t, dir)
	if err != nil || len(set.Apps) != 2 {
		t.Fatalf("after close: %v %v", set, err)
	}
}

// TestLoadFileStates: the set tells what was read of each file, so that a
// reload can tell a file that stayed the same from one that changed.
func TestLoadFileStates(t *testing.T) {
	dir := loadDir(t, map[string]string{"a.yaml": trueApp, "b.yaml": ""})
	set, err := loadReturns(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Files) != 2 {
		t.Fatalf("Files %+v", set.Files)
	}
	a, b := set.Files[0], set.Files[1]
	fi, _ := os.Stat(filepath.Join(dir, "a.yaml"))
	if a.Path != filepath.Join(dir, "a.yaml") || a.Size != int64(len(trueApp)) || a.Sum != sha256.Sum256([]byte(trueApp)) || !a.ModTime.Equal(fi.ModTime()) {
		t.Errorf("a.yaml: %+v", a)
	}
	if b.Path != filepath.Join(dir, "b.yaml") || b.Size != 0 || b.Sum != sha256.Sum256(nil) {
		t.Errorf("b.yaml: %+v", b)
	}
	again, err := loadReturns(t, dir)
	if err != nil || !again.Files[0].Same(a) || !again.Files[1].Same(b) {
		t.Errorf("unchanged files read again: %+v, was %+v", again.Files, set.Files)
	}
	later := fi.ModTime().Add(time.Second)
	if err := os.Chtimes(filepath.Join(dir, "b.yaml"), later, later); err != nil {
		t.Fatal(err)
	}
	if again, err := loadReturns(t, dir); err != nil || again.Files[1].Same(b) {
		t.Errorf("b.yaml written again (same content, new mtime) reads as the same: %+v %v", again.Files, err)
	}
}
