package main

// The apps' log files (logs:): reopening them for an external logrotate,
// on SIGUSR1 to paddock run or with paddock logs --reopen.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/paddock-sh/paddock/internal/control"
	"github.com/paddock-sh/paddock/internal/plural"
	"github.com/paddock-sh/paddock/internal/supervisor"
)

// reopenTimeout bounds how long SIGUSR1 waits for a log file whose writer
// is blocked in a write, before it says so.
const reopenTimeout = 10 * time.Second

// reopenLogs reopens the log files of sup (SIGUSR1) and logs the result.
func reopenLogs(logger *slog.Logger, sup *supervisor.Supervisor) {
	ctx, cancel := context.WithTimeout(context.Background(), reopenTimeout)
	defer cancel()
	files, err := sup.ReopenLogs(ctx)
	if err != nil {
		logger.Warn("SIGUSR1: log files not all reopened", "reopened", files, "err", err)
		return
	}
	logger.Info("SIGUSR1: log files reopened", "files", files)
}

// runLogsReopen asks the supervisor on sock to reopen its log files
// (paddock logs --reopen) and prints them.
func runLogsReopen(sock string, stdout, stderr io.Writer) int {
	ctx, cancel := clientContext(0)
	defer cancel()
	var resp control.LogsReopenResponse
	if err := control.NewClient(control.SocketPath(sock)).Do(ctx, http.MethodPost, "/v1/logs/reopen", nil, &resp); err != nil {
		return report(stderr, err)
	}
	fmt.Fprintf(stdout, "reopened %s\n", plural.Count(len(resp.Files), "log file"))
	for _, f := range resp.Files {
		fmt.Fprintln(stdout, " ", f)
	}
	return exitOK
}
