package worker

// The worker's end of the IPC channel: what it sends, and the goroutine
// that reads what the supervisor sends.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"

	"github.com/paddock-sh/paddock/internal/nodeipc"
)

// channel is the worker's end of the IPC channel.
type channel struct {
	conn          *nodeipc.Conn
	wmu           sync.Mutex // one line written at a time
	messages      chan json.RawMessage
	disconnecting chan struct{}

	mu      sync.Mutex
	seq     int
	replies map[int]chan reply
	// takes holds, by seq, what the reader does with a reply before it
	// reads the next line (listen's registering of an rr server).
	takes   map[int]func(*reply)
	servers map[string]*rrListener // by key, for newconn
	shared  []net.Listener
	index   int
	gone    bool // the channel ended: no reply can come any more
	// leaving: the supervisor asked the worker to disconnect; it answers
	// no listen from then on, as Node's primary does not.
	leaving   bool
	closeOnce sync.Once

	readDone chan struct{} // closed when read returns
}

// newChannel returns the channel over c; its reader is not started yet.
func newChannel(c *nodeipc.Conn) *channel {
	return &channel{
		conn:          c,
		messages:      make(chan json.RawMessage, 64),
		disconnecting: make(chan struct{}),
		replies:       map[int]chan reply{},
		takes:         map[int]func(*reply){},
		servers:       map[string]*rrListener{},
		readDone:      make(chan struct{}),
	}
}

type reply struct {
	msg    clusterMsg
	handle *os.File
	// rr is the round-robin server the reader registered for a listen's
	// answer (see channel.takes).
	rr *rrListener
}

type clusterMsg struct {
	Cmd      string          `json:"cmd"`
	Act      string          `json:"act"`
	Seq      int             `json:"seq"`
	Ack      *int            `json:"ack"`
	Errno    int             `json:"errno"`
	Key      string          `json:"key"`
	Data     json.RawMessage `json:"data"`
	Sockname json.RawMessage `json:"sockname"`
}

// write sends v as one JSON line.
func (c *channel) write(v any) error {
	line, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.writeLine(append(line, '\n'))
}

// writeLine writes one line. A line that cannot be written (the supervisor
// is gone, or does not take it) ends the channel: a reply is never dropped
// while the channel goes on.
func (c *channel) writeLine(line []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	err := c.conn.WriteLine(line, -1)
	if err != nil {
		c.conn.Close()
		return fmt.Errorf("worker: IPC channel: %w", err)
	}
	return nil
}

// cluster sends a cluster message; with wait set, the reply arrives there.
func (c *channel) cluster(fields map[string]any, wait chan reply) error {
	return c.clusterTake(fields, wait, nil)
}

// clusterTake is cluster, with take, when set, run by the reader on the
// reply before it is sent to wait and before the next line is read.
func (c *channel) clusterTake(fields map[string]any, wait chan reply, take func(*reply)) error {
	c.mu.Lock()
	if c.gone || (wait != nil && c.leaving) {
		c.mu.Unlock()
		return errClosed
	}
	seq := c.seq
	c.seq++
	if wait != nil {
		c.replies[seq] = wait
		if take != nil {
			c.takes[seq] = take
		}
	}
	c.mu.Unlock()
	fields["cmd"] = "NODE_CLUSTER"
	fields["seq"] = seq
	return c.write(fields)
}

var errClosed = errors.New("worker: the IPC channel closed")

// read handles everything the supervisor sends, until the channel ends:
// the supervisor closed it, or broke the protocol (then every descriptor
// it sent and no NODE_HANDLE line claimed is closed, and so is the
// channel).
func (c *channel) read() {
	defer close(c.readDone)
	defer c.close()
	c.conn.ReadLines(c.handle)
	c.conn.Close()
}

// stop closes the channel and waits for read to return.
func (c *channel) stop() {
	c.conn.Close()
	<-c.readDone
}

// handle takes one line from the supervisor.
func (c *channel) handle(l nodeipc.Line) error {
	if r := l.Reply(); r != nil {
		if err := c.writeLine(r); err != nil {
			if l.File != nil {
				l.File.Close()
			}
			return err
		}
		if l.File == nil {
			return nil // Node drops a handle message without its handle
		}
	}
	if l.Kind == nodeipc.Message && !l.Internal() {
		select {
		case c.messages <- json.RawMessage(bytes.Clone(l.Raw)):
		default: // a program that does not read its messages loses them
		}
		return nil
	}
	handle := l.File
	var m clusterMsg
	if l.Cmd != "NODE_CLUSTER" || json.Unmarshal(l.Raw, &m) != nil {
		if handle != nil {
			handle.Close()
		}
		return nil
	}
	switch {
	case m.Act == "newconn":
		c.newconn(m, handle)
	case m.Act == "disconnect":
		c.disconnect()
	case m.Ack != nil:
		c.answer(m, handle)
	default:
		if handle != nil {
			handle.Close()
		}
	}
	return nil
}

// answer takes the supervisor's answer to a message of the worker's: the
// reply's take runs first, then the reply goes to the one waiting for it.
// An answer nobody waits for has its handle closed.
func (c *channel) answer(m clusterMsg, handle *os.File) {
	c.mu.Lock()
	wait, take := c.replies[*m.Ack], c.takes[*m.Ack]
	delete(c.replies, *m.Ack)
	delete(c.takes, *m.Ack)
	c.mu.Unlock()
	if wait == nil {
		if handle != nil {
			handle.Close()
		}
		return
	}
	r := reply{msg: m, handle: handle}
	if take != nil {
		take(&r)
	}
	wait <- r
}

// newconn takes a connection handed over by the supervisor and answers
// whether it was accepted.
func (c *channel) newconn(m clusterMsg, handle *os.File) {
	c.mu.Lock()
	l := c.servers[m.Key]
	c.mu.Unlock()
	accepted := false
	if l != nil && handle != nil {
		if nc, err := net.FileConn(handle); err == nil {
			accepted = l.enqueue(nc)
			if !accepted { // closed, or a full queue: let another worker have it
				nc.Close()
			}
		}
	}
	if handle != nil {
		handle.Close()
	}
	_ = c.write(map[string]any{"cmd": "NODE_CLUSTER", "ack": m.Seq, "accepted": accepted, "seq": c.nextSeq()})
}

func (c *channel) nextSeq() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.seq
	c.seq++
	return s
}

// disconnect closes every listener and tells the program to leave. A
// Listen waiting for its answer returns errClosed, as does any later one:
// the supervisor answers no listen of a worker it disconnects.
func (c *channel) disconnect() {
	c.mu.Lock()
	c.leaving = true
	for seq, w := range c.replies {
		close(w)
		delete(c.replies, seq)
		delete(c.takes, seq)
	}
	servers := c.servers
	c.servers = map[string]*rrListener{}
	shared := c.shared
	c.shared = nil
	c.mu.Unlock()
	for _, l := range servers {
		l.Close()
	}
	for _, l := range shared {
		l.Close()
	}
	c.closeOnce.Do(func() { close(c.disconnecting) })
}

func (c *channel) close() {
	c.mu.Lock()
	c.gone = true
	for seq, w := range c.replies {
		close(w)
		delete(c.replies, seq)
		delete(c.takes, seq)
	}
	c.mu.Unlock()
	c.closeOnce.Do(func() { close(c.disconnecting) })
}
