package logfile

import (
	"os"
	"slices"
	"sync"

	"gopkg.in/natefinch/lumberjack.v2"
)

// item is what a file's queue holds: a formatted line of app, or a
// control that the writer runs in queue order (reopen, a new rotation,
// Tail's marker, close).
type item struct {
	app  string
	data []byte
	ctl  func(*writer)
}

// lineEnd is where a line of app ends in a batch.
type lineEnd struct {
	app string
	end int
}

// writer writes one file: the lines that enqueue queues, in order, from
// the goroutine run. Only that goroutine touches lj and buf.
type writer struct {
	set  *Set
	path string
	// rotation is the file's rotation as last configured (under Set.mu);
	// initial the one run starts with.
	rotation, initial Rotation

	lj      *lumberjack.Logger
	buf     []byte
	ends    []lineEnd
	exiting bool

	mu     sync.Mutex
	queue  []item
	lines  int // lines in queue
	bytes  int // their bytes
	closed bool
	apps   []string
	// dropped counts the lines dropped by app; total all of them;
	// dropping says lines are being dropped since total was since.
	dropped  map[string]int64
	total    int64
	dropping bool
	since    int64
	// wake is poked when queue is no longer empty.
	wake chan struct{}
}

func newWriter(s *Set, path string, rot Rotation) *writer {
	return &writer{set: s, path: path, rotation: rot, initial: rot, dropped: map[string]int64{}, wake: make(chan struct{}, 1)}
}

// setApps records the apps that write to the file.
func (w *writer) setApps(apps []string) {
	w.mu.Lock()
	w.apps = apps
	w.mu.Unlock()
}

func (w *writer) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// enqueue queues a line of app, or drops and counts it when the queue is
// full, then calls alongside, under the queue's lock. It returns false,
// having done nothing, when the writer is closed.
func (w *writer) enqueue(app string, data []byte, alongside func()) bool {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return false
	}
	began := false
	if w.lines >= w.set.opts.QueueLines || w.bytes+len(data) > w.set.opts.QueueBytes {
		began = w.dropLocked(app, 1)
	} else {
		w.queue = append(w.queue, item{app: app, data: data})
		w.lines++
		w.bytes += len(data)
	}
	if alongside != nil {
		alongside()
	}
	apps := w.apps
	w.mu.Unlock()
	if began {
		w.set.transition(Transition{Path: w.path, Apps: apps, Dropping: true,
			Reason: "the queue of lines to write is full: the file takes them slower than they come (a slow or blocked disk)"})
		return true
	}
	w.poke()
	return true
}

// dropLocked counts n lines of app as dropped, and reports whether
// dropping began with them.
func (w *writer) dropLocked(app string, n int64) bool {
	w.dropped[app] += n
	w.total += n
	if w.dropping {
		return false
	}
	w.dropping, w.since = true, w.total-n
	return true
}

// control queues f, to run in the writer's goroutine after the lines
// queued before it, whatever room the queue has.
func (w *writer) control(f func(*writer)) {
	w.mu.Lock()
	w.queue = append(w.queue, item{ctl: f})
	w.mu.Unlock()
	w.poke()
}

// close makes the writer take no more lines and end once those queued are
// written.
func (w *writer) close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		w.queue = append(w.queue, item{ctl: func(w *writer) { w.exiting = true }})
	}
	w.mu.Unlock()
	w.poke()
}

// run writes what comes in the queue until close, then closes the file
// and hands the drop counts to the Set.
func (w *writer) run() {
	w.lj = newLogger(w.path, w.initial)
	defer func() {
		_ = w.lj.Close()
		w.mu.Lock()
		dropped := w.dropped
		w.mu.Unlock()
		w.set.mu.Lock()
		for app, n := range dropped {
			w.set.retired[app] += n
		}
		w.set.mu.Unlock()
	}()
	// Create the file now, so that it is there (and a problem with it
	// known) before the first line.
	if _, err := w.lj.Write(nil); err != nil {
		w.set.opts.Logger.Warn("log file: cannot open it; lines are dropped and counted until it can be written", "file", w.path, "err", err)
	}
	for {
		<-w.wake
		w.mu.Lock()
		batch := w.queue
		w.queue, w.lines, w.bytes = nil, 0, 0
		w.mu.Unlock()
		if w.write(batch) {
			return
		}
	}
}

// write writes batch, gathering lines into writes of up to batchBytes and
// running the controls in their place. It returns true at close.
func (w *writer) write(batch []item) bool {
	for _, it := range batch {
		if it.ctl != nil {
			w.flush()
			it.ctl(w)
			if w.exiting {
				return true
			}
			continue
		}
		if len(w.buf) > 0 && len(w.buf)+len(it.data) > batchBytes {
			w.flush()
		}
		w.buf = append(w.buf, it.data...)
		w.ends = append(w.ends, lineEnd{it.app, len(w.buf)})
	}
	w.flush()
	return false
}

// flush writes the lines gathered. Lines not wholly written are dropped
// and counted.
func (w *writer) flush() {
	if len(w.buf) == 0 {
		return
	}
	n, err := w.lj.Write(w.buf)
	if err != nil {
		w.failed(n, err)
	} else {
		w.succeeded()
	}
	if cap(w.buf) > 4*batchBytes {
		w.buf = nil // a long line made it grow: let it go
	}
	w.buf, w.ends = w.buf[:0], w.ends[:0]
}

// failed counts the lines of the batch that end past n as dropped.
func (w *writer) failed(n int, err error) {
	w.mu.Lock()
	began := false
	for _, e := range w.ends {
		if e.end > n && w.dropLocked(e.app, 1) {
			began = true
		}
	}
	apps := w.apps
	w.mu.Unlock()
	if began {
		w.set.transition(Transition{Path: w.path, Apps: apps, Dropping: true, Reason: "writing failed: " + err.Error()})
	}
}

// succeeded ends a dropping episode: the file takes lines again.
func (w *writer) succeeded() {
	w.mu.Lock()
	if !w.dropping {
		w.mu.Unlock()
		return
	}
	w.dropping = false
	lost := w.total - w.since
	apps := slices.Clone(w.apps)
	w.mu.Unlock()
	w.set.transition(Transition{Path: w.path, Apps: apps, Lost: lost})
}

// reopen closes the file and opens it again by its name, creating it.
func (w *writer) reopen() error {
	if err := w.lj.Close(); err != nil {
		w.set.opts.Logger.Warn("log file: closing it to reopen", "file", w.path, "err", err)
	}
	_, err := w.lj.Write(nil)
	return err
}

// rotate goes on with rot. lumberjack reads its settings unlocked from a
// goroutine of its own, so a new logger takes them.
func (w *writer) rotate(rot Rotation) {
	_ = w.lj.Close()
	w.lj = newLogger(w.path, rot)
}

// openRegular opens path for reading without blocking (a FIFO) and
// returns it only when it is a regular file.
func openRegular(path string) (*os.File, int64, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscallNonblock, 0)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		f.Close()
		if err == nil {
			err = errNotRegular
		}
		return nil, 0, err
	}
	return f, st.Size(), nil
}
