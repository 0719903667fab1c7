package control

import (
	"sync"

	"github.com/paddock-sh/paddock/supervisor"
)

// eventBuffer is how many events a follower may fall behind before events
// are dropped for it; it then gets an events-lost line.
const eventBuffer = 4096

// Hub fans the supervisor's events out to the followers of GET /v1/events.
// Publish never blocks, so it can be the supervisor's OnEvent.
type Hub struct {
	mu   sync.Mutex
	subs map[*eventSub]struct{}
}

type eventSub struct {
	app     string
	c       chan supervisor.Event
	dropped int
}

// NewHub returns an empty Hub.
func NewHub() *Hub { return &Hub{subs: map[*eventSub]struct{}{}} }

// Publish hands e to every follower interested in it.
func (h *Hub) Publish(e supervisor.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for sub := range h.subs {
		if sub.app != "" && e.App != sub.app {
			continue
		}
		select {
		case sub.c <- e:
		default:
			sub.dropped++
		}
	}
}

// subscribe returns a follower of app's events (every event when app is
// "").
func (h *Hub) subscribe(app string) *eventSub {
	sub := &eventSub{app: app, c: make(chan supervisor.Event, eventBuffer)}
	h.mu.Lock()
	h.subs[sub] = struct{}{}
	h.mu.Unlock()
	return sub
}

func (h *Hub) unsubscribe(sub *eventSub) {
	h.mu.Lock()
	delete(h.subs, sub)
	h.mu.Unlock()
}

// takeDropped returns and resets the count of events sub missed.
func (h *Hub) takeDropped(sub *eventSub) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := sub.dropped
	sub.dropped = 0
	return n
}
