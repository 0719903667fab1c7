package main

// paddock status and paddock events: what a running supervisor shows.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/paddock-sh/paddock/internal/control"
	"github.com/paddock-sh/paddock/internal/display"
	"github.com/paddock-sh/paddock/internal/plural"
	"github.com/paddock-sh/paddock/internal/supervisor"
)

// statusOptions are paddock status's flags.
type statusOptions struct {
	socket *string
	output outputFlags
}

// newStatusCmd returns `paddock status`, also `paddock ls`.
func newStatusCmd(stdout, stderr io.Writer) *cobra.Command {
	var o statusOptions
	c := &cobra.Command{
		Use:     "status [-o json|yaml|wide]",
		Aliases: []string{"ls"},
		Short:   "Apps and workers: state, readiness, uptime, restarts, CPU, memory",
		Long: `Print the apps and their workers: desired and ready workers, CPU and
resident memory, state, uptime, restarts, generation; under an app's row, why
it is stalled, crash-looping or rolled back. -o wide adds what the tables
leave out; -o json (or --json) and -o yaml print the whole status, with the
same field names.`,
		Args:              cobra.NoArgs,
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(*cobra.Command, []string) error {
			return exit(runStatus(o, stdout, stderr))
		},
	}
	o.socket = socketFlag(c)
	o.output.add(c, "print the whole status as JSON (same as -o json)")
	return c
}

// runStatus runs paddock status.
func runStatus(o statusOptions, stdout, stderr io.Writer) int {
	format, ok := o.output.format(stderr, "status")
	if !ok {
		return exitUsage
	}
	ctx, cancel := clientContext(0)
	defer cancel()
	c := control.NewClient(control.SocketPath(*o.socket))
	if format == outputJSON || format == outputYAML {
		var raw json.RawMessage
		if err := c.Do(ctx, http.MethodGet, "/v1/status", nil, &raw); err != nil {
			return report(stderr, err)
		}
		if err := writeDocument(stdout, format, raw); err != nil {
			return report(stderr, err)
		}
		return exitOK
	}
	st, err := c.Status(ctx)
	if err != nil {
		return report(stderr, err)
	}
	if format == outputWide {
		writeStatusWide(stdout, st, time.Now())
	} else {
		writeStatus(stdout, st, time.Now())
	}
	return exitOK
}

// writeStatus prints the apps, each with its notes (appNotes) under its
// row, then the workers, as tables. With short names and one listen
// address, each line fits in 80 columns: the addresses each worker serves
// and what else only --json had are in -o wide (writeStatusWide).
func writeStatus(out io.Writer, st *control.StatusResponse, now time.Time) {
	writeStatusTables(out, st, now, false)
}

// writeStatusTables prints the tables of writeStatus, with the columns of
// -o wide after the others when wide.
func writeStatusTables(out io.Writer, st *control.StatusResponse, now time.Time, wide bool) {
	writeManifests(out, st.Manifests, now)
	var apps strings.Builder
	tw := tabwriter.NewWriter(&apps, 0, 4, 2, ' ', 0)
	header := []string{"APP", "DESIRED", "READY", "CPU", "MEM", "POLICY", "LISTEN", "GENERATION", "ROLLOUT", "WAITING"}
	if wide {
		header = append(header, "RUNNING", "CRITICAL", "SILENT")
	}
	writeRow(tw, header)
	for _, a := range st.Apps {
		row := appCells(a)
		if wide {
			row = append(row, appWideCells(a)...)
		}
		writeRow(tw, row)
	}
	tw.Flush()
	writeAppRows(out, apps.String(), st.Apps, st.LogDropped, now)
	fmt.Fprintln(out)
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	header = []string{"APP", "WORKER", "PID", "STATE", "READY", "UPTIME", "RESTARTS", "CPU", "MEM", "GENERATION"}
	if wide {
		header = append(header, "CPU-TIME", "PROCS", "HANDED-OUT", "LISTEN", "HEALTH", "STATUS")
	}
	writeRow(tw, header)
	for _, w := range st.Workers {
		row := workerCells(w, now)
		if wide {
			row = append(row, workerWideCells(w)...)
		}
		writeRow(tw, row)
	}
	tw.Flush()
	writeLostOutput(out, st.LostOutput)
}

// writeLostOutput says, under the tables, how many of the workers' lines
// paddock could not write to its own stdout or stderr (a reader that went
// away or stalled, a full disk): they are counted, never silently lost.
func writeLostOutput(out io.Writer, lost map[string]int64) {
	for _, stream := range []string{"stdout", "stderr"} {
		if n := lost[stream]; n > 0 {
			fmt.Fprintf(out, "\npaddock's %s: %s of the workers' output lost since paddock started (its reader stalled or went away, or a full disk)\n",
				stream, plural.Count(int(n), "line"))
		}
	}
}

// writeRow writes the cells of a table row to tw.
func writeRow(tw io.Writer, cells []string) {
	fmt.Fprintln(tw, strings.Join(cells, "\t"))
}

// appCells are the columns of an app's row in the status table.
func appCells(a control.App) []string {
	desired := strconv.Itoa(a.Instances)
	if a.Override {
		desired += fmt.Sprintf(" (scaled; manifest %d)", a.ManifestInstances)
	}
	rollout := "-"
	if ro := a.Rollout; ro != nil {
		// The counts only: why it stalled is said under the row.
		rollout = fmt.Sprintf("%d/%d new ready, %d old", ro.NewReady, ro.Instances, ro.Old)
		if ro.Stalled != "" {
			rollout = "stalled: " + rollout
		}
	}
	gen := a.Generation
	if a.RolledBack != nil {
		gen += " (rolled back from " + a.RolledBack.From + ")"
	}
	return []string{a.Name, desired, fmt.Sprintf("%d/%d", a.Ready, a.Instances),
		display.CPU(a.CPUPercent), display.Mem(a.RSSBytes), a.SchedulingPolicy,
		dash(strings.Join(a.Listen, ",")), gen, rollout, dash(a.Waiting)}
}

// workerCells are the columns of a worker's row in the status table.
func workerCells(w control.Worker, now time.Time) []string {
	pid, uptime := "-", "-"
	if w.PID != 0 {
		pid = strconv.Itoa(w.PID)
		uptime = display.Age(now.Sub(w.StartedAt))
	}
	state := w.State
	if w.RestartAt != nil {
		state += " (restart in " + display.Age(w.RestartAt.Sub(now)) + ")"
	}
	return []string{w.App, strconv.Itoa(w.ID), pid, state, yesNo(w.Ready), uptime, strconv.Itoa(w.Restarts),
		display.CPU(w.CPUPercent), display.Mem(w.RSSBytes), w.Generation}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// eventsOptions are paddock events's flags.
type eventsOptions struct {
	socket *string
	app    string
	output outputFlags
}

// newEventsCmd returns `paddock events`.
func newEventsCmd(stdout, stderr io.Writer) *cobra.Command {
	var o eventsOptions
	c := &cobra.Command{
		Use:   "events [-o json|yaml|wide] [--app APP]",
		Short: "Follow events live",
		Long: `Print the supervisor's events as they happen (starts, exits, restarts,
rollouts, reloads), one a line, until interrupted. -o wide prints every
field of each; -o json (or --json) prints each as a line of JSON, -o yaml
each as a YAML document, with the same field names.`,
		Args:              cobra.NoArgs,
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(*cobra.Command, []string) error {
			return exit(runEvents(o, stdout, stderr))
		},
	}
	o.socket = socketFlag(c)
	c.Flags().StringVar(&o.app, "app", "", "only the events of this app")
	_ = c.RegisterFlagCompletionFunc("app", completeAppFlag)
	o.output.add(c, "print each event as a line of JSON (same as -o json)")
	return c
}

// runEvents runs paddock events.
func runEvents(o eventsOptions, stdout, stderr io.Writer) int {
	format, ok := o.output.format(stderr, "events")
	if !ok {
		return exitUsage
	}
	ctx, cancel := clientContext(0)
	defer cancel()
	c := control.NewClient(control.SocketPath(*o.socket))
	write := eventWriter(stdout, format)
	err := c.Events(ctx, o.app, nil, func(e control.Event) bool {
		return write(e) == nil
	})
	if err != nil && ctx.Err() == nil {
		return report(stderr, err)
	}
	return exitOK
}

// formatEvent prints an event on one line: time, type, app/worker, then
// key=value pairs.
func formatEvent(e control.Event) string {
	var b strings.Builder
	b.WriteString(e.Time.Local().Format("15:04:05.000"))
	b.WriteString(" ")
	b.WriteString(e.Type)
	if e.App != "" {
		b.WriteString(" " + e.App)
		if e.Worker != 0 {
			b.WriteString("/" + strconv.Itoa(e.Worker))
		}
	}
	if e.PID != 0 {
		fmt.Fprintf(&b, " pid=%d", e.PID)
	}
	if e.ExitCode != nil {
		if e.Signal != "" {
			fmt.Fprintf(&b, " signal=%s", e.Signal)
		} else {
			fmt.Fprintf(&b, " code=%d", *e.ExitCode)
		}
	} else if e.Signal != "" {
		fmt.Fprintf(&b, " signal=%s", e.Signal)
	}
	if e.Intended != nil {
		fmt.Fprintf(&b, " intended=%t", *e.Intended)
	}
	if e.Delay != "" {
		fmt.Fprintf(&b, " delay=%s", e.Delay)
	}
	if e.Attempt != 0 {
		fmt.Fprintf(&b, " attempt=%d", e.Attempt)
	}
	if e.Generation != "" {
		fmt.Fprintf(&b, " generation=%s", e.Generation)
	}
	if e.Detail != "" {
		fmt.Fprintf(&b, " %s", e.Detail)
	}
	return b.String()
}

// deployNotes returns the lines printed under app a's row of the status
// table about its deploys: a stalled rolling update, with why, the failing
// worker's last exit and its last output lines (or, while it still runs,
// the lines it wrote), and a rollback (rollout.onStall: rollback), with
// what ends it. Lines that the crash-loop notes show already are not
// repeated.
func deployNotes(a control.App) []string {
	var notes []string
	if ro := a.Rollout; ro != nil && ro.Stalled != "" {
		notes = append(notes, "rollout stalled: "+ro.Stalled)
		lines := ro.Lines
		if ex := ro.LastExit; ex != nil {
			notes = append(notes, "  last exit: "+describeExit(a.Name, ex))
			lines = ex.Lines
			if a.CrashLoop != nil && a.LastExit != nil && a.LastExit.Worker == ex.Worker && a.LastExit.At.Equal(ex.At) {
				lines = nil // under the crash-loop line already
			}
		} else if ro.StalledWorker != 0 && len(lines) > 0 {
			notes = append(notes, fmt.Sprintf("  %s/%d runs, not ready; its last lines:", a.Name, ro.StalledWorker))
		}
		if len(lines) > statusLines {
			lines = lines[len(lines)-statusLines:]
		}
		for _, l := range lines {
			notes = append(notes, "  | "+display.Printable(l))
		}
	}
	if rb := a.RolledBack; rb != nil {
		notes = append(notes, fmt.Sprintf("rolled back from generation %s to %s: %s", rb.From, rb.To, rb.Reason),
			fmt.Sprintf("  the manifest still says %s: a reload that changes %s rolls forward; `paddock restart %s` retries it",
				rb.From, a.Name, a.Name))
	}
	return notes
}

// describeExit says what an exit was, in a phrase.
func describeExit(app string, ex *control.ExitInfo) string {
	uptime, _ := time.ParseDuration(ex.Uptime)
	return supervisor.DescribeExit(app, ex.Worker, ex.PID, ex.Code, ex.Signal, uptime)
}

// writeLines prints a worker's output lines, indented.
func writeLines(out io.Writer, lines []string) {
	for _, l := range lines {
		fmt.Fprintf(out, "    | %s\n", l)
	}
}

// writeManifests prints, above the tables, the revision of the manifests
// that runs and the one last rejected, when there is one:
//
//	revision: git 3f2c… applied 12:00:01 (5m ago) (modified: deploy/web.yaml)
//	rejected: git 9a1b… at 12:04:10 (1m ago): FILE:3:5: apps.web.instances: … (+1 more)
//
// "(modified: …)" names the manifest files that differ from the commit
// (edited in place, or not committed), "(modified: unknown)" says that
// could not be told.
func writeManifests(out io.Writer, m control.Manifests, now time.Time) {
	if m.Revision != "" {
		line := "revision: " + m.Kind + " " + display.Printable(m.Revision)
		if m.AppliedAt != nil {
			line += fmt.Sprintf(" applied %s (%s ago)", m.AppliedAt.Local().Format(time.TimeOnly), display.Age(now.Sub(*m.AppliedAt)))
		}
		line += modifiedText(m.Modified, m.ModifiedUnknown)
		fmt.Fprintln(out, line)
	}
	if r := m.Rejected; r != nil && r.Revision != "" {
		line := fmt.Sprintf("rejected: %s %s at %s (%s ago): %s", r.Kind, display.Printable(r.Revision),
			r.At.Local().Format(time.TimeOnly), display.Age(now.Sub(r.At)), display.Printable(r.Error))
		if r.Errors > 1 {
			line += fmt.Sprintf(" (+%d more)", r.Errors-1)
		}
		line += modifiedText(r.Modified, r.ModifiedUnknown)
		fmt.Fprintln(out, line)
	}
	if m.Revision != "" || (m.Rejected != nil && m.Rejected.Revision != "") {
		fmt.Fprintln(out)
	}
}

// modifiedText is what a revision line adds for the manifest files that
// differ from the commit: " (modified: a.yaml,b.yaml)", " (modified:
// unknown)", or "".
func modifiedText(modified string, unknown bool) string {
	switch {
	case unknown:
		return " (modified: unknown)"
	case modified != "":
		return " (modified: " + display.Printable(modified) + ")"
	}
	return ""
}
