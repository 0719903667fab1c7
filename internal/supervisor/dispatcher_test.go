package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/paddock-sh/paddock/internal/ipc"
	"github.com/paddock-sh/paddock/internal/nodeipc"
	"github.com/paddock-sh/paddock/internal/testkit"
	"github.com/paddock-sh/paddock/manifest"
	"github.com/paddock-sh/paddock/netshare"
)

// These tests run a dispatcher alone, without a Supervisor: a real
// listening socket, real clients, and workers at the other end of real IPC
// channels (ipc.Channel over a socketpair), played by goroutines of the
// test that speak the worker's side of newconn as Node's cluster does.

// dispatchTest is a dispatcher under test with the goroutines it needs.
type dispatchTest struct {
	t    *testing.T
	sock *netshare.Socket
	d    *dispatcher
	ctx  context.Context
	// cancel stops Run; wg waits for Run and every test worker.
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed bool
}

// startDispatcher runs a dispatcher (sticky or rr) on a new TCP socket of
// 127.0.0.1; the test's cleanup stops it, its workers and the socket.
func startDispatcher(t *testing.T, sticky bool) *dispatchTest {
	t.Helper()
	l, err := manifest.ParseListen("127.0.0.1:0", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sock, err := netshare.NewPool().Acquire(l, false, "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := setNonblock(sock.File); err != nil {
		t.Fatal(err)
	}
	d, err := newDispatcher("web", sticky, sock)
	if err != nil {
		sock.Release()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	dt := &dispatchTest{t: t, sock: sock, d: d, ctx: ctx, cancel: cancel}
	dt.wg.Go(func() { d.Run(ctx) })
	t.Cleanup(dt.stop)
	return dt
}

// stop ends the dispatcher (unless the test did), then every test worker,
// and drops the test's reference to the socket.
func (dt *dispatchTest) stop() {
	if !dt.closed {
		dt.closed = true
		dt.d.Close()
		dt.sock.Release()
	}
	dt.cancel()
	dt.wg.Wait()
}

// addr is the address clients dial.
func (dt *dispatchTest) addr() string { return dt.sock.Addr.String() }

// testWorker plays a cluster worker at the end of a real IPC channel: for
// each newconn it acknowledges the descriptor, then either writes its id
// to the connection, closes its copy and answers accepted:true, or (refuse)
// closes its copy and answers accepted:false.
type testWorker struct {
	id     int
	c      *channel
	end    *nodeipc.Conn // the worker's end
	refuse bool
	// offered counts the newconns received.
	offered atomic.Int64
	// gate, when set (stall), holds the worker's reading of its channel
	// until it is closed (release): a worker whose event loop is blocked.
	gate     chan struct{}
	gateOnce sync.Once
	// busy is set from a newconn until the worker answers it; early counts
	// the newconns received while busy: handed to the worker before it
	// answered the previous one.
	busy  atomic.Bool
	early atomic.Int64
	// peers are the client addresses of the connections served, in order.
	mu    sync.Mutex
	peers []netip.Addr
}

// served returns the client addresses of the connections w served.
func (w *testWorker) served() []netip.Addr {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]netip.Addr(nil), w.peers...)
}

// release lets a stalled worker go on.
func (w *testWorker) release() { w.gateOnce.Do(func() { close(w.gate) }) }

// addWorker starts a test worker with id on a channel of its own.
func (dt *dispatchTest) addWorker(id int, refuse bool) *testWorker {
	dt.t.Helper()
	return dt.startWorker(id, refuse, false)
}

// addStalledWorker starts a test worker that stops reading its channel
// once it received its first newconn, until release.
func (dt *dispatchTest) addStalledWorker(id int) *testWorker {
	dt.t.Helper()
	return dt.startWorker(id, false, true)
}

// startWorker starts a test worker (refusing or stalling, if told).
func (dt *dispatchTest) startWorker(id int, refuse, stall bool) *testWorker {
	dt.t.Helper()
	ch, child, err := ipc.Pair(id)
	if err != nil {
		dt.t.Fatal(err)
	}
	end, err := nodeipc.NewConn(child)
	child.Close()
	if err != nil {
		ch.Close()
		dt.t.Fatal(err)
	}
	w := &testWorker{id: id, c: &channel{worker: id, ch: ch}, end: end, refuse: refuse}
	if stall {
		w.gate = make(chan struct{})
	}
	ch.Intercept = w.c.interceptAnswer
	in := make(chan ipc.Message, 16)
	dt.wg.Go(func() { ch.Run(dt.ctx, in) })
	dt.wg.Go(func() {
		for {
			select {
			case m := <-in:
				dt.t.Errorf("worker %d: unexpected message %s", id, m.Raw)
			case <-ch.Closed():
				return
			}
		}
	})
	dt.wg.Go(func() {
		defer end.Close()
		if err := end.ReadLines(w.take); err != nil && !errors.Is(err, net.ErrClosed) {
			dt.t.Errorf("worker %d: %v", id, err)
		}
	})
	dt.t.Cleanup(func() {
		if w.gate != nil {
			w.release()
		}
		end.Close()
		if n := w.early.Load(); n != 0 {
			dt.t.Errorf("worker %d was handed %d connections before it answered the previous one", id, n)
		}
	})
	return w
}

// take handles one line the worker receives.
func (w *testWorker) take(l nodeipc.Line) error {
	if l.Kind != nodeipc.Handle {
		return fmt.Errorf("worker %d: unexpected line %s", w.id, l.Raw)
	}
	if l.File == nil {
		return fmt.Errorf("worker %d: newconn without its descriptor", w.id)
	}
	var m struct {
		Cmd, Act, Key string
		Seq           int
	}
	if err := json.Unmarshal(l.Raw, &m); err != nil || m.Act != "newconn" {
		l.File.Close()
		return fmt.Errorf("worker %d: not a newconn: %s", w.id, l.Raw)
	}
	if w.busy.Swap(true) {
		w.early.Add(1)
	}
	w.offered.Add(1)
	if w.gate != nil {
		<-w.gate
	}
	if err := w.end.WriteLine(nodeipc.AckLine, -1); err != nil {
		l.File.Close()
		return err
	}
	if !w.refuse {
		if sa, err := unix.Getpeername(int(l.File.Fd())); err == nil {
			w.mu.Lock()
			w.peers = append(w.peers, rawSockaddrIPOf(sa))
			w.mu.Unlock()
		}
		fmt.Fprintf(l.File, "%d %s\n", w.id, m.Key)
	}
	l.File.Close()
	answer := fmt.Sprintf(`{"cmd":"NODE_CLUSTER","ack":%d,"accepted":%t,"seq":%d}`+"\n", m.Seq, !w.refuse, m.Seq)
	w.busy.Store(false) // paddock may hand the next one as soon as it reads this
	return w.end.WriteLine([]byte(answer), -1)
}

// subscribe makes ws, in this order, the dispatcher's subscribers.
func (dt *dispatchTest) subscribe(ws ...*testWorker) {
	subs := make([]subscriber, 0, len(ws))
	for _, w := range ws {
		subs = append(subs, newSubscriber(w.c, "key"+strconv.Itoa(w.id)))
	}
	dt.d.setSubscribers(subs)
}

// dialFrom connects to the dispatcher's socket from ip (any when not
// valid) and returns the connection.
func (dt *dispatchTest) dialFrom(ip netip.Addr) net.Conn {
	dt.t.Helper()
	d := net.Dialer{Timeout: patience}
	if ip.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: ip.AsSlice()}
	}
	c, err := d.Dial("tcp", dt.addr())
	if err != nil {
		dt.t.Fatal(err)
	}
	return c
}

// served reads which worker served c ("id key"), and closes c.
func (dt *dispatchTest) served(c net.Conn) int {
	dt.t.Helper()
	defer c.Close()
	c.SetDeadline(time.Now().Add(patience))
	b, err := io.ReadAll(c)
	if err != nil {
		dt.t.Fatal(err)
	}
	var id int
	var key string
	if _, err := fmt.Sscanf(string(b), "%d %s\n", &id, &key); err != nil {
		dt.t.Fatalf("answer %q: %v", b, err)
	}
	if key != "key"+strconv.Itoa(id) {
		dt.t.Errorf("worker %d got a newconn for key %q", id, key)
	}
	return id
}

// get makes one connection from ip and returns the worker that served it.
func (dt *dispatchTest) get(ip netip.Addr) int {
	dt.t.Helper()
	return dt.served(dt.dialFrom(ip))
}

// openFDs counts the descriptors open in this process.
func openFDs(t *testing.T) int {
	t.Helper()
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

// TestDispatcherRoundRobin: under rr, connections made one after another
// go to the subscribers in turn, each worker's next in the list, so that
// each of 3 gets a third; every newconn carries the worker's own key, and
// handedOut counts what each got. paddock's copies of the connections are
// closed once the workers took them: no descriptor is left over.
func TestDispatcherRoundRobin(t *testing.T) {
	dt := startDispatcher(t, false)
	ws := []*testWorker{dt.addWorker(1, false), dt.addWorker(2, false), dt.addWorker(3, false)}
	dt.subscribe(ws...)
	dt.get(netip.Addr{}) // the netpoller and the channels are set up
	before := openFDs(t)
	handed := map[int]int64{}
	for _, w := range ws {
		handed[w.id] = w.c.handedOut.Load()
	}
	const n = 30
	var got []int
	for range n {
		got = append(got, dt.get(netip.Addr{}))
	}
	count := map[int]int{}
	for i, id := range got {
		count[id]++
		if i > 0 && id != got[i-1]%3+1 {
			t.Fatalf("connections went to workers %v: %d after %d", got, id, got[i-1])
		}
	}
	for _, w := range ws {
		if count[w.id] != n/3 {
			t.Errorf("worker %d got %d of %d connections: %v", w.id, count[w.id], n, got)
		}
		if h := w.c.handedOut.Load() - handed[w.id]; h != int64(count[w.id]) {
			t.Errorf("worker %d: handedOut %d, served %d", w.id, h, count[w.id])
		}
	}
	if after := openFDs(t); after != before {
		t.Errorf("%d descriptors open before %d connections, %d after", before, n, after)
	}
}

// TestDispatcherSticky: under sticky, every connection of one client
// address goes to the worker that the rendezvous hash (order) puts first
// for it, whatever the order of the subscriber list, and with 3 workers
// and 30 addresses every worker serves some. Then the first worker in the
// list leaves: the clients of the others stay where they were, its own
// move, and it is offered nothing more. (TestStickySessions checks the
// same with Node workers; this is the check for any worker.)
func TestDispatcherSticky(t *testing.T) {
	dt := startDispatcher(t, true)
	ws := []*testWorker{dt.addWorker(1, false), dt.addWorker(2, false), dt.addWorker(3, false)}
	subs := make([]subscriber, len(ws))
	for i, w := range ws {
		subs[i] = newSubscriber(w.c, "key"+strconv.Itoa(w.id))
	}
	var clients []netip.Addr
	for i := range 30 {
		clients = append(clients, netip.AddrFrom4([4]byte{127, 0, 0, byte(2 + i)}))
	}
	before := map[netip.Addr]int{}
	count := map[int]int{}
	for _, ip := range clients {
		want := subs[dt.d.order(acceptedConn{ip: ip}, subs)[0]].c.worker
		for _, list := range [][]*testWorker{{ws[0], ws[1], ws[2]}, {ws[2], ws[0], ws[1]}} {
			dt.subscribe(list...)
			for range 2 {
				if got := dt.get(ip); got != want {
					t.Fatalf("client %s reached worker %d, want %d", ip, got, want)
				}
			}
		}
		before[ip] = want
		count[want]++
	}
	for _, w := range ws {
		if count[w.id] == 0 {
			t.Fatalf("worker %d serves none of %d clients: %v", w.id, len(clients), count)
		}
	}
	gone := ws[0]
	offered := gone.offered.Load()
	dt.subscribe(ws[1], ws[2])
	for _, ip := range clients {
		got := dt.get(ip)
		if before[ip] != gone.id && got != before[ip] {
			t.Errorf("client %s moved from worker %d to %d although %d stayed", ip, before[ip], got, before[ip])
		}
		if got == gone.id {
			t.Errorf("client %s still reaches worker %d, which left", ip, gone.id)
		}
	}
	if n := gone.offered.Load() - offered; n != 0 {
		t.Errorf("worker %d was offered %d connections after it left", gone.id, n)
	}
}

// TestDispatcherRefusedGoesToAnother: a worker that answers accepted:false
// is offered connections under rr, and each connection it refuses is handed
// to the other worker, which serves every one. (Offering a refused
// connection again takes a turn too, so the refusing worker is first for
// most connections, not every other one.)
func TestDispatcherRefusedGoesToAnother(t *testing.T) {
	dt := startDispatcher(t, false)
	refusing, ok := dt.addWorker(1, true), dt.addWorker(2, false)
	dt.subscribe(refusing, ok)
	const n = 10
	for range n {
		if id := dt.get(netip.Addr{}); id != ok.id {
			t.Fatalf("a connection reached worker %d", id)
		}
	}
	if refusing.offered.Load() == 0 {
		t.Errorf("the refusing worker was offered none of %d connections", n)
	}
	if ok.offered.Load() != n {
		t.Errorf("the other worker was offered %d of %d connections", ok.offered.Load(), n)
	}
}

// TestDispatcherSkipsFailedSubscriber: a subscriber whose channel closed
// (its worker went away) is skipped: the connection goes to the next
// worker, nothing stays pending on the dead channel, and its handedOut is
// not counted.
func TestDispatcherSkipsFailedSubscriber(t *testing.T) {
	dt := startDispatcher(t, false)
	dead, ok := dt.addWorker(1, false), dt.addWorker(2, false)
	dead.end.Close() // the worker's end: its channel sees end of file
	<-dead.c.ch.Closed()
	dt.subscribe(dead, ok)
	const n = 6
	for range n {
		if id := dt.get(netip.Addr{}); id != ok.id {
			t.Fatalf("a connection reached worker %d", id)
		}
	}
	if p := dead.c.drainPending(); len(p) != 0 || dead.c.handedOut.Load() != 0 {
		t.Errorf("the dead worker: %d pending, handedOut %d", len(p), dead.c.handedOut.Load())
	}
	if ok.c.handedOut.Load() != n {
		t.Errorf("the live worker: handedOut %d, want %d", ok.c.handedOut.Load(), n)
	}
}

// TestDispatcherWaitsForSubscribers: a connection made while no worker
// takes connections waits in the kernel's queue, and is served once one
// subscribes.
func TestDispatcherWaitsForSubscribers(t *testing.T) {
	dt := startDispatcher(t, false)
	w := dt.addWorker(7, false)
	c := dt.dialFrom(netip.Addr{})
	dt.subscribe(w)
	if id := dt.served(c); id != w.id {
		t.Errorf("served by worker %d", id)
	}
}

// TestDispatcherClose: Close ends Run, whether it waits for subscribers or
// for connections, and drops the dispatcher's reference to the socket: the
// address closes once the test drops its own. Cancelling Run's context ends
// Run too.
func TestDispatcherClose(t *testing.T) {
	t.Run("without subscribers", func(t *testing.T) {
		dt := startDispatcher(t, false)
		dt.closed = true
		dt.d.Close()
		dt.sock.Release()
		if c, err := net.Dial("tcp", dt.addr()); err == nil {
			c.Close()
			t.Error("the socket is still open after Close and its last release")
		}
	})
	t.Run("with subscribers", func(t *testing.T) {
		dt := startDispatcher(t, false)
		w := dt.addWorker(1, false)
		dt.subscribe(w)
		dt.get(netip.Addr{})
		dt.closed = true
		dt.d.Close()
		dt.sock.Release()
		if c, err := net.Dial("tcp", dt.addr()); err == nil {
			c.Close()
			t.Error("the socket is still open after Close and its last release")
		}
	})
	t.Run("context", func(t *testing.T) {
		dt := startDispatcher(t, false)
		dt.subscribe(dt.addWorker(1, false))
		dt.get(netip.Addr{})
		dt.cancel()
		<-dt.d.done
	})
}

// TestDispatcherWaitsInsteadOfSpinning: when no subscriber can take a
// connection (the only worker's channel is broken, and the owner has not
// replaced the list yet), the dispatcher neither accepts nor offers it to
// the broken worker: it waits for a new list, and the live worker that
// subscribes then serves it, the only worker it was offered to.
func TestDispatcherWaitsInsteadOfSpinning(t *testing.T) {
	dt := startDispatcher(t, false)
	dead, live := dt.addWorker(1, false), dt.addWorker(2, false)
	dead.end.Close()
	<-dead.c.ch.Closed()
	dt.subscribe(dead)
	c := dt.dialFrom(netip.Addr{})
	dt.subscribe(live)
	if id := dt.served(c); id != live.id {
		t.Fatalf("served by worker %d", id)
	}
	if n := dt.d.offers.Load(); n != 1 {
		t.Errorf("the connection was offered %d times, want once (to the live worker)", n)
	}
}

// acceptQueue returns how many connections wait in the kernel's accept
// queue of the dispatcher's TCP socket (TCP_INFO of a listening socket
// gives it as tcpi_unacked).
func (dt *dispatchTest) acceptQueue() int {
	dt.t.Helper()
	var n int
	var err error
	rc, rerr := dt.sock.File.SyscallConn()
	if rerr != nil {
		dt.t.Fatal(rerr)
	}
	rc.Control(func(fd uintptr) {
		var info *unix.TCPInfo
		info, err = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		if err == nil {
			n = int(info.Unacked)
		}
	})
	if err != nil {
		dt.t.Fatal(err)
	}
	return n
}

// serveAll reads, in goroutines, which worker serves each of conns; the
// channel it returns gets one id per connection (0 when it failed).
func (dt *dispatchTest) serveAll(conns []net.Conn) <-chan int {
	out := make(chan int, len(conns))
	for _, c := range conns {
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(patience))
			b, _ := io.ReadAll(c)
			var id int
			fmt.Sscanf(string(b), "%d", &id)
			out <- id
		}()
	}
	return out
}

// TestDispatcherFreeList: under rr a worker gets its next connection only
// once it answered the previous one, as Node's RoundRobinHandle does. A
// worker that blocks (it stops reading its channel once it received a
// connection) is handed none of 20 more connections: the other worker
// serves them all without waiting for it. With every worker busy,
// connections wait in the kernel's accept queue, not accepted by paddock,
// and are served once the workers answer. Every test worker also checks
// that it never receives a connection while it has one unanswered
// (testWorker.early).
func TestDispatcherFreeList(t *testing.T) {
	dt := startDispatcher(t, false)
	stalled, ok, slow := dt.addStalledWorker(1), dt.addWorker(2, false), dt.addStalledWorker(3)
	dt.subscribe(stalled)
	held := dt.serveAll([]net.Conn{dt.dialFrom(netip.Addr{})})
	testkit.WaitFor(t, "worker 1 handed a connection", func() bool { return stalled.offered.Load() == 1 })

	dt.subscribe(stalled, ok)
	const n = 20
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = dt.dialFrom(netip.Addr{})
	}
	served := dt.serveAll(conns)
	for range n {
		if id := <-served; id != ok.id {
			t.Fatalf("a connection was served by worker %d (0: none) while worker %d is stalled", id, stalled.id)
		}
	}
	if got := stalled.offered.Load(); got != 1 {
		t.Errorf("the stalled worker was handed %d connections, want only its first", got)
	}

	// Both busy: three connections stay in the kernel's queue.
	dt.subscribe(stalled, slow)
	busy := dt.serveAll([]net.Conn{dt.dialFrom(netip.Addr{})})
	testkit.WaitFor(t, "worker 3 handed a connection", func() bool { return slow.offered.Load() == 1 })
	more := []net.Conn{dt.dialFrom(netip.Addr{}), dt.dialFrom(netip.Addr{}), dt.dialFrom(netip.Addr{})}
	testkit.WaitFor(t, "three connections in the kernel's accept queue", func() bool { return dt.acceptQueue() == 3 })
	servedMore := dt.serveAll(more)
	stalled.release()
	slow.release()
	for want, ch := range map[int]<-chan int{stalled.id: held, slow.id: busy} {
		if id := <-ch; id != want {
			t.Errorf("the connection handed to worker %d was served by %d", want, id)
		}
	}
	for range more {
		if id := <-servedMore; id != stalled.id && id != slow.id {
			t.Errorf("a queued connection was served by %d (0: none)", id)
		}
	}
}

// stickyClients returns, of the addresses 127.0.0.2 and up, n that the
// sticky hash gives to worker id among ws.
func stickyClients(t *testing.T, d *dispatcher, ws []*testWorker, id, n int) []netip.Addr {
	t.Helper()
	subs := make([]subscriber, len(ws))
	for i, w := range ws {
		subs[i] = newSubscriber(w.c, "key"+strconv.Itoa(w.id))
	}
	var out []netip.Addr
	for i := 2; len(out) < n; i++ {
		if i > 250 {
			t.Fatalf("fewer than %d of 249 addresses go to worker %d", n, id)
		}
		ip := netip.AddrFrom4([4]byte{127, 0, 0, byte(i)})
		if subs[d.order(acceptedConn{ip: ip}, subs)[0]].c.worker == id {
			out = append(out, ip)
		}
	}
	return out
}

// TestDispatcherStickyBusyWorker: under sticky a connection goes to its
// client's worker even when that worker is busy: it waits in paddock for
// that worker alone, and is handed to it once it answered the previous
// one, in the order they came; meanwhile the other worker's clients are
// served without waiting. Beyond the limit of connections waiting for one
// worker, a connection is closed (never given to another worker). When
// the busy worker leaves, the connections waiting for it go to the
// worker their clients move to.
func TestDispatcherStickyBusyWorker(t *testing.T) {
	dt := startDispatcher(t, true)
	dt.d.waitLimit = 2
	a, b := dt.addStalledWorker(1), dt.addWorker(2, false)
	ws := []*testWorker{a, b}
	dt.subscribe(ws...)
	ofA, ofB := stickyClients(t, dt.d, ws, a.id, 4), stickyClients(t, dt.d, ws, b.id, 5)

	first := dt.serveAll([]net.Conn{dt.dialFrom(ofA[0])})
	testkit.WaitFor(t, "worker 1 handed its client's connection", func() bool { return a.offered.Load() == 1 })
	// Two wait for worker 1; the next one of its clients is one too many.
	waiting := []net.Conn{dt.dialFrom(ofA[1]), dt.dialFrom(ofA[2])}
	for _, ip := range ofB {
		if id := dt.get(ip); id != b.id {
			t.Fatalf("client %s of worker %d served by %d", ip, b.id, id)
		}
	}
	// Worker 2's clients came after the two of worker 1's, which wait in
	// paddock now: the third is closed.
	tooMany := dt.dialFrom(ofA[3])
	tooMany.SetDeadline(time.Now().Add(patience))
	if n, err := tooMany.Read(make([]byte, 1)); n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the connection beyond the limit: read %d, %v; want it closed", n, err)
	}
	tooMany.Close()
	if n := dt.d.dropped.Load(); n != 1 {
		t.Errorf("%d connections dropped, want 1", n)
	}
	if n := a.offered.Load(); n != 1 {
		t.Errorf("busy worker 1 was handed %d connections, want only its first", n)
	}

	// Worker 1 leaves: its waiting clients move to worker 2, the only one.
	dt.subscribe(b)
	moved := dt.serveAll(waiting)
	for range waiting {
		if id := <-moved; id != b.id {
			t.Errorf("a connection waiting for worker 1, which left, was served by %d", id)
		}
	}
	a.release()
	if id := <-first; id != a.id {
		t.Errorf("worker 1's connection was served by %d", id)
	}
}

// TestDispatcherStickyWaitingServedInOrder: the connections that waited
// for a busy worker are handed to it, oldest first, once it answers.
func TestDispatcherStickyWaitingServedInOrder(t *testing.T) {
	dt := startDispatcher(t, true)
	a, b := dt.addStalledWorker(1), dt.addWorker(2, false)
	ws := []*testWorker{a, b}
	dt.subscribe(ws...)
	ofA := stickyClients(t, dt.d, ws, a.id, 3)
	first := dt.serveAll([]net.Conn{dt.dialFrom(ofA[0])})
	testkit.WaitFor(t, "worker 1 handed its client's connection", func() bool { return a.offered.Load() == 1 })
	var later []<-chan int
	for _, ip := range ofA[1:] {
		later = append(later, dt.serveAll([]net.Conn{dt.dialFrom(ip)}))
	}
	// Worker 2 is free, so the dispatcher accepts: both wait in paddock.
	testkit.WaitFor(t, "two connections waiting in paddock for worker 1", func() bool {
		dt.d.mu.Lock()
		defer dt.d.mu.Unlock()
		for _, sl := range dt.d.live {
			if sl.sub.c == a.c {
				return len(sl.waiting) == 2
			}
		}
		return false
	})
	a.release()
	for i, ch := range append([]<-chan int{first}, later...) {
		if id := <-ch; id != a.id {
			t.Errorf("connection %d of worker 1's clients was served by %d", i, id)
		}
	}
	if got := a.served(); fmt.Sprint(got) != fmt.Sprint(ofA) {
		t.Errorf("worker 1 served its clients in the order %v, want %v", got, ofA)
	}
}

// rawSockaddrIPOf returns the IP address of a TCP peer.
func rawSockaddrIPOf(sa unix.Sockaddr) netip.Addr {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrFrom4(sa.Addr)
	case *unix.SockaddrInet6:
		return netip.AddrFrom16(sa.Addr).Unmap()
	}
	return netip.Addr{}
}

// TestDispatcherAnswerAfterClose: a connection a worker refuses after its
// dispatcher closed is closed by paddock at once (nothing would hand it out
// or close it later): its client sees the end of the connection. The other
// worker is busy, so that before the close the refused connection would
// have waited for it.
func TestDispatcherAnswerAfterClose(t *testing.T) {
	dt := startDispatcher(t, false)
	a := dt.startWorker(1, true, true) // refuses, once released
	b := dt.addStalledWorker(2)
	dt.subscribe(a, b)
	c1 := dt.dialFrom(netip.Addr{})
	defer c1.Close()
	testkit.WaitFor(t, "worker 1 handed the first connection", func() bool { return a.offered.Load() == 1 })
	c2 := dt.dialFrom(netip.Addr{})
	defer c2.Close()
	testkit.WaitFor(t, "worker 2 handed the second connection", func() bool { return b.offered.Load() == 1 })
	dt.closed = true
	dt.d.Close()
	dt.sock.Release()
	a.release()
	c1.SetDeadline(time.Now().Add(patience))
	if n, err := c1.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("the connection refused after the close: read %d, %v; want the end of it", n, err)
	}
	b.release()
}
