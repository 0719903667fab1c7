package main

// Profiles of a running paddock, for developers: with PADDOCK_PPROF set to
// an address, paddock run serves Go's profiles over HTTP there, for
// `go tool pprof` (docs/benchmarks.md shows how the rr dispatcher was
// profiled with it).

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"
)

// pprofEnv names the environment variable that turns the profile server on:
// PADDOCK_PPROF=127.0.0.1:6060. It is meant for developers measuring
// paddock; anyone who can connect to the address can read the profiles
// (they hold function names and stacks, no environment values), so keep it
// on the loopback.
const pprofEnv = "PADDOCK_PPROF"

// maxCPUProfile bounds the seconds of one CPU profile.
const maxCPUProfile = 10 * time.Minute

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

// pprofHandler serves GET /debug/pprof/profile?seconds=N (a CPU profile of
// the next N seconds, 30 by default) and /debug/pprof/NAME?debug=N for the
// named profiles, in the formats `go tool pprof` reads.
func pprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/profile", func(w http.ResponseWriter, r *http.Request) {
		secs := 30
		if s := r.URL.Query().Get("seconds"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n <= 0 || time.Duration(n)*time.Second > maxCPUProfile {
				http.Error(w, fmt.Sprintf("seconds must be a whole number from 1 to %d", int(maxCPUProfile/time.Second)), http.StatusBadRequest)
				return
			}
			secs = n
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		if err := pprof.StartCPUProfile(w); err != nil {
			// One CPU profile at a time, for the whole process.
			http.Error(w, "cpu profile: "+err.Error(), http.StatusConflict)
			return
		}
		t := time.NewTimer(time.Duration(secs) * time.Second)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
		}
		pprof.StopCPUProfile()
	})
	mux.HandleFunc("GET /debug/pprof/{name}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		p := pprof.Lookup(name)
		if p == nil || name == "profile" {
			http.Error(w, fmt.Sprintf("unknown profile %q; there are profile (CPU), %s", name, strings.Join(pprofNames(), ", ")), http.StatusNotFound)
			return
		}
		debug, _ := strconv.Atoi(r.URL.Query().Get("debug"))
		if debug > 0 {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		} else {
			w.Header().Set("Content-Type", "application/octet-stream")
		}
		if err := p.WriteTo(w, debug); err != nil && !errors.Is(err, http.ErrHandlerTimeout) {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	return mux
}
