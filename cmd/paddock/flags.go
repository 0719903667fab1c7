package main

// Helpers for the command line every command shares: flags, arguments,
// and the manifest paths that run, validate and diff take.

import (
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/paddock-sh/paddock/internal/control"
	"github.com/paddock-sh/paddock/manifest"
)

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

// loadArgs loads the manifests that fs's arguments name (the default one
// when none), printing every error to stderr. It returns the paths and the
// set, or a nil set and the exit code to return.
func loadArgs(fs *flag.FlagSet, stderr io.Writer) ([]string, *manifest.Set, int) {
	manifests := paths(fs, stderr)
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

// newClientFlagSet returns the flag set of a client command, as newFlagSet,
// with the flags every client command has; sock is the --socket flag.
func newClientFlagSet(name, synopsis string, stderr io.Writer) (fs *flag.FlagSet, sock *string) {
	fs = newFlagSet(name, synopsis, stderr)
	return fs, clientFlags(fs)
}

// timeoutFlag adds --timeout, how long a command that waits for the
// supervisor may wait: giveUp says what it does then ("give up waiting").
func timeoutFlag(fs *flag.FlagSet, giveUp string) *time.Duration {
	return fs.Duration("timeout", 0, giveUp+" after this long (exit 1); 0: no limit")
}

// clientFlags adds the flags every client command has and returns the
// socket flag.
func clientFlags(fs *flag.FlagSet) *string {
	return fs.String("socket", "", "the supervisor's control socket (default $"+control.SocketEnv+", else "+control.DefaultSocketPath()+")")
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

// targetArgs parses the flags and the two arguments of a command of the
// form NAME APP[/WORKER] WHAT; code is -1 to go on.
func targetArgs(name, what string, args []string, stderr io.Writer) (sock *string, app string, id int, arg string, code int) {
	fs, sock := newClientFlagSet(name, name+" APP[/WORKER] "+what, stderr)
	if code := parse(fs, args); code >= 0 {
		return nil, "", 0, "", code
	}
	if fs.NArg() != 2 {
		fmt.Fprintf(stderr, "paddock %s: want APP[/WORKER] %s\n", name, what)
		return nil, "", 0, "", exitUsage
	}
	app, id, err := splitTarget(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "paddock %s: %v\n", name, err)
		return nil, "", 0, "", exitUsage
	}
	return sock, app, id, fs.Arg(1), -1
}
