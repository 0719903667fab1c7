package main

// paddock top: the live dashboard (internal/top).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/charmbracelet/x/term"
	"github.com/muesli/termenv"

	"github.com/paddock-sh/paddock/internal/control"
	"github.com/paddock-sh/paddock/internal/top"
)

// topOptions are paddock top's parsed flags.
type topOptions struct {
	socket   string        // --socket ("": $PADDOCK_SOCKET, else the default path)
	interval time.Duration // --interval between status reads
}

func cmdTop(args []string, stdout, stderr io.Writer) int {
	fs, sock := newClientFlagSet("top", "top [--interval D]", stderr)
	interval := fs.Duration("interval", top.DefaultInterval, "read the status this often (one sparkline bar per reading)")
	if code := parse(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() > 0 || *interval <= 0 {
		fmt.Fprintln(stderr, "paddock top: no arguments expected, and --interval must be above 0")
		return exitUsage
	}
	ctx, cancel := clientContext(0)
	defer cancel()
	return runTop(ctx, topOptions{socket: *sock, interval: *interval}, stdout, stderr)
}

// runTop shows the dashboard on stdout, which must be a terminal, with
// the keys read from stdin. It exits 0 on q or Ctrl-C, and when the
// supervisor stops (saying so), 1 when no supervisor answers, as the other
// client commands do.
func runTop(ctx context.Context, o topOptions, stdout, stderr io.Writer) int {
	path := control.SocketPath(o.socket)
	c := control.NewClient(path)
	st, err := c.Status(ctx)
	if err != nil {
		return report(stderr, err)
	}
	out, ok := stdout.(*os.File)
	if !ok || !term.IsTerminal(out.Fd()) || !term.IsTerminal(os.Stdin.Fd()) {
		fmt.Fprintln(stderr, "paddock top: needs a terminal; `paddock status` and `paddock events` print to pipes and files")
		return exitUsage
	}
	err = top.Run(ctx, c, st, top.Options{
		Interval: o.interval,
		Color:    termenv.NewOutput(out).EnvColorProfile() != termenv.Ascii,
		Input:    os.Stdin,
		Output:   out,
	})
	switch {
	case errors.Is(err, top.ErrStopped):
		fmt.Fprintf(stderr, "paddock top: the supervisor on %s stopped\n", path)
	case err != nil:
		return report(stderr, err)
	}
	return exitOK
}
