package supervisor

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/paddock-sh/paddock/internal/notify"
	gworker "github.com/paddock-sh/paddock/worker"
)

// serveRelease is one release of an HTTP server, good or bad as $RELEASE
// says:
//
//	good              serve, say READY=1, leave gracefully when told to
//	exit-after-ready  as good, but 200ms after READY=1 leave gracefully on
//	                  its own and exit 1: the release crashes soon after it
//	                  starts, without losing a request it accepted
//	never-ready       serve, never say READY=1
//	crash             print why on stderr and exit 3 at once
//
// It serves descriptor 3 (LISTEN_FDS), or as a cluster worker (package
// worker, with NODE_CHANNEL_FD) 127.0.0.1:$PORT. Leaving gracefully: stop
// accepting, answer the connections accepted, exit. It is told to leave
// by SIGTERM, or as a cluster worker by a disconnect.
func serveRelease() {
	release, version := os.Getenv("RELEASE"), os.Getenv("VERSION")
	if release == "crash" {
		fmt.Fprintf(os.Stderr, "release %s: cannot start\n", version)
		os.Exit(3)
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	var l net.Listener
	var err error
	cluster := os.Getenv("NODE_CHANNEL_FD") != ""
	if cluster {
		l, err = gworker.Listen("tcp", "127.0.0.1:"+os.Getenv("PORT"))
	} else {
		f := os.NewFile(3, "listen")
		l, err = net.FileListener(f)
		f.Close()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(9)
	}
	id := os.Getenv("PADDOCK_WORKER_ID")
	var conns sync.WaitGroup
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s %d %s\n", id, os.Getpid(), version)
		}),
		ConnState: trackConns(&conns),
	}
	served := make(chan struct{})
	go func() { srv.Serve(l); close(served) }()
	var crash <-chan time.Time
	if release != "never-ready" {
		if sent, err := notify.Send("READY=1"); !sent || err != nil {
			fmt.Fprintln(os.Stderr, "notify:", sent, err)
			os.Exit(6)
		}
	}
	fmt.Printf("release %s serving\n", version)
	if release == "exit-after-ready" {
		crash = time.After(200 * time.Millisecond)
	}
	var disconnect <-chan struct{}
	if cluster {
		disconnect = gworker.Disconnecting()
	}
	code := 0
	select {
	case <-term:
	case <-disconnect:
	case <-crash:
		fmt.Fprintf(os.Stderr, "release %s: giving up 200ms after ready\n", version)
		code = 1
	}
	srv.SetKeepAlivesEnabled(false)
	l.Close()
	<-served // no connection is accepted after this
	conns.Wait()
	os.Exit(code)
}
