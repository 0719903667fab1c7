package supervisor

import (
	"net/netip"
	"testing"
)

// TestStickyOrder: the sticky dispatcher's order, a rendezvous hash of the
// client's address and each worker's id. For 1000 client addresses over
// workers 1, 2 and 3: each address has one first choice whatever the order
// of the subscriber list (the hash takes the worker's id, not its place in
// the list), the addresses spread over the workers (a uniform hash gives
// each worker 333 ± 15, one standard deviation; 270 is more than 4 of them
// below); removing a worker, the first in the list or another, moves only
// the addresses that chose it; adding one moves addresses only to it. Each
// order tries every worker once, also for a client without an IP address
// (a unix socket).
func TestStickyOrder(t *testing.T) {
	d := &dispatcher{sticky: true}
	subs := func(ids ...int) []subscriber {
		var s []subscriber
		for _, id := range ids {
			s = append(s, subscriber{c: &channel{worker: id}})
		}
		return s
	}
	first := func(ip netip.Addr, s []subscriber) int {
		t.Helper()
		order := d.order(acceptedConn{ip: ip}, s)
		seen := map[int]bool{}
		for _, i := range order {
			if i < 0 || i >= len(s) || seen[i] {
				t.Fatalf("order %v over %d workers is not a permutation", order, len(s))
			}
			seen[i] = true
		}
		if len(order) != len(s) {
			t.Fatalf("order %v over %d workers", order, len(s))
		}
		return s[order[0]].c.worker
	}
	first(netip.Addr{}, subs(1, 2, 3))
	const n = 1000
	ips := make([]netip.Addr, n)
	for i := range ips {
		ips[i] = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
	}
	choice := map[netip.Addr]int{}
	count := map[int]int{}
	for _, ip := range ips {
		w := first(ip, subs(1, 2, 3))
		choice[ip] = w
		count[w]++
		for _, perm := range [][]int{{3, 2, 1}, {2, 3, 1}, {1, 3, 2}} {
			if got := first(ip, subs(perm...)); got != w {
				t.Fatalf("%s goes to worker %d over workers %v, to %d over 1 2 3", ip, got, perm, w)
			}
		}
	}
	t.Logf("%d addresses over workers 1 2 3: %v", n, count)
	for _, id := range []int{1, 2, 3} {
		if count[id] < 270 {
			t.Errorf("worker %d is the choice of %d of %d addresses, want about a third: %v", id, count[id], n, count)
		}
	}
	for _, gone := range []int{1, 2, 3} {
		var left []int
		for _, id := range []int{1, 2, 3} {
			if id != gone {
				left = append(left, id)
			}
		}
		for _, ip := range ips {
			got := first(ip, subs(left...))
			if choice[ip] != gone && got != choice[ip] {
				t.Fatalf("without worker %d, %s moved from worker %d to %d", gone, ip, choice[ip], got)
			}
		}
	}
	moved := 0
	for _, ip := range ips {
		got := first(ip, subs(1, 2, 3, 4))
		if got != choice[ip] {
			moved++
			if got != 4 {
				t.Fatalf("with worker 4 added, %s moved from worker %d to %d", ip, choice[ip], got)
			}
		}
	}
	t.Logf("adding worker 4 moved %d of %d addresses", moved, n)
	if moved < n/8 || moved > n/2 {
		t.Errorf("adding a fourth worker moved %d of %d addresses, want about a quarter", moved, n)
	}
}
