package control

import (
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestListenSocketMode: the control socket is 0600 whatever the umask.
func TestListenSocketMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.sock")
	old := syscall.Umask(0)
	ln, err := Listen(path, slog.New(slog.DiscardHandler))
	syscall.Umask(old)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("control socket mode %v, want a socket with 0600", fi.Mode())
	}
}

// TestListenLeavesAnotherUsersSocket: a stale socket of another user
// (not root) is neither talked to nor taken over, even by root.
func TestListenLeavesAnotherUsersSocket(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root, to give a socket to another user")
	}
	const nobody = 65534
	path := filepath.Join(t.TempDir(), "c.sock")
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close() // a socket file nobody serves: stale
	if err := os.Lchown(path, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	ln, err := Listen(path, slog.New(slog.DiscardHandler))
	if err == nil {
		ln.Close()
		t.Fatal("root took over a stale socket of uid 65534")
	}
	if !strings.Contains(err.Error(), "belongs to uid 65534") {
		t.Errorf("error %q does not say whose the socket is", err)
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil || st.Uid != nobody {
		t.Errorf("the socket was replaced or removed: uid %d, %v", st.Uid, err)
	}
}
