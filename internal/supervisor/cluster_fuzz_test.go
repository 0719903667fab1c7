package supervisor

import (
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/paddock-sh/paddock/internal/ipc"
	"github.com/paddock-sh/paddock/manifest"
	"github.com/paddock-sh/paddock/reconcile"
)

// FuzzClusterMessage hands arbitrary NODE_CLUSTER messages (and the other
// internal ones paddock answers) from a worker to the supervisor's protocol
// handler: it must never panic, whatever the fields hold.
func FuzzClusterMessage(f *testing.F) {
	for _, s := range []string{
		`{"cmd":"NODE_CLUSTER","act":"online","seq":0}`,
		`{"cmd":"NODE_CLUSTER","act":"queryServer","index":0,"data":null,"address":null,"port":0,"addressType":4,"backlog":0,"seq":1}`,
		`{"cmd":"NODE_CLUSTER","act":"queryServer","index":0,"address":"/tmp/x.sock","port":-1,"addressType":-1,"seq":1}`,
		`{"cmd":"NODE_CLUSTER","act":"queryServer","address":"::","port":0,"addressType":"udp4","seq":1}`,
		`{"cmd":"NODE_CLUSTER","act":"queryServer","fd":7,"seq":1}`,
		`{"cmd":"NODE_CLUSTER","act":"listening","port":8000,"seq":2}`,
		`{"cmd":"NODE_CLUSTER","ack":5,"accepted":false,"seq":3}`,
		`{"cmd":"NODE_CLUSTER","act":"close","key":"x","seq":4}`,
		`{"cmd":"NODE_CLUSTER","act":"exitedAfterDisconnect","seq":5}`,
		`{"cmd":"NODE_CLUSTER","act":"queryServer","port":99999999999,"address":{"a":1},"seq":-1}`,
		`{"cmd":"NODE_SOCKET_NOTIFY_CLOSE","key":"4:127.0.0.1:8000"}`,
		`{"cmd":"NODE_SOCKET_GET_COUNT","key":null}`,
		`{"cmd":"NODE_SOCKET_GET_COUNT","key":{"a":[1]}}`,
		`{"hello":"user message"}`,
		`[1,2]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			return // the channel closes on invalid JSON before this point
		}
		s := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		ch, child, err := ipc.Pair(1)
		if err != nil {
			t.Fatal(err)
		}
		defer child.Close()
		defer ch.Close()
		app := &manifest.App{Name: "web", SchedulingPolicy: "rr", Readiness: "listening",
			Resolved: manifest.Resolved{Dir: t.TempDir()}}
		w := &worker{Worker: reconcile.Worker{ID: 1, App: "web", Phase: reconcile.Running}, app: app, pid: 1, cl: &channel{worker: 1, ch: ch}}
		s.own.workers[1] = w
		var m struct {
			Cmd string `json:"cmd"`
		}
		json.Unmarshal(data, &m)
		s.own.handleIPC(t.Context(), ipc.Message{From: 1, Raw: data, Cmd: m.Cmd}, time.Now())
		s.own.closeDispatchers()
		for _, socks := range s.own.onDemand {
			for _, sock := range socks {
				sock.Release()
			}
		}
	})
}

// TestGarbageFromWorkerClosesOnlyItsChannel: a worker that writes garbage
// on its IPC channel loses the channel, is stopped, and is replaced, its
// exit 0 counting as a failure; the supervisor and the other workers go on.
func TestGarbageFromWorkerClosesOnlyItsChannel(t *testing.T) {
	t.Parallel()
	h := start(t, `
apps:
  bad:
    exec: $SELF
    ipc: node
    restart: on-failure
    env: {PADDOCK_TEST_HELPER: garbage, READY_DIR: "$DIR"}
    killTimeout: 60s
  good:
    exec: $SELF
    ipc: node
    killTimeout: 200ms
    env: {PADDOCK_TEST_HELPER: serve, READY_DIR: "$DIR"}
`)
	ws := h.waitWorkers("2 workers", func(ws []WorkerInfo) bool { return len(ws) == 2 && ws[0].PID != 0 && ws[1].PID != 0 })
	bad, good := ws[0], ws[1]
	if bad.App != "bad" {
		bad, good = good, bad
	}
	h.waitReady([]WorkerInfo{good})
	stop := h.waitEvent("the bad worker stopped", func(e Event) bool { return e.Type == EventStopping && e.Worker == bad.ID })
	if !strings.Contains(stop.Detail, "IPC channel closed by paddock: ipc protocol violation") {
		t.Errorf("stopping detail %q", stop.Detail)
	}
	ex := h.waitEvent("the bad worker's exit", func(e Event) bool { return e.Type == EventExit && e.Worker == bad.ID })
	if ex.Intended || ex.Detail != stop.Detail {
		t.Errorf("exit %s: want an unintended exit naming the fault", describe([]Event{ex}))
	}
	h.waitEvent("its restart", func(e Event) bool { return e.Type == EventRestart && e.Worker == bad.ID })
	h.waitEvent("its replacement", func(e Event) bool { return e.Type == EventFork && e.App == "bad" && e.Worker != bad.ID })
	if n, err := h.sup.Send(t.Context(), "good", 0, json.RawMessage(`{"still":"here"}`)); n != 1 || err != nil {
		t.Errorf("the other worker's channel: %d %v", n, err)
	}
	if !alive(good.PID) {
		t.Errorf("worker %s/%d died", good.App, good.ID)
	}
}
