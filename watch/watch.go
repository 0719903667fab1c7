// Package watch tells when the manifests at a set of paths may have changed,
// once the files have been quiet for a debounce interval.
//
// It watches directories, never file handles: editors and `git checkout`
// replace files by rename, Kubernetes ConfigMap volumes swap a `..data`
// symlink to a new directory, and files are written in several steps. Each
// path given is watched as a directory (a manifest directory) or through its
// parent directory (a manifest file), and the parent of every path is watched
// too, so a path that is deleted, re-created or re-pointed (a symlink swap)
// is seen. What changed is not decided here: the caller re-reads everything
// and compares.
package watch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultDebounce is how long the files must be quiet before a change is
// reported.
const DefaultDebounce = 200 * time.Millisecond

// Watcher reports changes to manifest paths.
type Watcher struct {
	// Paths are manifest files or directories, as given to paddock run.
	Paths []string
	// Debounce is the quiet time before a change is reported. Zero means
	// DefaultDebounce.
	Debounce time.Duration
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
// each time the watched files settled after a change. It returns an error
// only when watching cannot start.
func (w *Watcher) Run(ctx context.Context, changed func()) error {
	logger := w.Logger
	if logger == nil {
		logger = slog.Default()
	}
	debounce := w.Debounce
	if debounce <= 0 {
		debounce = DefaultDebounce
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
			// An overflowed queue lost events: re-read to be sure.
			logger.Warn("watching manifests", "err", err)
			timer.Reset(debounce)
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
			timer.Reset(debounce)
		case <-timer.C:
			addAll() // directories that were missing may exist now
			changed()
		}
	}
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
