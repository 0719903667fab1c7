package supervisor

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
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
//
// As Node's RoundRobinHandle does, a worker is handed its next connection of
// a socket only once it answered the previous one: the workers that have
// answered form a free list, and only they receive. While no worker is
// free, paddock stops accepting and the connections wait in the kernel's
// accept queue, where the first worker to answer takes the next one, instead
// of queueing at a worker that may be stalled. The hot path costs one wake
// of paddock per connection under load: the goroutine that reads a worker's
// answer closes paddock's copy of the connection it answered, accepts the
// next one and writes it to that worker, all without waiting; the
// dispatcher's own goroutine waits in the netpoller only while some worker
// is free and the accept queue is empty.

// acceptedConn is a connection a dispatcher accepted: paddock's copy of
// its descriptor, and the client's IP address (sticky).
type acceptedConn struct {
	fd int
	ip netip.Addr // not valid for unix sockets, nor under rr
}

// Close closes paddock's copy of the connection.
func (c acceptedConn) Close() { closeFD(c.fd) }

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

// slotKey names a subscription: a worker's channel and its server's key.
type slotKey struct {
	c   *channel
	key string
}

// slot is a subscriber's place in its dispatcher's free list. Its fields
// are guarded by the dispatcher's mu.
type slot struct {
	sub subscriber
	// busy says a connection was handed to the worker and it has not
	// answered yet: it gets no other until it does.
	busy bool
	// live says the worker is in the dispatcher's subscriber list; a slot
	// that left it still takes the answer of its last connection.
	live bool
	// waiting (sticky) holds the connections of this worker's clients
	// accepted while it was busy, oldest first: they are its alone.
	waiting []acceptedConn
}

// free reports whether the slot's worker can take a connection now: it
// subscribes, answered its last connection, and its channel is open.
func (sl *slot) free() bool {
	return sl.live && !sl.busy && !sl.sub.c.closed()
}

// heldConn is a connection accepted and not handed out: refused by a
// worker (not, which is offered it last), left by a worker that went away,
// or accepted when every worker went away at once.
type heldConn struct {
	conn  acceptedConn
	not   *channel
	since time.Time
}

// dispatcher accepts the connections of one socket and hands each to a
// free worker: the next in turn (rr), or the one a client's address hashes
// to (sticky). It accepts only while some worker is free, so that while
// none is, connections wait in the kernel's queue.
//
// Under sticky a connection belongs to one worker: one accepted for a busy
// worker waits in paddock, for that worker alone, while the free workers
// go on receiving theirs; a worker has at most stickyWaitLimit waiting, and
// a connection beyond that is closed (the client sees it reset) rather than
// given to another worker or left to hold up the others' clients.
//
// Its owner, the goroutine that owns the socket's pool, creates it with
// newDispatcher, runs Run in a goroutine it waits for, changes its workers
// with setSubscribers, and ends it with Close. answered is called by the
// goroutines that read the workers' channels.
type dispatcher struct {
	app    string
	sticky bool
	sock   *netshare.Socket
	ln     *os.File // a non-blocking duplicate of the socket, in the netpoller
	lnfd   int      // ln's descriptor: accept4 on it needs mu and !stopped
	wake   chan struct{}
	// offers counts the connections handed to a worker (tries to).
	offers atomic.Uint64
	// dropped counts the sticky connections closed because their worker
	// had waitLimit waiting already.
	dropped atomic.Uint64
	// waitLimit is stickyWaitLimit (tests lower it).
	waitLimit int

	mu    sync.Mutex
	slots map[slotKey]*slot // the live ones, in list order in live
	live  []*slot
	next  int // rr: the place in live of the next worker in turn
	held  []heldConn
	// polling says Run is in (or about to enter) its wait for the socket
	// to become readable; when false, a worker that becomes free with
	// nothing to take wakes Run.
	polling bool
	// stopped is set before ln closes: nothing accepts on lnfd after.
	stopped bool
	// line is the scratch space of newconn lines.
	line []byte

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

// stickyWaitLimit is how many connections may wait in paddock for one
// busy worker under sticky.
const stickyWaitLimit = 256

// acceptBatch bounds how many connections one free worker's answer
// accepts under sticky (each may belong to another worker) before Run is
// left to accept the rest.
const acceptBatch = 16

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
	return &dispatcher{app: app, sticky: sticky, sock: sock.Ref(), ln: ln, lnfd: fd,
		slots: map[slotKey]*slot{}, waitLimit: stickyWaitLimit,
		wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}, nil
}

// setSubscribers replaces the workers that take connections. A worker
// that stays keeps its place in the free list; the connections held for
// want of a worker, and those waiting for one that left (sticky), are
// handed to the free workers (or wait for them). It never blocks: it
// writes to worker channels without waiting, and Run accepts.
func (d *dispatcher) setSubscribers(subs []subscriber) {
	d.mu.Lock()
	old := d.slots
	d.slots = make(map[slotKey]*slot, len(subs))
	d.live = d.live[:0:0]
	for _, s := range subs {
		k := slotKey{s.c, s.key}
		sl := old[k]
		if sl == nil {
			sl = &slot{}
		}
		delete(old, k)
		sl.sub, sl.live = s, true
		d.slots[k] = sl
		d.live = append(d.live, sl)
	}
	now := time.Now()
	for _, sl := range old {
		sl.live = false
		for _, c := range sl.waiting {
			d.held = append(d.held, heldConn{conn: c, since: now})
		}
		sl.waiting = nil
	}
	if d.stopped {
		// Run has ended (or is ending): it closes nothing more.
		for _, h := range d.held {
			h.conn.Close()
		}
		d.held = nil
	} else {
		d.serveHeldLocked(now)
	}
	d.mu.Unlock()
	d.signal()
}

// signal wakes Run to look at the free list again. It never blocks.
func (d *dispatcher) signal() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run accepts connections and hands them out until ctx is done or Close is
// called, then closes its own descriptor of the socket and returns; the
// socket itself stays open (Close drops the dispatcher's reference). It is
// called once, in a goroutine of its own that the owner waits for. A
// connection accepted and not yet taken by a worker waits for one; when no
// worker subscribes, lingerWithoutWorkers at most.
func (d *dispatcher) Run(ctx context.Context) {
	defer close(d.done)
	defer d.closeHeld()
	defer d.stop()
	unwatch := context.AfterFunc(ctx, d.stop)
	defer unwatch()
	rc, err := d.ln.SyscallConn()
	if err != nil {
		return
	}
	for {
		d.mu.Lock()
		linger := d.serveHeldLocked(time.Now())
		poll := d.anyFreeLocked() && !d.stopped
		d.polling = poll
		d.mu.Unlock()
		if poll {
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
			continue
		}
		if !d.waitForWork(linger) {
			return
		}
	}
}

// waitForWork waits until Run is woken (signal) or, when linger is not
// zero, linger passes; it returns false when the dispatcher stops.
func (d *dispatcher) waitForWork(linger time.Duration) bool {
	var expire <-chan time.Time
	if linger > 0 {
		t := time.NewTimer(linger)
		defer t.Stop()
		expire = t.C
	}
	select {
	case <-d.wake:
	case <-expire:
	case <-d.quit:
		return false
	}
	return true
}

// stop makes Run return: it closes quit, and the descriptor Run waits on;
// nothing accepts on it afterwards.
func (d *dispatcher) stop() {
	d.quitOnce.Do(func() {
		d.mu.Lock()
		d.stopped = true
		d.mu.Unlock()
		close(d.quit)
		d.ln.Close()
	})
}

// closeHeld closes the connections no worker took, once Run ends.
func (d *dispatcher) closeHeld() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, h := range d.held {
		h.conn.Close()
	}
	d.held = nil
	for _, sl := range d.live {
		for _, c := range sl.waiting {
			c.Close()
		}
		sl.waiting = nil
	}
}

// Close stops Run, waits for it to return, and drops the dispatcher's
// reference to its socket. The owner calls it once, after it started Run.
func (d *dispatcher) Close() {
	d.stop()
	<-d.done
	d.sock.Release()
}

// acceptReady accepts and hands out connections while some worker is free,
// waiting in the netpoller while none is queued. It returns an accept
// error that is not the connection's own (to back off), or the error of
// the wait itself (the listener was closed).
func (d *dispatcher) acceptReady(rc syscall.RawConn) (acceptErr, err error) {
	// accept4 straight on the listening descriptor, in the netpoller's
	// read wait: paddock's copy of a connection lives only until the
	// worker has its own, so it is never registered with the poller nor
	// wrapped in a net.Conn.
	err = rc.Read(func(uintptr) bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		for {
			d.serveHeldLocked(time.Now())
			if d.stopped || !d.anyFreeLocked() {
				d.polling = false
				return true // leave the rest in the kernel's queue
			}
			conn, err := d.acceptLocked()
			switch err {
			case nil:
			case unix.EAGAIN:
				return false // wait until readable
			default: // EMFILE, ENFILE, ENOBUFS...: back off
				acceptErr = err
				d.polling = false
				return true
			}
			d.placeLocked(conn, nil)
		}
	})
	return acceptErr, err
}

// acceptLocked accepts one connection without waiting: under sticky with
// its client's address. It retries what is the connection's own failure
// (ECONNABORTED) and returns any other error (EAGAIN: none is queued).
func (d *dispatcher) acceptLocked() (acceptedConn, error) {
	for {
		fd, ip, err := accept4(d.lnfd, d.sticky)
		switch err {
		case nil:
			return acceptedConn{fd: fd, ip: ip}, nil
		case unix.EINTR, unix.ECONNABORTED:
			continue
		}
		return acceptedConn{fd: -1}, err
	}
}

// anyFreeLocked reports whether some worker can take a connection now.
func (d *dispatcher) anyFreeLocked() bool {
	for _, sl := range d.live {
		if sl.free() {
			return true
		}
	}
	return false
}

// answered takes the answer of the worker of sl to the connection conn the
// dispatcher handed it: accepted, paddock's copy is closed; refused (or
// returned unanswered by a worker that went away), it goes to another
// worker. Either way the worker is free again and, while it subscribes,
// takes the next connection at once: one that waits in paddock, else one
// from the kernel's queue. It may be called from any goroutine.
func (d *dispatcher) answered(sl *slot, conn acceptedConn, accepted bool) {
	d.mu.Lock()
	if d.stopped {
		// Nothing is handed out any more, and nothing held is closed
		// after Run ended: the connection goes now.
		sl.busy = false
		d.mu.Unlock()
		conn.Close()
		return
	}
	if !accepted {
		d.placeLocked(conn, sl.sub.c)
	}
	sl.busy = false
	if sl.free() {
		d.fillLocked(sl)
	}
	d.mu.Unlock()
	if accepted {
		conn.Close()
	}
}

// fillLocked hands the free worker of sl its next connection: under
// sticky, the oldest of its own waiting; under rr, the oldest held that it
// did not refuse; else a connection accepted now. When the kernel's queue
// is empty and Run is not polling it, Run is woken to.
func (d *dispatcher) fillLocked(sl *slot) {
	if d.sticky {
		for len(sl.waiting) > 0 && sl.free() {
			conn := sl.waiting[0]
			sl.waiting = sl.waiting[1:]
			if !d.sendLocked(sl, conn) {
				sl.waiting = append([]acceptedConn{conn}, sl.waiting...)
				return // its channel broke: the owner replaces it
			}
		}
		if len(sl.waiting) == 0 {
			sl.waiting = nil
		}
	} else {
		for i := 0; i < len(d.held) && sl.free(); i++ {
			if h := d.held[i]; h.not != sl.sub.c {
				d.held = append(d.held[:i], d.held[i+1:]...)
				if !d.sendLocked(sl, h.conn) {
					d.placeLocked(h.conn, h.not)
				}
				i--
			}
		}
	}
	for range acceptBatch {
		if !sl.free() || d.stopped {
			return
		}
		conn, err := d.acceptLocked()
		if err != nil {
			// Empty (EAGAIN), or an error Run backs off from.
			if !d.polling {
				d.polling = true
				d.signal()
			}
			return
		}
		if d.sticky {
			d.placeLocked(conn, nil)
		} else if !d.sendLocked(sl, conn) {
			d.placeLocked(conn, sl.sub.c)
		}
	}
	if sl.free() && !d.polling {
		d.polling = true
		d.signal()
	}
}

// serveHeldLocked hands the connections held to free workers: under rr
// the oldest first, each to a worker that did not refuse it; under sticky
// each to its worker (at once or after those waiting). While no worker
// subscribes, a connection held longer than lingerWithoutWorkers is
// closed; it returns how long until the next one is, or 0.
func (d *dispatcher) serveHeldLocked(now time.Time) time.Duration {
	if len(d.held) == 0 {
		return 0
	}
	if len(d.live) == 0 {
		var next time.Duration
		kept := d.held[:0]
		for _, h := range d.held {
			left := lingerWithoutWorkers - now.Sub(h.since)
			if left <= 0 || d.stopped {
				h.conn.Close()
				continue
			}
			if next == 0 || left < next {
				next = left
			}
			kept = append(kept, h)
		}
		clear(d.held[len(kept):])
		d.held = kept
		return next
	}
	held := d.held
	d.held = nil
	for i, h := range held {
		if !d.sticky && !d.anyFreeLocked() {
			d.held = append(d.held, held[i:]...)
			break
		}
		d.placeLocked(h.conn, h.not)
	}
	return 0
}

// placeLocked hands conn to a worker, or keeps it until one can take it.
// not, when set, is the worker that refused it: it gets it only when no
// other worker subscribes, and then it is closed instead.
func (d *dispatcher) placeLocked(conn acceptedConn, not *channel) {
	if d.sticky {
		d.placeStickyLocked(conn, not)
		return
	}
	n := len(d.live)
	others := false
	for i := range n {
		j := (d.next + i) % n
		sl := d.live[j]
		if sl.sub.c == not {
			continue
		}
		others = true
		if !sl.free() {
			continue
		}
		if d.sendLocked(sl, conn) {
			d.next = (j + 1) % n
			return
		}
	}
	if not != nil && n > 0 && !others {
		conn.Close() // refused, and no other worker to take it
		return
	}
	d.held = append(d.held, heldConn{conn: conn, not: not, since: time.Now()})
}

// placeStickyLocked hands conn to the worker its client's address goes
// to, the first by rendezvous hashing of the live workers whose channel is
// open, other than not: at once when it is free, else after the
// connections waiting for it; beyond waitLimit waiting, conn is closed. With no such worker it is held.
func (d *dispatcher) placeStickyLocked(conn acceptedConn, not *channel) {
	for {
		sl := d.stickyChoiceLocked(conn.ip, not)
		if sl == nil {
			if not != nil && len(d.live) > 0 {
				conn.Close()
				return
			}
			d.held = append(d.held, heldConn{conn: conn, since: time.Now()})
			return
		}
		if !sl.free() || len(sl.waiting) > 0 {
			if len(sl.waiting) >= d.waitLimit {
				d.dropped.Add(1)
				conn.Close()
				return
			}
			sl.waiting = append(sl.waiting, conn)
			return
		}
		if d.sendLocked(sl, conn) {
			return
		}
		// Its channel broke just now: the next worker, until the owner
		// replaces the list.
	}
}

// stickyChoiceLocked returns the live slot, other than not's and with an
// open channel, that the rendezvous hash puts first for ip; nil when
// there is none.
func (d *dispatcher) stickyChoiceLocked(ip netip.Addr, not *channel) *slot {
	var best *slot
	var bestScore uint64
	var buf [64]byte
	addr := stickyAddr(buf[:0], ip)
	for i := range d.live {
		sl := d.live[i]
		if sl.sub.c == not || sl.sub.c.closed() {
			continue
		}
		if s := stickyScore(addr, sl.sub.c.worker); best == nil || s > bestScore {
			best, bestScore = sl, s
		}
	}
	return best
}

// sendLocked hands conn to the free worker of sl, which is busy from then
// until it answers; it reports whether the channel took it (when not, conn
// is still the caller's).
func (d *dispatcher) sendLocked(sl *slot, conn acceptedConn) bool {
	d.offers.Add(1)
	sl.busy = true
	var ok bool
	d.line, ok = sl.sub.handWith(d.line, pendingConn{conn: conn, disp: d, slot: sl}, true)
	if !ok {
		sl.busy = false
	}
	return ok
}

// order returns the indexes of subs in the order the dispatcher would
// try them for conn: under sticky by rendezvous hash (the first is the
// connection's worker), under rr from the next in turn. It is what the
// tests compare against; the dispatcher itself only needs the first.
func (d *dispatcher) order(conn acceptedConn, subs []subscriber) []int {
	n := len(subs)
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	if !d.sticky {
		for i := range order {
			order[i] = (d.next + i) % n
		}
		return order
	}
	var buf [64]byte
	addr := stickyAddr(buf[:0], conn.ip)
	scores := make([]uint64, n)
	for i, s := range subs {
		scores[i] = stickyScore(addr, s.c.worker)
	}
	// Insertion sort, highest score first: n is the number of workers.
	for i := 1; i < n; i++ {
		for j := i; j > 0 && scores[order[j]] > scores[order[j-1]]; j-- {
			order[j], order[j-1] = order[j-1], order[j]
		}
	}
	return order
}

// stickyAddr appends the text of ip (nothing for a client without one: a
// unix socket) to dst: what the sticky hash takes.
func stickyAddr(dst []byte, ip netip.Addr) []byte {
	if !ip.IsValid() {
		return dst
	}
	return ip.AppendTo(dst)
}

// stickyScore is the rendezvous score of worker for a client address:
// each address goes to the worker with the highest score, so removing a
// worker moves only its own clients, and adding one takes about 1/n of
// them. FNV-1a of the address, a zero byte and the worker's id in
// decimal, spread by mix64.
func stickyScore(addr []byte, worker int) uint64 {
	const offset64, prime64 = 14695981039346656037, 1099511628211
	h := uint64(offset64)
	for _, b := range addr {
		h = (h ^ uint64(b)) * prime64
	}
	h *= prime64 // the zero byte: h ^ 0 == h
	var buf [20]byte
	for _, b := range strconv.AppendInt(buf[:0], int64(worker), 10) {
		h = (h ^ uint64(b)) * prime64
	}
	return mix64(h)
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

// hand sends pc's connection to subscriber s as a newconn; it reports
// whether the message was queued. The connection stays open until the
// worker answers. count says the connection is one of the address's, for
// the worker's handed-out count (a health probe's is not).
func (s subscriber) hand(pc pendingConn, count bool) bool {
	_, ok := s.handWith(nil, pc, count)
	return ok
}

// handWith is hand with buf as the space to build the line in; it
// returns buf, grown if need be, for the next call.
func (s subscriber) handWith(buf []byte, pc pendingConn, count bool) ([]byte, bool) {
	seq := s.c.nextSeq()
	s.c.addPending(seq, pc)
	line := append(buf[:0], s.prefix...)
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
			return line, true
		}
		return line, false
	}
	return line, true
}
