// Package nodeipc is Node.js's child_process IPC wire in its JSON
// serialization: "\n"-terminated JSON lines of at most MaxLine bytes (by
// default) over a unix stream socket, descriptors passed by SCM_RIGHTS riding on the first
// byte of a {"cmd":"NODE_HANDLE",...} line, and the NODE_HANDLE_ACK or
// NODE_HANDLE_NACK that answers each such line.
//
// Both ends of paddock's channels are built on it: package ipc (the
// supervisor's end) and package worker (a Go worker's end). It frames and
// classifies lines and owns every received descriptor until a NODE_HANDLE
// line claims it; queues, flow control and what the messages mean are the
// callers' business.
//
// Descriptors are claimed in the order they arrive, one per NODE_HANDLE line.
// A descriptor that no line can claim is a protocol violation: once the
// complete lines of a read are handled, descriptors left over while no line
// is incomplete are stray, and so is any beyond MaxUnclaimed while one is.
// On a violation every unclaimed descriptor is closed at once and the
// reading ends with a *ProtocolError, so that the other end can neither
// fill this process's descriptor table nor have it hold garbage.
package nodeipc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Limits of the wire.
const (
	// MaxLine is the longest line a Conn accepts by default, without its
	// "\n" (Conn.SetMaxLine changes it). A longer one is refused before
	// more of it is buffered. Node's own channel has no limit (but V8's
	// longest string); this one keeps what one peer can make this process
	// hold bounded, and is far above what Node programs send: socket.io's
	// largest message by default (1 MB) encoded as JSON, several times
	// over.
	MaxLine = 64 << 20
	// MaxUnclaimed is how many received descriptors may wait for the
	// NODE_HANDLE line still being received. A sender that follows the
	// protocol has at most one waiting: its descriptor arrives with the
	// first byte of its line.
	MaxUnclaimed = 16
	// readBuffer is how many bytes one read takes at most, and the most
	// a decoder keeps between lines: a line that grew its buffer beyond
	// it leaves with that buffer (Line.Owned).
	readBuffer = 64 << 10
)

// Lines that answer a NODE_HANDLE line, as Node writes them.
var (
	// AckLine acknowledges a NODE_HANDLE line that came with its
	// descriptor.
	AckLine = []byte(`{"cmd":"NODE_HANDLE_ACK"}` + "\n")
	// NackLine answers a NODE_HANDLE line that came without one.
	NackLine = []byte(`{"cmd":"NODE_HANDLE_NACK"}` + "\n")
)

// HandlePrefix begins every NODE_HANDLE line paddock writes: the message
// riding with the descriptor follows, then "}\n" (see AppendHandle).
const HandlePrefix = `{"cmd":"NODE_HANDLE","type":"net.Native","msg":`

// AppendHandle appends to dst the NODE_HANDLE line, "\n" included, that
// carries msg (one JSON value) with a descriptor, and returns it.
func AppendHandle(dst, msg []byte) []byte {
	dst = append(dst, HandlePrefix...)
	dst = append(dst, msg...)
	return append(dst, "}\n"...)
}

// Internal reports whether cmd, a message's "cmd", marks one of Node's
// internal messages ("NODE_..."), which user code never sees.
func Internal(cmd string) bool {
	return len(cmd) > 5 && cmd[:5] == "NODE_"
}

// ackBody is AckLine without its "\n": the most frequent line by far.
var ackBody = AckLine[:len(AckLine)-1]

// Kind tells what a line is to the wire.
type Kind uint8

const (
	// Message is any JSON value other than the three below: a user
	// message, or an internal one such as NODE_CLUSTER.
	Message Kind = iota
	// Handle is {"cmd":"NODE_HANDLE","type":...,"msg":...}: a message
	// with a descriptor riding on it.
	Handle
	// Ack is NODE_HANDLE_ACK: the other end took a descriptor sent to it.
	Ack
	// Nack is NODE_HANDLE_NACK: a NODE_HANDLE line reached the other end
	// without its descriptor.
	Nack
)

// Line is one line received.
type Line struct {
	Kind Kind
	// Raw is the JSON value received; for a Handle line, its "msg" (null
	// when absent). Unless Owned, it is valid only until the handler it
	// was passed to returns: keep a copy.
	Raw []byte
	// Owned says Raw's memory is the handler's to keep: the reader never
	// uses it again (a long line gathered over several reads, the msg of a
	// Handle line), so a large message need not be copied.
	Owned bool
	// Cmd is Raw's "cmd" when Raw is an object whose cmd is a string; ""
	// otherwise.
	Cmd string
	// File is, for a Handle line, the descriptor it claimed, or nil when
	// none had arrived (the line is to be answered with NackLine). The
	// handler owns it and must close it.
	File *os.File
}

// Internal reports whether Raw is one of Node's internal messages (cmd
// "NODE_..."), which user code never sees.
func (l Line) Internal() bool { return Internal(l.Cmd) }

// Reply returns the line that answers l: AckLine for a Handle line with its
// descriptor, NackLine for one without, nil for any other line.
func (l Line) Reply() []byte {
	switch {
	case l.Kind != Handle:
		return nil
	case l.File != nil:
		return AckLine
	default:
		return NackLine
	}
}

// ProtocolError is a violation of the wire by the other end: a line that is
// not JSON, a line longer than the limit (MaxLine), a descriptor that no NODE_HANDLE line
// claims. Nothing the other end sends afterwards can be trusted: the reader
// that reports one has closed every descriptor it held, and its channel is
// to be closed.
type ProtocolError struct {
	// Reason says what the other end did.
	Reason string
}

func (e *ProtocolError) Error() string { return "ipc protocol violation: " + e.Reason }

func violation(format string, args ...any) error {
	return &ProtocolError{Reason: fmt.Sprintf(format, args...)}
}

// Conn is one end of a channel: a unix stream socket. Reading (ReadLines)
// and writing may happen in two goroutines at once; only one goroutine may
// write at a time.
type Conn struct {
	uc  *net.UnixConn
	raw syscall.RawConn
	// rd and wr are the state of the raw read and the immediate write,
	// with their functions for raw bound once (readFn, writeFn), so that
	// neither allocates a closure per call.
	rd      rawRead
	readFn  func(uintptr) bool
	wr      rawWrite
	writeFn func(uintptr) bool
	// maxLine is the longest line ReadLines accepts; 0: MaxLine.
	maxLine int
}

// SetMaxLine sets the longest line, without its "\n", that ReadLines
// accepts: n > 0, or MaxLine when n <= 0. It must be called before
// ReadLines.
func (c *Conn) SetMaxLine(n int) {
	c.maxLine = max(n, 0)
}

// rawRead is one recvmsg into buf and oob (ReadLines' goroutine only).
type rawRead struct {
	buf, oob       []byte
	n, oobn, flags int
	err            error
}

// do reads once, retrying EINTR; it reports whether the read is done (not
// EAGAIN), as syscall.RawConn.Read wants.
func (r *rawRead) do(s uintptr) bool {
	for {
		// MSG_CMSG_CLOEXEC: no descriptor is ever inheritable, not even
		// for the moment between receiving and marking it.
		r.n, r.oobn, r.flags, r.err = recvmsg(int(s), r.buf, r.oob, unix.MSG_CMSG_CLOEXEC)
		if r.err != unix.EINTR {
			return r.err != unix.EAGAIN
		}
	}
}

// rawWrite is one sendmsg of line with fd (one writer at a time).
type rawWrite struct {
	line []byte
	fd   int
	n    int
	err  error
}

// do writes once without waiting, retrying EINTR.
func (w *rawWrite) do(s uintptr) bool {
	for {
		w.n, w.err = sendmsg(int(s), w.line, w.fd, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
		if w.err != unix.EINTR {
			return true
		}
	}
}

// Pair returns a connected pair of sockets: the Conn for this process, and
// the other end as a file to hand to a child (close-on-exec here; os/exec
// passes ExtraFiles on without the flag). The caller closes the file once
// the child has it.
func Pair() (*Conn, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("ipc socketpair: %w", err)
	}
	mine := os.NewFile(uintptr(fds[0]), "ipc")
	defer mine.Close()
	child := os.NewFile(uintptr(fds[1]), "ipc-child")
	c, err := NewConn(mine)
	if err != nil {
		child.Close()
		return nil, nil, err
	}
	return c, child, nil
}

// NewConn returns a Conn on the unix stream socket f. The Conn has its own
// descriptor, close-on-exec and non-blocking: the caller still closes f.
func NewConn(f *os.File) (*Conn, error) {
	nc, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("ipc channel %s: %w", f.Name(), err)
	}
	uc, ok := nc.(*net.UnixConn)
	if !ok {
		nc.Close()
		return nil, fmt.Errorf("ipc channel %s: not a unix socket", f.Name())
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		uc.Close()
		return nil, fmt.Errorf("ipc channel %s: %w", f.Name(), err)
	}
	c := &Conn{uc: uc, raw: raw}
	c.readFn, c.writeFn = c.rd.do, c.wr.do
	return c, nil
}

// Close closes the socket: a ReadLines in progress returns, the other end
// sees end of file.
func (c *Conn) Close() error { return c.uc.Close() }

// Control runs f with the socket's descriptor (see syscall.RawConn).
func (c *Conn) Control(f func(fd uintptr)) error { return c.raw.Control(f) }

// WriteLine writes line, a complete line with its "\n", with fd (when
// fd >= 0) riding on its first byte, in one sendmsg; a short write is
// finished without the descriptor. It blocks until the socket took all of
// line, the socket fails, or Close. The caller keeps fd open until the other
// end acknowledges it.
func (c *Conn) WriteLine(line []byte, fd int) error {
	if fd >= 0 {
		n, _, err := c.uc.WriteMsgUnix(line, unix.UnixRights(fd), nil)
		if err != nil {
			return err
		}
		line = line[n:]
	}
	if len(line) == 0 {
		return nil
	}
	_, err := c.uc.Write(line)
	return err
}

// WriteLineNow writes as much of line as the socket takes without waiting,
// fd (when fd >= 0) riding on its first byte, and returns how many bytes
// went: 0 with a nil error when the socket is full (the descriptor did not
// go either). The rest of a line begun is to be written, without the
// descriptor, before anything else.
func (c *Conn) WriteLineNow(line []byte, fd int) (int, error) {
	c.wr.line, c.wr.fd = line, fd
	err := c.raw.Write(c.writeFn)
	n, werr := c.wr.n, c.wr.err
	c.wr.line = nil
	if err != nil {
		return 0, err
	}
	if werr == unix.EAGAIN {
		return 0, nil
	}
	return n, werr
}

// ReadLines reads lines from the other end until it ends, and passes each,
// in order, to handle, in the calling goroutine. It returns nil at end of
// file; an error wrapping net.ErrClosed after Close; a *ProtocolError on a
// violation; the error handle returned, if any; or the read error. Every
// descriptor received and not claimed by a line is closed before it
// returns. Each descriptor received is close-on-exec.
func (c *Conn) ReadLines(handle func(Line) error) error {
	d := decoder{max: c.maxLine}
	defer d.Close()
	buf := make([]byte, readBuffer)
	oob := make([]byte, unix.CmsgSpace(4*MaxUnclaimed))
	for {
		n, fds, err := c.read(buf, oob)
		if err != nil {
			closeAll(fds)
			return err
		}
		if n == 0 {
			// End of file: what was begun never ends.
			closeAll(fds)
			return d.end()
		}
		if err := d.feed(buf[:n], fds, handle); err != nil {
			return err
		}
	}
}

// read takes what the socket holds, with the descriptors that came along.
func (c *Conn) read(buf, oob []byte) (int, []int, error) {
	c.rd.buf, c.rd.oob = buf, oob
	err := c.raw.Read(c.readFn)
	n, oobn, flags, rerr := c.rd.n, c.rd.oobn, c.rd.flags, c.rd.err
	if err == nil {
		err = rerr
	}
	if err != nil {
		if errors.Is(err, net.ErrClosed) {
			return 0, nil, err
		}
		return 0, nil, fmt.Errorf("ipc read: %w", err)
	}
	var fds []int
	if oobn > 0 {
		var perr error
		fds, perr = parseRights(oob[:oobn])
		if perr != nil {
			return 0, fds, perr
		}
	}
	if flags&unix.MSG_CTRUNC != 0 {
		// The kernel closed the descriptors that did not fit.
		return 0, fds, violation("more than %d descriptors in one message", MaxUnclaimed)
	}
	return n, fds, nil
}

// parseRights returns the descriptors of SCM_RIGHTS control messages.
func parseRights(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, violation("control message: %v", err)
	}
	var fds []int
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_SOCKET || m.Header.Type != unix.SCM_RIGHTS {
			continue
		}
		got, err := unix.ParseUnixRights(&m)
		if err != nil {
			closeAll(fds)
			return nil, violation("control message: %v", err)
		}
		fds = append(fds, got...)
	}
	return fds, nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// decoder turns what one end reads (bytes and descriptors) into Lines: it
// frames, enforces the longest line, classifies, assigns descriptors to
// NODE_HANDLE lines and finds stray ones. Its zero value is ready, with
// MaxLine. Not safe for concurrent use.
//
// Each byte is looked at once by the framing (a line's end is searched for
// in what a read brought, never again in what was gathered before), and a
// line is gathered in one buffer, grown by doubling: reading is linear in
// the bytes read, however long the lines. What it holds between lines is
// bounded by readBuffer: a longer buffer leaves with its line.
type decoder struct {
	max     int    // the longest line; 0: MaxLine
	pending []byte // the start of a line not yet complete
	fds     []int  // descriptors received, not yet claimed
	broken  error  // the violation that ended it
}

// limit returns the longest line accepted.
func (d *decoder) limit() int {
	if d.max > 0 {
		return d.max
	}
	return MaxLine
}

// feed takes the bytes and descriptors of one read and passes every line
// they complete to handle, in order; it returns handle's first error, or a
// *ProtocolError. After an error every unclaimed descriptor is closed and
// the decoder refuses more.
func (d *decoder) feed(data []byte, fds []int, handle func(Line) error) error {
	if d.broken != nil {
		closeAll(fds)
		return d.broken
	}
	d.fds = append(d.fds, fds...)
	if err := d.frame(data, handle); err != nil {
		d.broken = err
		d.Close()
		return err
	}
	return nil
}

func (d *decoder) frame(data []byte, handle func(Line) error) error {
	limit := d.limit()
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			if len(d.pending)+len(data) > limit {
				return violation("a line longer than %d bytes", limit)
			}
			d.pending = append(grow(d.pending, len(data), limit), data...)
			break
		}
		if len(d.pending)+i > limit {
			return violation("a line longer than %d bytes", limit)
		}
		line, owned := data[:i], false
		if len(d.pending) > 0 {
			d.pending = append(grow(d.pending, len(line), limit), line...)
			// A buffer grown beyond a read's size goes with its line:
			// the decoder keeps no more than readBuffer between lines.
			line, owned = d.pending, cap(d.pending) > readBuffer
		}
		if owned {
			d.pending = nil
		}
		if err := d.line(line, owned, handle); err != nil {
			return err
		}
		d.pending = d.pending[:0]
		data = data[i+1:]
	}
	switch {
	case len(d.fds) == 1 && len(d.pending) == 0:
		return violation("a descriptor that no NODE_HANDLE line claims")
	case len(d.fds) > 1 && len(d.pending) == 0:
		return violation("%d descriptors that no NODE_HANDLE line claims", len(d.fds))
	case len(d.fds) > MaxUnclaimed:
		return violation("%d descriptors waiting for one line", len(d.fds))
	}
	return nil
}

// grow returns b with room for n more bytes: b itself when it has it, else
// a copy with twice the room, but never more than limit bytes in all
// (len(b)+n <= limit), so that a line's buffer is copied a few times at
// most and never outgrows the longest line.
func grow(b []byte, n, limit int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	size := min(max(2*cap(b), len(b)+n), max(limit, len(b)+n))
	nb := make([]byte, len(b), size)
	copy(nb, b)
	return nb
}

// header is what the wire looks at in a line.
type header struct {
	Cmd *string         `json:"cmd"`
	Msg json.RawMessage `json:"msg"`
}

// line handles one complete line; owned says the handler may keep its
// memory.
func (d *decoder) line(line []byte, owned bool, handle func(Line) error) error {
	if bytes.Equal(line, ackBody) {
		return handle(Line{Kind: Ack, Raw: line, Cmd: "NODE_HANDLE_ACK", Owned: owned})
	}
	if cmd, ok := flatCmd(line); ok && cmd != "NODE_HANDLE" {
		// Valid JSON by construction; a NODE_HANDLE line takes the slow
		// path, which finds its "msg" (never flat: it is an object).
		l := Line{Kind: Message, Raw: line, Cmd: cmd, Owned: owned}
		switch cmd {
		case "NODE_HANDLE_ACK":
			l.Kind = Ack
		case "NODE_HANDLE_NACK":
			l.Kind = Nack
		}
		return handle(l)
	}
	if len(bytes.TrimSpace(line)) == 0 {
		return nil // Node writes none; a blank line carries nothing
	}
	l := Line{Kind: Message, Raw: line, Owned: owned}
	var h header
	if line[0] == '{' {
		// Unmarshal checks the whole line is JSON before it decodes:
		// one pass less than json.Valid first. A cmd that is not a
		// string (a type error) makes a message without a cmd.
		err := json.Unmarshal(line, &h)
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return violation("a line that is not JSON: %.80q", line)
		}
		if err != nil || h.Cmd == nil {
			return handle(l)
		}
	} else {
		if !json.Valid(line) {
			return violation("a line that is not JSON: %.80q", line)
		}
		return handle(l)
	}
	l.Cmd = *h.Cmd
	switch l.Cmd {
	case "NODE_HANDLE_ACK":
		l.Kind = Ack
	case "NODE_HANDLE_NACK":
		l.Kind = Nack
	case "NODE_HANDLE":
		l.Kind = Handle
		// Unmarshal copied msg: the handler's to keep.
		l.Raw, l.Cmd, l.Owned = h.Msg, "", true
		if len(l.Raw) == 0 {
			l.Raw = []byte("null")
		}
		var inner header
		if l.Raw[0] == '{' && json.Unmarshal(l.Raw, &inner) == nil && inner.Cmd != nil {
			l.Cmd = *inner.Cmd
		}
		if len(d.fds) > 0 {
			l.File = os.NewFile(uintptr(d.fds[0]), "ipc handle")
			d.fds = d.fds[1:]
		}
	}
	return handle(l)
}

// end is the end of the input: descriptors still unclaimed (their line
// never completed) are closed and reported as a *ProtocolError; an
// incomplete line without one is dropped, as Node drops it.
func (d *decoder) end() error {
	if d.broken != nil {
		return d.broken
	}
	if len(d.fds) > 0 {
		d.broken = violation("%d descriptors whose line never ended", len(d.fds))
		d.Close()
		return d.broken
	}
	return nil
}

// Close closes every descriptor received and not claimed; it may be
// called any number of times.
func (d *decoder) Close() {
	closeAll(d.fds)
	d.fds = nil
}
