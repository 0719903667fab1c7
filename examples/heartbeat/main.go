// Command heartbeat is the example worker of examples/hello.yaml: it logs a
// heartbeat line every interval until it receives SIGTERM or SIGINT, then
// says goodbye and exits 0. Under `readiness: notify` it tells paddock it is
// ready (package worker: READY=1 on $NOTIFY_SOCKET) once its signal handler
// is in place.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/paddock-sh/paddock/worker"
)

func main() {
	interval := flag.Duration("interval", 2*time.Second, "time between heartbeats")
	flag.Parse()
	id := worker.ID()
	app := os.Getenv("PADDOCK_APP")
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	if err := worker.Ready(); err != nil {
		fmt.Fprintln(os.Stderr, "telling paddock we are ready:", err)
	}
	fmt.Printf("worker %d of %s started, pid %d\n", id, app, os.Getpid())
	for n := 1; ; n++ {
		select {
		case <-tick.C:
			fmt.Printf("heartbeat %d from worker %d (pid %d)\n", n, id, os.Getpid())
		case sig := <-stop:
			fmt.Printf("worker %d got %s, exiting\n", id, sig)
			return
		}
	}
}
