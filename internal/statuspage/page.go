// Package statuspage is paddock's read-only status page: a page for the
// browser (apps, workers, CPU and memory charts, rollouts, live events) and
// the data it reads (GET /api/status, /api/history, and /api/events as
// Server-Sent Events), served on paddock run's --http-addr listener beside
// /metrics.
//
// Nothing it serves changes state: ReadOnly answers every method but GET
// and HEAD with 405. Its HTML, CSS and JavaScript are embedded in the
// binary and load nothing from elsewhere (a strict Content-Security-Policy
// says so to the browser), so the page works offline. It shows what the
// control API's status shows, less the workers' output lines, which stay
// behind the private control socket.
//
// The CPU and memory history behind the charts is kept here, read at the
// sampling interval only while the page has viewers or its data was asked
// for within a minute: nothing is read when nobody looks.
package statuspage

import (
	"context"
	"embed"
	"encoding/json"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/paddock-sh/paddock/internal/control"
	"github.com/paddock-sh/paddock/internal/fanout"
	"github.com/paddock-sh/paddock/internal/ondemand"
	"github.com/paddock-sh/paddock/internal/procstat"
	"github.com/paddock-sh/paddock/internal/supervisor"
)

//go:embed assets
var assets embed.FS

// DefaultHold is how long the history goes on being read after the last
// request for the page's data when no viewer follows its stream.
const DefaultHold = time.Minute

// MaxViewers bounds the page's live streams (GET /api/events) at once;
// more are answered 503. Each also takes one of the control API's event
// followers (control.MaxFollowers), so the page never takes them all.
const MaxViewers = 16

// Page serves the status page of one supervisor. Set the exported fields,
// then serve Handler (wrapped in ReadOnly) and run Run in a goroutine of
// its own for the charts' history.
type Page struct {
	// Status returns the supervisor's status as GET /v1/status answers
	// it (control.StatusFrom).
	Status func(ctx context.Context) (control.StatusResponse, error)
	// Events is the hub the supervisor publishes its events to.
	Events *control.Hub
	// Done closes when the supervisor stopped: the streams end then.
	Done <-chan struct{}
	// Interval is the time between readings of the history and between
	// the status updates of the stream. Zero means procstat.DefaultInterval,
	// the supervisor's own sampling interval.
	Interval time.Duration
	// Window is how far back the history goes. Zero means DefaultWindow.
	Window time.Duration
	// Hold is how long readings go on after the last request when nobody
	// follows the stream. Zero means DefaultHold.
	Hold   time.Duration
	Logger *slog.Logger

	once  sync.Once
	hist  *history
	ticks *fanout.Hub[tick]
	loop  ondemand.Loop

	mu    sync.Mutex
	asked time.Time
}

// tick is one reading of the history, handed to the streams.
type tick struct {
	read   time.Time // when reading the status began
	status control.StatusResponse
	sample Sample
}

func (p *Page) init() {
	p.once.Do(func() {
		if p.Interval <= 0 {
			p.Interval = procstat.DefaultInterval
		}
		if p.Window <= 0 {
			p.Window = DefaultWindow
		}
		if p.Hold <= 0 {
			p.Hold = DefaultHold
		}
		if p.Logger == nil {
			p.Logger = slog.Default()
		}
		p.hist = newHistory(p.Window, p.Interval)
		// A viewer's queue holds a few readings: one that falls behind
		// only loses old ones, and the next status replaces them anyway.
		p.ticks = fanout.New[tick](MaxViewers, 4)
	})
}

// Handler returns the page's routes on a mux of its own; Register adds
// them to another. Either way, wrap the result in ReadOnly.
func (p *Page) Handler() http.Handler {
	mux := http.NewServeMux()
	p.Register(mux)
	return mux
}

// Register adds the page's routes to mux: GET / (and its assets), GET
// /api/status, GET /api/history and GET /api/events. Each answers only
// requests whose Host names the machine itself (see hostGuard).
func (p *Page) Register(mux *http.ServeMux) {
	p.init()
	static, _ := fs.Sub(assets, "assets")
	files := http.FileServerFS(static)
	mux.Handle("GET /{$}", page(files))
	mux.Handle("GET /static/", page(http.StripPrefix("/static", files)))
	mux.Handle("GET /favicon.ico", page(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent) // no icon, and no 404 in the browser's console
	})))
	mux.Handle("GET /api/status", page(http.HandlerFunc(p.serveStatus)))
	mux.Handle("GET /api/history", page(http.HandlerFunc(p.serveHistory)))
	mux.Handle("GET /api/events", page(http.HandlerFunc(p.serveEvents)))
}

// Run reads the history every Interval while the page has viewers or was
// asked for within Hold, until ctx is done; otherwise it waits, reading
// nothing. Call it once, in a goroutine of its own.
func (p *Page) Run(ctx context.Context) {
	p.init()
	p.loop.Run(ctx, p.Interval, p.active, func() { p.sample(ctx) })
}

// active reports whether Run is to read now: a viewer follows the stream,
// or the page's data was asked for within Hold.
func (p *Page) active() bool {
	if p.ticks.Len() > 0 {
		return true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.asked.IsZero() && time.Since(p.asked) < p.Hold
}

// ask notes a request for the page's data and wakes Run.
func (p *Page) ask() {
	p.mu.Lock()
	p.asked = time.Now()
	p.mu.Unlock()
	p.poke()
}

func (p *Page) poke() { p.loop.Poke() }

// sample reads the status once, records its resource use and hands it to
// the streams.
func (p *Page) sample(ctx context.Context) {
	read := time.Now()
	st, err := p.status(ctx)
	if err != nil {
		p.Logger.Debug("status page: reading the status", "err", err)
		return
	}
	smp := sampleOf(st, time.Now())
	p.hist.record(smp)
	p.ticks.Publish(tick{read: read, status: st, sample: smp})
}

// status returns the status as the page shows it: the control API's,
// less the workers' output lines.
func (p *Page) status(ctx context.Context) (control.StatusResponse, error) {
	st, err := p.Status(ctx)
	if err != nil {
		return st, err
	}
	return redact(st), nil
}

// redact drops the workers' output lines from st: the page is served on
// TCP, which every local user can reach, while the lines stay behind the
// private control socket (paddock logs, paddock status --json).
func redact(st control.StatusResponse) control.StatusResponse {
	for i := range st.Apps {
		a := &st.Apps[i]
		a.LastExit = redactExit(a.LastExit)
		if a.Rollout != nil {
			ro := *a.Rollout
			ro.Lines, ro.LastExit = nil, redactExit(ro.LastExit)
			a.Rollout = &ro
		}
	}
	return st
}

func redactExit(e *control.ExitInfo) *control.ExitInfo {
	if e == nil {
		return nil
	}
	c := *e
	c.Lines = nil
	return &c
}

// redactEvent converts a supervisor event for the page, without output
// lines: neither the lines it carries nor those its detail quotes (a
// rollout-stalled event's "its last line").
func redactEvent(e supervisor.Event) control.Event {
	ce := control.FromEvent(e)
	ce.Lines, ce.LastExit = nil, redactExit(ce.LastExit)
	if st := e.Stall; st != nil {
		lines := st.Lines
		if st.Exit != nil {
			lines = append(lines[:len(lines):len(lines)], st.Exit.Lines...)
		}
		for _, l := range lines {
			ce.Detail = strings.ReplaceAll(ce.Detail, strconv.Quote(l), outputNotShown)
		}
	}
	return ce
}

// outputNotShown stands for an output line in an event's detail.
const outputNotShown = `"(output not shown here: paddock logs)"`

func (p *Page) serveStatus(w http.ResponseWriter, r *http.Request) {
	p.ask()
	st, err := p.status(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, st)
}

func (p *Page) serveHistory(w http.ResponseWriter, r *http.Request) {
	p.ask()
	writeJSON(w, p.hist.snapshot(p.Interval))
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}
