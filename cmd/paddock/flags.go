package main

// Helpers for the command line every command shares: flags, arguments,
// and the manifest paths that run, validate and diff take.

import (
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/paddock-sh/paddock/internal/control"
	"github.com/paddock-sh/paddock/manifest"
)

// paths returns the manifest paths args gives, or the default one. When
// none was given and the default does not exist, it says how to give one
// (for the command name) and returns nil.
func paths(name string, args []string, stderr io.Writer) []string {
	if len(args) > 0 {
		return args
	}
	if _, err := os.Stat(defaultManifest); errors.Is(err, iofs.ErrNotExist) {
		fmt.Fprintf(stderr, "paddock %s: no manifest given, and there is no %s here.\n"+
			"Give the manifest files or directories: paddock %s PATH...\n"+
			"(examples/hello.yaml in paddock's repository is one to start from; `make run` runs it.)\n",
			name, defaultManifest, name)
		return nil
	}
	return []string{defaultManifest}
}

// loadArgs loads the manifests that the arguments of command name name
// (the default one when none), printing every error to stderr. It returns
// the paths and the set, or a nil set and the exit code to return.
func loadArgs(name string, args []string, stderr io.Writer) ([]string, *manifest.Set, int) {
	manifests := paths(name, args, stderr)
	if manifests == nil {
		return nil, nil, exitUsage
	}
	set, code := load(manifests, stderr)
	return manifests, set, code
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

// timeoutFlag adds --timeout to c, how long a command that waits for the
// supervisor may wait: giveUp says what it does then ("give up waiting").
func timeoutFlag(c *cobra.Command, giveUp string) *time.Duration {
	return c.Flags().Duration("timeout", 0, giveUp+" after this long (exit 1); 0: no limit")
}

// socketFlag adds --socket, which every command that talks to a
// supervisor has, to c and returns it; its arguments and flags that name
// apps complete from the supervisor it names.
func socketFlag(c *cobra.Command) *string {
	return c.Flags().String("socket", "", "the supervisor's control socket (default $"+control.SocketEnv+", else "+control.DefaultSocketPath()+")")
}

// splitTarget reads APP or APP/WORKER.
func splitTarget(s string) (string, int, error) {
	app, w, ok := strings.Cut(s, "/")
	if app == "" {
		return "", 0, fmt.Errorf("want APP or APP/WORKER, got %q", s)
	}
	if !ok {
		return app, 0, nil
	}
	id, err := strconv.Atoi(w)
	if err != nil || id < 1 {
		return "", 0, fmt.Errorf("want APP/WORKER with a worker id, got %q", s)
	}
	return app, id, nil
}

// targetArgs reads the two arguments of a command of the form NAME
// APP[/WORKER] WHAT; code is -1 to go on.
func targetArgs(name, what string, args []string, stderr io.Writer) (app string, id int, arg string, code int) {
	if len(args) != 2 {
		fmt.Fprintf(stderr, "paddock %s: want APP[/WORKER] %s\n", name, what)
		return "", 0, "", exitUsage
	}
	app, id, err := splitTarget(args[0])
	if err != nil {
		fmt.Fprintf(stderr, "paddock %s: %v\n", name, err)
		return "", 0, "", exitUsage
	}
	return app, id, args[1], -1
}
