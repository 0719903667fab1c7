package testkit

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"
)

// OpenFDs returns the open descriptors of process pid, in increasing
// order, as /proc/PID/fd lists them. The error is the one reading the
// directory gave (fs.ErrNotExist once the process is gone).
func OpenFDs(pid int) ([]int, error) {
	entries, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "fd"))
	if err != nil {
		return nil, err
	}
	fds := make([]int, 0, len(entries))
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil {
			fds = append(fds, fd)
		}
	}
	slices.Sort(fds)
	return fds, nil
}

// NumFDs returns how many descriptors this process has open, for a test
// that checks it leaks none.
func NumFDs(t testing.TB) int {
	t.Helper()
	fds, err := OpenFDs(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	return len(fds)
}

// WaitFDs waits until process pid has exactly the descriptors want, and
// fails the test when it still has others after Patience: a program that
// is starting may hold one for a moment (the dynamic loader does), a leaked
// one stays.
func WaitFDs(t testing.TB, pid int, want []int) {
	t.Helper()
	deadline := time.Now().Add(Patience)
	for {
		fds, err := OpenFDs(pid)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Equal(fds, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d has descriptors %v, want %v", pid, fds, want)
		}
		time.Sleep(pollInterval)
	}
}

// DirNames returns the names in directory dir, sorted: for a test that
// checks what was created or removed there.
func DirNames(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names
}
