// Package watch tells when the manifests at a set of paths may have changed,
// once the files have been quiet for a debounce interval and no writer has
// a changed file open.
//
// It watches directories, never file handles: editors and `git checkout`
// replace files by rename, Kubernetes ConfigMap volumes swap a `..data`
// symlink to a new directory, and files are written in several steps. Each
// path given is watched as a directory (a manifest directory) or through its
// parent directory (a manifest file), and the parent of every path is watched
// too, so a path that is deleted, re-created or re-pointed (a symlink swap)
// is seen. What changed is not decided here: the caller re-reads everything
// and compares.
//
// A writer that truncates a file and fills it later (`cmd > m.yaml`, `curl
// -o`) can be quiet for longer than the debounce with the file empty or
// half-written. So a change is reported only once no process has a changed
// file open for writing, as a file lease tells (see internal/lease); that
// is checked again every debounce interval, since a writer that closes the
// file without writing more makes no event. Under a continuous stream of
// events a change is reported at the latest MaxWait after the first one,
// still once no writer has the files open.
package watch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/paddock-sh/paddock/internal/lease"
)

// DefaultDebounce is how long the files must be quiet before a change is
// reported.
const DefaultDebounce = 200 * time.Millisecond

// MaxWaitFactor is the default MaxWait in debounce intervals.
const MaxWaitFactor = 10

// Watcher reports changes to manifest paths.
type Watcher struct {
	// Paths are manifest files or directories, as given to paddock run.
	Paths []string
	// Debounce is the quiet time before a change is reported, and how
	// often a file that a writer holds open is checked again. Zero means
	// DefaultDebounce.
	Debounce time.Duration
	// MaxWait bounds the wait under a continuous stream of events: a
	// change is reported at the latest MaxWait after the first event not
	// reported yet, once no writer has a changed file open. Zero means
	// MaxWaitFactor × Debounce.
	MaxWait time.Duration
	// Logger receives watch problems. Default: slog.Default().
	Logger *slog.Logger
	// Ready, when set, is called once the watches are in place: a change
	// made before then may have been missed, so a caller that read the
	// files earlier should read them again.
	Ready func()
}

// target is one path to watch, made absolute.
type target struct {
	path  string // absolute, as given (not resolved)
	isDir bool
}

// Run watches until ctx is done and calls changed, from Run's goroutine,
// each time the watched files settled after a change: quiet for Debounce
// (or MaxWait after the first unreported event) and open for writing by no
// process. It returns an error only when watching cannot start.
func (w *Watcher) Run(ctx context.Context, changed func()) error {
	r, err := w.start()
	if err != nil {
		return err
	}
	defer r.stop()
	if w.Ready != nil {
		w.Ready()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err, ok := <-r.fw.Errors:
			if !ok {
				return nil
			}
			// An overflowed queue lost events: re-read to be sure, and
			// check every manifest file for writers.
			r.logger.Warn("watching manifests", "err", err)
			r.timer.Reset(r.p.note("", time.Now()))
		case ev, ok := <-r.fw.Events:
			if !ok {
				return nil
			}
			r.event(ev)
		case <-r.timer.C:
			if r.due(time.Now()) {
				changed()
			}
		}
	}
}

// run is the state of one Run: the fsnotify watcher and the directories
// it watches, the change not reported yet, and the timer that reports it.
type run struct {
	logger            *slog.Logger
	debounce, maxWait time.Duration
	fw                *fsnotify.Watcher
	targets           []target
	// watched holds the directories watched now.
	watched map[string]bool
	p       pending
	writers writerCheck
	timer   *time.Timer
}

// start resolves the paths and watches the directories of w.Paths (each
// path's parent, and the path itself when it is a directory). It fails
// when no directory can be watched.
func (w *Watcher) start() (*run, error) {
	r := &run{logger: w.Logger, debounce: w.Debounce, maxWait: w.MaxWait, watched: map[string]bool{}}
	if r.logger == nil {
		r.logger = slog.Default()
	}
	if r.debounce <= 0 {
		r.debounce = DefaultDebounce
	}
	if r.maxWait <= 0 {
		r.maxWait = MaxWaitFactor * r.debounce
	}
	for _, p := range w.Paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("watch %s: %w", p, err)
		}
		fi, err := os.Stat(abs)
		r.targets = append(r.targets, target{path: abs, isDir: err == nil && fi.IsDir()})
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch manifests: %w", err)
	}
	r.fw = fw
	r.addAll()
	if len(r.watched) == 0 && len(r.targets) > 0 {
		fw.Close()
		return nil, errors.New("watch manifests: no directory could be watched")
	}
	r.writers = writerCheck{logger: r.logger, unknown: map[string]bool{}}
	r.reset()
	r.timer = time.NewTimer(time.Hour)
	r.timer.Stop()
	return r, nil
}

// stop releases what start took.
func (r *run) stop() {
	r.timer.Stop()
	r.fw.Close()
}

// reset forgets the change reported (and the writers seen for it).
func (r *run) reset() {
	r.p = pending{debounce: r.debounce, maxWait: r.maxWait, touched: map[string]bool{}}
	r.writers.reset()
}

// add watches dir, unless it is watched already; a directory that does
// not exist yet is tried again later (addAll).
func (r *run) add(dir string) {
	if r.watched[dir] {
		return
	}
	if err := r.fw.Add(dir); err != nil {
		r.logger.Debug("cannot watch directory yet", "dir", dir, "err", err)
		return
	}
	r.watched[dir] = true
}

// addAll watches every target's directory, and each target that is a
// directory.
func (r *run) addAll() {
	for _, t := range r.targets {
		r.add(filepath.Dir(t.path))
		if t.isDir {
			r.add(t.path)
		}
	}
}

// event notes an fsnotify event: a watched directory that went away loses
// its watch, a manifest directory (re)created or re-pointed is watched
// anew, and an event about a manifest starts or extends the pending change.
func (r *run) event(ev fsnotify.Event) {
	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		if r.watched[ev.Name] {
			_ = r.fw.Remove(ev.Name)
			delete(r.watched, ev.Name)
		}
	}
	if !relevant(r.targets, ev.Name) {
		return
	}
	for _, t := range r.targets {
		if t.path == ev.Name {
			if fi, err := os.Stat(t.path); err == nil && fi.IsDir() {
				delete(r.watched, t.path)
				_ = r.fw.Remove(t.path)
				r.add(t.path)
			}
		}
	}
	r.timer.Reset(r.p.note(ev.Name, time.Now()))
}

// due is called when the timer fires: it reports whether the pending
// change is to be reported now (quiet for the debounce, or waiting for
// maxWait, and no writer holds a changed file), and resets the state for
// the next change if so; otherwise it sets the timer for the next check.
func (r *run) due(now time.Time) bool {
	if !r.p.active {
		return false
	}
	if wait := r.p.due().Sub(now); wait > 0 {
		r.timer.Reset(wait)
		return false
	}
	r.addAll() // directories that were missing may exist now
	files := r.p.files()
	if r.p.all {
		files = manifestFiles(r.targets)
	}
	if busy := r.writers.busy(files, now, r.maxWait); busy != "" {
		// Checked again in a debounce interval: a writer that closes the
		// file without writing more makes no event.
		r.p.retryAt = now.Add(r.debounce)
		r.timer.Reset(r.debounce)
		return false
	}
	r.reset()
	return true
}

// pending is the change not reported yet: when its first and last events
// came, which files they named, and when to check again for writers.
type pending struct {
	debounce, maxWait time.Duration
	active            bool
	first, last       time.Time
	retryAt           time.Time
	touched           map[string]bool
	all               bool // events were lost: every file may have changed
}

// note records an event on name ("" when events were lost) at now and
// returns how long to wait before the change may be reported.
func (p *pending) note(name string, now time.Time) time.Duration {
	if !p.active {
		p.active, p.first = true, now
	}
	p.last = now
	if name == "" {
		p.all = true
	} else {
		p.touched[name] = true
	}
	return max(p.due().Sub(now), 0)
}

// due is when the change may be reported: a debounce interval after the
// last event, but no later than maxWait after the first, and not before the
// next check for writers.
func (p *pending) due() time.Time {
	due := p.last.Add(p.debounce)
	if bound := p.first.Add(p.maxWait); bound.Before(due) {
		due = bound
	}
	if p.retryAt.After(due) {
		due = p.retryAt
	}
	return due
}

// files returns the paths the events named, sorted.
func (p *pending) files() []string {
	out := make([]string, 0, len(p.touched))
	for f := range p.touched {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

// writerCheck tells whether a writer has one of the changed files open,
// and logs what it finds out once per change.
type writerCheck struct {
	logger *slog.Logger
	since  time.Time // the first check that found a writer, this change
	warned bool
	// unknown holds the files for which the kernel refused a lease, told
	// once each.
	unknown map[string]bool
}

// busy returns the first of files that a process has open for writing, or
// "". A file whose writers cannot be told (no lease) does not hold the
// change up: the reader's own checks (the settle time of a reload) are
// left to deal with it.
func (c *writerCheck) busy(files []string, now time.Time, maxWait time.Duration) string {
	for _, f := range files {
		err := lease.Check(f)
		var unavailable *lease.UnavailableError
		switch {
		case err == nil:
		case errors.Is(err, lease.ErrWriting):
			switch {
			case c.since.IsZero():
				c.since = now
				c.logger.Debug("a writer has a manifest file open; the change is reported once it closes it", "file", f)
			case !c.warned && now.Sub(c.since) >= maxWait:
				c.warned = true
				c.logger.Warn("a writer has held a manifest file open for long; its change is applied once it closes it", "file", f, "since", c.since.Format(time.RFC3339))
			}
			return f
		case errors.As(err, &unavailable):
			if !c.unknown[f] {
				c.unknown[f] = true
				c.logger.Debug("cannot tell whether a writer has a manifest file open; relying on the reload's settle time", "file", f, "err", err)
			}
		default:
			c.logger.Debug("cannot check a manifest file for writers", "file", f, "err", err)
		}
	}
	return ""
}

// reset forgets the writer found for the change just reported.
func (c *writerCheck) reset() {
	c.since, c.warned = time.Time{}, false
}

// manifestFiles lists the files the targets stand for now: each file target,
// and the *.yaml and *.yml files of each directory target.
func manifestFiles(targets []target) []string {
	var out []string
	for _, t := range targets {
		if !t.isDir {
			out = append(out, t.path)
			continue
		}
		entries, err := os.ReadDir(t.path)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if name := filepath.Join(t.path, e.Name()); relevant([]target{t}, name) && !strings.HasPrefix(e.Name(), "..") {
				out = append(out, name)
			}
		}
	}
	return out
}

// relevant reports whether an event on name may change the manifests:
// the manifest path itself, a YAML file in a manifest directory, or a
// Kubernetes volume's `..data` style entry beside either.
func relevant(targets []target, name string) bool {
	dir, base := filepath.Dir(name), filepath.Base(name)
	for _, t := range targets {
		switch {
		case name == t.path:
			return true
		case strings.HasPrefix(base, ".."):
			if dir == t.path || dir == filepath.Dir(t.path) {
				return true
			}
		case t.isDir && dir == t.path:
			if !strings.HasPrefix(base, ".") && (strings.HasSuffix(base, ".yaml") || strings.HasSuffix(base, ".yml")) {
				return true
			}
		}
	}
	return false
}
