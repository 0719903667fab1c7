package control

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/paddock-sh/paddock/internal/testkit"
)

// TestListenModeWhateverUmask: the control socket is private to its owner
// (mode 0600) even when the umask would let everyone in.
func TestListenModeWhateverUmask(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "c.sock")
	ln, err := Listen(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("control socket mode %v, want a socket with mode 0600", fi.Mode())
	}
}

// TestListenLeavesAnotherUsersSocket: a socket file of another user at the
// path (here nobody's, stale: nothing listens) is never taken over, not
// even by a supervisor run as root; Listen names the owner and the file
// stays as it was.
func TestListenLeavesAnotherUsersSocket(t *testing.T) {
	testkit.NeedRoot(t, "to make a socket file that belongs to another user (nobody)")
	path := filepath.Join(t.TempDir(), "c.sock")
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	syscall.Close(fd) // stale: bound, never listening, closed
	if err := os.Lchown(path, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	var before syscall.Stat_t
	if err := syscall.Lstat(path, &before); err != nil {
		t.Fatal(err)
	}
	ln, err := Listen(path, slog.New(slog.DiscardHandler))
	if err == nil {
		ln.Close()
		t.Fatal("Listen took over a socket of uid 65534")
	}
	if !strings.Contains(err.Error(), "uid 65534") {
		t.Errorf("Listen: %v, want an error naming uid 65534", err)
	}
	var after syscall.Stat_t
	if err := syscall.Lstat(path, &after); err != nil || after.Ino != before.Ino {
		t.Errorf("the socket file of uid 65534 was replaced or removed (%v)", err)
	}
}
