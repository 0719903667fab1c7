package netshare

import (
	"net"
	"path/filepath"
	"testing"

	"github.com/paddock-sh/paddock/manifest"
)

// TestPoolReferenceCounts: a socket stays open, accepting connections at
// its address, while any holder (an app listing it, a worker given it)
// still has a reference, whatever the order the holders let go in; the last
// release closes it and frees the address (a unix socket's file is
// removed), and the pool forgets it.
func TestPoolReferenceCounts(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			l := manifest.Listen{Network: "tcp", Address: "127.0.0.1:0"}
			if network == "unix" {
				l = manifest.Listen{Network: "unix", Address: filepath.Join(t.TempDir(), "s.sock"), Mode: 0o600}
			}
			p := NewPool()
			app, err := p.Acquire(l, false, "web/0")
			if err != nil {
				t.Fatal(err)
			}
			addr := app.Addr
			again, err := p.Acquire(l, false, "web/0") // the next reload's set lists it too
			if err != nil {
				t.Fatal(err)
			}
			if again != app {
				t.Fatal("a second Acquire of one address bound another socket")
			}
			worker := app.Ref() // a worker was given it
			serving := func(want bool) {
				t.Helper()
				c, err := net.Dial(addr.Network(), addr.String())
				if c != nil {
					c.Close()
				}
				if got := err == nil; got != want {
					t.Fatalf("connecting to %s: %v, want the socket open: %v", addr, err, want)
				}
			}
			for i, release := range []*Socket{app, again} {
				release.Release()
				serving(true)
				if p.Len() != 1 {
					t.Fatalf("after %d releases of 3 the pool holds %d sockets, want 1", i+1, p.Len())
				}
			}
			worker.Release()
			serving(false)
			if p.Len() != 0 {
				t.Fatalf("after the last release the pool holds %d sockets, want 0", p.Len())
			}
		})
	}
}
