package main

// The client commands: each talks to a running supervisor's control socket
// (control.SocketPath: --socket, $PADDOCK_SOCKET, or the default path).

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/paddock-sh/paddock/internal/control"
	"github.com/paddock-sh/paddock/internal/plural"
	"github.com/paddock-sh/paddock/manifest"
)

// clientFlags adds the flags every client command has and returns the
// socket flag.
func clientFlags(fs *flag.FlagSet) *string {
	return fs.String("socket", "", "the supervisor's control socket (default $"+control.SocketEnv+", else "+control.DefaultSocketPath()+")")
}

// clientContext is cancelled by SIGINT and SIGTERM, so that following
// commands end cleanly, and after timeout when it is not 0.
func clientContext(timeout time.Duration) (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	if timeout <= 0 {
		return ctx, stop
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	return ctx, func() { cancel(); stop() }
}

// report prints err for a client command and returns its exit code:
// exitFailure, or code for errors the supervisor answered (APIError).
func report(stderr io.Writer, err error) int {
	var apiErr *control.APIError
	if errors.As(err, &apiErr) {
		for _, m := range apiErr.Messages() {
			fmt.Fprintln(stderr, "paddock:", m)
		}
		return exitFailure
	}
	fmt.Fprintln(stderr, "paddock:", err)
	return exitFailure
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

func appPath(app string) string { return "/v1/apps/" + url.PathEscape(app) }

func cmdStatus(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("status", "status [--json]", stderr)
	sock := clientFlags(fs)
	asJSON := fs.Bool("json", false, "print the whole status as JSON")
	if code := parse(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintln(stderr, "paddock status: no arguments expected")
		return exitUsage
	}
	ctx, cancel := clientContext(0)
	defer cancel()
	c := control.NewClient(control.SocketPath(*sock))
	if *asJSON {
		var raw json.RawMessage
		if err := c.Do(ctx, http.MethodGet, "/v1/status", nil, &raw); err != nil {
			return report(stderr, err)
		}
		stdout.Write(raw)
		return exitOK
	}
	st, err := c.Status(ctx)
	if err != nil {
		return report(stderr, err)
	}
	writeStatus(stdout, st, time.Now())
	return exitOK
}

// writeStatus prints the apps, then the workers, as tables.
func writeStatus(out io.Writer, st *control.StatusResponse, now time.Time) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "APP\tDESIRED\tREADY\tPOLICY\tLISTEN\tGENERATION\tROLLOUT")
	for _, a := range st.Apps {
		desired := strconv.Itoa(a.Instances)
		if a.Override {
			desired += fmt.Sprintf(" (scaled; manifest %d)", a.ManifestInstances)
		}
		rollout := "-"
		if a.Rollout != nil {
			rollout = a.Rollout.Summary
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%s\t%s\t%s\n", a.Name, desired, a.Ready, a.Instances, a.SchedulingPolicy,
			dash(strings.Join(a.Listen, ",")), a.Generation, rollout)
	}
	tw.Flush()
	fmt.Fprintln(out)
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "APP\tWORKER\tPID\tSTATE\tREADY\tUPTIME\tRESTARTS\tLISTEN\tGENERATION")
	for _, w := range st.Workers {
		pid, uptime := "-", "-"
		if w.PID != 0 {
			pid = strconv.Itoa(w.PID)
			uptime = formatAge(now.Sub(w.StartedAt))
		}
		state := w.State
		if w.RestartAt != nil {
			state += " (restart in " + formatAge(w.RestartAt.Sub(now)) + ")"
		}
		ready := "no"
		if w.Ready {
			ready = "yes"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", w.App, w.ID, pid, state, ready, uptime, w.Restarts,
			dash(strings.Join(w.Listen, ",")), w.Generation)
	}
	tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// formatAge prints a duration the way ps and kubectl do: 45s, 3m12s, 2h5m,
// 4d3h.
func formatAge(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

func cmdEvents(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("events", "events [--json] [--app APP]", stderr)
	sock := clientFlags(fs)
	asJSON := fs.Bool("json", false, "print each event as a line of JSON")
	app := fs.String("app", "", "only the events of this app")
	if code := parse(fs, args); code >= 0 {
		return code
	}
	ctx, cancel := clientContext(0)
	defer cancel()
	c := control.NewClient(control.SocketPath(*sock))
	enc := json.NewEncoder(stdout)
	err := c.Events(ctx, *app, nil, func(e control.Event) bool {
		if *asJSON {
			return enc.Encode(e) == nil
		}
		_, err := fmt.Fprintln(stdout, formatEvent(e))
		return err == nil
	})
	if err != nil && ctx.Err() == nil {
		return report(stderr, err)
	}
	return exitOK
}

// formatEvent prints an event on one line: time, type, app/worker, then
// key=value pairs.
func formatEvent(e control.Event) string {
	var b strings.Builder
	b.WriteString(e.Time.Local().Format("15:04:05.000"))
	b.WriteString(" ")
	b.WriteString(e.Type)
	if e.App != "" {
		b.WriteString(" " + e.App)
		if e.Worker != 0 {
			b.WriteString("/" + strconv.Itoa(e.Worker))
		}
	}
	if e.PID != 0 {
		fmt.Fprintf(&b, " pid=%d", e.PID)
	}
	if e.ExitCode != nil {
		if e.Signal != "" {
			fmt.Fprintf(&b, " signal=%s", e.Signal)
		} else {
			fmt.Fprintf(&b, " code=%d", *e.ExitCode)
		}
	} else if e.Signal != "" {
		fmt.Fprintf(&b, " signal=%s", e.Signal)
	}
	if e.Intended != nil {
		fmt.Fprintf(&b, " intended=%t", *e.Intended)
	}
	if e.Delay != "" {
		fmt.Fprintf(&b, " delay=%s", e.Delay)
	}
	if e.Attempt != 0 {
		fmt.Fprintf(&b, " attempt=%d", e.Attempt)
	}
	if e.Generation != "" {
		fmt.Fprintf(&b, " generation=%s", e.Generation)
	}
	if e.Detail != "" {
		fmt.Fprintf(&b, " %s", e.Detail)
	}
	return b.String()
}

func cmdScale(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("scale", "scale APP N", stderr)
	sock := clientFlags(fs)
	if code := parse(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() != 2 {
		fmt.Fprintln(stderr, "paddock scale: want APP N")
		return exitUsage
	}
	app := fs.Arg(0)
	n, err := strconv.Atoi(fs.Arg(1))
	if err != nil || n < 0 {
		fmt.Fprintf(stderr, "paddock scale: N must be a worker count >= 0, got %q\n", fs.Arg(1))
		return exitUsage
	}
	ctx, cancel := clientContext(0)
	defer cancel()
	var resp control.ScaleResponse
	if err := control.NewClient(control.SocketPath(*sock)).Do(ctx, http.MethodPost, appPath(app)+"/scale",
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

func cmdRestart(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("restart", "restart [--wait] APP", stderr)
	sock := clientFlags(fs)
	wait := fs.Bool("wait", false, "show the rolling restart's progress until it completes (exit 0) or stalls (exit 1)")
	timeout := fs.Duration("timeout", 0, "with --wait, give up after this long (exit 1); 0: no limit")
	if code := parse(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "paddock restart: want APP")
		return exitUsage
	}
	app := fs.Arg(0)
	ctx, cancel := clientContext(*timeout)
	defer cancel()
	c := control.NewClient(control.SocketPath(*sock))
	restart := func() (control.RestartResponse, error) {
		var resp control.RestartResponse
		err := c.Do(ctx, http.MethodPost, appPath(app)+"/restart", nil, &resp)
		return resp, err
	}
	if !*wait {
		resp, err := restart()
		if err != nil {
			return report(stderr, err)
		}
		fmt.Fprintf(stdout, "%s: rolling restart of %s (generation %s)\n", app, plural.Count(resp.Workers, "worker"), resp.Generation)
		return exitOK
	}
	// Follow the app's events from before the restart, so that no
	// progress is missed.
	var resp control.RestartResponse
	var restartErr error
	code := -1
	err := c.Events(ctx, app, func() {
		resp, restartErr = restart()
		if restartErr == nil {
			fmt.Fprintf(stdout, "%s: rolling restart of %s (generation %s)\n", app, plural.Count(resp.Workers, "worker"), resp.Generation)
			if resp.Workers == 0 {
				code = exitOK
			}
		}
	}, func(e control.Event) bool {
		if restartErr != nil || code >= 0 {
			return false
		}
		if e.Type == "rollout-progress" || e.Type == "rollout-stalled" {
			if e.Generation != resp.Generation {
				return true // an earlier rollout's news
			}
		}
		switch e.Type {
		case "rollout-progress":
			fmt.Fprintf(stdout, "%s: %s\n", app, e.Detail)
			if e.Detail == "complete" {
				code = exitOK
				return false
			}
		case "rollout-stalled":
			fmt.Fprintf(stdout, "%s: stalled: %s\n", app, e.Detail)
			code = exitFailure
			return false
		case "restart-requested", "reload":
			if e.Generation != "" && resp.Generation != "" && e.Generation != resp.Generation {
				fmt.Fprintf(stdout, "%s: superseded by generation %s (%s)\n", app, e.Generation, e.Type)
				code = exitFailure
				return false
			}
		}
		return true
	})
	switch {
	case restartErr != nil:
		return report(stderr, restartErr)
	case code >= 0:
		return code
	case ctx.Err() != nil:
		fmt.Fprintf(stderr, "paddock restart: gave up waiting: %v\n", context.Cause(ctx))
		return exitFailure
	case err != nil:
		return report(stderr, err)
	}
	fmt.Fprintln(stderr, "paddock restart: the supervisor stopped before the restart completed")
	return exitFailure
}

func cmdReload(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("reload", "reload", stderr)
	sock := clientFlags(fs)
	if code := parse(fs, args); code >= 0 {
		return code
	}
	ctx, cancel := clientContext(0)
	defer cancel()
	var resp control.ChangesResponse
	if err := control.NewClient(control.SocketPath(*sock)).Do(ctx, http.MethodPost, "/v1/reload", nil, &resp); err != nil {
		var apiErr *control.APIError
		if errors.As(err, &apiErr) {
			fmt.Fprintln(stderr, "paddock: the manifests were not applied; the running set is kept:")
			for _, m := range apiErr.Messages() {
				fmt.Fprintln(stderr, m)
			}
			return exitFailure
		}
		return report(stderr, err)
	}
	if len(resp.Changes) == 0 {
		fmt.Fprintln(stdout, "no change")
	}
	for _, c := range resp.Changes {
		fmt.Fprintln(stdout, describeChange(c))
	}
	return exitOK
}

// describeChange prints a change as diff does: a sign, the app, and what
// happens to its workers.
func describeChange(c control.Change) string {
	switch c.Kind {
	case manifest.ChangeAdded:
		return fmt.Sprintf("+ %s: added, %s", c.App, plural.Count(c.To, "worker"))
	case manifest.ChangeRemoved:
		return fmt.Sprintf("- %s: removed, %s retired", c.App, plural.Count(c.From, "worker"))
	case manifest.ChangeScaled:
		return fmt.Sprintf("~ %s: scaled %d → %s", c.App, c.From, plural.Count(c.To, "worker"))
	case manifest.ChangeUpdated:
		s := fmt.Sprintf("~ %s: updated (rolling update) for %s", c.App, strings.Join(c.Fields, ", "))
		if c.From != c.To {
			s += fmt.Sprintf("; scaled %d → %s", c.From, plural.Count(c.To, "worker"))
		}
		return s
	}
	return "? " + c.Summary
}

// Exit codes of diff.
const (
	exitDiffNone    = 0
	exitDiffChanges = 1
	exitDiffError   = 2
)

func cmdDiff(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("diff", "diff [--json] [PATH...]", stderr)
	sock := clientFlags(fs)
	asJSON := fs.Bool("json", false, "print the changes as JSON")
	if code := parse(fs, args); code >= 0 {
		if code == exitUsage {
			return exitDiffError
		}
		return code
	}
	var req control.DiffRequest
	for _, p := range fs.Args() {
		abs, err := filepath.Abs(p)
		if err != nil {
			fmt.Fprintln(stderr, "paddock diff:", err)
			return exitDiffError
		}
		if _, err := os.Stat(abs); err != nil {
			fmt.Fprintln(stderr, "paddock diff:", err)
			return exitDiffError
		}
		req.Paths = append(req.Paths, abs)
	}
	ctx, cancel := clientContext(0)
	defer cancel()
	var resp control.ChangesResponse
	if err := control.NewClient(control.SocketPath(*sock)).Do(ctx, http.MethodPost, "/v1/diff", req, &resp); err != nil {
		report(stderr, err)
		return exitDiffError
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(resp)
	} else {
		for _, c := range resp.Changes {
			fmt.Fprintln(stdout, describeChange(c))
		}
	}
	if len(resp.Changes) == 0 {
		if !*asJSON {
			fmt.Fprintln(stdout, "no change")
		}
		return exitDiffNone
	}
	return exitDiffChanges
}

// targetArgs parses the flags and the two arguments of a command of the
// form NAME APP[/WORKER] WHAT; code is -1 to go on.
func targetArgs(name, what string, args []string, stderr io.Writer) (sock *string, app string, id int, arg string, code int) {
	fs := newFlagSet(name, name+" APP[/WORKER] "+what, stderr)
	sock = clientFlags(fs)
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

func cmdSend(args []string, stdout, stderr io.Writer) int {
	sock, app, id, arg, code := targetArgs("send", "JSON", args, stderr)
	if code >= 0 {
		return code
	}
	msg := json.RawMessage(arg)
	if !json.Valid(msg) {
		fmt.Fprintf(stderr, "paddock send: the message is not valid JSON: %s (quote strings: '\"hello\"')\n", arg)
		return exitUsage
	}
	ctx, cancel := clientContext(0)
	defer cancel()
	var resp control.SendResponse
	if err := control.NewClient(control.SocketPath(*sock)).Do(ctx, http.MethodPost, appPath(app)+"/send",
		control.SendRequest{Worker: id, Message: msg}, &resp); err != nil {
		return report(stderr, err)
	}
	fmt.Fprintf(stdout, "delivered to %s\n", plural.Count(resp.Delivered, "worker"))
	return exitOK
}

func cmdSignal(args []string, stdout, stderr io.Writer) int {
	sock, app, id, sigName, code := targetArgs("signal", "SIGNAL", args, stderr)
	if code >= 0 {
		return code
	}
	if _, err := control.ParseSignal(sigName); err != nil {
		fmt.Fprintln(stderr, "paddock signal:", err)
		return exitUsage
	}
	ctx, cancel := clientContext(0)
	defer cancel()
	var resp control.SignalResponse
	if err := control.NewClient(control.SocketPath(*sock)).Do(ctx, http.MethodPost, appPath(app)+"/signal",
		control.SignalRequest{Worker: id, Signal: sigName}, &resp); err != nil {
		return report(stderr, err)
	}
	ids := make([]string, len(resp.Workers))
	for i, w := range resp.Workers {
		ids[i] = app + "/" + strconv.Itoa(w)
	}
	fmt.Fprintf(stdout, "signalled %s\n", strings.Join(ids, " "))
	return exitOK
}

func cmdLogs(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("logs", "logs [-f] [--lines N] [--json] [APP[/WORKER]]", stderr)
	sock := clientFlags(fs)
	follow := fs.Bool("f", false, "follow: print the lines that come next, until interrupted")
	fs.BoolVar(follow, "follow", false, "same as -f")
	lines := fs.Int("lines", 100, "how many recent lines to print first")
	asJSON := fs.Bool("json", false, "print each line as JSON (time, app, worker, stream, text)")
	if code := parse(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() > 1 || *lines < 0 {
		fmt.Fprintln(stderr, "paddock logs: want at most one APP[/WORKER] and --lines >= 0")
		return exitUsage
	}
	var app string
	var id int
	if fs.NArg() == 1 {
		var err error
		if app, id, err = splitTarget(fs.Arg(0)); err != nil {
			fmt.Fprintln(stderr, "paddock logs:", err)
			return exitUsage
		}
	}
	ctx, cancel := clientContext(0)
	defer cancel()
	enc := json.NewEncoder(stdout)
	err := control.NewClient(control.SocketPath(*sock)).Logs(ctx, app, id, *lines, *follow, func(l control.LogLine) bool {
		if *asJSON {
			return enc.Encode(l) == nil
		}
		if l.Lost > 0 {
			fmt.Fprintf(stderr, "paddock logs: %s lost (this reader fell behind)\n", plural.Count(l.Lost, "line"))
			return true
		}
		_, err := fmt.Fprintf(stdout, "%s/%d | %s\n", l.App, l.Worker, l.Text)
		return err == nil
	})
	if err != nil && ctx.Err() == nil {
		return report(stderr, err)
	}
	return exitOK
}

func cmdStop(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("stop", "stop [--no-wait] [--timeout D]", stderr)
	sock := clientFlags(fs)
	noWait := fs.Bool("no-wait", false, "return once the supervisor started to stop")
	timeout := fs.Duration("timeout", 0, "give up waiting after this long (exit 1); 0: no limit")
	if code := parse(fs, args); code >= 0 {
		return code
	}
	ctx, cancel := clientContext(*timeout)
	defer cancel()
	path := control.SocketPath(*sock)
	if err := control.NewClient(path).Do(ctx, http.MethodPost, "/v1/stop", nil, nil); err != nil {
		return report(stderr, err)
	}
	if *noWait {
		fmt.Fprintln(stdout, "stopping")
		return exitOK
	}
	// The socket goes away when the supervisor has stopped every worker
	// and exits.
	for {
		conn, err := net.DialTimeout("unix", path, time.Second)
		if err != nil {
			fmt.Fprintln(stdout, "stopped")
			return exitOK
		}
		conn.Close()
		select {
		case <-ctx.Done():
			fmt.Fprintln(stderr, "paddock stop: the supervisor is still stopping:", context.Cause(ctx))
			return exitFailure
		case <-time.After(50 * time.Millisecond):
		}
	}
}
