package supervisor

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/paddock-sh/paddock/internal/ipc"
	"github.com/paddock-sh/paddock/manifest"
	"github.com/paddock-sh/paddock/reconcile"
)

// countingWriter counts the bytes written to it.
type countingWriter struct{ n atomic.Int64 }

func (c *countingWriter) Write(p []byte) (int, error) { c.n.Add(int64(len(p))); return len(p), nil }

// BenchmarkRelay measures what relaying one message costs the owner
// goroutine (relay.go): the message of a socket.io broadcast (about 300
// bytes) from one of 4 workers of an app with the rules of relay:
// socket.io, matched and queued to the 3 others, whose channels write it
// to sockets read by counting readers. The timer runs while the owner
// relays a burst of 256 messages (less than a worker's share of its queue
// for relayed messages), and stops while the readers take them all: no
// copy is dropped, so every one costs a queueing and a wake-up of its
// channel's writer.
func BenchmarkRelay(b *testing.B) {
	s := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	o := newOwner(s)
	app := &manifest.App{Name: "chat", IPC: manifest.IPCNode, Relay: []manifest.RelayRule{
		{Match: []manifest.RelayMatch{{Path: "source", Value: "_sio_adapter"}, {Path: "type", Value: 8.0}}, To: manifest.RelayToAlias, ToPath: "requesterUid", Alias: "uid"},
		{Match: []manifest.RelayMatch{{Path: "source", Value: "_sio_adapter"}, {Path: "type", Value: 10.0}}, To: manifest.RelayToAlias, ToPath: "requesterUid", Alias: "uid"},
		{Match: []manifest.RelayMatch{{Path: "source", Value: "_sio_adapter"}}, To: manifest.RelayToOthers, Alias: "uid"},
	}}
	o.set = &manifest.Set{Apps: map[string]*manifest.App{"chat": app}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	in := make(chan ipc.Message)
	var ws []*worker
	var read []*countingWriter
	for id := 1; id <= 4; id++ {
		ch, child, err := ipc.Pair(id)
		if err != nil {
			b.Fatal(err)
		}
		cw := &countingWriter{}
		read = append(read, cw)
		wg.Go(func() { io.Copy(cw, child); child.Close() })
		wg.Go(func() { ch.Run(ctx, in) })
		w := &worker{Worker: reconcile.Worker{ID: id, App: "chat"}, app: app, pid: 1000 + id, cl: &channel{worker: id, ch: ch}}
		o.workers[id] = w
		ws = append(ws, w)
	}
	msg := json.RawMessage(`{"uid":"6a0ebe3ec4a4954d","nsp":"/","type":3,"data":{"packet":{"type":2,"data":["news","hello from b: a message of some length, as a chat line would be"],"nsp":"/"},` +
		`"opts":{"rooms":["r1"],"except":[],"flags":{}}},"source":"_sio_adapter"}`)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	const burst = 256
	sent := 0
	for b.Loop() {
		if !o.relay(ws[0], ipc.Message{From: 1, Raw: msg}) {
			b.Fatal("not relayed")
		}
		if sent++; sent%burst == 0 {
			b.StopTimer()
			want := int64(sent) * int64(len(msg)+1)
			for _, cw := range read[1:] {
				for cw.n.Load() < want {
					runtime.Gosched()
				}
			}
			b.StartTimer()
		}
	}
	if c := o.relays["chat"].counts; c.Dropped != 0 {
		b.Fatalf("%d copies dropped: the benchmark must measure deliveries", c.Dropped)
	}
}
