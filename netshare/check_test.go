package netshare

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/paddock-sh/paddock/internal/testkit"
	"github.com/paddock-sh/paddock/internal/unixsock"
	"github.com/paddock-sh/paddock/manifest"
)

func parseListen(t *testing.T, s string) manifest.Listen {
	t.Helper()
	l, err := manifest.ParseListen(s, "")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestCheckTCP: Check reports an address another socket listens on as in
// use, and leaves a free address free: nothing stays bound or open.
func TestCheckTCP(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	fds := testkit.NumFDs(t) // the runtime's poller is open by now
	taken := parseListen(t, held.Addr().String())
	for _, reuseport := range []bool{false, true} {
		err := Check(taken, reuseport)
		var be *BindError
		if !errors.Is(err, ErrInUse) || !errors.Is(err, unix.EADDRINUSE) || !errors.As(err, &be) || be.Listen != taken {
			t.Errorf("Check(%s, reuseport %v) = %v, want a BindError in use", taken.Raw, reuseport, err)
		}
	}
	if err := Check(parseListen(t, "127.0.0.1:0"), false); err != nil {
		t.Errorf("Check of port 0: %v", err)
	}

	// A free port: one just released (another process could take it
	// meanwhile, so a few are tried).
	var free manifest.Listen
	for range 5 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		free = parseListen(t, addr)
		if err = Check(free, false); err == nil {
			break
		}
		t.Logf("Check(%s): %v", addr, err)
	}
	// Check closed what it bound: the port can be listened on again.
	again, err := net.Listen("tcp", free.Address)
	if err != nil {
		t.Fatalf("after Check(%s): %v", free.Raw, err)
	}
	again.Close()
	if n := testkit.NumFDs(t); n != fds {
		t.Errorf("%d descriptors open, %d before", n, fds)
	}
}

// TestCheckUnix: Check judges a unix path as unixsock.Listen would, and
// removes or creates nothing.
func TestCheckUnix(t *testing.T) {
	dir := t.TempDir()

	// Nothing there: free, and still nothing there.
	missing := parseListen(t, "unix:"+filepath.Join(dir, "missing.sock"))
	if err := Check(missing, false); err != nil {
		t.Errorf("Check(%s) = %v", missing.Raw, err)
	}

	// A live socket: in use.
	livePath := filepath.Join(dir, "live.sock")
	live, err := net.Listen("unix", livePath)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	fds := testkit.NumFDs(t) // the runtime's poller is open by now
	if err := Check(parseListen(t, "unix:"+livePath), false); !errors.Is(err, ErrInUse) || !errors.Is(err, unixsock.ErrInUse) {
		t.Errorf("Check(live socket) = %v", err)
	}

	// A stale socket (nobody listens: ECONNREFUSED): free, as Acquire
	// would replace it, but Check leaves it.
	stalePath := filepath.Join(dir, "stale.sock")
	testkit.StaleUnixSocket(t, stalePath)
	if err := Check(parseListen(t, "unix:"+stalePath), false); err != nil {
		t.Errorf("Check(stale socket) = %v", err)
	}

	// Something else than a socket: in use, never replaced.
	filePath := filepath.Join(dir, "file.sock")
	if err := os.WriteFile(filePath, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Check(parseListen(t, "unix:"+filePath), false); !errors.Is(err, ErrInUse) || !errors.Is(err, unixsock.ErrNotSocket) {
		t.Errorf("Check(regular file) = %v", err)
	}

	if n := testkit.NumFDs(t); n != fds {
		t.Errorf("%d descriptors open, %d before", n, fds)
	}
	live.Close()
	names := testkit.DirNames(t, dir)
	if len(names) != 2 || names[0] != "file.sock" || names[1] != "stale.sock" {
		t.Errorf("the directory holds %q, want [file.sock stale.sock]", names)
	}
}
