package statuspage

import (
	"strconv"
	"sync"
	"time"

	"github.com/paddock-sh/paddock/internal/control"
)

// DefaultWindow is how far back the page's charts go: the history keeps
// this much of each app's and each worker's CPU and memory.
const DefaultWindow = 10 * time.Minute

// MaxSeries bounds the series the history keeps (one per app, one per
// worker): past it, the workers of a sample that have no series yet get
// none (their apps always do). With the default window and interval a
// series holds 121 points of 24 bytes, so the history stays under 12 MiB.
const MaxSeries = 4096

// Point is one reading of an app's (its workers summed) or a worker's
// resource use.
type Point struct {
	// T is when it was read, in Unix milliseconds.
	T int64 `json:"t"`
	// CPU is the share of one CPU used over the interval before T, in
	// percent; RSS the resident memory in bytes.
	CPU float64 `json:"cpu"`
	RSS int64   `json:"rss"`
}

// Sample is the points of one reading: by app name, and by worker as
// "app/id".
type Sample struct {
	T       int64            `json:"t"`
	Apps    map[string]Point `json:"apps"`
	Workers map[string]Point `json:"workers"`
}

// HistoryResponse is GET /api/history: the points kept, oldest first.
type HistoryResponse struct {
	// IntervalMS is the time between readings while the page has
	// viewers; WindowMS how far back points are kept.
	IntervalMS int64              `json:"intervalMs"`
	WindowMS   int64              `json:"windowMs"`
	Apps       map[string][]Point `json:"apps"`
	Workers    map[string][]Point `json:"workers"`
}

// series is a ring of the last points of one app or worker.
type series struct {
	pts   []Point // oldest first; len <= cap
	limit int
}

func (s *series) add(p Point) {
	if len(s.pts) < s.limit {
		s.pts = append(s.pts, p)
		return
	}
	copy(s.pts, s.pts[1:])
	s.pts[len(s.pts)-1] = p
}

// last returns the time of the newest point.
func (s *series) last() int64 { return s.pts[len(s.pts)-1].T }

// history keeps the last window of readings of every app and worker, with
// bounded memory: limit points per series, at most maxSeries series, and a
// series whose newest point left the window is dropped. Its methods are
// safe for concurrent use.
type history struct {
	window    time.Duration
	limit     int // points per series
	maxSeries int

	mu      sync.Mutex
	apps    map[string]*series
	workers map[string]*series
}

// newHistory returns an empty history of window at one reading per
// interval.
func newHistory(window, interval time.Duration) *history {
	return &history{window: window, limit: int(window/interval) + 1, maxSeries: MaxSeries,
		apps: map[string]*series{}, workers: map[string]*series{}}
}

// WorkerKey names a worker's series: "app/id".
func WorkerKey(app string, id int) string { return app + "/" + strconv.Itoa(id) }

// sampleOf returns the points of st read at now: each app and each worker
// whose resource use was read (a worker gone has none).
func sampleOf(st control.StatusResponse, now time.Time) Sample {
	smp := Sample{T: now.UnixMilli(), Apps: map[string]Point{}, Workers: map[string]Point{}}
	for _, a := range st.Apps {
		if a.CPUPercent != nil && a.RSSBytes != nil {
			smp.Apps[a.Name] = Point{T: smp.T, CPU: *a.CPUPercent, RSS: *a.RSSBytes}
		}
	}
	for _, w := range st.Workers {
		if w.PID != 0 && w.CPUPercent != nil && w.RSSBytes != nil {
			smp.Workers[WorkerKey(w.App, w.ID)] = Point{T: smp.T, CPU: *w.CPUPercent, RSS: *w.RSSBytes}
		}
	}
	return smp
}

// record adds the points of smp, then drops the series whose newest point
// is older than the window.
func (h *history) record(smp Sample) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for name, p := range smp.Apps {
		h.addLocked(h.apps, name, p, true)
	}
	for key, p := range smp.Workers {
		h.addLocked(h.workers, key, p, false)
	}
	oldest := smp.T - h.window.Milliseconds()
	for _, m := range []map[string]*series{h.apps, h.workers} {
		for k, s := range m {
			if s.last() < oldest {
				delete(m, k)
			}
		}
	}
}

// addLocked adds p to m's series key, creating it when there is room (an
// app's always).
func (h *history) addLocked(m map[string]*series, key string, p Point, always bool) {
	s := m[key]
	if s == nil {
		if !always && len(h.apps)+len(h.workers) >= h.maxSeries {
			return
		}
		s = &series{limit: h.limit}
		m[key] = s
	}
	s.add(p)
}

// snapshot returns a copy of the points kept.
func (h *history) snapshot(interval time.Duration) HistoryResponse {
	h.mu.Lock()
	defer h.mu.Unlock()
	resp := HistoryResponse{IntervalMS: interval.Milliseconds(), WindowMS: h.window.Milliseconds(),
		Apps: make(map[string][]Point, len(h.apps)), Workers: make(map[string][]Point, len(h.workers))}
	for k, s := range h.apps {
		resp.Apps[k] = append([]Point(nil), s.pts...)
	}
	for k, s := range h.workers {
		resp.Workers[k] = append([]Point(nil), s.pts...)
	}
	return resp
}

// len returns the number of series kept and of their points.
func (h *history) len() (n, points int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range []map[string]*series{h.apps, h.workers} {
		for _, s := range m {
			n++
			points += len(s.pts)
		}
	}
	return n, points
}
