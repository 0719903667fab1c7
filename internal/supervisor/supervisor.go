// Package supervisor runs the reconcile loop: one goroutine owns the apps and
// workers, plans with reconcile.Plan, and carries the plan out with procs.
// Process exits, restart timers and requests (apply a new manifest set, list
// the workers) arrive as messages to that goroutine; nothing else touches its
// state.
package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/paddock-sh/paddock/internal/ipc"
	"github.com/paddock-sh/paddock/internal/notify"
	"github.com/paddock-sh/paddock/internal/plural"
	"github.com/paddock-sh/paddock/internal/watch"
	"github.com/paddock-sh/paddock/manifest"
	"github.com/paddock-sh/paddock/netshare"
	"github.com/paddock-sh/paddock/procs"
	"github.com/paddock-sh/paddock/reconcile"
	"golang.org/x/sys/unix"
)

// ErrStopTimeout is returned by Run when the shutdown needed SIGKILL for at
// least one worker that did not stop within its killTimeout.
var ErrStopTimeout = errors.New("some workers did not stop within their killTimeout and were killed")

// ErrNotRunning is returned by requests made after Run returned.
var ErrNotRunning = errors.New("the supervisor has stopped")

// ErrKilled is returned by Run after Kill.
var ErrKilled = errors.New("killed every worker at once")

// outputDrain bounds how long Run waits, after the last worker exited, for
// the output of silent workers to be copied (a detached grandchild may hold
// a pipe open for ever).
const outputDrain = 2 * time.Second

// readDrain bounds how long Run, returning, waits for the watcher and for a
// manifest load in progress: a read on a filesystem that does not answer
// can block for ever, and must not keep paddock from stopping.
const readDrain = 2 * time.Second

// Options configure a Supervisor. The zero value is usable.
type Options struct {
	// Logger receives every event and problem. Default: slog.Default().
	Logger *slog.Logger
	// OnEvent, when set, is called with every event, from the goroutine
	// that owns the state: it must not block.
	OnEvent func(Event)
	// Stdout and Stderr receive the prefixed output of silent workers; the
	// workers of non-silent apps inherit them when they are *os.File.
	// Default: os.Stdout and os.Stderr.
	Stdout, Stderr io.Writer
	// Environ is the environment workers inherit, below their app's env.
	// Default: os.Environ().
	Environ []string
	// Load reads and validates the manifests again; Reload uses it. Nil:
	// reloading is not possible. It runs in a goroutine of its own (see
	// Reload): a call that blocks does not hold up Run's shutdown for more
	// than 2s. Reload compares the Files of the sets it returns to tell a
	// file that settled (manifest.Load sets them).
	Load func() (*manifest.Set, error)
	// Watch, when not empty, lists manifest paths to watch: a change, once
	// the files have been quiet for ReloadDebounce (at the latest 10 ×
	// ReloadDebounce after the first change) and no process has a changed
	// file open for writing, triggers a reload (see watch.Watcher).
	// ReloadDebounce also sets the settle time of a reload that would
	// empty or delete a file, 10 × ReloadDebounce (see Reload). Zero means
	// watch.DefaultDebounce.
	Watch          []string
	ReloadDebounce time.Duration
	// NotifyDir is where the sd_notify socket for `readiness: notify`
	// workers is created. Default: os.TempDir().
	NotifyDir string
	// OnOutput, when set, receives every line a silent worker writes
	// (without its newline), from the goroutine copying that stream
	// (stream is "stdout" or "stderr"). It must not keep line.
	OnOutput func(app string, worker int, stream string, line []byte)
	// OnReload, when set, is told the result of every reload: "applied",
	// "unchanged" or "failed".
	OnReload func(result string)
	// Notify, when set, receives paddock's own sd_notify states:
	// "READY=1" once the first manifest set converged, "RELOADING=1" and
	// "READY=1" around reloads, "STOPPING=1" at shutdown and "STATUS=…"
	// with a one-line summary when it changes. From the state-owning
	// goroutine or the reloader: it must not block for long.
	Notify func(state string)
	// NoSysctl forbids paddock to change any sysctl (`paddock run
	// --sysctl=false`). By default, when an app uses schedulingPolicy
	// reuseport, net.ipv4.tcp_migrate_req is turned on (and logged) so that
	// the connections queued on a retiring worker's socket move to the
	// other workers; with NoSysctl it is left as it is, and a warning says
	// when it is off.
	NoSysctl bool
	// Reaper starts the workers and reaps every child of the process while
	// Run runs; its Cgroup and Watchdog, when set, see to it that nothing
	// the workers started outlives a killed supervisor. Default: a
	// procs.Reaper without either.
	Reaper *procs.Reaper
}

// Supervisor keeps the workers of a manifest set running. Create it with
// New, then call Run.
type Supervisor struct {
	opts Options
	// stdout and stderr receive the prefixed lines of silent workers;
	// outputChanged is poked when writing to one starts or stops failing.
	stdout, stderr *outputStream
	outputChanged  chan struct{}
	// requests carries the functions that other goroutines run in Run's
	// goroutine, with the state it owns (see do).
	requests chan func(*owner)
	kill     chan struct{}
	// ended is closed when Run returns: requests fail from then on.
	ended chan struct{}
	// reloadRequests asks the reloader goroutine for a reload; watching
	// tells it the watches are in place.
	reloadRequests chan struct{}
	watching       chan struct{}
	// reloadSem serializes reloads, so that an older load is never applied
	// after a newer one; loadSlot is held while Options.Load runs (see
	// load). stopping is closed once Run is stopping (stopOnce). rejected,
	// used by the holder of reloadSem, says the last reload was rejected.
	reloadSem chan struct{}
	rejected  bool
	loadSlot  chan struct{}
	stopping  chan struct{}
	stopOnce  sync.Once
	// ipcIn receives the messages of every worker's IPC channel;
	// channelsWG waits for the channels' goroutines.
	ipcIn      chan ipc.Message
	channelsWG sync.WaitGroup
	// ipcFaults wakes Run to look for channels closed for a fault of
	// their worker and for faulted workers due for SIGKILL
	// (owner.handleChannelFaults).
	ipcFaults chan struct{}
	// notifiedReady: READY=1 was sent (read by reloads too).
	notifiedReady atomic.Bool

	// own is the state Run's goroutine owns; other goroutines reach it
	// only through do.
	own *owner
}

// owner holds the state of a running supervisor: the manifest set, the
// workers, the sockets. Only Run's goroutine touches it, so nothing in it
// is locked: other goroutines hand that goroutine a function to run with it
// (Supervisor.do). Its methods are those that read or change that state.
type owner struct {
	// sup is the Supervisor, for the parts it shares with other
	// goroutines (output streams, IPC inbox, reload state); opts its
	// options, read-only.
	sup  *Supervisor
	opts *Options

	set      *manifest.Set
	specs    map[string]reconcile.AppSpec
	workers  map[int]*worker
	byPID    map[int]*worker
	nextID   int
	shutting bool // every worker is being stopped
	forced   bool // a worker needed SIGKILL during shutdown
	copiers  outputCopiers
	// outputReports is what was last reported of stdout and stderr.
	outputReports map[string]outputReport
	notify        *notify.Socket
	// pool holds the listening sockets; appSockets the references that
	// each app of the current set holds, in `listen:` order.
	pool       *netshare.Pool
	appSockets map[string][]*netshare.Socket
	migration  bool // tcp_migrate_req was checked
	// dispatchers hand out the connections of rr and sticky sockets;
	// dispatchWG waits for their Run goroutines; onDemand holds the
	// sockets workers asked for that `listen:` does not list, by app and
	// listen key; clusterData the first worker's server data per socket,
	// echoed to the others.
	dispatchers map[*netshare.Socket]*dispatcher
	dispatchWG  sync.WaitGroup
	onDemand    map[string]map[string]*netshare.Socket
	clusterData map[*netshare.Socket]json.RawMessage
	// rollouts holds the last reported status of each app in a rolling
	// update.
	rollouts map[string]reconcile.RolloutStatus
	// scale holds the runtime `instances` overrides (Scale);
	// restartCount the rolling restarts asked for per app (Restart).
	scale        map[string]scaleOverride
	restartCount map[string]int
	// rollingOut holds, per app, the generation a rolling update is
	// replacing its workers with, until the update completes.
	rollingOut map[string]string
	// statusLine is the last STATUS= sent.
	statusLine string
}

// worker is the supervisor's record of one worker.
type worker struct {
	reconcile.Worker
	app       *manifest.App // the spec it was started with
	proc      *procs.Process
	pid       int // 0 once exited
	startedAt time.Time
	// status is the last STATUS= the worker sent to $NOTIFY_SOCKET.
	status string
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
	// fault is set once paddock closed its channel for a fault of the
	// worker's end: it is stopped, and its exit counts as a failure.
	fault *channelFault
	// signaled: a disconnected worker was also sent killSignal;
	// exitedAfterDisconnect: the worker said it is leaving on purpose.
	signaled              bool
	exitedAfterDisconnect bool
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

// New returns a Supervisor with opts; it starts nothing.
func New(opts Options) *Supervisor {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	if opts.Environ == nil {
		opts.Environ = os.Environ()
	}
	changed := make(chan struct{}, 1)
	if opts.Reaper == nil {
		opts.Reaper = &procs.Reaper{}
	}
	s := &Supervisor{
		opts:           opts,
		stdout:         newOutputStream("stdout", opts.Stdout, changed),
		stderr:         newOutputStream("stderr", opts.Stderr, changed),
		outputChanged:  changed,
		requests:       make(chan func(*owner)),
		ended:          make(chan struct{}),
		kill:           make(chan struct{}, 1),
		reloadRequests: make(chan struct{}, 1),
		watching:       make(chan struct{}, 1),
		reloadSem:      make(chan struct{}, 1),
		loadSlot:       make(chan struct{}, 1),
		stopping:       make(chan struct{}),
		ipcIn:          make(chan ipc.Message, 256),
		ipcFaults:      make(chan struct{}, 1),
	}
	s.own = &owner{
		sup:           s,
		opts:          &s.opts,
		outputReports: map[string]outputReport{},
		rollouts:      map[string]reconcile.RolloutStatus{},
		specs:         map[string]reconcile.AppSpec{},
		scale:         map[string]scaleOverride{},
		restartCount:  map[string]int{},
		rollingOut:    map[string]string{},
		pool:          netshare.NewPool(),
		dispatchers:   map[*netshare.Socket]*dispatcher{},
		onDemand:      map[string]map[string]*netshare.Socket{},
		clusterData:   map[*netshare.Socket]json.RawMessage{},
		appSockets:    map[string][]*netshare.Socket{},
		workers:       map[int]*worker{},
		byPID:         map[int]*worker{},
		nextID:        1,
	}
	return s
}

// Run starts the workers of set and keeps them as set says until ctx is
// done; then it stops every worker gracefully, in parallel, and returns once
// all have exited: nil when each stopped within its killTimeout, else
// ErrStopTimeout. After Kill it returns ErrKilled at once. A manifest read
// still blocked then (a filesystem that does not answer) is waited for no
// longer than 2s, and its result is dropped.
//
// Run reaps every child of the process (see procs.Reaper.Run): only one Run may be
// active in a process, and nothing else in it may wait for children.
func (s *Supervisor) Run(ctx context.Context, set *manifest.Set) error {
	o := s.own
	reapCtx, stopReap := context.WithCancel(context.Background())
	// The dispatchers of rr and sticky sockets run until the workers are
	// gone, past ctx.
	dispatchCtx, stopDispatch := context.WithCancel(context.Background())
	exits := make(chan procs.Exit, 64)
	notes := make(chan notify.Message, 64)
	// The reloader and the watcher stop with ctx (no reload during
	// shutdown), or when Run returns. The reloader returns without waiting
	// for a load in progress (see load); the watcher and such a load are
	// waited for no longer than readDrain, since reading a file on a
	// filesystem that does not answer can block for ever.
	watchCtx, stopWatch := context.WithCancel(ctx)
	var helpers sync.WaitGroup
	var watcherDone chan struct{} // closed when the watcher returned; nil: none
	helpers.Go(func() { s.opts.Reaper.Run(reapCtx, exits) })
	defer close(s.ended)
	defer func() {
		s.markStopping()
		stopWatch()
		stopReap()
		helpers.Wait()
		s.waitReaders(watcherDone, readDrain)
		for _, w := range o.workers {
			if w.cl != nil {
				w.cl.ch.Close()
			}
		}
		s.channelsWG.Wait()
		stopDispatch()
		o.closeDispatchers()
		for _, w := range o.workers {
			w.releaseSockets()
		}
		for _, socks := range o.onDemand {
			for _, sock := range socks {
				sock.Release()
			}
		}
		for _, socks := range o.appSockets {
			for _, sock := range socks {
				sock.Release()
			}
		}
		if o.notify != nil {
			o.notify.Close()
		}
		o.copiers.drain(outputDrain)
	}()
	sock, err := notify.Listen(s.opts.NotifyDir)
	if err != nil {
		return err
	}
	o.notify = sock
	helpers.Go(func() { sock.Run(reapCtx, notes) })
	helpers.Go(func() { s.reloader(watchCtx) })
	if len(s.opts.Watch) > 0 {
		// Once watching, read the manifests again: an edit made since they
		// were loaded, before the watches were in place, is not lost.
		w := &watch.Watcher{Paths: s.opts.Watch, Debounce: s.opts.ReloadDebounce, Logger: s.opts.Logger,
			Ready: func() { s.watching <- struct{}{} }}
		watcherDone = make(chan struct{})
		go func() {
			defer close(watcherDone)
			if err := w.Run(watchCtx, s.RequestReload); err != nil {
				s.opts.Logger.Error("manifests are not watched; reload with SIGHUP", "err", err)
			}
		}()
	}

	if _, err := o.apply(set); err != nil {
		return err
	}
	done := ctx.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		desired := o.specs
		if o.shutting {
			desired = nil
		}
		plan := reconcile.Plan(desired, o.observed(), now)
		o.execute(plan, now)
		o.reportRollouts(plan.Rollouts)
		if o.shutting && len(o.workers) == 0 {
			if o.forced {
				return ErrStopTimeout
			}
			return nil
		}
		if len(plan.Actions) > 0 {
			// Carrying out a plan changes the state (a start that
			// failed is now in backoff): plan again before waiting.
			// This converges: no action repeats on unchanged state.
			continue
		}
		o.notifySystemd(now)
		var wake <-chan time.Time
		if !plan.RequeueAt.IsZero() {
			timer.Reset(max(time.Until(plan.RequeueAt), 0))
			wake = timer.C
		}
		select {
		case ex := <-exits:
			o.handleExit(ex)
		case m := <-notes:
			o.handleNotify(m)
		case m := <-s.ipcIn:
			o.handleIPC(dispatchCtx, m, time.Now())
		case <-s.ipcFaults:
			o.handleChannelFaults(time.Now())
		case <-wake:
		case <-done:
			done = nil
			o.shutting = true
			s.markStopping()
			s.sdNotify("STOPPING=1")
			s.opts.Logger.Info("stopping all workers")
		case req := <-s.requests:
			req(o)
		case <-s.outputChanged:
			o.reportOutput()
		case <-s.kill:
			o.killAll()
			return ErrKilled
		}
		timer.Stop()
	}
}

// Done is closed when Run has returned.
func (s *Supervisor) Done() <-chan struct{} { return s.ended }

// Kill makes Run send SIGKILL to the process group of every worker and
// return at once. It does not block.
func (s *Supervisor) Kill() {
	select {
	case s.kill <- struct{}{}:
	default:
	}
}

// do runs f in the Run goroutine, with the state it owns, and waits for it
// to finish. It returns ctx.Err() when ctx is done before Run took f, and
// ErrNotRunning once Run has returned; f has not run then.
func (s *Supervisor) do(ctx context.Context, f func(o *owner)) error {
	done := make(chan struct{})
	select {
	case s.requests <- func(o *owner) { f(o); close(done) }:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.ended:
		return ErrNotRunning
	}
	// Run calls f as soon as it receives it: wait for it whatever ctx
	// says, since the caller reads what f writes.
	<-done
	return nil
}

// Apply makes set the desired state and returns how it differs from the
// previous one. Workers are started, stopped and replaced by the next plan.
// It fails when a new listening address cannot be bound (the errors name
// the manifest lines, see manifest.Errors; nothing is changed then), or
// when Run is not running (ctx).
func (s *Supervisor) Apply(ctx context.Context, set *manifest.Set) ([]manifest.Change, error) {
	var changes []manifest.Change
	var applyErr error
	if err := s.do(ctx, func(o *owner) { changes, applyErr = o.apply(set) }); err != nil {
		return nil, err
	}
	return changes, applyErr
}

// WorkerInfo describes one worker, for status listings and tests.
type WorkerInfo struct {
	ID         int
	App        string
	PID        int // 0 when the worker has exited
	Phase      reconcile.Phase
	Ready      bool
	Generation string
	Restarts   int
	StartedAt  time.Time
	// RestartAt is when a worker in backoff is replaced.
	RestartAt time.Time
	// Status is the last STATUS= the worker sent with sd_notify.
	Status string
	// Listen holds the addresses the live worker serves: sockets it was
	// given and rr/sticky sockets it takes connections from.
	Listen []string
	// HandedOut counts the connections paddock handed to the worker
	// (rr, sticky).
	HandedOut int64
}

// Workers lists the workers in ID order.
func (s *Supervisor) Workers(ctx context.Context) ([]WorkerInfo, error) {
	var out []WorkerInfo
	err := s.do(ctx, func(o *owner) { out = o.workerList() })
	return out, err
}

func (o *owner) apply(set *manifest.Set) ([]manifest.Change, error) {
	if err := o.bind(set); err != nil {
		return nil, err
	}
	first := o.set == nil
	changes := o.effectiveChanges(set)
	for _, name := range o.dropStaleOverrides(set) {
		o.opts.Logger.Info("the manifest's instances changed: the runtime scale override is dropped", "app", name)
	}
	o.set = set
	for name := range o.specs {
		if _, ok := set.Apps[name]; !ok {
			delete(o.specs, name)
			delete(o.rollingOut, name)
		}
	}
	for _, a := range set.Apps {
		o.setSpec(a)
	}
	if w := DescriptorWarning(set); w != "" && (first || len(changes) > 0) {
		o.opts.Logger.Warn(w)
	}
	switch {
	case first:
		o.emit(Event{Type: EventApply, Detail: plural.Count(len(set.Apps), "app") + ", " + plural.Count(set.Workers(), "worker")})
	case len(changes) == 0:
		o.opts.Logger.Debug("reload: manifests unchanged")
	default:
		for _, c := range changes {
			ev := Event{Type: EventReload, App: c.App, Detail: c.String()}
			if a := set.Apps[c.App]; a != nil {
				ev.Generation = o.specs[c.App].Generation
			}
			o.emit(ev)
		}
	}
	return changes, nil
}

// bind takes the sockets of every address in set, binding those not
// bound yet, and drops the previous set's hold on its own. If any address
// cannot be bound, nothing changes and the errors name the manifest lines.
// An address no longer listed stays open while workers use it.
func (o *owner) bind(set *manifest.Set) error {
	next := map[string][]*netshare.Socket{}
	var errs []error
	reuseport := false
	for _, name := range set.Names() {
		a := set.Apps[name]
		for _, ln := range a.Listen {
			rp := a.SchedulingPolicy == "reuseport"
			reuseport = reuseport || rp
			sock, err := o.pool.Acquire(ln, rp, fmt.Sprintf("%s[%d]", name, ln.Index))
			if err != nil {
				key := fmt.Sprintf("listen[%d]", ln.Index)
				pos, ok := a.Pos[key]
				if !ok {
					pos = a.Source
				}
				errs = append(errs, &manifest.FieldError{Pos: pos, Field: "apps." + name + "." + key, Msg: err.Error(), Err: err})
				continue
			}
			next[name] = append(next[name], sock)
		}
	}
	if len(errs) > 0 {
		for _, socks := range next {
			for _, sock := range socks {
				sock.Release()
			}
		}
		return manifest.Join(errs)
	}
	held := map[*netshare.Socket]bool{}
	for _, socks := range o.appSockets {
		for _, sock := range socks {
			held[sock] = true
			sock.Release()
		}
	}
	o.appSockets = next
	// Sockets opened on demand for an app that is gone close once the
	// workers using them are gone too.
	for name, socks := range o.onDemand {
		if _, ok := set.Apps[name]; ok {
			continue
		}
		for _, sock := range socks {
			sock.Release()
			delete(o.clusterData, sock)
		}
		delete(o.onDemand, name)
	}
	for name, socks := range next {
		for _, sock := range socks {
			if !held[sock] { // newly bound
				o.opts.Logger.Info("listening", "app", name, "listen", sock.Listen.Raw, "address", sock.Addr.String())
				if sock.Replaced {
					o.opts.Logger.Info("replaced a stale socket file nothing listened on", "app", name, "path", sock.Listen.Address)
				}
			}
		}
	}
	if reuseport && !o.migration {
		o.migration = true
		o.enableMigration()
	}
	return nil
}

// enableMigration turns net.ipv4.tcp_migrate_req on, unless
// Options.NoSysctl forbids it, and warns when it stays off.
func (o *owner) enableMigration() {
	const warning = "connections queued on a retiring worker's SO_REUSEPORT socket may be reset"
	if !o.opts.NoSysctl {
		if _, err := netshare.EnableMigration(o.opts.Logger); err != nil {
			o.opts.Logger.Warn(warning, "err", err)
		}
		return
	}
	on, err := netshare.Migration()
	switch {
	case err != nil:
		o.opts.Logger.Warn(warning, "err", err)
	case !on:
		o.opts.Logger.Warn(warning+": net.ipv4.tcp_migrate_req is 0 and --sysctl=false forbids paddock to turn it on",
			"sysctl", "net.ipv4.tcp_migrate_req")
	}
}

// Listeners returns the addresses each app listens on, as bound (the port
// chosen for port 0 included).
func (s *Supervisor) Listeners(ctx context.Context) (map[string][]string, error) {
	out := map[string][]string{}
	err := s.do(ctx, func(o *owner) {
		for name, socks := range o.appSockets {
			for _, sock := range socks {
				out[name] = append(out[name], sock.Addr.String())
			}
		}
	})
	return out, err
}

// reportRollouts emits rollout-progress when an app's rolling update
// moved, rollout-stalled when it stalls, and rollout-progress "complete"
// when it is over: its new workers are all ready and no old one serves, or
// the app has no rolling update any more (it was removed, or its old
// workers went while nothing was rolling out).
func (o *owner) reportRollouts(now map[string]reconcile.RolloutStatus) {
	for app, st := range now {
		if prev, was := o.rollouts[app]; !was || prev != st {
			o.rollouts[app] = st
			gen := o.specs[app].Generation
			o.emit(Event{Type: EventRolloutProgress, App: app, Generation: gen, Detail: st.String()})
			if st.Stalled != "" && st.Stalled != prev.Stalled {
				keep := "; the old workers keep serving until a later change"
				if st.Old == 0 {
					keep = "; no old worker is left to serve"
				}
				o.emit(Event{Type: EventRolloutStalled, App: app, Generation: gen, Detail: st.Stalled + keep})
			}
		}
		if st.Complete() {
			o.finishRollout(app)
		}
	}
	for app := range o.rollouts {
		if _, ok := now[app]; !ok {
			o.finishRollout(app)
		}
	}
}

// finishRollout ends app's rolling update: "complete".
func (o *owner) finishRollout(app string) {
	delete(o.rollouts, app)
	delete(o.rollingOut, app)
	if spec, ok := o.specs[app]; ok && spec.RollingOut {
		spec.RollingOut = false
		o.specs[app] = spec
	}
	o.emit(Event{Type: EventRolloutProgress, App: app, Generation: o.specs[app].Generation, Detail: "complete"})
}

// Rollouts returns the status of every app in a rolling update.
func (s *Supervisor) Rollouts(ctx context.Context) (map[string]reconcile.RolloutStatus, error) {
	out := map[string]reconcile.RolloutStatus{}
	err := s.do(ctx, func(o *owner) {
		for k, v := range o.rollouts {
			out[k] = v
		}
	})
	return out, err
}

// handleNotify takes an sd_notify message: the sender must be a
// worker or a process in a worker's process group. A message whose sender
// was reaped before it was read (known with SCM_PIDFD) counts for nobody:
// its pid may be a new worker's by now, and a worker that is gone has
// nothing to declare.
func (o *owner) handleNotify(m notify.Message) {
	if m.Reaped {
		o.opts.Logger.Warn("notification from a process reaped before it was read, ignored", "pid", m.PID)
		return
	}
	w, ok := o.byPID[m.PID]
	if !ok && m.PGID != 0 {
		w, ok = o.byPID[m.PGID]
	}
	if !ok {
		o.opts.Logger.Warn("notification from a process that is not a worker, ignored", "pid", m.PID)
		return
	}
	if st, ok := m.Fields["STATUS"]; ok {
		w.status = st
	}
	if m.Ready() && !w.Ready && w.Phase == reconcile.Running && w.app.Readiness == manifest.ReadinessNotify {
		o.markReady(w)
	}
}

func (o *owner) observed() []reconcile.Worker {
	out := make([]reconcile.Worker, 0, len(o.workers))
	for _, w := range o.workers {
		out = append(out, w.Worker)
	}
	return out
}

func (o *owner) execute(plan reconcile.Result, now time.Time) {
	for _, a := range plan.Actions {
		switch a := a.(type) {
		case reconcile.Start:
			if a.Replaces != 0 {
				delete(o.workers, a.Replaces)
			}
			o.start(o.set.Apps[a.App], a.Restarts, now)
		case reconcile.Stop:
			o.stop(o.workers[a.Worker], now)
		case reconcile.Kill:
			w := o.workers[a.Worker]
			if !w.signaled {
				// A disconnected worker still running at killTimeout:
				// killSignal now, SIGKILL after another killTimeout.
				o.signalStop(w)
				w.StopDeadline = now.Add(w.KillTimeout)
				continue
			}
			w.Killed = true
			if w.proc != nil {
				if err := w.proc.KillGroup(); err != nil {
					o.opts.Logger.Error("kill", "app", w.App, "worker", w.ID, "pid", w.pid, "err", err)
				}
			}
			if o.shutting {
				o.forced = true
			}
			o.emit(Event{Type: EventKill, App: w.App, Worker: w.ID, PID: w.pid, Generation: w.Generation,
				Detail: fmt.Sprintf("did not stop within killTimeout %s", w.KillTimeout)})
		case reconcile.Forget:
			delete(o.workers, a.Worker)
		}
	}
}

// start forks a new worker of app. A fork that fails counts as a
// failed exit, with the usual restart policy and backoff.
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
	}
	o.workers[id] = w

	spec := procs.Spec{
		Path: app.Resolved.Path,
		Argv: app.Resolved.Argv,
		Dir:  app.Resolved.Dir,
		Env:  workerEnv(o.opts.Environ, app, id),
	}
	if app.Readiness == manifest.ReadinessNotify {
		spec.Env = append(spec.Env, "NOTIFY_SOCKET="+o.notify.Path())
	}
	for _, sock := range o.appSockets[app.Name] {
		f := sock.File
		if g := sock.Group(); g != nil && !app.HasChannel() { // a reuseport anchor: the worker gets its own socket
			m, wf, err := g.Join()
			if m == nil {
				w.releaseSockets()
				o.startFailed(w, err, now)
				return
			}
			if err != nil {
				o.opts.Logger.Warn("new connections may reach a worker that is not ready", "app", w.App, "worker", id, "err", err)
			}
			w.addMember(m, "")
			w.own = append(w.own, wf)
			f = wf
		}
		w.sockets = append(w.sockets, sock.Ref())
		spec.ExtraFiles = append(spec.ExtraFiles, f)
		spec.ListenNames = append(spec.ListenNames, sock.Name())
	}
	if c := app.Resolved.Credential; c != nil {
		spec.Credential = &syscall.Credential{Uid: c.Uid, Gid: c.Gid, Groups: c.Groups}
	}
	var child *os.File
	if app.HasChannel() {
		ch, c, err := ipc.Pair(id)
		if err != nil {
			w.releaseSockets()
			o.startFailed(w, err, now)
			return
		}
		child = c
		w.cl = &channel{worker: id, ch: ch}
		ch.Intercept = w.cl.interceptAnswer
		spec.ExtraFiles = append(spec.ExtraFiles, child)
		spec.Env = append(spec.Env,
			"NODE_CHANNEL_FD="+strconv.Itoa(2+len(spec.ExtraFiles)),
			"NODE_CHANNEL_SERIALIZATION_MODE=json",
			"NODE_UNIQUE_ID="+strconv.Itoa(id))
	}
	failChannel := func() {
		if child != nil {
			child.Close()
			w.cl.ch.Close()
			w.cl = nil
		}
	}
	var pipes []*os.File
	var prefixers []*procs.LinePrefixer
	if app.Silent {
		prefix := fmt.Sprintf("%s/%d | ", app.Name, id)
		for i, out := range []io.Writer{o.sup.stdout, o.sup.stderr} {
			lp, wr, err := procs.NewOutputPipe(prefix, out)
			if err != nil {
				failChannel()
				w.releaseSockets()
				o.startFailed(w, err, now)
				return
			}
			if tap := o.opts.OnOutput; tap != nil {
				stream, name := [2]string{"stdout", "stderr"}[i], app.Name
				lp.Tap = func(line []byte) { tap(name, id, stream, line) }
			}
			pipes = append(pipes, wr)
			prefixers = append(prefixers, lp)
		}
		spec.Stdout, spec.Stderr = pipes[0], pipes[1]
	} else {
		spec.Stdout, _ = o.opts.Stdout.(*os.File)
		spec.Stderr, _ = o.opts.Stderr.(*os.File)
	}
	proc, err := o.opts.Reaper.Start(spec)
	for _, p := range pipes {
		p.Close() // the worker holds its own copies
	}
	if err != nil {
		for _, lp := range prefixers {
			lp.Close()
		}
		failChannel()
		w.releaseSockets()
		o.startFailed(w, err, now)
		return
	}
	if child != nil {
		child.Close() // the worker holds its end; ours sees EOF when it dies
		ch, name := w.cl.ch, w.Name()
		o.sup.channelsWG.Go(func() { o.sup.runChannel(ch, name) })
	}
	for _, lp := range prefixers {
		o.copiers.start(lp)
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
	w.proc, w.pid = proc, proc.Pid
	w.startedAt = proc.StartedAt
	// online and listening workers are ready once started (listening
	// waits for the cluster protocol's report where a worker has an IPC
	// channel); notify workers when they say READY=1.
	w.ReadyDeadline = w.startedAt.Add(app.ReadyTimeout)
	o.byPID[proc.Pid] = w
	o.emit(Event{Type: EventFork, App: w.App, Worker: id, PID: w.pid, Generation: w.Generation, Attempt: restarts})
	o.emit(Event{Type: EventOnline, App: w.App, Worker: id, PID: w.pid, Generation: w.Generation})
	if len(w.sockets) > 0 && w.cl == nil {
		// A LISTEN_FDS worker is listening as soon as it runs: its
		// sockets were listening before it started. A cluster worker
		// reports it.
		o.emit(Event{Type: EventListening, App: w.App, Worker: id, PID: w.pid, Generation: w.Generation,
			Detail: strings.Join(spec.ListenNames, ":")})
	}
	if app.Readiness == manifest.ReadinessOnline || (app.Readiness == manifest.ReadinessListening && w.cl == nil) {
		o.markReady(w)
	}
}

// markReady records that w is ready to serve: its SO_REUSEPORT
// sockets take new connections from now on.
func (o *owner) markReady(w *worker) {
	w.Ready, w.ReadyAt = true, time.Now()
	o.setMembersReady(w, true)
	o.emit(Event{Type: EventReady, App: w.App, Worker: w.ID, PID: w.pid, Generation: w.Generation,
		Delay: time.Since(w.startedAt)})
}

// notifySystemd tells systemd (Options.Notify) that paddock is ready, the
// first time the running set converged, and keeps STATUS= up to date.
func (o *owner) notifySystemd(now time.Time) {
	if o.opts.Notify == nil {
		return
	}
	if !o.sup.notifiedReady.Load() && !o.shutting && o.converged(now) {
		o.sup.notifiedReady.Store(true)
		o.sup.sdNotify("READY=1")
	}
	want, ready := 0, 0
	for _, spec := range o.specs {
		want += spec.Instances
	}
	for _, w := range o.workers {
		if w.Phase == reconcile.Running && w.Ready {
			ready++
		}
	}
	line := fmt.Sprintf("%s, %d/%s ready", plural.Count(len(o.specs), "app"), ready, plural.Count(want, "worker"))
	if len(o.rollouts) > 0 {
		line += fmt.Sprintf(", %d rolling out", len(o.rollouts))
	}
	if o.shutting {
		line = "stopping, " + plural.Count(len(o.workers), "worker") + " left"
	}
	if line != o.statusLine {
		o.statusLine = line
		o.sup.sdNotify("STATUS=" + line)
	}
}

// sdNotify passes state to Options.Notify, if set.
func (s *Supervisor) sdNotify(state string) {
	if s.opts.Notify != nil {
		s.opts.Notify(state)
	}
}

// monotonicUsec is CLOCK_MONOTONIC in microseconds, as systemd wants it
// with RELOADING=1.
func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Nano() / 1000
}

// startFailureDetail describes a start failure for an exit event.
func startFailureDetail(err error) string {
	detail := "start failed: " + err.Error()
	if hint := startErrorHint(err); hint != "" {
		detail += "; " + hint
	}
	return detail
}

func (o *owner) startFailed(w *worker, err error, now time.Time) {
	o.opts.Logger.Error("start failed", "app", w.App, "worker", w.ID, "err", err)
	o.emit(Event{Type: EventExit, App: w.App, Worker: w.ID, Generation: w.Generation, ExitCode: -1,
		StartFailed: true, Detail: startFailureDetail(err)})
	o.afterExit(w, false, 0, now)
}

func (o *owner) stop(w *worker, now time.Time) {
	// No new connection reaches its SO_REUSEPORT sockets from before it
	// is told to stop; those queued there are accepted by it, or moved to
	// the other workers when it exits.
	o.setMembersReady(w, false)
	w.Phase = reconcile.Stopping
	w.StopDeadline = now.Add(w.KillTimeout)
	if w.cl != nil {
		// Cluster's own graceful path: no new connection from now on,
		// then disconnect (the worker closes its servers and exits);
		// killSignal after killTimeout, SIGKILL after another.
		o.unsubscribe(w)
		if err := w.cl.send(map[string]any{"act": "disconnect"}, -1, nil); err == nil {
			o.emit(Event{Type: EventDisconnect, App: w.App, Worker: w.ID, PID: w.pid, Generation: w.Generation,
				Delay: w.KillTimeout})
			return
		}
	}
	o.signalStop(w)
}

// signalStop sends the worker its killSignal.
func (o *owner) signalStop(w *worker) {
	w.signaled = true
	sig, _ := manifest.SignalNumber(w.KillSignal)
	o.emit(Event{Type: EventStopping, App: w.App, Worker: w.ID, PID: w.pid, Generation: w.Generation,
		Signal: w.KillSignal, Delay: w.KillTimeout, Detail: w.fault.detail()})
	if err := w.proc.Signal(sig); err != nil {
		o.opts.Logger.Error("signal", "app", w.App, "worker", w.ID, "pid", w.pid, "err", err)
	}
}

func (o *owner) handleExit(ex procs.Exit) {
	w, ok := o.byPID[ex.Pid]
	if !ok {
		o.opts.Logger.Debug("reaped orphan", "pid", ex.Pid, "status", ex.String())
		return
	}
	delete(o.byPID, ex.Pid)
	w.proc.Release()
	if err := w.releaseSockets(); err != nil {
		o.opts.Logger.Warn("new connections may reach a worker that is not ready", "app", w.App, "worker", w.ID, "err", err)
	}
	faulted := o.closeChannelOnExit(w)
	// A worker's process group does not outlive it: the reaper killed
	// whatever it left behind in its group before reaping it.
	if ex.GroupKilled {
		o.opts.Logger.Info("killed leftover processes of exited worker", "app", w.App, "worker", w.ID, "pgid", w.pid)
	}
	ev := Event{Type: EventExit, App: w.App, Worker: w.ID, PID: w.pid, Generation: w.Generation, ExitCode: -1,
		Intended: w.Phase == reconcile.Stopping, Detail: w.fault.detail()}
	if ex.Status.Signaled() {
		ev.Signal = unix.SignalName(ex.Status.Signal())
	} else {
		ev.ExitCode = ex.Status.ExitStatus()
	}
	if ex.StartErr != nil {
		// The exec shim could not execute the program: a start failure,
		// reported as such, naming the program.
		o.opts.Logger.Error("start failed", "app", w.App, "worker", w.ID, "err", ex.StartErr)
		ev.StartFailed, ev.Detail = true, startFailureDetail(ex.StartErr)
	}
	o.emit(ev)
	w.pid = 0
	w.proc = nil
	if w.Phase == reconcile.Stopping {
		delete(o.workers, w.ID)
		return
	}
	if w.exitedAfterDisconnect && !faulted {
		// cluster.worker.disconnect() in the worker: it left on purpose,
		// as Node's primary sees it; it is not replaced.
		w.Phase = reconcile.Done
		o.opts.Logger.Info("not restarted: the worker disconnected itself", "app", w.App, "worker", w.ID)
		return
	}
	o.afterExit(w, ex.Success() && !faulted, ex.Time.Sub(w.startedAt), ex.Time)
}

// afterExit moves a worker that exited on its own to Backoff or Done.
func (o *owner) afterExit(w *worker, success bool, uptime time.Duration, now time.Time) {
	w.Worker = reconcile.AfterExit(w.Worker, reconcile.ExitPolicy{
		Restart:      w.app.Restart,
		Delay:        w.app.Backoff.Delay,
		ResetAfter:   w.app.Backoff.Max,
		MinReadyTime: w.app.MinReadyTime,
	}, success, uptime, now)
	if w.Phase == reconcile.Backoff {
		o.emit(Event{Type: EventRestart, App: w.App, Worker: w.ID, Generation: w.Generation,
			Delay: w.RestartAt.Sub(now), Attempt: w.Restarts})
	} else {
		o.opts.Logger.Info("not restarted", "app", w.App, "worker", w.ID, "restart", w.app.Restart)
	}
}

func (o *owner) killAll() {
	for _, w := range o.workers {
		if w.proc != nil {
			_ = w.proc.KillGroup()
		}
	}
}

func (o *owner) emit(e Event) {
	e.Time = time.Now()
	level := slog.LevelInfo
	if (e.Type == EventExit && !e.Intended) || e.Type == EventOutputLost {
		level = slog.LevelWarn
	}
	o.opts.Logger.Log(context.Background(), level, e.Type, e.attrs()...)
	if o.opts.OnEvent != nil {
		o.opts.OnEvent(e)
	}
}

// inheritedForSupervisor are variables addressed to paddock itself by its
// own parent (systemd socket activation and readiness): workers never
// inherit them.
var inheritedForSupervisor = []string{"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET"}

// workerEnv returns the environment of worker id of app: base without the
// supervisor's own activation variables, then the app's env, then
// PADDOCK_APP and PADDOCK_WORKER_ID. Each name appears once.
func workerEnv(base []string, app *manifest.App, id int) []string {
	drop := map[string]bool{"PADDOCK_APP": true, "PADDOCK_WORKER_ID": true}
	for _, k := range inheritedForSupervisor {
		drop[k] = true
	}
	for k := range app.Env {
		drop[k] = true
	}
	env := make([]string, 0, len(base)+len(app.Env)+2)
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] {
			env = append(env, kv)
		}
	}
	keys := make([]string, 0, len(app.Env))
	for k := range app.Env {
		// PADDOCK_APP and PADDOCK_WORKER_ID are paddock's: an app's env
		// does not set them (with both, a worker's getenv would return
		// the app's, the first).
		if k != "PADDOCK_APP" && k != "PADDOCK_WORKER_ID" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+app.Env[k])
	}
	return append(env, "PADDOCK_APP="+app.Name, "PADDOCK_WORKER_ID="+strconv.Itoa(id))
}
