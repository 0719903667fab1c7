// Package notify receives sd_notify(3) messages from workers: the datagram
// socket that $NOTIFY_SOCKET names, as systemd provides it. A worker (or any
// process in its process group) sends "READY=1" once it can serve; the
// kernel-checked sender credentials (SCM_CREDENTIALS) say which worker spoke,
// so a worker cannot speak for another.
package notify

import (
	"context"
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
	// process group at the time the message was read (0 if the sender had
	// already exited).
	PID, PGID int
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

// Run reads notifications and sends them to out until ctx is done or the
// socket is closed. Datagrams without credentials or too long are dropped.
func (s *Socket) Run(ctx context.Context, out chan<- Message) {
	stop := context.AfterFunc(ctx, func() { s.conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, MaxMessage+1)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred))
	for {
		n, oobn, flags, _, err := s.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if n > MaxMessage || flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
			continue
		}
		pid := senderPID(oob[:oobn])
		if pid <= 0 {
			continue
		}
		m := Message{PID: pid, Fields: Parse(buf[:n]), Time: time.Now()}
		if pgid, err := unix.Getpgid(pid); err == nil {
			m.PGID = pgid
		}
		select {
		case out <- m:
		case <-ctx.Done():
			return
		}
	}
}

func senderPID(oob []byte) int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0
	}
	for _, m := range msgs {
		if cred, err := unix.ParseUnixCredentials(&m); err == nil {
			return int(cred.Pid)
		}
	}
	return 0
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
	if strings.HasPrefix(path, "@") {
		path = "\x00" + path[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return false, err
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return false, err
	}
	return true, nil
}
