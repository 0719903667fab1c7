package worker

// Listeners that the supervisor feeds or shares over the IPC channel.

import (
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// queryAddress returns the address, port and addressType fields of a
// queryServer message for network and address, as Node fills them: a unix
// path has port and addressType -1; a TCP address without a host has a
// null address.
func queryAddress(network, address string) (addr any, port, addrType int, err error) {
	if strings.HasPrefix(network, "unix") {
		return address, -1, -1, nil
	}
	host, p, err := net.SplitHostPort(address)
	if err != nil {
		return nil, 0, 0, err
	}
	if port, err = strconv.Atoi(p); err != nil {
		return nil, 0, 0, fmt.Errorf("worker: port %q: %w", p, err)
	}
	addrType = 4
	if host != "" {
		addr = host
		if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
			addrType = 6
		}
	}
	return addr, port, addrType, nil
}

// listen asks the supervisor for a server on network and address, as a
// Node cluster worker's server.listen() does, and blocks until it answers.
func (c *channel) listen(network, address string) (net.Listener, error) {
	addr, port, addrType, err := queryAddress(network, address)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	index := c.index
	c.index++
	c.mu.Unlock()
	query := map[string]any{"act": "queryServer", "index": index, "data": nil, "address": addr,
		"port": port, "addressType": addrType, "backlog": 511}
	wait := make(chan reply, 1)
	// An rr server is registered by the reader as it reads the answer,
	// before the next line: the supervisor may hand it a connection right
	// after answering, and a server not registered yet would refuse it (as
	// Node's worker, which runs the answer's callback before reading on).
	register := func(r *reply) {
		if r.msg.Errno != 0 || r.handle != nil {
			return
		}
		r.rr = &rrListener{c: c, key: r.msg.Key, conns: make(chan net.Conn, 64), done: make(chan struct{}),
			addr: sockAddr(r.msg.Sockname, network, address)}
		c.mu.Lock()
		c.servers[r.msg.Key] = r.rr
		c.mu.Unlock()
	}
	if err := c.clusterTake(query, wait, register); err != nil {
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
		l = r.rr // registered by the reader
	}
	query["act"] = "listening"
	_ = c.cluster(query, nil)
	return l, nil
}

// sockAddr returns the address of an rr server: the sockname of a TCP
// one, the path asked for of a unix one (the supervisor sends no sockname
// for it, as Node's primary).
func sockAddr(raw json.RawMessage, network, address string) net.Addr {
	if strings.HasPrefix(network, "unix") {
		return &net.UnixAddr{Name: address, Net: "unix"}
	}
	var s struct {
		Address string
		Port    int
	}
	_ = json.Unmarshal(raw, &s)
	return &net.TCPAddr{IP: net.ParseIP(s.Address), Port: s.Port}
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
