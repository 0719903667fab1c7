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
	"github.com/spf13/cobra"

	"github.com/paddock-sh/paddock/internal/control"
	"github.com/paddock-sh/paddock/internal/top"
)

// topOptions are paddock top's parsed flags.
type topOptions struct {
	socket   string        // --socket ("": $PADDOCK_SOCKET, else the default path)
	interval time.Duration // --interval between status reads
}

// newTopCmd returns `paddock top`.
func newTopCmd(stdout, stderr io.Writer) *cobra.Command {
	var o topOptions
	var sock *string
	c := &cobra.Command{
		Use:   "top [--interval D]",
		Short: "Live dashboard: workers, CPU, memory, events; keys to act",
		Long: `A live dashboard of the running supervisor in the terminal: apps and workers
with state, readiness, CPU and memory (with a sparkline of the readings),
restarts, uptime, connections handed out, rollouts, and the latest events.
Keys: arrows or j/k select; s scales the app, r restarts it (rolling), x sends
a signal to the worker (or the app's workers), l follows the logs, ? explains,
q or Ctrl-C quits. NO_COLOR (or a terminal without colours): no colour.
Exit 0 on q and when the supervisor stops; 1 when none answers; 2 when
stdout or stdin is not a terminal.`,
		Args:              cobra.NoArgs,
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(*cobra.Command, []string) error {
			if o.interval <= 0 {
				fmt.Fprintln(stderr, "paddock top: --interval must be above 0")
				return exit(exitUsage)
			}
			o.socket = *sock
			ctx, cancel := clientContext(0)
			defer cancel()
			return exit(runTop(ctx, o, stdout, stderr))
		},
	}
	sock = socketFlag(c)
	c.Flags().DurationVar(&o.interval, "interval", top.DefaultInterval, "read the status this often (one sparkline bar per reading)")
	return c
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
		Color:    colourTerminal(out),
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

// colourTerminal says whether top draws in colour on out, a terminal: not
// with NO_COLOR or CLICOLOR=0 (unless CLICOLOR_FORCE), nor when $TERM
// names a terminal without colours. termenv is told out is a terminal
// (runTop checked): by itself it takes any $CI to mean "not a terminal",
// which holds for a CI job's piped log, not for a dashboard that needs a
// terminal to run at all.
func colourTerminal(out *os.File) bool {
	return termenv.NewOutput(out, termenv.WithTTY(true)).EnvColorProfile() != termenv.Ascii
}
