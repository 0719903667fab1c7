package supervisor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/paddock-sh/paddock/internal/ipc"
	"github.com/paddock-sh/paddock/internal/nodeipc"
	"github.com/paddock-sh/paddock/reconcile"
)

// This file is a worker's cluster IPC channel as the owner sees it: the
// connections handed to the worker and not yet answered, the goroutine
// that runs the channel, and the faults of the worker's end that close it
// and stop the worker.

// channel is a worker's cluster IPC state, shared between the state-owning
// goroutine and the dispatchers that hand it connections.
type channel struct {
	worker int
	ch     *ipc.Channel
	seq    atomic.Int64
	mu     sync.Mutex
	// pending holds the connections sent and not yet answered, by seq.
	pending map[int]pendingConn
	// handedOut counts the connections handed to the worker.
	handedOut atomic.Int64
}

// pendingConn is a connection handed to a worker and not yet answered,
// with the dispatcher that handed it and the worker's place in its free
// list (the worker is free again once it answers); a health probe's has
// no dispatcher (it is never offered to another worker) and is told the
// worker's answer (onAnswer, when set).
type pendingConn struct {
	conn     acceptedConn
	disp     *dispatcher
	slot     *slot
	onAnswer func(accepted bool)
}

// giveBack takes the worker's answer to pc's connection: accepted, or
// refused (also: returned unanswered by a worker that went away), which
// offers it to another worker of its dispatcher. A probe's connection is
// closed either way.
func (pc pendingConn) giveBack(accepted bool) {
	if pc.disp == nil {
		pc.conn.Close()
		return
	}
	pc.disp.answered(pc.slot, pc.conn, accepted)
}

// closed reports whether the worker's channel is closed.
func (c *channel) closed() bool {
	select {
	case <-c.ch.Closed():
		return true
	default:
		return false
	}
}

// nextSeq returns the seq of the next cluster message to the worker.
func (c *channel) nextSeq() int { return int(c.seq.Add(1) - 1) }

// interceptAnswer takes a worker's answer to a newconn in the channel's
// reading goroutine, without a trip through the state-owning goroutine:
// accepted, the connection is the worker's and paddock's copy is closed;
// refused, it is offered to another worker.
func (c *channel) interceptAnswer(m ipc.Message) bool {
	if m.Cmd != "NODE_CLUSTER" || m.Handle != nil {
		return false
	}
	ack, accepted, ok := parseAnswer(m.Raw)
	if !ok {
		return false
	}
	c.answered(ack, accepted)
	return true
}

// parseAnswer reads a NODE_CLUSTER message that answers a newconn,
// {"cmd":"NODE_CLUSTER","ack":12,"accepted":true,"seq":7}: an "ack" that
// is an integer and an "accepted" that is a boolean, and no "act". ok is
// false for any other message. The flat objects workers write are read
// without encoding/json.
func parseAnswer(raw []byte) (ack int, accepted, ok bool) {
	if !bytes.Contains(raw, []byte(`"accepted"`)) {
		return 0, false, false
	}
	var hasAck, hasAccepted, hasAct, bad bool
	flat := nodeipc.ScanFlat(raw, func(key, value []byte) bool {
		switch string(key) {
		case "ack":
			n, isInt := nodeipc.ParseInt(value)
			ack, hasAck, bad = int(n), isInt, bad || !isInt
		case "accepted":
			switch string(value) {
			case "true":
				accepted, hasAccepted = true, true
			case "false":
				accepted, hasAccepted = false, true
			default:
				bad = true
			}
		case "act":
			hasAct = true
		}
		return true
	})
	if flat {
		return ack, accepted, hasAck && hasAccepted && !hasAct && !bad
	}
	var a struct {
		Act      string `json:"act"`
		Ack      *int   `json:"ack"`
		Accepted *bool  `json:"accepted"`
	}
	if json.Unmarshal(raw, &a) != nil || a.Act != "" || a.Ack == nil || a.Accepted == nil {
		return 0, false, false
	}
	return *a.Ack, *a.Accepted, true
}

// answered takes the worker's answer to the newconn sent with seq:
// accepted, the connection is the worker's and paddock's copy is closed;
// refused, it is offered to another worker, and closed when no other
// subscribes. Either way the worker is free again in its dispatcher's free
// list (dispatcher.answered). An answer to no pending connection is
// ignored. It may be called from any
// goroutine.
func (c *channel) answered(seq int, accepted bool) {
	pc, ok := c.takePending(seq)
	if !ok {
		return
	}
	if pc.onAnswer != nil {
		pc.onAnswer(accepted)
	}
	pc.giveBack(accepted)
}

// send sends a cluster message (cmd NODE_CLUSTER is added) with a seq.
func (c *channel) send(fields map[string]any, fd int, done func(error)) error {
	fields["cmd"] = "NODE_CLUSTER"
	fields["seq"] = c.nextSeq()
	err := c.ch.Send(fields, fd, done)
	if err != nil && done != nil {
		done(err)
	}
	return err
}

// addPending records conn, sent to the worker with seq, until the worker
// answers.
func (c *channel) addPending(seq int, pc pendingConn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending == nil {
		c.pending = map[int]pendingConn{}
	}
	c.pending[seq] = pc
}

// takePending removes and returns the connection sent with seq.
func (c *channel) takePending(seq int) (pendingConn, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.pending[seq]
	delete(c.pending, seq)
	return p, ok
}

// drainPending removes and returns every unanswered connection.
func (c *channel) drainPending() []pendingConn {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]pendingConn, 0, len(c.pending))
	for seq, p := range c.pending {
		out = append(out, p)
		delete(c.pending, seq)
	}
	return out
}

// channelFault records that paddock closed a worker's channel for a fault
// of the worker's end: a protocol violation, or a reply the protocol
// requires that the channel could not take. Such a worker is stopped as a
// retiring one is (killSignal, SIGKILL after killTimeout) but stays
// counted, and its exit is a failure whatever its code, so that its restart
// policy replaces it: a Node worker exits 0 at once on end of file.
type channelFault struct {
	err error
	// killAt is when the worker gets SIGKILL if it still runs; timer wakes
	// Run then; killed says it was sent.
	killAt time.Time
	timer  *time.Timer
	killed bool
}

// detail describes the fault for events; "" for none.
func (f *channelFault) detail() string {
	if f == nil {
		return ""
	}
	return "IPC channel closed by paddock: " + f.err.Error()
}

// isChannelFault reports whether err, why a channel closed, is a fault of
// the worker's end.
func isChannelFault(err error) bool {
	var pe *ipc.ProtocolError
	return errors.As(err, &pe) || errors.Is(err, ipc.ErrQueueFull)
}

// runChannel runs a worker's channel until it closes, in its own
// goroutine. A channel that closed for a fault wakes Run, which stops the
// worker; any other error is logged.
func (s *Supervisor) runChannel(ch *ipc.Channel, name string) {
	ch.Run(context.Background(), s.ipcIn)
	err := ch.Err()
	switch {
	case isChannelFault(err):
		s.wakeFaults()
	case errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE):
		// The worker closed its end: it exited, or disconnected.
		s.opts.Logger.Debug("IPC channel closed by the worker", "worker", name, "err", err)
	case err != nil:
		s.opts.Logger.Warn("IPC channel closed", "worker", name, "err", err)
	}
}

// wakeFaults makes Run call handleChannelFaults soon. It never
// blocks.
func (s *Supervisor) wakeFaults() {
	select {
	case s.ipcFaults <- struct{}{}:
	default:
	}
}

// handleChannelFaults looks at every worker: one whose channel closed
// for a fault is stopped (channelFault), and one stopped so that is
// still running at its deadline gets SIGKILL to its process group.
func (o *owner) handleChannelFaults(now time.Time) {
	for _, w := range o.workers {
		if w.cl == nil || w.proc == nil {
			continue
		}
		if w.fault == nil {
			select {
			case <-w.cl.ch.Closed():
				if err := w.cl.ch.Err(); isChannelFault(err) {
					o.channelFault(w, err)
				}
			default:
			}
			continue
		}
		o.killFaultedOverdue(w, now)
	}
}

// killFaultedOverdue sends SIGKILL to the process group of w, stopped for
// a channel fault, once it is still running at its deadline; once only.
func (o *owner) killFaultedOverdue(w *worker, now time.Time) {
	// A worker being retired meanwhile is the plan's to kill.
	if w.fault.killed || w.fault.killAt.IsZero() || w.Phase != reconcile.Running || now.Before(w.fault.killAt) {
		return
	}
	w.fault.killed = true
	if err := w.proc.KillGroup(); err != nil {
		o.opts.Logger.Error("kill", "app", w.App, "worker", w.ID, "pid", w.pid, "err", err)
	}
	o.emit(Event{Type: EventKill, App: w.App, Worker: w.ID, PID: w.pid, Generation: w.Generation,
		Detail: fmt.Sprintf("did not stop within killTimeout %s after its IPC channel closed", w.KillTimeout)})
}

// channelFault closes w's channel for a fault of the worker's end
// (err says which), hands no more connections to it, and stops it: the
// killSignal now (a stopping event whose detail names the fault), SIGKILL
// to its group after killTimeout. Unlike a retirement, the worker keeps
// its place until it exits, and that exit counts as a failure. A worker
// already retiring by disconnect gets its killSignal at once instead of
// after killTimeout. Nothing happens twice.
func (o *owner) channelFault(w *worker, err error) {
	if w.cl == nil || w.fault != nil {
		return
	}
	w.cl.ch.CloseWithError(err)
	w.fault = &channelFault{err: err}
	o.opts.Logger.Warn("IPC channel closed for a fault of the worker; stopping it", "app", w.App, "worker", w.ID, "pid", w.pid, "err", err)
	o.unsubscribe(w)
	o.unwatchHealth(w)
	o.setMembersReady(w, false)
	// The worker may still read connections already in its socket: no
	// other worker may get them too.
	for _, pc := range w.cl.drainPending() {
		pc.conn.Close()
	}
	switch {
	case w.proc == nil || w.signaled:
		return // not running, or already signalled
	case w.Phase == reconcile.Stopping:
		// Retiring by disconnect, which can no longer end: killSignal
		// now, and the plan's SIGKILL a killTimeout later.
		o.signalStop(w)
		w.StopDeadline = time.Now().Add(w.KillTimeout)
		return
	}
	o.signalStop(w)
	w.fault.killAt = time.Now().Add(w.KillTimeout)
	w.fault.timer = time.AfterFunc(w.KillTimeout, o.sup.wakeFaults)
}

// replyFailed handles a reply the protocol requires (what names it)
// that w's channel did not take: a channel that cannot take one is closed
// and its worker stopped, since the worker would wait for it for ever. A
// channel already closed needs nothing more.
func (o *owner) replyFailed(w *worker, what string, err error) {
	if errors.Is(err, ipc.ErrClosed) {
		return
	}
	o.channelFault(w, fmt.Errorf("ipc: the reply to %s for %s was not queued: %w", what, w.Name(), err))
}

// closeChannelOnExit closes the channel of a worker that exited,
// giving the connections it did not answer to other workers, and reports
// whether it was closed for a fault (then the exit is a failure).
func (o *owner) closeChannelOnExit(w *worker) bool {
	if w.cl == nil {
		return false
	}
	o.unsubscribe(w)
	o.forgetRelay(w)
	for _, pc := range w.cl.drainPending() {
		pc.giveBack(false)
	}
	w.cl.ch.Close()
	if err := w.cl.ch.Err(); w.fault == nil && isChannelFault(err) {
		// It closed for a fault and the worker exited before Run was
		// woken for it.
		w.fault = &channelFault{err: err}
		o.opts.Logger.Warn("IPC channel closed for a fault of the worker", "app", w.App, "worker", w.ID, "pid", w.pid, "err", err)
	}
	if w.fault == nil {
		return false
	}
	if w.fault.timer != nil {
		w.fault.timer.Stop()
	}
	return true
}

// Send delivers a JSON message to workers of app with an IPC channel: one
// worker when id is not 0, else all of them. It returns how many got it.
func (s *Supervisor) Send(ctx context.Context, app string, id int, msg json.RawMessage) (int, error) {
	if !json.Valid(msg) {
		return 0, errors.New("not a JSON value")
	}
	n := 0
	var sendErr error
	err := s.do(ctx, func(o *owner) {
		if o.app(app) == nil && !o.hasWorkers(app) {
			sendErr = fmt.Errorf("%s: %w", app, ErrUnknownApp)
			return
		}
		for _, w := range o.workers {
			if w.App != app || (id != 0 && w.ID != id) || w.cl == nil || w.pid == 0 {
				continue
			}
			if err := w.cl.ch.SendRaw(msg); err != nil {
				sendErr = fmt.Errorf("%s/%d: %w", w.App, w.ID, err)
				continue
			}
			n++
		}
	})
	if err != nil {
		return 0, err
	}
	if n == 0 && sendErr == nil {
		sendErr = fmt.Errorf("no running worker of %s has an IPC channel", app)
	}
	return n, sendErr
}
