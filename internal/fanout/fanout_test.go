package fanout

import (
	"sync"
	"testing"
)

func TestPublishFiltersBoundsAndCounts(t *testing.T) {
	h := New[int](2, 3)
	even, err := h.Follow(func(v int) bool { return v%2 == 0 })
	if err != nil {
		t.Fatal(err)
	}
	all, err := h.Follow(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Follow(nil); err != ErrTooManyFollowers {
		t.Fatalf("a third follower: %v, want ErrTooManyFollowers", err)
	}
	for v := range 10 {
		h.Publish(v)
	}
	<-even.Ready()
	if vs, dropped := even.Take(); len(vs) != 3 || vs[0] != 0 || vs[2] != 4 || dropped != 2 {
		t.Errorf("even: %v, %d dropped; want [0 2 4] and 2", vs, dropped)
	}
	if vs, dropped := all.Take(); len(vs) != 3 || vs[2] != 2 || dropped != 7 {
		t.Errorf("all: %v, %d dropped; want [0 1 2] and 7", vs, dropped)
	}
	if vs, dropped := all.Take(); vs != nil || dropped != 0 {
		t.Errorf("a second Take: %v, %d", vs, dropped)
	}
	all.Leave()
	all.Leave()
	if h.Len() != 1 {
		t.Errorf("%d followers after one left, want 1", h.Len())
	}
	h.Publish(6)
	if vs, _ := all.Take(); vs != nil {
		t.Errorf("a follower that left got %v", vs)
	}
	if _, err := h.Follow(nil); err != nil {
		t.Errorf("no room after one left: %v", err)
	}
}

// TestConcurrentPublishers: values from several publishers reach a
// follower that keeps up, each exactly once.
func TestConcurrentPublishers(t *testing.T) {
	h := New[int](1, 1<<20)
	f, err := h.Follow(nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for p := range 4 {
		wg.Go(func() {
			for i := range 1000 {
				h.Publish(p*1000 + i)
			}
		})
	}
	wg.Wait()
	vs, dropped := f.Take()
	seen := map[int]bool{}
	for _, v := range vs {
		seen[v] = true
	}
	if len(vs) != 4000 || len(seen) != 4000 || dropped != 0 {
		t.Errorf("%d values, %d distinct, %d dropped; want 4000, 4000, 0", len(vs), len(seen), dropped)
	}
}
