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
	logger := w.Logger
	if logger == nil {
		logger = slog.Default()
	}
	debounce := w.Debounce
	if debounce <= 0 {
		debounce = DefaultDebounce
	}
	maxWait := w.MaxWait
	if maxWait <= 0 {
		maxWait = MaxWaitFactor * debounce
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch manifests: %w", err)
	}
	defer fw.Close()

	var targets []target
	for _, p := range w.Paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return fmt.Errorf("watch %s: %w", p, err)
		}
		fi, err := os.Stat(abs)
		targets = append(targets, target{path: abs, isDir: err == nil && fi.IsDir()})
	}
	// dirs maps each directory to watch to whether it must exist.
	watched := map[string]bool{}
	add := func(dir string) {
		if watched[dir] {
			return
		}
		if err := fw.Add(dir); err != nil {
			logger.Debug("cannot watch directory yet", "dir", dir, "err", err)
			return
		}
		watched[dir] = true
	}
	addAll := func() {
		for _, t := range targets {
			add(filepath.Dir(t.path))
			if t.isDir {
				add(t.path)
			}
		}
	}
	addAll()
	if len(watched) == 0 && len(targets) > 0 {
		return errors.New("watch manifests: no directory could be watched")
	}
	if w.Ready != nil {
		w.Ready()
	}

	p := pending{debounce: debounce, maxWait: maxWait, touched: map[string]bool{}}
	writers := writerCheck{logger: logger, unknown: map[string]bool{}}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err, ok := <-fw.Errors:
			if !ok {
				return nil
			}
			// An overflowed queue lost events: re-read to be sure, and
			// check every manifest file for writers.
			logger.Warn("watching manifests", "err", err)
			timer.Reset(p.note("", time.Now()))
		case ev, ok := <-fw.Events:
			if !ok {
				return nil
			}
			if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
				// A watched directory that goes away loses its watch.
				if watched[ev.Name] {
					_ = fw.Remove(ev.Name)
					delete(watched, ev.Name)
				}
			}
			if !relevant(targets, ev.Name) {
				continue
			}
			// A manifest directory that was (re)created or re-pointed is
			// watched anew.
			for _, t := range targets {
				if t.path == ev.Name {
					if fi, err := os.Stat(t.path); err == nil && fi.IsDir() {
						delete(watched, t.path)
						_ = fw.Remove(t.path)
						add(t.path)
					}
				}
			}
			timer.Reset(p.note(ev.Name, time.Now()))
		case <-timer.C:
			now := time.Now()
			if !p.active {
				continue
			}
			if wait := p.due().Sub(now); wait > 0 {
				timer.Reset(wait)
				continue
			}
			addAll() // directories that were missing may exist now
			files := p.files()
			if p.all {
				files = manifestFiles(targets)
			}
			if busy := writers.busy(files, now, maxWait); busy != "" {
				// Checked again in a debounce interval: a writer that
				// closes the file without writing more makes no event.
				p.retryAt = now.Add(debounce)
				timer.Reset(debounce)
				continue
			}
			p = pending{debounce: debounce, maxWait: maxWait, touched: map[string]bool{}}
			writers.reset()
			changed()
		}
	}
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
