package main

// --format text|github|json of paddock validate and paddock diff: the
// output CI reads (internal/annotate).

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/paddock-sh/paddock/internal/annotate"
	"github.com/paddock-sh/paddock/internal/control"
	"github.com/paddock-sh/paddock/internal/plural"
	"github.com/paddock-sh/paddock/internal/supervisor"
	"github.com/paddock-sh/paddock/manifest"
)

// The values of --format.
const (
	formatText   = "text"
	formatGitHub = "github"
	formatJSON   = "json"
)

func validFormat(f string) bool {
	return f == formatText || f == formatGitHub || f == formatJSON
}

// formatFlag adds --format to c.
func formatFlag(c *cobra.Command, format *string) {
	c.Flags().StringVar(format, "format", formatText, "output: text; github (GitHub Actions workflow commands: errors on the pull request's lines); json")
	_ = c.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]cobra.Completion{formatText, formatGitHub, formatJSON}, cobra.ShellCompDirectiveNoFileComp))
}

// writeFindings writes findings in format (github or json) to stdout,
// their paths relative to the working directory; title names the
// command (the title of an annotation without a field).
func writeFindings(stdout io.Writer, format, title string, valid bool, findings []annotate.Finding) {
	if wd, err := os.Getwd(); err == nil {
		for i := range findings {
			findings[i] = findings[i].Rel(wd)
		}
	}
	if format == formatJSON {
		_ = annotate.WriteJSON(stdout, annotate.Report{Valid: valid, Findings: findings})
		return
	}
	_ = annotate.WriteGitHub(stdout, title, findings)
}

// runValidateCI is paddock validate with --format github or json: the
// same checks as runValidate, every error and warning written as a
// finding on stdout, the same exit codes.
func runValidateCI(sock, format string, args []string, stdout, stderr io.Writer) int {
	manifests := paths("validate", args, stderr)
	if manifests == nil {
		return exitUsage
	}
	set, err := manifest.Load(manifests, manifest.CurrentHost())
	if err != nil {
		writeFindings(stdout, format, "paddock validate", false, annotate.FromErrors(annotate.Error, err))
		if manifest.IsPathError(err) {
			return exitUsage
		}
		return exitFailure
	}
	var findings []annotate.Finding
	if w := supervisor.DescriptorWarning(set); w != "" {
		findings = append(findings, annotate.Finding{Severity: annotate.Warning, Message: w})
	}
	for _, w := range listenWarnings(set, runningListeners(sock)) {
		findings = append(findings, annotate.FromError(annotate.Warning, w))
	}
	if format == formatGitHub {
		findings = append(findings, annotate.Finding{Severity: annotate.Notice,
			Message: fmt.Sprintf("ok: %s, %s", plural.Count(len(set.Apps), "app"), plural.Count(set.Workers(), "worker"))})
	}
	writeFindings(stdout, format, "paddock validate", true, findings)
	return exitOK
}

// apiFindings returns the findings of an error the control API answered:
// each manifest error with its position (ErrorResponse.Details), else
// each message.
func apiFindings(apiErr *control.APIError) []annotate.Finding {
	var out []annotate.Finding
	if len(apiErr.Details) > 0 && len(apiErr.Details) == len(apiErr.Messages()) {
		for _, d := range apiErr.Details {
			out = append(out, annotate.Finding{Severity: annotate.Error, File: d.File, Line: d.Line, Col: d.Col, Field: d.Field, Message: d.Message})
		}
		return out
	}
	for _, m := range apiErr.Messages() {
		out = append(out, annotate.Finding{Severity: annotate.Error, Message: m})
	}
	return out
}

// diffFindings returns what diff found as notices (a change) and warnings
// (an app that runs rolled back), "no change" when nothing would change.
func diffFindings(resp control.ChangesResponse) []annotate.Finding {
	var out []annotate.Finding
	for _, c := range resp.Changes {
		out = append(out, annotate.Finding{Severity: annotate.Notice, Message: describeChange(c)})
	}
	for _, rb := range resp.RolledBack {
		out = append(out, annotate.Finding{Severity: annotate.Warning,
			Message: fmt.Sprintf("%s runs generation %s, rolled back from the manifest's %s (%s)", rb.App, rb.To, rb.From, rb.Reason)})
	}
	if len(out) == 0 {
		out = append(out, annotate.Finding{Severity: annotate.Notice, Message: "no change"})
	}
	return out
}
