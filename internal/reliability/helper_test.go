package reliability

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/paddock-sh/paddock/internal/notify"
	"github.com/paddock-sh/paddock/internal/testkit"
	"github.com/paddock-sh/paddock/internal/testkit/httpworker"
)

// helperEnv names the helper mode the test binary runs as a worker.
const helperEnv = "PADDOCK_RELIABILITY_HELPER"

// helper runs the test binary as a worker program and returns its exit
// code:
//
//	http   an HTTP server answering "ID PID VERSION": on descriptor 3
//	       (LISTEN_FDS) or, as a cluster worker (NODE_CHANNEL_FD),
//	       worker.Listen of 127.0.0.1:$PORT; READY=1 once it serves; it
//	       leaves gracefully on SIGTERM or a disconnect (stops accepting,
//	       answers the connections it accepted, exits 0)
//	lines  writes numbered lines to stdout without pause, and after each
//	       one the count into $PROGRESS (a file, through a shared mapping:
//	       rewritten in place), so that the test sees whether it is blocked
func helper(mode string) int {
	switch mode {
	case "http":
		return serveHTTP()
	case "lines":
		return writeLines()
	}
	fmt.Fprintln(os.Stderr, "unknown helper mode", mode)
	return 2
}

func serveHTTP() int {
	told := httpworker.Told()
	l, err := httpworker.Listen()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 9
	}
	srv := httpworker.Serve(l, os.Getenv("VERSION"))
	if sent, err := notify.Send("READY=1"); !sent || err != nil {
		fmt.Fprintln(os.Stderr, "notify:", sent, err)
		return 6
	}
	<-told
	srv.Leave()
	return 0
}

func writeLines() int {
	f, err := os.OpenFile(os.Getenv("PROGRESS"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	for i := 1; ; i++ {
		if _, err := fmt.Printf("a line of a chatty worker, long enough to fill a pipe quickly ......................... %d\n", i); err != nil {
			return 4
		}
		if i%100 == 0 {
			f.WriteAt(fmt.Appendf(nil, "%020d", i), 0)
		}
	}
}

// progress reads what writeLines wrote into path: its lines so far.
func progress(t *testing.T, path string) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	n, _ := strconv.ParseInt(string(b), 10, 64)
	return n
}

// load sends HTTP requests, a new connection each, from conc clients
// until stopped, and counts what came of them.
type load struct {
	ok, refused, failed atomic.Int64
	mu                  sync.Mutex
	errs                []string
	cancel              context.CancelFunc
	wg                  sync.WaitGroup
}

// startLoad starts conc clients of addr.
func startLoad(addr string, conc int) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel}
	d := &net.Dialer{Timeout: testkit.Patience}
	c := &http.Client{Timeout: testkit.Patience, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", addr)
		},
	}}
	for range conc {
		l.wg.Go(func() {
			for ctx.Err() == nil {
				l.count(get(ctx, c))
			}
		})
	}
	return l
}

func get(ctx context.Context, c *http.Client) error {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://paddock.test/", nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	defer resp.Body.Close()
	if _, err := io.ReadAll(resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

func (l *load) count(err error) {
	switch {
	case err == nil:
		l.ok.Add(1)
	case errors.Is(err, context.Canceled):
		// stopped by the test: not a request that failed
	case errors.Is(err, syscall.ECONNREFUSED):
		l.refused.Add(1)
	default:
		l.failed.Add(1)
		l.mu.Lock()
		if len(l.errs) < 5 {
			l.errs = append(l.errs, time.Now().UTC().Format("15:04:05.000000")+" "+err.Error())
		}
		l.mu.Unlock()
	}
}

// waitAnswered waits until n more requests were answered.
func (l *load) waitAnswered(t *testing.T, n int64) {
	t.Helper()
	target := l.ok.Load() + n
	testkit.WaitFor(t, fmt.Sprintf("%d requests answered", target), func() bool { return l.ok.Load() >= target })
}

// stop stops the clients and waits for them.
func (l *load) stop() {
	l.cancel()
	l.wg.Wait()
}
