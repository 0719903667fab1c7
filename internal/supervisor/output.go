package supervisor

import (
	"bytes"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/paddock-sh/paddock/procs"
)

// This file holds where the output of the workers goes: paddock's own
// stdout and stderr, which may break at any time (the reader of a pipe went
// away, a log shipper restarts, a disk is full), and the goroutines that
// copy each worker's pipes there.

// outputStream is paddock's stdout or stderr as the copiers of the
// workers' output write to it: one Write per line. A line is queued, and a
// goroutine of the stream's own writes the queue out, so that a reader of
// paddock's output that stops reading (a stalled pipe) never holds up a
// copier, hence never a worker writing to its pipe. A line that cannot be
// written (the queue is full, or the write failed) is lost: it is counted,
// and the goroutine that owns the supervisor's state is poked when writing
// starts or stops failing, so that it reports it. A broken or stalled
// stream never stops anything else.
type outputStream struct {
	name  string // "stdout" or "stderr"
	w     io.Writer
	queue chan []byte
	// idle is signalled (without blocking) each time pending drops to
	// 0: flush waits on it.
	idle chan struct{}
	mu   sync.Mutex
	// pending counts the lines queued and not yet written.
	pending int
	// quit ends the writer (stop), once it is idle.
	quit     chan struct{}
	quitOnce sync.Once
	// failing says the last line was lost; lastErr is why.
	failing bool
	lastErr error
	// lost counts every line lost since the supervisor started.
	lost atomic.Int64
	// changed is poked (without blocking) when failing flips.
	changed chan<- struct{}
}

// outputQueue is how many lines wait for a slow reader of paddock's
// output before the next is lost.
const outputQueue = 4096

// errOutputStalled is why a line is lost when the queue is full.
var errOutputStalled = errors.New("the reader does not keep up: the queue is full")

func newOutputStream(name string, w io.Writer, changed chan<- struct{}) *outputStream {
	o := &outputStream{name: name, w: w, changed: changed,
		queue: make(chan []byte, outputQueue), idle: make(chan struct{}, 1), quit: make(chan struct{})}
	return o
}

// Write queues one line. It never blocks and never returns an error: a
// line that cannot be queued is counted as lost instead.
func (o *outputStream) Write(p []byte) (int, error) {
	o.mu.Lock()
	o.pending++
	o.mu.Unlock()
	select {
	case o.queue <- bytes.Clone(p):
	default:
		o.done()
		o.result(errOutputStalled)
	}
	return len(p), nil
}

// write writes the queued lines out, until stop (Run starts it, and
// stops it as it returns, once the queue was flushed). A writer blocked
// for ever by a reader that never reads again stays, as the process's
// own stdout would.
func (o *outputStream) write() {
	for {
		select {
		case line := <-o.queue:
			_, err := o.w.Write(line)
			o.result(err)
			o.done()
		case <-o.quit:
			return
		}
	}
}

// stop ends the writer once it is idle.
func (o *outputStream) stop() { o.quitOnce.Do(func() { close(o.quit) }) }

// done counts one queued line as handled, and signals idle when none is
// left.
func (o *outputStream) done() {
	o.mu.Lock()
	o.pending--
	idle := o.pending == 0
	o.mu.Unlock()
	if idle {
		select {
		case o.idle <- struct{}{}:
		default:
		}
	}
}

// result records the outcome of one line: err nil, it was written.
func (o *outputStream) result(err error) {
	o.mu.Lock()
	flipped := (err != nil) != o.failing
	o.failing = err != nil
	if err != nil {
		o.lastErr = err
		o.lost.Add(1)
	}
	o.mu.Unlock()
	if flipped {
		select {
		case o.changed <- struct{}{}:
		default:
		}
	}
}

// flush waits until the queued lines were written, or timeout passed (a
// reader that stopped reading keeps them).
func (o *outputStream) flush(timeout time.Duration) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		o.mu.Lock()
		pending := o.pending
		o.mu.Unlock()
		if pending == 0 {
			return
		}
		select {
		case <-o.idle:
		case <-t.C:
			return
		}
	}
}

// state returns whether writes fail now, the last error and the lines lost
// so far.
func (o *outputStream) state() (failing bool, lastErr error, lost int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.failing, o.lastErr, o.lost.Load()
}

// outputReport is what the owner loop last reported of a stream.
type outputReport struct {
	failing bool
	lost    int64 // lines lost when the episode started
}

// reportOutput emits output-lost when a stream starts failing and
// output-restored, with the count of lines lost meanwhile, when it works
// again.
func (o *owner) reportOutput() {
	for _, out := range []*outputStream{o.sup.stdout, o.sup.stderr} {
		failing, err, lost := out.state()
		prev := o.outputReports[out.name]
		if failing == prev.failing {
			continue
		}
		if failing {
			o.outputReports[out.name] = outputReport{failing: true, lost: lost - 1}
			o.emit(Event{Type: EventOutputLost, Stream: out.name,
				Detail: "writing to paddock's " + out.name + " failed (" + err.Error() + "): workers' lines are dropped and counted until it works again"})
			continue
		}
		o.outputReports[out.name] = outputReport{}
		o.emit(Event{Type: EventOutputRestored, Stream: out.name, Lost: lost - prev.lost,
			Detail: "writing to paddock's " + out.name + " works again"})
	}
}

// outputCopiers runs the goroutines that copy the workers' output, and
// forgets each once its pipe is closed, so that restarts do not pile them
// up.
type outputCopiers struct {
	mu      sync.Mutex
	running map[*procs.LinePrefixer]struct{}
	wg      sync.WaitGroup
}

// start runs lp until every writer closed its pipe (or drain closes it),
// then calls done.
func (c *outputCopiers) start(lp *procs.LinePrefixer, done func()) {
	c.mu.Lock()
	if c.running == nil {
		c.running = map[*procs.LinePrefixer]struct{}{}
	}
	c.running[lp] = struct{}{}
	c.mu.Unlock()
	c.wg.Go(func() {
		lp.Run()
		c.mu.Lock()
		delete(c.running, lp)
		c.mu.Unlock()
		done()
	})
}

// len returns how many copiers are running.
func (c *outputCopiers) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.running)
}

// drain waits up to timeout for the copiers to finish on their own (the
// workers are gone; their output is still being copied), then closes the
// pipes that are still open (a detached grandchild may hold one for ever)
// and waits for the copiers to end.
func (c *outputCopiers) drain(timeout time.Duration) {
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
		return
	case <-t.C:
	}
	c.mu.Lock()
	for lp := range c.running {
		lp.Close()
	}
	c.mu.Unlock()
	<-done
}
