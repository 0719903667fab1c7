package control

// The streams: GET /v1/events and GET /v1/logs send JSON lines as values
// come, until the client goes away or the supervisor stops.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/paddock-sh/paddock/internal/logbuf"
	"github.com/paddock-sh/paddock/internal/plural"
	"github.com/paddock-sh/paddock/internal/supervisor"
)

// streamWriteTimeout bounds how long writing one batch to a stream's
// client may take: a client that stops reading is cut off then, and its
// follower slot and queue are freed.
const streamWriteTimeout = 30 * time.Second

// streamer writes JSON lines, flushing once the pending ones are written.
type streamer struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	enc *json.Encoder
}

func newStreamer(w http.ResponseWriter) *streamer {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	st := &streamer{w: w, rc: http.NewResponseController(w), enc: json.NewEncoder(w)}
	_ = st.rc.Flush()
	return st
}

// batch writes every value of a batch and flushes, within
// streamWriteTimeout.
func (st *streamer) batch(values ...any) error {
	_ = st.rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	for _, v := range values {
		if err := st.enc.Encode(v); err != nil {
			return err
		}
	}
	return st.rc.Flush()
}

// tooManyFollowers is the error that answers a stream request the hub has
// no room for (err, fanout.ErrTooManyFollowers: 503).
func tooManyFollowers(err error, what string) error {
	return withKind(err, fmt.Errorf("%d clients already follow the %s: close one and try again", MaxFollowers, what))
}

// follower is what a stream follows: a fanout.Follower or a
// logbuf.Subscription.
type follower[T any] interface {
	Ready() <-chan struct{}
	Take() (values []T, dropped int)
}

// relay writes to st, a batch each time values wait in f: lost(n) first
// when n values were dropped for this slow reader, then convert(v) of each
// value v for which it reports true. It blocks until ctx ends (the client
// went away), done closes (the supervisor stopped) or a write fails.
func relay[T any](ctx context.Context, done <-chan struct{}, st *streamer, f follower[T],
	lost func(n int) any, convert func(T) (any, bool)) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-done:
			return
		case <-f.Ready():
		}
		values, dropped := f.Take()
		out := make([]any, 0, len(values)+1)
		if dropped > 0 {
			out = append(out, lost(dropped))
		}
		for _, v := range values {
			if o, ok := convert(v); ok {
				out = append(out, o)
			}
		}
		if st.batch(out...) != nil {
			return
		}
	}
}

func (s *Server) events(w http.ResponseWriter, r *http.Request) error {
	sub, err := s.Events.Follow(r.URL.Query().Get("app"))
	if err != nil {
		return tooManyFollowers(err, "events")
	}
	defer sub.Leave()
	st := newStreamer(w)
	relay(r.Context(), s.Supervisor.Done(), st, sub, func(dropped int) any {
		return Event{Time: time.Now(), Type: EventLost,
			Detail: fmt.Sprintf("%s dropped: this reader fell %d behind", plural.Count(dropped, "event")+" were", FollowerQueue)}
	}, func(e supervisor.Event) (any, bool) { return FromEvent(e), true })
	return nil
}

// logsQuery is what GET /v1/logs asks for.
type logsQuery struct {
	app    string
	worker int  // 0: every worker of app
	lines  int  // how many recent lines first
	follow bool // then the lines that come next
}

// parseLogsQuery reads GET /v1/logs's query; its errors are request
// errors.
func parseLogsQuery(r *http.Request) (logsQuery, error) {
	q := r.URL.Query()
	lq := logsQuery{app: q.Get("app"), lines: 100}
	var err error
	if v := q.Get("worker"); v != "" {
		if lq.worker, err = strconv.Atoi(v); err != nil || lq.worker < 1 {
			return lq, badRequest(fmt.Errorf("worker: want a worker id, got %q", v))
		}
	}
	if v := q.Get("lines"); v != "" {
		if lq.lines, err = strconv.Atoi(v); err != nil || lq.lines < 0 {
			return lq, badRequest(fmt.Errorf("lines: want a count >= 0, got %q", v))
		}
	}
	lq.follow = q.Get("follow") == "1" || q.Get("follow") == "true"
	return lq, nil
}

func (s *Server) logs(w http.ResponseWriter, r *http.Request) error {
	lq, err := parseLogsQuery(r)
	if err != nil {
		return err
	}
	if lq.app != "" {
		if err := s.logsOf(r.Context(), lq.app, lq.worker); err != nil {
			return err
		}
	}
	var sub *logbuf.Subscription
	if lq.follow {
		if sub, err = s.Logs.Subscribe(lq.app, lq.worker); err != nil {
			return tooManyFollowers(err, "logs")
		}
		defer sub.Close()
	}
	var last uint64
	var out []any
	if lines, at, ok := s.fileTail(r.Context(), lq); ok {
		// The ring has rolled past: the files answer, up to the line
		// the ring had last then.
		last = at
		for _, l := range lines {
			out = append(out, l)
		}
	} else {
		tail := s.Logs.Tail(lq.app, lq.worker, lq.lines)
		for _, l := range tail {
			last = l.Seq
			out = append(out, logLine(l))
		}
	}
	st := newStreamer(w)
	if st.batch(out...) != nil || !lq.follow {
		return nil
	}
	relay(r.Context(), s.Supervisor.Done(), st, sub, func(lost int) any {
		return LogLine{Time: time.Now(), App: lq.app, Worker: lq.worker, Lost: lost}
	}, func(l logbuf.Line) (any, bool) {
		return logLine(l), l.Seq > last // else already sent with the tail
	})
	return nil
}

// logsOf checks that paddock may have output of app (worker 0: any of its
// workers) to show: an app of the running manifests, or one whose output
// is still kept (it was removed after its workers wrote).
func (s *Server) logsOf(ctx context.Context, app string, worker int) error {
	if len(s.Logs.Tail(app, worker, 1)) > 0 {
		return nil
	}
	st, err := s.Supervisor.Status(ctx)
	if err != nil {
		return err
	}
	for _, a := range st.Apps {
		if a.Name == app {
			return nil
		}
	}
	return fmt.Errorf("%s: %w", app, supervisor.ErrUnknownApp)
}

func logLine(l logbuf.Line) LogLine {
	return LogLine{Time: l.Time, App: l.App, Worker: l.Worker, Stream: l.Stream, Text: l.Text}
}
