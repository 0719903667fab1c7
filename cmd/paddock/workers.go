package main

// paddock send, signal, logs and stop: acting on running workers.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/paddock-sh/paddock/internal/control"
	"github.com/paddock-sh/paddock/internal/plural"
)

// newSendCmd returns `paddock send`.
func newSendCmd(stdout, stderr io.Writer) *cobra.Command {
	var sock *string
	c := &cobra.Command{
		Use:   "send APP[/WORKER] JSON",
		Short: "Deliver a message to workers with an IPC channel",
		Long: `Deliver the JSON message to every worker of APP, or to APP/WORKER, that has
an IPC channel (a Node cluster worker's process.on('message')). Quote a
string: paddock send web '"hello"'.`,
		ValidArgsFunction: completeTargets(true),
		RunE: func(_ *cobra.Command, args []string) error {
			return exit(runSend(*sock, args, stdout, stderr))
		},
	}
	sock = socketFlag(c)
	return c
}

// runSend runs paddock send APP[/WORKER] JSON (args) against the
// supervisor on sock.
func runSend(sock string, args []string, stdout, stderr io.Writer) int {
	app, id, arg, code := targetArgs("send", "JSON", args, stderr)
	if code >= 0 {
		return code
	}
	msg := json.RawMessage(arg)
	if !json.Valid(msg) {
		fmt.Fprintf(stderr, "paddock send: the message is not valid JSON: %s (quote strings: '\"hello\"')\n", arg)
		return exitUsage
	}
	var resp control.SendResponse
	if err := call(sock, http.MethodPost, appPath(app)+"/send",
		control.SendRequest{Worker: id, Message: msg}, &resp); err != nil {
		return report(stderr, err)
	}
	fmt.Fprintf(stdout, "delivered to %s\n", plural.Count(resp.Delivered, "worker"))
	return exitOK
}

// newSignalCmd returns `paddock signal`.
func newSignalCmd(stdout, stderr io.Writer) *cobra.Command {
	var sock *string
	c := &cobra.Command{
		Use:   "signal APP[/WORKER] SIGNAL",
		Short: "Send a signal to workers",
		Long: `Send SIGNAL (HUP, SIGHUP, hup or a number) to every live worker of APP, or
to APP/WORKER.`,
		ValidArgsFunction: completeSignalArgs,
		RunE: func(_ *cobra.Command, args []string) error {
			return exit(runSignal(*sock, args, stdout, stderr))
		},
	}
	sock = socketFlag(c)
	return c
}

// runSignal runs paddock signal APP[/WORKER] SIGNAL (args) against the
// supervisor on sock.
func runSignal(sock string, args []string, stdout, stderr io.Writer) int {
	app, id, sigName, code := targetArgs("signal", "SIGNAL", args, stderr)
	if code >= 0 {
		return code
	}
	if _, err := control.ParseSignal(sigName); err != nil {
		fmt.Fprintln(stderr, "paddock signal:", err)
		return exitUsage
	}
	var resp control.SignalResponse
	if err := call(sock, http.MethodPost, appPath(app)+"/signal",
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

// logsOptions are paddock logs's flags.
type logsOptions struct {
	socket *string
	follow bool
	lines  int
	json   bool
}

// newLogsCmd returns `paddock logs`.
func newLogsCmd(stdout, stderr io.Writer) *cobra.Command {
	var o logsOptions
	c := &cobra.Command{
		Use:   "logs [-f] [--lines N] [--json] [APP[/WORKER]]",
		Short: "Recent output of the workers",
		Long: `Print the recent output lines of every worker, of APP's, or of APP/WORKER's
(silent or not, kept in memory); with -f, go on with the lines that come
next until interrupted.`,
		ValidArgsFunction: completeTargets(true),
		RunE: func(_ *cobra.Command, args []string) error {
			return exit(runLogs(o, args, stdout, stderr))
		},
	}
	o.socket = socketFlag(c)
	c.Flags().BoolVarP(&o.follow, "follow", "f", false, "follow: print the lines that come next, until interrupted")
	c.Flags().IntVar(&o.lines, "lines", 100, "how many recent lines to print first")
	c.Flags().BoolVar(&o.json, "json", false, "print each line as JSON (time, app, worker, stream, text)")
	return c
}

// runLogs runs paddock logs [APP[/WORKER]] (args).
func runLogs(o logsOptions, args []string, stdout, stderr io.Writer) int {
	if len(args) > 1 || o.lines < 0 {
		fmt.Fprintln(stderr, "paddock logs: want at most one APP[/WORKER] and --lines >= 0")
		return exitUsage
	}
	var app string
	var id int
	if len(args) == 1 {
		var err error
		if app, id, err = splitTarget(args[0]); err != nil {
			fmt.Fprintln(stderr, "paddock logs:", err)
			return exitUsage
		}
	}
	ctx, cancel := clientContext(0)
	defer cancel()
	enc := json.NewEncoder(stdout)
	err := control.NewClient(control.SocketPath(*o.socket)).Logs(ctx, app, id, o.lines, o.follow, func(l control.LogLine) bool {
		if o.json {
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

// stopOptions are paddock stop's flags.
type stopOptions struct {
	socket  *string
	noWait  bool
	timeout *time.Duration
}

// newStopCmd returns `paddock stop`.
func newStopCmd(stdout, stderr io.Writer) *cobra.Command {
	var o stopOptions
	c := &cobra.Command{
		Use:   "stop [--no-wait] [--timeout D]",
		Short: "Graceful shutdown, as SIGTERM",
		Long: `Stop the supervisor as SIGTERM does: every worker is stopped, then paddock
exits. Without --no-wait, wait until it has.`,
		Args:              cobra.NoArgs,
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(*cobra.Command, []string) error {
			return exit(runStop(o, stdout, stderr))
		},
	}
	o.socket = socketFlag(c)
	c.Flags().BoolVar(&o.noWait, "no-wait", false, "return once the supervisor started to stop")
	o.timeout = timeoutFlag(c, "give up waiting")
	return c
}

// runStop runs paddock stop.
func runStop(o stopOptions, stdout, stderr io.Writer) int {
	ctx, cancel := clientContext(*o.timeout)
	defer cancel()
	path := control.SocketPath(*o.socket)
	if err := control.NewClient(path).Do(ctx, http.MethodPost, "/v1/stop", nil, nil); err != nil {
		return report(stderr, err)
	}
	if o.noWait {
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
