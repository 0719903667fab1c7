package supervisor

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/paddock-sh/paddock/internal/testkit"
)

// serveUDP is helper mode udp-echo: a worker that takes descriptor 3 as a
// systemd ListenDatagram= socket. It checks LISTEN_FDS, LISTEN_PID and
// that the socket is SOCK_DGRAM, writes "<socket inode> <LISTEN_FDNAMES>"
// to $READY_DIR/udp.<worker id>, then answers every datagram with "<worker
// id> <datagram>", reading blocking as handed over; SIGTERM exits 0.
func serveUDP() {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	go func() {
		<-term
		os.Exit(0)
	}()
	id := os.Getenv("PADDOCK_WORKER_ID")
	if os.Getenv("LISTEN_FDS") != "1" || os.Getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) {
		fmt.Fprintf(os.Stderr, "LISTEN_FDS=%q LISTEN_PID=%q, pid %d\n", os.Getenv("LISTEN_FDS"), os.Getenv("LISTEN_PID"), os.Getpid())
		os.Exit(4)
	}
	if typ, err := unix.GetsockoptInt(3, unix.SOL_SOCKET, unix.SO_TYPE); err != nil || typ != unix.SOCK_DGRAM {
		fmt.Fprintf(os.Stderr, "descriptor 3: SO_TYPE %d, %v; want SOCK_DGRAM\n", typ, err)
		os.Exit(5)
	}
	var st unix.Stat_t
	if err := unix.Fstat(3, &st); err != nil {
		os.Exit(5)
	}
	f := filepath.Join(os.Getenv("READY_DIR"), "udp."+id)
	if err := os.WriteFile(f+".tmp", []byte(fmt.Sprintf("%d %s", st.Ino, os.Getenv("LISTEN_FDNAMES"))), 0o644); err != nil {
		os.Exit(5)
	}
	if err := os.Rename(f+".tmp", f); err != nil {
		os.Exit(5)
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := unix.Recvfrom(3, buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "recvfrom:", err)
			os.Exit(6)
		}
		if err := unix.Sendto(3, append([]byte(id+" "), buf[:n]...), 0, from); err != nil {
			fmt.Fprintln(os.Stderr, "sendto:", err)
			os.Exit(6)
		}
	}
}

// ask sends payload to addr from a new UDP socket and returns the answer;
// the deadline only bounds a failure.
func ask(t *testing.T, addr, payload string) string {
	t.Helper()
	c, err := net.Dial("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(payload)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(patience))
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("answer to %q from %s: %v", payload, addr, err)
	}
	return string(buf[:n])
}

// askAll sends n datagrams to addr, each from a socket of its own, and
// checks that each is answered once by one of the workers ids; it returns
// how many each answered.
func askAll(t *testing.T, addr string, n int, ids []string) map[string]int {
	t.Helper()
	by := map[string]int{}
	for i := range n {
		payload := fmt.Sprintf("ping %d", i)
		id, rest, _ := strings.Cut(ask(t, addr, payload), " ")
		if rest != payload || !slices.Contains(ids, id) {
			t.Fatalf("answer %q %q to %q, want one of workers %v", id, rest, payload, ids)
		}
		by[id]++
	}
	return by
}

// TestListenUDP: a `udp:` address reaches workers without IPC channel as
// LISTEN_FDS descriptor 3, a SOCK_DGRAM socket named by its port in
// LISTEN_FDNAMES, one socket shared by every worker under every
// schedulingPolicy (reuseport included: no socket of a worker's own), and
// the workers answer the datagrams sent to it.
func TestListenUDP(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{"none", "rr", "sticky", "reuseport"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			h := start(t, `
apps:
  dns:
    exec: $SELF
    instances: 2
    schedulingPolicy: `+policy+`
    listen: ["udp:127.0.0.1:0"]
    env: {PADDOCK_TEST_HELPER: udp-echo, READY_DIR: "$DIR"}
`)
			ws := h.waitWorkers("2 workers", running("dns", 2))
			addr := h.listenAddr("dns")
			_, port, _ := net.SplitHostPort(addr)
			var ids, inodes []string
			for _, w := range ws {
				id := strconv.Itoa(w.ID)
				ids = append(ids, id)
				var said string
				testkit.WaitFor(t, "worker "+id+" took its socket", func() bool {
					b, err := os.ReadFile(filepath.Join(h.dir, "udp."+id))
					said = string(b)
					return err == nil
				})
				inode, names, _ := strings.Cut(said, " ")
				if names != port {
					t.Errorf("worker %s: LISTEN_FDNAMES %q, want the port %s", id, names, port)
				}
				inodes = append(inodes, inode)
			}
			if inodes[0] != inodes[1] {
				t.Errorf("the workers got sockets %v, want one socket shared", inodes)
			}
			by := askAll(t, addr, 20, ids)
			t.Logf("answers by worker: %v", by)
			st, err := h.sup.Status(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if got := st.Apps[0].Listen; len(got) != 1 || got[0] != "udp:"+addr {
				t.Errorf("status listen %q, want udp:%s", got, addr)
			}
		})
	}
}

// freeUDPPort returns a port free for UDP on 127.0.0.1 at the time of the
// call, below the kernel's ephemeral range (see freePort).
func freeUDPPort(t testing.TB) int {
	t.Helper()
	for range 1000 {
		port := 20000 + rand.IntN(12000)
		c, err := net.ListenPacket("udp4", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return port
		}
	}
	t.Fatal("no free UDP port below the ephemeral range")
	return 0
}

// dgramWorker binds udp4 127.0.0.1:$PORT through the cluster without
// reuseAddr (two workers can both do so only on one shared socket), then
// the app's listen: socket by its descriptor, then tries a net server on
// that descriptor; each socket answers "<worker id> <datagram>", and the
// worker reports each step with process.send.
const dgramWorker = `const cluster = require('node:cluster');
const dgram = require('node:dgram');
const net = require('node:net');
const id = cluster.worker.id;
const echo = (s, what) => {
  s.on('message', (msg, r) => s.send(id + ' ' + msg, r.port, r.address));
  s.on('error', (e) => process.send({error: what, code: e.code}));
  return s;
};
const a = echo(dgram.createSocket('udp4'), 'bind');
a.bind(+process.env.PORT, '127.0.0.1', () => {
  process.send({bound: a.address().port});
  const b = echo(dgram.createSocket('udp4'), 'fd');
  b.bind({fd: 3}, () => {
    process.send({fd: b.address().port});
    net.createServer()
      .on('error', (e) => process.send({netfd: e.code}))
      .listen({fd: 3}, () => process.send({netfd: 'listening'}));
  });
});
`

// TestNodeDgramEveryPolicy: Node cluster workers' dgram sockets get one
// UDP socket shared by the app's workers under every schedulingPolicy, as
// Node's primary shares them whatever its policy: two workers bind one
// fixed port without reuseAddr, and the datagrams sent there are answered
// by the workers. bind({fd: 3}) takes the app's udp: listen socket; a net
// server's listen({fd: 3}) of it is refused with EINVAL, as Node refuses a
// descriptor of the wrong kind. status lists both addresses; once the
// workers are gone (scale to 0), paddock has closed the socket bound on
// demand and the port is free, while the listen: socket stays.
func TestNodeDgramEveryPolicy(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{"rr", "sticky", "none", "reuseport"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			port := freeUDPPort(t)
			h := startNode(t, dgramWorker, fmt.Sprintf(`
apps:
  dgram:
    exec: ./server.js
    instances: 2
    schedulingPolicy: %s
    listen: ["udp:127.0.0.1:0"]
    env: {PORT: "%d"}
`, policy, port))
			for _, want := range []string{fmt.Sprintf(`{"bound":%d}`, port), `{"fd":`, `{"netfd":"EINVAL"}`} {
				for range 2 {
					h.waitMessagePrefix(want)
				}
			}
			ws := h.waitWorkers("2 workers", running("dgram", 2))
			ids := []string{strconv.Itoa(ws[0].ID), strconv.Itoa(ws[1].ID)}
			onDemand := fmt.Sprintf("127.0.0.1:%d", port)
			listed := h.listenAddr("dgram")
			t.Logf("on demand: %v; listen: %v", askAll(t, onDemand, 10, ids), askAll(t, listed, 10, ids))

			listen := func() []string {
				st, err := h.sup.Status(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				return st.Apps[0].Listen
			}
			if got, want := listen(), []string{"udp:" + listed, "udp:" + onDemand}; !slices.Equal(got, want) {
				t.Errorf("status listen %q, want %q", got, want)
			}
			if _, err := h.sup.Scale(context.Background(), "dgram", 0); err != nil {
				t.Fatal(err)
			}
			h.waitWorkers("no worker", func(ws []WorkerInfo) bool { return len(ws) == 0 })
			if got, want := listen(), []string{"udp:" + listed}; !slices.Equal(got, want) {
				t.Errorf("status listen once the workers are gone %q, want %q", got, want)
			}
			c, err := net.ListenPacket("udp4", onDemand)
			if err != nil {
				t.Fatalf("the port bound on demand is not free once the workers are gone: %v", err)
			}
			c.Close()
		})
	}
}

// waitMessagePrefix waits for a message from a worker that begins with want,
// and fails the test at once on a message that reports an error.
func (h *harness) waitMessagePrefix(want string) Event {
	h.t.Helper()
	e := h.waitEvent(want, func(e Event) bool {
		return e.Type == EventMessage && (strings.HasPrefix(e.Detail, want) || strings.HasPrefix(e.Detail, `{"error"`))
	})
	if !strings.HasPrefix(e.Detail, want) {
		h.t.Fatalf("worker %d: %s, want %s", e.Worker, e.Detail, want)
	}
	h.t.Logf("worker %d: %s", e.Worker, e.Detail)
	return e
}

// TestNodeDgramReleasedOnExit: a UDP socket paddock bound for a worker's
// dgram socket is closed once the last worker holding it is gone, also
// when the worker died without closing it (SIGKILL): the port is free
// again, and status no longer lists it. While the other worker still holds
// it, it stays open and keeps receiving.
func TestNodeDgramReleasedOnExit(t *testing.T) {
	t.Parallel()
	port := freeUDPPort(t)
	h := startNode(t, dgramWorker, fmt.Sprintf(`
apps:
  dgram:
    exec: ./server.js
    instances: 2
    restart: never
    listen: ["udp:127.0.0.1:0"]
    env: {PORT: "%d"}
`, port))
	h.waitMessagePrefix(fmt.Sprintf(`{"bound":%d}`, port))
	h.waitMessagePrefix(fmt.Sprintf(`{"bound":%d}`, port))
	ws := h.waitWorkers("2 workers", running("dgram", 2))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if err := syscall.Kill(ws[0].PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.waitEvent("the exit", func(e Event) bool { return e.Type == EventExit && e.Worker == ws[0].ID })
	left := strconv.Itoa(ws[1].ID)
	if by := askAll(t, addr, 5, []string{left}); by[left] != 5 {
		t.Errorf("answers %v, want all from worker %s", by, left)
	}
	if err := syscall.Kill(ws[1].PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.waitEvent("the exit", func(e Event) bool { return e.Type == EventExit && e.Worker == ws[1].ID })
	st, err := h.sup.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Apps[0].Listen; len(got) != 1 || strings.Contains(got[0], addr) {
		t.Errorf("status listen %q once both workers died, want only the listen: socket", got)
	}
	c, err := net.ListenPacket("udp4", addr)
	if err != nil {
		t.Fatalf("the port bound on demand is not free once both workers died: %v", err)
	}
	c.Close()
}

// TestClusterMessagePort: a cluster message's port is a number, or a
// string as dgram's bind(process.env.PORT) sends it (the number it spells,
// 0 for anything else, as Node's primary binds); the other fields decode
// as without it.
func TestClusterMessagePort(t *testing.T) {
	for _, tt := range []struct {
		port string
		want int
	}{{`8000`, 8000}, {`"8000"`, 8000}, {`"http"`, 0}, {`null`, 0}, {``, 0}, {`{"a":1}`, 0}, {`-1`, -1}} {
		raw := `{"cmd":"NODE_CLUSTER","act":"queryServer","seq":3,"address":"127.0.0.1","addressType":"udp4","fd":-1,"flags":4`
		if tt.port != "" {
			raw += `,"port":` + tt.port
		}
		raw += "}"
		var m clusterIn
		if err := json.Unmarshal([]byte(raw), &m); err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		if m.Port != tt.want || m.Act != "queryServer" || m.Seq == nil || *m.Seq != 3 || m.Address == nil || *m.Address != "127.0.0.1" ||
			rawOr(m.AddressType, "") != "udp4" || rawOr(m.Flags, "") != "4" {
			t.Errorf("%s decoded as %+v, port %d; want port %d", raw, m, m.Port, tt.want)
		}
	}
	var m clusterIn
	if err := json.Unmarshal([]byte(`{"port":"8000","seq":"x"}`), &m); err == nil {
		t.Error("a seq that is no number decoded without error")
	}
}
