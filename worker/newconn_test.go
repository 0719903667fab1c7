package worker

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/paddock-sh/paddock/internal/nodeipc"
)

// TestConnectionRightAfterTheAnswer: a supervisor may hand an rr server a
// connection in the line right after its answer to the listen (paddock's
// dispatcher does, as soon as the worker subscribes): the worker takes it
// (accepted:true), never refuses it for a server not registered yet. Before
// the reader registered the server itself, the program's goroutine did,
// after the answer reached it, and the reader often answered such a
// connection accepted:false first: with one worker, paddock then closed it
// and the client saw a reset. Several listens in a row, each answered and
// fed at once, make that race show.
func TestConnectionRightAfterTheAnswer(t *testing.T) {
	p := channelEnv(t)
	w := openWorker(t)
	defer w.Close()
	p.next(t) // online
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for i := range 50 {
		addr := fmt.Sprintf("127.0.0.1:%d", 20000+i)
		type result struct {
			l   net.Listener
			err error
		}
		got := make(chan result, 1)
		go func() {
			l, err := w.Listen("tcp", addr)
			got <- result{l, err}
		}()
		// Lines before it (the last listener's listening and close) aside.
		var seq int
		for {
			var m clusterMsg
			if err := json.Unmarshal([]byte(p.next(t)), &m); err == nil && m.Act == "queryServer" {
				seq = m.Seq
				break
			}
		}
		key := fmt.Sprintf("%s:4:-1:%d", addr, i)
		answer := fmt.Sprintf(`{"cmd":"NODE_CLUSTER","ack":%d,"errno":0,"key":%q,`+
			`"sockname":{"address":"127.0.0.1","port":%d},"seq":%d}`+"\n", seq, key, 20000+i, 2*i)
		// The connection handed over: a client's, accepted here.
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		server, err := ln.(*net.TCPListener).AcceptTCP()
		if err != nil {
			t.Fatal(err)
		}
		f, err := server.File()
		server.Close()
		if err != nil {
			t.Fatal(err)
		}
		newconn := nodeipc.AppendHandle(nil, []byte(fmt.Sprintf(`{"cmd":"NODE_CLUSTER","act":"newconn","key":%q,"seq":%d}`, key, 2*i+1)))
		// Both lines in one write: the reader has the newconn at hand as
		// soon as it handled the answer.
		if err := p.conn.WriteLine([]byte(answer), -1); err != nil {
			t.Fatal(err)
		}
		if err := p.conn.WriteLine(newconn, int(f.Fd())); err != nil {
			t.Fatal(err)
		}
		f.Close()
		r := <-got
		if r.err != nil {
			t.Fatalf("listen %d: %v", i, r.err)
		}
		// The worker acknowledges the handle, then answers the newconn.
		for {
			line := p.next(t)
			if !strings.Contains(line, `"ack":`+fmt.Sprint(2*i+1)) {
				continue
			}
			var m struct{ Accepted bool }
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatal(err)
			}
			if !m.Accepted {
				t.Fatalf("listen %d: the connection right after the answer was refused: %s", i, line)
			}
			break
		}
		c, err := r.l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		client.Close()
		r.l.Close()
	}
}
