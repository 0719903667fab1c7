// Package unixsock binds listening unix stream sockets at a path without
// ever taking over a live one: it is the one binder behind both the
// sockets that `listen: unix:...` asks for (netshare) and paddock's control
// socket (control).
//
// A socket file already at the path is probed with a connect(2): only
// ECONNREFUSED, which the kernel returns when nobody listens on the socket,
// makes it stale and replaceable. Any other answer (a connection, EAGAIN
// from a live server whose backlog is full, EACCES, ...) means it may be
// live, and Listen fails naming the path. A new socket is bound in a private
// temporary directory beside the path, given its mode, set listening, then
// link(2)ed into place, so that it is never reachable with looser
// permissions or before it listens, and so that two binders racing for one
// path cannot both win (link fails with EEXIST where rename would replace).
package unixsock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// ErrInUse is wrapped by the error Listen returns when a socket at the path
// may be live: it accepted the probe's connection or refused it with
// something else than ECONNREFUSED.
var ErrInUse = errors.New("a live socket is already at this path")

// ErrNotSocket is wrapped by the error Listen returns when something other
// than a socket (a regular file, a directory, a symbolic link) is at the
// path; it is left untouched.
var ErrNotSocket = errors.New("the path exists and is not a socket; not replacing it")

// maxSunPath is the longest path a sockaddr_un holds, without its NUL.
const maxSunPath = 107

// Options configure Listen.
type Options struct {
	// Mode is the permission of the socket file, whatever the umask (the
	// zero value, 0000, lets only root connect); with AddToUmask, the
	// bits added to what the umask leaves.
	Mode os.FileMode
	// AddToUmask makes the socket file's permission the one bind(2)
	// gives it (0777 less the process's umask) with Mode's bits added, as
	// libuv's uv_pipe_chmod does for Node's listen(path) with readableAll
	// or writableAll, instead of exactly Mode.
	AddToUmask bool
	// Backlog is the listen(2) backlog; the kernel caps it at
	// net.core.somaxconn. Zero means 4096.
	Backlog int
	// CheckOwner, when not nil, is given the owner of a socket file found
	// at the path before it is probed; an error refuses the path (and is
	// returned, wrapped) without talking to the socket nor removing it.
	// The control socket uses it so that a name in a shared directory held
	// by another user is never taken over.
	CheckOwner func(uid uint32) error
}

// Socket is a listening unix socket bound by Listen.
type Socket struct {
	// File is the listening socket: blocking, close-on-exec. The caller
	// owns it; closing it does not remove the path (see Unlink).
	File *os.File
	// Path is where the socket was linked.
	Path string
	// Replaced is true when a stale socket file (nothing listened on it)
	// was removed to make room: callers log it.
	Replaced bool
	// handle is an O_PATH descriptor of the socket file: while it is open
	// the file's inode number cannot be given to another file, so dev and
	// ino identify it.
	handle   *os.File
	dev, ino uint64
}

// Listen creates a listening unix stream socket at path. It fails without
// touching anything when something else than a socket is at path
// (ErrNotSocket), when a socket there may be live (ErrInUse), or when
// opts.CheckOwner refuses the existing socket's owner. A stale socket is
// removed first and reported in Socket.Replaced. Errors name the path.
//
// The socket is bound in a new temporary directory created beside path
// (so path's directory must be writable, as it must be to create the
// socket at all). When that temporary name would not fit the 107 bytes of
// a socket address, the socket is bound through /proc/self/fd/N/, N being
// a descriptor of the temporary directory, which is short whatever the
// path's length.
//
// Listen is safe for concurrent use; among concurrent calls for one path
// at most one succeeds.
func Listen(path string, opts Options) (*Socket, error) {
	if opts.Backlog == 0 {
		opts.Backlog = 4096
	}
	replaced, err := makeRoom(path, opts)
	if err != nil {
		return nil, err
	}
	tmpDir, err := os.MkdirTemp(filepath.Dir(path), ".paddock-sock-")
	if err != nil {
		return nil, fmt.Errorf("unix socket %s: %w", path, err)
	}
	defer os.RemoveAll(tmpDir)
	dir, err := unix.Open(tmpDir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("unix socket %s: %w", path, err)
	}
	defer unix.Close(dir)
	const name = "s"
	b, err := bindIn(dir, tmpDir, name, opts)
	if err != nil {
		return nil, fmt.Errorf("unix socket %s: %w", path, err)
	}
	r, err := link(dir, name, path, opts)
	if err != nil {
		unix.Close(b.fd)
		unix.Close(b.handle)
		return nil, err
	}
	return &Socket{File: os.NewFile(uintptr(b.fd), "unix "+path), Path: path, Replaced: replaced || r,
		handle: os.NewFile(uintptr(b.handle), "inode "+path), dev: uint64(b.st.Dev), ino: b.st.Ino}, nil
}

// bound is a listening socket bound as name in a private directory.
type bound struct {
	fd int // the listening socket
	// handle is an O_PATH descriptor of the socket file, so that its
	// inode number is not reused while paddock may remove the path
	// (Unlink); st is its stat.
	handle int
	st     unix.Stat_t
}

// bindIn binds a socket as name in the directory dir (open as an O_PATH
// descriptor, at dirPath), gives it opts' mode and backlog, and listens:
// listening before it is reachable, a client never finds it refusing, and
// another binder's probe never takes it for stale.
func bindIn(dir int, dirPath, name string, opts Options) (b bound, err error) {
	bindName := filepath.Join(dirPath, name)
	if len(bindName) > maxSunPath {
		bindName = "/proc/self/fd/" + strconv.Itoa(dir) + "/" + name
	}
	b.fd, err = unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return b, err
	}
	b.handle = -1
	defer func() {
		if err != nil {
			unix.Close(b.fd)
			if b.handle >= 0 {
				unix.Close(b.handle)
			}
		}
	}()
	if err := unix.Bind(b.fd, &unix.SockaddrUnix{Name: bindName}); err != nil {
		return b, fmt.Errorf("bind: %w", err)
	}
	mode := uint32(opts.Mode.Perm())
	if opts.AddToUmask {
		var st unix.Stat_t
		if err := unix.Fstatat(dir, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return b, fmt.Errorf("stat: %w", err)
		}
		mode |= st.Mode & 0o777
	}
	if err := unix.Fchmodat(dir, name, mode, 0); err != nil {
		return b, fmt.Errorf("chmod: %w", err)
	}
	if b.handle, err = unix.Openat(dir, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0); err != nil {
		b.handle = -1
		return b, err
	}
	if err := unix.Fstat(b.handle, &b.st); err != nil {
		return b, err
	}
	if err := unix.Listen(b.fd, opts.Backlog); err != nil {
		return b, fmt.Errorf("listen: %w", err)
	}
	return b, nil
}

// link links the socket file name of dir into place at path, which fails
// if the name was taken meanwhile (so two binders cannot both win): then
// it makes room once more and tries again, once. replaced says a stale
// socket was removed from path then.
func link(dir int, name, path string, opts Options) (replaced bool, err error) {
	for attempt := 0; ; attempt++ {
		err := unix.Linkat(dir, name, unix.AT_FDCWD, path, 0)
		if err == nil {
			return replaced, nil
		}
		if err != unix.EEXIST || attempt > 0 {
			return false, fmt.Errorf("unix socket %s: link: %w", path, err)
		}
		// Someone put something at path since it was cleared: look
		// again, once.
		r, err := makeRoom(path, opts)
		if err != nil {
			return false, err
		}
		replaced = replaced || r
	}
}

// makeRoom makes room at path: nothing there, or a stale socket it removes
// (reported by its result). Anything else is an error naming path.
func makeRoom(path string, opts Options) (removed bool, err error) {
	var st unix.Stat_t
	err = unix.Lstat(path, &st)
	if err == unix.ENOENT {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("unix socket %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return false, fmt.Errorf("unix socket %s: %w", path, ErrNotSocket)
	}
	if opts.CheckOwner != nil {
		if err := opts.CheckOwner(st.Uid); err != nil {
			return false, fmt.Errorf("unix socket %s: %w", path, err)
		}
	}
	switch err := Probe(path); {
	case err == unix.ENOENT:
		return false, nil // removed meanwhile: link will see what is there now
	case err != unix.ECONNREFUSED:
		return false, &InUseError{Path: path, Err: err}
	}
	// Stale. Remove it only if it is still the file probed.
	var now unix.Stat_t
	if unix.Lstat(path, &now) != nil || now.Dev != st.Dev || now.Ino != st.Ino {
		return false, nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("unix socket %s: removing the stale socket: %w", path, err)
	}
	return true, nil
}

// InUseError is a socket at Path that may be live. It matches ErrInUse
// with errors.Is.
type InUseError struct {
	Path string
	// Err is what connect(2) said: nil when it connected, else its
	// errno (EAGAIN from a live server whose backlog is full, ...).
	Err error
}

func (e *InUseError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("unix socket %s: %v (it accepted a connection)", e.Path, ErrInUse)
	}
	return fmt.Sprintf("unix socket %s: %v (connecting to it gave %q, not %q)", e.Path, ErrInUse, e.Err, unix.ECONNREFUSED)
}

// Is makes errors.Is(err, ErrInUse) true.
func (e *InUseError) Is(target error) bool { return target == ErrInUse }

// Unwrap returns the connect error, if any.
func (e *InUseError) Unwrap() error { return e.Err }

// Probe connects to the unix socket at path without blocking and closes
// the connection at once. It returns nil when it connected, else connect's
// errno: ECONNREFUSED means nobody listens on it (stale); EAGAIN, a live
// server whose accept queue is full. A path too long for a socket address
// is reached through a descriptor of its directory.
func Probe(path string) error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	name := path
	if len(name) > maxSunPath {
		dir, err := unix.Open(filepath.Dir(path), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(dir)
		name = "/proc/self/fd/" + strconv.Itoa(dir) + "/" + filepath.Base(path)
	}
	for {
		err = unix.Connect(fd, &unix.SockaddrUnix{Name: name})
		if err != unix.EINTR {
			return errnoOf(err)
		}
	}
}

// errnoOf returns err as a unix.Errno where it is one (nil stays nil).
func errnoOf(err error) error {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return err
}

// Unlink removes the socket file at s.Path if it is still the one Listen
// linked there (another process may have replaced it since), and lets go
// of paddock's handle on it. It does not close s.File. Calls after the
// first do nothing. Unlink is not safe for concurrent use.
func (s *Socket) Unlink() {
	if s.handle == nil {
		return
	}
	var st unix.Stat_t
	if unix.Lstat(s.Path, &st) == nil && uint64(st.Dev) == s.dev && st.Ino == s.ino {
		os.Remove(s.Path)
	}
	s.handle.Close()
	s.handle = nil
}
