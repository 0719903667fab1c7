package control

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/paddock-sh/paddock/internal/logbuf"
	"github.com/paddock-sh/paddock/internal/supervisor"
	"github.com/paddock-sh/paddock/manifest"
)

// Server answers the control API for one supervisor.
type Server struct {
	Supervisor *supervisor.Supervisor
	// Events must receive every supervisor event (make its Publish the
	// supervisor's OnEvent); Logs every line of the workers.
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
	mux.Handle("GET /v1/status", handle(s.status))
	mux.Handle("GET /v1/events", handle(s.events))
	mux.Handle("GET /v1/logs", handle(s.logs))
	mux.Handle("POST /v1/logs/reopen", handle(s.logsReopen))
	mux.Handle("POST /v1/reload", handle(s.reload))
	mux.Handle("POST /v1/diff", handle(s.diff))
	mux.Handle("POST /v1/stop", handle(s.stop))
	mux.Handle("POST /v1/apps/{app}/scale", handle(s.scale))
	mux.Handle("POST /v1/apps/{app}/restart", handle(s.restart))
	mux.Handle("POST /v1/apps/{app}/send", handle(s.send))
	mux.Handle("POST /v1/apps/{app}/signal", handle(s.signal))
	mux.Handle("/", handle(noEndpoint))
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
