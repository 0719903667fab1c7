// Command paddock is a declarative process supervisor: it runs the workers
// that YAML manifests declare and keeps them as declared.
//
//	paddock run [PATH...]       supervise the apps in PATH (default paddock.yaml)
//	paddock validate [PATH...]  check manifests without running anything
//	paddock version             print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/paddock-sh/paddock/manifest"
	"github.com/paddock-sh/paddock/procs"
	"github.com/paddock-sh/paddock/supervisor"
	"github.com/paddock-sh/paddock/watch"
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
	// to set LISTEN_PID to its own pid; it never returns then.
	procs.ExecShim()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `paddock: a declarative process supervisor.

Usage:
  paddock run [flags] [PATH...]       run the apps declared in PATH (files or directories;
                                      default ` + defaultManifest + `)
  paddock validate [flags] [PATH...]  check manifests; exit 0 when valid, 1 when not,
                                      2 for usage errors or unreadable paths
  paddock version                     print the version

Run 'paddock COMMAND --help' for a command's flags.
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stdout, stderr)
	case "validate":
		return cmdValidate(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fs := newFlagSet("version", "version", stderr)
		if code := parse(fs, args[1:]); code >= 0 {
			return code
		}
		fmt.Fprintln(stdout, "paddock", versionString())
		return exitOK
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "paddock: unknown command %q\n\n%s", args[0], usage)
		return exitUsage
	}
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			return bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "devel-" + s.Value[:12]
			}
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
// go on.
func parse(fs *flag.FlagSet, args []string) int {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	return -1
}

func paths(fs *flag.FlagSet) []string {
	if fs.NArg() == 0 {
		return []string{defaultManifest}
	}
	return fs.Args()
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
	if code := parse(fs, args); code >= 0 {
		return code
	}
	set, code := load(paths(fs), stderr)
	if set == nil {
		return code
	}
	fmt.Fprintf(stdout, "ok: %d apps, %d workers\n", len(set.Apps), set.Workers())
	return exitOK
}

func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("run", "run [flags] [PATH...]", stderr)
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	watchFiles := fs.Bool("watch", true, "watch the manifests and apply every change (SIGHUP reloads either way)")
	debounce := fs.Duration("reload-debounce", watch.DefaultDebounce, "apply a change once the manifest files have been quiet this long")
	if code := parse(fs, args); code >= 0 {
		return code
	}
	logger, err := newLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		fmt.Fprintln(stderr, "paddock:", err)
		return exitUsage
	}

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

	manifests := paths(fs)
	set, code := load(manifests, stderr)
	if set == nil {
		return code
	}

	opts := supervisor.Options{
		Logger: logger,
		Stdout: stdout,
		Stderr: stderr,
		Load: func() (*manifest.Set, error) {
			return manifest.Load(manifests, manifest.CurrentHost())
		},
		ReloadDebounce: *debounce,
	}
	if *watchFiles {
		opts.Watch = manifests
	}
	sup := supervisor.New(opts)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
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

	logger.Info("paddock starting", "version", versionString(), "pid", os.Getpid(), "apps", len(set.Apps), "workers", set.Workers())
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
