package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/paddock-sh/paddock/internal/ipc"

	"github.com/paddock-sh/paddock/internal/testkit"
)

// helloWorld is the cluster example of Node's documentation, unchanged.
const helloWorld = `const cluster = require('node:cluster');
const http = require('node:http');
const numCPUs = require('node:os').availableParallelism();
const process = require('node:process');

if (cluster.isPrimary) {
  console.log(` + "`Primary ${process.pid} is running`" + `);

  // Fork workers.
  for (let i = 0; i < numCPUs; i++) {
    cluster.fork();
  }

  cluster.on('exit', (worker, code, signal) => {
    console.log(` + "`worker ${worker.process.pid} died`" + `);
  });
} else {
  // Workers can share any TCP connection
  // In this case it is an HTTP server
  http.createServer((req, res) => {
    res.writeHead(200);
    res.end('hello world\n');
  }).listen(8000);

  console.log(` + "`Worker ${process.pid} started`" + `);
}
`

// pidWorker is the same program answering with its pid, on $PORT, and
// talking to its primary: it reports its cluster id, and echoes messages.
const pidWorker = `const cluster = require('node:cluster');
const http = require('node:http');
if (cluster.isPrimary) {
  for (let i = 0; i < 2; i++) cluster.fork();
} else {
  http.createServer((req, res) => {
    res.writeHead(200);
    res.end(cluster.worker.id + ' ' + process.pid + ' ' + (process.env.VERSION || '') + '\n');
  }).listen(+process.env.PORT);
  process.send({clusterId: cluster.worker.id, paddockId: process.env.PADDOCK_WORKER_ID});
  process.on('message', (m) => process.send({echo: m}));
}
`

func needNode(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
}

// freePort returns a TCP port free on 127.0.0.1 at the time of the call,
// below the kernel's ephemeral range: a port from that range may meanwhile
// become the local port of one of the tests' own client connections, and a
// worker then cannot listen on it.
func freePort(t testing.TB) int {
	t.Helper()
	for range 1000 {
		port := 20000 + rand.IntN(12000)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			l.Close()
			return port
		}
	}
	t.Fatal("no free port below the ephemeral range")
	return 0
}

// startNode writes script as server.js beside the manifest and starts it.
func startNode(t *testing.T, script, manifest string) *harness {
	t.Helper()
	needNode(t)
	h := startWith(t, "", nil)
	if err := testkit.WriteFile(filepath.Join(h.dir, "server.js"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := h.sup.Apply(context.Background(), load(t, h.dir, manifest)); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestNodeClusterHelloWorldUnchanged(t *testing.T) {
	t.Parallel()
	if c, err := net.Dial("tcp", "127.0.0.1:8000"); err == nil {
		c.Close()
		t.Skip("port 8000 is in use on this machine")
	}
	h := startNode(t, helloWorld, `
apps:
  hello:
    exec: ./server.js
    instances: 2
    readiness: listening
`)
	for range 2 {
		e := h.waitEvent("listening", isType(EventListening))
		if !strings.HasSuffix(e.Detail, ":8000") {
			t.Errorf("listening on %q", e.Detail)
		}
	}
	h.waitWorkers("2 ready workers", func(ws []WorkerInfo) bool { return len(ws) == 2 && ws[0].Ready && ws[1].Ready })
	resp, err := http.Get("http://127.0.0.1:8000/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "hello world\n" {
		t.Errorf("answer %q", b)
	}
}

// kinds are the two implementations of a cluster worker: Node's cluster
// module, and package worker.
var kinds = []string{"node", "go"}

func pidApp(kind, policy string, port, instances int, version string) string {
	exec, extra := "./server.js", ""
	if kind == "go" {
		exec, extra = "$SELF\n    ipc: node", ", PADDOCK_TEST_HELPER: go-worker"
	}
	return fmt.Sprintf(`
apps:
  web:
    exec: %s
    instances: %d
    schedulingPolicy: %s
    readiness: listening
    readyTimeout: 60s
    killTimeout: 60s
    env: {PORT: "%d", VERSION: "%s"%s}
`, exec, instances, policy, port, version, extra)
}

// forKinds runs f as a subtest for each kind of cluster worker.
func forKinds(t *testing.T, f func(t *testing.T, kind string)) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			f(t, kind)
		})
	}
}

// nodeGet asks a pid worker for "id pid version", one connection each.
func nodeGet(c *http.Client, addr string) ([]string, error) {
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(b)), nil
}

func TestNodeClusterDistribution(t *testing.T) {
	t.Parallel()
	forKinds(t, testDistribution)
}

func testDistribution(t *testing.T, kind string) {
	for _, policy := range []string{"rr", "none"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			port := freePort(t)
			h := startNode(t, pidWorker, pidApp(kind, policy, port, 2, "1"))
			ws := h.waitWorkers("2 ready", func(ws []WorkerInfo) bool { return len(ws) == 2 && ws[0].Ready && ws[1].Ready })
			addr := fmt.Sprintf("127.0.0.1:%d", port)
			c := client("tcp", addr)
			counts := map[string]int{}
			const n = 200
			for range n {
				f, err := nodeGet(c, addr)
				if err != nil || len(f) < 2 {
					t.Fatalf("%v %v", f, err)
				}
				counts[f[0]]++
			}
			lo, hi := n, 0
			for _, w := range ws {
				c := counts[strconv.Itoa(w.ID)]
				lo, hi = min(lo, c), max(hi, c)
			}
			t.Logf("%s: %d connections: %v", policy, n, counts)
			// rr hands a connection to a free worker, the one free longest
			// first, but a worker whose answer to its last connection
			// arrives after the next one is queued takes that one too, as
			// under Node's primary (RoundRobinHandle.handoff): how even the
			// spread is depends on the machine's timing. What holds is that
			// every worker serves.
			if policy == "rr" && lo == 0 {
				t.Errorf("rr spread %v: a worker was handed nothing", counts)
			}
			if counts[strconv.Itoa(ws[0].ID)]+counts[strconv.Itoa(ws[1].ID)] != n {
				t.Errorf("answers from unknown workers: %v", counts)
			}
			// The status (and the metrics built on it) counts what
			// paddock handed out: each connection once, in rr only.
			now, err := h.sup.Workers(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range now {
				want := int64(counts[strconv.Itoa(w.ID)])
				if policy == "none" {
					want = 0
				}
				if w.HandedOut != want {
					t.Errorf("worker %d: %d connections handed out, want %d", w.ID, w.HandedOut, want)
				}
			}
		})
	}
}

func TestNodeClusterMessagesAndIDs(t *testing.T) {
	t.Parallel()
	forKinds(t, testMessagesAndIDs)
}

func testMessagesAndIDs(t *testing.T, kind string) {
	port := freePort(t)
	h := startNode(t, pidWorker, pidApp(kind, "rr", port, 1, "1"))
	m := h.waitEvent("message", isType(EventMessage))
	var got struct {
		ClusterID int    `json:"clusterId"`
		PaddockID string `json:"paddockId"`
	}
	if err := json.Unmarshal([]byte(m.Detail), &got); err != nil {
		t.Fatal(err)
	}
	if got.ClusterID != m.Worker || got.PaddockID != strconv.Itoa(m.Worker) {
		t.Errorf("cluster.worker.id %d, PADDOCK_WORKER_ID %s, paddock's id %d: want all equal", got.ClusterID, got.PaddockID, m.Worker)
	}
	n, err := h.sup.Send(context.Background(), "web", m.Worker, json.RawMessage(`{"ping":[1,"two"]}`))
	if err != nil || n != 1 {
		t.Fatalf("Send: %d %v", n, err)
	}
	echo := h.waitEvent("echo", func(e Event) bool { return e.Type == EventMessage && strings.Contains(e.Detail, "echo") })
	if echo.Detail != `{"echo":{"ping":[1,"two"]}}` {
		t.Errorf("echo %s", echo.Detail)
	}
}

func TestNodeClusterScaleDownDisconnects(t *testing.T) {
	t.Parallel()
	forKinds(t, testScaleDownDisconnects)
}

func testScaleDownDisconnects(t *testing.T, kind string) {
	port := freePort(t)
	h := startNode(t, pidWorker, pidApp(kind, "rr", port, 2, "1"))
	ws := h.waitWorkers("2 ready", func(ws []WorkerInfo) bool { return len(ws) == 2 && ws[0].Ready && ws[1].Ready })
	h.apply(pidApp(kind, "rr", port, 1, "1"))
	d := h.waitEvent("disconnect", isType(EventDisconnect))
	if d.Worker != ws[1].ID {
		t.Errorf("disconnected worker %d, want the newest, %d", d.Worker, ws[1].ID)
	}
	ex := h.waitEvent("exit", isType(EventExit))
	if ex.Worker != ws[1].ID || ex.ExitCode != 0 || !ex.Intended || ex.Signal != "" {
		t.Errorf("exit %+v, want worker %d exiting 0 on its own after disconnect", ex, ws[1].ID)
	}
	for _, e := range h.drain() {
		if e.Type == EventStopping || e.Type == EventKill {
			t.Errorf("a signal was needed: %s", describe([]Event{e}))
		}
	}
}

func TestNodeClusterRollingUpdateUnderLoad(t *testing.T) {
	t.Parallel()
	forKinds(t, testRollingUpdateUnderLoad)
}

func testRollingUpdateUnderLoad(t *testing.T, kind string) {
	port := freePort(t)
	h := startNode(t, pidWorker, pidApp(kind, "rr", port, 2, "1"))
	h.waitWorkers("2 ready", func(ws []WorkerInfo) bool { return len(ws) == 2 && ws[0].Ready && ws[1].Ready })
	stop := make(chan struct{})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	res, wait := runLoad("tcp", addr, 4, 100000, stop)
	res.waitAnswered(t, 100)
	h.apply(pidApp(kind, "rr", port, 2, "2"))
	h.waitEvent("rollout complete", func(e Event) bool { return e.Type == EventRolloutProgress && e.Detail == "complete" })
	h.waitWorkers("old workers gone", func(ws []WorkerInfo) bool { return len(ws) == 2 })
	res.waitAnswered(t, 100)
	close(stop)
	wait()
	t.Logf("rr rolling update of %s workers under load: %s", kind, res)
	if res.refused.Load() != 0 || res.failed.Load() != 0 || res.ok.Load() == 0 {
		t.Errorf("requests failed: %s", res)
	}
	f, err := nodeGet(client("tcp", addr), addr)
	if err != nil || len(f) != 3 || f[2] != "2" {
		t.Errorf("after the rollout: %v %v", f, err)
	}
}

// TestStickySessions runs testStickySessions with Node's cluster workers.
// A Go worker (package worker) takes a sticky connection exactly as an rr
// one, which the other tests cover: what this test checks for any worker
// is TestDispatcherSticky's, without a Supervisor.
func TestStickySessions(t *testing.T) {
	t.Parallel()
	t.Run("node", func(t *testing.T) { testStickySessions(t, "node") })
}

// testStickySessions: 40 client addresses (127.0.0.2 to 127.0.0.41), 3
// connections each, over 3 sticky workers: each address always reaches
// the same worker, and every worker serves some of them. The sticky
// dispatcher hashes each address with each worker's id (rendezvous
// hashing): with a uniform hash each address picks one of 3 workers at
// random, so that a worker gets none of 40 addresses with probability
// (2/3)^40, and any of 3 does with at most 3·(2/3)^40 ≈ 3·10⁻⁷. Then the
// oldest worker (first in every list) is killed and not replaced (restart:
// never): the clients of the others stay where they were, and its own
// clients move. A hash of the worker's place in the list instead of its id
// moves the others' clients; a hash that ignores the address sends every
// client to one worker.
func testStickySessions(t *testing.T, kind string) {
	port := freePort(t)
	h := startNode(t, pidWorker, pidApp(kind, "sticky", port, 3, "1")+"    restart: never\n")
	ws := h.waitWorkers("3 ready", func(ws []WorkerInfo) bool {
		return len(ws) == 3 && ws[0].Ready && ws[1].Ready && ws[2].Ready
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	from := func(ip string) *http.Client {
		d := &net.Dialer{Timeout: patience, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		return &http.Client{Timeout: patience, Transport: &http.Transport{DisableKeepAlives: true,
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }}}
	}
	var clients []string
	for i := 2; i < 42; i++ {
		clients = append(clients, fmt.Sprintf("127.0.0.%d", i))
	}
	mapping := func() map[string]string {
		m := map[string]string{}
		for _, ip := range clients {
			c := from(ip)
			for range 3 {
				f, err := nodeGet(c, addr)
				if err != nil {
					t.Fatal(err)
				}
				if prev, ok := m[ip]; ok && prev != f[0] {
					t.Fatalf("client %s went to workers %s and %s", ip, prev, f[0])
				}
				m[ip] = f[0]
			}
		}
		return m
	}
	spread := func(m map[string]string) map[string]int {
		n := map[string]int{}
		for _, w := range m {
			n[w]++
		}
		return n
	}
	before := mapping()
	t.Logf("%d clients over workers: %v", len(clients), spread(before))
	oldest := ws[0]
	for _, w := range ws {
		if w.ID < oldest.ID {
			oldest = w
		}
	}
	for _, w := range ws {
		if n := spread(before)[strconv.Itoa(w.ID)]; n == 0 {
			t.Fatalf("worker %d serves none of %d clients: %v", w.ID, len(clients), before)
		}
	}
	// Kill the oldest worker; with restart: never it is not replaced.
	if err := syscall.Kill(oldest.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.waitEvent("exit of the oldest worker", func(e Event) bool { return e.Type == EventExit && e.Worker == oldest.ID })
	after := mapping()
	gone := strconv.Itoa(oldest.ID)
	t.Logf("without worker %s: %v", gone, spread(after))
	for ip, w := range before {
		if w != gone && after[ip] != w {
			t.Errorf("client %s moved from worker %s to %s although %s stayed", ip, w, after[ip], w)
		}
		if after[ip] == gone {
			t.Errorf("client %s still goes to the killed worker %s", ip, gone)
		}
	}
}

// TestOnDemandSocketClosesWithItsApp: the port a cluster worker asked for
// (not in listen:) closes once its app is removed and its workers are gone.
func TestOnDemandSocketClosesWithItsApp(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	h := startNode(t, pidWorker, pidApp("go", "rr", port, 2, "1"))
	h.waitWorkers("2 ready", func(ws []WorkerInfo) bool { return len(ws) == 2 && ws[0].Ready && ws[1].Ready })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if _, err := nodeGet(client("tcp", addr), addr); err != nil {
		t.Fatal(err)
	}
	h.apply("apps: {}\n")
	h.waitWorkers("no workers", func(ws []WorkerInfo) bool { return len(ws) == 0 })
	deadline := time.Now().Add(patience)
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the on-demand port is still open after its app was removed")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestClusterReplyToDeafWorker: a worker whose queue is full (it never reads
// its channel) asks for a server; the reply cannot be queued, so paddock
// closes its channel rather than drop the reply (listen() would wait for
// ever), stops the worker, and replaces it: its exit 0 counts as a failure
// for restart: on-failure.
func TestClusterReplyToDeafWorker(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	h := start(t, fmt.Sprintf(`
apps:
  deaf:
    exec: $SELF
    ipc: node
    restart: on-failure
    killTimeout: 60s
    env: {PADDOCK_TEST_HELPER: deaf-query, READY_DIR: "$DIR", PORT: "%d"}
`, port))
	ws := h.waitWorkers("the worker", running("deaf", 1))
	h.waitReady(ws)
	w := ws[0]
	big := json.RawMessage(`"` + strings.Repeat("z", 4096) + `"`)
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := h.sup.Send(t.Context(), "deaf", w.ID, big)
		if errors.Is(err, ipc.ErrQueueFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the worker's queue never filled")
		}
	}
	if err := syscall.Kill(w.PID, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	stop := h.waitEvent("the worker stopped", func(e Event) bool { return e.Type == EventStopping && e.Worker == w.ID })
	if !strings.Contains(stop.Detail, "queryServer") || !strings.Contains(stop.Detail, "queue is full") {
		t.Errorf("stopping detail %q", stop.Detail)
	}
	ex := h.waitEvent("its exit", func(e Event) bool { return e.Type == EventExit && e.Worker == w.ID })
	if ex.Intended || ex.ExitCode != 0 {
		t.Errorf("exit %s: want exit 0 on SIGTERM, not intended", describe([]Event{ex}))
	}
	h.waitEvent("its restart", func(e Event) bool { return e.Type == EventRestart && e.Worker == w.ID })
	fork := h.waitEvent("its replacement", func(e Event) bool { return e.Type == EventFork && e.App == "deaf" && e.Worker != w.ID })
	// The replacement does not read its channel either, and would hold up
	// the shutdown for killTimeout: it leaves by itself, exit 0, not
	// replaced.
	h.waitReady([]WorkerInfo{{ID: fork.Worker}})
	syscall.Kill(fork.PID, syscall.SIGTERM)
	h.waitEvent("the replacement's exit", func(e Event) bool { return e.Type == EventExit && e.Worker == fork.Worker })
}
