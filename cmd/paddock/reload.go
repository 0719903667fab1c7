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

	"github.com/paddock-sh/paddock/internal/control"
	"github.com/paddock-sh/paddock/internal/plural"
	"github.com/paddock-sh/paddock/manifest"
)

func cmdReload(args []string, stdout, stderr io.Writer) int {
	fs, sock := newClientFlagSet("reload", "reload", stderr)
	if code := parse(fs, args); code >= 0 {
		return code
	}
	var resp control.ChangesResponse
	if err := call(*sock, http.MethodPost, "/v1/reload", nil, &resp); err != nil {
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

func cmdDiff(args []string, stdout, stderr io.Writer) int {
	fs, sock := newClientFlagSet("diff", "diff [--json] [PATH...]", stderr)
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
	var resp control.ChangesResponse
	if err := call(*sock, http.MethodPost, "/v1/diff", req, &resp); err != nil {
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
		for _, rb := range resp.RolledBack {
			fmt.Fprintf(stdout, "! %s: runs generation %s, rolled back from the manifest's %s (%s); applying keeps the rollback, `paddock restart %s` retries %s\n",
				rb.App, rb.To, rb.From, rb.Reason, rb.App, rb.From)
		}
	}
	if len(resp.Changes) == 0 && len(resp.RolledBack) == 0 {
		if !*asJSON {
			fmt.Fprintln(stdout, "no change")
		}
		return exitDiffNone
	}
	return exitDiffChanges
}
