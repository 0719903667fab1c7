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

	"github.com/paddock-sh/paddock/internal/control"
	"github.com/paddock-sh/paddock/internal/plural"
)

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
	var resp control.SendResponse
	if err := call(*sock, http.MethodPost, appPath(app)+"/send",
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
	var resp control.SignalResponse
	if err := call(*sock, http.MethodPost, appPath(app)+"/signal",
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
	fs, sock := newClientFlagSet("logs", "logs [-f] [--lines N] [--json] [APP[/WORKER]] | logs --reopen", stderr)
	reopen := fs.Bool("reopen", false, "close and reopen every log file (logs:), for an external logrotate; as SIGUSR1 to paddock run")
	follow := fs.Bool("f", false, "follow: print the lines that come next, until interrupted")
	fs.BoolVar(follow, "follow", false, "same as -f")
	lines := fs.Int("lines", 100, "how many recent lines to print first")
	asJSON := fs.Bool("json", false, "print each line as JSON (time, app, worker, stream, text)")
	if code := parse(fs, args); code >= 0 {
		return code
	}
	if *reopen {
		if fs.NArg() > 0 || *follow {
			fmt.Fprintln(stderr, "paddock logs: --reopen reopens every log file: it takes no APP and no -f")
			return exitUsage
		}
		return runLogsReopen(*sock, stdout, stderr)
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
	fs, sock := newClientFlagSet("stop", "stop [--no-wait] [--timeout D]", stderr)
	noWait := fs.Bool("no-wait", false, "return once the supervisor started to stop")
	timeout := timeoutFlag(fs, "give up waiting")
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
