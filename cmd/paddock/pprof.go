package main

// Profiles of a running paddock, for developers: with PADDOCK_PPROF set to
// an address, paddock run serves Go's profiles over HTTP there, for
// `go tool pprof` (docs/benchmarks.md shows how the rr dispatcher was
// profiled with it).

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	httppprof "net/http/pprof"
	"strings"
	"time"
)

// pprofEnv names the environment variable that turns the profile server on:
// PADDOCK_PPROF=127.0.0.1:6060. It is meant for developers measuring
// paddock; anyone who can connect to the address can read the profiles
// (they hold function names and stacks, no environment values), so keep it
// on the loopback.
const pprofEnv = "PADDOCK_PPROF"

// servePprof serves the profiles on addr in a goroutine of its own and
// returns the function that closes the server.
func servePprof(addr string, logger *slog.Logger) (closeServer func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s=%s: %w", pprofEnv, addr, err)
	}
	srv := &http.Server{Handler: pprofHandler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	logger.Warn("serving Go profiles for developers ("+pprofEnv+")",
		"cpu", "go tool pprof http://"+ln.Addr().String()+"/debug/pprof/profile?seconds=5",
		"profiles", strings.Join(pprofNames(), ","))
	return func() { srv.Close() }, nil
}

// pprofNames are the named profiles served, besides the CPU profile.
func pprofNames() []string {
	return []string{"heap", "allocs", "goroutine", "threadcreate", "block", "mutex"}
}

// pprofHandler serves the standard library's profile handlers
// (net/http/pprof) on a mux of paddock's own: /debug/pprof/profile?seconds=N
// for a CPU profile, /debug/pprof/NAME?debug=N for the named ones, and the
// index. Nothing else paddock serves (the control socket, metrics) gets them.
func pprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", httppprof.Index)
	mux.HandleFunc("/debug/pprof/profile", httppprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", httppprof.Symbol)
	return mux
}
