// Package ipc speaks the parent side of Node.js's child_process IPC channel
// in its JSON serialization, the channel that Node's cluster module runs
// over: one end of a socketpair passed to the child as NODE_CHANNEL_FD,
// messages as JSON values each followed by "\n", and descriptors riding on
// {"cmd":"NODE_HANDLE",...} lines by SCM_RIGHTS, acknowledged with
// NODE_HANDLE_ACK.
//
// A Channel never lets one worker hold up the supervisor or another worker:
// one goroutine reads and one writes per channel, the write queue is
// bounded, a line is at most MaxMessage bytes, and anything that is not the
// protocol (garbage, an oversized line, a descriptor without a NODE_HANDLE)
// closes that channel alone.
package ipc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Limits of one channel.
const (
	// MaxMessage is the longest line accepted from a worker.
	MaxMessage = 1 << 20
	// QueueLen is how many messages may wait to be written to a worker.
	QueueLen = 1024
	// HandlesInFlight is how many descriptors may be sent to a worker
	// before it acknowledges them; more wait. Node's own primary keeps
	// one; more in flight keeps the round-robin handoff fast.
	HandlesInFlight = 8
)

// ErrQueueFull is returned by Send when the worker does not read fast
// enough.
var ErrQueueFull = errors.New("ipc: the worker's queue is full")

// ErrClosed is returned by Send on a closed channel.
var ErrClosed = errors.New("ipc: channel closed")

// Message is one message received from a worker.
type Message struct {
	// From is the ID the channel was created with.
	From int
	// Raw is the JSON value as received (for a NODE_HANDLE line, its inner
	// "msg").
	Raw json.RawMessage
	// Cmd is the value's "cmd" when it is an object with a string cmd
	// ("NODE_CLUSTER" for cluster messages); "" otherwise.
	Cmd string
	// Handle is the descriptor that came with a NODE_HANDLE line, or nil.
	// The receiver owns it and must close it.
	Handle *os.File
}

// Internal reports whether the message is one of Node's internal ones
// (cmd "NODE_..."), which user code never sees.
func (m Message) Internal() bool {
	return len(m.Cmd) > 5 && m.Cmd[:5] == "NODE_"
}

type outgoing struct {
	line []byte
	fd   int // -1: none
	done func(error)
}

// Channel is the supervisor's end of one worker's IPC channel.
type Channel struct {
	id int
	// Intercept, when set before Run, sees every message first, in the
	// reading goroutine; a message for which it returns true is consumed
	// there and not delivered. It must not block.
	Intercept func(Message) bool
	conn      *net.UnixConn
	raw       syscall.RawConn // conn's, for SendLineNow's non-blocking writes
	queue     chan outgoing
	// wmu is held while a message is written; unwritten counts the
	// messages queued and not yet written, so that SendLineNow writes at
	// once only when that keeps the order.
	wmu       sync.Mutex
	unwritten atomic.Int64
	// partial is the rest of a line SendLineNow could only start (under
	// wmu); kick wakes the writing goroutine for it.
	partial   []byte
	kick      chan struct{}
	handles   chan struct{} // a token per descriptor sent and not acknowledged
	closed    chan struct{}
	closeOnce sync.Once
	err       atomic.Pointer[error]
}

// Pair creates a channel, whose messages say they come From id, and
// returns the child's end, to be passed to the worker (then closed in the
// supervisor once the worker started).
func Pair(id int) (*Channel, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("ipc socketpair: %w", err)
	}
	parent := os.NewFile(uintptr(fds[0]), "ipc")
	child := os.NewFile(uintptr(fds[1]), "ipc-child")
	c, err := net.FileConn(parent)
	parent.Close()
	var raw syscall.RawConn
	if err == nil {
		raw, err = c.(*net.UnixConn).SyscallConn()
	}
	if err != nil {
		if c != nil {
			c.Close()
		}
		child.Close()
		return nil, nil, fmt.Errorf("ipc: %w", err)
	}
	return &Channel{
		id:      id,
		conn:    c.(*net.UnixConn),
		raw:     raw,
		queue:   make(chan outgoing, QueueLen),
		handles: make(chan struct{}, HandlesInFlight),
		kick:    make(chan struct{}, 1),
		closed:  make(chan struct{}),
	}, child, nil
}

// Send queues v (encoded as JSON) for the worker, with fd riding on it when
// fd >= 0: the message is then wrapped as {"cmd":"NODE_HANDLE","type":
// "net.Native","msg":v}. done, if not nil, is called once the message was
// written or failed; the caller keeps fd open until then. Send never
// blocks.
func (c *Channel) Send(v any, fd int, done func(error)) error {
	var msg any = v
	if fd >= 0 {
		msg = struct {
			Cmd  string `json:"cmd"`
			Type string `json:"type"`
			Msg  any    `json:"msg"`
		}{"NODE_HANDLE", "net.Native", v}
	}
	line, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("ipc: %w", err)
	}
	return c.enqueue(outgoing{line: append(line, '\n'), fd: fd, done: done})
}

// SendLine queues line, one complete JSON value followed by "\n" that the
// caller encoded itself (a NODE_HANDLE line when fd >= 0), as Send does.
// It is the fast path for messages sent very often.
func (c *Channel) SendLine(line []byte, fd int, done func(error)) error {
	return c.enqueue(outgoing{line: line, fd: fd, done: done})
}

// SendLineNow is SendLine for the hottest path (a connection handed to a
// worker): when nothing is queued before it and a descriptor may be in
// flight, it writes line in the calling goroutine, sparing a wake-up of
// the writing goroutine; otherwise it queues line as SendLine does. It
// never blocks: the write does not wait for room in the socket (a worker
// that does not read its channel must not stall the caller), and the part
// of a line the socket could not take is left to the writing goroutine,
// ahead of everything else. The caller keeps fd open until the worker
// acknowledges it.
func (c *Channel) SendLineNow(line []byte, fd int) error {
	if c.unwritten.Load() == 0 && c.wmu.TryLock() {
		if c.unwritten.Load() == 0 {
			select {
			case c.handles <- struct{}{}:
				sent, err := c.writeNow(line, fd)
				switch {
				case err != nil:
					c.wmu.Unlock()
					<-c.handles
					c.fail(fmt.Errorf("ipc write: %w", err))
					return err
				case sent == len(line):
					c.wmu.Unlock()
					return nil
				case sent > 0:
					// The descriptor and the start of the line are in:
					// the rest goes first, from the writing goroutine.
					c.partial = line[sent:]
					c.unwritten.Add(1)
					c.wmu.Unlock()
					select {
					case c.kick <- struct{}{}:
					default:
					}
					return nil
				}
				<-c.handles // nothing written: the socket is full
			default: // as many descriptors in flight as allowed
			}
		}
		c.wmu.Unlock()
	}
	return c.SendLine(line, fd, nil)
}

// writeNow writes as much of line as the socket takes without waiting,
// fd riding on its first byte; it returns how many bytes went.
func (c *Channel) writeNow(line []byte, fd int) (int, error) {
	var n int
	var werr error
	err := c.raw.Write(func(s uintptr) bool {
		for {
			n, werr = unix.SendmsgN(int(s), line, unix.UnixRights(fd), nil, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
			if werr != unix.EINTR {
				return true
			}
		}
	})
	if err != nil {
		return 0, err
	}
	if werr == unix.EAGAIN {
		return 0, nil
	}
	return n, werr
}

// SendRaw queues one JSON value as it is (a user message).
func (c *Channel) SendRaw(v json.RawMessage) error {
	if !json.Valid(v) {
		return errors.New("ipc: not a JSON value")
	}
	var b bytes.Buffer
	if err := json.Compact(&b, v); err != nil {
		return err
	}
	b.WriteByte('\n')
	return c.enqueue(outgoing{line: b.Bytes(), fd: -1})
}

func (c *Channel) enqueue(o outgoing) error {
	select {
	case <-c.closed:
		return ErrClosed
	default:
	}
	c.unwritten.Add(1)
	select {
	case c.queue <- o:
		return nil
	default:
		c.unwritten.Add(-1)
		return ErrQueueFull
	}
}

// Closed is closed once the channel is.
func (c *Channel) Closed() <-chan struct{} { return c.closed }

// Err returns why the channel closed: nil for a clean end of file.
func (c *Channel) Err() error {
	if p := c.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Close closes the channel; the worker sees end of file.
func (c *Channel) Close() { c.fail(nil) }

func (c *Channel) fail(err error) {
	c.closeOnce.Do(func() {
		if err != nil {
			c.err.Store(&err)
		}
		close(c.closed)
		c.conn.Close()
	})
}

// Run reads messages from the worker and delivers them to in, and writes
// queued messages, until the channel closes (end of file, a protocol
// violation, Close) or ctx is done. It returns then, after both of its
// goroutines ended; messages still queued are failed.
func (c *Channel) Run(ctx context.Context, in chan<- Message) {
	stop := context.AfterFunc(ctx, c.Close)
	defer stop()
	var wg sync.WaitGroup
	wg.Go(c.writeLoop)
	c.readLoop(in)
	c.Close()
	wg.Wait()
	for {
		select {
		case o := <-c.queue:
			if o.done != nil {
				o.done(ErrClosed)
			}
		default:
			return
		}
	}
}

func (c *Channel) writeLoop() {
	for {
		var o outgoing
		select {
		case <-c.closed:
			return
		case <-c.kick:
			if err := c.flushPartial(); err != nil {
				return
			}
			continue
		case o = <-c.queue:
		}
		if o.fd >= 0 {
			select {
			case c.handles <- struct{}{}:
			case <-c.closed:
				if o.done != nil {
					o.done(ErrClosed)
				}
				return
			}
		}
		if err := c.flushPartial(); err != nil {
			if o.done != nil {
				o.done(err)
			}
			return
		}
		c.wmu.Lock()
		err := c.write(o)
		c.unwritten.Add(-1)
		c.wmu.Unlock()
		if o.done != nil {
			o.done(err)
		}
		if err != nil {
			c.fail(fmt.Errorf("ipc write: %w", err))
			return
		}
	}
}

// flushPartial writes the rest of a line SendLineNow started, if any.
func (c *Channel) flushPartial() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.partial == nil {
		return nil
	}
	_, err := c.conn.Write(c.partial)
	c.partial = nil
	c.unwritten.Add(-1)
	if err != nil {
		c.fail(fmt.Errorf("ipc write: %w", err))
	}
	return err
}

// write sends one line, the descriptor (if any) with its first bytes.
func (c *Channel) write(o outgoing) error {
	line := o.line
	if o.fd >= 0 {
		n, _, err := c.conn.WriteMsgUnix(line, unix.UnixRights(o.fd), nil)
		if err != nil {
			return err
		}
		line = line[n:]
		if len(line) == 0 {
			return nil
		}
	}
	_, err := c.conn.Write(line)
	return err
}

func (c *Channel) readLoop(in chan<- Message) {
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(4*16))
	var pending []byte // bytes of a line not yet complete
	var fds []int      // descriptors received, not yet claimed by a NODE_HANDLE line
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	for {
		n, oobn, _, _, err := c.conn.ReadMsgUnix(buf, oob)
		if oobn > 0 {
			got, perr := parseRights(oob[:oobn])
			fds = append(fds, got...)
			if perr != nil {
				c.fail(perr)
				return
			}
		}
		if n == 0 || err != nil {
			if err != nil && !errors.Is(err, net.ErrClosed) {
				c.fail(fmt.Errorf("ipc read: %w", err))
			}
			return
		}
		data := buf[:n]
		for len(data) > 0 {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				if len(pending)+len(data) > MaxMessage {
					c.fail(fmt.Errorf("ipc: a message longer than %d bytes", MaxMessage))
					return
				}
				pending = append(pending, data...)
				break
			}
			line := data[:i]
			if len(pending) > 0 {
				pending = append(pending, line...)
				line = pending
			}
			if len(line) > MaxMessage {
				c.fail(fmt.Errorf("ipc: a message longer than %d bytes", MaxMessage))
				return
			}
			var err error
			fds, err = c.handleLine(line, fds, in)
			if err != nil {
				c.fail(err)
				return
			}
			pending = pending[:0]
			data = data[i+1:]
		}
	}
}

// ackLine is NODE_HANDLE_ACK as Node writes it.
var ackLine = []byte(`{"cmd":"NODE_HANDLE_ACK"}`)

// header is what the channel itself looks at in a message.
type header struct {
	Cmd  *string         `json:"cmd"`
	Msg  json.RawMessage `json:"msg"`
	Type string          `json:"type"`
}

// handleLine handles one complete line; it returns the descriptors still
// unclaimed.
func (c *Channel) handleLine(line []byte, fds []int, in chan<- Message) ([]int, error) {
	if len(bytes.TrimSpace(line)) == 0 {
		return fds, nil
	}
	if bytes.Equal(line, ackLine) {
		// The most frequent message by far: a descriptor arrived.
		select {
		case <-c.handles:
			return fds, nil
		default:
			return fds, errors.New("ipc: NODE_HANDLE_ACK without a descriptor sent")
		}
	}
	if !json.Valid(line) {
		return fds, fmt.Errorf("ipc: a message that is not JSON: %.80q", line)
	}
	raw := json.RawMessage(bytes.Clone(line))
	var h header
	if line[0] != '{' || json.Unmarshal(line, &h) != nil || h.Cmd == nil {
		return fds, c.deliver(in, Message{Raw: raw})
	}
	switch *h.Cmd {
	case "NODE_HANDLE_ACK", "NODE_HANDLE_NACK":
		select {
		case <-c.handles:
		default:
			return fds, fmt.Errorf("ipc: %s without a descriptor sent", *h.Cmd)
		}
		return fds, nil
	case "NODE_HANDLE":
		if len(fds) == 0 {
			// Node sends NACK for a handle line without a descriptor.
			return fds, c.enqueue(outgoing{line: []byte(`{"cmd":"NODE_HANDLE_NACK"}` + "\n"), fd: -1})
		}
		fd := fds[0]
		fds = fds[1:]
		if err := c.enqueue(outgoing{line: []byte(`{"cmd":"NODE_HANDLE_ACK"}` + "\n"), fd: -1}); err != nil {
			unix.Close(fd)
			return fds, err
		}
		inner := h.Msg
		if len(inner) == 0 {
			inner = json.RawMessage("null")
		}
		m := Message{Raw: inner, Handle: os.NewFile(uintptr(fd), "ipc handle")}
		var ih header
		if json.Unmarshal(inner, &ih) == nil && ih.Cmd != nil {
			m.Cmd = *ih.Cmd
		}
		return fds, c.deliver(in, m)
	default:
		return fds, c.deliver(in, Message{Raw: raw, Cmd: *h.Cmd})
	}
}

func (c *Channel) deliver(in chan<- Message, m Message) error {
	m.From = c.id
	if c.Intercept != nil && c.Intercept(m) {
		return nil
	}
	select {
	case in <- m:
		return nil
	case <-c.closed:
		if m.Handle != nil {
			m.Handle.Close()
		}
		return ErrClosed
	}
}

func parseRights(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("ipc: control message: %w", err)
	}
	var fds []int
	for _, m := range msgs {
		got, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range got {
			unix.CloseOnExec(fd)
		}
		fds = append(fds, got...)
	}
	return fds, nil
}
