// Package notify receives sd_notify(3) messages from workers: the datagram
// socket that $NOTIFY_SOCKET names, as systemd provides it. A worker (or any
// process in its process group) sends "READY=1" once it can serve; the
// kernel-checked sender credentials (SCM_CREDENTIALS) say which worker spoke,
// so a worker cannot speak for another.
//
// The kernel checks the credentials' pid only for senders without
// CAP_SYS_ADMIN: a process with it (root, unless a container dropped it) may
// claim any pid, and the pidfd that comes with the message (SCM_PIDFD) is
// then the claimed process's, not the sender's, so nothing in the datagram
// tells the claim from the truth. Such a process can signal and trace the
// workers anyway.
//
// A sender's process group is looked up when its message is read, by pid.
// So that a pid reused after the sender was reaped is never taken for it,
// the kernel also passes a pidfd of the sender (SCM_PIDFD, Linux 6.5), and
// the group is kept only if that pidfd shows the sender unreaped after the
// lookup. Without SCM_PIDFD the lookup is by pid alone, as it was: a
// message from a sender reaped before it was read may then be attributed
// to whatever process group the reused pid leads.
package notify

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// MaxMessage is the largest datagram read; longer ones are truncated and
// dropped.
const MaxMessage = 4096

// Message is one notification.
type Message struct {
	// PID is the sender's process id as the kernel reports it; PGID its
	// process group at the time the message was read (0 if unknown: the
	// sender had been reaped).
	PID, PGID int
	// Reaped says that the sender had been reaped before its process
	// group could be checked (known only with SCM_PIDFD): PID may belong
	// to another process by now, and PGID is 0.
	Reaped bool
	// Fields holds the message's assignments: READY=1, STATUS=..., etc.
	Fields map[string]string
	Time   time.Time
}

// Ready reports whether the message says READY=1.
func (m Message) Ready() bool { return m.Fields["READY"] == "1" }

// Socket is a listening notification socket.
type Socket struct {
	dir  string
	path string
	conn *net.UnixConn
	// pidfds: the kernel passes the sender's pidfd (SO_PASSPIDFD).
	pidfds bool
}

// Listen creates a notification socket in a new private directory under
// parent (os.TempDir() when empty). The directory is searchable by other
// users and the socket writable by them, so that workers running as another
// user can notify too; the sender's credentials, not the file mode, decide
// whose message it is.
func Listen(parent string) (*Socket, error) {
	dir, err := os.MkdirTemp(parent, "paddock-notify-")
	if err != nil {
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	s := &Socket{dir: dir, path: filepath.Join(dir, "notify.sock")}
	if err := s.listen(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	return s, nil
}

func (s *Socket) listen() error {
	if err := os.Chmod(s.dir, 0o711); err != nil {
		return err
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: s.path, Net: "unixgram"})
	if err != nil {
		return err
	}
	s.conn = conn
	if err := os.Chmod(s.path, 0o622); err != nil {
		conn.Close()
		return err
	}
	raw, err := conn.SyscallConn()
	if err != nil {
		conn.Close()
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
		// Linux 6.5+; older kernels refuse the option, and senders are
		// then known by pid alone.
		s.pidfds = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSPIDFD, 1) == nil
	}); err != nil {
		serr = err
	}
	if serr != nil {
		conn.Close()
		return fmt.Errorf("SO_PASSCRED: %w", serr)
	}
	return nil
}

// Path is the value for NOTIFY_SOCKET.
func (s *Socket) Path() string { return s.path }

// maxRights is how many descriptors (SCM_RIGHTS) a datagram may carry
// whole, the kernel's SCM_MAX_FD; the kernel closes any beyond.
const maxRights = 253

// Run reads notifications and sends them to out until ctx is done or the
// socket is closed. Datagrams without credentials or too long are dropped.
// Descriptors that come with a datagram (the sender's pidfd, and those a
// sender passes, such as the pipe of systemd-notify's BARRIER=1, which
// waits for it to be closed) are closed once the message was sent to out
// or dropped.
func (s *Socket) Run(ctx context.Context, out chan<- Message) {
	stop := context.AfterFunc(ctx, func() { s.conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, MaxMessage+1)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred)+unix.CmsgSpace(4)+unix.CmsgSpace(4*maxRights))
	for {
		n, oobn, flags, _, err := s.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		c := parseControl(oob[:oobn])
		if n > MaxMessage || flags&unix.MSG_TRUNC != 0 || c.pid <= 0 {
			c.close()
			continue
		}
		m := Message{PID: c.pid, Fields: Parse(buf[:n]), Time: time.Now()}
		m.PGID, m.Reaped = s.senderGroup(c)
		select {
		case out <- m:
			c.close()
		case <-ctx.Done():
			c.close()
			return
		}
	}
}

// senderGroup returns the process group of the sender of a message with
// control data c, or 0 and true when the sender was reaped before the
// lookup could be trusted.
func (s *Socket) senderGroup(c control) (pgid int, reaped bool) {
	pgid, err := unix.Getpgid(c.pid)
	if err != nil {
		pgid = 0
	}
	if !s.pidfds {
		return pgid, false
	}
	if c.pidfd < 0 {
		// Kernels before pidfs can make no pidfd for a reaped sender
		// (the datagram comes with MSG_CTRUNC and none).
		return 0, true
	}
	// Signal 0 through the pidfd succeeds while the sender exists, a
	// zombie included: then the pid did not change hands before the
	// lookup.
	if err := unix.PidfdSendSignal(c.pidfd, 0, nil, 0); errors.Is(err, unix.ESRCH) {
		return 0, true
	}
	return pgid, false
}

// control is what a datagram's control messages carry.
type control struct {
	pid   int   // the sender's, from SCM_CREDENTIALS; 0 if none
	pidfd int   // the sender's pidfd (SCM_PIDFD); -1 if none
	fds   []int // every descriptor received, pidfd included
}

// parseControl reads the control messages of a datagram.
func parseControl(oob []byte) control {
	c := control{pidfd: -1}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return c
	}
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_SOCKET {
			continue
		}
		switch m.Header.Type {
		case unix.SCM_CREDENTIALS:
			if cred, err := unix.ParseUnixCredentials(&m); err == nil {
				c.pid = int(cred.Pid)
			}
		case unix.SCM_PIDFD:
			if len(m.Data) >= 4 {
				c.pidfd = int(int32(binary.NativeEndian.Uint32(m.Data)))
				c.fds = append(c.fds, c.pidfd)
			}
		case unix.SCM_RIGHTS:
			if fds, err := unix.ParseUnixRights(&m); err == nil {
				c.fds = append(c.fds, fds...)
			}
		}
	}
	return c
}

// close closes every descriptor received.
func (c control) close() {
	for _, fd := range c.fds {
		unix.Close(fd)
	}
}

// Parse splits a notification into its newline-separated KEY=VALUE
// assignments; lines without '=' are ignored.
func Parse(b []byte) map[string]string {
	fields := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && k != "" {
			fields[k] = v
		}
	}
	return fields
}

// Close closes the socket and removes its directory.
func (s *Socket) Close() error {
	err := s.conn.Close()
	os.RemoveAll(s.dir)
	return err
}

// Send sends state (such as "READY=1") to the socket named by
// $NOTIFY_SOCKET, as sd_notify(3) does. It returns false, nil when the
// variable is not set.
func Send(state string) (bool, error) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return false, nil
	}
	if err := SendTo(path, state); err != nil {
		return false, err
	}
	return true, nil
}

// SendTo sends state to the notify socket at path, a value of
// $NOTIFY_SOCKET read before (a leading "@" names an abstract socket).
func SendTo(path, state string) error {
	if strings.HasPrefix(path, "@") {
		path = "\x00" + path[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.Write([]byte(state))
	return err
}
