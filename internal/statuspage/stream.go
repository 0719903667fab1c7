package statuspage

// GET /api/events: the page's live stream, as Server-Sent Events.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/paddock-sh/paddock/internal/control"
	"github.com/paddock-sh/paddock/internal/fanout"
	"github.com/paddock-sh/paddock/internal/supervisor"
)

// Timing of the stream. refreshDelay: after events, the status is sent
// again this much later (events of one change come in bursts; one status
// answers the burst). writeTimeout: a browser that stops reading is cut
// off after this long, freeing its queues. keepAlive: a comment line this
// often keeps proxies from closing an idle stream.
const (
	refreshDelay = 250 * time.Millisecond
	writeTimeout = 30 * time.Second
	keepAlive    = 15 * time.Second
)

// The stream's messages (the "event:" field of each), each with a JSON
// "data:" line:
//
//	status  {"now": ms, "status": <GET /api/status>}, at once, at every
//	        reading of the history, and shortly after events
//	sample  a Sample: the points of a reading of the history
//	event   a supervisor event, as GET /v1/events sends it (less output lines)
//	lost    {"lost": n}: n events this slow viewer missed
const (
	msgStatus = "status"
	msgSample = "sample"
	msgEvent  = "event"
	msgLost   = "lost"
)

// statusMessage is the data of a status message: Now lets the page count
// uptimes with the server's clock.
type statusMessage struct {
	Now    int64                  `json:"now"`
	Status control.StatusResponse `json:"status"`
}

// sse writes Server-Sent Events, each flushed within writeTimeout.
type sse struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func (s *sse) send(name string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_ = s.rc.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := fmt.Fprintf(s.w, "event: %s\ndata: %s\n\n", name, data); err != nil {
		return err
	}
	return s.rc.Flush()
}

func (s *sse) comment(text string) error {
	_ = s.rc.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := fmt.Fprintf(s.w, ": %s\n\n", text); err != nil {
		return err
	}
	return s.rc.Flush()
}

// viewer is one browser following the stream: its followers of the
// history's readings and of the supervisor's events.
type viewer struct {
	p      *Page
	out    *sse
	ticks  *fanout.Follower[tick]
	events *fanout.Follower[supervisor.Event]
	// refresh fires refreshDelay after events, when armed.
	refresh *time.Timer
	armed   bool
	// floor is the newest of the times of the events sent and of the
	// readings of the statuses sent: a status read before it is old news.
	floor time.Time
}

func (p *Page) serveEvents(w http.ResponseWriter, r *http.Request) {
	v, err := p.follow()
	if err != nil {
		w.Header().Set("Retry-After", "10")
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	defer v.leave()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	v.out = &sse{w: w, rc: http.NewResponseController(w)}
	p.poke() // a reading for the charts now, not an interval from now
	_ = v.run(r.Context())
}

// follow starts following the readings and the events, or fails when
// MaxViewers (or the hub's control.MaxFollowers) already follow.
func (p *Page) follow() (*viewer, error) {
	ticks, err := p.ticks.Follow(nil)
	if err != nil {
		return nil, fmt.Errorf("%d viewers already follow the status page: close one and reload", MaxViewers)
	}
	events, err := p.Events.Follow("")
	if err != nil {
		ticks.Leave()
		return nil, fmt.Errorf("%d clients already follow the events: close one and reload", control.MaxFollowers)
	}
	return &viewer{p: p, ticks: ticks, events: events}, nil
}

func (v *viewer) leave() {
	v.ticks.Leave()
	v.events.Leave()
}

// run writes the stream until ctx ends (the browser went away), the
// supervisor stops or a write fails. Whatever wakes it, the events waiting
// are written first; refreshDelay after events, the status is read again.
// A status is never sent that was read before an event already sent: the
// page never goes back to a state older than one it was told of.
func (v *viewer) run(ctx context.Context) error {
	if err := v.sendStatus(ctx); err != nil {
		return err
	}
	v.refresh = time.NewTimer(time.Hour)
	v.refresh.Stop()
	defer v.refresh.Stop()
	alive := time.NewTicker(keepAlive)
	defer alive.Stop()
	for {
		refreshNow := false
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-v.p.Done:
			return nil
		case <-alive.C:
			if err := v.out.comment("keep-alive"); err != nil {
				return err
			}
			continue
		case <-v.events.Ready():
		case <-v.ticks.Ready():
		case <-v.refresh.C:
			v.armed, refreshNow = false, true
		}
		if err := v.send(ctx, refreshNow); err != nil {
			return err
		}
	}
}

// send writes the events waiting, then the readings waiting, then, when
// refreshNow, the status read now. Events arm the refresh.
func (v *viewer) send(ctx context.Context, refreshNow bool) error {
	sent, err := v.sendEvents()
	if err != nil {
		return err
	}
	if sent && !v.armed && !refreshNow {
		v.refresh.Reset(refreshDelay)
		v.armed = true
	}
	if err := v.sendTicks(); err != nil {
		return err
	}
	if refreshNow {
		return v.sendStatus(ctx)
	}
	return nil
}

// sendEvents writes the events waiting and reports whether there were
// any (or lost ones).
func (v *viewer) sendEvents() (bool, error) {
	events, dropped := v.events.Take()
	if dropped > 0 {
		// The events lost may be newer than any reading: none is sent
		// until the status is read again.
		v.floor = time.Now()
		if err := v.out.send(msgLost, map[string]int{"lost": dropped}); err != nil {
			return true, err
		}
	}
	for _, e := range events {
		if e.Time.After(v.floor) {
			v.floor = e.Time
		}
		if err := v.out.send(msgEvent, redactEvent(e)); err != nil {
			return true, err
		}
	}
	return len(events) > 0 || dropped > 0, nil
}

// sendTicks writes the readings waiting: the points of each, and the
// status of the last when it was read after every event and status sent.
func (v *viewer) sendTicks() error {
	ticks, _ := v.ticks.Take()
	for _, t := range ticks {
		if err := v.out.send(msgSample, t.sample); err != nil {
			return err
		}
	}
	if len(ticks) == 0 {
		return nil
	}
	last := ticks[len(ticks)-1]
	if !last.read.After(v.floor) {
		return nil // older than what was sent; the refresh after an event sends a newer one
	}
	v.floor = last.read
	return v.out.send(msgStatus, statusMessage{Now: last.sample.T, Status: last.status})
}

// sendStatus reads the status now and writes it.
func (v *viewer) sendStatus(ctx context.Context) error {
	read := time.Now()
	st, err := v.p.status(ctx)
	if err != nil {
		return err // the browser went away, or the supervisor stopped
	}
	if read.After(v.floor) {
		v.floor = read
	}
	return v.out.send(msgStatus, statusMessage{Now: time.Now().UnixMilli(), Status: st})
}
