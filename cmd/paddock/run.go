package main

// paddock run: the supervisor itself.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/paddock-sh/paddock/internal/control"
	"github.com/paddock-sh/paddock/internal/logbuf"
	"github.com/paddock-sh/paddock/internal/metrics"
	"github.com/paddock-sh/paddock/internal/notify"
	"github.com/paddock-sh/paddock/internal/revision"
	"github.com/paddock-sh/paddock/internal/statuspage"
	"github.com/paddock-sh/paddock/internal/supervisor"
	"github.com/paddock-sh/paddock/internal/watch"
	"github.com/paddock-sh/paddock/manifest"
	"github.com/paddock-sh/paddock/procs"
)

// runOptions are paddock run's flags.
type runOptions struct {
	logFormat, logLevel string
	watch               bool
	debounce            time.Duration
	socket              *string
	metricsAddr         string
	httpAddr            string
	healthAddr          string
	sysctl              bool
	cgroup              string
	exitOnFailed        bool
}

// newRunCmd returns `paddock run`.
func newRunCmd(stdout, stderr io.Writer) *cobra.Command {
	var o runOptions
	c := &cobra.Command{
		Use:   "run [flags] [PATH...]",
		Short: "Run the apps declared in PATH (files or directories; default " + defaultManifest + ")",
		Long: `Run the apps declared in the manifests PATH (files, or directories of them;
default ` + defaultManifest + `) and keep them as declared until SIGTERM, SIGINT or
paddock stop. SIGHUP, and with --watch every change to the files, re-reads
them and applies what changed. SIGUSR1 reopens the apps' log files (logs:),
for an external logrotate.

Exit codes: 0 every worker stopped in time; 1 invalid manifests, a failed
start, or workers that had to be killed; 2 usage errors or unreadable paths;
3 a critical app failed (critical: true, or --exit-on-failed).`,
		RunE: func(_ *cobra.Command, args []string) error {
			return exit(runRun(o, args, stdout, stderr))
		},
	}
	fs := c.Flags()
	fs.StringVar(&o.logFormat, "log-format", "text", "log format of paddock's own lines (stderr) and of the apps' log files (logs:): text or json")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.BoolVar(&o.watch, "watch", true, "watch the manifests and apply every change (SIGHUP reloads either way)")
	fs.DurationVar(&o.debounce, "reload-debounce", watch.DefaultDebounce, "apply a change once the manifest files have been quiet this long")
	o.socket = socketFlag(c)
	fs.StringVar(&o.metricsAddr, "metrics-addr", "", "serve Prometheus metrics at http://HOST:PORT/metrics (default: off)")
	fs.StringVar(&o.httpAddr, "http-addr", "", "serve the read-only status page at http://HOST:PORT/, and /metrics; :PORT means 127.0.0.1:PORT (default: off)")
	fs.StringVar(&o.healthAddr, "health-addr", "", "serve the health endpoints /livez, /healthz and /readyz (and /metrics) at http://HOST:PORT; :PORT means every address, for a kubelet's probes (default: off)")
	fs.BoolVar(&o.sysctl, "sysctl", true, "let paddock change sysctls it needs (net.ipv4.tcp_migrate_req for reuseport apps; each change is logged)")
	fs.StringVar(&o.cgroup, "cgroup", "auto", "auto: start the workers in a cgroup v2 of their own, killed as a whole when paddock stops or dies, when paddock can create one; off: never")
	fs.BoolVar(&o.exitOnFailed, "exit-on-failed", false, "make every app critical: when one has been crash-looping at backoff.max with no worker up for its failAfter, stop every app and exit 3")
	_ = c.RegisterFlagCompletionFunc("log-format", cobra.FixedCompletions([]cobra.Completion{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	_ = c.RegisterFlagCompletionFunc("log-level", cobra.FixedCompletions([]cobra.Completion{"debug", "info", "warn", "error"}, cobra.ShellCompDirectiveNoFileComp))
	_ = c.RegisterFlagCompletionFunc("cgroup", cobra.FixedCompletions([]cobra.Completion{"auto", "off"}, cobra.ShellCompDirectiveNoFileComp))
	return c
}

// runRun runs paddock run with its options and manifest paths.
func runRun(o runOptions, args []string, stdout, stderr io.Writer) int {
	if o.cgroup != "auto" && o.cgroup != "off" {
		fmt.Fprintf(stderr, "paddock: --cgroup must be auto or off, got %q\n", o.cgroup)
		return exitUsage
	}
	if o.httpAddr != "" {
		if _, err := statuspage.ListenAddr(o.httpAddr); err != nil {
			fmt.Fprintf(stderr, "paddock: --http-addr %q: %v\n", o.httpAddr, err)
			return exitUsage
		}
	}
	if o.healthAddr != "" {
		if _, _, err := net.SplitHostPort(o.healthAddr); err != nil {
			fmt.Fprintf(stderr, "paddock: --health-addr %q: %v\n", o.healthAddr, err)
			return exitUsage
		}
	}
	logger, err := newLogger(stderr, o.logFormat, o.logLevel)
	if err != nil {
		fmt.Fprintln(stderr, "paddock:", err)
		return exitUsage
	}
	prepareProcess(logger)
	manifests, set, code := loadArgs("run", args, stderr)
	if set == nil {
		return code
	}

	// The control socket, before anything starts: a second supervisor on
	// the same socket refuses to start here.
	socketPath := control.SocketPath(*o.socket)
	ln, err := control.Listen(socketPath, logger)
	if err != nil {
		fmt.Fprintln(stderr, "paddock:", err)
		return exitFailure
	}
	defer ln.Close()
	httpLns, err := listenHTTP(o, logger)
	if err != nil {
		fmt.Fprintln(stderr, "paddock:", err)
		return exitFailure
	}
	defer httpLns.close()

	if addr := os.Getenv(pprofEnv); addr != "" {
		closePprof, err := servePprof(addr, logger)
		if err != nil {
			fmt.Fprintln(stderr, "paddock:", err)
			return exitFailure
		}
		defer closePprof()
	}

	reaper, stopProcs := startGuards(logger, o.cgroup == "auto", o.logFormat == "json")
	defer stopProcs()
	r := newRunner(o, manifests, logger, stdout, stderr, reaper)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	info := r.supervisorInfo(socketPath)
	defer r.serveControl(ln, info, stop)()
	defer r.serveHTTP(httpLns, info)()
	defer handleSignals(logger, r.sup, stop)()

	openFiles, _ := supervisor.OpenFilesLimit()
	logger.Info("paddock starting", "version", versionString(), "pid", os.Getpid(), "apps", len(set.Apps), "workers", set.Workers(),
		"socket", socketPath, "openFilesLimit", openFiles)
	return runExit(r.sup.Run(ctx, set), logger, stderr)
}

// prepareProcess readies paddock's own process to supervise: SIGPIPE, the
// descriptors it inherited, and the orphans of its workers. It logs what
// it could not do and goes on.
func prepareProcess(logger *slog.Logger) {
	// A reader of our stdout or stderr that goes away (paddock run | head,
	// a log shipper restarting) must not end supervision: with SIGPIPE
	// delivered to a channel, a write to a broken pipe only fails (EPIPE),
	// and the supervisor counts the lines it could not write. Notify, not
	// Ignore: an ignored signal would stay ignored in every worker after
	// exec, a caught one is reset to its default there.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)

	// Descriptors inherited from our own parent never reach a worker.
	if err := procs.CloseOnExecInherited(); err != nil {
		logger.Warn("could not mark inherited descriptors close-on-exec", "err", err)
	}
	// As PID 1 the kernel hands us every orphan; otherwise ask for them, so
	// that a worker's orphaned grandchildren are reaped here.
	if os.Getpid() != 1 {
		if err := procs.SetSubreaper(); err != nil {
			logger.Warn("could not become a child subreaper; orphans of workers may stay zombies", "err", err)
		}
	}
}

// runner is what paddock run wires together: the supervisor and what
// observes it (events for the control API, kept output, metrics).
type runner struct {
	sup       *supervisor.Supervisor
	hub       *control.Hub
	logs      *logbuf.Store
	met       *metrics.Metrics
	manifests []string
	logger    *slog.Logger
}

// newRunner creates the supervisor of manifests with o's settings; it
// starts nothing.
func newRunner(o runOptions, manifests []string, logger *slog.Logger, stdout, stderr io.Writer, reaper *procs.Reaper) *runner {
	r := &runner{hub: control.NewHub(), logs: logbuf.New(0, 0, 0), manifests: manifests, logger: logger}
	r.met = metrics.New(func(ctx context.Context) (supervisor.Status, error) { return r.sup.Status(ctx) })
	opts := supervisor.Options{
		Logger: logger,
		Stdout: stdout,
		Stderr: stderr,
		Load: func() (*manifest.Set, error) {
			return manifest.Load(manifests, manifest.CurrentHost())
		},
		Revision: func() (revision.Revision, error) {
			// The files Load reads, so that those edited in place or
			// not committed are told (Revision.Modified).
			files, _ := manifest.Files(manifests)
			return revision.OfFiles(manifests, files)
		},
		ReloadDebounce: o.debounce,
		OnEvent: func(e supervisor.Event) {
			r.hub.Publish(e)
			r.met.Observe(e)
		},
		OnOutput:  r.logs.Add,
		LogFormat: o.logFormat,
		OnReload:  r.met.OnReload,
		NoSysctl:  !o.sysctl,
		Reaper:    reaper,

		ExitOnFailed: o.exitOnFailed,
	}
	if os.Getenv("NOTIFY_SOCKET") != "" {
		// Under systemd (Type=notify or notify-reload).
		opts.Notify = func(state string) {
			if _, err := notify.Send(state); err != nil {
				logger.Warn("sd_notify", "state", state, "err", err)
			}
		}
	}
	if o.watch {
		opts.Watch = manifests
	}
	r.sup = supervisor.New(opts)
	return r
}

// supervisorInfo is what the status (control API, status page) says of
// paddock itself; socketPath is the control socket.
func (r *runner) supervisorInfo(socketPath string) control.SupervisorInfo {
	absManifests := make([]string, len(r.manifests))
	for i, p := range r.manifests {
		absManifests[i], _ = filepath.Abs(p)
	}
	return control.SupervisorInfo{PID: os.Getpid(), Version: versionString(), StartedAt: time.Now(),
		Manifests: absManifests, Socket: socketPath}
}

// serveControl answers the control API on ln in a goroutine of its own;
// stop starts a graceful shutdown. It returns the function that closes the
// server.
func (r *runner) serveControl(ln net.Listener, info control.SupervisorInfo, stop func()) (closeServer func()) {
	srv := &control.Server{
		Supervisor: r.sup,
		Events:     r.hub,
		Logs:       r.logs,
		Load: func(paths []string) (*manifest.Set, error) {
			return manifest.Load(paths, manifest.CurrentHost())
		},
		Manifests: r.manifests,
		Stop:      stop,
		Info:      info,
		Logger:    r.logger,
	}
	go func() {
		if err := srv.Serve(ln); err != nil {
			r.logger.Error("control socket", "err", err)
		}
	}()
	return func() { srv.Close() }
}

// handleSignals holds paddock run's signal policy, in a goroutine of its
// own: SIGHUP reloads the manifests; SIGUSR1 reopens the apps' log files
// (for an external logrotate); the first SIGTERM or SIGINT calls stop (a
// graceful shutdown), a second kills every worker at once. It returns the
// function that stops delivering the signals.
func handleSignals(logger *slog.Logger, sup *supervisor.Supervisor, stop func()) (stopSignals func()) {
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1)
	go func() {
		stopping := false
		for sig := range signals {
			switch {
			case sig == syscall.SIGHUP:
				logger.Info("SIGHUP: reloading manifests")
				sup.RequestReload()
			case sig == syscall.SIGUSR1:
				go reopenLogs(logger, sup)
			case !stopping:
				stopping = true
				logger.Info("graceful shutdown; send the signal again to kill every worker at once", "signal", sig.String())
				stop()
			default:
				logger.Warn("second signal: killing every worker", "signal", sig.String())
				sup.Kill()
			}
		}
	}()
	return func() { signal.Stop(signals) }
}

// runExit reports how the supervisor's Run ended and returns paddock run's
// exit code.
func runExit(err error, logger *slog.Logger, stderr io.Writer) int {
	var fe *manifest.FieldError
	var failed *supervisor.AppFailedError
	switch {
	case err == nil:
		logger.Info("all workers stopped")
		return exitOK
	case errors.As(err, &failed):
		// The orchestrator (a container's, systemd's Restart=) learns
		// that an app cannot stay up: a code of its own.
		logger.Error("exiting: a critical app failed", "app", failed.App, "err", err)
		return exitAppFailed
	case errors.As(err, &fe):
		// Addresses that could not be bound: reported like validation
		// errors, one per line, and nothing was started.
		for _, e := range manifest.Errors(err) {
			fmt.Fprintln(stderr, e)
		}
		return exitFailure
	default:
		logger.Error("shutdown", "err", err)
		return exitFailure
	}
}

// startGuards sets up what makes sure that nothing the workers start
// outlives paddock, even killed with SIGKILL (the workers themselves die
// with it: Pdeathsig): as PID 1 of a PID namespace, the kernel, which kills
// the whole namespace with it; otherwise a cgroup v2 of the workers' own
// (useCgroup, when paddock can create one) and a watchdog process. It
// returns the reaper to start the workers with, and the function that, once
// every worker stopped, kills what is left in the cgroup, removes it and
// tells the watchdog paddock exits cleanly.
func startGuards(logger *slog.Logger, useCgroup, jsonLog bool) (*procs.Reaper, func()) {
	reaper := &procs.Reaper{}
	if os.Getpid() == 1 {
		logger.Info("running as PID 1: when paddock exits or dies, the kernel ends every process of its PID namespace; no cgroup or watchdog is needed")
		return reaper, func() {}
	}
	if useCgroup {
		cg, err := procs.CreateCgroup()
		if err != nil {
			logger.Info("workers are not placed in a cgroup of their own; the watchdog alone kills what they leave if paddock dies", "reason", err.Error())
		} else {
			reaper.Cgroup = cg
			logger.Info("workers run in a cgroup of their own", "cgroup", cg.Path)
		}
	}
	wd, err := procs.StartWatchdog(procs.WatchdogOptions{Cgroup: reaper.Cgroup, Logger: logger, JSON: jsonLog})
	if err != nil {
		logger.Warn("no watchdog: if paddock is killed, processes the workers started may survive it", "err", err)
	} else {
		reaper.Watchdog = wd
		logger.Debug("watchdog started", "pid", wd.Pid())
	}
	return reaper, func() {
		if cg := reaper.Cgroup; cg != nil {
			n, err := cg.Kill()
			if n > 0 {
				logger.Info("killed processes left in the workers' cgroup", "cgroup", cg.Path, "processes", n)
			}
			if err != nil {
				logger.Warn("killing the workers' cgroup", "err", err)
			}
			if err := cg.Remove(); err != nil {
				logger.Warn("removing the workers' cgroup", "err", err)
			}
		}
		if wd != nil {
			wd.Stop()
		}
	}
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json, got %q", format)
}
