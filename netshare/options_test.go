package netshare

import (
	"errors"
	"fmt"
	"net"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/paddock-sh/paddock/manifest"
)

// TestV6Only: a socket on every interface asked for IPv6 alone leaves
// 0.0.0.0 on its port free, and is another socket than the dual-stack one
// of the same address, which takes that port for IPv4 too.
func TestV6Only(t *testing.T) {
	if l, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 here: %v", err)
	} else {
		l.Close()
	}
	// The IPv4 socket comes first, so that the port is ours in both
	// families: a port the kernel picked for the IPv6-only socket may be
	// some other test's IPv4 port at that moment.
	v4, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	port := v4.Addr().(*net.TCPAddr).Port
	p := NewPool()
	l, err := manifest.ParseListen(fmt.Sprintf("[::]:%d", port), "")
	if err != nil {
		t.Fatal(err)
	}
	v6, err := p.AcquireWith(l, false, "web[on demand]", Options{V6Only: true})
	if err != nil {
		t.Fatalf("an IPv6-only [::]:%d beside 0.0.0.0:%[1]d: %v", port, err)
	}
	if !v6.V6Only {
		t.Error("V6Only not reported")
	}
	v4.Close()

	// One address with V6Only is one socket.
	l0, err := manifest.ParseListen(fmt.Sprintf("[::]:%d", port), "")
	if err != nil {
		t.Fatal(err)
	}
	v6.Release()
	fixed, err := p.AcquireWith(l0, false, "web", Options{V6Only: true})
	if err != nil {
		t.Fatal(err)
	}
	defer fixed.Release()
	again, err := p.AcquireWith(l0, false, "web", Options{V6Only: true})
	if err != nil || again != fixed {
		t.Fatalf("a second AcquireWith of [::]:%d IPv6 only: %v, another socket: %v", port, err, again != fixed)
	}
	again.Release()
	// The dual-stack socket of the address is another one, which cannot
	// be bound beside it.
	_, err = p.AcquireWith(l0, false, "web", Options{})
	if !errors.Is(err, unix.EADDRINUSE) {
		t.Errorf("a dual-stack [::]:%d beside the IPv6-only one: %v, want EADDRINUSE", port, err)
	}
}
