package supervisor

import (
	"errors"
	"os"
	"time"

	"github.com/paddock-sh/paddock/manifest"
	"github.com/paddock-sh/paddock/netshare"
	"github.com/paddock-sh/paddock/reconcile"
)

// This file holds the supervisor's record of one worker.

// worker is the supervisor's record of one worker.
type worker struct {
	reconcile.Worker
	app       *manifest.App // the spec it was started with
	proc      process
	pid       int // 0 once exited
	startedAt time.Time
	// status is the last STATUS= the worker sent to $NOTIFY_SOCKET.
	status string
	// tail keeps its last output lines (nil until it started).
	tail *outputTail
	// sockets are the shared sockets it holds references to; own the
	// copies of its SO_REUSEPORT sockets it is given, until it has
	// started; members those sockets in their groups, by the cluster key
	// the worker knows each by ("" for a LISTEN_FDS socket), until it
	// exits or closes that server.
	sockets []*netshare.Socket
	own     []*os.File
	members map[*netshare.Member]string
	// listening holds, by cluster key, the address paddock answered each
	// of the worker's listen() calls with.
	listening map[string]string
	// cl is the worker's cluster IPC channel (nil without one); subs the
	// dispatchers that hand it connections, with its key for each.
	cl   *channel
	subs map[*dispatcher]string
	// holds are the server handles it was answered with and has not
	// closed, by key.
	holds map[string]*serverHandle
	// fault is set once paddock closed its channel for a fault of the
	// worker's end: it is stopped, and its exit counts as a failure.
	fault *channelFault
	// signaled: a disconnected worker was also sent killSignal;
	// exitedAfterDisconnect: the worker said it is leaving on purpose.
	signaled              bool
	exitedAfterDisconnect bool
	// watchdog is the worker's watchdog period: its app's, or what it set
	// with WATCHDOG_USEC= (0: none). watchdogAt, once it is ready, is when
	// it misses it unless WATCHDOG=1 comes first (zero: not armed).
	watchdog   time.Duration
	watchdogAt time.Time
	// health is the state of its health check; healthFile, healthAddr
	// and healthFD its loopback socket for `port: worker` probes
	// (paddock's copy, its address, its descriptor number in the
	// worker), and healthKey the cluster key of the worker's listen() of
	// it.
	health     workerHealth
	healthFile *os.File
	healthAddr string
	healthFD   int
	healthKey  string
}

// releaseSockets drops the worker's hold on its sockets, and takes its
// SO_REUSEPORT sockets out of their groups: call it once the worker no
// longer accepts (it exited, or never started). Its errors are
// *netshare.SteerError, the sockets are released whatever they say.
func (w *worker) releaseSockets() error {
	var errs []error
	for m := range w.members {
		errs = append(errs, m.Remove())
	}
	for _, f := range w.own {
		f.Close()
	}
	for _, sock := range w.sockets {
		sock.Release()
	}
	if w.healthFile != nil {
		w.healthFile.Close()
		w.healthFile = nil
	}
	w.own, w.sockets, w.members = nil, nil, nil
	return errors.Join(errs...)
}

// addMember records m, one of w's SO_REUSEPORT sockets, known to the worker
// by key.
func (w *worker) addMember(m *netshare.Member, key string) {
	if w.members == nil {
		w.members = map[*netshare.Member]string{}
	}
	w.members[m] = key
}

// setMembersReady marks w's SO_REUSEPORT sockets ready to take new
// connections, or not.
func (o *owner) setMembersReady(w *worker, ready bool) {
	for m := range w.members {
		if err := m.SetReady(ready); err != nil {
			o.opts.Logger.Warn("new connections may reach a worker that is not ready", "app", w.App, "worker", w.ID, "err", err)
		}
	}
}

// observed returns the workers as the planner sees them, each with the
// dependencies its app last declared (see dependsOn).
func (o *owner) observed() []reconcile.Worker {
	out := make([]reconcile.Worker, 0, len(o.workers))
	for _, w := range o.workers {
		rw := w.Worker
		rw.DependsOn = o.dependsOn(w.App)
		out = append(out, rw)
	}
	return out
}
