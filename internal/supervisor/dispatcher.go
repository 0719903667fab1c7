package supervisor

import (
	"context"
	"encoding/json"
	"hash/fnv"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/paddock-sh/paddock/internal/nodeipc"
	"github.com/paddock-sh/paddock/netshare"
)

// This file is the rr/sticky dispatcher: under those scheduling policies
// paddock accepts a socket's connections itself and hands each to a worker
// as a cluster newconn (docs/protocol.md).

// acceptedConn is a connection a dispatcher accepted: paddock's copy of
// its descriptor, and the client's IP address (sticky).
type acceptedConn struct {
	fd int
	ip netip.Addr // not valid for unix sockets
}

// Close closes paddock's copy of the connection.
func (c acceptedConn) Close() { unix.Close(c.fd) }

// subscriber is a worker that listens on a dispatcher's socket, with the
// key it knows that server by.
type subscriber struct {
	c   *channel
	key string
	// prefix is the newconn line up to its seq, encoded once.
	prefix []byte
}

// newSubscriber returns the subscriber of c's worker for the server it
// knows by key.
func newSubscriber(c *channel, key string) subscriber {
	k, _ := json.Marshal(key)
	prefix := append([]byte(nodeipc.HandlePrefix+`{"cmd":"NODE_CLUSTER","act":"newconn","key":`), k...)
	return subscriber{c: c, key: key, prefix: append(prefix, `,"seq":`...)}
}

// dispatcher accepts the connections of one socket and hands each to a
// worker: the next in turn (rr), or the one a client's address hashes to
// (sticky). It accepts only while some worker can take a connection, so
// that while none can, connections wait in the kernel's queue.
//
// Its owner, the goroutine that owns the socket's pool, creates it with
// newDispatcher, runs Run in a goroutine it waits for, changes its workers
// with setSubscribers, and ends it with Close. offer may be called from any
// goroutine (a channel's reader gives a refused connection back).
type dispatcher struct {
	app    string
	sticky bool
	sock   *netshare.Socket
	ln     *os.File // a non-blocking duplicate of the socket, in the netpoller
	subs   atomic.Pointer[[]subscriber]
	next   atomic.Uint64
	wake   chan struct{} // signalled when subscribers appear
	// offers counts the rounds of offering a connection to the
	// subscribers (offer calls).
	offers atomic.Uint64
	// quit is closed (quitOnce) when the dispatcher is to stop: Close, or
	// Run's ctx done; done when Run returned.
	quit     chan struct{}
	quitOnce sync.Once
	done     chan struct{}
}

// lingerWithoutWorkers bounds how long an accepted connection waits for a
// worker when every worker went away at once.
const lingerWithoutWorkers = 10 * time.Second

// acceptBackoff is how long the accept loop pauses after an accept error
// that is not the connection's own (EMFILE, ENFILE, ENOBUFS...).
const acceptBackoff = 50 * time.Millisecond

// newDispatcher returns a dispatcher of app's socket sock (sticky or rr)
// without subscribers; it takes a reference to sock, which Close drops.
// It starts nothing: the owner runs Run.
func newDispatcher(app string, sticky bool, sock *netshare.Socket) (*dispatcher, error) {
	// A descriptor of our own on the socket, non-blocking, so that
	// os.NewFile registers it with the netpoller and its RawConn can wait
	// for connections (a net.Listener's RawConn cannot Read).
	fd, err := unix.FcntlInt(sock.File.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	ln := os.NewFile(uintptr(fd), "dispatch "+sock.Listen.Raw)
	d := &dispatcher{app: app, sticky: sticky, sock: sock.Ref(), ln: ln,
		wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	empty := []subscriber{}
	d.subs.Store(&empty)
	return d, nil
}

// setSubscribers replaces the workers that take connections. It never
// blocks.
func (d *dispatcher) setSubscribers(subs []subscriber) {
	d.subs.Store(&subs)
	if len(subs) > 0 {
		select {
		case d.wake <- struct{}{}:
		default:
		}
	}
}

// Run accepts connections and hands them out until ctx is done or Close is
// called, then closes its own descriptor of the socket and returns; the
// socket itself stays open (Close drops the dispatcher's reference). It is
// called once, in a goroutine of its own that the owner waits for. A
// connection accepted and not yet taken by a worker when it stops is
// offered until a worker takes it or lingerWithoutWorkers passes.
func (d *dispatcher) Run(ctx context.Context) {
	defer close(d.done)
	defer d.stop()
	unwatch := context.AfterFunc(ctx, d.stop)
	defer unwatch()
	rc, err := d.ln.SyscallConn()
	if err != nil {
		return
	}
	for d.waitForSubscribers(0) {
		acceptErr, err := d.acceptReady(rc)
		if err != nil {
			return // the listener was closed
		}
		if acceptErr != nil {
			select {
			case <-d.quit:
				return
			case <-time.After(acceptBackoff):
			}
		}
	}
}

// stop makes Run return: it closes quit, and the descriptor Run waits on.
func (d *dispatcher) stop() {
	d.quitOnce.Do(func() {
		close(d.quit)
		d.ln.Close()
	})
}

// Close stops Run, waits for it to return, and drops the dispatcher's
// reference to its socket. The owner calls it once, after it started Run.
func (d *dispatcher) Close() {
	d.stop()
	<-d.done
	d.sock.Release()
}

// waitForSubscribers waits until some worker takes connections; it returns
// false when the dispatcher stops or timeout (if not zero) passes.
func (d *dispatcher) waitForSubscribers(timeout time.Duration) bool {
	return d.waitForChange(nil, timeout)
}

// waitForChange waits until the subscriber list is not empty and is not
// failed, a list that could not take a connection (nil: any list); it
// returns false when the dispatcher stops or timeout (if not zero) passes.
// Waiting for a new list, rather than offering again to workers whose
// channels are all broken, keeps a connection nobody can take from
// spinning the dispatcher until the owner replaces them.
func (d *dispatcher) waitForChange(failed *[]subscriber, timeout time.Duration) bool {
	var expire <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expire = t.C
	}
	for subs := d.subs.Load(); len(*subs) == 0 || subs == failed; subs = d.subs.Load() {
		select {
		case <-d.wake:
		case <-d.quit:
			return false
		case <-expire:
			return false
		}
	}
	return true
}

// acceptReady accepts and hands out connections while some worker can take
// them, waiting in the netpoller while none is queued. It returns an accept
// error that is not the connection's own (to back off), or the error of
// the wait itself (the listener was closed).
func (d *dispatcher) acceptReady(rc syscall.RawConn) (acceptErr, err error) {
	// accept4 straight on the listening descriptor, in the netpoller's
	// read wait: paddock's copy of a connection lives only until the
	// worker has its own, so it is never registered with the poller nor
	// wrapped in a net.Conn.
	err = rc.Read(func(fd uintptr) bool {
		for {
			nfd, sa, err := unix.Accept4(int(fd), unix.SOCK_CLOEXEC)
			switch err {
			case nil:
			case unix.EAGAIN:
				return false // wait until readable
			case unix.EINTR, unix.ECONNABORTED:
				continue
			default: // EMFILE, ENFILE, ENOBUFS...: back off
				acceptErr = err
				return true
			}
			if !d.handOut(acceptedConn{fd: nfd, ip: sockaddrIP(sa)}) {
				return true
			}
			if len(*d.subs.Load()) == 0 {
				return true // leave the rest in the kernel's queue
			}
		}
	})
	return acceptErr, err
}

// handOut offers a connection just accepted until a worker takes it. When
// no worker of the list could take it (every worker went away between
// accept and handoff, or their channels are broken), it waits for another
// list for lingerWithoutWorkers at most; it closes the connection and
// returns false when none came, or the dispatcher stopped.
func (d *dispatcher) handOut(conn acceptedConn) bool {
	for {
		subs := d.subs.Load()
		if d.offer(conn, nil) {
			return true
		}
		if !d.waitForChange(subs, lingerWithoutWorkers) {
			conn.Close()
			return false
		}
	}
}

// sockaddrIP returns the IP address of a TCP peer, unmapped; the zero
// Addr for any other.
func sockaddrIP(sa unix.Sockaddr) netip.Addr {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrFrom4(sa.Addr)
	case *unix.SockaddrInet6:
		return netip.AddrFrom16(sa.Addr).Unmap()
	}
	return netip.Addr{}
}

// offer hands conn to a worker not in tried, choosing by policy; it
// reports whether some worker took it. It may be called from any
// goroutine.
func (d *dispatcher) offer(conn acceptedConn, tried map[int]bool) bool {
	d.offers.Add(1)
	subs := *d.subs.Load()
	for _, i := range d.order(conn, subs) {
		s := subs[i]
		if tried[s.c.worker] {
			continue
		}
		if d.handTo(s, conn) {
			return true
		}
	}
	return false
}

// order returns the indexes of subs in the order to try them.
func (d *dispatcher) order(conn acceptedConn, subs []subscriber) []int {
	n := len(subs)
	order := make([]int, n)
	if n == 0 {
		return order
	}
	if !d.sticky {
		start := int(d.next.Add(1) % uint64(n))
		for i := range order {
			order[i] = (start + i) % n
		}
		return order
	}
	// Rendezvous hashing on the client's IP address: each address goes to
	// the worker with the highest score, so removing a worker moves only
	// its own clients, and adding one takes about 1/n of them.
	ip := ""
	if conn.ip.IsValid() {
		ip = conn.ip.String()
	}
	scores := make([]uint64, n)
	for i, s := range subs {
		h := fnv.New64a()
		h.Write([]byte(ip))
		h.Write([]byte{0})
		h.Write([]byte(strconv.Itoa(s.c.worker)))
		scores[i] = mix64(h.Sum64())
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return scores[order[a]] > scores[order[b]] })
	return order
}

// mix64 spreads every bit of h over the result (SplitMix64's finalizer).
// FNV-1a alone leaves the scores of one address for worker ids that differ
// in their last digit a fixed distance apart, so that comparing them
// favoured some workers: workers 1, 2 and 3 got 50%, 25% and 25% of
// addresses, and a fourth worker took half of them instead of a quarter.
func mix64(h uint64) uint64 {
	h = (h ^ h>>30) * 0xbf58476d1ce4e5b9
	h = (h ^ h>>27) * 0x94d049bb133111eb
	return h ^ h>>31
}

// handTo sends conn to subscriber s as a newconn; it reports whether the
// message was queued. The connection stays open until the worker answers.
func (d *dispatcher) handTo(s subscriber, conn acceptedConn) bool {
	return s.hand(pendingConn{conn: conn, disp: d}, true)
}

// hand sends pc's connection to subscriber s as a newconn; it reports
// whether the message was queued. The connection stays open until the
// worker answers. count says the connection is one of the address's, for
// the worker's handed-out count (a health probe's is not).
func (s subscriber) hand(pc pendingConn, count bool) bool {
	seq := s.c.nextSeq()
	s.c.addPending(seq, pc)
	line := make([]byte, 0, len(s.prefix)+16)
	line = append(line, s.prefix...)
	line = strconv.AppendInt(line, int64(seq), 10)
	line = append(line, "}}\n"...)
	// Counted before it is sent: the worker may answer, and its client see
	// the response, before SendLineNow returns.
	if count {
		s.c.handedOut.Add(1)
	}
	if err := s.c.ch.SendLineNow(line, pc.conn.fd); err != nil {
		if count {
			s.c.handedOut.Add(-1)
		}
		// Unless the worker's answer already took it (it cannot have: it
		// never got the line), the connection is still ours to offer.
		if _, ok := s.c.takePending(seq); !ok {
			return true
		}
		return false
	}
	return true
}
