package supervisor

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	gworker "github.com/paddock-sh/paddock/worker"
)

// relayRulesManifest is an app of three go-worker workers, which echo
// every message they get as {"echo": message}: a message paddock sends
// one (Supervisor.Send) comes back as {"echo": {...}}, which the rules
// match by echo.kind and relay; the workers it reaches echo it in turn, as
// {"echo": {"echo": {...}}}, which no rule matches: a message event that
// says who got what. %s is the ipc field, %d the port.
const relayRulesManifest = `
apps:
  chat:
    exec: $SELF
    instances: 3
    ipc: %s
    env: {PADDOCK_TEST_HELPER: go-worker, PORT: "%d"}
`

const relayRules = `
      mode: node
      relay:
        - match: {echo.kind: direct}
          to: {worker: echo.to}
        - match: {echo.kind: reply}
          to: {alias: echo.for}
        - match: {echo.kind: hello}
          alias: echo.name
          to: others
        - match: {echo.kind: shout}
          to: all
        - match: {echo.kind: chat}`

// relayed is what worker id reports when a message relayed to it came
// with n: the event's worker and its detail's echo.echo.n.
type relayed struct{ worker, n int }

// relayedOf returns what an event says was relayed, if it says so.
func relayedOf(e Event) (relayed, bool) {
	if e.Type != EventMessage {
		return relayed{}, false
	}
	var m struct {
		Echo struct {
			Echo *struct {
				N int `json:"n"`
			} `json:"echo"`
		} `json:"echo"`
	}
	if json.Unmarshal([]byte(e.Detail), &m) != nil || m.Echo.Echo == nil {
		return relayed{}, false
	}
	return relayed{e.Worker, m.Echo.Echo.N}, true
}

// TestRelayRules: with ipc.relay, a worker's message that matches a rule
// goes, unchanged and in order, to the workers the rule says (the others,
// all, the worker whose id it names, the worker that claimed the alias it
// names), and is not a message event; one that names no worker is
// counted as unrouted. Without relay the same message is a message event;
// relay added by a reload takes effect on the running workers, which are
// kept.
func TestRelayRules(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	h := start(t, fmt.Sprintf(relayRulesManifest, "node", port))
	ws := h.waitWorkers("3 workers", running("chat", 3))
	for range 3 {
		h.waitEvent("a worker's hello", func(e Event) bool {
			return e.Type == EventMessage && strings.Contains(e.Detail, `"clusterId"`)
		})
	}
	a, b, c := ws[0].ID, ws[1].ID, ws[2].ID
	send := func(to int, msg string) {
		t.Helper()
		if _, err := h.sup.Send(context.Background(), "chat", to, json.RawMessage(msg)); err != nil {
			t.Fatal(err)
		}
	}
	// got waits for the message events saying that each of want got the
	// message n relayed, and returns every relayed message received by
	// then.
	got := func(n int, want ...int) []relayed {
		t.Helper()
		for _, id := range want {
			h.waitEvent(fmt.Sprintf("worker %d to get message %d", id, n), func(e Event) bool {
				r, ok := relayedOf(e)
				return ok && r == relayed{id, n}
			})
		}
		var all []relayed
		for _, e := range h.drain() {
			if r, ok := relayedOf(e); ok {
				all = append(all, r)
			}
		}
		return all
	}

	// Without relay: the echo is a message event of its own.
	send(a, `{"kind":"chat","n":0}`)
	h.waitEvent("the echo as a message event", func(e Event) bool {
		return e.Type == EventMessage && e.Worker == a && e.Detail == `{"echo":{"kind":"chat","n":0}}`
	})

	// Relay added: the workers are kept, the rules apply at once.
	h.apply(fmt.Sprintf(relayRulesManifest, relayRules, port))
	rl := h.waitEvent("the reload", isType(EventReload))
	if !strings.Contains(rl.Detail, "reconfigured (ipc.relay)") {
		t.Errorf("reload %q, want the app reconfigured (ipc.relay)", rl.Detail)
	}
	if now := h.waitWorkers("3 workers", running("chat", 3)); !slices.EqualFunc(now, ws, func(x, y WorkerInfo) bool { return x.PID == y.PID }) {
		t.Errorf("workers replaced by a change of ipc.relay: %+v, then %+v", ws, now)
	}

	// to: others, the default.
	send(a, `{"kind":"chat","n":1}`)
	got(1, b, c)

	// to: {worker: PATH}, a number or a string of digits; then a
	// message to the others, which a reached after any misrouted one.
	send(a, fmt.Sprintf(`{"kind":"direct","to":%d,"n":2}`, c))
	send(a, fmt.Sprintf(`{"kind":"direct","to":"%d","n":3}`, b))
	send(a, `{"kind":"chat","n":4}`)
	all := got(4, b, c)
	for _, r := range []relayed{{c, 2}, {b, 3}} {
		if !slices.Contains(all, r) {
			t.Errorf("worker %d did not get message %d", r.worker, r.n)
		}
	}
	for _, r := range []relayed{{a, 2}, {b, 2}, {a, 3}, {c, 3}} {
		if slices.Contains(all, r) {
			t.Errorf("worker %d got message %d, addressed to another", r.worker, r.n)
		}
	}

	// alias: b claims "bee" (and tells the others); c's reply for "bee"
	// goes to b alone.
	send(b, `{"kind":"hello","name":"bee","n":5}`)
	got(5, a, c)
	send(c, `{"kind":"reply","for":"bee","n":6}`)
	send(c, `{"kind":"chat","n":7}`)
	all = got(7, a, b)
	if !slices.Contains(all, relayed{b, 6}) {
		t.Error("the reply for alias bee did not reach the worker that claimed it")
	}
	if slices.Contains(all, relayed{a, 6}) || slices.Contains(all, relayed{c, 6}) {
		t.Errorf("the reply for alias bee reached another worker: %v", all)
	}

	// to: all, the sender too.
	send(a, `{"kind":"shout","n":8}`)
	got(8, a, b, c)

	// Unrouted: a worker of no app's, an alias nobody claimed.
	send(a, `{"kind":"direct","to":9999,"n":9}`)
	send(a, `{"kind":"reply","for":"nobody","n":10}`)
	send(a, `{"kind":"chat","n":11}`)
	all = got(11, b, c)
	for _, r := range all {
		if r.n == 9 || r.n == 10 {
			t.Errorf("worker %d got message %d, addressed to no worker", r.worker, r.n)
		}
	}

	// No relayed message was a message event: the owner handled each
	// before the echoes that followed it.
	for _, e := range h.drain() {
		if e.Type == EventMessage && strings.HasPrefix(e.Detail, `{"echo":{"kind":`) && !strings.Contains(e.Detail, `"n":0}`) {
			t.Errorf("a relayed message was also a message event: %s", describe([]Event{e}))
		}
	}
	st, err := h.sup.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// 11 messages matched; copies: 2+1+1+2+2+1+2+3+2.
	want := RelayCounts{Messages: 11, Delivered: 16, Unrouted: 2}
	if got := st.Relay["chat"]; got != want {
		t.Errorf("relay counts %+v, want %+v", got, want)
	}
}

// serveRelay is the relay helper mode. The worker whose id is
// $DEAF_WORKER never reads its IPC channel: on SIGUSR1 it sends a
// queryServer for 127.0.0.1:$PORT, on SIGUSR2 it starts reading (and
// dropping) what waits there; it says it is ready as serve does. Every
// other worker, built on package worker, sends {"hello": id}, then, for
// each message {"flood": N, "size": S} it gets, N messages {"kind":
// "flood", "i": i, "pad": S bytes} followed by {"flooded": N}.
func serveRelay() {
	if os.Getenv("PADDOCK_WORKER_ID") != os.Getenv("DEAF_WORKER") {
		gworker.Send(map[string]any{"hello": gworker.ID()})
		for {
			var m json.RawMessage
			select {
			case m = <-gworker.Messages():
			case <-gworker.Disconnecting():
				os.Exit(0)
			}
			var cmd struct{ Flood, Size int }
			if json.Unmarshal(m, &cmd) != nil || cmd.Flood <= 0 {
				continue
			}
			pad := strings.Repeat("x", cmd.Size)
			for i := range cmd.Flood {
				gworker.Send(map[string]any{"kind": "flood", "i": i, "pad": pad})
			}
			gworker.Send(map[string]any{"flooded": cmd.Flood})
		}
	}
	fd, _ := strconv.Atoi(os.Getenv("NODE_CHANNEL_FD"))
	ch := os.NewFile(uintptr(fd), "channel")
	usr := make(chan os.Signal, 2)
	signal.Notify(usr, syscall.SIGUSR1, syscall.SIGUSR2)
	go func() {
		for s := range usr {
			if s == syscall.SIGUSR1 {
				ch.Write([]byte(`{"cmd":"NODE_CLUSTER","act":"queryServer","index":0,"data":null,"address":"127.0.0.1","port":` +
					os.Getenv("PORT") + `,"addressType":4,"backlog":511,"seq":0}` + "\n"))
			} else {
				go io.Copy(io.Discard, ch)
			}
		}
	}()
	serve()
}

// TestRelayToDeafWorker: a worker that does not read its channel loses
// the messages relayed to it once its queue holds ipc.RelayQueueLen of
// them (relay-dropped, counted), not its channel: the reply to its
// queryServer, which the protocol requires, still finds room, and it is
// not stopped. Once it reads again, relay-resumed says how many it lost.
func TestRelayToDeafWorker(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	h := start(t, fmt.Sprintf(`
apps:
  relay:
    exec: $SELF
    instances: 2
    restart: never
    killTimeout: 60s
    ipc:
      mode: node
      relay: [{match: {kind: flood}}]
    env: {PADDOCK_TEST_HELPER: relay, DEAF_WORKER: "2", READY_DIR: "$DIR", PORT: "%d"}
`, port))
	ws := h.waitWorkers("2 workers", running("relay", 2))
	if ws[0].ID != 1 || ws[1].ID != 2 {
		t.Fatalf("workers %+v, want ids 1 and 2", ws)
	}
	deaf := ws[1]
	h.waitReady([]WorkerInfo{deaf})
	h.waitEvent("the sender's hello", func(e Event) bool { return e.Type == EventMessage && e.Worker == 1 })
	flood := func(n, size int) {
		t.Helper()
		if _, err := h.sup.Send(context.Background(), "relay", 1, json.RawMessage(fmt.Sprintf(`{"flood":%d,"size":%d}`, n, size))); err != nil {
			t.Fatal(err)
		}
		h.waitEvent("the flood sent", func(e Event) bool {
			return e.Type == EventMessage && e.Worker == 1 && e.Detail == fmt.Sprintf(`{"flooded":%d}`, n)
		})
	}
	// 3000 messages of 4 KiB: far more than the socket and half the
	// queue hold.
	const n = 3000
	flood(n, 4096)
	drop := h.waitEvent("relay-dropped", isType(EventRelayDropped))
	if drop.Worker != deaf.ID || !strings.Contains(drop.Detail, "has 512 messages it has not read") {
		t.Errorf("relay-dropped %s", describe([]Event{drop}))
	}
	st, err := h.sup.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := st.Relay["relay"]
	if c.Messages != n || c.Delivered+c.Dropped != n || c.Dropped == 0 || c.Delivered < 512 {
		t.Errorf("relay counts %+v: want %d messages, each delivered or dropped, some dropped", c, n)
	}

	// The worker asks for a server: the reply finds room in its queue.
	if err := syscall.Kill(deaf.PID, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	h.waitWorkers("paddock to answer the queryServer", func([]WorkerInfo) bool {
		return slices.Contains(h.appStatus("relay").Listen, addr)
	})
	h.noEventFor(EventStopping, deaf.ID)

	// It reads again: the next relayed message it takes says how many it
	// lost.
	if err := syscall.Kill(deaf.PID, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	var resumed *Event
	deadline := time.Now().Add(patience)
	for resumed == nil {
		if time.Now().After(deadline) {
			t.Fatalf("no relay-resumed once the worker reads:%s", describe(h.drain()))
		}
		flood(1, 10)
		for _, e := range h.drain() {
			if e.Type == EventRelayResumed {
				resumed = &e
			}
		}
	}
	st, err = h.sup.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if resumed.Worker != deaf.ID || resumed.Lost != st.Relay["relay"].Dropped {
		t.Errorf("relay-resumed %s lost %d; %d dropped in all", describe([]Event{*resumed}), resumed.Lost, st.Relay["relay"].Dropped)
	}
	h.noEventFor(EventStopping, deaf.ID)
	if err := syscall.Kill(deaf.PID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ex := h.waitEvent("the deaf worker's exit", func(e Event) bool { return e.Type == EventExit && e.Worker == deaf.ID })
	if ex.ExitCode != 0 || ex.Detail != "" {
		t.Errorf("exit %s: want 0 on SIGTERM, no channel fault", describe([]Event{ex}))
	}
}
