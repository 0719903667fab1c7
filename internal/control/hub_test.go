package control

import (
	"bufio"
	"io"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/paddock-sh/paddock/internal/supervisor"
	"github.com/paddock-sh/paddock/internal/testkit"
)

func TestHubFiltersAndCountsDrops(t *testing.T) {
	h := NewHub()
	web, err := h.Follow("web")
	if err != nil {
		t.Fatal(err)
	}
	all, err := h.Follow("")
	if err != nil {
		t.Fatal(err)
	}
	defer web.Leave()
	h.Publish(supervisor.Event{Type: "fork", App: "api"})
	h.Publish(supervisor.Event{Type: "fork", App: "web"})
	<-web.Ready()
	if es, _ := web.Take(); len(es) != 1 || es[0].App != "web" {
		t.Errorf("web follower got %+v", es)
	}
	if es, _ := all.Take(); len(es) != 2 {
		t.Errorf("the follower of every app got %d events, want 2", len(es))
	}
	// A follower that does not read loses events, counted, and the
	// publisher never blocks.
	for range FollowerQueue + 3 {
		h.Publish(supervisor.Event{Type: "exit", App: "web"})
	}
	if es, n := web.Take(); n != 3 || len(es) != FollowerQueue {
		t.Errorf("web took %d, dropped %d; want %d and 3", len(es), n, FollowerQueue)
	}
	if _, n := all.Take(); n != 3 {
		t.Errorf("all dropped %d, want 3", n)
	}
	if _, n := web.Take(); n != 0 {
		t.Errorf("Take did not reset the count: %d", n)
	}
	all.Leave()
	h.Publish(supervisor.Event{Type: "exit", App: "web"}) // all is gone: nothing queued
	if es, n := all.Take(); len(es) != 0 || n != 0 {
		t.Errorf("a follower that left still gets events: %d, %d", len(es), n)
	}
	if h.Followers() != 1 {
		t.Errorf("%d followers, want 1", h.Followers())
	}
}

// TestFollowersAreBounded: 200 clients follow the events and never read.
// Only MaxFollowers get a stream (the others a 503), an idle follower costs
// next to no memory, a burst of events queues at most FollowerQueue per
// follower, and everything is freed once the clients go.
func TestFollowersAreBounded(t *testing.T) {
	_, _ = startSupervisor(t, "apps: {}\n")
	srv := lastServer
	sock := filepath.Join(filepath.Dir(srv.Manifests[0]), "c.sock")
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	base := heap()
	const clients = 200
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	ok, refused := 0, 0
	for range clients {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := c.Write([]byte("GET /v1/events HTTP/1.1\r\nHost: paddock\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		// Read the status line, then never read again.
		line, err := bufio.NewReader(io.LimitReader(c, 64)).ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.Contains(line, " 200 "):
			ok++
		case strings.Contains(line, " 503 "):
			refused++
		default:
			t.Fatalf("status line %q", line)
		}
	}
	if ok != MaxFollowers || refused != clients-MaxFollowers {
		t.Fatalf("%d streams, %d refused; want %d and %d", ok, refused, MaxFollowers, clients-MaxFollowers)
	}
	const MiB = 1 << 20
	if grew := int64(heap()) - int64(base); grew > 8*MiB {
		t.Errorf("%d idle followers grew the heap by %d MiB", ok, grew/MiB)
	}
	for i := range 5 * FollowerQueue {
		srv.Events.Publish(supervisor.Event{Type: "message", App: "web", Worker: i, Detail: strings.Repeat("x", 100)})
	}
	if grew := int64(heap()) - int64(base); grew > 64*MiB {
		t.Errorf("a burst of events to %d followers that do not read grew the heap by %d MiB", ok, grew/MiB)
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	testkit.WaitFor(t, "every follower to leave", func() bool { return srv.Events.Followers() == 0 })
	if grew := int64(heap()) - int64(base); grew > 8*MiB {
		t.Errorf("after the followers left the heap is still %d MiB above where it was", grew/MiB)
	}
}
