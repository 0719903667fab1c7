package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/paddock-sh/paddock/internal/logbuf"
	"github.com/paddock-sh/paddock/internal/plural"
	"github.com/paddock-sh/paddock/internal/supervisor"
	"github.com/paddock-sh/paddock/manifest"
	"golang.org/x/sys/unix"
)

// Server answers the control API for one supervisor.
type Server struct {
	Supervisor *supervisor.Supervisor
	// Events must receive every supervisor event (make its Publish the
	// supervisor's OnEvent); Logs every line of silent workers.
	Events *Hub
	Logs   *logbuf.Store
	// Load reads and validates manifests, for diff; Manifests are the
	// supervisor's own paths, diffed when a request names none.
	Load      func(paths []string) (*manifest.Set, error)
	Manifests []string
	// Stop starts a graceful shutdown, as SIGTERM does.
	Stop func()
	// Info is reported by GET /v1/status.
	Info   SupervisorInfo
	Logger *slog.Logger

	mu     sync.Mutex
	srv    *http.Server
	closed bool
}

// Handler returns the API's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", s.status)
	mux.HandleFunc("GET /v1/events", s.events)
	mux.HandleFunc("GET /v1/logs", s.logs)
	mux.HandleFunc("POST /v1/reload", s.reload)
	mux.HandleFunc("POST /v1/diff", s.diff)
	mux.HandleFunc("POST /v1/stop", s.stop)
	mux.HandleFunc("POST /v1/apps/{app}/scale", s.scale)
	mux.HandleFunc("POST /v1/apps/{app}/restart", s.restart)
	mux.HandleFunc("POST /v1/apps/{app}/send", s.send)
	mux.HandleFunc("POST /v1/apps/{app}/signal", s.signal)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Errorf("no such endpoint: %s %s (see docs/api.md)", r.Method, r.URL.Path))
	})
	return mux
}

// Serve answers requests on ln until Close. Set the fields first.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(s.Logger.Handler(), slog.LevelWarn)}
	srv := s.srv
	s.mu.Unlock()
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops answering, ends the streams, and closes the listener.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.srv == nil {
		return nil
	}
	return s.srv.Close()
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, err error) {
	body := ErrorResponse{Error: err.Error()}
	if errs := manifest.Errors(err); len(errs) > 1 {
		body.Error = plural.Count(len(errs), "error")
		for _, e := range errs {
			body.Errors = append(body.Errors, e.Error())
		}
	}
	writeJSON(w, code, body)
}

// errorCode maps a supervisor error to an HTTP status.
func errorCode(err error) int {
	switch {
	case errors.Is(err, supervisor.ErrUnknownApp):
		return http.StatusNotFound
	case errors.Is(err, supervisor.ErrNotRunning), errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable
	}
	return http.StatusConflict
}

// decode reads a JSON body into v, refusing unknown fields; an empty body
// leaves v as it is.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 4<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("request body: %w", err)
	}
	return nil
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	st, err := s.Supervisor.Status(r.Context())
	if err != nil {
		writeError(w, errorCode(err), err)
		return
	}
	writeJSON(w, http.StatusOK, StatusFrom(s.Info, st))
}

// StatusFrom converts a supervisor status.
func StatusFrom(info SupervisorInfo, st supervisor.Status) StatusResponse {
	resp := StatusResponse{Supervisor: info, Apps: make([]App, 0, len(st.Apps)), Workers: make([]Worker, 0, len(st.Workers)),
		LostOutput: st.LostOutput}
	for _, a := range st.Apps {
		app := App{Name: a.Name, Instances: a.Instances, ManifestInstances: a.ManifestInstances, Override: a.Override,
			Running: a.Running, Ready: a.Ready, Generation: a.Generation, SchedulingPolicy: a.SchedulingPolicy,
			Silent: a.Silent, Listen: nonNil(a.Listen)}
		if ro := a.Rollout; ro != nil {
			app.Rollout = &Rollout{Instances: ro.Instances, New: ro.New, NewReady: ro.NewReady, Old: ro.Old,
				Stalled: ro.Stalled, Summary: ro.String()}
		}
		resp.Apps = append(resp.Apps, app)
	}
	for _, wi := range st.Workers {
		wk := Worker{App: wi.App, ID: wi.ID, PID: wi.PID, State: wi.Phase.String(), Ready: wi.Ready,
			StartedAt: wi.StartedAt, Restarts: wi.Restarts, Generation: wi.Generation, Listen: nonNil(wi.Listen),
			HandedOut: wi.HandedOut, Status: wi.Status}
		if !wi.RestartAt.IsZero() {
			t := wi.RestartAt
			wk.RestartAt = &t
		}
		resp.Workers = append(resp.Workers, wk)
	}
	return resp
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

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

// tooManyFollowers answers a stream request the hub has no room for.
func tooManyFollowers(w http.ResponseWriter, what string) {
	writeError(w, http.StatusServiceUnavailable,
		fmt.Errorf("%d clients already follow the %s: close one and try again", MaxFollowers, what))
}

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	sub, err := s.Events.follow(r.URL.Query().Get("app"))
	if err != nil {
		tooManyFollowers(w, "events")
		return
	}
	defer sub.Leave()
	st := newStreamer(w)
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.Supervisor.Done():
			return
		case <-sub.Ready():
		}
		events, dropped := sub.Take()
		out := make([]any, 0, len(events)+1)
		if dropped > 0 {
			out = append(out, Event{Time: time.Now(), Type: EventLost,
				Detail: fmt.Sprintf("%s dropped: this reader fell %d behind", plural.Count(dropped, "event")+" were", FollowerQueue)})
		}
		for _, e := range events {
			out = append(out, FromEvent(e))
		}
		if st.batch(out...) != nil {
			return
		}
	}
}

func (s *Server) logs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	app := q.Get("app")
	worker, n := 0, 100
	var err error
	if v := q.Get("worker"); v != "" {
		if worker, err = strconv.Atoi(v); err != nil || worker < 1 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("worker: want a worker id, got %q", v))
			return
		}
	}
	if v := q.Get("lines"); v != "" {
		if n, err = strconv.Atoi(v); err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("lines: want a count >= 0, got %q", v))
			return
		}
	}
	follow := q.Get("follow") == "1" || q.Get("follow") == "true"
	if app != "" {
		if err := s.logsOf(r.Context(), app, worker); err != nil {
			writeError(w, errorCode(err), err)
			return
		}
	}
	var sub *logbuf.Subscription
	if follow {
		if sub, err = s.Logs.Subscribe(app, worker); err != nil {
			tooManyFollowers(w, "logs")
			return
		}
		defer sub.Close()
	}
	st := newStreamer(w)
	var last uint64
	tail := s.Logs.Tail(app, worker, n)
	out := make([]any, 0, len(tail))
	for _, l := range tail {
		last = l.Seq
		out = append(out, logLine(l))
	}
	if st.batch(out...) != nil || !follow {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.Supervisor.Done():
			return
		case <-sub.Ready():
		}
		lines, lost := sub.Take()
		out := make([]any, 0, len(lines)+1)
		if lost > 0 {
			out = append(out, LogLine{Time: time.Now(), App: app, Worker: worker, Lost: lost})
		}
		for _, l := range lines {
			if l.Seq > last { // else already sent with the tail
				out = append(out, logLine(l))
			}
		}
		if st.batch(out...) != nil {
			return
		}
	}
}

// ErrNotSilent is returned for the logs of an app whose output paddock
// does not keep.
var ErrNotSilent = errors.New("its workers are not silent: they write straight to paddock's own stdout and stderr " +
	"(the terminal, journal or container log paddock runs with), and paddock keeps no copy; " +
	"set silent: true for paddock to keep their output for paddock logs")

// logsOf checks that paddock may have output of app (worker 0: any of its
// workers) to show: an app of the running manifests that is silent, or
// one whose output is still kept (it was removed, or made not silent,
// after its workers wrote).
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
			if !a.Silent {
				return fmt.Errorf("%s: %w", app, ErrNotSilent)
			}
			return nil
		}
	}
	return fmt.Errorf("%s: %w", app, supervisor.ErrUnknownApp)
}

func logLine(l logbuf.Line) LogLine {
	return LogLine{Time: l.Time, App: l.App, Worker: l.Worker, Stream: l.Stream, Text: l.Text}
}

func (s *Server) reload(w http.ResponseWriter, r *http.Request) {
	changes, err := s.Supervisor.Reload(r.Context())
	if err != nil {
		code := http.StatusUnprocessableEntity
		if errors.Is(err, supervisor.ErrNotRunning) {
			code = http.StatusServiceUnavailable
		}
		writeError(w, code, err)
		return
	}
	writeJSON(w, http.StatusOK, ChangesResponse{Changes: fromChanges(changes)})
}

func (s *Server) diff(w http.ResponseWriter, r *http.Request) {
	var req DiffRequest
	if err := decode(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	paths := req.Paths
	if len(paths) == 0 {
		paths = s.Manifests
	}
	set, err := s.Load(paths)
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, err)
		return
	}
	changes, err := s.Supervisor.Diff(r.Context(), set)
	if err != nil {
		writeError(w, errorCode(err), err)
		return
	}
	writeJSON(w, http.StatusOK, ChangesResponse{Changes: fromChanges(changes)})
}

func (s *Server) stop(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusAccepted, map[string]bool{"stopping": true})
	s.Logger.Info("graceful shutdown asked for through the control socket")
	s.Stop()
}

func (s *Server) scale(w http.ResponseWriter, r *http.Request) {
	app := r.PathValue("app")
	var req ScaleRequest
	if err := decode(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if req.Instances == nil {
		writeError(w, http.StatusBadRequest, errors.New(`request body: "instances" is required`))
		return
	}
	info, err := s.Supervisor.Scale(r.Context(), app, *req.Instances)
	if err != nil {
		code := errorCode(err)
		if code == http.StatusConflict {
			code = http.StatusBadRequest
		}
		writeError(w, code, err)
		return
	}
	writeJSON(w, http.StatusOK, ScaleResponse{App: app, From: info.From, Instances: info.Instances,
		ManifestInstances: info.ManifestInstances, Override: info.Override})
}

func (s *Server) restart(w http.ResponseWriter, r *http.Request) {
	app := r.PathValue("app")
	info, err := s.Supervisor.Restart(r.Context(), app)
	if err != nil {
		writeError(w, errorCode(err), err)
		return
	}
	writeJSON(w, http.StatusOK, RestartResponse{App: app, Generation: info.Generation, Workers: info.Workers})
}

func (s *Server) send(w http.ResponseWriter, r *http.Request) {
	app := r.PathValue("app")
	var req SendRequest
	if err := decode(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if len(req.Message) == 0 {
		writeError(w, http.StatusBadRequest, errors.New(`request body: "message" is required`))
		return
	}
	n, err := s.Supervisor.Send(r.Context(), app, req.Worker, req.Message)
	if err != nil && n == 0 {
		writeError(w, errorCode(err), err)
		return
	}
	writeJSON(w, http.StatusOK, SendResponse{Delivered: n})
}

func (s *Server) signal(w http.ResponseWriter, r *http.Request) {
	app := r.PathValue("app")
	var req SignalRequest
	if err := decode(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	sig, err := ParseSignal(req.Signal)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	ids, err := s.Supervisor.Signal(r.Context(), app, req.Worker, sig)
	if err != nil && len(ids) == 0 {
		writeError(w, errorCode(err), err)
		return
	}
	writeJSON(w, http.StatusOK, SignalResponse{Workers: ids})
}

// ParseSignal reads a signal as "HUP", "SIGHUP", "hup" or a number.
func ParseSignal(s string) (syscall.Signal, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > 64 {
			return 0, fmt.Errorf("signal %d: out of range 1..64", n)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}
