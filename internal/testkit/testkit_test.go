package testkit

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMain lets the test binary play a child that prints its uid and gid,
// and keeps descriptors this process inherited from reaching children (as
// paddock does), so that TestWaitFDs knows what a child has.
func TestMain(m *testing.M) {
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if os.Getenv("TESTKIT_HELPER") == "id" {
		fmt.Printf("%d %d\n", os.Getuid(), os.Getgid())
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestWaitForReturnsOnceTrue(t *testing.T) {
	calls := 0
	WaitFor(t, "the third call", func() bool { calls++; return calls == 3 })
	if calls != 3 {
		t.Errorf("cond called %d times, want 3", calls)
	}
}

func TestBufferConcurrentWrites(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				b.Write([]byte("ab\n"))
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if got := b.String(); got != strings.Repeat("ab\n", 800) {
		t.Errorf("buffer holds %d bytes, lines interleaved or lost: %.40q", len(got), got)
	}
}

func TestBufferWaitFor(t *testing.T) {
	var b Buffer
	go func() {
		for _, s := range []string{"one ", "two ", "three"} {
			b.Write([]byte(s))
		}
	}()
	b.WaitFor(t, "two three")
	if got := b.String(); got != "one two three" {
		t.Errorf("buffer holds %q", got)
	}
}

func TestOpenFDs(t *testing.T) {
	before := NumFDs(t)
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	fd := int(f.Fd())
	fds, err := OpenFDs(os.Getpid())
	if err != nil || !slices.Contains(fds, fd) || !slices.IsSorted(fds) {
		t.Errorf("OpenFDs = %v, %v; want a sorted list holding %d", fds, err, fd)
	}
	if n := NumFDs(t); n != before+1 {
		t.Errorf("NumFDs = %d with one more open, was %d", n, before)
	}
	f.Close()

	cmd := exec.Command("/bin/sh", "-c", "exit 0")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenFDs(cmd.Process.Pid); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("OpenFDs of a reaped process: %v, want not found", err)
	}
}

func TestWaitFDs(t *testing.T) {
	cmd := exec.Command("/bin/sleep", "3600")
	cmd.ExtraFiles = []*os.File{Pipe(t)}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	WaitFDs(t, cmd.Process.Pid, []int{0, 1, 2, 3})
}

// TestPublicCopyAsUser: the copy of the test binary in a public directory
// runs as nobody, which the original, in go test's private directory,
// cannot.
func TestPublicCopyAsUser(t *testing.T) {
	NeedRoot(t, "to run a command as nobody")
	dir := PublicDir(t)
	bin := PublicCopy(t, dir)
	if fi, err := os.Stat(bin); err != nil || fi.Mode().Perm() != 0o755 || filepath.Dir(bin) != dir {
		t.Fatalf("PublicCopy = %s, %v, %v; want mode 0755 in %s", bin, fi.Mode(), err, dir)
	}
	cmd := AsUser(exec.Command(bin), Nobody)
	cmd.Env = append(os.Environ(), "TESTKIT_HELPER=id")
	out, err := cmd.Output()
	if want := strconv.Itoa(Nobody) + " " + strconv.Itoa(Nobody) + "\n"; err != nil || string(out) != want {
		t.Errorf("the copy says %q (%v), want %q", out, err, want)
	}
}

func TestBusyUnixSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "busy.sock")
	BusyUnixSocket(t, path)
	c, err := net.Dial("unix", path)
	if err == nil {
		c.Close()
	}
	if !errors.Is(err, unix.EAGAIN) {
		t.Errorf("connecting to the busy socket: %v, want EAGAIN", err)
	}
}

func TestPipe(t *testing.T) {
	w := Pipe(t)
	if _, err := w.Write([]byte("x")); err != nil {
		t.Errorf("write to the pipe: %v", err)
	}
}

func TestStaleUnixSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stale.sock")
	StaleUnixSocket(t, path)
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Type() != fs.ModeSocket {
		t.Fatalf("%s: %v, %v; want a socket file", path, fi, err)
	}
	c, err := net.Dial("unix", path)
	if err == nil {
		c.Close()
	}
	if !errors.Is(err, unix.ECONNREFUSED) {
		t.Errorf("connecting to the stale socket: %v, want ECONNREFUSED", err)
	}
}

func TestDirNames(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"b", "a", "c"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got := DirNames(t, dir); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("DirNames = %v, want [a b c]", got)
	}
}

func TestListenerFile(t *testing.T) {
	f, addr := ListenerFile(t)
	ln, err := net.FileListener(f)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if ln.Addr().String() != addr.String() {
		t.Errorf("the file listens on %s, ListenerFile says %s", ln.Addr(), addr)
	}
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatalf("dial the listener's address: %v", err)
	}
	c.Close()
}
