package main

// What the client commands share: each talks to a running supervisor's control socket
// (control.SocketPath: --socket, $PADDOCK_SOCKET, or the default path).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/paddock-sh/paddock/internal/control"
)

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

func appPath(app string) string { return "/v1/apps/" + url.PathEscape(app) }

// call sends one request to the supervisor answering on sock (--socket,
// else $PADDOCK_SOCKET, else the default path) with body (nil: none) as
// JSON, and decodes its answer into out (nil: ignored). SIGINT and SIGTERM
// cancel it.
func call(sock, method, path string, body, out any) error {
	ctx, cancel := clientContext(0)
	defer cancel()
	return control.NewClient(control.SocketPath(sock)).Do(ctx, method, path, body, out)
}
