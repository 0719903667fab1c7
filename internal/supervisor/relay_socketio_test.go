package supervisor

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// socketIODir holds the socket.io test's worker and client, and its npm
// packages (package.json, package-lock.json), which make npm-deps installs
// with npm ci.
const socketIODir = "testdata/socketio"

// needSocketIO skips the test without node, as every Node test here does,
// and fails it when node is there but the packages are not installed: make
// test installs them, and a test that cannot run must say so.
func needSocketIO(t *testing.T) string {
	t.Helper()
	needNode(t)
	dir, err := filepath.Abs(socketIODir)
	if err != nil {
		t.Fatal(err)
	}
	for _, pkg := range []string{"@socket.io/cluster-adapter", "socket.io", "socket.io-client"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg, "package.json")); err != nil {
			t.Fatalf("the npm packages of this test are not installed (%v): run make npm-deps (npm ci in %s)", err, dir)
		}
	}
	return dir
}

// lines runs cmd and returns its stdout, line by line; the process is
// killed when the test ends.
func lines(t *testing.T, cmd *exec.Cmd) <-chan string {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ch := make(chan string, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(ch)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			ch <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		cmd.Wait()
	})
	return ch
}

// TestRelaySocketIO: three socket.io servers with @socket.io/cluster-adapter
// (from npm, unmodified), each a Node cluster worker of paddock on a port
// of its own, with ipc.relay: socket.io in place of the adapter's
// setupPrimary(). A client of server A joins a room; server B's
// serverSideEmit with an acknowledgement hears back from A and C (the
// responses go to B alone, by its adapter uid), its fetchSockets finds the
// client on A, its broadcast with an acknowledgement gets the client's
// answer, and its io.to(room).emit reaches the client. Without the relay
// none of it works: the adapter's messages would be message events. No
// adapter message is one, none is dropped, and every response finds its
// worker.
func TestRelaySocketIO(t *testing.T) {
	t.Parallel()
	dir := needSocketIO(t)
	h := startWith(t, "", nil)
	h.apply(fmt.Sprintf(`
apps:
  io:
    exec: %s
    instances: 3
    ipc:
      mode: node
      relay: socket.io
`, filepath.Join(dir, "worker.js")))
	// Each worker reports its port once it listens.
	ports := map[int]int{}
	for len(ports) < 3 {
		e := h.waitEvent("a server's port", func(e Event) bool { return e.Type == EventMessage && strings.Contains(e.Detail, `"port"`) })
		var m struct{ Port, Worker int }
		if err := json.Unmarshal([]byte(e.Detail), &m); err != nil || m.Worker != e.Worker {
			t.Fatalf("message %q from worker %d", e.Detail, e.Worker)
		}
		ports[e.Worker] = m.Port
	}
	ids := make([]int, 0, 3)
	for id := range ports {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	a, b, c := ids[0], ids[1], ids[2]
	client := lines(t, exec.Command("node", filepath.Join(dir, "client.js"), fmt.Sprint(ports[a]), "r1"))
	expect := func(want string) {
		t.Helper()
		select {
		case l, ok := <-client:
			if !ok {
				t.Fatalf("the client ended before it printed %q", want)
			}
			if l != want {
				t.Fatalf("the client printed %q, want %q", l, want)
			}
		case <-time.After(patience):
			t.Fatalf("the client did not print %q", want)
		}
	}
	expect(fmt.Sprintf("joined %d", a))

	send := func(to int, msg string) {
		t.Helper()
		if _, err := h.sup.Send(context.Background(), "io", to, json.RawMessage(msg)); err != nil {
			t.Fatal(err)
		}
	}
	report := func(from int, key string) string {
		t.Helper()
		e := h.waitEvent(fmt.Sprintf("worker %d's %s", from, key), func(e Event) bool {
			return e.Type == EventMessage && e.Worker == from && strings.HasPrefix(e.Detail, `{"`+key+`":`)
		})
		return e.Detail
	}
	// serverSideEmit with an acknowledgement: A and C answer, the
	// responses reach B.
	send(b, `{"ping":2}`)
	if got, want := report(b, "pongs"), fmt.Sprintf(`{"pongs":[%d,%d],"worker":%d}`, a, c, b); got != want {
		t.Errorf("serverSideEmit from %d: %s, want %s", b, got, want)
	}
	// fetchSockets finds the client, on A, in room r1.
	send(b, `{"fetch":"r1"}`)
	var fetched struct {
		Fetched int
		Rooms   [][]string
	}
	if err := json.Unmarshal([]byte(report(b, "fetched")), &fetched); err != nil {
		t.Fatal(err)
	}
	if fetched.Fetched != 1 || len(fetched.Rooms) != 1 || !slices.Contains(fetched.Rooms[0], "r1") {
		t.Errorf("fetchSockets from %d: %+v, want the client, in r1", b, fetched)
	}
	// A broadcast with an acknowledgement: the client answers through A.
	send(b, `{"ask":"r1"}`)
	expect("asked")
	if got, want := report(b, "answers"), fmt.Sprintf(`{"answers":["client-answer"],"worker":%d}`, b); got != want {
		t.Errorf("broadcast with an acknowledgement from %d: %s, want %s", b, got, want)
	}
	// io.to(room).emit from B reaches A's client.
	send(b, `{"emit":"r1","text":"hello from b"}`)
	expect("news hello from b")

	for _, e := range h.drain() {
		if e.Type == EventMessage && strings.Contains(e.Detail, `"_sio_adapter"`) {
			t.Errorf("an adapter message was a message event: %s", describe([]Event{e}))
		}
	}
	st, err := h.sup.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r := st.Relay["io"]; r.Messages == 0 || r.Delivered == 0 || r.Dropped != 0 || r.Unrouted != 0 {
		t.Errorf("relay counts %+v: want messages delivered, none dropped or unrouted", r)
	}
}
