package control

import (
	"testing"

	"github.com/paddock-sh/paddock/supervisor"
)

func TestHubFiltersAndCountsDrops(t *testing.T) {
	h := NewHub()
	web := h.subscribe("web")
	all := h.subscribe("")
	defer h.unsubscribe(web)
	h.Publish(supervisor.Event{Type: "fork", App: "api"})
	h.Publish(supervisor.Event{Type: "fork", App: "web"})
	if e := <-web.c; e.App != "web" {
		t.Errorf("web follower got %+v", e)
	}
	if len(web.c) != 0 || len(all.c) != 2 {
		t.Errorf("pending: web %d, all %d", len(web.c), len(all.c))
	}
	// A follower that does not read loses events, counted, and the
	// publisher never blocks.
	for range eventBuffer + 3 {
		h.Publish(supervisor.Event{Type: "exit", App: "web"})
	}
	if n := h.takeDropped(web); n != 3 {
		t.Errorf("web dropped %d, want 3", n)
	}
	if n := h.takeDropped(all); n != 5 {
		t.Errorf("all dropped %d, want 5", n)
	}
	if n := h.takeDropped(web); n != 0 {
		t.Errorf("takeDropped did not reset: %d", n)
	}
	h.unsubscribe(all)
	h.Publish(supervisor.Event{Type: "exit", App: "web"}) // all is gone: nothing to count
	if n := h.takeDropped(all); n != 0 {
		t.Errorf("an unsubscribed follower still counts: %d", n)
	}
}
