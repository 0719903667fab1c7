// Package supervisor runs the reconcile loop: one goroutine owns the apps and
// workers, plans with reconcile.Plan, and carries the plan out with procs.
// Process exits, restart timers and requests (apply a new manifest set, list
// the workers) arrive as messages to that goroutine; nothing else touches its
// state.
package supervisor

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/paddock-sh/paddock/internal/ipc"
	"github.com/paddock-sh/paddock/internal/logfile"
	"github.com/paddock-sh/paddock/internal/notify"
	"github.com/paddock-sh/paddock/internal/procstat"
	"github.com/paddock-sh/paddock/internal/revision"
	"github.com/paddock-sh/paddock/manifest"
	"github.com/paddock-sh/paddock/netshare"
	"github.com/paddock-sh/paddock/procs"
	"github.com/paddock-sh/paddock/reconcile"
)

// ErrStopTimeout is returned by Run when the shutdown needed SIGKILL for at
// least one worker that did not stop within its killTimeout.
var ErrStopTimeout = errors.New("some workers did not stop within their killTimeout and were killed")

// ErrNotRunning is returned by requests made after Run returned.
var ErrNotRunning = errors.New("the supervisor has stopped")

// ErrKilled is returned by Run after Kill.
var ErrKilled = errors.New("killed every worker at once")

// outputDrain bounds how long Run waits, after the last worker exited, for
// the output of the workers to be copied (a detached grandchild may hold
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
	// Stdout and Stderr receive every worker's output, line by line:
	// prefixed with "app/id | " for a silent app, exactly as written
	// otherwise. Default: os.Stdout and os.Stderr.
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
	// Revision, when set, returns the revision of the manifests' source
	// (revision.Of of the manifest paths): Reload reads it before and after
	// each Load, Run before applying its first set. Status, the apply and
	// reload events, and reload-failed carry it. An error is logged; the
	// revision returned with it is used.
	Revision func() (revision.Revision, error)
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
	// OnOutput, when set, receives every line a worker writes (without
	// its newline), from the goroutine copying that stream (stream is
	// "stdout" or "stderr"). It must not keep line.
	OnOutput func(app string, worker int, stream string, line []byte)
	// LogFormat is the format of the lines written to the apps' log
	// files (`logs:`): logfile.FormatText ("app/id | line", the default)
	// or logfile.FormatJSON (`paddock run --log-format json`).
	LogFormat string
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
	// ExitOnFailed makes every app critical (`paddock run
	// --exit-on-failed`), as `critical: true` does one: when it has been
	// failing for its failAfter, Run stops every app and returns an
	// *AppFailedError.
	ExitOnFailed bool
	// SampleInterval is how often the resource use of the workers (the
	// resident memory and CPU time of each one's process group) is read
	// from /proc while something needs it: an app with maxMemory, or a
	// reader of Status (paddock status, metrics) within the last minute.
	// Nothing is read otherwise. Zero means procstat.DefaultInterval (5s).
	SampleInterval time.Duration

	// processes and clock, for the owner loop's own tests only, stand in
	// for Reaper and the time package (see seam.go). Nil: the real ones.
	processes processes
	clock     clock
	// usageSource, for tests only, stands in for /proc (see
	// procstat.Sampler.Source). Nil: /proc.
	usageSource func(groups map[int]bool) (map[int]procstat.Usage, error)
}

// Supervisor keeps the workers of a manifest set running. Create it with
// New, then call Run.
type Supervisor struct {
	opts Options
	// stdout and stderr receive the lines of every worker;
	// outputChanged is poked when writing to one starts or stops failing,
	// and when a worker's output has been copied to its end.
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
	// revisionErr is the last error of Options.Revision ("" none), so
	// that one is logged once.
	revisionErr atomic.Pointer[string]
	loadSlot    chan struct{}
	stopping    chan struct{}
	stopOnce    sync.Once
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
	// usage reads the resource use of the workers' process groups;
	// usageSampled is poked after each reading that a worker's
	// maxMemory depends on; usageFailing says the last reading failed.
	usage        *procstat.Sampler
	usageSampled chan struct{}
	usageFailing atomic.Bool
	// logs writes the workers' lines to the apps' log files; logsChanged
	// is poked when one starts or stops dropping lines.
	logs        *logfile.Set
	logsChanged chan struct{}

	// own is the state Run's goroutine owns; other goroutines reach it
	// only through do.
	own *owner
}

// owner holds the state of a running supervisor: the manifest set, the
// workers, the sockets. Only Run's goroutine touches it, so nothing in it
// is locked: other goroutines hand that goroutine a function to run with it
// (Supervisor.do). Its methods are those that read or change that state.
type owner struct {
	// revision is the revision of the set applied, at appliedAt; rejected
	// the last reload rejected since (see ManifestsStatus).
	revision  revision.Revision
	appliedAt time.Time
	rejected  *RejectedRevision

	// sup is the Supervisor, for the parts it shares with other
	// goroutines (output streams, IPC inbox, reload state); opts its
	// options, read-only.
	sup  *Supervisor
	opts *Options
	// procs starts and reaps the workers; clock is the time the loop reads
	// (Options.processes and Options.clock).
	procs processes
	clock clock

	set      *manifest.Set
	specs    map[string]reconcile.AppSpec
	workers  map[int]*worker
	byPID    map[int]*worker
	nextID   int
	shutting bool // every worker is being stopped
	forced   bool // a worker needed SIGKILL during shutdown
	copiers  outputCopiers
	// outputReports is what was last reported of stdout and stderr;
	// logFiles is what each app's log files were last configured to.
	outputReports map[string]outputReport
	logFiles      map[string]logfile.App
	notify        *notify.Socket
	// pool holds the listening sockets; appSockets the references that
	// each app of the current set holds, in `listen:` order.
	pool       *netshare.Pool
	appSockets map[string][]*netshare.Socket
	migration  bool // tcp_migrate_req was checked
	// dispatchers hand out the connections of rr and sticky sockets;
	// dispatchWG waits for their Run goroutines; handles holds the
	// cluster workers' server handles by app and key (serverhandles.go);
	// onDemand the sockets opened for them that `listen:` does not list,
	// by app and address as bound; clusterData the first worker's server
	// data per socket, echoed to the others.
	dispatchers map[*netshare.Socket]*dispatcher
	dispatchWG  sync.WaitGroup
	handles     map[string]map[string]*serverHandle
	onDemand    map[string]map[string]*netshare.Socket
	clusterData map[*netshare.Socket]json.RawMessage
	// udpHandles holds the UDP sockets bound for workers' dgram sockets
	// (clusterudp.go), created on first use.
	udpHandles map[udpKey]*udpHandle
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
	// crash holds the crash-loop record of the apps whose workers exited
	// soon after they started (crashloop.go); failed, once a critical app
	// failed, is what Run returns.
	crash  map[string]*appCrash
	failed *AppFailedError
	// held holds the apps whose workers wait for a dependency, with why,
	// as the last plan said (reconcile.Result.Held). removedDeps holds the
	// dependsOn of apps removed from the set while they still have
	// workers, which stop after those of their dependants.
	held        map[string]string
	removedDeps map[string][]string
	// lastExit holds, by app, the last exit of one of its workers that
	// paddock did not ask for (see recordExit); exitTails the tails of
	// those whose output was still being copied then.
	lastExit  map[string]*ExitInfo
	exitTails map[string]pendingTail
	// wakeAt, when not zero, is when the loop must plan again although
	// the plan asks for no requeue then (a report that waits); the loop
	// clears it each turn.
	wakeAt time.Time
	// lastGood holds, by app, the last generation whose workers were all
	// available (noteSettled); rolledBack the apps that run it again
	// after a rolling update stalled (rollout.onStall: rollback).
	lastGood   map[string]release
	rolledBack map[string]*rollback
	// prober runs the health checks; healthCounts counts each app's
	// probes by result.
	prober       *prober
	healthCounts map[string]*healthCounters
	// relays holds each app's relaying state (ipc.relay, relay.go),
	// made on its first relayed message.
	relays map[string]*appRelay
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
	if opts.processes == nil {
		opts.processes = reaperProcesses{opts.Reaper}
	}
	if opts.clock == nil {
		opts.clock = realClock{}
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
		usageSampled:   make(chan struct{}, 1),
		logsChanged:    make(chan struct{}, 1),
	}
	s.logs = logfile.New(logfile.Options{Format: opts.LogFormat, Logger: opts.Logger, OnChange: func() {
		select {
		case s.logsChanged <- struct{}{}:
		default:
		}
	}})
	s.usage = &procstat.Sampler{Interval: opts.SampleInterval, Source: opts.usageSource, OnSample: s.sampled}
	s.own = newOwner(s)
	return s
}

// newOwner returns the state of s's Run, empty.
func newOwner(s *Supervisor) *owner {
	return &owner{
		sup:           s,
		opts:          &s.opts,
		procs:         s.opts.processes,
		clock:         s.opts.clock,
		outputReports: map[string]outputReport{},
		rollouts:      map[string]reconcile.RolloutStatus{},
		specs:         map[string]reconcile.AppSpec{},
		scale:         map[string]scaleOverride{},
		restartCount:  map[string]int{},
		rollingOut:    map[string]string{},
		pool:          netshare.NewPool(),
		dispatchers:   map[*netshare.Socket]*dispatcher{},
		handles:       map[string]map[string]*serverHandle{},
		onDemand:      map[string]map[string]*netshare.Socket{},
		clusterData:   map[*netshare.Socket]json.RawMessage{},
		appSockets:    map[string][]*netshare.Socket{},
		workers:       map[int]*worker{},
		byPID:         map[int]*worker{},
		nextID:        1,
		lastExit:      map[string]*ExitInfo{},
		exitTails:     map[string]pendingTail{},
		lastGood:      map[string]release{},
		rolledBack:    map[string]*rollback{},
		prober:        newProber(s.opts.processes),
		healthCounts:  map[string]*healthCounters{},
	}
}
