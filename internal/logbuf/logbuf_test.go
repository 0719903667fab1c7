package logbuf

import (
	"fmt"
	"strings"
	"testing"
)

func texts(lines []Line) []string {
	var out []string
	for _, l := range lines {
		out = append(out, fmt.Sprintf("%s/%d:%s", l.App, l.Worker, l.Text))
	}
	return out
}

func TestTailOrdersAcrossWorkersAndFilters(t *testing.T) {
	s := New(0, 0, 0)
	s.Add("web", 1, "stdout", []byte("a"))
	s.Add("web", 2, "stderr", []byte("b"))
	s.Add("api", 3, "stdout", []byte("c"))
	s.Add("web", 1, "stdout", []byte("d"))
	for _, tc := range []struct {
		app    string
		worker int
		n      int
		want   string
	}{
		{"", 0, -1, "web/1:a web/2:b api/3:c web/1:d"},
		{"web", 0, -1, "web/1:a web/2:b web/1:d"},
		{"web", 1, -1, "web/1:a web/1:d"},
		{"web", 0, 2, "web/2:b web/1:d"},
		{"web", 0, 0, ""},
		{"nope", 0, -1, ""},
	} {
		got := strings.Join(texts(s.Tail(tc.app, tc.worker, tc.n)), " ")
		if got != tc.want {
			t.Errorf("Tail(%q, %d, %d) = %q, want %q", tc.app, tc.worker, tc.n, got, tc.want)
		}
	}
}

func TestBounds(t *testing.T) {
	s := New(3, 10, 2)
	for i := range 5 {
		s.Add("web", 1, "stdout", fmt.Appendf(nil, "%d", i))
	}
	if got := strings.Join(texts(s.Tail("web", 1, -1)), " "); got != "web/1:2 web/1:3 web/1:4" {
		t.Errorf("line bound: %q", got)
	}
	// Bytes: 10 per worker; a line larger than that is kept alone.
	s.Add("web", 1, "stdout", []byte("0123456789abc"))
	if got := strings.Join(texts(s.Tail("web", 1, -1)), " "); got != "web/1:0123456789abc" {
		t.Errorf("byte bound: %q", got)
	}
	// Workers: 2 rings; the least recently written goes.
	s.Add("web", 2, "stdout", []byte("x"))
	s.Add("web", 1, "stdout", []byte("y"))
	s.Add("web", 3, "stdout", []byte("z"))
	if got := strings.Join(texts(s.Tail("", 0, -1)), " "); got != "web/1:y web/3:z" {
		t.Errorf("worker bound: %q", got)
	}
}

func TestSubscribeFiltersAndCountsDrops(t *testing.T) {
	s := New(0, 0, 0)
	sub, err := s.Subscribe("web", 2)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	s.Add("web", 1, "stdout", []byte("not mine"))
	s.Add("web", 2, "stdout", []byte("mine"))
	<-sub.Ready()
	if ls, d := sub.Take(); len(ls) != 1 || ls[0].Text != "mine" || ls[0].Worker != 2 || d != 0 {
		t.Fatalf("got %+v, %d dropped", ls, d)
	}
	for range SubscriberBuffer + 5 {
		s.Add("web", 2, "stdout", []byte("x"))
	}
	if ls, d := sub.Take(); len(ls) != SubscriberBuffer || d != 5 {
		t.Errorf("took %d lines, %d dropped; want %d and 5", len(ls), d, SubscriberBuffer)
	}
	if ls, d := sub.Take(); len(ls) != 0 || d != 0 {
		t.Errorf("Take did not reset: %d lines, %d dropped", len(ls), d)
	}
	sub.Close()
	s.Add("web", 2, "stdout", []byte("after close")) // must not block or panic
	// Subscriptions are capped; closing one makes room.
	var subs []*Subscription
	for range MaxSubscribers {
		sub, err := s.Subscribe("", 0)
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, sub)
	}
	if _, err := s.Subscribe("", 0); err != ErrTooManySubscribers {
		t.Fatalf("subscription %d: %v, want ErrTooManySubscribers", MaxSubscribers+1, err)
	}
	subs[0].Close()
	if sub, err := s.Subscribe("", 0); err != nil {
		t.Fatalf("after a close: %v", err)
	} else {
		sub.Close()
	}
}
