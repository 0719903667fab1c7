package supervisor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/paddock-sh/paddock/internal/ipc"
	"github.com/paddock-sh/paddock/manifest"
	"github.com/paddock-sh/paddock/netshare"
	"github.com/paddock-sh/paddock/reconcile"
)

// This file is the primary's side of Node's cluster protocol
// (docs/protocol.md): the supervisor answers queryServer with a shared
// socket (none, reuseport) or takes the connections itself and hands them to
// the workers in turn (rr, sticky), and retires channel workers with
// cluster's own disconnect.

// Errno values the worker turns into Node errors.
const (
	errnoAddrInUse = -98 // EADDRINUSE
	errnoNoSupport = -97 // EAFNOSUPPORT: UDP is not shared by paddock
	errnoBadFD     = -9  // EBADF
)

// clusterIn is a NODE_CLUSTER message from a worker.
type clusterIn struct {
	Act         string          `json:"act"`
	Seq         *int            `json:"seq"`
	Ack         *int            `json:"ack"`
	Accepted    *bool           `json:"accepted"`
	Index       json.RawMessage `json:"index"`
	Data        json.RawMessage `json:"data"`
	Address     *string         `json:"address"`
	Port        int             `json:"port"`
	AddressType json.RawMessage `json:"addressType"`
	FD          json.RawMessage `json:"fd"`
	Key         string          `json:"key"`
}

// channel is a worker's cluster IPC state, shared between the state-owning
// goroutine and the dispatchers that hand it connections.
type channel struct {
	worker int
	ch     *ipc.Channel
	seq    atomic.Int64
	mu     sync.Mutex
	// pending holds the connections sent and not yet answered, by seq.
	pending map[int]pendingConn
	// handedOut counts the connections handed to the worker.
	handedOut atomic.Int64
}

type pendingConn struct {
	conn acceptedConn
	disp *dispatcher
}

func (c *channel) nextSeq() int { return int(c.seq.Add(1) - 1) }

// interceptAnswer takes a worker's answer to a newconn in the channel's
// reading goroutine, without a trip through the state-owning goroutine:
// accepted, the connection is the worker's and paddock's copy is closed;
// refused, it is offered to another worker.
func (c *channel) interceptAnswer(m ipc.Message) bool {
	if m.Cmd != "NODE_CLUSTER" || m.Handle != nil || !bytes.Contains(m.Raw, []byte(`"accepted"`)) {
		return false
	}
	var a struct {
		Act      string `json:"act"`
		Ack      *int   `json:"ack"`
		Accepted *bool  `json:"accepted"`
	}
	if json.Unmarshal(m.Raw, &a) != nil || a.Act != "" || a.Ack == nil || a.Accepted == nil {
		return false
	}
	pc, ok := c.takePending(*a.Ack)
	if !ok {
		return true
	}
	if *a.Accepted || !pc.disp.offer(pc.conn, map[int]bool{c.worker: true}) {
		pc.conn.Close()
	}
	return true
}

// send sends a cluster message (cmd NODE_CLUSTER is added) with a seq.
func (c *channel) send(fields map[string]any, fd int, done func(error)) error {
	fields["cmd"] = "NODE_CLUSTER"
	fields["seq"] = c.nextSeq()
	err := c.ch.Send(fields, fd, done)
	if err != nil && done != nil {
		done(err)
	}
	return err
}

// addPending records conn, sent to the worker with seq, until the worker
// answers.
func (c *channel) addPending(seq int, pc pendingConn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending == nil {
		c.pending = map[int]pendingConn{}
	}
	c.pending[seq] = pc
}

// takePending removes and returns the connection sent with seq.
func (c *channel) takePending(seq int) (pendingConn, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.pending[seq]
	delete(c.pending, seq)
	return p, ok
}

// drainPending removes and returns every unanswered connection.
func (c *channel) drainPending() []pendingConn {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]pendingConn, 0, len(c.pending))
	for seq, p := range c.pending {
		out = append(out, p)
		delete(c.pending, seq)
	}
	return out
}

// clusterKey builds the key a worker knows a server by, as Node's primary
// does: address:port:addressType:fd:index.
func clusterKey(m clusterIn) string {
	addr := "null"
	if m.Address != nil {
		addr = *m.Address
	}
	return fmt.Sprintf("%s:%d:%s:%s:%s", addr, m.Port, rawOr(m.AddressType, "undefined"), rawOr(m.FD, "undefined"), rawOr(m.Index, "0"))
}

func rawOr(r json.RawMessage, def string) string {
	if len(r) == 0 {
		return def
	}
	var s string
	if json.Unmarshal(r, &s) == nil {
		return s
	}
	return string(r)
}

// wantedListen turns a queryServer into the manifest address it asks for.
func wantedListen(m clusterIn, base string) (manifest.Listen, error) {
	at := rawOr(m.AddressType, "4")
	addr := ""
	if m.Address != nil {
		addr = *m.Address
	}
	switch at {
	case "udp4", "udp6":
		return manifest.Listen{}, errors.New("UDP sockets are not shared by paddock")
	case "-1":
		return manifest.ParseListen("unix:"+addr, base)
	}
	if addr == "0.0.0.0" || addr == "::" {
		addr = ""
	}
	return manifest.ParseListen(net.JoinHostPort(addr, strconv.Itoa(m.Port)), base)
}

// setNonblock puts a socket in non-blocking mode, which Node requires of
// every descriptor it receives (it does not set the mode itself). The mode
// belongs to the socket, shared with every worker that has it.
func setNonblock(f *os.File) error {
	return unix.SetNonblock(int(f.Fd()), true)
}

// channelFault records that paddock closed a worker's channel for a fault
// of the worker's end: a protocol violation, or a reply the protocol
// requires that the channel could not take. Such a worker is stopped as a
// retiring one is (killSignal, SIGKILL after killTimeout) but stays
// counted, and its exit is a failure whatever its code, so that its restart
// policy replaces it: a Node worker exits 0 at once on end of file.
type channelFault struct {
	err error
	// killAt is when the worker gets SIGKILL if it still runs; timer wakes
	// Run then; killed says it was sent.
	killAt time.Time
	timer  *time.Timer
	killed bool
}

// detail describes the fault for events; "" for none.
func (f *channelFault) detail() string {
	if f == nil {
		return ""
	}
	return "IPC channel closed by paddock: " + f.err.Error()
}

// isChannelFault reports whether err, why a channel closed, is a fault of
// the worker's end.
func isChannelFault(err error) bool {
	var pe *ipc.ProtocolError
	return errors.As(err, &pe) || errors.Is(err, ipc.ErrQueueFull)
}

// runChannel runs a worker's channel until it closes, in its own
// goroutine. A channel that closed for a fault wakes Run, which stops the
// worker; any other error is logged.
func (s *Supervisor) runChannel(ch *ipc.Channel, name string) {
	ch.Run(context.Background(), s.ipcIn)
	err := ch.Err()
	switch {
	case isChannelFault(err):
		s.wakeFaults()
	case errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE):
		// The worker closed its end: it exited, or disconnected.
		s.opts.Logger.Debug("IPC channel closed by the worker", "worker", name, "err", err)
	case err != nil:
		s.opts.Logger.Warn("IPC channel closed", "worker", name, "err", err)
	}
}

// wakeFaults makes Run call handleChannelFaults soon. It never
// blocks.
func (s *Supervisor) wakeFaults() {
	select {
	case s.ipcFaults <- struct{}{}:
	default:
	}
}

// handleChannelFaults looks at every worker: one whose channel closed
// for a fault is stopped (channelFault), and one stopped so that is
// still running at its deadline gets SIGKILL to its process group.
func (o *owner) handleChannelFaults(now time.Time) {
	for _, w := range o.workers {
		if w.cl == nil || w.proc == nil {
			continue
		}
		if w.fault == nil {
			select {
			case <-w.cl.ch.Closed():
				if err := w.cl.ch.Err(); isChannelFault(err) {
					o.channelFault(w, err)
				}
			default:
			}
			continue
		}
		// A worker being retired meanwhile is the plan's to kill.
		if w.fault.killed || w.fault.killAt.IsZero() || w.Phase != reconcile.Running || now.Before(w.fault.killAt) {
			continue
		}
		w.fault.killed = true
		if err := w.proc.KillGroup(); err != nil {
			o.opts.Logger.Error("kill", "app", w.App, "worker", w.ID, "pid", w.pid, "err", err)
		}
		o.emit(Event{Type: EventKill, App: w.App, Worker: w.ID, PID: w.pid, Generation: w.Generation,
			Detail: fmt.Sprintf("did not stop within killTimeout %s after its IPC channel closed", w.KillTimeout)})
	}
}

// channelFault closes w's channel for a fault of the worker's end
// (err says which), hands no more connections to it, and stops it: the
// killSignal now (a stopping event whose detail names the fault), SIGKILL
// to its group after killTimeout. Unlike a retirement, the worker keeps
// its place until it exits, and that exit counts as a failure. A worker
// already retiring by disconnect gets its killSignal at once instead of
// after killTimeout. Nothing happens twice.
func (o *owner) channelFault(w *worker, err error) {
	if w.cl == nil || w.fault != nil {
		return
	}
	w.cl.ch.CloseWithError(err)
	w.fault = &channelFault{err: err}
	o.opts.Logger.Warn("IPC channel closed for a fault of the worker; stopping it", "app", w.App, "worker", w.ID, "pid", w.pid, "err", err)
	o.unsubscribe(w)
	o.setMembersReady(w, false)
	// The worker may still read connections already in its socket: no
	// other worker may get them too.
	for _, pc := range w.cl.drainPending() {
		pc.conn.Close()
	}
	switch {
	case w.proc == nil || w.signaled:
		return // not running, or already signalled
	case w.Phase == reconcile.Stopping:
		// Retiring by disconnect, which can no longer end: killSignal
		// now, and the plan's SIGKILL a killTimeout later.
		o.signalStop(w)
		w.StopDeadline = time.Now().Add(w.KillTimeout)
		return
	}
	o.signalStop(w)
	w.fault.killAt = time.Now().Add(w.KillTimeout)
	w.fault.timer = time.AfterFunc(w.KillTimeout, o.sup.wakeFaults)
}

// replyFailed handles a reply the protocol requires (what names it)
// that w's channel did not take: a channel that cannot take one is closed
// and its worker stopped, since the worker would wait for it for ever. A
// channel already closed needs nothing more.
func (o *owner) replyFailed(w *worker, what string, err error) {
	if errors.Is(err, ipc.ErrClosed) {
		return
	}
	o.channelFault(w, fmt.Errorf("ipc: the reply to %s for %s was not queued: %w", what, w.Name(), err))
}

// closeChannelOnExit closes the channel of a worker that exited,
// giving the connections it did not answer to other workers, and reports
// whether it was closed for a fault (then the exit is a failure).
func (o *owner) closeChannelOnExit(w *worker) bool {
	if w.cl == nil {
		return false
	}
	o.unsubscribe(w)
	for _, pc := range w.cl.drainPending() {
		if !pc.disp.offer(pc.conn, map[int]bool{w.ID: true}) {
			pc.conn.Close()
		}
	}
	w.cl.ch.Close()
	if err := w.cl.ch.Err(); w.fault == nil && isChannelFault(err) {
		// It closed for a fault and the worker exited before Run was
		// woken for it.
		w.fault = &channelFault{err: err}
		o.opts.Logger.Warn("IPC channel closed for a fault of the worker", "app", w.App, "worker", w.ID, "pid", w.pid, "err", err)
	}
	if w.fault == nil {
		return false
	}
	if w.fault.timer != nil {
		w.fault.timer.Stop()
	}
	return true
}

// maxMessageDetail bounds how much of a worker's message an event carries.
const maxMessageDetail = 4096

// handleIPC takes one message from a worker's channel.
func (o *owner) handleIPC(m ipc.Message, now time.Time) {
	if m.Handle != nil {
		m.Handle.Close() // paddock keeps no handle a worker sends
	}
	w := o.workers[m.From]
	if w == nil || w.cl == nil {
		return
	}
	switch {
	case m.Cmd == "NODE_CLUSTER":
		var cm clusterIn
		if err := json.Unmarshal(m.Raw, &cm); err != nil {
			o.channelFault(w, &ipc.ProtocolError{Reason: "bad cluster message: " + err.Error()})
			return
		}
		o.handleCluster(w, cm, now)
	case m.Internal():
		// Other internal messages (NODE_...) are Node's own business.
	default:
		detail := string(m.Raw)
		if len(detail) > maxMessageDetail {
			detail = detail[:maxMessageDetail] + "…"
		}
		o.emit(Event{Type: EventMessage, App: w.App, Worker: w.ID, PID: w.pid, Generation: w.Generation, Detail: detail})
	}
}

func (o *owner) handleCluster(w *worker, m clusterIn, now time.Time) {
	switch {
	case m.Act == "" && m.Ack != nil && m.Accepted != nil:
		// The answer to a newconn.
		pc, ok := w.cl.takePending(*m.Ack)
		if !ok {
			return
		}
		if *m.Accepted {
			pc.conn.Close() // the worker has its own copy now
			return
		}
		if !pc.disp.offer(pc.conn, map[int]bool{w.ID: true}) {
			pc.conn.Close()
		}
	case m.Act == "online":
		o.opts.Logger.Debug("cluster worker online", "app", w.App, "worker", w.ID)
	case m.Act == "queryServer" && m.Seq != nil:
		o.queryServer(w, m)
	case m.Act == "listening":
		// The address paddock bound for this server; the request as the
		// worker wrote it when paddock did not answer it (never expected).
		addr, ok := w.listening[clusterKey(m)]
		if !ok {
			addr = fmt.Sprintf("%s:%d", rawOr(mustRaw(m.Address), "*"), m.Port)
		}
		o.emit(Event{Type: EventListening, App: w.App, Worker: w.ID, PID: w.pid, Generation: w.Generation, Detail: addr})
		if w.app.Readiness == manifest.ReadinessListening && !w.Ready && w.Phase == reconcile.Running {
			o.markReady(w)
		}
	case m.Act == "close":
		for d, key := range w.subs {
			if key == m.Key {
				delete(w.subs, d)
				o.refreshDispatcher(d)
			}
		}
		// The worker no longer accepts on its SO_REUSEPORT socket for
		// that server: out of the group, its queue to the others.
		for mb, key := range w.members {
			if key == m.Key {
				delete(w.members, mb)
				if err := mb.Remove(); err != nil {
					o.opts.Logger.Warn("new connections may reach a worker that is not ready", "app", w.App, "worker", w.ID, "err", err)
				}
			}
		}
	case m.Act == "exitedAfterDisconnect" && m.Seq != nil:
		w.exitedAfterDisconnect = true
		o.unsubscribe(w)
		if err := w.cl.send(map[string]any{"ack": *m.Seq}, -1, nil); err != nil {
			o.replyFailed(w, "exitedAfterDisconnect", err)
		}
	}
}

func mustRaw(p *string) json.RawMessage {
	if p == nil {
		return nil
	}
	b, _ := json.Marshal(*p)
	return b
}

// queryServer answers a worker's listen(): with the shared socket
// (none), the worker's own SO_REUSEPORT socket (reuseport), or the
// address alone while paddock accepts (rr, sticky).
func (o *owner) queryServer(w *worker, m clusterIn) {
	key := clusterKey(m)
	reply := map[string]any{"errno": 0, "key": key, "ack": *m.Seq, "data": json.RawMessage("null")}
	answer := func(fd int, done func(error)) bool {
		if err := w.cl.send(reply, fd, done); err != nil {
			o.replyFailed(w, "queryServer", err)
			return false
		}
		return true
	}
	fail := func(errno int, err error) {
		reply["errno"] = errno
		o.opts.Logger.Warn("refused a worker's listen", "app", w.App, "worker", w.ID, "key", key, "err", err)
		answer(-1, nil)
	}
	var sock *netshare.Socket
	if fd, err := strconv.Atoi(rawOr(m.FD, "")); err == nil {
		// listen({fd: N}) in a cluster worker names the primary's
		// descriptor N; under paddock descriptors 3, 4, ... are the
		// app's `listen:` sockets, as the worker itself sees them.
		socks := o.appSockets[w.app.Name]
		if fd < 3 || fd-3 >= len(socks) {
			fail(errnoBadFD, fmt.Errorf("descriptor %d is not one of the app's %d listen: sockets", fd, len(socks)))
			return
		}
		sock = socks[fd-3]
	} else {
		// Node resolves a relative unix path against its working
		// directory.
		ln, err := wantedListen(m, w.app.Resolved.Dir)
		if err != nil {
			fail(errnoNoSupport, err)
			return
		}
		if sock, err = o.socketFor(w.app, ln); err != nil {
			fail(errnoAddrInUse, err)
			return
		}
	}
	if w.listening == nil {
		w.listening = map[string]string{}
	}
	w.listening[key] = sock.Addr.String()
	// Every worker gets the first worker's server data (TLS ticket keys).
	if data, ok := o.clusterData[sock]; ok {
		reply["data"] = data
	} else if len(m.Data) > 0 {
		o.clusterData[sock] = m.Data
		reply["data"] = m.Data
	}
	switch w.app.SchedulingPolicy {
	case "none":
		if err := setNonblock(sock.File); err != nil {
			fail(errnoAddrInUse, err)
			return
		}
		// A duplicate, closed once written: the pool's socket may go
		// meanwhile (a reload), the descriptor number must not.
		fd, err := unix.FcntlInt(sock.File.Fd(), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			fail(errnoAddrInUse, err)
			return
		}
		answer(fd, func(error) { unix.Close(fd) })
	case "reuseport":
		g := sock.Group()
		if g == nil {
			fail(errnoAddrInUse, fmt.Errorf("%s: schedulingPolicy reuseport needs a TCP address", sock.Listen.Raw))
			return
		}
		mb, f, err := g.Join()
		if mb == nil {
			fail(errnoAddrInUse, err)
			return
		}
		if err != nil {
			o.opts.Logger.Warn("new connections may reach a worker that is not ready", "app", w.App, "worker", w.ID, "err", err)
		}
		if err := setNonblock(f); err != nil {
			f.Close()
			mb.Remove()
			fail(errnoAddrInUse, err)
			return
		}
		// The group keeps the socket in until the worker exits or closes
		// that server; it takes new connections while the worker is
		// ready. The worker's copy goes once sent.
		w.addMember(mb, key)
		if w.Ready && w.Phase == reconcile.Running {
			o.setMembersReady(w, true)
		}
		answer(int(f.Fd()), func(error) { f.Close() })
	default: // rr, sticky
		d, err := o.dispatcher(w.app, sock)
		if err != nil {
			fail(errnoAddrInUse, err)
			return
		}
		reply["sockname"] = sockname(sock.Addr)
		if !answer(-1, nil) {
			return
		}
		if w.Phase == reconcile.Running {
			if w.subs == nil {
				w.subs = map[*dispatcher]string{}
			}
			w.subs[d] = key
			o.refreshDispatcher(d)
		}
	}
}

func sockname(a net.Addr) map[string]any {
	switch a := a.(type) {
	case *net.TCPAddr:
		family := "IPv6"
		if a.IP.To4() != nil {
			family = "IPv4"
		}
		return map[string]any{"address": a.IP.String(), "family": family, "port": a.Port}
	case *net.UnixAddr:
		return map[string]any{"address": a.Name}
	}
	return nil
}

// socketFor returns the socket for an address a worker of app asked
// for: one of its `listen:` sockets, or one opened on demand for the app,
// as Node's primary does. An address of another app is refused.
func (o *owner) socketFor(app *manifest.App, l manifest.Listen) (*netshare.Socket, error) {
	rp := app.SchedulingPolicy == "reuseport"
	for name, socks := range o.appSockets {
		for _, sock := range socks {
			if !sameAddress(sock, l) {
				continue
			}
			if name != app.Name {
				return nil, fmt.Errorf("%s belongs to app %s", l.Raw, name)
			}
			return sock, nil
		}
	}
	if sock, ok := o.onDemand[app.Name][l.Key()]; ok {
		return sock, nil
	}
	sock, err := o.pool.Acquire(l, rp, app.Name+"[on demand "+l.Key()+"]")
	if err != nil {
		return nil, err
	}
	if o.onDemand[app.Name] == nil {
		o.onDemand[app.Name] = map[string]*netshare.Socket{}
	}
	o.onDemand[app.Name][l.Key()] = sock
	o.opts.Logger.Info("listening on demand", "app", app.Name, "address", sock.Addr.String())
	if sock.Replaced {
		o.opts.Logger.Info("replaced a stale socket file nothing listened on", "app", app.Name, "path", l.Address)
	}
	return sock, nil
}

// sameAddress reports whether sock serves what l asks for: the same unix
// path, or the same port and host (port 0 matches the port bound).
func sameAddress(sock *netshare.Socket, l manifest.Listen) bool {
	if sock.Listen.Network != l.Network {
		return false
	}
	if l.Network == "unix" {
		return sock.Listen.Address == l.Address
	}
	if sock.Listen.Key() == l.Key() {
		return true
	}
	a, ok := sock.Addr.(*net.TCPAddr)
	if !ok {
		return false
	}
	host, port, _ := net.SplitHostPort(l.Address)
	sh, _, _ := net.SplitHostPort(sock.Listen.Address)
	return port == strconv.Itoa(a.Port) && host == sh
}

// dispatcher returns the dispatcher of sock, starting it if need be.
func (o *owner) dispatcher(app *manifest.App, sock *netshare.Socket) (*dispatcher, error) {
	if d, ok := o.dispatchers[sock]; ok {
		return d, nil
	}
	if err := setNonblock(sock.File); err != nil {
		return nil, err
	}
	d, err := newDispatcher(app.Name, app.SchedulingPolicy == "sticky", sock)
	if err != nil {
		return nil, err
	}
	go d.Run(context.Background()) // interim: the owner starts and waits for it in the next commit
	o.dispatchers[sock] = d
	return d, nil
}

// refreshDispatcher gives d the running workers subscribed to it. A
// dispatcher no worker uses, for a socket its app no longer lists, is
// closed, so that the address closes too.
func (o *owner) refreshDispatcher(d *dispatcher) {
	var subs []subscriber
	for _, w := range o.workers {
		if key, ok := w.subs[d]; ok && w.cl != nil && w.Phase == reconcile.Running {
			subs = append(subs, newSubscriber(w.cl, key))
		}
	}
	sort.Slice(subs, func(i, j int) bool { return subs[i].c.worker < subs[j].c.worker })
	d.setSubscribers(subs)
	if len(subs) > 0 || o.appLists(d.app, d.sock) {
		return
	}
	delete(o.dispatchers, d.sock)
	delete(o.clusterData, d.sock)
	d.Close()
}

func (o *owner) appLists(app string, sock *netshare.Socket) bool {
	for _, x := range o.appSockets[app] {
		if x == sock {
			return true
		}
	}
	for _, x := range o.onDemand[app] {
		if x == sock {
			return true
		}
	}
	return false
}

// unsubscribe stops handing connections to w.
func (o *owner) unsubscribe(w *worker) {
	subs := w.subs
	w.subs = nil
	for d := range subs {
		o.refreshDispatcher(d)
	}
}

// Send delivers a JSON message to workers of app with an IPC channel: one
// worker when id is not 0, else all of them. It returns how many got it.
func (s *Supervisor) Send(ctx context.Context, app string, id int, msg json.RawMessage) (int, error) {
	if !json.Valid(msg) {
		return 0, errors.New("not a JSON value")
	}
	n := 0
	var sendErr error
	err := s.do(ctx, func(o *owner) {
		if o.app(app) == nil && !o.hasWorkers(app) {
			sendErr = fmt.Errorf("%s: %w", app, ErrUnknownApp)
			return
		}
		for _, w := range o.workers {
			if w.App != app || (id != 0 && w.ID != id) || w.cl == nil || w.pid == 0 {
				continue
			}
			if err := w.cl.ch.SendRaw(msg); err != nil {
				sendErr = fmt.Errorf("%s/%d: %w", w.App, w.ID, err)
				continue
			}
			n++
		}
	})
	if err != nil {
		return 0, err
	}
	if n == 0 && sendErr == nil {
		sendErr = fmt.Errorf("no running worker of %s has an IPC channel", app)
	}
	return n, sendErr
}
