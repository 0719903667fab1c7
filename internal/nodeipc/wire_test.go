package nodeipc

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/paddock-sh/paddock/internal/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// write is one sendmsg of the other end: data, with fds copies of a pipe.
type write struct {
	data string
	fds  int
}

// reader runs ReadLines on one end of a real socketpair and records what it
// gets, one string per line: "msg[cmd] raw", "handle+fd[cmd] raw",
// "handle-nofd[cmd] raw", "ack", "nack".
type reader struct {
	conn  *Conn
	peer  *os.File
	ino   uint64 // the pipe's inode: received descriptors must be it
	lines []string
	bad   []string // what was wrong with a line
	err   error
	done  chan struct{}
}

// startReaderOn reads from end, the other end of a pair whose first end is
// written to.
func startReaderOn(t *testing.T, end, pipe *os.File) *reader {
	t.Helper()
	conn, err := NewConn(end)
	end.Close()
	if err != nil {
		t.Fatal(err)
	}
	return startReading(t, conn, nil, pipe)
}

func startReading(t *testing.T, conn *Conn, peer, pipe *os.File) *reader {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(int(pipe.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	r := &reader{conn: conn, peer: peer, ino: st.Ino, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = conn.ReadLines(r.take)
		conn.Close()
	}()
	return r
}

func (r *reader) take(l Line) error {
	kind := map[Kind]string{Message: "msg", Handle: "handle", Ack: "ack", Nack: "nack"}[l.Kind]
	switch {
	case l.Kind == Handle && l.File != nil:
		kind += "+fd"
		var st unix.Stat_t
		if err := unix.Fstat(int(l.File.Fd()), &st); err != nil || st.Ino != r.ino {
			r.bad = append(r.bad, fmt.Sprintf("handle %s: not the descriptor sent (%v)", l.Raw, err))
		}
		if flags, err := unix.FcntlInt(l.File.Fd(), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC == 0 {
			r.bad = append(r.bad, fmt.Sprintf("handle %s: not close-on-exec", l.Raw))
		}
		if string(l.Reply()) != string(AckLine) {
			r.bad = append(r.bad, fmt.Sprintf("handle %s: reply %q", l.Raw, l.Reply()))
		}
		l.File.Close()
	case l.Kind == Handle:
		kind += "-nofd"
		if string(l.Reply()) != string(NackLine) {
			r.bad = append(r.bad, fmt.Sprintf("handle %s without descriptor: reply %q", l.Raw, l.Reply()))
		}
	case l.File != nil:
		r.bad = append(r.bad, fmt.Sprintf("a %s line with a descriptor", kind))
		l.File.Close()
	case l.Reply() != nil:
		r.bad = append(r.bad, fmt.Sprintf("a %s line with a reply", kind))
	}
	if l.Kind == Ack || l.Kind == Nack {
		r.lines = append(r.lines, kind)
		return nil
	}
	raw := string(l.Raw)
	if len(raw) > 80 {
		raw = fmt.Sprintf("<%d bytes>", len(raw))
	}
	r.lines = append(r.lines, fmt.Sprintf("%s[%s] %s", kind, l.Cmd, raw))
	return nil
}

// unread returns how many bytes wait in the reader's socket; 0 once closed.
func (r *reader) unread() int {
	n := 0
	if err := r.conn.Control(func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) }); err != nil {
		return 0
	}
	return n
}

// send performs the writes one by one, each read on its own: before each,
// it waits until the reader took everything before it (or ended). Writes
// fail once the reader closed its end; that ends the sending.
func (r *reader) send(t *testing.T, pipe *os.File, writes []write) {
	t.Helper()
	for _, w := range writes {
		deadline := time.Now().Add(30 * time.Second)
		for r.unread() > 0 {
			select {
			case <-r.done:
				return
			default:
			}
			if time.Now().After(deadline) {
				t.Fatal("the reader does not read")
			}
			time.Sleep(time.Millisecond)
		}
		var oob []byte
		if w.fds > 0 {
			fds := make([]int, w.fds)
			for i := range fds {
				fds[i] = int(pipe.Fd())
			}
			oob = unix.UnixRights(fds...)
		}
		if _, err := unix.SendmsgN(int(r.peer.Fd()), []byte(w.data), oob, nil, unix.MSG_NOSIGNAL); err != nil {
			return
		}
	}
}

func (r *reader) wait(t *testing.T) {
	t.Helper()
	r.peer.Close()
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		t.Fatal("ReadLines did not return at end of file")
	}
}

func TestFraming(t *testing.T) {
	handle := `{"cmd":"NODE_HANDLE","type":"net.Native","msg":{"cmd":"NODE_CLUSTER","act":"newconn","key":"k","seq":3}}` + "\n"
	inner := `{"cmd":"NODE_CLUSTER","act":"newconn","key":"k","seq":3}`
	// The longest line, set lower than MaxLine (TestDefaultMaxLine
	// checks that one) to keep the test quick.
	const limit = 1 << 20
	long := `"` + strings.Repeat("x", limit-2) + `"`
	var pendingHandle []write
	pendingHandle = append(pendingHandle, write{`{"cmd":"NODE_HANDLE","msg":"`, 1})
	for range MaxUnclaimed {
		pendingHandle = append(pendingHandle, write{"x", 1})
	}
	for _, tc := range []struct {
		name      string
		writes    []write
		want      []string
		violation bool
	}{
		{"one line", []write{{`{"a":1}` + "\n", 0}}, []string{`msg[] {"a":1}`}, false},
		{"split lines", []write{{`{"a":`, 0}, {"1}\n[2", 0}, {",3]\n", 0}},
			[]string{`msg[] {"a":1}`, `msg[] [2,3]`}, false},
		{"lines in one write", []write{{"1\n\"x\"\nnull\n", 0}}, []string{`msg[] 1`, `msg[] "x"`, `msg[] null`}, false},
		{"blank lines", []write{{"\n \n1\n", 0}}, []string{`msg[] 1`}, false},
		{"internal message", []write{{`{"cmd":"NODE_CLUSTER","act":"online","seq":0}` + "\n", 0}},
			[]string{`msg[NODE_CLUSTER] {"cmd":"NODE_CLUSTER","act":"online","seq":0}`}, false},
		{"cmd not a string", []write{{`{"cmd":5}` + "\n", 0}}, []string{`msg[] {"cmd":5}`}, false},
		{"ack and nack", []write{{`{"cmd":"NODE_HANDLE_ACK"}` + "\n" + `{ "cmd": "NODE_HANDLE_ACK" }` + "\n" + `{"cmd":"NODE_HANDLE_NACK"}` + "\n", 0}},
			[]string{"ack", "ack", "nack"}, false},
		{"descriptor with its line", []write{{handle, 1}}, []string{"handle+fd[NODE_CLUSTER] " + inner}, false},
		{"descriptor before a partial line", []write{{handle[:10], 1}, {handle[10:50], 0}, {handle[50:], 0}},
			[]string{"handle+fd[NODE_CLUSTER] " + inner}, false},
		{"handles in turn", []write{{handle, 1}, {"1\n", 0}, {handle, 1}},
			[]string{"handle+fd[NODE_CLUSTER] " + inner, "msg[] 1", "handle+fd[NODE_CLUSTER] " + inner}, false},
		{"handle without msg", []write{{`{"cmd":"NODE_HANDLE"}` + "\n", 1}}, []string{"handle+fd[] null"}, false},
		{"handle without a descriptor", []write{{`{"cmd":"NODE_HANDLE","msg":1}` + "\n", 0}}, []string{"handle-nofd[] 1"}, false},
		{"longest line", []write{{long + "\n", 0}}, []string{fmt.Sprintf("msg[] <%d bytes>", limit)}, false},
		{"longest line across writes", []write{{long[:limit/3], 0}, {long[limit/3 : limit/2], 0}, {long[limit/2:] + "\n1\n", 0}},
			[]string{fmt.Sprintf("msg[] <%d bytes>", limit), "msg[] 1"}, false},

		{"stray descriptor", []write{{`{"n":1}` + "\n", 1}}, []string{`msg[] {"n":1}`}, true},
		{"stray descriptor before a handle", []write{{"1\n", 1}, {handle, 1}}, []string{"msg[] 1"}, true},
		{"partial line completed as a message", []write{{`{"n":`, 1}, {"1}\n", 0}}, []string{`msg[] {"n":1}`}, true},
		{"two descriptors for one handle", []write{{handle, 2}}, []string{"handle+fd[NODE_CLUSTER] " + inner}, true},
		{"too many descriptors for a pending line", pendingHandle, nil, true},
		{"more descriptors than a message may carry", []write{{handle, MaxUnclaimed + 1}}, nil, true},
		{"over-long line", []write{{long + "x", 0}}, nil, true},
		{"over-long line across writes", []write{{long[:limit/2], 0}, {long[limit/2:] + "x\n", 0}}, nil, true},
		// Valid JSON one byte over the limit, so that only the length can
		// make it a violation.
		{"over-long JSON line", []write{{" " + long + "\n", 0}}, nil, true},
		{"over-long JSON line across writes", []write{{" " + long[:limit/2], 0}, {long[limit/2:] + "\n", 0}}, nil, true},
		{"not JSON", []write{{"1\nhello\n2\n", 0}}, []string{"msg[] 1"}, true},
		{"half JSON", []write{{`{"cmd":` + "\n", 0}}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pw := testkit.Pipe(t)
			before := testkit.NumFDs(t)
			conn, peer, err := Pair()
			if err != nil {
				t.Fatal(err)
			}
			conn.SetMaxLine(limit)
			r := startReading(t, conn, peer, pw)
			r.send(t, pw, tc.writes)
			r.wait(t)
			if got, want := strings.Join(r.lines, "\n"), strings.Join(tc.want, "\n"); got != want {
				t.Errorf("lines:\n%s\nwant:\n%s", got, want)
			}
			for _, b := range r.bad {
				t.Error(b)
			}
			var pe *ProtocolError
			if tc.violation != errors.As(r.err, &pe) || (!tc.violation && r.err != nil) {
				t.Errorf("ReadLines returned %v, want a violation: %v", r.err, tc.violation)
			}
			if after := testkit.NumFDs(t); after != before {
				t.Errorf("%d open descriptors before, %d after", before, after)
			}
		})
	}
}

// TestWriteLine: WriteLineNow takes what fits in the socket without
// waiting, the descriptor with the first bytes, and nothing once the socket
// is full; WriteLine finishes a line so begun, and writes a line longer
// than the socket takes, whole. The other end gets both lines, each with
// its descriptor.
func TestWriteLine(t *testing.T) {
	pw := testkit.Pipe(t)
	before := testkit.NumFDs(t)
	w, peer, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("y", 600<<10) // more than the socket's buffer
	big := []byte(`{"cmd":"NODE_HANDLE","msg":"` + pad + `"}` + "\n")
	n, err := w.WriteLineNow(big, int(pw.Fd()))
	if err != nil || n == 0 || n == len(big) {
		t.Fatalf("WriteLineNow on an empty socket: %d of %d bytes, %v; want a part", n, len(big), err)
	}
	if m, err := w.WriteLineNow(big, int(pw.Fd())); m != 0 || err != nil {
		t.Fatalf("WriteLineNow on a full socket: %d bytes, %v", m, err)
	}
	r := startReaderOn(t, peer, pw)
	if err := w.WriteLine(big[n:], -1); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteLine(big, int(pw.Fd())); err != nil {
		t.Fatal(err)
	}
	w.Close()
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		t.Fatal("ReadLines did not end")
	}
	want := fmt.Sprintf("handle+fd[] <%d bytes>", len(pad)+2)
	if len(r.lines) != 2 || r.lines[0] != want || r.lines[1] != want || r.err != nil {
		t.Errorf("got %v, %v; want two lines %q", r.lines, r.err, want)
	}
	for _, b := range r.bad {
		t.Error(b)
	}
	if after := testkit.NumFDs(t); after != before {
		t.Errorf("%d open descriptors before, %d after", before, after)
	}
}

// FuzzWire sends arbitrary bytes over a real socketpair, split into writes
// as plan says, some carrying a descriptor. The reader must not panic, must
// pass on only valid JSON, must end at end of file, must leak no
// descriptor, and may end cleanly only if every descriptor sent was claimed
// by a NODE_HANDLE line (else a violation closed them).
func FuzzWire(f *testing.F) {
	handle := `{"cmd":"NODE_HANDLE","type":"net.Native","msg":{"cmd":"NODE_CLUSTER","act":"newconn","seq":1}}` + "\n"
	for _, s := range []struct{ data, plan string }{
		{handle, "\x01"},
		{handle + handle, "\x01\x40\x01"},
		{handle, "\x03\x05\x07"},
		{`{"cmd":"NODE_HANDLE_ACK"}` + "\n1\n", "\x01"},
		{"[1,2]\n\"x\"\nnull\n", ""},
		{`{"cmd":"NODE_HANDLE","msg":1}` + "\n", ""},
		{"\xff\xfe\n", "\x01"},
		{`{"a":` + strings.Repeat("[", 300), "\x00\x00\x01"},
	} {
		f.Add([]byte(s.data), []byte(s.plan))
	}
	pw := testkit.Pipe(f)
	f.Fuzz(func(t *testing.T, data, plan []byte) {
		before := testkit.NumFDs(t)
		conn, peer, err := Pair()
		if err != nil {
			t.Fatal(err)
		}
		claimed := 0
		var rerr error
		done := make(chan struct{})
		go func() {
			defer close(done)
			rerr = conn.ReadLines(func(l Line) error {
				if l.File != nil {
					claimed++
					l.File.Close()
					if l.Kind != Handle {
						t.Errorf("a descriptor on a %d line", l.Kind)
					}
				}
				if len(l.Raw) > MaxLine || !json.Valid(l.Raw) {
					t.Errorf("passed on %q", l.Raw)
				}
				return nil
			})
			conn.Close()
		}()
		sent := 0
		for i := 0; len(data) > 0; i++ {
			n, fd := len(data), false
			if i < len(plan) {
				n, fd = min(int(plan[i]>>1)+1, len(data)), plan[i]&1 == 1
			}
			var oob []byte
			if fd {
				oob = unix.UnixRights(int(pw.Fd()))
			}
			if _, err := unix.SendmsgN(int(peer.Fd()), data[:n], oob, nil, unix.MSG_NOSIGNAL); err != nil {
				break // the reader gave up and closed its end
			}
			if fd {
				sent++
			}
			data = data[n:]
		}
		peer.Close()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("ReadLines did not end at end of file")
		}
		var pe *ProtocolError
		if rerr != nil && !errors.As(rerr, &pe) {
			t.Errorf("ReadLines: %v", rerr)
		}
		if rerr == nil && claimed != sent {
			t.Errorf("ended cleanly with %d of %d descriptors claimed", claimed, sent)
		}
		if after := testkit.NumFDs(t); after != before {
			t.Errorf("%d open descriptors before, %d after", before, after)
		}
	})
}
