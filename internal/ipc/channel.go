// Package ipc speaks the parent side of Node.js's child_process IPC channel
// in its JSON serialization, the channel that Node's cluster module runs
// over: one end of a socketpair passed to the child as NODE_CHANNEL_FD,
// messages as JSON values each followed by "\n", and descriptors riding on
// {"cmd":"NODE_HANDLE",...} lines by SCM_RIGHTS, acknowledged with
// NODE_HANDLE_ACK.
//
// The wire itself (framing, descriptors, ACK/NACK, limits) is package
// internal/nodeipc, shared with package worker; a Channel adds what the
// supervisor needs: a bounded write queue, flow control of the descriptors
// in flight, and delivery of messages to the supervisor.
//
// A Channel never lets one worker hold up the supervisor or another worker:
// one goroutine reads and one writes per channel, the write queue is
// bounded, a line is at most MaxMessage bytes (by default), and anything
// that is not the protocol (garbage, an oversized line, a descriptor
// without a NODE_HANDLE, a reply the worker does not read) closes that
// channel alone, with every descriptor it held.
//
// Nor does a worker make the supervisor hold much of its memory: a channel
// holds at most one large message (over BigMessage bytes) at a time, not
// copied, the one being read or the one delivered and not yet released
// (Message.Release); its reader waits for the release before it reads on.
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

	"github.com/paddock-sh/paddock/internal/nodeipc"
)

// Limits of one channel.
const (
	// MaxMessage is the longest line accepted from a worker by default
	// (SetMaxMessage changes it): 64 MiB. Node's own channel has none.
	MaxMessage = nodeipc.MaxLine
	// BigMessage is the size above which a message is large: a channel
	// delivers large messages one at a time (Message.Release).
	BigMessage = 64 << 10
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

// ProtocolError is what Err returns when the worker broke the protocol
// (garbage, an over-long line, a stray descriptor, an unsolicited ACK).
type ProtocolError = nodeipc.ProtocolError

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
	// release, for a large message, lets its channel read on.
	release func()
}

// Release tells the channel the message came from that the receiver is
// done with it: for a large message (over BigMessage bytes) its reader,
// which waits for that before it reads more, goes on. Call it once the
// message was handled, for every message (it does nothing for most); more
// calls do nothing. Raw may be kept after it.
func (m Message) Release() {
	if m.release != nil {
		m.release()
	}
}

// Internal reports whether the message is one of Node's internal ones
// (cmd "NODE_..."), which user code never sees.
func (m Message) Internal() bool {
	return nodeipc.Internal(m.Cmd)
}

type outgoing struct {
	line []byte
	fd   int // -1: none
	done func(error)
	// relayed is the length of a line SendRelayed queued (counted in
	// Channel.relayedBytes until it leaves the queue), else 0.
	relayed int64
}

// Channel is the supervisor's end of one worker's IPC channel.
type Channel struct {
	id int
	// Intercept, when set before Run, sees every message first, in the
	// reading goroutine; a message for which it returns true is consumed
	// there and not delivered. It must not block, and must not keep the
	// message's Raw (valid only during the call; a message delivered gets
	// a copy).
	Intercept func(Message) bool
	conn      *nodeipc.Conn
	queue     chan outgoing
	// qmu orders enqueue against closing: once closing is set, nothing is
	// queued any more, so the drain at close fails every message queued.
	qmu     sync.Mutex
	closing bool
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
	dmu       sync.Mutex // held while the queue is drained at close
	err       atomic.Pointer[error]
	// awaiting is true while the reader waits for a large message it
	// delivered to be released.
	awaiting atomic.Bool
	// relayedBytes counts the bytes of the relayed lines in the queue
	// (SendRelayed).
	relayedBytes atomic.Int64
}

// SetMaxMessage sets the longest line, without its "\n", accepted from
// the worker: n > 0, or MaxMessage when n <= 0. It must be called before
// Run.
func (c *Channel) SetMaxMessage(n int) { c.conn.SetMaxLine(n) }

// Pair creates a channel, whose messages say they come From id, and
// returns the child's end, to be passed to the worker (then closed in the
// supervisor once the worker started).
func Pair(id int) (*Channel, *os.File, error) {
	conn, child, err := nodeipc.Pair()
	if err != nil {
		return nil, nil, err
	}
	return &Channel{
		id:      id,
		conn:    conn,
		queue:   make(chan outgoing, QueueLen),
		handles: make(chan struct{}, HandlesInFlight),
		kick:    make(chan struct{}, 1),
		closed:  make(chan struct{}),
	}, child, nil
}

// Send queues v (encoded as JSON) for the worker, with fd riding on it when
// fd >= 0: the message is then wrapped as {"cmd":"NODE_HANDLE","type":
// "net.Native","msg":v}. It never blocks. When it returns nil, done (if
// not nil) is called exactly once, with nil once the message was written or
// with why it was not (ErrClosed when the channel closed first), possibly
// in another goroutine; the caller keeps fd open until then. When it
// returns an error (ErrQueueFull, ErrClosed), done is not called.
func (c *Channel) Send(v any, fd int, done func(error)) error {
	msg, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("ipc: %w", err)
	}
	line := append(msg, '\n')
	if fd >= 0 {
		line = nodeipc.AppendHandle(make([]byte, 0, len(nodeipc.HandlePrefix)+len(msg)+2), msg)
	}
	return c.enqueue(outgoing{line: line, fd: fd, done: done})
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
// acknowledges it; line is the caller's again when SendLineNow returns (a
// line that waits is copied).
func (c *Channel) SendLineNow(line []byte, fd int) error {
	if c.unwritten.Load() == 0 && c.wmu.TryLock() {
		if c.unwritten.Load() == 0 {
			select {
			case c.handles <- struct{}{}:
				sent, err := c.conn.WriteLineNow(line, fd)
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
					c.partial = bytes.Clone(line[sent:])
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
	return c.SendLine(bytes.Clone(line), fd, nil)
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

// enqueue queues o unless the channel is closing or its queue is full.
func (c *Channel) enqueue(o outgoing) error {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if c.closing {
		return ErrClosed
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

// reply queues a line the protocol requires of the supervisor (an ACK or
// NACK); a worker that does not take it loses its channel.
func (c *Channel) reply(line []byte) error {
	err := c.enqueue(outgoing{line: line, fd: -1})
	if errors.Is(err, ErrQueueFull) {
		err = fmt.Errorf("ipc: %.*s for worker %d not queued: %w", len(line)-1, line, c.id, err)
	}
	return err
}

// Closed is closed once the channel is.
func (c *Channel) Closed() <-chan struct{} { return c.closed }

// Err returns why the channel closed: nil for a clean end of file or
// Close; a *ProtocolError when the worker broke the protocol; an error
// wrapping ErrQueueFull when a reply the protocol requires could not be
// queued; the error given to CloseWithError.
func (c *Channel) Err() error {
	if p := c.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Close closes the channel; the worker sees end of file. Every message
// still queued is failed (its done called with ErrClosed) before Close
// returns, but for one the writing goroutine may be writing, which Run
// finishes. done callbacks must not call Close.
func (c *Channel) Close() { c.fail(nil) }

// CloseWithError closes the channel as Close does and records err as why,
// for Err, unless it was closed already.
func (c *Channel) CloseWithError(err error) { c.fail(err) }

func (c *Channel) fail(err error) {
	first := false
	c.closeOnce.Do(func() {
		first = true
		if err != nil {
			c.err.Store(&err)
		}
		c.qmu.Lock()
		c.closing = true
		c.qmu.Unlock()
		close(c.closed)
		c.conn.Close()
	})
	if first {
		c.drain()
	}
}

// drain fails the messages queued. It runs once nothing can be queued any
// more; the writing goroutine may take some of them meanwhile, and fails
// them itself.
func (c *Channel) drain() {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	for {
		select {
		case o := <-c.queue:
			c.unwritten.Add(-1)
			c.relayedBytes.Add(-o.relayed)
			if o.done != nil {
				o.done(ErrClosed)
			}
		default:
			return
		}
	}
}

// Run reads messages from the worker and delivers them to in, and writes
// queued messages, until the channel closes (end of file, a protocol
// violation, Close) or ctx is done. It returns then, after both of its
// goroutines ended and every message queued was failed.
func (c *Channel) Run(ctx context.Context, in chan<- Message) {
	stop := context.AfterFunc(ctx, c.Close)
	defer stop()
	var wg sync.WaitGroup
	wg.Go(c.writeLoop)
	err := c.conn.ReadLines(func(l nodeipc.Line) error { return c.handleLine(l, in) })
	if err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, ErrClosed) {
		c.fail(err)
	}
	c.Close()
	wg.Wait()
	c.drain() // waits for a Close draining in another goroutine
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
			c.relayedBytes.Add(-o.relayed)
		}
		if o.fd >= 0 {
			select {
			case c.handles <- struct{}{}:
			case <-c.closed:
				c.unwritten.Add(-1)
				if o.done != nil {
					o.done(ErrClosed)
				}
				return
			}
		}
		if err := c.flushPartial(); err != nil {
			c.unwritten.Add(-1)
			if o.done != nil {
				o.done(err)
			}
			return
		}
		c.wmu.Lock()
		err := c.conn.WriteLine(o.line, o.fd)
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
	err := c.conn.WriteLine(c.partial, -1)
	c.partial = nil
	c.unwritten.Add(-1)
	if err != nil {
		c.fail(fmt.Errorf("ipc write: %w", err))
	}
	return err
}

// handleLine takes one line from the worker.
func (c *Channel) handleLine(l nodeipc.Line, in chan<- Message) error {
	switch l.Kind {
	case nodeipc.Ack, nodeipc.Nack:
		select {
		case <-c.handles:
			return nil
		default:
			return &ProtocolError{Reason: l.Cmd + " without a descriptor sent"}
		}
	case nodeipc.Handle:
		if err := c.reply(l.Reply()); err != nil {
			if l.File != nil {
				l.File.Close()
			}
			return err
		}
		if l.File == nil {
			return nil // Node drops a handle message without its handle
		}
		return c.deliver(in, Message{Raw: l.Raw, Cmd: l.Cmd, Handle: l.File}, l.Owned)
	default:
		return c.deliver(in, Message{Raw: l.Raw, Cmd: l.Cmd}, l.Owned)
	}
}

// deliver passes m, whose Raw is the reader's memory (given up to the
// message when owned: a long line), to Intercept, and unless Intercept
// takes it, to in, with a copy of Raw unless owned; a large message is
// delivered alone: deliver returns once it was released (or the channel
// closed), so that the reader holds no other meanwhile.
func (c *Channel) deliver(in chan<- Message, m Message, owned bool) error {
	m.From = c.id
	if c.Intercept != nil && c.Intercept(m) {
		return nil
	}
	if !owned {
		m.Raw = bytes.Clone(m.Raw)
	}
	var released chan struct{}
	if len(m.Raw) > BigMessage {
		released = make(chan struct{})
		m.release = sync.OnceFunc(func() { close(released) })
	}
	select {
	case in <- m:
	case <-c.closed:
		if m.Handle != nil {
			m.Handle.Close()
		}
		return ErrClosed
	}
	if released == nil {
		return nil
	}
	c.awaiting.Store(true)
	defer c.awaiting.Store(false)
	select {
	case <-released:
		return nil
	case <-c.closed:
		return ErrClosed
	}
}
