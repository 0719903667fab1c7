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
	"github.com/paddock-sh/paddock/internal/sysctl"
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
	requests       chan func()
	kill           chan struct{}
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

	// Owned by the Run goroutine.
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
	// ipcIn receives the messages of every worker's IPC channel;
	// channelsWG waits for the channels' goroutines.
	ipcIn      chan ipc.Message
	channelsWG sync.WaitGroup
	// ipcFaults wakes Run to look for channels closed for a fault of
	// their worker and for faulted workers due for SIGKILL
	// (handleChannelFaultsLocked).
	ipcFaults chan struct{}
	// dispatchers hand out the connections of rr and sticky sockets;
	// onDemand holds the sockets workers asked for that `listen:` does not
	// list, by app and listen key; clusterData the first worker's server
	// data per socket, echoed to the others.
	dispatchers map[*netshare.Socket]*dispatcher
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
	// notifiedReady: READY=1 was sent; statusLine the last STATUS=.
	notifiedReady atomic.Bool
	statusLine    string
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

// setMembersReadyLocked marks w's SO_REUSEPORT sockets ready to take new
// connections, or not.
func (s *Supervisor) setMembersReadyLocked(w *worker, ready bool) {
	for m := range w.members {
		if err := m.SetReady(ready); err != nil {
			s.opts.Logger.Warn("new connections may reach a worker that is not ready", "app", w.App, "worker", w.ID, "err", err)
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
	return &Supervisor{
		opts:           opts,
		stdout:         newOutputStream("stdout", opts.Stdout, changed),
		stderr:         newOutputStream("stderr", opts.Stderr, changed),
		outputChanged:  changed,
		outputReports:  map[string]outputReport{},
		requests:       make(chan func()),
		ended:          make(chan struct{}),
		kill:           make(chan struct{}, 1),
		reloadRequests: make(chan struct{}, 1),
		watching:       make(chan struct{}, 1),
		reloadSem:      make(chan struct{}, 1),
		loadSlot:       make(chan struct{}, 1),
		stopping:       make(chan struct{}),
		rollouts:       map[string]reconcile.RolloutStatus{},
		specs:          map[string]reconcile.AppSpec{},
		scale:          map[string]scaleOverride{},
		restartCount:   map[string]int{},
		rollingOut:     map[string]string{},
		pool:           netshare.NewPool(),
		ipcIn:          make(chan ipc.Message, 256),
		ipcFaults:      make(chan struct{}, 1),
		dispatchers:    map[*netshare.Socket]*dispatcher{},
		onDemand:       map[string]map[string]*netshare.Socket{},
		clusterData:    map[*netshare.Socket]json.RawMessage{},
		appSockets:     map[string][]*netshare.Socket{},
		workers:        map[int]*worker{},
		byPID:          map[int]*worker{},
		nextID:         1,
	}
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
	reapCtx, stopReap := context.WithCancel(context.Background())
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
		for _, w := range s.workers {
			if w.cl != nil {
				w.cl.ch.Close()
			}
		}
		s.channelsWG.Wait()
		for _, d := range s.dispatchers {
			d.close()
		}
		for _, w := range s.workers {
			w.releaseSockets()
		}
		for _, socks := range s.onDemand {
			for _, sock := range socks {
				sock.Release()
			}
		}
		for _, socks := range s.appSockets {
			for _, sock := range socks {
				sock.Release()
			}
		}
		if s.notify != nil {
			s.notify.Close()
		}
		s.copiers.drain(outputDrain)
	}()
	sock, err := notify.Listen(s.opts.NotifyDir)
	if err != nil {
		return err
	}
	s.notify = sock
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

	if _, err := s.applyLocked(set); err != nil {
		return err
	}
	done := ctx.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		desired := s.specs
		if s.shutting {
			desired = nil
		}
		plan := reconcile.Plan(desired, s.observedLocked(), now)
		s.executeLocked(plan, now)
		s.reportRolloutsLocked(plan.Rollouts)
		if s.shutting && len(s.workers) == 0 {
			if s.forced {
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
		s.notifyLocked(now)
		var wake <-chan time.Time
		if !plan.RequeueAt.IsZero() {
			timer.Reset(max(time.Until(plan.RequeueAt), 0))
			wake = timer.C
		}
		select {
		case ex := <-exits:
			s.handleExitLocked(ex)
		case m := <-notes:
			s.handleNotifyLocked(m)
		case m := <-s.ipcIn:
			s.handleIPCLocked(m, time.Now())
		case <-s.ipcFaults:
			s.handleChannelFaultsLocked(time.Now())
		case <-wake:
		case <-done:
			done = nil
			s.shutting = true
			s.markStopping()
			s.sdNotify("STOPPING=1")
			s.opts.Logger.Info("stopping all workers")
		case req := <-s.requests:
			req()
		case <-s.outputChanged:
			s.reportOutputLocked()
		case <-s.kill:
			s.killAllLocked()
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

// do runs f in the Run goroutine and waits for it to finish.
func (s *Supervisor) do(ctx context.Context, f func()) error {
	done := make(chan struct{})
	select {
	case s.requests <- func() { f(); close(done) }:
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
	if err := s.do(ctx, func() { changes, applyErr = s.applyLocked(set) }); err != nil {
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
	err := s.do(ctx, func() { out = s.workersLocked() })
	return out, err
}

func (s *Supervisor) applyLocked(set *manifest.Set) ([]manifest.Change, error) {
	if err := s.bindLocked(set); err != nil {
		return nil, err
	}
	first := s.set == nil
	changes := s.effectiveChangesLocked(set)
	for _, name := range s.dropStaleOverridesLocked(set) {
		s.opts.Logger.Info("the manifest's instances changed: the runtime scale override is dropped", "app", name)
	}
	s.set = set
	for name := range s.specs {
		if _, ok := set.Apps[name]; !ok {
			delete(s.specs, name)
			delete(s.rollingOut, name)
		}
	}
	for _, a := range set.Apps {
		s.setSpecLocked(a)
	}
	if w := DescriptorWarning(set); w != "" && (first || len(changes) > 0) {
		s.opts.Logger.Warn(w)
	}
	switch {
	case first:
		s.emit(Event{Type: EventApply, Detail: plural.Count(len(set.Apps), "app") + ", " + plural.Count(set.Workers(), "worker")})
	case len(changes) == 0:
		s.opts.Logger.Debug("reload: manifests unchanged")
	default:
		for _, c := range changes {
			ev := Event{Type: EventReload, App: c.App, Detail: c.String()}
			if a := set.Apps[c.App]; a != nil {
				ev.Generation = s.specs[c.App].Generation
			}
			s.emit(ev)
		}
	}
	return changes, nil
}

// bindLocked takes the sockets of every address in set, binding those not
// bound yet, and drops the previous set's hold on its own. If any address
// cannot be bound, nothing changes and the errors name the manifest lines.
// An address no longer listed stays open while workers use it.
func (s *Supervisor) bindLocked(set *manifest.Set) error {
	next := map[string][]*netshare.Socket{}
	var errs []error
	reuseport := false
	for _, name := range set.Names() {
		a := set.Apps[name]
		for _, ln := range a.Listen {
			rp := a.SchedulingPolicy == "reuseport"
			reuseport = reuseport || rp
			sock, err := s.pool.Acquire(ln, rp, fmt.Sprintf("%s[%d]", name, ln.Index))
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
	for _, socks := range s.appSockets {
		for _, sock := range socks {
			held[sock] = true
			sock.Release()
		}
	}
	s.appSockets = next
	// Sockets opened on demand for an app that is gone close once the
	// workers using them are gone too.
	for name, socks := range s.onDemand {
		if _, ok := set.Apps[name]; ok {
			continue
		}
		for _, sock := range socks {
			sock.Release()
			delete(s.clusterData, sock)
		}
		delete(s.onDemand, name)
	}
	for name, socks := range next {
		for _, sock := range socks {
			if !held[sock] { // newly bound
				s.opts.Logger.Info("listening", "app", name, "listen", sock.Listen.Raw, "address", sock.Addr.String())
				if sock.Replaced {
					s.opts.Logger.Info("replaced a stale socket file nothing listened on", "app", name, "path", sock.Listen.Address)
				}
			}
		}
	}
	if reuseport && !s.migration {
		s.migration = true
		s.enableMigrationLocked()
	}
	return nil
}

// enableMigrationLocked turns net.ipv4.tcp_migrate_req on, unless
// Options.NoSysctl forbids it, and warns when it stays off.
func (s *Supervisor) enableMigrationLocked() {
	const warning = "connections queued on a retiring worker's SO_REUSEPORT socket may be reset"
	if !s.opts.NoSysctl {
		if _, err := sysctl.EnableMigration(s.opts.Logger); err != nil {
			s.opts.Logger.Warn(warning, "err", err)
		}
		return
	}
	on, err := sysctl.Migration()
	switch {
	case err != nil:
		s.opts.Logger.Warn(warning, "err", err)
	case !on:
		s.opts.Logger.Warn(warning+": net.ipv4.tcp_migrate_req is 0 and --sysctl=false forbids paddock to turn it on",
			"sysctl", "net.ipv4.tcp_migrate_req")
	}
}

// Listeners returns the addresses each app listens on, as bound (the port
// chosen for port 0 included).
func (s *Supervisor) Listeners(ctx context.Context) (map[string][]string, error) {
	out := map[string][]string{}
	err := s.do(ctx, func() {
		for name, socks := range s.appSockets {
			for _, sock := range socks {
				out[name] = append(out[name], sock.Addr.String())
			}
		}
	})
	return out, err
}

// reportRolloutsLocked emits rollout-progress when an app's rolling update
// moved, rollout-stalled when it stalls, and rollout-progress "complete"
// when it is over: its new workers are all ready and no old one serves, or
// the app has no rolling update any more (it was removed, or its old
// workers went while nothing was rolling out).
func (s *Supervisor) reportRolloutsLocked(now map[string]reconcile.RolloutStatus) {
	for app, st := range now {
		if prev, was := s.rollouts[app]; !was || prev != st {
			s.rollouts[app] = st
			gen := s.specs[app].Generation
			s.emit(Event{Type: EventRolloutProgress, App: app, Generation: gen, Detail: st.String()})
			if st.Stalled != "" && st.Stalled != prev.Stalled {
				keep := "; the old workers keep serving until a later change"
				if st.Old == 0 {
					keep = "; no old worker is left to serve"
				}
				s.emit(Event{Type: EventRolloutStalled, App: app, Generation: gen, Detail: st.Stalled + keep})
			}
		}
		if st.Complete() {
			s.finishRolloutLocked(app)
		}
	}
	for app := range s.rollouts {
		if _, ok := now[app]; !ok {
			s.finishRolloutLocked(app)
		}
	}
}

// finishRolloutLocked ends app's rolling update: "complete".
func (s *Supervisor) finishRolloutLocked(app string) {
	delete(s.rollouts, app)
	delete(s.rollingOut, app)
	if spec, ok := s.specs[app]; ok && spec.RollingOut {
		spec.RollingOut = false
		s.specs[app] = spec
	}
	s.emit(Event{Type: EventRolloutProgress, App: app, Generation: s.specs[app].Generation, Detail: "complete"})
}

// Rollouts returns the status of every app in a rolling update.
func (s *Supervisor) Rollouts(ctx context.Context) (map[string]reconcile.RolloutStatus, error) {
	out := map[string]reconcile.RolloutStatus{}
	err := s.do(ctx, func() {
		for k, v := range s.rollouts {
			out[k] = v
		}
	})
	return out, err
}

// handleNotifyLocked takes an sd_notify message: the sender must be a
// worker or a process in a worker's process group. A message whose sender
// was reaped before it was read (known with SCM_PIDFD) counts for nobody:
// its pid may be a new worker's by now, and a worker that is gone has
// nothing to declare.
func (s *Supervisor) handleNotifyLocked(m notify.Message) {
	if m.Reaped {
		s.opts.Logger.Warn("notification from a process reaped before it was read, ignored", "pid", m.PID)
		return
	}
	w, ok := s.byPID[m.PID]
	if !ok && m.PGID != 0 {
		w, ok = s.byPID[m.PGID]
	}
	if !ok {
		s.opts.Logger.Warn("notification from a process that is not a worker, ignored", "pid", m.PID)
		return
	}
	if st, ok := m.Fields["STATUS"]; ok {
		w.status = st
	}
	if m.Ready() && !w.Ready && w.Phase == reconcile.Running && w.app.Readiness == manifest.ReadinessNotify {
		s.markReadyLocked(w)
	}
}

func (s *Supervisor) observedLocked() []reconcile.Worker {
	out := make([]reconcile.Worker, 0, len(s.workers))
	for _, w := range s.workers {
		out = append(out, w.Worker)
	}
	return out
}

func (s *Supervisor) executeLocked(plan reconcile.Result, now time.Time) {
	for _, a := range plan.Actions {
		switch a := a.(type) {
		case reconcile.Start:
			if a.Replaces != 0 {
				delete(s.workers, a.Replaces)
			}
			s.startLocked(s.set.Apps[a.App], a.Restarts, now)
		case reconcile.Stop:
			s.stopLocked(s.workers[a.Worker], now)
		case reconcile.Kill:
			w := s.workers[a.Worker]
			if !w.signaled {
				// A disconnected worker still running at killTimeout:
				// killSignal now, SIGKILL after another killTimeout.
				s.signalStopLocked(w)
				w.StopDeadline = now.Add(w.KillTimeout)
				continue
			}
			w.Killed = true
			if w.proc != nil {
				if err := w.proc.KillGroup(); err != nil {
					s.opts.Logger.Error("kill", "app", w.App, "worker", w.ID, "pid", w.pid, "err", err)
				}
			}
			if s.shutting {
				s.forced = true
			}
			s.emit(Event{Type: EventKill, App: w.App, Worker: w.ID, PID: w.pid, Generation: w.Generation,
				Detail: fmt.Sprintf("did not stop within killTimeout %s", w.KillTimeout)})
		case reconcile.Forget:
			delete(s.workers, a.Worker)
		}
	}
}

// startLocked forks a new worker of app. A fork that fails counts as a
// failed exit, with the usual restart policy and backoff.
func (s *Supervisor) startLocked(app *manifest.App, restarts int, now time.Time) {
	id := s.nextID
	s.nextID++
	w := &worker{
		Worker: reconcile.Worker{
			ID: id, App: app.Name, Generation: s.specs[app.Name].Generation, Phase: reconcile.Running,
			Restarts: restarts, KillSignal: app.KillSignal, KillTimeout: app.KillTimeout,
		},
		app:       app,
		startedAt: now,
	}
	s.workers[id] = w

	spec := procs.Spec{
		Path: app.Resolved.Path,
		Argv: app.Resolved.Argv,
		Dir:  app.Resolved.Dir,
		Env:  workerEnv(s.opts.Environ, app, id),
	}
	if app.Readiness == manifest.ReadinessNotify {
		spec.Env = append(spec.Env, "NOTIFY_SOCKET="+s.notify.Path())
	}
	for _, sock := range s.appSockets[app.Name] {
		f := sock.File
		if g := sock.Group(); g != nil && !app.HasChannel() { // a reuseport anchor: the worker gets its own socket
			m, wf, err := g.Join()
			if m == nil {
				w.releaseSockets()
				s.startFailedLocked(w, err, now)
				return
			}
			if err != nil {
				s.opts.Logger.Warn("new connections may reach a worker that is not ready", "app", w.App, "worker", id, "err", err)
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
			s.startFailedLocked(w, err, now)
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
		for i, out := range []io.Writer{s.stdout, s.stderr} {
			lp, wr, err := procs.NewOutputPipe(prefix, out)
			if err != nil {
				failChannel()
				w.releaseSockets()
				s.startFailedLocked(w, err, now)
				return
			}
			if tap := s.opts.OnOutput; tap != nil {
				stream, name := [2]string{"stdout", "stderr"}[i], app.Name
				lp.Tap = func(line []byte) { tap(name, id, stream, line) }
			}
			pipes = append(pipes, wr)
			prefixers = append(prefixers, lp)
		}
		spec.Stdout, spec.Stderr = pipes[0], pipes[1]
	} else {
		spec.Stdout, _ = s.opts.Stdout.(*os.File)
		spec.Stderr, _ = s.opts.Stderr.(*os.File)
	}
	proc, err := s.opts.Reaper.Start(spec)
	for _, p := range pipes {
		p.Close() // the worker holds its own copies
	}
	if err != nil {
		for _, lp := range prefixers {
			lp.Close()
		}
		failChannel()
		w.releaseSockets()
		s.startFailedLocked(w, err, now)
		return
	}
	if child != nil {
		child.Close() // the worker holds its end; ours sees EOF when it dies
		ch, name := w.cl.ch, w.Name()
		s.channelsWG.Go(func() { s.runChannel(ch, name) })
	}
	for _, lp := range prefixers {
		s.copiers.start(lp)
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
	s.byPID[proc.Pid] = w
	s.emit(Event{Type: EventFork, App: w.App, Worker: id, PID: w.pid, Generation: w.Generation, Attempt: restarts})
	s.emit(Event{Type: EventOnline, App: w.App, Worker: id, PID: w.pid, Generation: w.Generation})
	if len(w.sockets) > 0 && w.cl == nil {
		// A LISTEN_FDS worker is listening as soon as it runs: its
		// sockets were listening before it started. A cluster worker
		// reports it.
		s.emit(Event{Type: EventListening, App: w.App, Worker: id, PID: w.pid, Generation: w.Generation,
			Detail: strings.Join(spec.ListenNames, ":")})
	}
	if app.Readiness == manifest.ReadinessOnline || (app.Readiness == manifest.ReadinessListening && w.cl == nil) {
		s.markReadyLocked(w)
	}
}

// markReadyLocked records that w is ready to serve: its SO_REUSEPORT
// sockets take new connections from now on.
func (s *Supervisor) markReadyLocked(w *worker) {
	w.Ready, w.ReadyAt = true, time.Now()
	s.setMembersReadyLocked(w, true)
	s.emit(Event{Type: EventReady, App: w.App, Worker: w.ID, PID: w.pid, Generation: w.Generation,
		Delay: time.Since(w.startedAt)})
}

// notifyLocked tells systemd (Options.Notify) that paddock is ready, the
// first time the running set converged, and keeps STATUS= up to date.
func (s *Supervisor) notifyLocked(now time.Time) {
	if s.opts.Notify == nil {
		return
	}
	if !s.notifiedReady.Load() && !s.shutting && s.convergedLocked(now) {
		s.notifiedReady.Store(true)
		s.sdNotify("READY=1")
	}
	want, ready := 0, 0
	for _, spec := range s.specs {
		want += spec.Instances
	}
	for _, w := range s.workers {
		if w.Phase == reconcile.Running && w.Ready {
			ready++
		}
	}
	line := fmt.Sprintf("%s, %d/%s ready", plural.Count(len(s.specs), "app"), ready, plural.Count(want, "worker"))
	if len(s.rollouts) > 0 {
		line += fmt.Sprintf(", %d rolling out", len(s.rollouts))
	}
	if s.shutting {
		line = "stopping, " + plural.Count(len(s.workers), "worker") + " left"
	}
	if line != s.statusLine {
		s.statusLine = line
		s.sdNotify("STATUS=" + line)
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

func (s *Supervisor) startFailedLocked(w *worker, err error, now time.Time) {
	s.opts.Logger.Error("start failed", "app", w.App, "worker", w.ID, "err", err)
	s.emit(Event{Type: EventExit, App: w.App, Worker: w.ID, Generation: w.Generation, ExitCode: -1,
		StartFailed: true, Detail: startFailureDetail(err)})
	s.afterExitLocked(w, false, 0, now)
}

func (s *Supervisor) stopLocked(w *worker, now time.Time) {
	// No new connection reaches its SO_REUSEPORT sockets from before it
	// is told to stop; those queued there are accepted by it, or moved to
	// the other workers when it exits.
	s.setMembersReadyLocked(w, false)
	w.Phase = reconcile.Stopping
	w.StopDeadline = now.Add(w.KillTimeout)
	if w.cl != nil {
		// Cluster's own graceful path: no new connection from now on,
		// then disconnect (the worker closes its servers and exits);
		// killSignal after killTimeout, SIGKILL after another.
		s.unsubscribeLocked(w)
		if err := w.cl.send(map[string]any{"act": "disconnect"}, -1, nil); err == nil {
			s.emit(Event{Type: EventDisconnect, App: w.App, Worker: w.ID, PID: w.pid, Generation: w.Generation,
				Delay: w.KillTimeout})
			return
		}
	}
	s.signalStopLocked(w)
}

// signalStopLocked sends the worker its killSignal.
func (s *Supervisor) signalStopLocked(w *worker) {
	w.signaled = true
	sig, _ := manifest.SignalNumber(w.KillSignal)
	s.emit(Event{Type: EventStopping, App: w.App, Worker: w.ID, PID: w.pid, Generation: w.Generation,
		Signal: w.KillSignal, Delay: w.KillTimeout, Detail: w.fault.detail()})
	if err := w.proc.Signal(sig); err != nil {
		s.opts.Logger.Error("signal", "app", w.App, "worker", w.ID, "pid", w.pid, "err", err)
	}
}

func (s *Supervisor) handleExitLocked(ex procs.Exit) {
	w, ok := s.byPID[ex.Pid]
	if !ok {
		s.opts.Logger.Debug("reaped orphan", "pid", ex.Pid, "status", ex.String())
		return
	}
	delete(s.byPID, ex.Pid)
	w.proc.Release()
	if err := w.releaseSockets(); err != nil {
		s.opts.Logger.Warn("new connections may reach a worker that is not ready", "app", w.App, "worker", w.ID, "err", err)
	}
	faulted := s.closeChannelOnExitLocked(w)
	// A worker's process group does not outlive it: the reaper killed
	// whatever it left behind in its group before reaping it.
	if ex.GroupKilled {
		s.opts.Logger.Info("killed leftover processes of exited worker", "app", w.App, "worker", w.ID, "pgid", w.pid)
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
		s.opts.Logger.Error("start failed", "app", w.App, "worker", w.ID, "err", ex.StartErr)
		ev.StartFailed, ev.Detail = true, startFailureDetail(ex.StartErr)
	}
	s.emit(ev)
	w.pid = 0
	w.proc = nil
	if w.Phase == reconcile.Stopping {
		delete(s.workers, w.ID)
		return
	}
	if w.exitedAfterDisconnect && !faulted {
		// cluster.worker.disconnect() in the worker: it left on purpose,
		// as Node's primary sees it; it is not replaced.
		w.Phase = reconcile.Done
		s.opts.Logger.Info("not restarted: the worker disconnected itself", "app", w.App, "worker", w.ID)
		return
	}
	s.afterExitLocked(w, ex.Success() && !faulted, ex.Time.Sub(w.startedAt), ex.Time)
}

// afterExitLocked moves a worker that exited on its own to Backoff or Done.
func (s *Supervisor) afterExitLocked(w *worker, success bool, uptime time.Duration, now time.Time) {
	w.Worker = reconcile.AfterExit(w.Worker, reconcile.ExitPolicy{
		Restart:      w.app.Restart,
		Delay:        w.app.Backoff.Delay,
		ResetAfter:   w.app.Backoff.Max,
		MinReadyTime: w.app.MinReadyTime,
	}, success, uptime, now)
	if w.Phase == reconcile.Backoff {
		s.emit(Event{Type: EventRestart, App: w.App, Worker: w.ID, Generation: w.Generation,
			Delay: w.RestartAt.Sub(now), Attempt: w.Restarts})
	} else {
		s.opts.Logger.Info("not restarted", "app", w.App, "worker", w.ID, "restart", w.app.Restart)
	}
}

func (s *Supervisor) killAllLocked() {
	for _, w := range s.workers {
		if w.proc != nil {
			_ = w.proc.KillGroup()
		}
	}
}

func (s *Supervisor) emit(e Event) {
	e.Time = time.Now()
	level := slog.LevelInfo
	if (e.Type == EventExit && !e.Intended) || e.Type == EventOutputLost {
		level = slog.LevelWarn
	}
	s.opts.Logger.Log(context.Background(), level, e.Type, e.attrs()...)
	if s.opts.OnEvent != nil {
		s.opts.OnEvent(e)
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
