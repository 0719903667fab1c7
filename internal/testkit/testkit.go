// Package testkit holds the helpers that paddock's tests in several
// packages share: a buffer that a process writes while the test reads it,
// polling for a condition with a deadline that only bounds a failure, the
// open descriptors of a process, running the test binary as another user,
// and a few sockets in awkward states. It is imported by _test.go files
// only.
//
// Every helper that can fail takes a testing.TB and fails the test itself
// (t.Fatal), from the goroutine running the test; none sleeps to wait for
// something that it could poll for instead.
package testkit

import (
	"bytes"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Patience bounds every wait for something that must happen: it is long
// enough for a loaded 2-core machine, and only a failing test waits that
// long.
const Patience = 60 * time.Second

// pollInterval is how often WaitFor checks its condition.
const pollInterval = 10 * time.Millisecond

// WaitFor polls cond until it returns true, and fails the test, naming
// what it waited for, when that takes longer than Patience. cond runs in
// the calling goroutine.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(Patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", Patience, what)
		}
		time.Sleep(pollInterval)
	}
}

// Buffer is a bytes.Buffer that one goroutine (a command's output copier,
// a logger) may write while another reads it. The zero value is an empty
// buffer ready to use; its methods are safe for concurrent use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p to the buffer; it never fails.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns a copy of what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// WaitFor waits until what was written holds want, and fails the test,
// showing what it holds, when that takes longer than Patience.
func (b *Buffer) WaitFor(t testing.TB, want string) {
	t.Helper()
	deadline := time.Now().Add(Patience)
	for {
		s := b.String()
		if strings.Contains(s, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %q; written:\n%s", Patience, want, s)
		}
		time.Sleep(pollInterval)
	}
}

// HoldForks keeps this process from forking until release is called: a
// test that holds a file open for writing calls it before opening the file
// and releases after closing it. A child holds its parent's descriptors
// from fork until exec closes them, and during that moment the file counts
// as open for writing: paddock's manifest reader, which refuses a file a
// writer still has open, would refuse it after the test closed it. While
// it holds them, the test must not wait for anything that forks (a worker
// starting), or both wait for ever.
func HoldForks() (release func()) {
	syscall.ForkLock.RLock()
	return syscall.ForkLock.RUnlock
}

// WriteFile is os.WriteFile for a test whose process starts other
// processes at the same time (parallel tests, a supervisor's workers): no
// process forked meanwhile inherits the open descriptor (see HoldForks).
func WriteFile(name string, data []byte, perm os.FileMode) error {
	defer HoldForks()()
	return os.WriteFile(name, data, perm)
}
