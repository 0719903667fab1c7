package netshare

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// TestPoolReferenceCounts: a socket stays bound and listening while any
// holder (the app that lists it, each worker given it) keeps a reference,
// and is closed, its unix socket file removed, when the last one goes.
// Acquiring the same address again shares the socket.
func TestPoolReferenceCounts(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "unix:" + filepath.Join(t.TempDir(), "web.sock")} {
		t.Run(addr, func(t *testing.T) {
			l := parseListen(t, addr)
			p := NewPool()
			app, err := p.Acquire(l, false, "web[0]")
			if err != nil {
				t.Fatal(err)
			}
			again, err := p.Acquire(l, false, "web[0]")
			if err != nil || again != app {
				t.Fatalf("Acquire again = %p, %v; want the same socket %p", again, err, app)
			}
			worker := app.Ref()
			network, address := "tcp", app.Addr.String()
			if l.Network == "unix" {
				network = "unix"
			}
			accepts := func(when string) {
				t.Helper()
				c, err := net.Dial(network, address)
				if err != nil {
					t.Fatalf("%s: dial %s: %v", when, address, err)
				}
				c.Close()
			}
			for _, holder := range []*Socket{again, app} {
				holder.Release()
				accepts("with a holder left")
				if p.Len() != 1 {
					t.Fatalf("the pool holds %d sockets with a holder left, want 1", p.Len())
				}
			}
			worker.Release()
			if p.Len() != 0 {
				t.Errorf("the pool holds %d sockets once all were released", p.Len())
			}
			if c, err := net.Dial(network, address); err == nil {
				c.Close()
				t.Errorf("%s still accepts once all holders released it", address)
			}
			if _, err := os.Lstat(l.Address); l.Network == "unix" && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the socket file %s is left: %v", l.Address, err)
			}
		})
	}
}
