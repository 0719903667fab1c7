package ipc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/paddock-sh/paddock/internal/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// running runs c until the test ends and returns what it receives.
func running(t testing.TB, c *Channel) <-chan Message {
	t.Helper()
	in := make(chan Message, 64)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { c.Run(ctx, in) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return in
}

func receive(t *testing.T, in <-chan Message) Message {
	t.Helper()
	select {
	case m := <-in:
		return m
	case <-time.After(60 * time.Second):
		t.Fatal("no message")
		return Message{}
	}
}

// TestNodeRoundTrip talks to a real Node child over the channel, as
// child_process.fork would: user messages both ways, in order.
func TestNodeRoundTrip(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	c, child, err := Pair(7)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, "-e", `process.on('message', m => process.send({echo: m, pid: process.pid}))`)
	cmd.ExtraFiles = []*os.File{child}
	cmd.Env = append(os.Environ(), "NODE_CHANNEL_FD=3", "NODE_CHANNEL_SERIALIZATION_MODE=json")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	child.Close()
	in := running(t, c)
	for i := range 50 {
		if err := c.SendRaw(json.RawMessage(`{"n":` + strconv.Itoa(i) + `,"s":"é\n"}`)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 50 {
		m := receive(t, in)
		var got struct {
			Echo struct {
				N int
				S string
			}
			PID int
		}
		if err := json.Unmarshal(m.Raw, &got); err != nil || got.Echo.N != i || got.Echo.S != "é\n" || got.PID != cmd.Process.Pid || m.Internal() {
			t.Fatalf("message %d: %s (%v)", i, m.Raw, err)
		}
	}
	c.Close()
	// The child sees end of file and exits.
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatal("node did not exit after the channel closed")
	}
}

// TestHandleFromWorker: a descriptor the worker sends arrives with its
// message and is acknowledged.
func TestHandleFromWorker(t *testing.T) {
	c, child, err := Pair(7)
	if err != nil {
		t.Fatal(err)
	}
	defer child.Close()
	in := running(t, c)
	w := testkit.Pipe(t)
	line := []byte(`{"cmd":"NODE_HANDLE","type":"net.Native","msg":{"cmd":"NODE_CLUSTER","act":"x"}}` + "\n")
	if err := unix.Sendmsg(int(child.Fd()), line, unix.UnixRights(int(w.Fd())), nil, 0); err != nil {
		t.Fatal(err)
	}
	w.Close()
	m := receive(t, in)
	if m.Cmd != "NODE_CLUSTER" || m.Handle == nil || m.From != 7 || !strings.Contains(string(m.Raw), `"act":"x"`) {
		t.Fatalf("got %+v", m)
	}
	m.Handle.Close()
	// The answer must come: a read that waits longer than any slow
	// machine needs fails the test rather than hanging it.
	tv := unix.NsecToTimeval((30 * time.Second).Nanoseconds())
	if err := unix.SetsockoptTimeval(int(child.Fd()), unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 100)
	n, err := child.Read(ack)
	if err != nil || string(ack[:n]) != `{"cmd":"NODE_HANDLE_ACK"}`+"\n" {
		t.Fatalf("ack %q %v", ack[:n], err)
	}
}

// TestProtocolViolationsCloseOnlyThatChannel: garbage, an oversized line, or
// an unsolicited ACK close the channel with an error, promptly.
func TestProtocolViolationsCloseOnlyThatChannel(t *testing.T) {
	for name, data := range map[string][]byte{
		"not json":        []byte("hello there\n"),
		"half json":       []byte(`{"cmd":` + "\n"),
		"oversized":       bytes.Repeat([]byte("x"), testLimit+10),
		"unsolicited ack": []byte(`{"cmd":"NODE_HANDLE_ACK"}` + "\n"),
	} {
		t.Run(name, func(t *testing.T) {
			c, child, err := Pair(7)
			if err != nil {
				t.Fatal(err)
			}
			defer child.Close()
			c.SetMaxMessage(testLimit) // TestMaxMessage checks the default
			running(t, c)
			go child.Write(data)
			select {
			case <-c.Closed():
			case <-time.After(60 * time.Second):
				t.Fatal("channel still open")
			}
			if c.Err() == nil {
				t.Error("closed without an error")
			}
			if err := c.SendRaw(json.RawMessage(`1`)); err != ErrClosed {
				t.Errorf("Send after close: %v", err)
			}
		})
	}
}

func TestQueueIsBounded(t *testing.T) {
	c, child, err := Pair(7)
	if err != nil {
		t.Fatal(err)
	}
	defer child.Close()
	// Not running: nothing drains the queue.
	var full error
	for i := 0; i <= QueueLen; i++ {
		full = c.SendRaw(json.RawMessage(`1`))
	}
	if full != ErrQueueFull {
		t.Errorf("Send on a full queue: %v", full)
	}
	c.Close()
}

// FuzzChannel feeds arbitrary bytes from a worker: the channel must never
// panic, and must end (not wedge) once the worker closes its end.
func FuzzChannel(f *testing.F) {
	for _, s := range []string{
		`{"cmd":"NODE_CLUSTER","act":"online","seq":0}` + "\n",
		`{"cmd":"NODE_HANDLE","type":"net.Native","msg":{"cmd":"NODE_CLUSTER"}}` + "\n",
		`{"cmd":"NODE_HANDLE_ACK"}` + "\n",
		"[1,2,3]\n\"x\"\nnull\n",
		"{\"cmd\":5}\n{}\n",
		"\n\n\n",
		"\xff\xfe\n",
		`{"a":` + strings.Repeat("[", 1000),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, child, err := Pair(7)
		if err != nil {
			t.Fatal(err)
		}
		in := make(chan Message, 16)
		done := make(chan struct{})
		go func() { c.Run(context.Background(), in); close(done) }()
		go func() {
			child.Write(data)
			child.Close()
		}()
		for {
			select {
			case m := <-in:
				if m.Handle != nil {
					m.Handle.Close()
				}
				if !json.Valid(m.Raw) {
					t.Fatalf("delivered invalid JSON %q", m.Raw)
				}
			case <-done:
				return
			case <-time.After(60 * time.Second):
				t.Fatal("channel wedged")
			}
		}
	})
}

// TestSendLineNowNeverBlocks fills the channel of a worker that does not
// read: SendLineNow must return at once every time (a line the socket takes
// only in part is finished by the writing goroutine, the others are
// queued), and once the worker reads, every line arrives whole, in order,
// each with its descriptor.
func TestSendLineNowNeverBlocks(t *testing.T) {
	c, child, err := Pair(1)
	if err != nil {
		t.Fatal(err)
	}
	defer child.Close()
	running(t, c)
	const n = 6
	pad := strings.Repeat("x", 150<<10) // larger than half the socket's buffer: partial writes
	var want []string
	for i := range n {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		line := `{"cmd":"NODE_HANDLE","type":"net.Native","msg":{"i":` + strconv.Itoa(i) + `,"pad":"` + pad + `"}}` + "\n"
		want = append(want, strconv.Itoa(i))
		done := make(chan error, 1)
		go func() { done <- c.SendLineNow([]byte(line), int(w.Fd())) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("SendLineNow %d: %v", i, err)
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("SendLineNow %d blocked on a worker that does not read", i)
		}
		defer r.Close()
		defer w.Close()
	}
	// Now read as a worker would, acknowledging each descriptor.
	conn, err := unixConn(child)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var got []string
	var buf []byte
	chunk := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(4*8))
	fds := 0
	deadline := time.Now().Add(60 * time.Second)
	for len(got) < n && time.Now().Before(deadline) {
		conn.SetReadDeadline(deadline)
		k, oobn, _, _, err := conn.ReadMsgUnix(chunk, oob)
		if err != nil {
			t.Fatal(err)
		}
		if oobn > 0 {
			msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
			for _, m := range msgs {
				rights, _ := unix.ParseUnixRights(&m)
				for _, fd := range rights {
					unix.Close(fd)
					fds++
					conn.Write([]byte(`{"cmd":"NODE_HANDLE_ACK"}` + "\n"))
				}
			}
		}
		buf = append(buf, chunk[:k]...)
		for {
			i := bytes.IndexByte(buf, '\n')
			if i < 0 {
				break
			}
			var m struct {
				Msg struct {
					I   int    `json:"i"`
					Pad string `json:"pad"`
				} `json:"msg"`
			}
			if err := json.Unmarshal(buf[:i], &m); err != nil || m.Msg.Pad != pad {
				t.Fatalf("line %d arrived broken: %v", len(got), err)
			}
			got = append(got, strconv.Itoa(m.Msg.I))
			buf = buf[i+1:]
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") || fds != n {
		t.Errorf("got lines %v with %d descriptors, want %v with %d", got, fds, want, n)
	}
}

// unixConn wraps the child's end of a pair for the test's own reading.
func unixConn(f *os.File) (*net.UnixConn, error) {
	c, err := net.FileConn(f)
	if err != nil {
		return nil, err
	}
	return c.(*net.UnixConn), nil
}

// inQueue returns how many bytes wait unread in c's socket.
func inQueue(t testing.TB, c *Channel) int {
	t.Helper()
	n := 0
	var ierr error
	if err := c.conn.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCINQ) }); err != nil {
		return 0 // closed: nothing waits
	}
	if ierr != nil {
		return 0
	}
	return n
}

// TestStrayDescriptorsAreClosed: descriptors sent on lines that are not
// NODE_HANDLE messages are closed at once and close the channel; they
// never pile up in the supervisor.
func TestStrayDescriptorsAreClosed(t *testing.T) {
	c, child, err := Pair(7)
	if err != nil {
		t.Fatal(err)
	}
	defer child.Close()
	in := running(t, c)
	delivered := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case m := <-in:
				n++
				if m.Handle != nil {
					m.Handle.Close()
				}
			case <-c.Closed():
				delivered <- n
				return
			}
		}
	}()
	w := testkit.Pipe(t)
	before := testkit.NumFDs(t)
	sent := 0
	for i := range 500 {
		line := []byte(`{"n":` + strconv.Itoa(i) + "}\n")
		if err := unix.Sendmsg(int(child.Fd()), line, unix.UnixRights(int(w.Fd())), nil, unix.MSG_NOSIGNAL); err != nil {
			break // the channel closed its end
		}
		sent++
	}
	// Wait until the channel read everything sent, or closed.
	deadline := time.Now().Add(30 * time.Second)
	for inQueue(t, c) > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	after := testkit.NumFDs(t)
	t.Logf("%d lines with a descriptor sent: %d open descriptors before, %d after", sent, before, after)
	if after > before {
		t.Errorf("%d descriptors leaked", after-before)
	}
	select {
	case n := <-delivered:
		t.Logf("%d messages delivered before the channel closed: %v", n, c.Err())
	case <-time.After(30 * time.Second):
		t.Fatal("the channel is still open")
	}
	var pe *ProtocolError
	if !errors.As(c.Err(), &pe) {
		t.Errorf("closed with %v, want a protocol violation", c.Err())
	}
}

// TestCloseRace: messages sent, with descriptors and done callbacks, while
// the channel closes each get their done called exactly once, by the time
// Close and Run have returned, and no descriptor leaks.
func TestCloseRace(t *testing.T) {
	w := testkit.Pipe(t)
	before := testkit.NumFDs(t)
	const senders = 8
	accepted, failed := 0, 0
	for round := range 200 {
		c, child, err := Pair(1)
		if err != nil {
			t.Fatal(err)
		}
		ran := make(chan struct{})
		go func() { c.Run(context.Background(), make(chan Message)); close(ran) }()
		var calls sync.Map // message number → *atomic.Int32
		var wg sync.WaitGroup
		var mu sync.Mutex
		for g := range senders {
			wg.Go(func() {
				for i := 0; ; i++ {
					fd := -1
					if (g+i)%2 == 0 {
						var err error
						if fd, err = unix.FcntlInt(w.Fd(), unix.F_DUPFD_CLOEXEC, 0); err != nil {
							t.Error(err)
							return
						}
					}
					n := new(atomic.Int32)
					calls.Store(g<<32|i, n)
					err := c.Send(map[string]int{"g": g, "i": i}, fd, func(error) {
						n.Add(1)
						if fd >= 0 {
							unix.Close(fd)
						}
					})
					if err != nil {
						calls.Delete(g<<32 | i)
						if fd >= 0 {
							unix.Close(fd)
						}
					}
					if errors.Is(err, ErrClosed) {
						return
					}
				}
			})
		}
		// Close while the senders send, at a point that varies.
		for range round % 100 * 10 {
			runtime.Gosched()
		}
		c.Close()
		wg.Wait()
		<-ran
		child.Close()
		calls.Range(func(k, v any) bool {
			mu.Lock()
			defer mu.Unlock()
			accepted++
			if n := v.(*atomic.Int32).Load(); n != 1 {
				failed++
				if failed < 5 {
					t.Errorf("round %d: message %d/%d: done called %d times", round, k.(int)>>32, k.(int)&(1<<32-1), n)
				}
			}
			return true
		})
	}
	t.Logf("%d messages accepted while closing, %d without exactly one done", accepted, failed)
	if after := testkit.NumFDs(t); after != before {
		t.Errorf("%d open descriptors before, %d after", before, after)
	}
}
