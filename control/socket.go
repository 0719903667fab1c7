package control

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// SocketEnv names the environment variable that gives the control socket's
// path, for `paddock run` and every client command alike.
const SocketEnv = "PADDOCK_SOCKET"

// DefaultSocketPath returns where the control socket is when neither
// --socket nor $PADDOCK_SOCKET says: $XDG_RUNTIME_DIR/paddock.sock when
// that variable is set, else /run/paddock.sock for root and
// /tmp/paddock-<uid>.sock for anyone else.
func DefaultSocketPath() string {
	if dir := os.Getenv("XDG_RUNTIME_DIR"); dir != "" {
		return filepath.Join(dir, "paddock.sock")
	}
	if os.Getuid() == 0 {
		return "/run/paddock.sock"
	}
	return "/tmp/paddock-" + strconv.Itoa(os.Getuid()) + ".sock"
}

// SocketPath resolves the socket path: flag when not empty, else
// $PADDOCK_SOCKET, else DefaultSocketPath.
func SocketPath(flag string) string {
	if flag != "" {
		return flag
	}
	if p := os.Getenv(SocketEnv); p != "" {
		return p
	}
	return DefaultSocketPath()
}

// ErrInUse is returned by Listen when another live process serves the
// socket.
var ErrInUse = errors.New("another paddock supervisor is already serving this control socket")

// Listen creates the control socket at path and returns a listener that
// hands out only connections from this process's own uid and root; others
// are refused, closed and logged with logger.
//
// The socket is created with mode 0600 whatever the umask: it is bound in
// a private temporary directory, given its mode, then linked into place
// (link fails if the name was taken meanwhile, so two supervisors starting
// together cannot both win). A socket left by a dead supervisor (nobody
// accepts on it) is replaced; a live one makes Listen fail with ErrInUse.
// Anything else at path (a regular file, a directory) is left alone and
// reported. Closing the listener removes the socket if it is still ours.
func Listen(path string, logger *slog.Logger) (net.Listener, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if err := removeStale(path, logger); err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	tmpDir, err := os.MkdirTemp(dir, ".paddock-sock-")
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	defer os.RemoveAll(tmpDir)
	tmp := filepath.Join(tmpDir, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false)
	fail := func(err error) (net.Listener, error) {
		ln.Close()
		return nil, err
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fail(fmt.Errorf("control socket: %w", err))
	}
	for attempt := 0; ; attempt++ {
		err = os.Link(tmp, path)
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrExist) || attempt > 0 {
			return fail(fmt.Errorf("control socket %s: %w", path, err))
		}
		// Someone created it since removeStale: look again, once.
		if err := removeStale(path, logger); err != nil {
			return fail(err)
		}
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fail(fmt.Errorf("control socket: %w", err))
	}
	return &credListener{UnixListener: ln, path: path, ino: st.Ino, dev: st.Dev, logger: logger,
		uid: uint32(os.Getuid())}, nil
}

// removeStale removes a socket at path that nobody accepts on, refuses a
// live one, and leaves anything that is not a socket alone.
func removeStale(path string, logger *slog.Logger) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("control socket %s: the path exists and is not a socket; not replacing it", path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != uint32(os.Getuid()) && st.Uid != 0 {
		// In a shared directory such as /tmp, someone else may hold the
		// name: never talk to it, never take it over.
		return fmt.Errorf("control socket %s belongs to uid %d, not to this user or root; give this supervisor another --socket", path, st.Uid)
	}
	conn, err := net.DialTimeout("unix", path, 2*time.Second)
	if err == nil {
		conn.Close()
		return fmt.Errorf("control socket %s: %w (stop it first, or give this one another --socket)", path, ErrInUse)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("control socket %s exists and cannot be checked: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("control socket: removing the stale socket: %w", err)
	}
	logger.Info("replaced a stale control socket left by a supervisor that is gone", "socket", path)
	return nil
}

// credListener accepts only peers with the supervisor's uid or root.
type credListener struct {
	*net.UnixListener
	path   string
	ino    uint64
	dev    uint64
	uid    uint32
	logger *slog.Logger
}

// Accept returns the next connection from an allowed peer; connections
// from other users are closed and logged.
func (l *credListener) Accept() (net.Conn, error) {
	for {
		conn, err := l.UnixListener.AcceptUnix()
		if err != nil {
			return nil, err
		}
		cred, err := PeerCred(conn)
		if err != nil {
			l.logger.Warn("control connection refused: its credentials cannot be read", "err", err)
			conn.Close()
			continue
		}
		if cred.Uid != l.uid && cred.Uid != 0 {
			l.logger.Warn("control connection refused: another user", "uid", cred.Uid, "pid", cred.Pid)
			conn.Close()
			continue
		}
		return conn, nil
	}
}

// Close stops listening and removes the socket, unless another process has
// put its own at the path since.
func (l *credListener) Close() error {
	err := l.UnixListener.Close()
	var st unix.Stat_t
	if unix.Stat(l.path, &st) == nil && st.Ino == l.ino && st.Dev == l.dev {
		os.Remove(l.path)
	}
	return err
}

// PeerCred returns the credentials of the process at the other end of a
// Unix socket connection, as the kernel recorded them when it was made.
func PeerCred(conn *net.UnixConn) (*unix.Ucred, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	return cred, credErr
}
