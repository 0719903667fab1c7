package supervisor

import (
	"log/slog"
	"time"
)

// Event types.
const (
	EventFork       = "fork"       // a worker process was created
	EventOnline     = "online"     // the worker is running (its process started)
	EventListening  = "listening"  // the worker listens (LISTEN_FDS workers: at once; Detail: LISTEN_FDNAMES)
	EventStopping   = "stopping"   // the worker was asked to stop (killSignal)
	EventDisconnect = "disconnect" // a cluster worker was asked to disconnect (graceful retirement)
	EventMessage    = "message"    // a worker sent a message with process.send that ipc.relay does not relay (Detail: the JSON)
	EventKill       = "kill"       // the worker's process group got SIGKILL
	EventExit       = "exit"       // the worker exited; Intended tells whether it was asked to
	EventRestart    = "restart"    // a replacement is scheduled after Delay
	EventApply      = "apply"      // the first manifest set was applied
	EventReady      = "ready"      // the worker is ready to serve (as its readiness: says); Delay: time since its start
	EventScale      = "scale"      // instances changed at run time (paddock scale); Detail: "2→4 (…)"

	// EventRestartRequested: a rolling restart was asked for (paddock
	// restart); rollout-progress events follow.
	EventRestartRequested = "restart-requested"

	EventWatching        = "watching"         // the manifests are watched from now on (Detail: the paths)
	EventReload          = "reload"           // a changed manifest set was applied; Detail lists the changes
	EventReloadFailed    = "reload-failed"    // a new manifest set was invalid, or a writer still had a file open; the running set is kept
	EventRolloutProgress = "rollout-progress" // a rolling update moved (Detail: "2/3 new ready, 1 old", or "complete")
	EventRolloutStalled  = "rollout-stalled"  // a rolling update cannot progress; Detail says why, Stall what the failing worker left
	EventRolloutRollback = "rollout-rollback" // a stalled rolling update is rolled back (rollout.onStall: rollback): from FromGeneration to Generation; Detail says why

	// EventReplaced: a worker marked for replacement (a failed health
	// check, memory above maxMemory, a missed watchdog; Detail says which)
	// is being stopped, its replacement being available. The stopping or
	// disconnect event follows.
	EventReplaced = "replaced"

	// EventHealthFailed: a worker failed its health check
	// failureThreshold times in a row (Attempt) and is marked for
	// replacement, new first; Detail gives the last probe's answer (an
	// HTTP status and the start of the body, an exit code and the last
	// line of output, an error). A replaced event follows once its
	// replacement is available.
	EventHealthFailed = "health-failed"

	// EventMemoryExceeded: a worker's process group was above its app's
	// maxMemory in two readings in a row (Detail: the figure and the
	// limit); it is marked for replacement, new first.
	EventMemoryExceeded = "memory-exceeded"
	// EventWatchdogMissed: a notify worker with a watchdog sent no
	// WATCHDOG=1 within its period, or sent WATCHDOG=trigger (Detail says
	// which); it is marked for replacement, new first.
	EventWatchdogMissed = "watchdog-missed"

	// EventOutputLost: writing workers' lines to paddock's stdout
	// or stderr (Stream) fails; lines are dropped and counted from now on.
	EventOutputLost = "output-lost"
	// EventOutputRestored: writing to Stream works again; Lost lines were
	// dropped meanwhile.
	EventOutputRestored = "output-restored"

	// EventLogDropped: writing to a log file (`logs:`) fails, or cannot
	// keep up (its queue is full): the lines for it are dropped and
	// counted from now on (Detail names the file, its apps and why); App
	// is set when the file is one app's.
	EventLogDropped = "log-dropped"
	// EventLogResumed: the log file takes lines again; Lost lines were
	// dropped meanwhile.
	EventLogResumed = "log-resumed"

	// EventRelayDropped: a worker does not read its IPC channel (it holds
	// ipc.RelayQueueLen messages unread), so the messages relayed to it
	// (ipc.relay) are dropped and counted, from this one on.
	EventRelayDropped = "relay-dropped"
	// EventRelayResumed: a worker that was dropping relayed messages took
	// one again; Lost counts those dropped meanwhile.
	EventRelayResumed = "relay-resumed"

	// EventDependencyWait: the app has workers to start (or a rolling
	// update to carry on) and waits for a dependency that is not
	// available; Detail says which and why ("waiting for db: 0/1
	// available").
	EventDependencyWait = "dependency-wait"
	// EventDependencyReady: the app no longer waits for a dependency;
	// Detail says what it waited for ("was waiting for db: ...").
	EventDependencyReady = "dependency-ready"

	// EventCrashLoop: the app's workers keep exiting soon after they
	// start (see reconcile.CrashLoop); Detail: "3 exits in 60s, last
	// exit 1".
	EventCrashLoop = "crash-loop"
	// EventCrashLoopEnded: every worker of a crash-looping app stayed up
	// for its backoff.max.
	EventCrashLoopEnded = "crash-loop-ended"
	// EventAppFailed: a critical app was failing for its failAfter;
	// paddock stops every app and exits (Detail says why).
	EventAppFailed = "app-failed"
)

// Event is something that happened to a worker or to the supervisor. Events
// never carry environment values.
type Event struct {
	Time       time.Time
	Type       string
	App        string
	Worker     int
	PID        int
	Generation string
	// Exit: how the process ended. ExitCode is -1 when a signal ended it.
	ExitCode int
	Signal   string
	Intended bool
	// StartFailed: the program could not be started (Detail says why);
	// PID is 0 when not even a process was created.
	StartFailed bool
	// StartErr, with StartFailed, is why: the app, the worker, the
	// program and the cause (Detail says the same in words).
	StartErr *StartError
	// Restart: the delay and the consecutive restart count. Stopping: the
	// killTimeout in Delay and the killSignal in Signal.
	Delay   time.Duration
	Attempt int
	// Output events: paddock's "stdout" or "stderr", and the lines lost;
	// relay-resumed: the relayed messages lost.
	Stream string
	Lost   int64
	// Detail is a human-readable addition ("restart policy never", an
	// error).
	Detail string
	// Stall, on rollout-stalled, is what the failing worker left: its
	// last exit, or its last lines while it still runs (see StallInfo).
	Stall *StallInfo
	// FromGeneration, on rollout-rollback, is the generation whose rolling
	// update stalled; Generation the one the app returns to.
	FromGeneration string
	// Revision, on apply, reload and reload-failed, is the revision of the
	// manifests' source applied or rejected (see Options.Revision); empty
	// when none is known.
	Revision string
}

// attrs returns the event as slog attributes, leaving out empty ones.
func (e Event) attrs() []any {
	var a []any
	if e.App != "" {
		a = append(a, slog.String("app", e.App))
	}
	if e.Worker != 0 {
		a = append(a, slog.Int("worker", e.Worker))
	}
	if e.PID != 0 {
		a = append(a, slog.Int("pid", e.PID))
	}
	for _, kv := range [...][2]string{{"generation", e.Generation}, {"fromGeneration", e.FromGeneration}, {"revision", e.Revision}} {
		if kv[1] != "" {
			a = append(a, slog.String(kv[0], kv[1]))
		}
	}
	if e.Type == EventExit {
		if e.Signal != "" {
			a = append(a, slog.String("signal", e.Signal))
		} else {
			a = append(a, slog.Int("code", e.ExitCode))
		}
		a = append(a, slog.Bool("intended", e.Intended))
	}
	switch e.Type {
	case EventRestart:
		a = append(a, slog.Duration("delay", e.Delay))
	case EventReady:
		a = append(a, slog.Duration("after", e.Delay))
	case EventStopping:
		a = append(a, slog.String("signal", e.Signal), slog.Duration("timeout", e.Delay))
	}
	if e.Stream != "" {
		a = append(a, slog.String("stream", e.Stream))
	}
	if e.Type == EventOutputRestored || e.Type == EventRelayResumed || e.Type == EventLogResumed {
		a = append(a, slog.Int64("lost", e.Lost))
	}
	if e.Attempt != 0 {
		a = append(a, slog.Int("attempt", e.Attempt))
	}
	if e.Detail != "" {
		a = append(a, slog.String("detail", e.Detail))
	}
	return a
}
