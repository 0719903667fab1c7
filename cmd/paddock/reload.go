package main

// paddock reload and paddock diff: the manifests against the running set.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/paddock-sh/paddock/internal/control"
	"github.com/paddock-sh/paddock/internal/plural"
	"github.com/paddock-sh/paddock/manifest"
)

// newReloadCmd returns `paddock reload`.
func newReloadCmd(stdout, stderr io.Writer) *cobra.Command {
	var sock *string
	c := &cobra.Command{
		Use:   "reload",
		Short: "Re-read the manifests now and print what changed",
		Long: `Make the supervisor re-read its manifests now, as SIGHUP does, and print
what changed. Invalid manifests are not applied: the running set is kept,
and the errors are printed (exit 1).`,
		Args:              cobra.NoArgs,
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(*cobra.Command, []string) error {
			return exit(runReload(*sock, stdout, stderr))
		},
	}
	sock = socketFlag(c)
	return c
}

// runReload runs paddock reload against the supervisor on sock.
func runReload(sock string, stdout, stderr io.Writer) int {
	var resp control.ChangesResponse
	if err := call(sock, http.MethodPost, "/v1/reload", nil, &resp); err != nil {
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
	case manifest.ChangeReconfigured:
		s := fmt.Sprintf("~ %s: reconfigured (%s), workers kept", c.App, strings.Join(c.Fields, ", "))
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

// newDiffCmd returns `paddock diff`.
func newDiffCmd(stdout, stderr io.Writer) *cobra.Command {
	var sock *string
	var asJSON bool
	var format string
	c := &cobra.Command{
		Use:   "diff [--json] [--format text|github|json] [PATH...]",
		Short: "Show what applying PATH would change",
		Long: `Show what applying the manifests PATH (default: the ones the supervisor
runs) would change, without applying it.

--format github prints, on stdout, each change as a GitHub Actions notice and
each error of invalid manifests as an ::error on its file and line (paths
relative to the working directory); --format json is --json, and invalid
manifests print {"valid": false, "findings": [...]} as validate does. See
docs/ci.md.

Exit codes: 0 nothing would change; 1 something would (or an app runs rolled
back); 2 errors (usage errors included).`,
		RunE: func(_ *cobra.Command, args []string) error {
			if !validFormat(format) {
				fmt.Fprintf(stderr, "paddock diff: --format must be text, github or json, got %q\n", format)
				return exit(exitDiffError)
			}
			if asJSON {
				format = formatJSON
			}
			return exit(runDiff(*sock, format, args, stdout, stderr))
		},
	}
	sock = socketFlag(c)
	c.Flags().BoolVar(&asJSON, "json", false, "print the changes as JSON (--format json)")
	formatFlag(c, &format)
	return c
}

// runDiff runs paddock diff of the manifest paths args (none: the running
// ones) against the supervisor on sock.
func runDiff(sock, format string, args []string, stdout, stderr io.Writer) int {
	var req control.DiffRequest
	for _, p := range args {
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
	var resp control.ChangesResponse
	if err := call(sock, http.MethodPost, "/v1/diff", req, &resp); err != nil {
		var apiErr *control.APIError
		if format != formatText && errors.As(err, &apiErr) {
			writeFindings(stdout, format, "paddock diff", false, apiFindings(apiErr))
			return exitDiffError
		}
		report(stderr, err)
		return exitDiffError
	}
	asJSON := format == formatJSON
	if format == formatGitHub {
		writeFindings(stdout, format, "paddock diff", true, diffFindings(resp))
	} else if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(resp)
	} else {
		for _, c := range resp.Changes {
			fmt.Fprintln(stdout, describeChange(c))
		}
		for _, rb := range resp.RolledBack {
			fmt.Fprintf(stdout, "! %s: runs generation %s, rolled back from the manifest's %s (%s); applying keeps the rollback, `paddock restart %s` retries %s\n",
				rb.App, rb.To, rb.From, rb.Reason, rb.App, rb.From)
		}
	}
	if len(resp.Changes) == 0 && len(resp.RolledBack) == 0 {
		if format == formatText {
			fmt.Fprintln(stdout, "no change")
		}
		return exitDiffNone
	}
	return exitDiffChanges
}
