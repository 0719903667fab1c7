// Package httpworker is the HTTP server the tests run as a worker program
// (their test binary started by paddock in a helper mode). It takes its
// listener the way paddock hands one out, answers every request with
// "ID PID VERSION", and leaves gracefully when told to: it stops accepting
// and answers every connection it accepted before it returns, so a test
// that counts failed requests during a rollout counts paddock's, not the
// worker's.
package httpworker

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/paddock-sh/paddock/worker"
)

// cluster says whether paddock runs this worker as a cluster worker (it
// set NODE_CHANNEL_FD).
func cluster() bool { return os.Getenv("NODE_CHANNEL_FD") != "" }

// Listen returns the worker's listener: as a cluster worker
// worker.Listen of 127.0.0.1:$PORT, otherwise descriptor 3, the first of
// LISTEN_FDS.
func Listen() (net.Listener, error) {
	if cluster() {
		return worker.Listen("tcp", "127.0.0.1:"+os.Getenv("PORT"))
	}
	f := os.NewFile(3, "listen")
	defer f.Close()
	return net.FileListener(f)
}

// Told returns a channel closed when the worker is told to leave: SIGTERM,
// or for a cluster worker paddock's disconnect. Call it first, before
// Listen (a cluster worker's asks paddock) and before the worker says it
// is ready, so that a SIGTERM in between is not fatal.
func Told() <-chan struct{} {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	var disconnect <-chan struct{}
	if cluster() {
		disconnect = worker.Disconnecting()
	}
	told := make(chan struct{})
	go func() {
		select {
		case <-term:
		case <-disconnect:
		}
		close(told)
	}()
	return told
}

// Server answers on one listener; Leave ends it gracefully.
type Server struct {
	l      net.Listener
	srv    *http.Server
	conns  sync.WaitGroup
	served chan struct{}
}

// Serve answers every request on l with "ID PID VERSION\n", ID being
// $PADDOCK_WORKER_ID, until Leave.
func Serve(l net.Listener, version string) *Server {
	id := os.Getenv("PADDOCK_WORKER_ID")
	s := &Server{l: l, served: make(chan struct{})}
	s.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintf(w, "%s %d %s\n", id, os.Getpid(), version)
		}),
		ConnState: TrackConns(&s.conns),
	}
	go func() { s.srv.Serve(l); close(s.served) }()
	return s
}

// Leave stops accepting, then waits until every connection accepted has
// had its requests answered and closed. (http.Server.Shutdown is not it: a
// request whose headers arrive after Shutdown began is dropped unanswered,
// on a connection accepted before.)
func (s *Server) Leave() {
	s.srv.SetKeepAlivesEnabled(false)
	s.l.Close()
	<-s.served // no connection is accepted after this
	s.conns.Wait()
}

// TrackConns returns an http.Server ConnState hook that counts the
// server's open connections in conns, so that a worker leaving can wait
// for them.
func TrackConns(conns *sync.WaitGroup) func(net.Conn, http.ConnState) {
	return func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			conns.Add(1)
		case http.StateClosed, http.StateHijacked:
			conns.Done()
		}
	}
}
