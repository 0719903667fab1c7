package netshare

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/paddock-sh/paddock/internal/sysctl"
	"github.com/paddock-sh/paddock/internal/testkit"
	"github.com/paddock-sh/paddock/manifest"
)

// group returns the SO_REUSEPORT group of a new anchor on a loopback port
// of its own, with n members joined in order (their worker copies closed:
// the Group's own descriptors keep them in).
func group(t *testing.T, n int) (*Group, []*Member) {
	t.Helper()
	l, err := manifest.ParseListen("127.0.0.1:0", "")
	if err != nil {
		t.Fatal(err)
	}
	pool := NewPool()
	anchor, err := pool.Acquire(l, true, t.Name())
	if err != nil {
		t.Fatal(err)
	}
	g := anchor.Group()
	if g == nil {
		t.Fatal("a reuseport anchor has no group")
	}
	var joined []*Member
	for range n {
		joined = append(joined, join(t, g))
	}
	t.Cleanup(func() {
		for _, m := range joined {
			m.Remove()
		}
		anchor.Release()
	})
	return g, joined
}

func join(t *testing.T, g *Group) *Member {
	t.Helper()
	m, worker, err := g.Join()
	if err != nil {
		t.Fatal(err)
	}
	worker.Close()
	return m
}

// dial connects to the group's address; the connection is closed when the
// test ends.
func dial(t *testing.T, g *Group) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", g.anchor.Addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// acceptOne waits for a connection on one of members' sockets, accepts it
// and returns that member's position in members. Exactly one of them must
// have one.
func acceptOne(t *testing.T, members []*Member) int {
	t.Helper()
	got := acceptSome(t, members)
	if len(got) != 1 {
		t.Fatalf("members %v all had a connection waiting, want one", got)
	}
	return got[0]
}

// acceptSome waits for connections on members' sockets, accepts one on
// each socket that has any, and returns their positions in members.
func acceptSome(t *testing.T, members []*Member) []int {
	t.Helper()
	fds := make([]unix.PollFd, len(members))
	for i, m := range members {
		fds[i] = unix.PollFd{Fd: int32(m.file.Fd()), Events: unix.POLLIN}
	}
	for {
		n, err := unix.Poll(fds, 30_000)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Fatal("no member's socket got a connection")
		}
		break
	}
	var out []int
	for i := range fds {
		if fds[i].Revents&unix.POLLIN != 0 {
			nfd, _, err := unix.Accept4(int(members[i].file.Fd()), unix.SOCK_CLOEXEC)
			if err != nil {
				t.Fatal(err)
			}
			unix.Close(nfd)
			out = append(out, i)
		}
	}
	return out
}

// steerTo attaches a program that answers index k, whatever the members'
// readiness.
func steerTo(t *testing.T, g *Group, k uint32) {
	t.Helper()
	if err := attach(g.members[0].file, program([]uint32{k})); err != nil {
		t.Fatal(err)
	}
}

// checkOrder steers a connection to each index of the kernel's array and
// checks that want[i] accepts it, and that the Group's model agrees.
func checkOrder(t *testing.T, g *Group, want []*Member, names map[*Member]string) {
	t.Helper()
	if !slices.Equal(g.members, want) {
		t.Fatalf("the model is %s, want %s", order(g.members, names), order(want, names))
	}
	for k := range want {
		steerTo(t, g, uint32(k))
		dial(t, g)
		if got := acceptOne(t, want); got != k {
			t.Fatalf("steered to index %d: %s accepted; the kernel's order is not %s", k, names[want[got]], order(want, names))
		}
	}
}

func order(ms []*Member, names map[*Member]string) string {
	var s []string
	for _, m := range ms {
		s = append(s, names[m])
	}
	return "[" + strings.Join(s, " ") + "]"
}

// TestReuseportKernelOrder checks the model Group keeps of the kernel's
// array of listening sockets: a member is appended when it listens, a
// removed one's slot takes the last member, and the anchor is not in it.
func TestReuseportKernelOrder(t *testing.T) {
	g, m := group(t, 4)
	names := map[*Member]string{}
	for i, x := range m {
		names[x] = fmt.Sprint("m", i)
	}
	checkOrder(t, g, []*Member{m[0], m[1], m[2], m[3]}, names)

	m[1].Remove() // the last moves into slot 1
	checkOrder(t, g, []*Member{m[0], m[3], m[2]}, names)

	m[2].Remove() // the last itself: nothing moves
	checkOrder(t, g, []*Member{m[0], m[3]}, names)

	m[0].Remove()
	checkOrder(t, g, []*Member{m[3]}, names)

	m4 := join(t, g)
	names[m4] = "m4"
	checkOrder(t, g, []*Member{m[3], m4}, names)
	t.Cleanup(func() { m4.Remove() })

	// Every member gone, the kernel's group is new: the first to listen
	// again is index 0.
	m[3].Remove()
	m4.Remove()
	m5, m6 := join(t, g), join(t, g)
	t.Cleanup(func() { m5.Remove(); m6.Remove() })
	names[m5], names[m6] = "m5", "m6"
	checkOrder(t, g, []*Member{m5, m6}, names)
}

// TestReuseportSteersToReadyMembers connects many times: no connection
// reaches a member that is not ready while another is ready.
func TestReuseportSteersToReadyMembers(t *testing.T) {
	g, m := group(t, 4)
	ready := func(states ...bool) {
		t.Helper()
		for i, r := range states {
			if err := m[i].SetReady(r); err != nil {
				t.Fatal(err)
			}
		}
	}
	check := func(what string, live []*Member, want map[int]bool) {
		t.Helper()
		got := map[int]int{}
		for range 200 {
			dial(t, g)
			got[acceptOne(t, live)]++
		}
		for i, n := range got {
			if !want[i] {
				t.Fatalf("%s: member %d (not ready) got %d of 200 connections: %v", what, i, n, got)
			}
		}
		for i := range want {
			if got[i] == 0 {
				t.Errorf("%s: ready member %d got none of 200 connections: %v", what, i, got)
			}
		}
		t.Logf("%s: %v", what, got)
	}
	ready(true, false, true, false)
	check("m0 and m2 ready", m, map[int]bool{0: true, 2: true})
	ready(false, true, false, true)
	check("m1 and m3 ready", m, map[int]bool{1: true, 3: true})
	ready(false, false, false, true)
	check("m3 alone ready", m, map[int]bool{3: true})

	// Removing a member moves the last one (m3, the ready one) into its
	// slot: the program follows.
	if err := m[0].Remove(); err != nil {
		t.Fatal(err)
	}
	live := []*Member{m[3], m[1], m[2]}
	check("m3 ready after m0's removal", live, map[int]bool{0: true})
	ready(false, true, false, false)
	check("m1 ready after m0's removal", live, map[int]bool{1: true})

	// None ready: the kernel's hash over every member.
	ready(false, false, false, false)
	check("none ready", live, map[int]bool{0: true, 1: true, 2: true})
}

// TestReuseportRemoveMigratesQueue: connections queued on a member, never
// accepted, are accepted by another member once it is removed
// (net.ipv4.tcp_migrate_req).
func TestReuseportRemoveMigratesQueue(t *testing.T) {
	on, err := sysctl.Migration()
	if err != nil {
		t.Skip(err)
	}
	if !on {
		if _, err := sysctl.EnableMigration(slog.New(slog.DiscardHandler)); err != nil {
			t.Skipf("net.ipv4.tcp_migrate_req is off and cannot be turned on: %v", err)
		}
		t.Cleanup(func() { os.WriteFile("/proc/sys/net/ipv4/tcp_migrate_req", []byte("0"), 0o644) })
	}
	g, m := group(t, 3)
	m[0].SetReady(true)
	const n = 5
	var clients []net.Conn
	for range n {
		clients = append(clients, dial(t, g))
	}
	// Every connection is queued on m0; move the others' readiness, then
	// remove m0 without accepting any.
	m[0].SetReady(false)
	m[2].SetReady(true)
	if err := m[0].Remove(); err != nil {
		t.Fatal(err)
	}
	// The kernel moves them by its hash over the listening members, the
	// one not ready included: a classic BPF program cannot choose.
	live := []*Member{m[2], m[1]}
	got := map[string]int{}
	for got["m2"]+got["m1"] < n {
		for _, i := range acceptSome(t, live) {
			got[[]string{"m2", "m1"}[i]]++
		}
	}
	t.Logf("the %d queued connections were accepted by %v", n, got)
	// The clients' connections are whole: none was reset.
	for _, c := range clients {
		if _, err := c.Write([]byte("x")); err != nil {
			t.Errorf("a migrated connection is broken: %v", err)
		}
	}
}

// TestSteeringAroundRemoval checks the programs Remove attaches before the
// swap: they avoid the removed index and the last one, and fall back to
// the last one alone when nothing else is ready.
func TestSteeringAroundRemoval(t *testing.T) {
	mk := func(ready ...bool) []*Member {
		var ms []*Member
		for _, r := range ready {
			ms = append(ms, &Member{ready: r})
		}
		return ms
	}
	g := &Group{}
	for _, tc := range []struct {
		name   string
		layout []*Member
		remove int
		want   []uint32
	}{
		{"middle, others ready", mk(true, true, true, true), 1, []uint32{0, 2}},
		{"last, others ready", mk(true, true, true), 2, []uint32{0, 1}},
		{"only the last is ready", mk(false, false, true), 0, []uint32{2}},
		{"nothing else ready", mk(true, false, false), 0, nil},
		{"the removed one alone", mk(true), 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.layout[tc.remove].gone = true
			last := len(tc.layout) - 1
			got := g.steering(tc.layout, map[int]bool{tc.remove: true, last: true}, last)
			if !slices.Equal(got, tc.want) {
				t.Errorf("transitional indexes %v, want %v", got, tc.want)
			}
		})
	}
}

// TestUnixListenNeverTakesOverALiveSocket: a unix `listen:` address whose
// socket is live (even with a full queue, where connect says EAGAIN) is an
// error naming the path; a stale one is replaced; a regular file is left
// alone.
func TestUnixListenNeverTakesOverALiveSocket(t *testing.T) {
	dir := t.TempDir()
	acquire := func(path string) (*Socket, error) {
		l, err := manifest.ParseListen("unix:"+path, "")
		if err != nil {
			t.Fatal(err)
		}
		return NewPool().Acquire(l, false, "test")
	}

	busy := dir + "/busy.sock"
	testkit.BusyUnixSocket(t, busy)
	var before unix.Stat_t
	unix.Lstat(busy, &before)
	_, err := acquire(busy)
	var be *BindError
	if !errors.As(err, &be) || !strings.Contains(err.Error(), busy) || !strings.Contains(err.Error(), "live socket") {
		t.Fatalf("Acquire of a busy socket's path: %v, want an error naming %s", err, busy)
	}
	var after unix.Stat_t
	if err := unix.Lstat(busy, &after); err != nil || after.Ino != before.Ino {
		t.Fatalf("the busy socket was replaced: %v", err)
	}

	stale := dir + "/stale.sock"
	testkit.StaleUnixSocket(t, stale)
	s, err := acquire(stale)
	if err != nil {
		t.Fatalf("Acquire over a stale socket: %v", err)
	}
	if !s.Replaced {
		t.Error("the stale socket's replacement is not reported")
	}
	s.Release()
	if _, err := os.Lstat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the socket file was left behind after its last release: %v", err)
	}

	file := dir + "/file"
	os.WriteFile(file, []byte("keep me"), 0o644)
	if _, err := acquire(file); err == nil || !strings.Contains(err.Error(), file) {
		t.Fatalf("Acquire of a regular file's path: %v", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "keep me" {
		t.Error("the regular file was changed")
	}
}
