package control

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/paddock-sh/paddock/internal/unixsock"
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
// The socket is created by unixsock.Listen with mode 0600 whatever the
// umask: bound in a private temporary directory, given its mode, then
// linked into place (link fails if the name was taken meanwhile, so two
// supervisors starting together cannot both win). A socket left by a dead
// supervisor (connecting to it is refused) is replaced, and logged; a live
// one (it accepts, or its queue is full, or connecting fails otherwise)
// makes Listen fail with ErrInUse. A socket file of another user (not
// root) is never talked to nor taken over. Anything else at path (a
// regular file, a directory) is left alone and reported. Closing the
// listener removes the socket if it is still ours.
func Listen(path string, logger *slog.Logger) (net.Listener, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	uid := uint32(os.Getuid())
	sock, err := unixsock.Listen(path, unixsock.Options{
		Mode: 0o600,
		CheckOwner: func(owner uint32) error {
			if owner == uid || owner == 0 {
				return nil
			}
			// In a shared directory such as /tmp, someone else may hold
			// the name: never talk to it, never take it over.
			return fmt.Errorf("it belongs to uid %d, not to this user or root; give this supervisor another --socket", owner)
		},
	})
	switch {
	case errors.Is(err, unixsock.ErrInUse):
		hint := "stop it first, or give this one another --socket"
		var inUse *unixsock.InUseError
		if errors.As(err, &inUse) && inUse.Err != nil {
			hint = fmt.Sprintf("connecting to it gave %q; %s", inUse.Err, hint)
		}
		return nil, fmt.Errorf("control socket %s: %w (%s)", path, ErrInUse, hint)
	case err != nil:
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if sock.Replaced {
		logger.Info("replaced a stale control socket left by a supervisor that is gone", "socket", path)
	}
	ln, err := net.FileListener(sock.File)
	sock.File.Close() // ln has its own descriptor
	if err != nil {
		sock.Unlink()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	return &credListener{UnixListener: ln.(*net.UnixListener), sock: sock, logger: logger, uid: uid}, nil
}

// credListener accepts only peers with the supervisor's uid or root.
type credListener struct {
	*net.UnixListener
	sock   *unixsock.Socket
	uid    uint32
	logger *slog.Logger
	closed sync.Once
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
	l.closed.Do(l.sock.Unlink)
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
