package supervisor

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sort"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/paddock-sh/paddock/manifest"
	"github.com/paddock-sh/paddock/netshare"
)

// This file is the UDP side of the cluster protocol: a Node worker's
// dgram socket.bind() asks the primary (queryServer with addressType udp4
// or udp6), and Node's primary answers, whatever its scheduling policy,
// with a socket it binds and shares among the workers asking with the same
// key (internal/cluster/shared_handle.js), closed once the last of them
// closed it or exited. paddock does the same for every schedulingPolicy:
// datagrams are no connections to hand out. A bind of one of the app's
// `udp:` listen addresses, or of its descriptor, gets that socket.

// The flags of a dgram queryServer (libuv's uv_udp_flags).
const (
	uvUDPIPv6Only  = 1 // UV_UDP_IPV6ONLY: Node's ipv6Only
	uvUDPReuseAddr = 4 // UV_UDP_REUSEADDR: Node's reuseAddr
)

// udpKey names a shared UDP socket: the app and the cluster key its
// workers know it by (address:port:addressType:fd:index).
type udpKey struct {
	app, key string
}

// udpHandle is a UDP socket paddock bound for the dgram sockets of an
// app's workers that asked with one key, Node's SharedHandle: open while a
// worker holds it.
type udpHandle struct {
	file *os.File
	addr *net.UDPAddr
	// data is the first worker's server data, echoed to the others.
	data json.RawMessage
	// workers holds the ids of the workers given it that have not closed
	// it nor exited.
	workers map[int]bool
}

// UnmarshalJSON decodes a cluster message, its port given as a number or,
// as a dgram socket's bind(port) passes it on unchecked
// (bind(process.env.PORT)), as a string: Node's primary binds the number
// a decimal string spells, and port 0 for any other value, as it does.
func (m *clusterIn) UnmarshalJSON(b []byte) error {
	type plain clusterIn // without this method
	v := struct {
		*plain
		Port json.RawMessage `json:"port"`
	}{plain: (*plain)(m)}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	m.Port = 0
	var s string
	if json.Unmarshal(v.Port, &s) != nil {
		s = string(v.Port)
	}
	if n, err := strconv.Atoi(s); err == nil {
		m.Port = n
	}
	return nil
}

// isUDPQuery reports whether a queryServer is a dgram socket's.
func isUDPQuery(m clusterIn) bool {
	at := rawOr(m.AddressType, "")
	return at == "udp4" || at == "udp6"
}

// queryUDP answers r, a queryServer of w, when it concerns UDP: a dgram
// socket's bind, or a net server's listen({fd}) of one of the app's UDP
// sockets (refused, as Node refuses a descriptor of the wrong kind). It
// reports whether it answered; any other query is left to queryServer.
func (o *owner) queryUDP(r *serverReply, m clusterIn) bool {
	w := r.w
	fd, fdErr := strconv.Atoi(rawOr(m.FD, ""))
	hasFD := fdErr == nil && fd > 0
	if !isUDPQuery(m) {
		if hasFD && fd >= 3 && fd-3 < len(o.appSockets[w.app.Name]) && o.appSockets[w.app.Name][fd-3].Listen.Network == "udp" {
			r.fail(refuse(errnoInval, fmt.Errorf("descriptor %d is the UDP socket %s, not a server's", fd, o.appSockets[w.app.Name][fd-3].Listen.Raw)))
			return true
		}
		return false
	}
	if w.listening == nil {
		w.listening = map[string]string{}
	}
	if hasFD {
		// bind({fd: N}) names descriptor N of the worker: `listen:`
		// entry N-3, as for a net server.
		socks := o.appSockets[w.app.Name]
		if fd < 3 || fd-3 >= len(socks) {
			r.fail(refuse(errnoBadFD, fmt.Errorf("descriptor %d is not one of the app's %d listen: sockets", fd, len(socks))))
			return true
		}
		if sock := socks[fd-3]; sock.Listen.Network != "udp" {
			r.fail(refuse(errnoInval, fmt.Errorf("descriptor %d is %s, not a UDP socket", fd, sock.Listen.Raw)))
		} else {
			o.answerUDP(r, sock.File, sock.String())
		}
		return true
	}
	l, opts, err := wantedDatagram(m)
	if err != nil {
		r.fail(err)
		return true
	}
	if sock := o.listedDatagram(w.app, l); sock != nil {
		o.answerUDP(r, sock.File, sock.String())
		return true
	}
	k := udpKey{w.app.Name, r.key}
	h := o.udpHandles[k]
	if h == nil {
		f, addr, err := netshare.BindDatagram(l, opts)
		if err != nil {
			// As Node's primary, nothing is kept: the next worker to
			// ask tries again.
			r.fail(refuse(bindErrno(err), err))
			return true
		}
		h = &udpHandle{file: f, addr: addr, data: m.Data, workers: map[int]bool{}}
		if o.udpHandles == nil {
			o.udpHandles = map[udpKey]*udpHandle{}
		}
		o.udpHandles[k] = h
		o.opts.Logger.Info("listening on demand", "app", w.App, "address", "udp:"+addr.String())
	}
	if len(h.data) > 0 {
		r.fields["data"] = h.data
	}
	h.workers[w.ID] = true
	o.answerUDP(r, h.file, "udp:"+h.addr.String())
	return true
}

// wantedDatagram turns a dgram queryServer into the address and options
// of the socket it asks for. Its errors are listenErrors.
func wantedDatagram(m clusterIn) (manifest.Listen, netshare.DatagramOptions, error) {
	at := rawOr(m.AddressType, "")
	host := "0.0.0.0"
	if at == "udp6" {
		host = "::"
	}
	if m.Address != nil && *m.Address != "" {
		host = *m.Address
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || ip.Zone() != "" {
		return manifest.Listen{}, netshare.DatagramOptions{}, refuse(errnoInval, fmt.Errorf("a %s socket needs an IP address, got %q", at, host))
	}
	// The socket's family is the worker's handle's: an IPv4 socket in a
	// udp6 handle (or the reverse) could send nothing.
	if ip.Is4() != (at == "udp4") || ip.Is4In6() {
		return manifest.Listen{}, netshare.DatagramOptions{}, refuse(errnoNoSupport, fmt.Errorf("%s is not an address of a %s socket", host, at))
	}
	if m.Port < 0 || m.Port > 65535 {
		return manifest.Listen{}, netshare.DatagramOptions{}, refuse(errnoInval, fmt.Errorf("port %d out of range", m.Port))
	}
	l, err := manifest.ParseListen("udp:"+net.JoinHostPort(host, strconv.Itoa(m.Port)), "")
	if err != nil {
		return manifest.Listen{}, netshare.DatagramOptions{}, refuse(errnoInval, err)
	}
	flags := m.flags()
	return l, netshare.DatagramOptions{ReuseAddr: flags&uvUDPReuseAddr != 0, IPv6Only: flags&uvUDPIPv6Only != 0}, nil
}

// listedDatagram returns app's `listen:` UDP socket at l's address and
// port (its port as bound), or nil. A port 0 asks for a port of its own,
// never a listed one; a udp4 bind of 0.0.0.0 is not the dual-stack socket
// of "udp:PORT", whose family is IPv6.
func (o *owner) listedDatagram(app *manifest.App, l manifest.Listen) *netshare.Socket {
	if l.Port() == 0 {
		return nil
	}
	want, err := netip.ParseAddrPort(l.Address)
	if err != nil {
		// An empty host: every interface, IPv6 (dual-stack).
		_, port, _ := net.SplitHostPort(l.Address)
		p, _ := strconv.ParseUint(port, 10, 16)
		want = netip.AddrPortFrom(netip.IPv6Unspecified(), uint16(p))
	}
	for _, sock := range o.appSockets[app.Name] {
		a, ok := sock.Addr.(*net.UDPAddr)
		if !ok {
			continue
		}
		// The family counts: 0.0.0.0 is not [::], though [::] takes
		// IPv4 datagrams too.
		if got, ok := netip.AddrFromSlice(a.IP); ok && got == want.Addr() && a.Port == int(want.Port()) {
			return sock
		}
	}
	return nil
}

// bindErrno is the errno a worker turns into its bind error: that of the
// system call that failed, else EINVAL.
func bindErrno(err error) int {
	var e unix.Errno
	if errors.As(err, &e) {
		return -int(e)
	}
	return errnoInval
}

// dgramHandlePrefix begins the NODE_HANDLE line that carries a UDP socket:
// Node's primary sends its UDP handles as "dgram.Native".
const dgramHandlePrefix = `{"cmd":"NODE_HANDLE","type":"dgram.Native","msg":`

// answerUDP answers r with the UDP socket f, bound at addr, riding on a
// dgram.Native NODE_HANDLE line, and records addr as the address of the
// worker's server.
func (o *owner) answerUDP(r *serverReply, f *os.File, addr string) {
	if err := setNonblock(f); err != nil {
		r.fail(err)
		return
	}
	// A duplicate, closed once written: the socket may be closed
	// meanwhile (the last other worker closed it), the number must not.
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		r.fail(err)
		return
	}
	r.w.listening[r.key] = addr
	r.fields["cmd"] = "NODE_CLUSTER"
	r.fields["seq"] = r.w.cl.nextSeq()
	msg, err := json.Marshal(r.fields)
	if err == nil {
		line := append(append([]byte(dgramHandlePrefix), msg...), "}\n"...)
		err = r.w.cl.ch.SendLine(line, fd, func(error) { unix.Close(fd) })
	}
	if err != nil {
		unix.Close(fd)
		o.replyFailed(r.w, "queryServer", err)
	}
}

// closeUDP takes w's word that it closed its dgram socket known by key:
// the last worker to close a shared UDP socket closes it, freeing its
// port. It does nothing for any other key.
func (o *owner) closeUDP(w *worker, key string) {
	k := udpKey{w.App, key}
	if h := o.udpHandles[k]; h != nil {
		o.dropUDP(k, h, w.ID)
	}
}

// releaseUDP drops w's hold on the UDP sockets it was given, once it
// exited: as closeUDP for each.
func (o *owner) releaseUDP(w *worker) {
	for k, h := range o.udpHandles {
		if k.app == w.App && h.workers[w.ID] {
			o.dropUDP(k, h, w.ID)
		}
	}
}

// dropUDP removes worker id from h's holders, closing h after the last.
func (o *owner) dropUDP(k udpKey, h *udpHandle, id int) {
	delete(h.workers, id)
	if len(h.workers) > 0 {
		return
	}
	h.file.Close()
	delete(o.udpHandles, k)
	o.opts.Logger.Info("closed a socket no worker uses", "app", k.app, "address", "udp:"+h.addr.String())
}

// closeUDPHandles closes every shared UDP socket, as Run returns.
func (o *owner) closeUDPHandles() {
	for k, h := range o.udpHandles {
		h.file.Close()
		delete(o.udpHandles, k)
	}
}

// udpListening returns the addresses of app's shared UDP sockets, as
// status shows them ("udp:127.0.0.1:41234"), sorted.
func (o *owner) udpListening(app string) []string {
	var out []string
	for k, h := range o.udpHandles {
		if k.app == app {
			out = append(out, "udp:"+h.addr.String())
		}
	}
	sort.Strings(out)
	return out
}
