package main

// paddock validate, and the listen-address checks it shares with run.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/paddock-sh/paddock/internal/control"
	"github.com/paddock-sh/paddock/internal/plural"
	"github.com/paddock-sh/paddock/internal/supervisor"
	"github.com/paddock-sh/paddock/internal/unixsock"
	"github.com/paddock-sh/paddock/manifest"
	"github.com/paddock-sh/paddock/netshare"
)

// newValidateCmd returns `paddock validate`.
func newValidateCmd(stdout, stderr io.Writer) *cobra.Command {
	var sock *string
	var format string
	c := &cobra.Command{
		Use:   "validate [flags] [PATH...]",
		Short: "Check manifests without running anything",
		Long: `Check the manifests PATH (files, or directories of them; default ` + defaultManifest + `)
as paddock run would, without running anything. Listen addresses in use on
this host are warnings (beside the supervisor on --socket, not those its own
apps hold).

--format github prints each error and warning on stdout as a GitHub Actions
workflow command (::error file=F,line=L,col=C,title=FIELD::MESSAGE), with the
paths relative to the working directory, so that they land on the lines of a
pull request; --format json prints one JSON document ({"valid", "findings":
[{"severity", "file", "line", "col", "field", "message"}]}). See docs/ci.md.

Exit codes: 0 valid; 1 invalid; 2 usage errors or unreadable paths.`,
		RunE: func(_ *cobra.Command, args []string) error {
			if !validFormat(format) {
				fmt.Fprintf(stderr, "paddock validate: --format must be text, github or json, got %q\n", format)
				return exit(exitUsage)
			}
			if format != formatText {
				return exit(runValidateCI(*sock, format, args, stdout, stderr))
			}
			return exit(runValidate(*sock, args, stdout, stderr))
		},
	}
	sock = socketFlag(c)
	formatFlag(c, &format)
	return c
}

// runValidate runs paddock validate on the manifest paths args; sock is
// the control socket of the supervisor whose addresses are no warning.
func runValidate(sock string, args []string, stdout, stderr io.Writer) int {
	_, set, code := loadArgs("validate", args, stderr)
	if set == nil {
		return code
	}
	if w := supervisor.DescriptorWarning(set); w != "" {
		// A warning, not an error: the limit where the manifests run
		// may differ from this one.
		fmt.Fprintln(stderr, "warning:", w)
	}
	// Warnings too: the manifests may be validated on another host (CI)
	// than the one they run on.
	for _, w := range listenWarnings(set, runningListeners(sock)) {
		fmt.Fprintln(stderr, "warning:", w.Error())
	}
	fmt.Fprintf(stdout, "ok: %s, %s\n", plural.Count(len(set.Apps), "app"), plural.Count(set.Workers(), "worker"))
	return exitOK
}

// runningListeners returns, by app, the addresses the apps of the
// supervisor answering on the control socket listen on, or nil when none
// answers (within a second: validate must not hang on a stuck socket).
func runningListeners(sock string) map[string][]string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	st, err := control.NewClient(control.SocketPath(sock)).Status(ctx)
	if err != nil {
		return nil
	}
	held := map[string][]string{}
	for _, a := range st.Apps {
		held[a.Name] = a.Listen
	}
	return held
}

// sameListen reports whether bound, an address as a running supervisor
// reports it ("127.0.0.1:8080", "[::]:8000", "/run/web.sock",
// "udp:[::]:5353"), is the one l asks for (a TCP or UDP address without a
// host is bound on every interface).
func sameListen(l manifest.Listen, bound string) bool {
	if l.Network == "unix" {
		return l.Address == bound
	}
	bound, udp := strings.CutPrefix(bound, "udp:")
	if udp != (l.Network == "udp") {
		return false
	}
	host, port, err := net.SplitHostPort(l.Address)
	bhost, bport, berr := net.SplitHostPort(bound)
	if err != nil || berr != nil || port != bport || port == "0" {
		return false
	}
	if host == "" {
		return bhost == "::" || bhost == "0.0.0.0"
	}
	return host == bhost
}

// listenWarnings checks each `listen:` address of set on this host with
// netshare.Check (a TCP address bound for a moment, a unix path only
// looked at and probed; nothing is left behind) and returns a warning,
// "FILE:LINE:COL: apps.NAME.listen[I]: ..." as a FieldError, for each that
// another process holds, sorted by position. Other bind failures (a privileged port, an
// address of another host) are not reported: they depend on who runs
// paddock and where, more than on the manifests.
//
// held lists, by app, the addresses a running supervisor's apps listen on
// (runningListeners): an address the same app already holds there is the
// running paddock's own, which a reload keeps, and is not reported.
func listenWarnings(set *manifest.Set, held map[string][]string) []*manifest.FieldError {
	var ws []*manifest.FieldError
	for _, name := range set.Names() {
		a := set.Apps[name]
		for _, l := range a.Listen {
			if slices.ContainsFunc(held[name], func(bound string) bool { return sameListen(l, bound) }) {
				continue
			}
			err := netshare.Check(l, a.SchedulingPolicy == "reuseport")
			if !errors.Is(err, netshare.ErrInUse) {
				continue
			}
			key := fmt.Sprintf("listen[%d]", l.Index)
			pos, ok := a.Pos[key]
			if !ok {
				pos = a.Source
			}
			msg := l.Raw + " is in use on this host (by another process)"
			if errors.Is(err, unixsock.ErrNotSocket) {
				msg = fmt.Sprintf("%s: %s exists and is not a socket", l.Raw, l.Address)
			}
			ws = append(ws, &manifest.FieldError{Pos: pos, Field: "apps." + name + "." + key, Msg: msg + "; paddock run would refuse this set here"})
		}
	}
	slices.SortStableFunc(ws, func(a, b *manifest.FieldError) int { return a.Pos.Compare(b.Pos) })
	return ws
}
