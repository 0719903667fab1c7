package watch

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const debounce = 100 * time.Millisecond

// watching runs a Watcher over paths; each reported change sends, on the
// returned channel, the content of read (a file) at that moment.
func watching(t *testing.T, read string, paths ...string) <-chan string {
	t.Helper()
	changes := make(chan string, 100)
	w := &Watcher{Paths: paths, Debounce: debounce, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	started := make(chan struct{})
	wg.Go(func() {
		close(started)
		if err := w.Run(ctx, func() {
			b, _ := os.ReadFile(read)
			changes <- string(b)
		}); err != nil {
			t.Error(err)
		}
	})
	<-started
	t.Cleanup(func() { cancel(); wg.Wait() })
	// Let the watches be set up before the test touches the files.
	time.Sleep(50 * time.Millisecond)
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
	case <-time.After(20 * time.Second):
		t.Fatal("no change reported")
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
			expect(t, changes, "new "+name)
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
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, m, "v2")
	expect(t, changes, "v2")
	// The new directory is watched.
	write(t, m, "v3")
	expect(t, changes, "v3")
}
