// Package logfile writes the workers' output to files on disk, rotated by
// gopkg.in/natefinch/lumberjack.v2, without ever making the writer of a
// line wait: each file has a bounded queue, drained by a goroutine of its
// own; a line that finds the queue full (a slow or blocked disk), or whose
// write fails (a full disk), is dropped and counted, and writing resumes
// by itself once the file takes lines again.
//
// A Set holds the files of a supervisor: which file each app's stdout and
// stderr go to (Configure, applied live), the files' writers, their drop
// counts and transitions (Transitions), reopening for an external
// logrotate (Reopen), and reading the lines back (Tail).
package logfile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"gopkg.in/natefinch/lumberjack.v2"
)

// Formats of a line in a file.
const (
	// FormatText writes "app/worker | line", as a silent app's line on
	// paddock's stdout.
	FormatText = "text"
	// FormatJSON writes one JSON object per line: {"time", "app",
	// "worker", "pid", "stream", "line"}.
	FormatJSON = "json"
)

// Default bounds of a file's queue.
const (
	DefaultQueueLines = 8192
	DefaultQueueBytes = 4 << 20
	// batchBytes is how much the writer gathers into one write.
	batchBytes = 64 << 10
	// maxTransitions bounds the transitions kept for Transitions.
	maxTransitions = 1024
)

// Options configure a Set. The zero value is usable.
type Options struct {
	// Format is FormatText (the default) or FormatJSON.
	Format string
	// QueueLines and QueueBytes bound each file's queue of lines not
	// written yet; beyond, lines are dropped. Zero: the defaults.
	QueueLines, QueueBytes int
	// OnChange, when set, is called when Transitions has something new
	// to say. It must not block; it may be called from any goroutine.
	OnChange func()
	// Logger receives what paddock could not do (open a file, read one
	// back). Default: slog.Default().
	Logger *slog.Logger
}

// Rotation is how a file is rotated: lumberjack's settings.
type Rotation struct {
	// MaxSize is the size in bytes past which the file is rotated; a
	// whole number of MiB (lumberjack's unit), at least 1 MiB.
	MaxSize int64
	// MaxFiles is how many rotated files are kept; 0 keeps all.
	MaxFiles int
	// Compress gzips the rotated files.
	Compress bool
}

// App is where one app's output goes: the file of its stdout and the
// file of its stderr (the same one when merged), rotated by Rotation; the
// zero App, no file.
type App struct {
	Stdout, Stderr string
	Rotation       Rotation
}

// Line is one line of a worker's output, as written and as read back.
type Line struct {
	Time   time.Time
	App    string
	Worker int
	PID    int
	Stream string // "stdout", "stderr", or "" when the file does not say
	Text   string
}

// jsonLine is a line of FormatJSON.
type jsonLine struct {
	Time   time.Time `json:"time"`
	App    string    `json:"app"`
	Worker int       `json:"worker"`
	PID    int       `json:"pid"`
	Stream string    `json:"stream"`
	Line   string    `json:"line"`
}

// Transition is a file that started dropping lines, or resumed writing.
type Transition struct {
	Path string
	// Apps are the apps whose output the file receives.
	Apps []string
	// Dropping: lines are dropped from now on (Reason says why);
	// otherwise writing works again and Lost lines were dropped
	// meanwhile.
	Dropping bool
	Reason   string
	Lost     int64
}

// route is where one app's lines go.
type route struct {
	out, err *writer
}

// Set holds the log files of a supervisor. Create it with New; call
// Close once no more lines come.
type Set struct {
	opts Options
	// routes maps an app to its writers; replaced whole by Configure,
	// read without a lock by Write.
	routes atomic.Pointer[map[string]route]

	mu      sync.Mutex
	writers map[string]*writer // by path
	apps    map[string]App     // as last configured
	// retired holds the drop counts of writers closed since, by app.
	retired     map[string]int64
	transitions []Transition
	closed      bool
	wg          sync.WaitGroup
}

// New returns an empty Set: no app writes a file until Configure.
func New(opts Options) *Set {
	if opts.Format == "" {
		opts.Format = FormatText
	}
	if opts.QueueLines <= 0 {
		opts.QueueLines = DefaultQueueLines
	}
	if opts.QueueBytes <= 0 {
		opts.QueueBytes = DefaultQueueBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Set{opts: opts, writers: map[string]*writer{}, apps: map[string]App{}, retired: map[string]int64{}}
	s.routes.Store(&map[string]route{})
	return s
}

// ValidFormat reports whether f is a format of New.
func ValidFormat(f string) bool { return f == FormatText || f == FormatJSON }

// Configure makes apps the files the apps write to, from the next line
// on: a file no app names any more is closed once its queue is written,
// a new one is opened (and created) by its writer, a file whose rotation
// changed goes on with the new one. An app left out writes no file. It
// does not block on a file.
func (s *Set) Configure(apps map[string]App) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	want := map[string]Rotation{}
	users := map[string][]string{}
	for name, a := range apps {
		for _, p := range []string{a.Stdout, a.Stderr} {
			if p == "" {
				continue
			}
			want[p] = a.Rotation
			if !slices.Contains(users[p], name) {
				users[p] = append(users[p], name)
			}
		}
	}
	for p, rot := range want {
		w := s.writers[p]
		if w == nil {
			w = newWriter(s, p, rot)
			s.writers[p] = w
			s.wg.Go(w.run)
		} else if w.rotation != rot {
			w.control(func(w *writer) { w.rotate(rot) })
			w.rotation = rot
		}
		sort.Strings(users[p])
		w.setApps(users[p])
	}
	routes := map[string]route{}
	for name, a := range apps {
		routes[name] = route{out: s.writers[a.Stdout], err: s.writers[a.Stderr]}
	}
	s.routes.Store(&routes)
	s.apps = apps
	// Lines on their way to a removed file find it closed and look
	// again (Write).
	for p, w := range s.writers {
		if _, ok := want[p]; !ok {
			w.close()
			delete(s.writers, p)
		}
	}
}

// Has reports whether app writes to files; for app "", whether every app
// configured does (Configure lists the apps without files too, as zero
// Apps).
func (s *Set) Has(app string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if app != "" {
		return s.apps[app].Stdout != ""
	}
	for _, a := range s.apps {
		if a.Stdout == "" {
			return false
		}
	}
	return len(s.apps) > 0
}

// Write queues l for the file of its app and stream, formatted, and calls
// alongside (when not nil) while no Tail can place its marker: a line
// that alongside also keeps elsewhere (the in-memory ring) is in a file
// read by Tail exactly when it was kept before Tail's atMarker ran. It
// never blocks on the file: a line that does not fit in the queue is
// dropped and counted. A line of an app without a file is only given to
// alongside.
func (s *Set) Write(l Line, alongside func()) {
	for range 2 {
		r := (*s.routes.Load())[l.App]
		w := r.out
		if l.Stream == "stderr" {
			w = r.err
		}
		if w == nil {
			break
		}
		if l.Time.IsZero() {
			l.Time = time.Now()
		}
		if w.enqueue(l.App, s.format(l), alongside) {
			return
		}
		// The file was closed by Configure since routes was read: the
		// new routes say where the line goes now.
	}
	if alongside != nil {
		alongside()
	}
}

// format returns l as a line of the Set's format, with its newline.
func (s *Set) format(l Line) []byte {
	if s.opts.Format == FormatJSON {
		b, err := json.Marshal(jsonLine{Time: l.Time, App: l.App, Worker: l.Worker, PID: l.PID, Stream: l.Stream, Line: l.Text})
		if err == nil {
			return append(b, '\n')
		}
	}
	b := make([]byte, 0, len(l.App)+len(l.Text)+12)
	b = append(b, l.App...)
	b = append(b, '/')
	b = strconv.AppendInt(b, int64(l.Worker), 10)
	b = append(b, " | "...)
	b = append(b, l.Text...)
	return append(b, '\n')
}

// Dropped returns the lines dropped so far, by app, files closed since
// included.
func (s *Set) Dropped() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int64, len(s.retired))
	for app, n := range s.retired {
		out[app] += n
	}
	for _, w := range s.writers {
		w.mu.Lock()
		for app, n := range w.dropped {
			out[app] += n
		}
		w.mu.Unlock()
	}
	return out
}

// Files returns the paths of the files written now, sorted.
func (s *Set) Files() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.writers))
	for p := range s.writers {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// Transitions returns, oldest first, the files that started dropping
// lines or resumed writing since the last call.
func (s *Set) Transitions() []Transition {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.transitions
	s.transitions = nil
	return out
}

// transition records t and says so.
func (s *Set) transition(t Transition) {
	s.mu.Lock()
	if len(s.transitions) >= maxTransitions {
		s.transitions = s.transitions[1:]
	}
	s.transitions = append(s.transitions, t)
	s.mu.Unlock()
	if s.opts.OnChange != nil {
		s.opts.OnChange()
	}
}

// ErrClosed is returned by Reopen and Tail once the Set is closed.
var ErrClosed = errors.New("the log files are closed")

// Reopen closes every file and opens it again by its name, creating it
// when it is not there (an external logrotate renamed it): every line
// queued before the call goes to the file as it was, every line after to
// the file as it is now. It waits, until ctx is done, for every writer to
// have done so, and returns the files reopened; the error names those
// that could not be reopened, or did not answer (a write blocked).
func (s *Set) Reopen(ctx context.Context) ([]string, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	type pending struct {
		path string
		done chan error
	}
	var waits []pending
	for p, w := range s.writers {
		done := make(chan error, 1)
		w.control(func(w *writer) { done <- w.reopen() })
		waits = append(waits, pending{p, done})
	}
	s.mu.Unlock()
	sort.Slice(waits, func(i, j int) bool { return waits[i].path < waits[j].path })
	var files []string
	var errs []error
	for _, p := range waits {
		select {
		case err := <-p.done:
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", p.path, err))
				continue
			}
			files = append(files, p.path)
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("%s: not reopened yet (a write to it is blocked): %w", p.path, ctx.Err()))
		}
	}
	return files, errors.Join(errs...)
}

// Close stops taking lines, waits up to timeout for every queue to be
// written and the files closed, and returns. A writer blocked in a write
// (a FIFO nobody reads, a filesystem that does not answer) is left
// behind then: it ends when its write returns.
func (s *Set) Close(timeout time.Duration) {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		s.routes.Store(&map[string]route{})
		for _, w := range s.writers {
			w.close()
		}
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		s.opts.Logger.Warn("log files: a writer is still blocked in a write; its queued lines are lost", "files", s.Files())
	}
}

// newLogger returns the lumberjack logger of path rotated by rot.
func newLogger(path string, rot Rotation) *lumberjack.Logger {
	return &lumberjack.Logger{Filename: path, MaxSize: int(rot.MaxSize >> 20), MaxBackups: rot.MaxFiles, Compress: rot.Compress}
}
