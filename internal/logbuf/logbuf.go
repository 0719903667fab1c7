// Package logbuf keeps the recent output of the workers in memory, a
// bounded ring per worker, for `paddock logs`: the last lines of each
// worker, and the lines that follow for those who subscribe.
//
// Memory is bounded three ways: lines per worker, bytes per worker, and the
// number of workers kept (the rings written to least recently go first, so
// the output of a worker that crashed stays readable while its replacement
// runs).
package logbuf

import (
	"sort"
	"sync"
	"time"

	"github.com/paddock-sh/paddock/internal/fanout"
)

// Default bounds.
const (
	DefaultLines   = 1000
	DefaultBytes   = 256 << 10
	DefaultWorkers = 256
	// MaxSubscribers is how many subscriptions may be open at once.
	MaxSubscribers = 64
	// SubscriberBuffer is how many lines a subscriber may fall behind
	// before lines are dropped for it (and counted).
	SubscriberBuffer = 1024
)

// Line is one line of a worker's output.
type Line struct {
	// Seq orders lines across workers; it grows by one per line stored.
	Seq    uint64
	Time   time.Time
	App    string
	Worker int
	Stream string // "stdout" or "stderr"
	Text   string
}

type key struct {
	app    string
	worker int
}

type ring struct {
	lines   []Line // oldest first
	bytes   int
	touched uint64 // Seq of the last line
}

// Store holds the rings. The zero value is not usable: call New.
type Store struct {
	maxLines, maxBytes, maxWorkers int

	mu    sync.Mutex
	seq   uint64
	rings map[key]*ring
	// subs has the subscribers; Add publishes to it under mu, so that a
	// line reaches subscribers in Seq order.
	subs *fanout.Hub[Line]
}

// New returns a Store with the given bounds; zero or negative values take
// the defaults.
func New(linesPerWorker, bytesPerWorker, workers int) *Store {
	if linesPerWorker <= 0 {
		linesPerWorker = DefaultLines
	}
	if bytesPerWorker <= 0 {
		bytesPerWorker = DefaultBytes
	}
	if workers <= 0 {
		workers = DefaultWorkers
	}
	return &Store{maxLines: linesPerWorker, maxBytes: bytesPerWorker, maxWorkers: workers,
		rings: map[key]*ring{}, subs: fanout.New[Line](MaxSubscribers, SubscriberBuffer)}
}

// Add stores a line written by worker of app; text is copied. It never
// blocks: a subscriber that fell behind loses the line (see Take).
func (s *Store) Add(app string, worker int, stream string, text []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	l := Line{Seq: s.seq, Time: time.Now(), App: app, Worker: worker, Stream: stream, Text: string(text)}
	k := key{app, worker}
	r := s.rings[k]
	if r == nil {
		if len(s.rings) >= s.maxWorkers {
			s.evictLocked()
		}
		r = &ring{}
		s.rings[k] = r
	}
	r.lines = append(r.lines, l)
	r.bytes += len(l.Text)
	r.touched = l.Seq
	drop := 0
	for len(r.lines)-drop > s.maxLines || (r.bytes > s.maxBytes && len(r.lines)-drop > 1) {
		r.bytes -= len(r.lines[drop].Text)
		drop++
	}
	if drop > 0 {
		// Shift rather than reslice, so the array does not grow forever.
		n := copy(r.lines, r.lines[drop:])
		clear(r.lines[n:])
		r.lines = r.lines[:n]
	}
	s.subs.Publish(l)
}

// LastSeq returns the Seq of the last line stored (0 before the first).
func (s *Store) LastSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seq
}

// evictLocked forgets the ring written to least recently.
func (s *Store) evictLocked() {
	var oldest key
	first := true
	var touched uint64
	for k, r := range s.rings {
		if first || r.touched < touched {
			oldest, touched, first = k, r.touched, false
		}
	}
	delete(s.rings, oldest)
}

// Tail returns the last n lines of app's workers (all apps when app is "",
// every worker of the app when worker is 0), oldest first.
func (s *Store) Tail(app string, worker, n int) []Line {
	s.mu.Lock()
	var out []Line
	for k, r := range s.rings {
		if (app == "" || k.app == app) && (worker == 0 || k.worker == worker) {
			out = append(out, r.lines...)
		}
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	if n >= 0 && len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}

// Subscription receives the lines stored after Subscribe.
type Subscription struct {
	f *fanout.Follower[Line]
}

// ErrTooManySubscribers is returned by Subscribe when MaxSubscribers are
// open.
var ErrTooManySubscribers = fanout.ErrTooManyFollowers

// Subscribe returns a subscription to the lines of app (all when "") and
// worker (all when 0) stored from now on, or ErrTooManySubscribers. Close
// it when done.
func (s *Store) Subscribe(app string, worker int) (*Subscription, error) {
	f, err := s.subs.Follow(func(l Line) bool {
		return (app == "" || l.App == app) && (worker == 0 || l.Worker == worker)
	})
	if err != nil {
		return nil, err
	}
	return &Subscription{f: f}, nil
}

// Ready receives a value when lines may be waiting: call Take then.
func (sub *Subscription) Ready() <-chan struct{} { return sub.f.Ready() }

// Take returns the lines waiting, oldest first, and how many were lost
// since the last Take because the subscriber fell SubscriberBuffer lines
// behind.
func (sub *Subscription) Take() (lines []Line, dropped int) { return sub.f.Take() }

// Close ends the subscription.
func (sub *Subscription) Close() { sub.f.Leave() }
