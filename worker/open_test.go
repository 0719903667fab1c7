package worker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/paddock-sh/paddock/internal/nodeipc"
	"github.com/paddock-sh/paddock/internal/testkit"
)

// peer is the supervisor's end of a channel whose other end a Worker in
// this very process opens: the lines it reads, and when its reading ends.
type peer struct {
	conn  *nodeipc.Conn
	lines chan []byte
	ended chan struct{}
}

// channelEnv creates a channel, points NODE_CHANNEL_FD at a descriptor of
// this process for its worker end (which the Worker's Open takes and
// closes), and returns the supervisor's end, read in a goroutine.
func channelEnv(t *testing.T) *peer {
	t.Helper()
	conn, child, err := nodeipc.Pair()
	if err != nil {
		t.Fatal(err)
	}
	// Open owns the descriptor it is given: a copy, so that child, which
	// closes its own, never closes a number that Open freed and reused.
	fd, err := unix.Dup(int(child.Fd()))
	child.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("NODE_CHANNEL_FD", strconv.Itoa(fd))
	t.Setenv("NODE_UNIQUE_ID", "1")
	p := &peer{conn: conn, lines: make(chan []byte, 64), ended: make(chan struct{})}
	go func() {
		defer close(p.ended)
		conn.ReadLines(func(l nodeipc.Line) error {
			if l.File != nil {
				l.File.Close()
			}
			p.lines <- bytes.Clone(l.Raw)
			return nil
		})
	}()
	t.Cleanup(func() {
		conn.Close()
		<-p.ended
	})
	return p
}

// next returns the next line the worker sent, failing after a generous
// deadline.
func (p *peer) next(t *testing.T) string {
	t.Helper()
	select {
	case l := <-p.lines:
		return string(l)
	case <-time.After(30 * time.Second):
		t.Fatal("no line from the worker")
		return ""
	}
}

// message waits for the next message on w's channel.
func message(t *testing.T, w *Worker) string {
	t.Helper()
	select {
	case m := <-w.Messages():
		return string(m)
	case <-time.After(30 * time.Second):
		t.Fatal("no message from the supervisor")
		return ""
	}
}

func openWorker(t *testing.T) *Worker {
	t.Helper()
	w, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// TestOpenClose: an opened Worker says it is online, exchanges messages,
// and Close ends its channel and its reader goroutine before returning.
func TestOpenClose(t *testing.T) {
	p := channelEnv(t)
	w := openWorker(t)
	if w.ID() != 1 {
		t.Errorf("ID %d, want 1", w.ID())
	}
	var online clusterMsg
	if err := json.Unmarshal([]byte(p.next(t)), &online); err != nil || online.Cmd != "NODE_CLUSTER" || online.Act != "online" {
		t.Fatalf("first line %+v (%v), want the online message", online, err)
	}
	if err := p.conn.WriteLine([]byte(`{"ping":1}`+"\n"), -1); err != nil {
		t.Fatal(err)
	}
	if m := message(t, w); m != `{"ping":1}` {
		t.Errorf("message %s", m)
	}
	if err := w.Send(map[string]int{"pong": 1}); err != nil {
		t.Fatal(err)
	}
	if l := p.next(t); l != `{"pong":1}` {
		t.Errorf("sent %s", l)
	}

	w.Close()
	select {
	case <-w.ch.readDone:
	default:
		t.Fatal("Close returned before the reader goroutine ended")
	}
	select {
	case <-w.Disconnecting():
	default:
		t.Error("Disconnecting is not closed once the channel ended")
	}
	select {
	case <-p.ended:
	case <-time.After(30 * time.Second):
		t.Fatal("the supervisor's end still reads after Close")
	}
	if err := w.Send(1); err == nil {
		t.Error("Send after Close succeeded")
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestTwoWorkersShareNothing: two Workers opened on two channels each
// have their own messages and their own lifetime.
func TestTwoWorkersShareNothing(t *testing.T) {
	pa := channelEnv(t)
	a := openWorker(t)
	defer a.Close()
	pb := channelEnv(t)
	b := openWorker(t)
	defer b.Close()
	pa.next(t) // online
	pb.next(t)

	if err := pb.conn.WriteLine([]byte(`"to b"`+"\n"), -1); err != nil {
		t.Fatal(err)
	}
	if err := pa.conn.WriteLine([]byte(`"to a"`+"\n"), -1); err != nil {
		t.Fatal(err)
	}
	if m := message(t, a); m != `"to a"` {
		t.Errorf("a received %s", m)
	}
	if m := message(t, b); m != `"to b"` {
		t.Errorf("b received %s", m)
	}

	a.Close()
	select {
	case <-b.Disconnecting():
		t.Fatal("closing a ended b's channel")
	default:
	}
	if err := b.Send("from b"); err != nil {
		t.Fatalf("b after a closed: %v", err)
	}
	if l := pb.next(t); l != `"from b"` {
		t.Errorf("b sent %s", l)
	}
	select {
	case l := <-pa.lines:
		t.Errorf("a's peer got %s, sent to b", l)
	default:
	}
}

// TestOpenOutsidePaddock: without anything from paddock, Listen is
// net.Listen and the channel's methods say there is none.
func TestOpenOutsidePaddock(t *testing.T) {
	for _, k := range []string{"NODE_CHANNEL_FD", "NODE_UNIQUE_ID", "LISTEN_FDS", "LISTEN_PID", "NOTIFY_SOCKET", "PADDOCK_WORKER_ID"} {
		t.Setenv(k, "")
	}
	w := openWorker(t)
	defer w.Close()
	if err := w.Send(1); !errors.Is(err, ErrNoChannel) {
		t.Errorf("Send: %v, want ErrNoChannel", err)
	}
	if w.Messages() != nil || w.Disconnecting() != nil {
		t.Error("Messages or Disconnecting is not nil without a channel")
	}
	if err := w.Ready(); err != nil {
		t.Errorf("Ready without a notify socket: %v", err)
	}
	l, err := w.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
}

// TestOpenRefusesABadChannel: NODE_CHANNEL_FD naming a descriptor that is
// not a socket fails Open, and closes the descriptor.
func TestOpenRefusesABadChannel(t *testing.T) {
	r, wr, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer wr.Close()
	fd, err := unix.Dup(int(r.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("NODE_CHANNEL_FD", strconv.Itoa(fd))
	t.Setenv("NODE_UNIQUE_ID", "1")
	if w, err := Open(); err == nil {
		w.Close()
		t.Fatal("Open on a pipe succeeded")
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); !errors.Is(err, unix.EBADF) {
		t.Errorf("descriptor %d still open after a failed Open: %v", fd, err)
	}
}

// listenAsync calls w.Listen in a goroutine; the result arrives on the
// channel returned.
func listenAsync(w *Worker, network, address string) <-chan error {
	done := make(chan error, 1)
	go func() {
		l, err := w.Listen(network, address)
		if err == nil {
			if l.Addr().String() != address {
				err = fmt.Errorf("listener on %s, want %s", l.Addr(), address)
			}
			l.Close()
		}
		done <- err
	}()
	return done
}

// queryServer reads the worker's queryServer message and returns its seq.
func (p *peer) queryServer(t *testing.T) int {
	t.Helper()
	var m clusterMsg
	line := p.next(t)
	if err := json.Unmarshal([]byte(line), &m); err != nil || m.Act != "queryServer" {
		t.Fatalf("line %s (%v), want queryServer", line, err)
	}
	return m.Seq
}

// TestListenOverTheChannel: Listen asks the supervisor, and returns the
// error it answers (errno -98: EADDRINUSE) or the listener it is fed.
func TestListenOverTheChannel(t *testing.T) {
	p := channelEnv(t)
	w := openWorker(t)
	defer w.Close()
	p.next(t) // online

	refused := listenAsync(w, "tcp", "127.0.0.1:8000")
	seq := p.queryServer(t)
	reply := fmt.Sprintf(`{"cmd":"NODE_CLUSTER","ack":%d,"errno":-98,"key":"127.0.0.1:8000:4:tcp4","seq":0}`+"\n", seq)
	if err := p.conn.WriteLine([]byte(reply), -1); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-refused:
		if !errors.Is(err, unix.EADDRINUSE) {
			t.Errorf("Listen answered errno -98: %v, want EADDRINUSE", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Listen did not return")
	}

	fed := listenAsync(w, "tcp", "127.0.0.1:8000")
	seq = p.queryServer(t)
	reply = fmt.Sprintf(`{"cmd":"NODE_CLUSTER","ack":%d,"errno":0,"key":"127.0.0.1:8000:4:tcp4",`+
		`"sockname":{"address":"127.0.0.1","port":8000},"seq":1}`+"\n", seq)
	if err := p.conn.WriteLine([]byte(reply), -1); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-fed:
		if err != nil {
			t.Errorf("Listen answered with a round-robin server: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Listen did not return")
	}
}

// inheritedWorker opens a Worker with a listening socket as descriptor 3
// and LISTEN_FDS=1, and listens on ADDR, the socket's address: exit 0 when
// it got it, 4 when Listen failed (net.Listen on an address in use). With
// LISTEN_PID=self it first sets LISTEN_PID to its own pid, as paddock's
// exec shim does.
func inheritedWorker() {
	if os.Getenv("LISTEN_PID") == "self" {
		os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
	}
	w, err := Open()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	if _, err := w.Listen("tcp", os.Getenv("ADDR")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(4)
	}
	if os.Getenv("DGRAM_FD") == "4" {
		if typ, err := unix.GetsockoptInt(4, unix.SOL_SOCKET, unix.SO_TYPE); err != nil || typ != unix.SOCK_DGRAM {
			fmt.Fprintf(os.Stderr, "descriptor 4 after Open: SO_TYPE %d, %v; want the datagram socket\n", typ, err)
			os.Exit(5)
		}
	}
	os.Exit(0)
}

// TestInheritedDatagramSocketLeftAlone: a LISTEN_FDS datagram socket (a
// udp: address) is no listener: Open leaves its descriptor open for the
// program, and takes the stream socket beside it.
func TestInheritedDatagramSocketLeftAlone(t *testing.T) {
	f, addr := testkit.ListenerFile(t)
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	uf, err := pc.(*net.UDPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	defer uf.Close()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "WORKER_TEST_HELPER=inherited", "LISTEN_FDS=2", "LISTEN_PID=self", "DGRAM_FD=4",
		"ADDR="+addr.String(), "NODE_CHANNEL_FD=", "NODE_UNIQUE_ID=")
	cmd.ExtraFiles = []*os.File{f, uf}
	out, _ := cmd.CombinedOutput()
	if got := cmd.ProcessState.ExitCode(); got != 0 {
		t.Errorf("exit %d, want 0; output: %s", got, out)
	}
}

// TestInheritedSocketsOnlyForTheirPid: LISTEN_FDS sockets are taken only
// by the process LISTEN_PID names, as sd_listen_fds does.
func TestInheritedSocketsOnlyForTheirPid(t *testing.T) {
	f, addr := testkit.ListenerFile(t)
	for _, tc := range []struct {
		pid  string
		want int
	}{{"self", 0}, {"1", 4}} {
		t.Run("LISTEN_PID="+tc.pid, func(t *testing.T) {
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), "WORKER_TEST_HELPER=inherited", "LISTEN_FDS=1", "LISTEN_PID="+tc.pid,
				"ADDR="+addr.String(), "NODE_CHANNEL_FD=", "NODE_UNIQUE_ID=")
			cmd.ExtraFiles = []*os.File{f}
			out, _ := cmd.CombinedOutput()
			if got := cmd.ProcessState.ExitCode(); got != tc.want {
				t.Errorf("exit %d, want %d; output: %s", got, tc.want, out)
			}
		})
	}
}
