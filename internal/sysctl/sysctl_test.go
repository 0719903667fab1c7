package sysctl

import (
	"log/slog"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/paddock-sh/paddock/internal/testkit"
)

// inNewNetns runs f on a thread of its own in a new network namespace,
// where net.ipv4.tcp_migrate_req starts at 0 and the host's is untouched.
// The thread is never given back to the runtime: it ends with f.
func inNewNetns(t *testing.T, f func()) {
	t.Helper()
	testkit.NeedRoot(t, "for a network namespace of its own")
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // no Unlock: the thread dies with the goroutine
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		defer close(errc)
		f()
	}()
	if err := <-errc; err != nil {
		t.Skipf("unshare(CLONE_NEWNET): %v", err)
	}
}

// TestEnableMigration: in a namespace where the setting is 0,
// EnableMigration turns it on and logs the old and the new value once; a
// second call finds it on and writes and logs nothing.
func TestEnableMigration(t *testing.T) {
	var logs testkit.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	var before, after, second bool
	var errs [4]error
	inNewNetns(t, func() {
		before, errs[0] = Migration()
		_, errs[1] = EnableMigration(logger)
		after, errs[2] = Migration()
		second, errs[3] = EnableMigration(logger)
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if before || !after || !second {
		t.Errorf("migration before %v, after %v, second call %v; want false, true, true", before, after, second)
	}
	got := logs.String()
	if strings.Count(got, "changed a sysctl") != 1 || !strings.Contains(got, "sysctl=net.ipv4.tcp_migrate_req old=0 new=1") {
		t.Errorf("logged %q, want one change from 0 to 1", got)
	}
}
