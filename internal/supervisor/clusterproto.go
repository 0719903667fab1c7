package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
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
	errnoNoSupport = -97 // EAFNOSUPPORT: an address paddock cannot serve
	errnoBadFD     = -9  // EBADF
	errnoInval     = -22 // EINVAL: an address paddock cannot bind, a descriptor not of the kind asked for
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
	Port        int             `json:"port"` // a string too: see UnmarshalJSON
	AddressType json.RawMessage `json:"addressType"`
	FD          json.RawMessage `json:"fd"`
	Flags       json.RawMessage `json:"flags"` // see clusterIn.flags
	ReadableAll bool            `json:"readableAll"`
	WritableAll bool            `json:"writableAll"`
	Key         string          `json:"key"`
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

// flags returns the message's libuv flags (UV_TCP_IPV6ONLY, UV_UDP_REUSEADDR,
// ...): 0 when absent or not a number.
func (m clusterIn) flags() int {
	n, _ := strconv.Atoi(rawOr(m.Flags, "0"))
	return n
}

// rawOr returns r as text (a JSON string unquoted), or def when r is
// absent.
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

// mustRaw returns *p as a JSON string, or nil when p is nil.
func mustRaw(p *string) json.RawMessage {
	if p == nil {
		return nil
	}
	b, _ := json.Marshal(*p)
	return b
}

// maxMessageDetail bounds how much of a worker's message an event carries.
const maxMessageDetail = 4096

// messageDetail returns raw, a worker's message, as an event's detail: its
// first maxMessageDetail bytes and "…" when it is longer, without copying
// the rest of a large message.
func messageDetail(raw []byte) string {
	if len(raw) > maxMessageDetail {
		return string(raw[:maxMessageDetail]) + "…"
	}
	return string(raw)
}

// handleIPC takes one message from a worker's channel, and releases it
// (the channel of a large one reads on). ctx bounds the dispatchers a
// queryServer starts (see owner.dispatcher).
func (o *owner) handleIPC(ctx context.Context, m ipc.Message, now time.Time) {
	defer m.Release()
	if m.Handle != nil {
		// paddock keeps no handle a worker sends (docs/protocol.md): a
		// connection sent to it ends here; see also socketlist.go.
		m.Handle.Close()
	}
	w := o.workers[m.From]
	if w == nil || w.cl == nil {
		return
	}
	switch {
	case m.Internal() && o.answerSocketList(w, m):
	case m.Cmd == "NODE_CLUSTER":
		var cm clusterIn
		if err := json.Unmarshal(m.Raw, &cm); err != nil {
			o.channelFault(w, &ipc.ProtocolError{Reason: "bad cluster message: " + err.Error()})
			return
		}
		o.handleCluster(ctx, w, cm, now)
	case m.Internal():
		// Other internal messages (NODE_...) are Node's own business.
	default:
		if o.relay(w, m) {
			return // forwarded to other workers (ipc.relay), counted
		}
		detail := messageDetail(m.Raw)
		o.emit(Event{Type: EventMessage, App: w.App, Worker: w.ID, PID: w.pid, Generation: w.Generation, Detail: detail})
	}
}

// handleCluster takes one NODE_CLUSTER message from w.
func (o *owner) handleCluster(ctx context.Context, w *worker, m clusterIn, now time.Time) {
	switch {
	case m.Act == "" && m.Ack != nil && m.Accepted != nil:
		// The answer to a newconn (the channel's reader takes most of
		// them: see channel.interceptAnswer).
		w.cl.answered(*m.Ack, *m.Accepted)
	case m.Act == "online":
		o.opts.Logger.Debug("cluster worker online", "app", w.App, "worker", w.ID)
	case m.Act == "queryServer" && m.Seq != nil:
		o.queryServer(ctx, w, m)
	case m.Act == "listening":
		o.serverListening(w, m)
	case m.Act == "close":
		o.serverClosed(w, m.Key)
	case m.Act == "exitedAfterDisconnect" && m.Seq != nil:
		w.exitedAfterDisconnect = true
		o.unsubscribe(w)
		if err := w.cl.send(map[string]any{"ack": *m.Seq}, -1, nil); err != nil {
			o.replyFailed(w, "exitedAfterDisconnect", err)
		}
	}
}

// serverListening takes w's word that one of its servers listens: a
// listening event, and readiness under `readiness: listening`.
func (o *owner) serverListening(w *worker, m clusterIn) {
	// The address paddock bound for this server; the request as the
	// worker wrote it when paddock did not answer it (never expected).
	addr, ok := w.listening[clusterKey(m)]
	if !ok {
		addr = fmt.Sprintf("%s:%d", rawOr(mustRaw(m.Address), "*"), m.Port)
	}
	o.emit(Event{Type: EventListening, App: w.App, Worker: w.ID, PID: w.pid, Generation: w.Generation, Detail: addr})
	// Its health socket is not what it serves.
	if w.app.Readiness == manifest.ReadinessListening && !w.Ready && w.Phase == reconcile.Running && clusterKey(m) != w.healthKey {
		o.markReady(w)
	}
}

// serverClosed takes w's word that it closed its server known by key: it
// gets no more of that server's connections, and the server's handle is
// released if nobody else holds it (closeServer).
func (o *owner) serverClosed(w *worker, key string) {
	o.closeUDP(w, key)
	for d, k := range w.subs {
		if k == key {
			delete(w.subs, d)
			o.refreshDispatcher(d)
		}
	}
	o.healthRoute(w)
	// The worker no longer accepts on its SO_REUSEPORT socket for
	// that server: out of the group, its queue to the others.
	for mb, k := range w.members {
		if k == key {
			delete(w.members, mb)
			if err := mb.Remove(); err != nil {
				o.opts.Logger.Warn("new connections may reach a worker that is not ready", "app", w.App, "worker", w.ID, "err", err)
			}
		}
	}
	delete(w.listening, key)
	o.closeServer(w, key)
}

// listenError is why paddock refuses a worker's listen, with the errno
// the worker turns into a Node error.
type listenError struct {
	errno int
	err   error
}

func (e *listenError) Error() string { return e.err.Error() }
func (e *listenError) Unwrap() error { return e.err }

// refuse returns err as a listenError with errno.
func refuse(errno int, err error) error { return &listenError{errno: errno, err: err} }

// serverReply is the answer to one queryServer of worker w, being built.
type serverReply struct {
	o      *owner
	w      *worker
	key    string
	fields map[string]any
}

// send sends the reply, with fd riding on it when fd >= 0 (done as in
// channel.send); it reports whether it was queued. A reply the channel
// does not take stops the worker (owner.replyFailed).
func (r *serverReply) send(fd int, done func(error)) bool {
	if err := r.w.cl.send(r.fields, fd, done); err != nil {
		r.o.replyFailed(r.w, "queryServer", err)
		return false
	}
	return true
}

// fail sends the reply as a refusal: the errno of err when it is a
// listenError, else EADDRINUSE.
func (r *serverReply) fail(err error) {
	errno := errnoAddrInUse
	var le *listenError
	if errors.As(err, &le) {
		errno = le.errno
	}
	r.fields["errno"] = errno
	r.o.opts.Logger.Warn("refused a worker's listen", "app", r.w.App, "worker", r.w.ID, "key", r.key, "err", err)
	r.send(-1, nil)
}

// queryServer answers a worker's listen(): with the shared socket
// (none), the worker's own SO_REUSEPORT socket (reuseport), or the
// address alone while paddock accepts (rr, sticky). Each listen() is a
// server handle of its own (serverHandleFor). A worker paddock is
// disconnecting, or that said it leaves, is not answered, as under Node's
// primary: the answer would reach it after its disconnect.
func (o *owner) queryServer(ctx context.Context, w *worker, m clusterIn) {
	if w.exitedAfterDisconnect || w.Phase != reconcile.Running {
		o.opts.Logger.Debug("ignored the listen of a leaving worker", "app", w.App, "worker", w.ID)
		return
	}
	key := clusterKey(m)
	r := &serverReply{o: o, w: w, key: key,
		fields: map[string]any{"errno": 0, "key": key, "ack": *m.Seq, "data": json.RawMessage("null")}}
	if o.queryUDP(r, m) { // a dgram socket: shared whatever the policy
		return
	}
	if w.healthFile != nil && isHealthQuery(w, m) {
		// The worker's own health socket, whatever the policy: a probe
		// of it must reach this worker and no other.
		if w.listening == nil {
			w.listening = map[string]string{}
		}
		w.listening[key], w.healthKey = w.healthAddr, key
		if err := answerShared(r, w.healthFile); err != nil {
			r.fail(err)
		}
		return
	}
	h, err := o.serverHandle(w, key, m)
	if err != nil {
		r.fail(err)
		return
	}
	sock := h.sock
	if w.listening == nil {
		w.listening = map[string]string{}
	}
	w.listening[key] = sock.Addr.String()
	// Every worker gets the first worker's server data (TLS ticket keys).
	if data, ok := o.clusterData[sock]; ok {
		r.fields["data"] = data
	} else if len(m.Data) > 0 {
		o.clusterData[sock] = m.Data
		r.fields["data"] = m.Data
	}
	switch w.app.SchedulingPolicy {
	case "none":
		err = answerShared(r, sock.File)
	case "reuseport":
		err = o.answerReuseport(r, sock)
	default: // rr, sticky
		err = o.answerDispatched(ctx, r, sock)
	}
	if err != nil {
		delete(w.listening, key)
		o.dropIfUnheld(h)
		r.fail(err)
		return
	}
	o.hold(w, h)
}

// serverHandle returns the handle a worker's listen() known by key asks
// for (serverHandleFor). Its errors are listenErrors.
func (o *owner) serverHandle(w *worker, key string, m clusterIn) (*serverHandle, error) {
	// Node resolves a relative unix path against its working directory.
	req, err := parseServerRequest(m, w.app.Resolved.Dir)
	if err != nil {
		return nil, err
	}
	return o.serverHandleFor(w, key, req)
}

// isHealthQuery reports whether a worker's listen() asks for its health
// socket: listen({fd}) of its PADDOCK_HEALTH_FD, or a TCP listen on the
// port of its PADDOCK_HEALTH_ADDR, on the loopback or every interface.
func isHealthQuery(w *worker, m clusterIn) bool {
	if fd, err := strconv.Atoi(rawOr(m.FD, "")); err == nil {
		return fd == w.healthFD
	}
	_, port, _ := net.SplitHostPort(w.healthAddr)
	if rawOr(m.AddressType, "4") == "-1" || strconv.Itoa(m.Port) != port {
		return false
	}
	if m.Address == nil {
		return true
	}
	switch *m.Address {
	case "", "127.0.0.1", "0.0.0.0", "::", "localhost":
		return true
	}
	return false
}

// answerShared answers with the shared socket f itself (none).
func answerShared(r *serverReply, f *os.File) error {
	if err := setNonblock(f); err != nil {
		return err
	}
	// A duplicate, closed once written: the pool's socket may go
	// meanwhile (a reload), the descriptor number must not.
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return err
	}
	r.send(fd, func(error) { unix.Close(fd) })
	return nil
}

// answerReuseport answers with a socket of the worker's own in sock's
// SO_REUSEPORT group (reuseport), which takes new connections while the
// worker is ready.
func (o *owner) answerReuseport(r *serverReply, sock *netshare.Socket) error {
	w := r.w
	g := sock.Group()
	if g == nil {
		return fmt.Errorf("%s: schedulingPolicy reuseport needs a TCP address", sock.Listen.Raw)
	}
	mb, f, err := g.Join()
	if mb == nil {
		return err
	}
	if err != nil {
		o.opts.Logger.Warn("new connections may reach a worker that is not ready", "app", w.App, "worker", w.ID, "err", err)
	}
	if err := setNonblock(f); err != nil {
		f.Close()
		mb.Remove()
		return err
	}
	// The group keeps the socket in until the worker exits or closes
	// that server; it takes new connections while the worker is
	// ready. The worker's copy goes once sent.
	w.addMember(mb, r.key)
	if w.Ready && w.Phase == reconcile.Running {
		o.setMembersReady(w, true)
	}
	r.send(int(f.Fd()), func(error) { f.Close() })
	return nil
}

// answerDispatched answers with the address alone (rr, sticky): paddock
// accepts sock's connections and hands them to the worker, once the answer
// is queued and while the worker runs.
func (o *owner) answerDispatched(ctx context.Context, r *serverReply, sock *netshare.Socket) error {
	d, err := o.dispatcher(ctx, r.w.app, sock)
	if err != nil {
		return err
	}
	if sn := sockname(sock.Addr); sn != nil {
		// A unix socket has none: server.address() in the worker then
		// returns its path, as under Node's primary.
		r.fields["sockname"] = sn
	}
	if !r.send(-1, nil) {
		return nil
	}
	if w := r.w; w.Phase == reconcile.Running {
		if w.subs == nil {
			w.subs = map[*dispatcher]string{}
		}
		w.subs[d] = r.key
		o.refreshDispatcher(d)
		o.healthRoute(w)
	}
	return nil
}

// sockname is the address of a TCP socket as Node's server.address()
// gives it, which the worker returns for an rr server; nil for others.
func sockname(a net.Addr) map[string]any {
	switch a := a.(type) {
	case *net.TCPAddr:
		family := "IPv6"
		if a.IP.To4() != nil {
			family = "IPv4"
		}
		return map[string]any{"address": a.IP.String(), "family": family, "port": a.Port}
	}
	return nil // unix sockets: Node's primary sends none
}

// setNonblock puts a socket in non-blocking mode, which Node requires of
// every descriptor it receives (it does not set the mode itself). The mode
// belongs to the socket, shared with every worker that has it.
func setNonblock(f *os.File) error {
	return unix.SetNonblock(int(f.Fd()), true)
}
