package main

// paddock scale and paddock restart: changing an app's workers.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/paddock-sh/paddock/internal/control"
	"github.com/paddock-sh/paddock/internal/plural"
)

// newScaleCmd returns `paddock scale`.
func newScaleCmd(stdout, stderr io.Writer) *cobra.Command {
	var sock *string
	c := &cobra.Command{
		Use:   "scale APP N",
		Short: "Run N workers of APP until its manifest instances change",
		Long: `Run N workers of APP: a runtime override that holds until the manifest's
instances of APP change (or paddock restarts); scaling to what the manifest
says removes the override.`,
		ValidArgsFunction: completeTargets(false),
		RunE: func(_ *cobra.Command, args []string) error {
			return exit(runScale(*sock, args, stdout, stderr))
		},
	}
	sock = socketFlag(c)
	return c
}

// runScale runs paddock scale APP N (args) against the supervisor on sock.
func runScale(sock string, args []string, stdout, stderr io.Writer) int {
	if len(args) != 2 {
		fmt.Fprintln(stderr, "paddock scale: want APP N")
		return exitUsage
	}
	app := args[0]
	n, err := strconv.Atoi(args[1])
	if err != nil || n < 0 {
		fmt.Fprintf(stderr, "paddock scale: N must be a worker count >= 0, got %q\n", args[1])
		return exitUsage
	}
	var resp control.ScaleResponse
	if err := call(sock, http.MethodPost, appPath(app)+"/scale",
		control.ScaleRequest{Instances: &n}, &resp); err != nil {
		return report(stderr, err)
	}
	fmt.Fprintf(stdout, "%s: %d → %s", app, resp.From, plural.Count(resp.Instances, "worker"))
	if resp.Override {
		fmt.Fprintf(stdout, " (runtime override; the manifest says %d and wins again when its instances change)", resp.ManifestInstances)
	} else {
		fmt.Fprint(stdout, " (as the manifest says; no override)")
	}
	fmt.Fprintln(stdout)
	return exitOK
}

// restartOptions are paddock restart's flags.
type restartOptions struct {
	socket  *string
	wait    bool
	timeout *time.Duration
}

// newRestartCmd returns `paddock restart`.
func newRestartCmd(stdout, stderr io.Writer) *cobra.Command {
	var o restartOptions
	c := &cobra.Command{
		Use:   "restart [--wait] APP",
		Short: "Rolling restart of APP with its rollout rules",
		Long: `Replace every worker of APP, new first, with the app's rollout rules.
With --wait, show the progress until the rollout completes (exit 0) or
stalls or is superseded (exit 1).`,
		RunE: func(_ *cobra.Command, args []string) error {
			return exit(runRestart(o, args, stdout, stderr))
		},
	}
	o.socket = socketFlag(c)
	c.ValidArgsFunction = completeTargets(false)
	c.Flags().BoolVar(&o.wait, "wait", false, "show the rolling restart's progress until it completes (exit 0) or stalls (exit 1)")
	o.timeout = timeoutFlag(c, "with --wait, give up")
	return c
}

// runRestart runs paddock restart APP (args).
func runRestart(o restartOptions, args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "paddock restart: want APP")
		return exitUsage
	}
	ctx, cancel := clientContext(*o.timeout)
	defer cancel()
	rw := &restartWatch{ctx: ctx, c: control.NewClient(control.SocketPath(*o.socket)), app: args[0], stdout: stdout, code: -1}
	if !o.wait {
		if err := rw.restart(); err != nil {
			return report(stderr, err)
		}
		return exitOK
	}
	return rw.wait(stderr)
}

// restartWatch is one paddock restart: the request, and with --wait the
// rollout it follows.
type restartWatch struct {
	ctx    context.Context
	c      *control.Client
	app    string
	stdout io.Writer

	resp control.RestartResponse
	err  error // of the restart request
	code int   // the exit code once the rollout ended; -1 until then
}

// restart asks for the rolling restart and prints what it started.
func (rw *restartWatch) restart() error {
	rw.err = rw.c.Do(rw.ctx, http.MethodPost, appPath(rw.app)+"/restart", nil, &rw.resp)
	if rw.err == nil {
		fmt.Fprintf(rw.stdout, "%s: rolling restart of %s (generation %s)\n", rw.app, plural.Count(rw.resp.Workers, "worker"), rw.resp.Generation)
		if rw.resp.Workers == 0 {
			rw.code = exitOK
		}
	}
	return rw.err
}

// wait restarts the app while it follows the app's events, from before the
// restart so that no progress is missed, until the rollout completes,
// stalls or is superseded; it returns the exit code.
func (rw *restartWatch) wait(stderr io.Writer) int {
	err := rw.c.Events(rw.ctx, rw.app, func() { _ = rw.restart() }, rw.event)
	switch {
	case rw.err != nil:
		return report(stderr, rw.err)
	case rw.code >= 0:
		return rw.code
	case rw.ctx.Err() != nil:
		fmt.Fprintf(stderr, "paddock restart: gave up waiting: %v\n", context.Cause(rw.ctx))
		return exitFailure
	case err != nil:
		return report(stderr, err)
	}
	fmt.Fprintln(stderr, "paddock restart: the supervisor stopped before the restart completed")
	return exitFailure
}

// event prints the rollout's progress; it returns false once the rollout
// ended (or the restart failed), to stop following.
func (rw *restartWatch) event(e control.Event) bool {
	if rw.err != nil || rw.code >= 0 {
		return false
	}
	app, gen := rw.app, rw.resp.Generation
	switch e.Type {
	case "rollout-progress":
		if e.Generation != gen {
			return true // an earlier rollout's news
		}
		fmt.Fprintf(rw.stdout, "%s: %s\n", app, e.Detail)
		if e.Detail == "complete" {
			rw.code = exitOK
			return false
		}
	case "rollout-stalled":
		if e.Generation != gen {
			return true
		}
		fmt.Fprintf(rw.stdout, "%s: stalled: %s\n", app, e.Detail)
		lines := e.Lines
		if e.LastExit != nil {
			lines = e.LastExit.Lines
		}
		writeLines(rw.stdout, lines)
		rw.code = exitFailure
		return false
	case "restart-requested", "reload":
		if e.Generation != "" && gen != "" && e.Generation != gen {
			fmt.Fprintf(rw.stdout, "%s: superseded by generation %s (%s)\n", app, e.Generation, e.Type)
			rw.code = exitFailure
			return false
		}
	}
	return true
}
