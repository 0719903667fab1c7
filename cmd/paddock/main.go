// Command paddock is a declarative process supervisor: it runs the workers
// that YAML manifests declare and keeps them as declared.
//
//	paddock run [PATH...]       supervise the apps in PATH (default paddock.yaml)
//	paddock validate [PATH...]  check manifests without running anything
//	paddock status, events, scale, restart, reload, diff, send, signal, logs, stop
//	                            steer a running supervisor through its control socket
//	paddock completion SHELL    print a completion script
//	paddock version             print the version
//	paddock help [COMMAND]      print the help of paddock or of a command
//
// The command tree is in cli.go; each command's file holds its flags and
// what runs it. docs/cli/ is its reference, generated from it.
package main

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"

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

// newVersionCmd returns `paddock version` (also `paddock --version`).
func newVersionCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:               "version",
		Short:             "Print the version",
		Args:              cobra.NoArgs,
		ValidArgsFunction: cobra.NoFileCompletions,
		Run: func(*cobra.Command, []string) {
			fmt.Fprintln(stdout, "paddock", versionString())
		},
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
