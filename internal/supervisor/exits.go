package supervisor

import (
	"fmt"
	"slices"
	"sync"
	"time"
	"unicode/utf8"
)

// This file holds what paddock keeps of each app's last exit: the exit
// itself and the last lines its worker wrote, read from the tail of the
// worker's output that every worker's copiers keep (see openOutput).

// ExitInfo is what paddock kept of a worker's last exit.
type ExitInfo struct {
	Worker, PID int
	Generation  string
	Code        int    // exit code; -1 when killed by a signal
	Signal      string // "SIGKILL", ... or ""
	At          time.Time
	Uptime      time.Duration
	Lines       []string // its last output lines, oldest first
}

// Bounds of a worker's output tail.
const (
	// TailLines is how many of a worker's last output lines are kept, its
	// stdout and stderr together.
	TailLines = 20
	// TailLineBytes is the longest line kept whole; a longer one is cut
	// (at a character boundary) and ends with "…".
	TailLineBytes = 512
)

// outputTail keeps the last TailLines lines a worker wrote, stdout and
// stderr interleaved in the order paddock read them, each at most
// TailLineBytes. The copiers of the worker's pipes add to it, from their
// goroutines; the owner reads it. Its memory is bounded whatever the
// worker writes.
type outputTail struct {
	mu    sync.Mutex
	lines [TailLines]string
	next  int // where the next line goes
	n     int // lines kept
	// open counts the worker's streams still being copied; poke is
	// poked (without blocking) when the last one ends, so that the owner
	// completes an exit record that was taken before every line was read.
	open int
	poke chan<- struct{}
}

// newOutputTail returns the tail of a worker with streams output streams
// being copied.
func newOutputTail(streams int, poke chan<- struct{}) *outputTail {
	return &outputTail{open: streams, poke: poke}
}

// add keeps line (without its newline), cut to TailLineBytes; line is
// copied.
func (t *outputTail) add(line []byte) {
	s := truncateLine(line)
	t.mu.Lock()
	t.lines[t.next] = s
	t.next = (t.next + 1) % TailLines
	t.n = min(t.n+1, TailLines)
	t.mu.Unlock()
}

// streamDone records that one of the worker's streams has been copied to
// its end.
func (t *outputTail) streamDone() {
	t.mu.Lock()
	t.open--
	last := t.open == 0
	t.mu.Unlock()
	if last && t.poke != nil {
		select {
		case t.poke <- struct{}{}:
		default:
		}
	}
}

// snapshot returns the lines kept, oldest first, and whether every stream
// was copied to its end (no line can follow).
func (t *outputTail) snapshot() ([]string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]string, 0, t.n)
	for i := range t.n {
		out = append(out, t.lines[(t.next-t.n+i+TailLines)%TailLines])
	}
	return out, t.open <= 0
}

// truncateLine returns line as a string, cut to TailLineBytes at a
// character boundary with "…" appended when it is longer.
func truncateLine(line []byte) string {
	if len(line) <= TailLineBytes {
		return string(line)
	}
	cut := TailLineBytes
	for cut > 0 && !utf8.RuneStart(line[cut]) {
		cut--
	}
	return string(line[:cut]) + "…"
}

// stallLinesWait bounds how long a stall waits to be reported for the last
// lines of the exited worker it is about (see owner.stallLinesPending).
const stallLinesWait = time.Second

// pendingTail is the tail of a worker whose exit was recorded while its
// output was still being copied, since the owner's time then.
type pendingTail struct {
	tail  *outputTail
	since time.Time
}

// recordExit keeps ex as app's last exit, with the lines w's tail holds
// now. If w's output is still being copied, the record is completed when
// it ends (refreshExits): the last lines a worker wrote may be read after
// its exit is reaped.
func (o *owner) recordExit(w *worker, ex ExitInfo) {
	ex.Worker, ex.PID, ex.Generation = w.ID, w.pid, w.Generation
	delete(o.exitTails, w.App)
	if ex.Lines == nil && w.tail != nil {
		lines, complete := w.tail.snapshot()
		ex.Lines = lines
		if !complete {
			o.exitTails[w.App] = pendingTail{tail: w.tail, since: o.clock.Now()}
		}
	}
	o.lastExit[w.App] = &ex
}

// stallLinesPending reports whether app's last exit, of a worker of the
// generation rolling out, still waits for lines in its pipes, and until
// when a stall report waits for them: the report is to carry the failing
// worker's last words, which are in its pipes before its exit is reaped but
// may be read after. It waits no longer than stallLinesWait (a process the
// worker left behind may hold its pipes open).
func (o *owner) stallLinesPending(app string, now time.Time) (time.Time, bool) {
	p, ok := o.exitTails[app]
	ex := o.lastExit[app]
	if !ok || ex == nil || ex.Generation != o.specs[app].Generation {
		return time.Time{}, false
	}
	until := p.since.Add(stallLinesWait)
	return until, now.Before(until)
}

// refreshExits completes the last exits whose worker's output was still
// being copied when they were recorded: their lines are read again, and
// those whose output is all read are left alone from then on. It returns
// the apps whose record changed.
func (o *owner) refreshExits() []string {
	var changed []string
	for app, p := range o.exitTails {
		ex := o.lastExit[app]
		if ex == nil {
			delete(o.exitTails, app)
			continue
		}
		lines, complete := p.tail.snapshot()
		if !slices.Equal(lines, ex.Lines) {
			// A new record: the old one may be shared with a status
			// snapshot or an event already handed out.
			next := *ex
			next.Lines = lines
			o.lastExit[app] = &next
			changed = append(changed, app)
		}
		if complete {
			delete(o.exitTails, app)
		}
	}
	return changed
}

// forgetExits drops the exit records of apps no longer in the running set.
func (o *owner) forgetExits() {
	for app := range o.lastExit {
		if o.set == nil || o.set.Apps[app] == nil {
			delete(o.lastExit, app)
			delete(o.exitTails, app)
		}
	}
}

// clone returns a copy of e that shares nothing with it; nil for nil.
func (e *ExitInfo) clone() *ExitInfo {
	if e == nil {
		return nil
	}
	c := *e
	c.Lines = append([]string(nil), e.Lines...)
	return &c
}

// describe says what happened to worker e.Worker of app in a phrase (see
// DescribeExit).
func (e *ExitInfo) describe(app string) string {
	return DescribeExit(app, e.Worker, e.PID, e.Code, e.Signal, e.Uptime)
}

// DescribeExit describes an exit of worker id of app in a phrase: "web/5
// (pid 4242) exited with code 1 after 210ms", "web/5 (pid 4242) was killed
// by SIGSEGV after 3s", "web/5 could not be started" (pid 0).
func DescribeExit(app string, id, pid, code int, signal string, uptime time.Duration) string {
	who := fmt.Sprintf("%s/%d", app, id)
	switch {
	case pid == 0:
		return who + " could not be started"
	case signal != "":
		return fmt.Sprintf("%s (pid %d) was killed by %s after %s", who, pid, signal, uptime.Round(time.Millisecond))
	}
	return fmt.Sprintf("%s (pid %d) exited with code %d after %s", who, pid, code, uptime.Round(time.Millisecond))
}
