// Package worker lets a Go program be a paddock worker the way a Node
// program is one with the cluster module: Listen returns a listener fed by
// the supervisor (round-robin or sticky connections handed over the IPC
// channel, the shared or own socket for none and reuseport, or a LISTEN_FDS
// socket), and the program exchanges messages with the supervisor and says
// when it is ready. Outside paddock, Listen is net.Listen and the rest does
// nothing, so the same program runs anywhere.
//
// The wire protocol is in docs/protocol.md; the wire itself (framing,
// descriptors, acknowledgements, limits) is package internal/nodeipc, shared
// with the supervisor's end.
package worker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/paddock-sh/paddock/internal/nodeipc"
	"github.com/paddock-sh/paddock/internal/notify"
)

// ID returns this worker's id (PADDOCK_WORKER_ID, as Node's
// cluster.worker.id), or 0 when not run by paddock.
func ID() int {
	for _, k := range []string{"PADDOCK_WORKER_ID", "NODE_UNIQUE_ID"} {
		if id, err := strconv.Atoi(os.Getenv(k)); err == nil {
			return id
		}
	}
	return 0
}

// Ready tells the supervisor this worker is ready to serve (READY=1 on
// $NOTIFY_SOCKET, for `readiness: notify`). Without a notify socket it does
// nothing.
func Ready() error {
	_, err := notify.Send("READY=1")
	return err
}

// Send sends v, encoded as JSON, to the supervisor (Node's process.send).
// It fails when the worker has no IPC channel.
func Send(v any) error {
	c, err := conn()
	if err != nil {
		return err
	}
	return c.write(v)
}

// Messages returns the channel on which the supervisor's messages arrive
// (Node's process.on('message')). Without an IPC channel it is nil.
func Messages() <-chan json.RawMessage {
	c, err := conn()
	if err != nil {
		return nil
	}
	return c.messages
}

// Disconnecting is closed when the supervisor asks this worker to leave
// (cluster's disconnect): the listeners from Listen are closed by then;
// finish the requests in progress and exit. Without an IPC channel it is
// nil.
func Disconnecting() <-chan struct{} {
	c, err := conn()
	if err != nil {
		return nil
	}
	return c.disconnecting
}

// Listen returns a listener for network ("tcp", "tcp4", "tcp6" or "unix")
// and address as net.Listen takes them. Under paddock with an IPC channel
// the supervisor decides, as Node's cluster primary does: connections are
// handed over one by one (rr, sticky), or the socket is shared (none) or
// the worker's own (reuseport). With LISTEN_FDS sockets (and no channel),
// the first inherited socket on the same port (or unix path) is used.
// Otherwise it is net.Listen.
func Listen(network, address string) (net.Listener, error) {
	if os.Getenv("NODE_CHANNEL_FD") != "" && os.Getenv("NODE_UNIQUE_ID") != "" {
		c, err := conn()
		if err != nil {
			return nil, err
		}
		return c.listen(network, address)
	}
	if l, err := inherited(network, address); l != nil || err != nil {
		return l, err
	}
	return net.Listen(network, address)
}

// inherited finds a LISTEN_FDS socket for the address; nil, nil when there
// is none.
func inherited(network, address string) (net.Listener, error) {
	if os.Getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) {
		return nil, nil
	}
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n < 1 {
		return nil, nil
	}
	inheritOnce.Do(func() {
		for i := range n {
			f := os.NewFile(uintptr(3+i), "LISTEN_FDS")
			l, err := net.FileListener(f)
			f.Close()
			if err == nil {
				inheritedListeners = append(inheritedListeners, l)
			}
		}
	})
	inheritMu.Lock()
	defer inheritMu.Unlock()
	for i, l := range inheritedListeners {
		if l != nil && sameAddr(network, address, l.Addr()) {
			inheritedListeners[i] = nil
			return l, nil
		}
	}
	return nil, nil
}

var (
	inheritOnce        sync.Once
	inheritMu          sync.Mutex
	inheritedListeners []net.Listener
)

func sameAddr(network, address string, a net.Addr) bool {
	if strings.HasPrefix(network, "unix") {
		return a.Network() == "unix" && a.String() == address
	}
	_, port, err := net.SplitHostPort(address)
	ta, ok := a.(*net.TCPAddr)
	return err == nil && ok && port == strconv.Itoa(ta.Port)
}

// ErrNoChannel is returned when the worker has no IPC channel.
var ErrNoChannel = errors.New("worker: no IPC channel (not run by paddock with ipc)")

var (
	connOnce sync.Once
	theConn  *channel
	connErr  error
)

func conn() (*channel, error) {
	connOnce.Do(func() {
		fd, err := strconv.Atoi(os.Getenv("NODE_CHANNEL_FD"))
		if err != nil {
			connErr = ErrNoChannel
			return
		}
		unix.CloseOnExec(fd)
		f := os.NewFile(uintptr(fd), "ipc")
		c, err := nodeipc.NewConn(f)
		f.Close()
		if err != nil {
			connErr = fmt.Errorf("worker: %w", err)
			return
		}
		theConn = &channel{
			conn:          c,
			messages:      make(chan json.RawMessage, 64),
			disconnecting: make(chan struct{}),
			replies:       map[int]chan reply{},
			servers:       map[string]*rrListener{},
		}
		go theConn.read()
		_ = theConn.cluster(map[string]any{"act": "online"}, nil)
	})
	return theConn, connErr
}

// channel is the worker's end of the IPC channel.
type channel struct {
	conn          *nodeipc.Conn
	wmu           sync.Mutex // one line written at a time
	messages      chan json.RawMessage
	disconnecting chan struct{}

	mu        sync.Mutex
	seq       int
	replies   map[int]chan reply
	servers   map[string]*rrListener // by key, for newconn
	shared    []net.Listener
	index     int
	gone      bool // the channel ended: no reply can come any more
	closeOnce sync.Once
}

type reply struct {
	msg    clusterMsg
	handle *os.File
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
	c.mu.Lock()
	if c.gone {
		c.mu.Unlock()
		return errClosed
	}
	seq := c.seq
	c.seq++
	if wait != nil {
		c.replies[seq] = wait
	}
	c.mu.Unlock()
	fields["cmd"] = "NODE_CLUSTER"
	fields["seq"] = seq
	return c.write(fields)
}

var errClosed = errors.New("worker: the IPC channel closed")

func (c *channel) listen(network, address string) (net.Listener, error) {
	host, port, addrType := "", 0, 4
	var addr any
	if strings.HasPrefix(network, "unix") {
		addr, port, addrType = address, -1, -1
	} else {
		h, p, err := net.SplitHostPort(address)
		if err != nil {
			return nil, err
		}
		host = h
		if port, err = strconv.Atoi(p); err != nil {
			return nil, fmt.Errorf("worker: port %q: %w", p, err)
		}
		if host != "" {
			addr = host
			if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
				addrType = 6
			}
		}
	}
	c.mu.Lock()
	index := c.index
	c.index++
	c.mu.Unlock()
	query := map[string]any{"act": "queryServer", "index": index, "data": nil, "address": addr,
		"port": port, "addressType": addrType, "backlog": 511}
	wait := make(chan reply, 1)
	if err := c.cluster(query, wait); err != nil {
		return nil, err
	}
	r, ok := <-wait
	if !ok {
		return nil, errClosed
	}
	if r.msg.Errno != 0 {
		if r.handle != nil {
			r.handle.Close()
		}
		return nil, &net.OpError{Op: "listen", Net: network, Err: unix.Errno(-r.msg.Errno)}
	}
	var l net.Listener
	if r.handle != nil { // none, reuseport: a socket to accept on
		fl, err := net.FileListener(r.handle)
		r.handle.Close()
		if err != nil {
			return nil, err
		}
		l = &sharedListener{Listener: fl, c: c, key: r.msg.Key}
		c.mu.Lock()
		c.shared = append(c.shared, l)
		c.mu.Unlock()
	} else { // rr, sticky: the supervisor hands connections over
		rl := &rrListener{c: c, key: r.msg.Key, conns: make(chan net.Conn, 64), done: make(chan struct{}), addr: sockAddr(r.msg.Sockname, network)}
		c.mu.Lock()
		c.servers[r.msg.Key] = rl
		c.mu.Unlock()
		l = rl
	}
	query["act"] = "listening"
	_ = c.cluster(query, nil)
	return l, nil
}

func sockAddr(raw json.RawMessage, network string) net.Addr {
	var s struct {
		Address string
		Port    int
	}
	_ = json.Unmarshal(raw, &s)
	if strings.HasPrefix(network, "unix") {
		return &net.UnixAddr{Name: s.Address, Net: "unix"}
	}
	return &net.TCPAddr{IP: net.ParseIP(s.Address), Port: s.Port}
}

// read handles everything the supervisor sends, until the channel ends:
// the supervisor closed it, or broke the protocol (then every descriptor
// it sent and no NODE_HANDLE line claimed is closed, and so is the
// channel).
func (c *channel) read() {
	defer c.close()
	c.conn.ReadLines(c.handle)
	c.conn.Close()
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
		c.mu.Lock()
		wait := c.replies[*m.Ack]
		delete(c.replies, *m.Ack)
		c.mu.Unlock()
		if wait != nil {
			wait <- reply{msg: m, handle: handle}
		} else if handle != nil {
			handle.Close()
		}
	default:
		if handle != nil {
			handle.Close()
		}
	}
	return nil
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

// disconnect closes every listener and tells the program to leave.
func (c *channel) disconnect() {
	c.mu.Lock()
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
	}
	c.mu.Unlock()
	c.closeOnce.Do(func() { close(c.disconnecting) })
}

// rrListener is a listener whose connections the supervisor hands over.
type rrListener struct {
	// mu orders enqueue against Close, so that every connection accepted
	// before Close is in conns when done closes.
	mu    sync.Mutex
	c     *channel
	key   string
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

// Accept returns the next connection handed over. Connections the worker
// already accepted (answered accepted:true) are returned even after Close,
// before it reports the listener closed: the supervisor no longer has them.
func (l *rrListener) Accept() (net.Conn, error) {
	select {
	case nc := <-l.conns:
		return nc, nil
	case <-l.done:
		select {
		case nc := <-l.conns:
			return nc, nil
		default:
			return nil, net.ErrClosed
		}
	}
}

// enqueue queues a handed-over connection unless the listener is closed or
// its queue is full; it reports whether it did.
func (l *rrListener) enqueue(nc net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.done:
		return false
	default:
	}
	select {
	case l.conns <- nc:
		return true
	default:
		return false
	}
}

func (l *rrListener) Close() error {
	l.once.Do(func() {
		l.mu.Lock()
		close(l.done)
		l.mu.Unlock()
		l.c.mu.Lock()
		delete(l.c.servers, l.key)
		l.c.mu.Unlock()
		_ = l.c.cluster(map[string]any{"act": "close", "key": l.key}, nil)
	})
	return nil
}

func (l *rrListener) Addr() net.Addr { return l.addr }

// sharedListener is a socket of the supervisor's; closing it tells the
// supervisor.
type sharedListener struct {
	net.Listener
	c    *channel
	key  string
	once sync.Once
}

func (l *sharedListener) Close() error {
	err := l.Listener.Close()
	l.once.Do(func() { _ = l.c.cluster(map[string]any{"act": "close", "key": l.key}, nil) })
	return err
}
