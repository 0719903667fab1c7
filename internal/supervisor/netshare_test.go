package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/paddock-sh/paddock/internal/testkit"
	"github.com/paddock-sh/paddock/manifest"
	"github.com/paddock-sh/paddock/procs"
)

// listenAddr returns the address app listens on (its first), as bound.
func (h *harness) listenAddr(app string) string {
	h.t.Helper()
	ls, err := h.sup.Listeners(context.Background())
	if err != nil || len(ls[app]) == 0 {
		h.t.Fatalf("no listener for %s: %v %v", app, ls, err)
	}
	return ls[app][0]
}

// client makes one request per connection, as `Connection: close` load
// does, over TCP or a unix socket.
func client(network, addr string) *http.Client {
	d := &net.Dialer{Timeout: patience}
	return &http.Client{
		Timeout: patience,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return d.DialContext(ctx, network, addr)
			},
		},
	}
}

// answer is what a test worker says: its id, pid and LISTEN_PID.
type answer struct {
	id, pid, listenPID string
}

func get(c *http.Client) (answer, error) {
	resp, err := c.Get("http://paddock.test/")
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	if resp.StatusCode != 200 {
		return answer{}, fmt.Errorf("status %d", resp.StatusCode)
	}
	f := strings.Fields(string(b))
	if len(f) != 3 {
		return answer{}, fmt.Errorf("bad answer %q", b)
	}
	return answer{f[0], f[1], f[2]}, nil
}

// loadResult counts the outcome of a load run.
type loadResult struct {
	ok, refused, failed atomic.Int64
	mu                  sync.Mutex
	byWorker            map[string]int
	errs                []string
}

// runLoad sends requests, one connection each, from conc goroutines until
// stop is closed or max requests were sent. It is loopback only and bounded.
func runLoad(network, addr string, conc int, max int64, stop <-chan struct{}) (*loadResult, func()) {
	r := &loadResult{byWorker: map[string]int{}}
	var sent atomic.Int64
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			c := client(network, addr)
			for sent.Add(1) <= max {
				select {
				case <-stop:
					return
				default:
				}
				a, err := get(c)
				switch {
				case err == nil:
					r.ok.Add(1)
					r.mu.Lock()
					r.byWorker[a.id]++
					r.mu.Unlock()
				case errors.Is(err, syscall.ECONNREFUSED):
					r.refused.Add(1)
				default:
					r.failed.Add(1)
					r.mu.Lock()
					if len(r.errs) < 5 {
						r.errs = append(r.errs, time.Now().Format("15:04:05.000000")+" "+err.Error())
					}
					r.mu.Unlock()
				}
			}
		})
	}
	return r, wg.Wait
}

// waitAnswered waits until n more requests of the load were answered than
// when it was called: the load demonstrably runs before and after what it
// watches, whatever the machine's speed.
func (r *loadResult) waitAnswered(t *testing.T, n int64) {
	t.Helper()
	target := r.ok.Load() + n
	deadline := time.Now().Add(patience)
	for r.ok.Load() < target {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d requests answered: %s", r.ok.Load(), target, r)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *loadResult) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprintf("%d ok, %d refused, %d failed, per worker %v, errors %q", r.ok.Load(), r.refused.Load(), r.failed.Load(), r.byWorker, r.errs)
}

func httpApp(policy string, instances int, extra string) string {
	return fmt.Sprintf(`
apps:
  web:
    exec: $SELF
    instances: %d
    schedulingPolicy: %s
    killTimeout: 60s
    listen: ["127.0.0.1:0"]
    env: {PADDOCK_TEST_HELPER: http, READY_DIR: "$DIR"%s}
`, instances, policy, extra)
}

func TestSharedSocketsServeRequests(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{"none", "rr", "reuseport"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			h := start(t, httpApp(policy, 3, ""))
			ws := h.waitWorkers("3 workers", running("web", 3))
			h.waitReady(ws)
			c := client("tcp", h.listenAddr("web"))
			counts := map[string]int{}
			const n = 300
			for range n {
				a, err := get(c)
				if err != nil {
					t.Fatal(err)
				}
				if a.pid != a.listenPID {
					t.Fatalf("worker %s: LISTEN_PID %s is not its pid %s", a.id, a.listenPID, a.pid)
				}
				counts[a.id]++
			}
			lo, hi := n, 0
			for _, w := range ws {
				lo, hi = min(lo, counts[strconv.Itoa(w.ID)]), max(hi, counts[strconv.Itoa(w.ID)])
			}
			t.Logf("%s: %d connections over 3 workers: %v (max/min %d/%d)", policy, n, counts, hi, lo)
			if policy == "reuseport" && lo == 0 {
				t.Errorf("reuseport left a worker without connections: %v", counts)
			}
		})
	}
}

func TestRollingUpdateUnderLoadDropsNothing(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{"none", "reuseport"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			h := start(t, httpApp(policy, 2, `, VERSION: "1"`))
			h.waitReady(h.waitWorkers("2 workers", running("web", 2)))
			stop := make(chan struct{})
			res, wait := runLoad("tcp", h.listenAddr("web"), 4, 100000, stop)
			res.waitAnswered(t, 100)
			h.apply(httpApp(policy, 2, `, VERSION: "2"`))
			h.waitEvent("rollout complete", func(e Event) bool { return e.Type == EventRolloutProgress && e.Detail == "complete" })
			h.waitWorkers("old workers gone", func(ws []WorkerInfo) bool { return len(ws) == 2 })
			res.waitAnswered(t, 100)
			close(stop)
			wait()
			t.Logf("%s rolling update under load: %s", policy, res)
			if res.refused.Load() != 0 || res.failed.Load() != 0 || res.ok.Load() == 0 {
				t.Errorf("requests failed during a rolling update: %s", res)
			}
		})
	}
}

func TestKillUnderLoadRefusesNothing(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{"none", "reuseport"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			h := start(t, httpApp(policy, 2, "")+"    backoff: {initial: 10ms, max: 1s}\n")
			ws := h.waitWorkers("2 workers", running("web", 2))
			h.waitReady(ws)
			stop := make(chan struct{})
			res, wait := runLoad("tcp", h.listenAddr("web"), 4, 100000, stop)
			res.waitAnswered(t, 100)
			if err := syscall.Kill(ws[0].PID, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			h.waitEvent("replacement listening", func(e Event) bool { return e.Type == EventListening && e.Worker > ws[1].ID })
			res.waitAnswered(t, 100)
			close(stop)
			wait()
			// Only requests in flight inside the killed worker may fail.
			t.Logf("%s kill -9 under load: %s", policy, res)
			if res.refused.Load() != 0 {
				t.Errorf("connections were refused after a worker died: %s", res)
			}
			if res.ok.Load() == 0 {
				t.Errorf("no request succeeded: %s", res)
			}
		})
	}
}

func TestUnixSocket(t *testing.T) {
	t.Parallel()
	h := start(t, `
apps:
  web:
    exec: $SELF
    listen: ["unix:$DIR/web.sock?mode=0600"]
    env: {PADDOCK_TEST_HELPER: http, READY_DIR: "$DIR"}
`)
	h.waitReady(h.waitWorkers("1 worker", running("web", 1)))
	sock := filepath.Join(h.dir, "web.sock")
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket file mode %v, want a socket with 0600", fi.Mode())
	}
	if _, err := get(client("unix", sock)); err != nil {
		t.Fatal(err)
	}
	// Removing the app retires its worker, then closes and removes the
	// socket.
	h.apply("apps: {}\n")
	h.waitWorkers("no workers", func(ws []WorkerInfo) bool { return len(ws) == 0 })
	deadline := time.Now().Add(patience)
	for {
		if _, err := os.Stat(sock); errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("socket file left behind")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestBindErrorsRejectTheSet(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	h := start(t, httpApp("none", 1, ""))
	before := h.waitWorkers("1 worker", running("web", 1))
	set := load(t, h.dir, httpApp("none", 2, "")+`
  api:
    exec: $SELF
    listen: ["`+busy.Addr().String()+`"]
`)
	_, err = h.sup.Apply(context.Background(), set)
	errs := manifest.Errors(err)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "apps.api.listen[0]: cannot listen on "+busy.Addr().String()+": address already in use") ||
		!strings.Contains(errs[0].Error(), "paddock.yaml:13:14") {
		t.Fatalf("Apply error %v, want the api listen line and EADDRINUSE", err)
	}
	// Nothing changed: the running set is kept (web was not scaled). No
	// waiting is needed to know it: the supervisor carries out the plan
	// that follows a request before it takes the next, so a scale-up
	// would show in what Workers answers now, and in the events.
	now, err := h.sup.Workers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(now) != 1 || now[0].PID != before[0].PID {
		t.Errorf("workers changed after a rejected set: %+v, then %+v", before, now)
	}
	for _, e := range h.drain() {
		if e.Type == EventFork && e.Worker != before[0].ID {
			t.Errorf("a worker was started after a rejected set: %s", describe([]Event{e}))
		}
	}

	// At start-up the same error keeps anything from starting.
	sup := New(Options{Logger: h.sup.opts.Logger, Reaper: &procs.Reaper{OwnChildrenOnly: true}})
	if err := sup.Run(context.Background(), set); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("Run with an address in use: %v", err)
	}
}

func TestRemovedAddressIsClosedAfterItsWorkers(t *testing.T) {
	t.Parallel()
	const manifest = `
apps:
  web:
    exec: $SELF
    listen: ["%s"]
    env: {PADDOCK_TEST_HELPER: http, READY_DIR: "$DIR"}
`
	h := start(t, fmt.Sprintf(manifest, "127.0.0.1:0"))
	h.waitReady(h.waitWorkers("1 worker", running("web", 1)))
	oldAddr := h.listenAddr("web")
	h.apply(fmt.Sprintf(manifest, "unix:$DIR/new.sock"))
	h.waitEvent("rollout complete", func(e Event) bool { return e.Type == EventRolloutProgress && e.Detail == "complete" })
	h.waitWorkers("1 worker", func(ws []WorkerInfo) bool { return len(ws) == 1 })
	if _, err := get(client("unix", filepath.Join(h.dir, "new.sock"))); err != nil {
		t.Fatalf("new address: %v", err)
	}
	deadline := time.Now().Add(patience)
	for {
		_, err := get(client("tcp", oldAddr))
		if errors.Is(err, syscall.ECONNREFUSED) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("old address still open after its workers were retired: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRealServersOnInheritedSockets runs servers that are not paddock's:
// Python's http.server and Node's http module, each taking the socket from
// descriptor 3.
func TestRealServersOnInheritedSockets(t *testing.T) {
	t.Parallel()
	servers := []struct {
		name, file, program, source, manifest string
	}{
		{"python", "server.py", "python3", `
import http.server, os, socket
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("%s %d %s\n" % (os.environ["PADDOCK_WORKER_ID"], os.getpid(), os.environ.get("LISTEN_PID", ""))).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
srv = http.server.HTTPServer(("", 0), H, bind_and_activate=False)
srv.socket = socket.socket(fileno=3)
srv.serve_forever()
`, "    execPath: python3\n"},
		{"node", "server.js", "node", "require('http').createServer((q, r) => r.end(`${process.env.PADDOCK_WORKER_ID} ${process.pid} ${process.env.LISTEN_PID}\\n`)).listen({fd: 3})\n", ""},
	}
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			if _, err := exec.LookPath(srv.program); err != nil {
				t.Skipf("%s is not installed", srv.program)
			}
			dir := t.TempDir()
			if err := testkit.WriteFile(filepath.Join(dir, srv.file), []byte(srv.source), 0o644); err != nil {
				t.Fatal(err)
			}
			h := startSet(t, load(t, dir, fmt.Sprintf(`
apps:
  web:
    exec: ./%s
%s    instances: 2
    schedulingPolicy: none
    listen: ["127.0.0.1:0"]
`, srv.file, srv.manifest)))
			ws := h.waitWorkers("2 workers", running("web", 2))
			c := client("tcp", h.listenAddr("web"))
			seen := map[string]bool{}
			deadline := time.Now().Add(patience)
			for len(seen) < 1 || time.Now().Before(deadline) && len(seen) < 2 {
				a, err := get(c)
				if err != nil {
					if time.Now().After(deadline) {
						t.Fatal(err)
					}
					time.Sleep(20 * time.Millisecond) // the interpreter is still starting
					continue
				}
				if a.pid != a.listenPID {
					t.Fatalf("LISTEN_PID %s, pid %s", a.listenPID, a.pid)
				}
				seen[a.pid] = true
			}
			t.Logf("%s: answered by pids %v of workers %v", srv.name, seen, pids(ws, "web"))
		})
	}
}

// TestListenFDsHandover checks what a socket-activated worker receives, on a
// program that opens nothing itself: descriptors 0-2 and its sockets from 3
// in `listen:` order, LISTEN_FDS, LISTEN_FDNAMES, and LISTEN_PID equal to
// its own pid.
func TestListenFDsHandover(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{"none", "reuseport"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			listen := `["127.0.0.1:0", "[::1]:0"]`
			if policy == "none" {
				listen = `["127.0.0.1:0", "unix:$DIR/w.sock"]`
			}
			h := start(t, `
apps:
  web:
    exec: /bin/sleep
    args: [3600]
    instances: 2
    schedulingPolicy: `+policy+`
    listen: `+listen+`
`)
			ws := h.waitWorkers("2 workers", running("web", 2))
			ls, err := h.sup.Listeners(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, a := range ls["web"] {
				if _, port, err := net.SplitHostPort(a); err == nil {
					names = append(names, port)
				} else {
					names = append(names, filepath.Base(a))
				}
			}
			inodes := map[string]bool{}
			for _, w := range ws {
				// The worker begins as the shim (this binary) and execs
				// sleep: wait for sleep's environment (for a moment after
				// the exec, /proc shows sleep with an empty one: the kernel
				// sets it up after it switched programs).
				var env map[string]string
				deadline := time.Now().Add(patience)
				for {
					exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", w.PID))
					env = environ(t, w.PID)
					if strings.HasSuffix(exe, "/sleep") && env["LISTEN_FDS"] != "" {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("worker %d is %s with environment %v", w.ID, exe, env)
					}
					time.Sleep(5 * time.Millisecond)
				}
				testkit.WaitFDs(t, w.PID, []int{0, 1, 2, 3, 4})
				if env["LISTEN_PID"] != strconv.Itoa(w.PID) || env["LISTEN_FDS"] != "2" || env["LISTEN_FDNAMES"] != strings.Join(names, ":") {
					t.Errorf("worker %d: LISTEN_PID=%s LISTEN_FDS=%s LISTEN_FDNAMES=%s; want %d, 2, %s",
						w.ID, env["LISTEN_PID"], env["LISTEN_FDS"], env["LISTEN_FDNAMES"], w.PID, strings.Join(names, ":"))
				}
				if _, ok := env["PADDOCK_EXEC_SHIM"]; ok {
					t.Error("the shim's variable reached the worker")
				}
				link, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/3", w.PID))
				if !strings.HasPrefix(link, "socket:") {
					t.Errorf("descriptor 3 is %q, want a socket", link)
				}
				inodes[link] = true
			}
			// none: both workers share one socket; reuseport: one each.
			if want := map[string]int{"none": 1, "reuseport": 2}[policy]; len(inodes) != want {
				t.Errorf("%d distinct sockets on descriptor 3 over 2 workers, want %d", len(inodes), want)
			}
		})
	}
}

// TestGoSystemdWorker runs a worker written against go-systemd's activation
// and daemon packages: it finds its sockets by name and its readiness
// reaches paddock.
func TestGoSystemdWorker(t *testing.T) {
	t.Parallel()
	h := start(t, `
apps:
  web:
    exec: $SELF
    instances: 2
    readiness: notify
    listen: ["127.0.0.1:0", "unix:$DIR/web.sock"]
    env: {PADDOCK_TEST_HELPER: go-systemd}
`)
	h.waitWorkers("2 ready workers", func(ws []WorkerInfo) bool {
		return len(ws) == 2 && ws[0].Ready && ws[1].Ready
	})
	addr := h.listenAddr("web")
	_, port, _ := net.SplitHostPort(addr)
	for _, c := range []*http.Client{client("tcp", addr), client("unix", filepath.Join(h.dir, "web.sock"))} {
		resp, err := c.Get("http://paddock.test/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		f := strings.Fields(string(b))
		if len(f) != 4 || f[1] != f[2] || f[3] != port+",web.sock" {
			t.Errorf("go-systemd worker answered %q; want its pid twice and the names %s,web.sock", b, port)
		}
	}
}
