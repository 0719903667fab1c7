package supervisor

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// These tests guard paddock's own choices about the server handles of
// cluster workers (serverhandles.go), with real Node workers; what Node's
// primary does is the parity harness's (internal/nodecompat).

// gatedWorker is a Node cluster worker that says "ready" once it takes
// messages, then listens on $PORT when told "listen" (saying "listening")
// and closes its server when told "close" (saying "closed"). It answers
// HTTP requests with "<cluster id> <pid> <VERSION>".
const gatedWorker = `const cluster = require('node:cluster');
const http = require('node:http');
const server = http.createServer((req, res) => {
  res.end(cluster.worker.id + ' ' + process.pid + ' ' + (process.env.VERSION || '') + '\n');
});
process.on('message', (m) => {
  if (m === 'listen') server.listen(+process.env.PORT, () => process.send('listening'));
  if (m === 'close') server.close(() => process.send('closed'));
});
process.send('ready');
`

// gatedApp is the manifest of app web running gatedWorker.
func gatedApp(policy string, port, instances int, extra string) string {
	return fmt.Sprintf(`
apps:
  web:
    exec: ./server.js
    instances: %d
    schedulingPolicy: %s
    killTimeout: 60s
    env: {PORT: "%d"}
%s`, instances, policy, port, extra)
}

// tell sends msg (a JSON string's contents) to worker id of app web, once
// it said "ready", and waits for its answer: the message want.
func (h *harness) tell(id int, msg, want string) {
	h.t.Helper()
	h.readyForMessages(id)
	if _, err := h.sup.Send(context.Background(), "web", id, json.RawMessage(strconv.Quote(msg))); err != nil {
		h.t.Fatalf("send %q to worker %d: %v", msg, id, err)
	}
	h.waitMessage(id, want)
}

// readyForMessages waits until worker id said "ready", unless it did
// already.
func (h *harness) readyForMessages(id int) {
	h.t.Helper()
	for _, e := range h.seen {
		if e.Type == EventMessage && e.Worker == id && e.Detail == `"ready"` {
			return
		}
	}
	h.waitMessage(id, "ready")
}

// waitMessage waits for the message text (a JSON string's contents) from
// worker id.
func (h *harness) waitMessage(id int, text string) {
	h.t.Helper()
	h.waitEvent(fmt.Sprintf("message %q from worker %d", text, id), func(e Event) bool {
		return e.Type == EventMessage && e.Worker == id && e.Detail == strconv.Quote(text)
	})
}

// askRaw connects to addr, which must accept the connection (the kernel
// queues it while no worker accepts), and sends an HTTP request on it; the
// answer is read by the function returned.
func askRaw(t *testing.T, addr string) func() string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("connect to %s: %v (the socket was closed)", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, "GET / HTTP/1.0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	return func() string {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(patience))
		b, err := io.ReadAll(c)
		if err != nil {
			t.Fatalf("reading the answer: %v (%q so far)", err, b)
		}
		_, body, _ := strings.Cut(string(b), "\r\n\r\n")
		return body
	}
}

// servedBy reports whether an answer of gatedWorker comes from worker id.
func servedBy(answer string, id int) bool {
	f := strings.Fields(answer)
	return len(f) >= 2 && f[0] == strconv.Itoa(id)
}

// TestClusterSocketOutlivesAWorkerThatDies: the only worker holding a
// socket paddock opened on demand dies without closing it; the socket
// stays open with its queue (the app still wants a worker), so that a
// client connecting meanwhile is served by the replacement, not refused.
func TestClusterSocketOutlivesAWorkerThatDies(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{"rr", "none"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			port := freePort(t)
			addr := fmt.Sprintf("127.0.0.1:%d", port)
			h := startNode(t, gatedWorker, gatedApp(policy, port, 1, ""))
			ws := h.waitWorkers("the worker", running("web", 1))
			h.tell(ws[0].ID, "listen", "listening")
			if a := askRaw(t, addr)(); !servedBy(a, ws[0].ID) {
				t.Fatalf("answer %q, want one of worker %d", a, ws[0].ID)
			}
			if err := syscall.Kill(ws[0].PID, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			h.waitEvent("its exit", func(e Event) bool { return e.Type == EventExit && e.Worker == ws[0].ID })
			answer := askRaw(t, addr) // no worker listens: it waits
			fork := h.waitEvent("its replacement", func(e Event) bool { return e.Type == EventFork && e.Worker != ws[0].ID })
			h.tell(fork.Worker, "listen", "listening")
			if a := answer(); !servedBy(a, fork.Worker) {
				t.Errorf("answer %q, want one of the replacement, worker %d", a, fork.Worker)
			}
		})
	}
}

// TestClusterSocketClosesWhenScaledToZero: the app scaled to 0, its
// workers gone (their closes come while paddock retires them), the port
// paddock opened on demand is free again; scaled up again, the workers
// listen on it anew.
func TestClusterSocketClosesWhenScaledToZero(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{"rr", "none"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			port := freePort(t)
			addr := fmt.Sprintf("127.0.0.1:%d", port)
			h := startNode(t, gatedWorker, gatedApp(policy, port, 2, ""))
			ws := h.waitWorkers("2 workers", running("web", 2))
			for _, w := range ws {
				h.tell(w.ID, "listen", "listening")
			}
			askRaw(t, addr)()
			if _, err := h.sup.Scale(context.Background(), "web", 0); err != nil {
				t.Fatal(err)
			}
			h.waitWorkers("no workers", func(ws []WorkerInfo) bool { return len(ws) == 0 })
			waitBindable(t, fmt.Sprintf(":%d", port))
			if _, err := h.sup.Scale(context.Background(), "web", 1); err != nil {
				t.Fatal(err)
			}
			ws = h.waitWorkers("1 worker", running("web", 1))
			h.tell(ws[0].ID, "listen", "listening")
			if a := askRaw(t, addr)(); !servedBy(a, ws[0].ID) {
				t.Errorf("answer %q, want one of worker %d", a, ws[0].ID)
			}
		})
	}
}

// waitBindable polls until a socket of this process can listen on addr:
// nobody holds it any more.
func waitBindable(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		l, err := net.Listen("tcp", addr)
		if err == nil {
			l.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is still held: %v", addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestClusterListenSocketOutlivesItsServers: a worker closing its server
// on an address of its app's `listen:` does not close the socket, nor does
// the app's scale to 0 (the app owns it): with no worker left, a client
// connecting waits, and is served once a new worker listens.
func TestClusterListenSocketOutlivesItsServers(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{"rr", "none"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			port := freePort(t)
			addr := fmt.Sprintf("127.0.0.1:%d", port)
			h := startNode(t, gatedWorker, gatedApp(policy, port, 1, fmt.Sprintf("    listen: [%d]\n", port)))
			ws := h.waitWorkers("the worker", running("web", 1))
			h.tell(ws[0].ID, "listen", "listening")
			askRaw(t, addr)()
			h.tell(ws[0].ID, "close", "closed")
			if _, err := h.sup.Scale(context.Background(), "web", 0); err != nil {
				t.Fatal(err)
			}
			h.waitWorkers("no workers", func(ws []WorkerInfo) bool { return len(ws) == 0 })
			answer := askRaw(t, addr)
			if _, err := h.sup.Scale(context.Background(), "web", 1); err != nil {
				t.Fatal(err)
			}
			ws = h.waitWorkers("a new worker", running("web", 1))
			h.tell(ws[0].ID, "listen", "listening")
			if a := answer(); !servedBy(a, ws[0].ID) {
				t.Errorf("answer %q, want one of worker %d", a, ws[0].ID)
			}
		})
	}
}

// TestClusterRolloutStopFirstDropsNothing: a rolling update that retires
// the only worker before its replacement starts (maxSurge 0): the old
// worker's close, while paddock retires it, leaves the socket paddock
// opened on demand to the new one, and no request of a steady load is
// refused or fails.
func TestClusterRolloutStopFirstDropsNothing(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{"rr", "none"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			port := freePort(t)
			addr := fmt.Sprintf("127.0.0.1:%d", port)
			app := func(version string) string {
				return fmt.Sprintf(`
apps:
  web:
    exec: ./server.js
    instances: 1
    schedulingPolicy: %s
    readiness: listening
    readyTimeout: 60s
    killTimeout: 60s
    rollout: {maxSurge: 0, maxUnavailable: 1}
    env: {PORT: "%d", VERSION: "%s"}
`, policy, port, version)
			}
			h := startNode(t, pidWorker, app("1"))
			h.waitWorkers("1 ready", func(ws []WorkerInfo) bool { return len(ws) == 1 && ws[0].Ready })
			stop := make(chan struct{})
			res, wait := runLoad("tcp", addr, 4, 100000, stop)
			res.waitAnswered(t, 50)
			h.apply(app("2"))
			h.waitEvent("rollout complete", func(e Event) bool { return e.Type == EventRolloutProgress && e.Detail == "complete" })
			res.waitAnswered(t, 50)
			close(stop)
			wait()
			t.Logf("stop-first rolling update, %s: %s", policy, res)
			if res.refused.Load() != 0 || res.failed.Load() != 0 {
				t.Errorf("requests failed: %s", res)
			}
		})
	}
}

// TestClusterIgnoresTheListenOfALeavingWorker: a queryServer from a worker
// paddock is disconnecting, or that said it leaves (exitedAfterDisconnect),
// is not answered, as under Node's primary; the exitedAfterDisconnect the
// worker sends after it is, so the worker sees whether the answer came
// first (helper late-query: exit code 3 if it did).
func TestClusterIgnoresTheListenOfALeavingWorker(t *testing.T) {
	t.Parallel()
	for _, who := range []string{"disconnected", "self"} {
		t.Run(who, func(t *testing.T) {
			t.Parallel()
			port := freePort(t)
			h := start(t, fmt.Sprintf(`
apps:
  late:
    exec: $SELF
    ipc: node
    restart: never
    killTimeout: 60s
    env: {PADDOCK_TEST_HELPER: late-query, LATE_QUERY: %s, PORT: "%d"}
`, who, port))
			ws := h.waitWorkers("the worker", running("late", 1))
			if who == "disconnected" {
				if _, err := h.sup.Scale(context.Background(), "late", 0); err != nil {
					t.Fatal(err)
				}
			}
			ex := h.waitEvent("its exit", func(e Event) bool { return e.Type == EventExit && e.Worker == ws[0].ID })
			if ex.ExitCode != 0 {
				t.Errorf("exit %s: want 0 (3: the listen was answered); output:\n%s", describe([]Event{ex}), h.out.String())
			}
		})
	}
}

// lateQuery is helper mode late-query: a cluster worker that speaks the
// protocol itself. With LATE_QUERY=disconnected it waits for paddock's
// disconnect; with self it leaves first (exitedAfterDisconnect, answered).
// Then it asks for a server on 127.0.0.1:$PORT, and sends
// exitedAfterDisconnect, whose answer comes after any answer to the
// query: it exits 3 if the query was answered, 0 if not.
func lateQuery() {
	fd, _ := strconv.Atoi(os.Getenv("NODE_CHANNEL_FD"))
	ch := os.NewFile(uintptr(fd), "channel")
	in := bufio.NewScanner(ch)
	seq := 0
	send := func(fields string) int {
		s := seq
		seq++
		fmt.Fprintf(ch, `{"cmd":"NODE_CLUSTER",%s,"seq":%d}`+"\n", fields, s)
		return s
	}
	// next returns the next cluster message: a NODE_HANDLE's inner one.
	next := func() (act string, ack int) {
		for in.Scan() {
			var m struct {
				Cmd string
				Act string
				Ack *int
				Msg *struct {
					Act string
					Ack *int
				}
			}
			if json.Unmarshal(in.Bytes(), &m) != nil {
				continue
			}
			if m.Msg != nil {
				m.Act, m.Ack = m.Msg.Act, m.Msg.Ack
			}
			a := -1
			if m.Ack != nil {
				a = *m.Ack
			}
			return m.Act, a
		}
		fmt.Fprintln(os.Stderr, "late-query: the channel closed:", in.Err())
		os.Exit(2)
		return "", 0
	}
	send(`"act":"online"`)
	if os.Getenv("LATE_QUERY") == "self" {
		leave := send(`"act":"exitedAfterDisconnect"`)
		for _, ack := next(); ack != leave; _, ack = next() {
		}
	} else {
		for act, _ := next(); act != "disconnect"; act, _ = next() {
		}
	}
	query := send(`"act":"queryServer","index":0,"data":null,"address":"127.0.0.1","port":` + os.Getenv("PORT") + `,"addressType":4,"backlog":511`)
	leave := send(`"act":"exitedAfterDisconnect"`)
	for {
		_, ack := next()
		switch ack {
		case query:
			fmt.Fprintln(os.Stderr, "late-query: the listen was answered")
			os.Exit(3)
		case leave:
			os.Exit(0)
		}
	}
}
