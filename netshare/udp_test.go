package netshare

import (
	"errors"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/paddock-sh/paddock/internal/testkit"
)

// sendTo sends payload from a new UDP socket to addr and returns the socket,
// for the receiver to answer.
func sendTo(t *testing.T, network, addr, payload string) *net.UDPConn {
	t.Helper()
	c, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write([]byte(payload)); err != nil {
		t.Fatal(err)
	}
	return c.(*net.UDPConn)
}

// receive reads one datagram from the socket f (blocking, as handed to a
// worker) and answers it with "re: " and the datagram; it returns what it
// read. A generous deadline only bounds a failure.
func receive(t *testing.T, f *os.File) string {
	t.Helper()
	tv := unix.Timeval{Sec: 60}
	if err := unix.SetsockoptTimeval(int(f.Fd()), unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	n, from, err := unix.Recvfrom(int(f.Fd()), buf, 0)
	if err != nil {
		t.Fatalf("recvfrom on %s: %v", f.Name(), err)
	}
	if err := unix.Sendto(int(f.Fd()), append([]byte("re: "), buf[:n]...), 0, from); err != nil {
		t.Fatalf("sendto: %v", err)
	}
	return string(buf[:n])
}

// answer reads the answer to a datagram sent with sendTo.
func answer(t *testing.T, c *net.UDPConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(60 * time.Second))
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("answer from %s: %v", c.RemoteAddr(), err)
	}
	return string(buf[:n])
}

// TestPoolUDP: a udp: address is one SOCK_DGRAM socket, bound (port 0: a
// port chosen once), in blocking mode, close-on-exec, whatever the
// scheduling policy (reuseport makes no group: the socket is shared), that
// receives datagrams and answers from its address; LISTEN_FDNAMES names it
// by its port and status with "udp:"; it is reference counted like any
// socket, and the last release frees the port.
func TestPoolUDP(t *testing.T) {
	p := NewPool()
	l := parseListen(t, "udp:127.0.0.1:0")
	s, err := p.Acquire(l, true, "dns[0]")
	if err != nil {
		t.Fatal(err)
	}
	if again, err := p.Acquire(l, false, "dns[0]"); err != nil || again != s {
		t.Fatalf("a second Acquire: %v, %v; want the same socket", again, err)
	}
	fd := int(s.File.Fd())
	if typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); err != nil || typ != unix.SOCK_DGRAM {
		t.Fatalf("SO_TYPE %d (%v), want SOCK_DGRAM", typ, err)
	}
	if fl, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); fl&unix.O_NONBLOCK != 0 {
		t.Error("the socket is non-blocking; it is handed over blocking")
	}
	if fl, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); fl&unix.FD_CLOEXEC == 0 {
		t.Error("the socket is not close-on-exec in the supervisor")
	}
	if s.Group() != nil || !s.Listening {
		t.Errorf("a UDP socket under reuseport: group %v, listening %v; want one shared socket", s.Group(), s.Listening)
	}
	a, ok := s.Addr.(*net.UDPAddr)
	if !ok || a.Port == 0 || !a.IP.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Fatalf("Addr %v, want 127.0.0.1 and the port chosen", s.Addr)
	}
	if s.Name() != strconv.Itoa(a.Port) || s.String() != "udp:"+a.String() {
		t.Errorf("Name %q, String %q", s.Name(), s.String())
	}
	c := sendTo(t, "udp4", a.String(), "ping")
	if got := receive(t, s.File); got != "ping" {
		t.Errorf("received %q", got)
	}
	if got := answer(t, c); got != "re: ping" {
		t.Errorf("answer %q", got)
	}
	// Another socket cannot bind the port while the pool holds it.
	if _, _, err := BindDatagram(parseListen(t, "udp:"+a.String()), DatagramOptions{}); !errors.Is(err, unix.EADDRINUSE) {
		t.Errorf("binding the pool's port again: %v, want EADDRINUSE", err)
	}
	s.Release()
	s.Release()
	if p.Len() != 0 {
		t.Fatalf("the pool holds %d sockets after the last release", p.Len())
	}
	f, _, err := BindDatagram(parseListen(t, "udp:"+a.String()), DatagramOptions{})
	if err != nil {
		t.Fatalf("the port is not free after the last release: %v", err)
	}
	f.Close()
}

// TestPoolUDPEveryInterface: udp:PORT (every interface) is one dual-stack
// socket that receives IPv4 and IPv6 datagrams, as a TCP port does.
func TestPoolUDPEveryInterface(t *testing.T) {
	p := NewPool()
	s, err := p.Acquire(parseListen(t, "udp:0"), false, "dns[0]")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	port := strconv.Itoa(s.Addr.(*net.UDPAddr).Port)
	for _, to := range []struct{ network, addr string }{{"udp4", "127.0.0.1:" + port}, {"udp6", "[::1]:" + port}} {
		c := sendTo(t, to.network, to.addr, "to "+to.addr)
		if got := receive(t, s.File); got != "to "+to.addr {
			t.Errorf("received %q, want the datagram sent to %s", got, to.addr)
		}
		if got := answer(t, c); got != "re: to "+to.addr {
			t.Errorf("answer %q", got)
		}
	}
}

// TestBindDatagramOptions: without ReuseAddr a second socket cannot bind a
// port taken; with it on both, it can (Node's reuseAddr); an IPv6Only
// socket on [::] leaves the port free on 0.0.0.0, a dual-stack one does
// not (Node's ipv6Only). Nothing stays open.
func TestBindDatagramOptions(t *testing.T) {
	fds := testkit.NumFDs(t)
	first, a, err := BindDatagram(parseListen(t, "udp:127.0.0.1:0"), DatagramOptions{ReuseAddr: true})
	if err != nil {
		t.Fatal(err)
	}
	same := parseListen(t, "udp:"+a.String())
	if _, _, err := BindDatagram(same, DatagramOptions{}); !errors.Is(err, unix.EADDRINUSE) {
		t.Errorf("a second bind without reuseAddr: %v, want EADDRINUSE", err)
	}
	second, b, err := BindDatagram(same, DatagramOptions{ReuseAddr: true})
	if err != nil {
		t.Fatalf("a second bind with reuseAddr: %v", err)
	}
	if b.Port != a.Port {
		t.Errorf("bound port %d, want %d", b.Port, a.Port)
	}
	second.Close()
	first.Close()

	for _, v6only := range []bool{true, false} {
		s6, a6, err := BindDatagram(parseListen(t, "udp:[::]:0"), DatagramOptions{IPv6Only: v6only})
		if err != nil {
			t.Fatal(err)
		}
		if a6.IP.To4() != nil || !a6.IP.IsUnspecified() {
			t.Errorf("bound %v, want [::]", a6)
		}
		s4, _, err := BindDatagram(parseListen(t, "udp:0.0.0.0:"+strconv.Itoa(a6.Port)), DatagramOptions{})
		if v6only && err != nil {
			t.Errorf("ipv6Only: 0.0.0.0 on the port: %v, want it free", err)
		}
		if !v6only && !errors.Is(err, unix.EADDRINUSE) {
			t.Errorf("dual-stack: 0.0.0.0 on the port: %v, want EADDRINUSE", err)
		}
		if s4 != nil {
			s4.Close()
		}
		s6.Close()
	}
	if n := testkit.NumFDs(t); n != fds {
		t.Errorf("%d descriptors open, %d before", n, fds)
	}
}

// TestCheckUDP: Check reports a UDP address another socket holds as in
// use, and closes what it bound.
func TestCheckUDP(t *testing.T) {
	held, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	fds := testkit.NumFDs(t)
	taken := parseListen(t, "udp:"+held.LocalAddr().String())
	if err := Check(taken, false); !errors.Is(err, ErrInUse) {
		t.Errorf("Check(%s) = %v, want in use", taken.Raw, err)
	}
	if n := testkit.NumFDs(t); n != fds {
		t.Errorf("%d descriptors open, %d before", n, fds)
	}
}
