package unixsock

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/paddock-sh/paddock/internal/testkit"
)

// inode returns the inode of the file at path.
func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func TestListenNewPathHasItsMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	s, err := Listen(path, Options{Mode: 0o640})
	if err != nil {
		t.Fatal(err)
	}
	defer s.File.Close()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want a socket with 0640", fi.Mode())
	}
	if s.Replaced {
		t.Error("Replaced set on a new path")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("the temporary directory was left behind: %v", entries)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("the socket does not accept: %v", err)
	}
	c.Close()
}

// TestListenAddToUmask: with AddToUmask the socket file has the mode
// bind(2) gives it, 0777 less the umask, with Mode's bits added (Node's
// readableAll, writableAll); the umask here is an unusual one, so that the
// mode cannot be a constant. The tests of this package do not run in
// parallel: the umask is the process's.
func TestListenAddToUmask(t *testing.T) {
	old := unix.Umask(0o027)
	defer unix.Umask(old)
	for _, tt := range []struct {
		add, want os.FileMode
	}{
		{0, 0o750},
		{0o444, 0o754},
		{0o222, 0o772},
		{0o666, 0o776},
	} {
		t.Run(fmt.Sprintf("%04o", tt.add), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.sock")
			s, err := Listen(path, Options{Mode: tt.add, AddToUmask: true})
			if err != nil {
				t.Fatal(err)
			}
			defer s.File.Close()
			fi, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != tt.want {
				t.Errorf("mode %04o under umask 0027 adding %04o, want %04o", fi.Mode().Perm(), tt.add, tt.want)
			}
		})
	}
}

func TestListenReplacesOnlyStaleSockets(t *testing.T) {
	t.Run("stale", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "s.sock")
		testkit.StaleUnixSocket(t, path)
		s, err := Listen(path, Options{Mode: 0o600})
		if err != nil {
			t.Fatal(err)
		}
		defer s.File.Close()
		if !s.Replaced {
			t.Error("Replaced not set after removing a stale socket")
		}
	})
	t.Run("accepting", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "s.sock")
		ln, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		ino := inode(t, path)
		_, err = Listen(path, Options{Mode: 0o600})
		if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), path) {
			t.Fatalf("Listen on a live socket: %v, want ErrInUse naming %s", err, path)
		}
		if inode(t, path) != ino {
			t.Error("the live socket was replaced")
		}
	})
	t.Run("full backlog", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "s.sock")
		testkit.BusyUnixSocket(t, path)
		ino := inode(t, path)
		_, err := Listen(path, Options{Mode: 0o600})
		if !errors.Is(err, ErrInUse) || !errors.Is(err, unix.EAGAIN) || !strings.Contains(err.Error(), path) {
			t.Fatalf("Listen on a busy socket: %v, want ErrInUse (EAGAIN) naming %s", err, path)
		}
		if inode(t, path) != ino {
			t.Error("the busy socket was replaced")
		}
	})
	t.Run("regular file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "s.sock")
		if err := os.WriteFile(path, []byte("keep me"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Listen(path, Options{Mode: 0o600})
		if !errors.Is(err, ErrNotSocket) || !strings.Contains(err.Error(), path) {
			t.Fatalf("Listen on a regular file: %v, want ErrNotSocket naming %s", err, path)
		}
		if b, _ := os.ReadFile(path); string(b) != "keep me" {
			t.Error("the regular file was changed")
		}
	})
	t.Run("owner refused", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "s.sock")
		testkit.StaleUnixSocket(t, path)
		refuse := errors.New("not yours")
		_, err := Listen(path, Options{CheckOwner: func(uint32) error { return refuse }})
		if !errors.Is(err, refuse) {
			t.Fatalf("Listen with CheckOwner refusing: %v", err)
		}
		if _, err := os.Lstat(path); err != nil {
			t.Errorf("the refused socket was removed: %v", err)
		}
	})
}

// TestListenLongPath binds where the temporary name cannot fit a socket
// address, and probes a stale socket at such a path.
func TestListenLongPath(t *testing.T) {
	dir := t.TempDir()
	for len(dir) < 120 {
		dir = filepath.Join(dir, strings.Repeat("d", 20))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "s.sock")
	s, err := Listen(path, Options{Mode: 0o600})
	if err != nil {
		t.Fatalf("Listen on a %d-byte path: %v", len(path), err)
	}
	if err := Probe(path); err != nil {
		t.Fatalf("probing the live socket: %v", err)
	}
	if _, err := Listen(path, Options{Mode: 0o600}); !errors.Is(err, ErrInUse) {
		t.Fatalf("second Listen: %v, want ErrInUse", err)
	}
	s.File.Close()
	s2, err := Listen(path, Options{Mode: 0o600})
	if err != nil {
		t.Fatalf("Listen over the stale long-path socket: %v", err)
	}
	defer s2.File.Close()
	if !s2.Replaced {
		t.Error("the stale socket was not reported replaced")
	}
}

// TestListenConcurrently starts many binders on one path at once: exactly
// one wins.
func TestListenConcurrently(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	const n = 8
	var wg sync.WaitGroup
	socks := make([]*Socket, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { socks[i], errs[i] = Listen(path, Options{Mode: 0o600}) })
	}
	wg.Wait()
	won := 0
	for i := range n {
		if errs[i] == nil {
			won++
			defer socks[i].File.Close()
		} else if !errors.Is(errs[i], ErrInUse) {
			t.Errorf("binder %d: %v, want ErrInUse", i, errs[i])
		}
	}
	if won != 1 {
		t.Fatalf("%d binders won, want 1: %v", won, errs)
	}
}

func TestUnlinkRemovesOnlyItsOwnSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	s, err := Listen(path, Options{Mode: 0o600})
	if err != nil {
		t.Fatal(err)
	}
	s.File.Close()
	// Another process took the name over meanwhile.
	os.Remove(path)
	s2, err := Listen(path, Options{Mode: 0o600})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.File.Close()
	s.Unlink()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("Unlink removed another socket: %v", err)
	}
	s2.Unlink()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Unlink left its own socket: %v", err)
	}
}

func ExampleListen() {
	path := filepath.Join(os.TempDir(), fmt.Sprintf("unixsock-example-%d.sock", os.Getpid()))
	s, err := Listen(path, Options{Mode: 0o660})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Unlink()
	defer s.File.Close()
	fmt.Println("replaced a stale socket:", s.Replaced)
	// Output: replaced a stale socket: false
}
