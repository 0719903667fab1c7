package supervisor

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"

	"github.com/paddock-sh/paddock/manifest"
	"github.com/paddock-sh/paddock/netshare"
	"github.com/paddock-sh/paddock/reconcile"
)

// This file holds the server handles of cluster workers: one per listen()
// call, known by the key Node's primary gives it
// (address:port:addressType:fd:index), shared by the workers of an app
// that ask for the same key, on a socket of the app's `listen:` or one
// paddock opened on demand; and when such a socket is released.
//
// The release rule (docs/protocol.md): an on-demand socket closes when the
// last worker holding it closed its server while running, as under Node's
// primary (RoundRobinHandle.remove, SharedHandle.remove). A worker that
// exits without closing it (a crash, a restart), or that closes it while
// paddock retires it (a rolling update, a scale-down), leaves it open
// while its app still wants workers, so that the next worker takes over
// its accept queue and no connection is refused or dropped; it closes
// once the app wants no worker (scaled to 0, removed). The app's `listen:`
// sockets are the app's: a worker's close never closes them.

// serverHandle is one server of an app's cluster workers.
type serverHandle struct {
	app string
	// key is the key the workers know the server by.
	key  string
	sock *netshare.Socket
	// onDemand: sock was opened for the app's workers, not one of its
	// `listen:` sockets.
	onDemand bool
	// holders are the workers that were answered with it and have not
	// closed it nor exited.
	holders map[*worker]bool
}

// serverRequest is what a worker's listen() asks for: descriptor fd (>=
// 0) of the worker, which is one of its app's `listen:` sockets, or
// otherwise an address, with the options the listen() asked for.
type serverRequest struct {
	fd     int
	listen manifest.Listen
	opts   netshare.Options
}

// uvTCPIPv6Only is libuv's UV_TCP_IPV6ONLY, in a queryServer's flags when
// the worker's listen() asked for ipv6Only.
const uvTCPIPv6Only = 1

// Unix socket permissions that a worker's listen({readableAll,
// writableAll}) adds, as libuv's uv_pipe_chmod does.
const (
	modeReadableAll = 0o444
	modeWritableAll = 0o222
)

// parseServerRequest turns a queryServer into what it asks for. Node
// resolves a relative unix path against the worker's working directory
// (base, if the worker sent one). Its errors are listenErrors.
func parseServerRequest(m clusterIn, base string) (serverRequest, error) {
	req := serverRequest{fd: -1}
	if fd, err := strconv.Atoi(rawOr(m.FD, "")); err == nil {
		// listen({fd: N}) in a cluster worker names the primary's
		// descriptor N; under paddock descriptors 3, 4, ... are the
		// app's `listen:` sockets, as the worker itself sees them.
		req.fd = fd
		return req, nil
	}
	addr := ""
	if m.Address != nil {
		addr = *m.Address
	}
	if rawOr(m.AddressType, "4") == "-1" {
		// Not manifest.ParseListen: a path longer than a socket
		// address holds is bound through its directory (unixsock),
		// where Node's primary binds it relative to its own working
		// directory.
		if addr == "" {
			return req, refuse(errnoInval, errors.New("a unix socket needs a path"))
		}
		if !filepath.IsAbs(addr) {
			addr = filepath.Join(base, addr)
		}
		addr = filepath.Clean(addr)
		req.listen = manifest.Listen{Network: "unix", Address: addr, Raw: "unix:" + addr}
		if m.ReadableAll {
			req.listen.Mode |= modeReadableAll
		}
		if m.WritableAll {
			req.listen.Mode |= modeWritableAll
		}
		req.opts.UmaskMode = true // the mode Node's primary would give it
		return req, nil
	}
	// ipv6Only means something for "::" alone (Node binds an IPv6
	// address with it, and an IPv4 one without).
	req.opts.V6Only = addr == "::" && m.flags()&uvTCPIPv6Only != 0
	if addr == "0.0.0.0" || addr == "::" {
		addr = ""
	}
	l, err := manifest.ParseListen(net.JoinHostPort(addr, strconv.Itoa(m.Port)), base)
	if err != nil {
		return req, refuse(errnoInval, err)
	}
	req.listen = l
	return req, nil
}

// serverHandleFor returns the handle w's listen() known by key asks for
// (req): the one other workers of its app hold by that key, or a new one
// on the socket the request names (socketFor). A socket w already holds by
// another key is refused with EADDRINUSE, as Node's primary refuses a
// second bind of one address: one server per socket and worker. Its
// errors are listenErrors. The caller holds the handle for w (hold) once
// answered, or drops it (dropIfUnheld).
func (o *owner) serverHandleFor(w *worker, key string, req serverRequest) (*serverHandle, error) {
	h := o.handles[w.App][key]
	if h == nil {
		sock, onDemand, err := o.socketFor(w, key, req)
		if err != nil {
			return nil, err
		}
		h = &serverHandle{app: w.App, key: key, sock: sock, onDemand: onDemand, holders: map[*worker]bool{}}
		if o.handles[w.App] == nil {
			o.handles[w.App] = map[string]*serverHandle{}
		}
		o.handles[w.App][key] = h
	}
	if other, ok := w.heldKey(h.sock); ok && other != key {
		o.dropIfUnheld(h)
		return nil, refuse(errnoAddrInUse, fmt.Errorf("%s: the worker already listens on it (server %s)", h.sock.Addr, other))
	}
	return h, nil
}

// socketFor returns the socket for a new handle of w's app (key, req):
// one of its `listen:` sockets, one opened on demand for it already (a
// fixed address, asked for by another key), or a new one opened on demand
// for this handle alone, as Node's primary does. onDemand says whether it
// is not a `listen:` socket. An address of another app is refused. Its
// errors are listenErrors.
func (o *owner) socketFor(w *worker, key string, req serverRequest) (sock *netshare.Socket, onDemand bool, err error) {
	app := w.app
	if req.fd >= 0 {
		socks := o.appSockets[app.Name]
		if req.fd < 3 || req.fd-3 >= len(socks) {
			return nil, false, refuse(errnoBadFD, fmt.Errorf("descriptor %d is not one of the app's %d listen: sockets", req.fd, len(socks)))
		}
		return socks[req.fd-3], false, nil
	}
	l := req.listen
	ephemeral := l.Network == "tcp" && l.Port() == 0
	for name, socks := range o.appSockets {
		for _, s := range socks {
			if !serves(s, req) {
				continue
			}
			if name != app.Name {
				return nil, false, refuse(errnoAddrInUse, fmt.Errorf("%s belongs to app %s", l.Raw, name))
			}
			if _, held := w.heldKey(s); held && ephemeral {
				continue // another port, as Node's listen(0) twice
			}
			return s, false, nil
		}
	}
	if !ephemeral {
		// Every listen(0) has a port of its own; a fixed address one
		// socket, whatever key asks for it.
		for name, socks := range o.onDemand {
			for _, s := range socks {
				if !serves(s, req) {
					continue
				}
				if name != app.Name {
					return nil, false, refuse(errnoAddrInUse, fmt.Errorf("%s is open for app %s", l.Raw, name))
				}
				return s, true, nil
			}
		}
	}
	rp := app.SchedulingPolicy == "reuseport"
	sock, err = o.pool.AcquireWith(l, rp, app.Name+"[on demand "+key+"]", req.opts)
	if err != nil {
		return nil, false, refuse(errnoAddrInUse, err)
	}
	if o.onDemand[app.Name] == nil {
		o.onDemand[app.Name] = map[string]*netshare.Socket{}
	}
	o.onDemand[app.Name][sock.Addr.String()] = sock
	o.opts.Logger.Info("listening on demand", "app", app.Name, "address", sock.Addr.String())
	if sock.Replaced {
		o.opts.Logger.Info("replaced a stale socket file nothing listened on", "app", app.Name, "path", l.Address)
	}
	return sock, true, nil
}

// serves reports whether sock is what req asks for: the same unix path,
// or the same port and host (port 0 matches the port bound) and the same
// IPv6-only option.
func serves(sock *netshare.Socket, req serverRequest) bool {
	if sock.Listen.Network == "tcp" && sock.V6Only != req.opts.V6Only {
		return false
	}
	return sameAddress(sock, req.listen)
}

// hold records that w was answered with h.
func (o *owner) hold(w *worker, h *serverHandle) {
	h.holders[w] = true
	if w.holds == nil {
		w.holds = map[string]*serverHandle{}
	}
	w.holds[h.key] = h
}

// heldKey returns the key by which w holds sock, if it does.
func (w *worker) heldKey(sock *netshare.Socket) (string, bool) {
	for key, h := range w.holds {
		if h.sock == sock {
			return key, true
		}
	}
	return "", false
}

// closeServer takes w's word that it closed its server known by key: a
// handle nobody else holds is released when w closed it while running,
// as Node's primary does; while paddock retires w, it stays for the
// worker that takes over (see releaseIdleHandles).
func (o *owner) closeServer(w *worker, key string) {
	h := w.holds[key]
	if h == nil {
		return
	}
	delete(w.holds, key)
	delete(h.holders, w)
	if w.Phase == reconcile.Running {
		o.dropIfUnheld(h)
	}
}

// dropHolds lets go of every handle w holds, as it exits without having
// closed them: they stay while its app wants workers (see
// releaseIdleHandles).
func (o *owner) dropHolds(w *worker) {
	for key, h := range w.holds {
		delete(h.holders, w)
		delete(w.holds, key)
	}
}

// dropIfUnheld releases h when no worker holds it.
func (o *owner) dropIfUnheld(h *serverHandle) {
	if len(h.holders) > 0 {
		return
	}
	if o.handles[h.app][h.key] == h {
		delete(o.handles[h.app], h.key)
		if len(o.handles[h.app]) == 0 {
			delete(o.handles, h.app)
		}
	}
	if !h.onDemand {
		return // the app's `listen:` socket: the app's to close
	}
	for _, other := range o.handles[h.app] {
		if other.sock == h.sock {
			return // another key still listens on it
		}
	}
	o.closeOnDemand(h.app, h.sock)
}

// closeOnDemand closes sock, opened on demand for app: its dispatcher
// stops, the port is free again (once the workers closed their copies),
// a unix socket's file is removed.
func (o *owner) closeOnDemand(app string, sock *netshare.Socket) {
	for k, s := range o.onDemand[app] {
		if s == sock {
			delete(o.onDemand[app], k)
		}
	}
	if len(o.onDemand[app]) == 0 {
		delete(o.onDemand, app)
	}
	o.opts.Logger.Info("closed a socket opened on demand", "app", app, "address", sock.Addr.String())
	if d, ok := o.dispatchers[sock]; ok {
		o.refreshDispatcher(d) // closed: its app no longer holds sock
	}
	delete(o.clusterData, sock)
	sock.Release()
}

// releaseIdleHandles releases the handles no worker holds of every app
// that wants no worker: removed from the manifests, or scaled to 0. Those
// of an app that wants workers stay, for the workers that replace the ones
// that exited without closing them. The loop calls it every turn.
func (o *owner) releaseIdleHandles() {
	for app, hs := range o.handles {
		if spec, ok := o.specs[app]; ok && spec.Instances > 0 && !o.shutting {
			continue
		}
		for _, h := range hs {
			o.dropIfUnheld(h)
		}
	}
}
