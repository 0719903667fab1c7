package supervisor

import (
	"context"
	"net"
	"sort"
	"strconv"

	"github.com/paddock-sh/paddock/manifest"
	"github.com/paddock-sh/paddock/netshare"
	"github.com/paddock-sh/paddock/reconcile"
)

// This file holds the dispatchers of the rr and sticky sockets that
// cluster workers ask for (serverhandles.go), with the workers each hands
// connections to.

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

// dispatcher returns the dispatcher of sock, starting it if need be: its
// Run goes on, in a goroutine that dispatchWG counts, until ctx is done
// or the dispatcher is closed (refreshDispatcher, closeDispatchers).
func (o *owner) dispatcher(ctx context.Context, app *manifest.App, sock *netshare.Socket) (*dispatcher, error) {
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
	o.dispatchWG.Go(func() { d.Run(ctx) })
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

// appLists reports whether app holds sock: one of its `listen:` sockets,
// or one opened on demand for it.
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
	o.healthRoute(w)
}

// closeDispatchers closes every dispatcher, at the end of Run: it returns
// once each Run started by dispatcher has returned, and the dispatchers'
// references to their sockets are dropped.
func (o *owner) closeDispatchers() {
	for sock, d := range o.dispatchers {
		d.Close()
		delete(o.dispatchers, sock)
	}
	o.dispatchWG.Wait()
}
