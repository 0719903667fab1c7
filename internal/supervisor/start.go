package supervisor

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/paddock-sh/paddock/internal/ipc"
	"github.com/paddock-sh/paddock/internal/logfile"
	"github.com/paddock-sh/paddock/manifest"
	"github.com/paddock-sh/paddock/procs"
	"github.com/paddock-sh/paddock/reconcile"
)

// This file holds the start of a worker: its sockets, IPC channel and
// output pipes, the fork, and what a start that fails becomes.

// StartError says why worker Worker of App, which runs Program (the path
// the manifest's exec resolved to), could not be started. Err is the
// cause: a *procs.StartError naming the program, or an error preparing the
// worker's descriptors. The exit event of a start failure carries it.
type StartError struct {
	App     string
	Worker  int
	Program string
	Err     error
}

func (e *StartError) Error() string {
	return fmt.Sprintf("start %s/%d (%s): %v", e.App, e.Worker, e.Program, e.Err)
}

// Unwrap returns the cause.
func (e *StartError) Unwrap() error { return e.Err }

// start forks a new worker of app. A fork that fails counts as a failed
// exit, with the usual restart policy and backoff.
func (o *owner) start(app *manifest.App, restarts int, now time.Time) {
	id := o.nextID
	o.nextID++
	w := &worker{
		Worker: reconcile.Worker{
			ID: id, App: app.Name, Generation: o.specs[app.Name].Generation, Phase: reconcile.Running,
			Restarts: restarts, KillSignal: app.KillSignal, KillTimeout: app.KillTimeout,
		},
		app:       app,
		startedAt: now,
		watchdog:  app.Watchdog,
	}
	o.workers[id] = w
	sockets, err := o.takeSockets(w)
	if err != nil {
		w.releaseSockets()
		o.startFailed(w, err, now)
		return
	}
	child, err := o.openChannel(w)
	if err == nil {
		if err = o.openHealthSocket(w); err != nil {
			closeChannel(w, child)
		}
	}
	if err != nil {
		w.releaseSockets()
		o.startFailed(w, err, now)
		return
	}
	notifyPath := ""
	if o.notify != nil {
		notifyPath = o.notify.Path()
	}
	spec := workerSpec(app, id, o.opts.Environ, notifyPath, sockets, child)
	if w.healthFile != nil {
		w.healthFD = withHealthSocket(&spec, w.healthFile, w.healthAddr)
	}
	out, err := o.openOutput(app, id)
	if err == nil {
		spec.Stdout, spec.Stderr = out.stdout, out.stderr
		var proc process
		var pid int
		var startedAt time.Time
		proc, pid, startedAt, err = o.procs.Start(spec)
		out.closeWriters() // the worker holds its own copies
		if err == nil {
			o.started(w, proc, pid, startedAt, child, out, spec.ListenNames)
			return
		}
		out.closeReaders()
	}
	closeChannel(w, child)
	w.releaseSockets()
	o.startFailed(w, err, now)
}

// takeSockets returns the listening sockets of w's app, to hand w, taking
// a reference to each: the app's sockets themselves, or under reuseport
// (an app without IPC channel) a socket of the worker's own in each
// address's group.
func (o *owner) takeSockets(w *worker) ([]specSocket, error) {
	var out []specSocket
	for _, sock := range o.appSockets[w.app.Name] {
		f := sock.File
		if g := sock.Group(); g != nil && !w.app.HasChannel() { // a reuseport anchor: the worker gets its own socket
			m, wf, err := g.Join()
			if m == nil {
				return nil, err
			}
			if err != nil {
				o.opts.Logger.Warn("new connections may reach a worker that is not ready", "app", w.App, "worker", w.ID, "err", err)
			}
			w.addMember(m, "")
			w.own = append(w.own, wf)
			f = wf
		}
		w.sockets = append(w.sockets, sock.Ref())
		out = append(out, specSocket{File: f, Name: sock.Name()})
	}
	return out, nil
}

// openChannel opens the IPC channel of w, when its app has one, and
// returns the worker's end; nil without one.
func (o *owner) openChannel(w *worker) (*os.File, error) {
	if !w.app.HasChannel() {
		return nil, nil
	}
	ch, child, err := ipc.Pair(w.ID)
	if err != nil {
		return nil, err
	}
	w.cl = &channel{worker: w.ID, ch: ch}
	ch.Intercept = w.cl.interceptAnswer
	return child, nil
}

// closeChannel closes both ends of the IPC channel of a worker that did
// not start.
func closeChannel(w *worker, child *os.File) {
	if child != nil {
		child.Close()
		w.cl.ch.Close()
		w.cl = nil
	}
}

// workerOutput is where a worker's stdout and stderr go: pipes whose lines
// paddock copies to its own stdout and stderr (prefixed for a silent app,
// as written otherwise), keeping the last ones in the worker's tail.
type workerOutput struct {
	stdout, stderr *os.File
	pipes          []*os.File // the write ends, paddock's copies
	prefixers      []*procs.LinePrefixer
	tail           *outputTail
	// pid is the worker's, for its lines in log files; set before the
	// prefixers run.
	pid int
}

// openOutput returns where worker id of app writes: a pipe for each of
// stdout and stderr. Every line read from them goes to paddock's own
// stream, to the worker's tail, to the app's log file (`logs:`) and to
// Options.OnOutput; the last two in one step, so that `paddock logs`
// reading the file and the ring (OnOutput) sees each line once.
func (o *owner) openOutput(app *manifest.App, id int) (*workerOutput, error) {
	out := &workerOutput{tail: newOutputTail(2, o.sup.outputChanged)}
	prefix := ""
	if app.Silent {
		prefix = fmt.Sprintf("%s/%d | ", app.Name, id)
	}
	for i, dst := range []io.Writer{o.sup.stdout, o.sup.stderr} {
		lp, wr, err := procs.NewOutputPipe(prefix, dst)
		if err != nil {
			out.closeWriters()
			out.closeReaders()
			return nil, err
		}
		lp.Exact = !app.Silent
		tail, tap, files := out.tail, o.opts.OnOutput, o.sup.logs
		stream, name := [2]string{"stdout", "stderr"}[i], app.Name
		lp.Tap = func(line []byte) {
			tail.add(line)
			var alongside func()
			if tap != nil {
				alongside = func() { tap(name, id, stream, line) }
			}
			files.Write(logfile.Line{App: name, Worker: id, PID: out.pid, Stream: stream, Text: string(line)}, alongside)
		}
		out.pipes = append(out.pipes, wr)
		out.prefixers = append(out.prefixers, lp)
	}
	out.stdout, out.stderr = out.pipes[0], out.pipes[1]
	return out, nil
}

// closeWriters closes paddock's copies of the pipes' write ends.
func (out *workerOutput) closeWriters() {
	for _, p := range out.pipes {
		p.Close()
	}
}

// closeReaders closes the pipes' read ends, of a worker that did not
// start.
func (out *workerOutput) closeReaders() {
	for _, lp := range out.prefixers {
		lp.Close()
	}
}

// started records that w runs as proc, and reports it: fork, online,
// listening for a LISTEN_FDS worker, and ready when its readiness says it
// is ready once started.
func (o *owner) started(w *worker, proc process, pid int, startedAt time.Time, child *os.File, out *workerOutput, listenNames []string) {
	if child != nil {
		child.Close() // the worker holds its end; ours sees EOF when it dies
		ch, name := w.cl.ch, w.Name()
		o.sup.channelsWG.Go(func() { o.sup.runChannel(ch, name) })
	}
	w.tail = out.tail
	out.pid = pid
	for _, lp := range out.prefixers {
		o.copiers.start(lp, out.tail.streamDone)
	}
	// The worker holds its own copies of its SO_REUSEPORT sockets now.
	// The group keeps another until the worker exits, so that the
	// sockets' order in the kernel's group changes only when paddock says
	// (netshare.Group); they take new connections once the worker is
	// ready, and none from the moment it is told to stop.
	for _, f := range w.own {
		f.Close()
	}
	w.own = nil
	w.proc, w.pid = proc, pid
	w.startedAt = startedAt
	// online and listening workers are ready once started (listening
	// waits for the cluster protocol's report where a worker has an IPC
	// channel); notify workers when they say READY=1.
	w.ReadyDeadline = w.startedAt.Add(w.app.ReadyTimeout)
	o.byPID[pid] = w
	// Its process group's resource use is read while a reader asks, and
	// all along when its app has a memory limit.
	o.sup.usage.Watch(pid, startedAt, w.app.MaxMemory > 0)
	o.emit(Event{Type: EventFork, App: w.App, Worker: w.ID, PID: w.pid, Generation: w.Generation, Attempt: w.Restarts})
	o.emit(Event{Type: EventOnline, App: w.App, Worker: w.ID, PID: w.pid, Generation: w.Generation})
	if len(w.sockets) > 0 && w.cl == nil {
		// A LISTEN_FDS worker is listening as soon as it runs: its
		// sockets were listening before it started. A cluster worker
		// reports it.
		o.emit(Event{Type: EventListening, App: w.App, Worker: w.ID, PID: w.pid, Generation: w.Generation,
			Detail: strings.Join(listenNames, ":")})
	}
	app := w.app
	if app.Readiness == manifest.ReadinessOnline || (app.Readiness == manifest.ReadinessListening && w.cl == nil) {
		o.markReady(w)
	}
	o.watchHealth(w)
}

// markReady records that w is ready to serve: its SO_REUSEPORT
// sockets take new connections from now on.
func (o *owner) markReady(w *worker) {
	w.Ready, w.ReadyAt = true, o.clock.Now()
	o.armWatchdog(w, w.ReadyAt)
	o.setMembersReady(w, true)
	o.emit(Event{Type: EventReady, App: w.App, Worker: w.ID, PID: w.pid, Generation: w.Generation,
		Delay: w.ReadyAt.Sub(w.startedAt)})
}

// startFailed reports that w could not start (err says why) and applies
// its restart policy, as to an exit.
func (o *owner) startFailed(w *worker, err error, now time.Time) {
	ev := Event{Type: EventExit, App: w.App, Worker: w.ID, Generation: w.Generation, ExitCode: -1}
	o.markStartFailed(&ev, w, err)
	o.emit(ev)
	o.recordExit(w, ExitInfo{Code: -1, At: now, Lines: []string{"paddock: " + ev.Detail}})
	o.afterExit(w, false, 0, now)
	o.noteCrash(w, ev, 0, now)
}

// markStartFailed logs that w could not start (err says why), before it
// forked or in the exec shim, and makes ev, w's exit event, say so: a
// *StartError naming the program, and a detail with a hint when there is
// one.
func (o *owner) markStartFailed(ev *Event, w *worker, err error) {
	o.opts.Logger.Error("start failed", "app", w.App, "worker", w.ID, "err", err)
	ev.StartFailed = true
	ev.StartErr = &StartError{App: w.App, Worker: w.ID, Program: w.app.Resolved.Path, Err: err}
	ev.Detail = "start failed: " + err.Error()
	if hint := startErrorHint(err); hint != "" {
		ev.Detail += "; " + hint
	}
}
