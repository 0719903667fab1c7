package supervisor

import (
	"fmt"
	"os"
	"time"

	"github.com/paddock-sh/paddock/internal/notify"
	"github.com/paddock-sh/paddock/internal/testkit/httpworker"
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
	told := httpworker.Told()
	l, err := httpworker.Listen()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(9)
	}
	srv := httpworker.Serve(l, version)
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
	code := 0
	select {
	case <-told:
	case <-crash:
		fmt.Fprintf(os.Stderr, "release %s: giving up 200ms after ready\n", version)
		code = 1
	}
	srv.Leave()
	os.Exit(code)
}
