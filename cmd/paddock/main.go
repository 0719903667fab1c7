// Command paddock is a declarative process supervisor: it runs the workers
// that YAML manifests declare and keeps them as declared.
//
//	paddock run [PATH...]       supervise the apps in PATH (default paddock.yaml)
//	paddock validate [PATH...]  check manifests without running anything
//	paddock status, events, scale, restart, reload, diff, send, signal, logs, stop, top
//	                            steer a running supervisor through its control socket
//	paddock completion SHELL    print a completion script
//	paddock version             print the version
package main

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/paddock-sh/paddock/internal/suggest"
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
	// exitAppFailed: paddock run stopped because a critical app failed
	// (critical: true, or --exit-on-failed); every app was stopped.
	exitAppFailed = 3
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
                                      1 something (or an app runs rolled back), 2 errors
  paddock send APP[/WORKER] JSON      deliver a message to workers with an IPC channel
  paddock signal APP[/WORKER] SIGNAL  send a signal to workers
  paddock logs [-f] [--lines N] [APP[/WORKER]]
                                      recent output of the workers
  paddock stop                        graceful shutdown, as SIGTERM
  paddock top [--interval D]          live dashboard: workers, CPU, memory, events; keys
                                      to scale, restart, signal, follow logs

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
	"top":        cmdTop,
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
