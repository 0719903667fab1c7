// Command paddock is a declarative process supervisor: it runs the workers
// that YAML manifests declare and keeps them as declared.
//
//	paddock run [PATH...]       supervise the apps in PATH (default paddock.yaml)
//	paddock validate [PATH...]  check manifests without running anything
//	paddock status, events, scale, restart, reload, diff, send, signal, logs, stop
//	                            steer a running supervisor through its control socket
//	paddock completion SHELL    print a completion script
//	paddock version             print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sort"
	"syscall"
	"time"

	"github.com/paddock-sh/paddock/internal/control"
	"github.com/paddock-sh/paddock/internal/logbuf"
	"github.com/paddock-sh/paddock/internal/metrics"
	"github.com/paddock-sh/paddock/internal/notify"
	"github.com/paddock-sh/paddock/internal/plural"
	"github.com/paddock-sh/paddock/internal/suggest"
	"github.com/paddock-sh/paddock/internal/supervisor"
	"github.com/paddock-sh/paddock/internal/unixsock"
	"github.com/paddock-sh/paddock/internal/watch"
	"github.com/paddock-sh/paddock/manifest"
	"github.com/paddock-sh/paddock/netshare"
	"github.com/paddock-sh/paddock/procs"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3";
// otherwise it comes from the module's build information.
var version = ""

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // invalid manifests, a failed run, workers that had to be killed
	exitUsage   = 2 // bad command line, unreadable paths
)

const defaultManifest = "paddock.yaml"

func main() {
	// A worker started with listening sockets passes through here first,
	// to set LISTEN_PID to its own pid, and so does paddock's watchdog; it
	// never returns then.
	procs.ExecShim()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `paddock: a declarative process supervisor.

Usage:
  paddock run [flags] [PATH...]       run the apps declared in PATH (files or directories;
                                      default ` + defaultManifest + `)
  paddock validate [flags] [PATH...]  check manifests; exit 0 when valid, 1 when not,
                                      2 for usage errors or unreadable paths

Steering a running supervisor (through its control socket: --socket, $PADDOCK_SOCKET,
or the default path; exit 1 when no supervisor answers):
  paddock status [--json]             apps and workers: state, readiness, uptime, restarts
  paddock events [--json] [--app APP] follow events live
  paddock scale APP N                 run N workers of APP until its manifest instances change
  paddock restart [--wait] APP        rolling restart of APP with its rollout rules
  paddock reload                      re-read the manifests now and print what changed
  paddock diff [PATH...]              what applying PATH would change: exit 0 nothing,
                                      1 something, 2 errors
  paddock send APP[/WORKER] JSON      deliver a message to workers with an IPC channel
  paddock signal APP[/WORKER] SIGNAL  send a signal to workers
  paddock logs [-f] [--lines N] [APP[/WORKER]]
                                      recent output of silent workers
  paddock stop                        graceful shutdown, as SIGTERM

  paddock completion bash|zsh|fish    print a shell completion script
  paddock version                     print the version

Run 'paddock COMMAND --help' for a command's flags.
`

// dispatch maps each command to what runs it (commands, in completion.go,
// lists those shown to users).
var dispatch = map[string]func(args []string, stdout, stderr io.Writer) int{
	"run":        cmdRun,
	"validate":   cmdValidate,
	"status":     cmdStatus,
	"events":     cmdEvents,
	"scale":      cmdScale,
	"restart":    cmdRestart,
	"reload":     cmdReload,
	"diff":       cmdDiff,
	"send":       cmdSend,
	"signal":     cmdSignal,
	"logs":       cmdLogs,
	"stop":       cmdStop,
	"completion": cmdCompletion,
	"__apps":     cmdApps,
	"version":    cmdVersion,
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "--version", "-version":
		return cmdVersion(args[1:], stdout, stderr)
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	if cmd, ok := dispatch[args[0]]; ok {
		return cmd(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "paddock: unknown command %q", args[0])
	if near := suggest.Closest(args[0], commands, 2); near != "" {
		fmt.Fprintf(stderr, " (did you mean %q?)", near)
	}
	fmt.Fprint(stderr, "\n\n"+usage)
	return exitUsage
}

func cmdVersion(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("version", "version", stderr)
	if code := parse(fs, args); code >= 0 {
		return code
	}
	fmt.Fprintln(stdout, "paddock", versionString())
	return exitOK
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			return bi.Main.Version
		}
		// A build from a checkout (make build, or go build with VCS
		// stamping) carries the commit it was built from.
		rev, dirty := "", false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if len(rev) >= 12 {
			v := "devel-" + rev[:12]
			if dirty {
				v += "-dirty"
			}
			return v
		}
	}
	return "devel"
}

// newFlagSet returns a flag set whose errors and help go to stderr, with a
// usage text naming the command.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: paddock %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args; it returns the exit code to return at once, or -1 to
// go on. Flags may come after the arguments too (`paddock logs web -f`), as
// operators type them; everything after "--" is an argument. fs.Args()
// holds the arguments afterwards.
func parse(fs *flag.FlagSet, args []string) int {
	var positional []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return exitOK
			}
			return exitUsage
		}
		consumed := len(rest) - fs.NArg()
		afterDashes := consumed > 0 && rest[consumed-1] == "--"
		rest = fs.Args()
		if len(rest) == 0 || afterDashes {
			positional = append(positional, rest...)
			break
		}
		positional = append(positional, rest[0])
		rest = rest[1:]
	}
	_ = fs.Parse(append([]string{"--"}, positional...)) // fs.Args() = positional
	return -1
}

// paths returns the manifest paths given, or the default one. When none was
// given and the default does not exist, it says how to give one and
// returns nil.
func paths(fs *flag.FlagSet, stderr io.Writer) []string {
	if fs.NArg() > 0 {
		return fs.Args()
	}
	if _, err := os.Stat(defaultManifest); errors.Is(err, iofs.ErrNotExist) {
		fmt.Fprintf(stderr, "paddock %s: no manifest given, and there is no %s here.\n"+
			"Give the manifest files or directories: paddock %s PATH...\n"+
			"(examples/hello.yaml in paddock's repository is one to start from; `make run` runs it.)\n",
			fs.Name(), defaultManifest, fs.Name())
		return nil
	}
	return []string{defaultManifest}
}

// load loads the manifests, printing every error to stderr. It returns the
// exit code to use on failure.
func load(paths []string, stderr io.Writer) (*manifest.Set, int) {
	set, err := manifest.Load(paths, manifest.CurrentHost())
	if err != nil {
		for _, e := range manifest.Errors(err) {
			fmt.Fprintln(stderr, e)
		}
		if manifest.IsPathError(err) {
			return nil, exitUsage
		}
		return nil, exitFailure
	}
	return set, exitOK
}

func cmdValidate(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("validate", "validate [PATH...]", stderr)
	sock := clientFlags(fs)
	if code := parse(fs, args); code >= 0 {
		return code
	}
	manifests := paths(fs, stderr)
	if manifests == nil {
		return exitUsage
	}
	set, code := load(manifests, stderr)
	if set == nil {
		return code
	}
	if w := supervisor.DescriptorWarning(set); w != "" {
		// A warning, not an error: the limit where the manifests run
		// may differ from this one.
		fmt.Fprintln(stderr, "warning:", w)
	}
	// Warnings too: the manifests may be validated on another host (CI)
	// than the one they run on.
	for _, w := range listenWarnings(set, runningListeners(*sock)) {
		fmt.Fprintln(stderr, "warning:", w)
	}
	fmt.Fprintf(stdout, "ok: %s, %s\n", plural.Count(len(set.Apps), "app"), plural.Count(set.Workers(), "worker"))
	return exitOK
}

// runningListeners returns, by app, the addresses the apps of the
// supervisor answering on the control socket listen on, or nil when none
// answers (within a second: validate must not hang on a stuck socket).
func runningListeners(sock string) map[string][]string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	st, err := control.NewClient(control.SocketPath(sock)).Status(ctx)
	if err != nil {
		return nil
	}
	held := map[string][]string{}
	for _, a := range st.Apps {
		held[a.Name] = a.Listen
	}
	return held
}

// sameListen reports whether bound, an address as a running supervisor
// reports it ("127.0.0.1:8080", "[::]:8000", "/run/web.sock"), is the one
// l asks for (a TCP address without a host is bound on every interface).
func sameListen(l manifest.Listen, bound string) bool {
	if l.Network == "unix" {
		return l.Address == bound
	}
	host, port, err := net.SplitHostPort(l.Address)
	bhost, bport, berr := net.SplitHostPort(bound)
	if err != nil || berr != nil || port != bport || port == "0" {
		return false
	}
	if host == "" {
		return bhost == "::" || bhost == "0.0.0.0"
	}
	return host == bhost
}

// listenWarnings checks each `listen:` address of set on this host with
// netshare.Check (a TCP address bound for a moment, a unix path only
// looked at and probed; nothing is left behind) and returns a warning,
// "FILE:LINE:COL: apps.NAME.listen[I]: ...", for each that another process
// holds, sorted by position. Other bind failures (a privileged port, an
// address of another host) are not reported: they depend on who runs
// paddock and where, more than on the manifests.
//
// held lists, by app, the addresses a running supervisor's apps listen on
// (runningListeners): an address the same app already holds there is the
// running paddock's own, which a reload keeps, and is not reported.
func listenWarnings(set *manifest.Set, held map[string][]string) []string {
	type warning struct {
		pos manifest.Pos
		msg string
	}
	var ws []warning
	for _, name := range set.Names() {
		a := set.Apps[name]
		for _, l := range a.Listen {
			if slices.ContainsFunc(held[name], func(bound string) bool { return sameListen(l, bound) }) {
				continue
			}
			err := netshare.Check(l, a.SchedulingPolicy == "reuseport")
			if !errors.Is(err, netshare.ErrInUse) {
				continue
			}
			key := fmt.Sprintf("listen[%d]", l.Index)
			pos, ok := a.Pos[key]
			if !ok {
				pos = a.Source
			}
			msg := l.Raw + " is in use on this host (by another process)"
			if errors.Is(err, unixsock.ErrNotSocket) {
				msg = fmt.Sprintf("%s: %s exists and is not a socket", l.Raw, l.Address)
			}
			fe := &manifest.FieldError{Pos: pos, Field: "apps." + name + "." + key, Msg: msg + "; paddock run would refuse this set here"}
			ws = append(ws, warning{pos, fe.Error()})
		}
	}
	sort.SliceStable(ws, func(i, j int) bool {
		a, b := ws[i].pos, ws[j].pos
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.msg
	}
	return out
}

func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("run", "run [flags] [PATH...]", stderr)
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	watchFiles := fs.Bool("watch", true, "watch the manifests and apply every change (SIGHUP reloads either way)")
	debounce := fs.Duration("reload-debounce", watch.DefaultDebounce, "apply a change once the manifest files have been quiet this long")
	socketFlag := clientFlags(fs)
	metricsAddr := fs.String("metrics-addr", "", "serve Prometheus metrics at http://HOST:PORT/metrics (default: off)")
	sysctl := fs.Bool("sysctl", true, "let paddock change sysctls it needs (net.ipv4.tcp_migrate_req for reuseport apps; each change is logged)")
	cgroupMode := fs.String("cgroup", "auto", "auto: start the workers in a cgroup v2 of their own, killed as a whole when paddock stops or dies, when paddock can create one; off: never")
	if code := parse(fs, args); code >= 0 {
		return code
	}
	if *cgroupMode != "auto" && *cgroupMode != "off" {
		fmt.Fprintf(stderr, "paddock: --cgroup must be auto or off, got %q\n", *cgroupMode)
		return exitUsage
	}
	logger, err := newLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		fmt.Fprintln(stderr, "paddock:", err)
		return exitUsage
	}

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

	manifests := paths(fs, stderr)
	if manifests == nil {
		return exitUsage
	}
	set, code := load(manifests, stderr)
	if set == nil {
		return code
	}

	// The control socket, before anything starts: a second supervisor on
	// the same socket refuses to start here.
	socketPath := control.SocketPath(*socketFlag)
	ln, err := control.Listen(socketPath, logger)
	if err != nil {
		fmt.Fprintln(stderr, "paddock:", err)
		return exitFailure
	}
	defer ln.Close()
	var metricsLn net.Listener
	if *metricsAddr != "" {
		if metricsLn, err = net.Listen("tcp", *metricsAddr); err != nil {
			fmt.Fprintln(stderr, "paddock: --metrics-addr:", err)
			return exitFailure
		}
		defer metricsLn.Close()
	}

	reaper, stopProcs := startGuards(logger, *cgroupMode == "auto", *logFormat == "json")
	defer stopProcs()

	hub := control.NewHub()
	logs := logbuf.New(0, 0, 0)
	var sup *supervisor.Supervisor
	met := metrics.New(func(ctx context.Context) (supervisor.Status, error) { return sup.Status(ctx) })
	opts := supervisor.Options{
		Logger: logger,
		Stdout: stdout,
		Stderr: stderr,
		Load: func() (*manifest.Set, error) {
			return manifest.Load(manifests, manifest.CurrentHost())
		},
		ReloadDebounce: *debounce,
		OnEvent: func(e supervisor.Event) {
			hub.Publish(e)
			met.Observe(e)
		},
		OnOutput: logs.Add,
		OnReload: met.OnReload,
		NoSysctl: !*sysctl,
		Reaper:   reaper,
	}
	if os.Getenv("NOTIFY_SOCKET") != "" {
		// Under systemd (Type=notify or notify-reload).
		opts.Notify = func(state string) {
			if _, err := notify.Send(state); err != nil {
				logger.Warn("sd_notify", "state", state, "err", err)
			}
		}
	}
	if *watchFiles {
		opts.Watch = manifests
	}
	sup = supervisor.New(opts)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()

	absManifests := make([]string, len(manifests))
	for i, p := range manifests {
		absManifests[i], _ = filepath.Abs(p)
	}
	srv := &control.Server{
		Supervisor: sup,
		Events:     hub,
		Logs:       logs,
		Load: func(paths []string) (*manifest.Set, error) {
			return manifest.Load(paths, manifest.CurrentHost())
		},
		Manifests: manifests,
		Stop:      stop,
		Info: control.SupervisorInfo{PID: os.Getpid(), Version: versionString(), StartedAt: time.Now(),
			Manifests: absManifests, Socket: socketPath},
		Logger: logger,
	}
	go func() {
		if err := srv.Serve(ln); err != nil {
			logger.Error("control socket", "err", err)
		}
	}()
	defer srv.Close()
	if metricsLn != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", met.Handler())
		msrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = msrv.Serve(metricsLn) }()
		defer msrv.Close()
		logger.Info("serving metrics", "url", "http://"+metricsLn.Addr().String()+"/metrics")
	}
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(signals)
	go func() {
		stopping := false
		for sig := range signals {
			switch {
			case sig == syscall.SIGHUP:
				logger.Info("SIGHUP: reloading manifests")
				sup.RequestReload()
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

	openFiles, _ := supervisor.OpenFilesLimit()
	logger.Info("paddock starting", "version", versionString(), "pid", os.Getpid(), "apps", len(set.Apps), "workers", set.Workers(),
		"socket", socketPath, "openFilesLimit", openFiles)
	err = sup.Run(ctx, set)
	var fe *manifest.FieldError
	switch {
	case err == nil:
		logger.Info("all workers stopped")
		return exitOK
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
