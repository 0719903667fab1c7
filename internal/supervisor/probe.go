package supervisor

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/paddock-sh/paddock/manifest"
	"github.com/paddock-sh/paddock/procs"
)

// This file holds the probes themselves: an HTTP GET or a TCP connection,
// to an address or handed to the worker by paddock (rr, sticky), and a
// program run in the worker's environment.

// maxAnswer bounds what a probe's answer keeps: of an HTTP response's
// body, of an exec probe's last line of output.
const maxAnswer = 200

// execOutputTail is how much of an exec probe's output is kept, to find
// its last line; the rest is read and dropped.
const execOutputTail = 4096

// execDrain bounds how long an exec probe's output is read once it
// exited: a process that left its group may hold the pipe open.
const execDrain = 100 * time.Millisecond

// maxConnAge is how long one connection serves an HTTP probe's worker
// (HTTP keep-alive): a new connection is opened once it is older, so that
// a worker that no longer accepts connections, while it still answers on
// those it has, fails its probes within maxConnAge and an interval.
// Opening a TCP connection costs paddock several times what a request on
// an open one does (see BenchmarkHealthChecks200Workers).
const maxConnAge = 30 * time.Second

// maxDrain bounds what is read of an HTTP probe's response body so that
// its connection can serve the next probe; a longer body closes it.
const maxDrain = 64 << 10

// probeConn is an HTTP probe's connection to its worker, kept between
// probes (HTTP keep-alive), with its reader and when it was opened.
type probeConn struct {
	c      net.Conn
	br     *bufio.Reader
	opened time.Time
}

// close closes the connection; nil is fine.
func (pc *probeConn) close() {
	if pc != nil {
		pc.c.Close()
	}
}

// probe runs one probe of t, which must end by deadline (its timeout).
func (p *prober) probe(t *probeTarget, deadline time.Time) probeResult {
	if t.kind == manifest.ProbeHTTP {
		return p.probeHTTP(t, deadline)
	}
	ctx, cancel := context.WithDeadline(t.ctx, deadline)
	defer cancel()
	switch {
	case t.kind == manifest.ProbeExec:
		return p.probeExec(ctx, t)
	case t.addr == "":
		return p.probeDispatchedTCP(ctx, t)
	}
	c, err := dial(ctx, t.addr)
	if err != nil {
		return failed(deadline, "connect "+t.addr, err)
	}
	c.Close()
	return probeResult{result: HealthPass, answer: "connected to " + t.addr}
}

// probeHTTP sends GET path to t's worker on the connection the previous
// probe left open, or on a new one (once it is maxConnAge old,
// and again at once when the worker had closed the one left open), and
// leaves the connection open for the next probe when the answer allows.
func (p *prober) probeHTTP(t *probeTarget, deadline time.Time) probeResult {
	host := t.addr
	if host == "" {
		host = net.JoinHostPort("127.0.0.1", strconv.Itoa(t.port))
	}
	pc := p.takeConn(t)
	if pc != nil && time.Since(pc.opened) >= maxConnAge {
		pc.close()
		pc = nil
	}
	for {
		reused := pc != nil
		if pc == nil {
			c, res := p.connect(t, deadline)
			if c == nil {
				return res
			}
			pc = &probeConn{c: c, br: bufio.NewReaderSize(c, 1024), opened: time.Now()}
		}
		if !p.busy(t, pc) {
			pc.close()
			return probeResult{} // removed meanwhile
		}
		res, keep, stale := httpGet(pc, deadline, host, t.path)
		if stale && reused {
			// The worker closed the connection kept open (an idle
			// timeout): a new one, once.
			p.keepConn(t, nil)
			pc.close()
			pc = nil
			continue
		}
		if !keep {
			pc.close()
			pc = nil
		}
		p.keepConn(t, pc)
		return res
	}
}

// connect opens a connection to t's worker by deadline: to its address,
// or handed to it by paddock (rr, sticky). When it cannot, it returns the
// probe's result instead.
func (p *prober) connect(t *probeTarget, deadline time.Time) (net.Conn, probeResult) {
	ctx, cancel := context.WithDeadline(t.ctx, deadline)
	defer cancel()
	if t.addr == "" {
		c, err := p.handOver(ctx, t, nil)
		if err != nil {
			return nil, failed(deadline, "hand over a connection", err)
		}
		return c, probeResult{}
	}
	c, err := dial(ctx, t.addr)
	if err != nil {
		return nil, failed(deadline, "connect "+t.addr, err)
	}
	return c, probeResult{}
}

// takeConn returns the connection t's previous probe left open, if any;
// it is the caller's from then on.
func (p *prober) takeConn(t *probeTarget) *probeConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	pc := t.conn
	t.conn = nil
	return pc
}

// busy records pc as the connection of t's probe in flight, which
// removing t interrupts; it reports false when t was removed already.
func (p *prober) busy(t *probeTarget, pc *probeConn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if t.removed {
		return false
	}
	t.busy = pc
	return true
}

// keepConn ends t's probe in flight and leaves pc, when not nil, open for
// t's next probe; it is closed at once when t is no longer probed.
func (p *prober) keepConn(t *probeTarget, pc *probeConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t.busy = nil
	if pc == nil {
		return
	}
	if t.removed || t.conn != nil {
		pc.close()
		return
	}
	t.conn = pc
}

// dial connects to addr over TCP within ctx.
func dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// failed is the result of a probe that got err doing what: a timeout when
// its deadline passed, else a failure.
func failed(deadline time.Time, what string, err error) probeResult {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) || !time.Now().Before(deadline) {
		return probeResult{result: HealthTimeout, answer: what + ": no answer within the timeout"}
	}
	return probeResult{result: HealthFail, answer: what + ": " + err.Error()}
}

// httpGet sends GET path to host over pc, by deadline, and judges the
// answer: a 2xx or 3xx status passes (as Kubernetes' httpGet). keep says
// the connection may serve the next probe (the response was read whole,
// the worker did not close it); stale, that the worker had closed it
// before this request (nothing was read back).
func httpGet(pc *probeConn, deadline time.Time, host, path string) (res probeResult, keep, stale bool) {
	c := pc.c
	c.SetDeadline(deadline)
	req := "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: paddock-health\r\nAccept: */*\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		return failed(deadline, "GET "+path, err), false, true
	}
	// The end of the stream before the first byte of an answer: the
	// worker had closed the connection (ReadResponse would call it an
	// unexpected EOF).
	if _, err := pc.br.Peek(1); err != nil {
		stale = errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
		return failed(deadline, "GET "+path, err), false, stale
	}
	resp, err := http.ReadResponse(pc.br, nil)
	if err != nil {
		return failed(deadline, "GET "+path, err), false, false
	}
	var buf [maxAnswer + 1]byte
	n, _ := io.ReadFull(resp.Body, buf[:])
	answer := "HTTP " + resp.Status
	if s := oneLine(buf[:n]); s != "" {
		answer += ": " + s
	}
	rest, _ := io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	_, err = resp.Body.Read(buf[:1])
	keep = !resp.Close && err == io.EOF && rest < maxDrain
	resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 400 {
		return probeResult{result: HealthPass, answer: answer}, keep, false
	}
	return probeResult{result: HealthFail, answer: answer}, keep, false
}

// oneLine returns b as one line of at most maxAnswer bytes of valid UTF-8:
// control characters become spaces, and a cut is marked "…".
func oneLine(b []byte) string {
	cut := len(b) > maxAnswer
	if cut {
		b = b[:maxAnswer]
	}
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	if cut {
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
	}
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f }), " ")
	s = strings.TrimSpace(s)
	if cut {
		s += "…"
	}
	return s
}

// probeDispatchedTCP hands a connection to the worker as its dispatcher
// would and passes when the worker accepts it (Node's cluster answers
// accepted:true once its server took the connection).
func (p *prober) probeDispatchedTCP(ctx context.Context, t *probeTarget) probeResult {
	answered := make(chan bool, 1)
	deadline, _ := ctx.Deadline()
	c, err := p.handOver(ctx, t, func(accepted bool) { answered <- accepted })
	if err != nil {
		return failed(deadline, "hand over a connection", err)
	}
	defer c.Close()
	select {
	case ok := <-answered:
		if ok {
			return probeResult{result: HealthPass, answer: "the worker accepted the connection"}
		}
		return probeResult{result: HealthFail, answer: "the worker refused the connection"}
	case <-ctx.Done():
		return failed(deadline, "hand over a connection", ctx.Err())
	}
}

// errNotListening says a worker has not asked paddock to listen on the
// probed port.
var errNotListening = errors.New("the worker does not listen on the probed port (no cluster listen() of it reached paddock)")

// handOver makes a connection whose other end goes to t's worker through
// its subscription to the probed address, as the dispatcher hands out the
// address's connections; onAnswer, when set, is told the worker's answer.
// The connection is never offered to another worker. It returns paddock's
// end.
func (p *prober) handOver(ctx context.Context, t *probeTarget, onAnswer func(bool)) (net.Conn, error) {
	s := t.route.Load()
	if s == nil {
		return nil, fmt.Errorf("port %d: %w", t.port, errNotListening)
	}
	client, server, err := p.pairs.pair(ctx)
	if err != nil {
		return nil, err
	}
	if !s.hand(pendingConn{conn: server, onAnswer: onAnswer}, false) {
		server.Close()
		client.Close()
		return nil, errors.New("the worker's IPC channel did not take the connection")
	}
	return client, nil
}

// pair returns both ends of a new TCP connection over the loopback:
// paddock's, and the other end's descriptor (close-on-exec), to hand over.
func (m *pairMaker) pair(ctx context.Context) (net.Conn, acceptedConn, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ln == nil {
		ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return nil, acceptedConn{}, fmt.Errorf("listen for probes: %w", err)
		}
		m.ln = ln
	}
	client, err := dial(ctx, m.ln.Addr().String())
	if err != nil {
		return nil, acceptedConn{}, err
	}
	if d, ok := ctx.Deadline(); ok {
		m.ln.SetDeadline(d)
	}
	for {
		sc, err := m.ln.AcceptTCP()
		if err != nil {
			client.Close()
			return nil, acceptedConn{}, err
		}
		if sc.RemoteAddr().String() != client.LocalAddr().String() {
			sc.Close() // another process connected to the listener
			continue
		}
		fd, err := dupConn(sc)
		sc.Close()
		if err != nil {
			client.Close()
			return nil, acceptedConn{}, err
		}
		return client, acceptedConn{fd: fd, ip: netip.AddrFrom4([4]byte{127, 0, 0, 1})}, nil
	}
}

// dupConn returns a close-on-exec duplicate of c's descriptor.
func dupConn(c *net.TCPConn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var dupErr error
	if err := rc.Control(func(s uintptr) { fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	return fd, dupErr
}

// probeExec runs t's program as the worker's own (its environment,
// directory and identity), in a process group of its own that is killed
// when ctx is done (the timeout), and judges its exit: 0 passes.
func (p *prober) probeExec(ctx context.Context, t *probeTarget) probeResult {
	rd, wr, err := os.Pipe()
	if err != nil {
		return probeResult{result: HealthFail, answer: "exec " + t.exec.Path + ": " + err.Error()}
	}
	spec := t.exec
	spec.Stdout, spec.Stderr = wr, wr
	p.execs.begin()
	proc, pid, startedAt, err := p.procs.Start(spec)
	wr.Close()
	exits := p.execs.started(pid, startedAt)
	if err != nil {
		rd.Close()
		return probeResult{result: HealthFail, answer: err.Error()}
	}
	out := make(chan string, 1)
	go func() { out <- lastLine(rd) }()
	var ex procs.Exit
	timedOut := false
	select {
	case ex = <-exits:
	case <-ctx.Done():
		timedOut = true
		_ = proc.KillGroup()
		select {
		case ex = <-exits:
		case <-time.After(time.Second):
			// The reaper no longer runs (paddock is stopping).
			p.execs.forget(pid)
		}
	}
	if !ex.Time.IsZero() {
		proc.Release()
	}
	rd.SetReadDeadline(time.Now().Add(execDrain))
	line := <-out
	rd.Close()
	answer := "exec " + t.exec.Path
	switch {
	case timedOut:
		answer += ": no exit within the timeout, killed"
	case ex.Status.Signaled():
		answer += ": killed by " + unix.SignalName(ex.Status.Signal())
	default:
		answer += ": exit code " + strconv.Itoa(ex.Status.ExitStatus())
	}
	if line != "" {
		answer += ": " + line
	}
	switch {
	case timedOut:
		return probeResult{result: HealthTimeout, answer: answer}
	case ex.Success():
		return probeResult{result: HealthPass, answer: answer}
	}
	return probeResult{result: HealthFail, answer: answer}
}

// lastLine reads r to its end (or an error: its read deadline) and
// returns the last non-empty line of what it read, kept within
// execOutputTail bytes, as one line of at most maxAnswer bytes.
func lastLine(r io.Reader) string {
	tail := make([]byte, 0, 2*execOutputTail)
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		tail = append(tail, buf[:n]...)
		if len(tail) > execOutputTail {
			tail = append(tail[:0], tail[len(tail)-execOutputTail:]...)
		}
		if err != nil {
			break
		}
	}
	tail = bytes.TrimRight(tail, "\r\n\t ")
	if i := bytes.LastIndexByte(tail, '\n'); i >= 0 {
		tail = tail[i+1:]
	}
	return oneLine(tail)
}
