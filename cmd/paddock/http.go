package main

// paddock run's HTTP listeners: --http-addr (the status page, /metrics),
// --metrics-addr (/metrics, when it names another address) and
// --health-addr (/livez, /healthz, /readyz, when it names another
// address). Every listener serves the health endpoints and /metrics, and
// answers only GET and HEAD.

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/paddock-sh/paddock/internal/control"
	"github.com/paddock-sh/paddock/internal/healthz"
	"github.com/paddock-sh/paddock/internal/statuspage"
)

// httpListeners are the listeners of --http-addr, --metrics-addr and
// --health-addr; nil for a flag not given, and nil as well for a flag that
// names the address of one before it (one listener serves both): metrics
// when --metrics-addr names --http-addr's address (shared), health when
// --health-addr names --http-addr's or --metrics-addr's (healthShared).
type httpListeners struct {
	page, metrics, health net.Listener
	shared, healthShared  bool
}

// listenHTTP opens o's HTTP listeners. It warns when the status page is
// reachable from other machines: it has no authentication of its own.
func listenHTTP(o runOptions, logger *slog.Logger) (httpListeners, error) {
	var l httpListeners
	if o.httpAddr != "" {
		addr, err := statuspage.ListenAddr(o.httpAddr)
		if err != nil {
			return l, fmt.Errorf("--http-addr: %w", err)
		}
		if l.page, err = net.Listen("tcp", addr); err != nil {
			return l, fmt.Errorf("--http-addr: %w", err)
		}
		if !statuspage.IsLoopback(l.page.Addr()) {
			logger.Warn("the status page is reachable from other machines and has no authentication: "+
				"bind it to loopback and put a reverse proxy with authentication and TLS in front (see README, Status page)",
				"addr", l.page.Addr().String())
		}
	}
	l.shared = o.metricsAddr != "" && sameAddr(o.metricsAddr, o.httpAddr)
	if o.metricsAddr != "" && !l.shared {
		ln, err := net.Listen("tcp", o.metricsAddr)
		if err != nil {
			l.close()
			return l, fmt.Errorf("--metrics-addr: %w", err)
		}
		l.metrics = ln
	}
	l.healthShared = o.healthAddr != "" && (sameAddr(o.healthAddr, o.httpAddr) || o.healthAddr == o.metricsAddr)
	if o.healthAddr != "" && !l.healthShared {
		ln, err := net.Listen("tcp", o.healthAddr)
		if err != nil {
			l.close()
			return l, fmt.Errorf("--health-addr: %w", err)
		}
		l.health = ln
	}
	return l, nil
}

// sameAddr reports whether addr (--metrics-addr's, --health-addr's) names
// --http-addr's address, as written or as --http-addr means it (":9100"
// is 127.0.0.1:9100 there).
func sameAddr(addr, httpAddr string) bool {
	if httpAddr == "" {
		return false
	}
	page, err := statuspage.ListenAddr(httpAddr)
	return addr == httpAddr || (err == nil && addr == page)
}

func (l httpListeners) close() {
	for _, ln := range []net.Listener{l.page, l.metrics, l.health} {
		if ln != nil {
			ln.Close()
		}
	}
}

// serveHTTP serves l's listeners, each in a goroutine of its own, and the
// status page's history in another; info is what the page's status says of
// paddock itself. It returns the function that closes the servers and
// waits for the history's goroutine.
func (r *runner) serveHTTP(l httpListeners, info control.SupervisorInfo) (closeAll func()) {
	var closers []func()
	if l.page != nil {
		page := &statuspage.Page{
			Status: func(ctx context.Context) (control.StatusResponse, error) {
				st, err := r.sup.Status(ctx)
				return control.StatusFrom(info, st), err
			},
			Events: r.hub,
			Done:   r.sup.Done(),
			Logger: r.logger,
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			page.Run(ctx)
		}()
		closers = append(closers, r.serve(l.page, r.httpMux(page)), func() { cancel(); <-done })
		base := "http://" + l.page.Addr().String()
		r.logger.Info("serving the status page", "url", base+"/")
		if l.shared {
			r.logger.Info("serving metrics", "url", base+"/metrics")
		}
	}
	if l.metrics != nil {
		closers = append(closers, r.serve(l.metrics, r.httpMux(nil)))
		r.logger.Info("serving metrics", "url", "http://"+l.metrics.Addr().String()+"/metrics")
	}
	if l.health != nil {
		closers = append(closers, r.serve(l.health, r.httpMux(nil)))
		r.logger.Info("serving health endpoints", "url", "http://"+l.health.Addr().String()+"/readyz")
	}
	return func() {
		for _, c := range closers {
			c()
		}
	}
}

// httpMux returns the routes of an HTTP listener: /metrics, the health
// endpoints, and the status page when page is not nil; only GET and HEAD
// pass. Endpoints for every HTTP listener go here, one line each.
func (r *runner) httpMux(page *statuspage.Page) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", r.met.Handler())
	(&healthz.Handler{Readiness: r.sup.Readiness}).Register(mux)
	if page != nil {
		page.Register(mux)
	}
	return statuspage.ReadOnly(mux)
}

// serve answers h on ln in a goroutine of its own and returns the
// function that closes the server (its listener and connections, the
// status page's streams with them).
func (r *runner) serve(ln net.Listener, h http.Handler) (closeServer func()) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(r.logger.Handler(), slog.LevelWarn)}
	go func() { _ = srv.Serve(ln) }()
	return func() { srv.Close() }
}
