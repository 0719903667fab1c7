package supervisor

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/paddock-sh/paddock/manifest"
	"github.com/paddock-sh/paddock/netshare"
)

// These tests check who runs a dispatcher: its owner, never its
// constructor, and Run's shutdown waits for it.

// TestNewDispatcherStartsNothing: newDispatcher starts no goroutine; the
// dispatcher accepts only once its owner runs Run, and Close ends that.
func TestNewDispatcherStartsNothing(t *testing.T) {
	l, err := manifest.ParseListen("127.0.0.1:0", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sock, err := netshare.NewPool().Acquire(l, false, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Release()
	before := dispatcherGoroutines()
	d, err := newDispatcher("web", false, sock)
	if err != nil {
		t.Fatal(err)
	}
	if n := dispatcherGoroutines(); n != before {
		t.Errorf("%d goroutines in a dispatcher's code after newDispatcher, %d before", n, before)
	}
	var wg sync.WaitGroup
	wg.Go(func() { d.Run(t.Context()) })
	d.Close()
	wg.Wait()
}

// TestRunWaitsForDispatchers: when Run returns, the dispatchers it started
// for an rr app have returned too (Run's shutdown waits for each). It does
// not run in parallel: it counts the dispatchers of the whole process.
func TestRunWaitsForDispatchers(t *testing.T) {
	port := freePort(t)
	h := start(t, pidApp("go", "rr", port, 2, "1"))
	h.waitWorkers("2 ready", func(ws []WorkerInfo) bool { return len(ws) == 2 && ws[0].Ready && ws[1].Ready })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if _, err := nodeGet(client("tcp", addr), addr); err != nil {
		t.Fatal(err)
	}
	if n := dispatcherGoroutines(); n != 1 {
		t.Errorf("%d dispatcher goroutines while the app runs, want 1", n)
	}
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	if n := dispatcherGoroutines(); n != 0 {
		t.Errorf("%d dispatcher goroutines after Run returned", n)
	}
}

// dispatcherGoroutines counts the goroutines running a dispatcher's code,
// or started by newDispatcher.
func dispatcherGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		// A goroutine not yet started shows only its go statement's
		// wrapper, and who created it.
		// A channel's reader goroutine also runs dispatcher code while
		// it hands its worker the next connection (the free list's hot
		// path): only Run makes a goroutine a dispatcher's.
		if strings.Contains(g, "supervisor.(*dispatcher).Run(") || strings.Contains(g, "created by github.com/paddock-sh/paddock/internal/supervisor.newDispatcher") {
			n++
		}
	}
	return n
}
