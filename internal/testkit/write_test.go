package testkit

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/paddock-sh/paddock/internal/lease"
)

// TestWriteFileNotInheritedByForks: files written with WriteFile while
// other goroutines start processes are never seen open for writing once
// written (a process forked meanwhile does not hold the descriptor until
// its exec), as paddock's manifest reader checks with a lease.
func TestWriteFileNotInheritedByForks(t *testing.T) {
	dir := t.TempDir()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := exec.Command("/bin/true").Run(); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()
	for i := range 300 {
		path := filepath.Join(dir, "m.yaml")
		if err := WriteFile(path, []byte("apps: {}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := lease.Check(path); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		os.Remove(path)
	}
}
