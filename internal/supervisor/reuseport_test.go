package supervisor

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/paddock-sh/paddock/internal/notify"
	"github.com/paddock-sh/paddock/internal/testkit"
)

// serveStates is a worker that tells in each answer what state it is in.
// It serves descriptor 3 from the start, answering "unready <id>"; it
// answers "ready <id>" from just before it sends READY=1, which it does at
// once, or, with READY_ON_FILE set, once $READY_DIR/go.<id> exists. It
// creates $READY_DIR/serving.<id> once it accepts. On SIGTERM:
//
//   - by default it accepts what is queued on its socket until the queue is
//     empty, stops accepting, answers those and exits 0;
//   - with ON_TERM=retire it creates $READY_DIR/retiring.<id> and keeps
//     accepting, answering "retiring <id>", until $READY_DIR/exit.<id>
//     exists, then exits 0.
func serveStates() {
	id, dir := os.Getenv("PADDOCK_WORKER_ID"), os.Getenv("READY_DIR")
	touch := func(name string) {
		f, err := os.Create(filepath.Join(dir, name+"."+id))
		if err != nil {
			os.Exit(5)
		}
		f.Close()
	}
	waitFile := func(name string) {
		for {
			if _, err := os.Stat(filepath.Join(dir, name+"."+id)); err == nil {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	var state atomic.Value
	state.Store("unready")
	f := os.NewFile(3, "listen")
	l, err := net.FileListener(f)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(9)
	}
	f.Close()
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	var conns sync.WaitGroup
	serve := func(c net.Conn) {
		defer conns.Done()
		defer c.Close()
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if line == "\r\n" {
				break
			}
		}
		body := fmt.Sprintf("%s %s\n", state.Load(), id)
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
	}
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go serve(c)
		}
	}()
	touch("serving")
	go func() {
		if os.Getenv("READY_ON_FILE") != "" {
			waitFile("go")
		}
		state.Store("ready")
		if sent, err := notify.Send("READY=1"); !sent || err != nil {
			fmt.Fprintln(os.Stderr, "notify:", sent, err)
			os.Exit(6)
		}
	}()
	<-term
	if os.Getenv("ON_TERM") == "retire" {
		state.Store("retiring")
		touch("retiring")
		waitFile("exit")
		os.Exit(0)
	}
	// paddock sends a worker it told to stop no new connection: what is
	// queued now is all it gets.
	rc, err := l.(*net.TCPListener).SyscallConn()
	if err != nil {
		os.Exit(14)
	}
	rc.Control(func(fd uintptr) {
		for {
			nfd, _, err := unix.Accept4(int(fd), unix.SOCK_CLOEXEC)
			if err == unix.EINTR || err == unix.ECONNABORTED {
				continue
			}
			if err != nil {
				return // EAGAIN: the queue is empty
			}
			cf := os.NewFile(uintptr(nfd), "conn")
			c, err := net.FileConn(cf)
			cf.Close()
			if err != nil {
				continue
			}
			conns.Add(1)
			go serve(c)
		}
	})
	l.Close()
	<-accepted
	conns.Wait()
	os.Exit(0)
}

func statesApp(instances int, env string) string {
	return fmt.Sprintf(`
apps:
  web:
    exec: $SELF
    instances: %d
    schedulingPolicy: reuseport
    readiness: notify
    readyTimeout: 300s
    killTimeout: 300s
    listen: ["127.0.0.1:0"]
    env: {PADDOCK_TEST_HELPER: states, READY_DIR: "$DIR"%s}
`, instances, env)
}

// stateLoad sends requests, one connection each, from 4 goroutines until
// stopped, and counts the answers by state and worker.
type stateLoad struct {
	sent   atomic.Int64
	mu     sync.Mutex
	counts map[string]int // "<state> <id>" → answers
	errs   []string
	stop   chan struct{}
	wg     sync.WaitGroup
}

func startStateLoad(addr string) *stateLoad {
	l := &stateLoad{counts: map[string]int{}, stop: make(chan struct{})}
	for range 4 {
		l.wg.Go(func() {
			c := client("tcp", addr)
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				answer, err := getBody(c)
				l.mu.Lock()
				if err != nil {
					if len(l.errs) < 5 {
						l.errs = append(l.errs, err.Error())
					}
					l.counts["error"]++
				} else {
					l.counts[answer]++
				}
				l.mu.Unlock()
				l.sent.Add(1)
			}
		})
	}
	return l
}

// waitFor waits until n more requests were answered than when it was
// called.
func (l *stateLoad) waitFor(t *testing.T, n int64) {
	t.Helper()
	target := l.sent.Load() + n
	deadline := time.Now().Add(60 * time.Second)
	for l.sent.Load() < target {
		if time.Now().After(deadline) {
			t.Fatalf("the load made %d of %d requests", l.sent.Load(), target)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (l *stateLoad) finish() map[string]int {
	close(l.stop)
	l.wg.Wait()
	return l.counts
}

func getBody(c *http.Client) (string, error) {
	resp, err := c.Get("http://paddock.test/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b)), err
}

// waitFile waits for $dir/name.<id>, which a states worker creates.
func (h *harness) waitFile(name string, id int) {
	h.t.Helper()
	deadline := time.Now().Add(patience)
	for {
		if _, err := os.Stat(filepath.Join(h.dir, name+"."+strconv.Itoa(id))); err == nil {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("worker %d never created %s", id, name)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (h *harness) touch(name string, id int) {
	h.t.Helper()
	if err := testkit.WriteFile(filepath.Join(h.dir, name+"."+strconv.Itoa(id)), nil, 0o644); err != nil {
		h.t.Fatal(err)
	}
}

// TestReuseportUnreadyWorkersGetNoConnection: under reuseport with
// `readiness: notify`, a new worker that already accepts but has not said
// READY=1 gets no connection while others are ready, during a rolling
// restart and at scale-up; once ready it gets its share.
func TestReuseportUnreadyWorkersGetNoConnection(t *testing.T) {
	t.Parallel()
	h := start(t, statesApp(2, `, READY_ON_FILE: "1"`))
	ws := h.waitWorkers("2 workers", running("web", 2))
	for _, w := range ws {
		h.waitFile("serving", w.ID)
		h.touch("go", w.ID)
	}
	h.waitWorkers("2 ready workers", func(ws []WorkerInfo) bool { return len(ws) == 2 && ws[0].Ready && ws[1].Ready })
	last := max(ws[0].ID, ws[1].ID)
	load := startStateLoad(h.listenAddr("web"))
	// release lets new worker id say READY=1 once it has been accepting
	// while the load made 300 requests.
	release := func(id int) {
		h.waitFile("serving", id)
		load.waitFor(t, 300)
		h.touch("go", id)
		h.waitEvent("ready", func(e Event) bool { return e.Type == EventReady && e.Worker == id })
	}
	if _, err := h.sup.Restart(context.Background(), "web"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		e := h.waitEvent("a new worker", func(e Event) bool { return e.Type == EventFork && e.Worker > last })
		last = e.Worker
		release(e.Worker)
	}
	h.waitEvent("rollout complete", func(e Event) bool { return e.Type == EventRolloutProgress && e.Detail == "complete" })
	h.waitWorkers("old workers gone", func(ws []WorkerInfo) bool { return len(ws) == 2 })

	if _, err := h.sup.Scale(context.Background(), "web", 3); err != nil {
		t.Fatal(err)
	}
	e := h.waitEvent("the third worker", func(e Event) bool { return e.Type == EventFork && e.Worker > last })
	release(e.Worker)
	load.waitFor(t, 300)
	counts := load.finish()
	t.Logf("answers: %v; errors %q", counts, load.errs)
	for answer, n := range counts {
		if strings.HasPrefix(answer, "unready") {
			t.Errorf("%d connections reached worker %s before it was ready", n, strings.TrimPrefix(answer, "unready "))
		}
	}
	if counts["error"] != 0 {
		t.Errorf("%d requests failed: %q", counts["error"], load.errs)
	}
	if counts["ready "+strconv.Itoa(e.Worker)] == 0 {
		t.Errorf("the new worker %d got no connection once ready: %v", e.Worker, counts)
	}
}

// TestReuseportRetiringWorkerGetsNoNewConnection: a worker told to stop
// that keeps accepting gets no connection made after the stopping event.
func TestReuseportRetiringWorkerGetsNoNewConnection(t *testing.T) {
	t.Parallel()
	h := start(t, statesApp(2, `, ON_TERM: retire`))
	// Let every worker go when the test ends (its shutdown included).
	t.Cleanup(func() {
		for id := 1; id <= 4; id++ {
			h.touch("exit", id)
		}
	})
	h.waitWorkers("2 ready workers", func(ws []WorkerInfo) bool {
		return len(ws) == 2 && ws[0].Ready && ws[1].Ready && ws[0].PID != 0 && ws[1].PID != 0
	})
	if _, err := h.sup.Scale(context.Background(), "web", 1); err != nil {
		t.Fatal(err)
	}
	stopping := h.waitEvent("stopping", isType(EventStopping))
	h.waitFile("retiring", stopping.Worker)
	c := client("tcp", h.listenAddr("web"))
	counts := map[string]int{}
	for range 300 {
		answer, err := getBody(c)
		if err != nil {
			t.Fatal(err)
		}
		counts[answer]++
	}
	t.Logf("answers after the stopping event: %v", counts)
	if n := counts["retiring "+strconv.Itoa(stopping.Worker)]; n != 0 {
		t.Errorf("the retiring worker %d got %d of 300 connections made after it was told to stop", stopping.Worker, n)
	}
	if !alive(stopping.PID) {
		t.Fatalf("the retiring worker %d exited early: the check proves nothing", stopping.Worker)
	}
	h.touch("exit", stopping.Worker)
	h.waitEvent("its exit", func(e Event) bool { return e.Type == EventExit && e.Worker == stopping.Worker })
}

// TestUnixListenLiveSocketIsNotTakenOver: a manifest listing the path of a
// live unix server whose queue is full (connect says EAGAIN) is rejected,
// naming the path, and the server's socket stays; a stale socket file is
// replaced; a regular file is left alone.
func TestUnixListenLiveSocketIsNotTakenOver(t *testing.T) {
	t.Parallel()
	h := start(t, httpApp("none", 1, ""))
	h.waitWorkers("1 worker", running("web", 1))
	unixApp := func(path string) string {
		return httpApp("none", 1, "") + `
  api:
    exec: $SELF
    listen: ["unix:` + path + `"]
    env: {PADDOCK_TEST_HELPER: http, READY_DIR: "$DIR"}
`
	}
	busy := filepath.Join(h.dir, "busy.sock")
	testkit.BusyUnixSocket(t, busy)
	var before unix.Stat_t
	unix.Lstat(busy, &before)
	_, err := h.sup.Apply(context.Background(), load(t, h.dir, unixApp(busy)))
	if err == nil || !strings.Contains(err.Error(), busy) || !strings.Contains(err.Error(), "apps.api.listen[0]") {
		t.Fatalf("applying a manifest that lists a busy server's path: %v, want an error naming %s", err, busy)
	}
	var after unix.Stat_t
	if err := unix.Lstat(busy, &after); err != nil || after.Ino != before.Ino {
		t.Fatalf("the busy server's socket was replaced: %v", err)
	}

	file := filepath.Join(h.dir, "file.sock")
	testkit.WriteFile(file, []byte("keep me"), 0o644)
	if _, err := h.sup.Apply(context.Background(), load(t, h.dir, unixApp(file))); err == nil || !strings.Contains(err.Error(), file) {
		t.Fatalf("applying a manifest that lists a regular file: %v", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "keep me" {
		t.Error("the regular file was changed")
	}

	stale := filepath.Join(h.dir, "stale.sock")
	testkit.StaleUnixSocket(t, stale)
	h.apply(unixApp(stale))
	ws := h.waitWorkers("web and api", func(ws []WorkerInfo) bool { return len(ws) == 2 && ws[0].PID != 0 && ws[1].PID != 0 })
	h.waitReady(ws)
	if _, err := get(client("unix", stale)); err != nil {
		t.Fatalf("the socket that replaced the stale one: %v", err)
	}
}

// TestClusterReuseport runs cluster workers (Node's, and package worker's)
// under reuseport: each gets a socket of its own in the group, both serve,
// and a rolling update under load fails no request.
func TestClusterReuseport(t *testing.T) {
	t.Parallel()
	forKinds(t, func(t *testing.T, kind string) {
		port := freePort(t)
		h := startNode(t, pidWorker, pidApp(kind, "reuseport", port, 2, "1"))
		ws := h.waitWorkers("2 ready", func(ws []WorkerInfo) bool { return len(ws) == 2 && ws[0].Ready && ws[1].Ready })
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		c := client("tcp", addr)
		counts := map[string]int{}
		for range 200 {
			f, err := nodeGet(c, addr)
			if err != nil || len(f) < 2 {
				t.Fatalf("%v %v", f, err)
			}
			counts[f[0]]++
		}
		t.Logf("reuseport: 200 connections: %v", counts)
		for _, w := range ws {
			if counts[strconv.Itoa(w.ID)] == 0 {
				t.Errorf("worker %d got no connection: %v", w.ID, counts)
			}
		}

		stop := make(chan struct{})
		res, wait := runLoad("tcp", addr, 4, 100000, stop)
		res.waitAnswered(t, 100)
		h.apply(pidApp(kind, "reuseport", port, 2, "2"))
		h.waitEvent("rollout complete", func(e Event) bool { return e.Type == EventRolloutProgress && e.Detail == "complete" })
		h.waitWorkers("old workers gone", func(ws []WorkerInfo) bool { return len(ws) == 2 })
		res.waitAnswered(t, 100)
		close(stop)
		wait()
		t.Logf("reuseport rolling update of %s workers under load: %s", kind, res)
		if res.refused.Load() != 0 || res.failed.Load() != 0 || res.ok.Load() == 0 {
			t.Errorf("requests failed: %s", res)
		}
		for range 20 {
			if f, err := nodeGet(c, addr); err != nil || len(f) != 3 || f[2] != "2" {
				t.Fatalf("after the rollout: %v %v", f, err)
			}
		}
	})
}

// closingWorker serves on $PORT and closes its server when told to,
// saying so once the server is closed.
const closingWorker = `const cluster = require('node:cluster');
const http = require('node:http');
const srv = http.createServer((req, res) => {
  res.end(cluster.worker.id + ' ' + process.pid + '\n');
}).listen(+process.env.PORT);
process.on('message', (m) => {
  if (m.close) { srv.close(); process.send({closed: cluster.worker.id}); }
});
`

// TestClusterReuseportClosedServerLeavesTheGroup: a Node worker that
// closes its server (cluster's close) gets no further connection on that
// address: its socket leaves the group although the worker lives on.
func TestClusterReuseportClosedServerLeavesTheGroup(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	h := startNode(t, closingWorker, fmt.Sprintf(`
apps:
  web:
    exec: ./server.js
    instances: 2
    schedulingPolicy: reuseport
    readiness: listening
    env: {PORT: "%d"}
`, port))
	ws := h.waitWorkers("2 ready", func(ws []WorkerInfo) bool { return len(ws) == 2 && ws[0].Ready && ws[1].Ready })
	if n, err := h.sup.Send(context.Background(), "web", ws[0].ID, []byte(`{"close":true}`)); err != nil || n != 1 {
		t.Fatalf("Send: %d %v", n, err)
	}
	// The worker's close reached paddock before this message.
	h.waitEvent("closed", func(e Event) bool { return e.Type == EventMessage && strings.Contains(e.Detail, "closed") })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	c := client("tcp", addr)
	for range 100 {
		f, err := nodeGet(c, addr)
		if err != nil || len(f) < 2 {
			t.Fatalf("after worker %d closed its server: %v %v", ws[0].ID, f, err)
		}
		if f[0] != strconv.Itoa(ws[1].ID) {
			t.Fatalf("worker %d answered after it closed its server", ws[0].ID)
		}
	}
	if now, _ := h.sup.Workers(context.Background()); len(now) != 2 || now[0].PID != ws[0].PID {
		t.Fatalf("the closing worker was replaced: %+v", now)
	}
}
