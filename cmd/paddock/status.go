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

	"github.com/paddock-sh/paddock/internal/bytesize"
	"github.com/paddock-sh/paddock/internal/control"
	"github.com/paddock-sh/paddock/internal/supervisor"
)

func cmdStatus(args []string, stdout, stderr io.Writer) int {
	fs, sock := newClientFlagSet("status", "status [--json]", stderr)
	asJSON := fs.Bool("json", false, "print the whole status as JSON")
	if code := parse(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintln(stderr, "paddock status: no arguments expected")
		return exitUsage
	}
	ctx, cancel := clientContext(0)
	defer cancel()
	c := control.NewClient(control.SocketPath(*sock))
	if *asJSON {
		var raw json.RawMessage
		if err := c.Do(ctx, http.MethodGet, "/v1/status", nil, &raw); err != nil {
			return report(stderr, err)
		}
		stdout.Write(raw)
		return exitOK
	}
	st, err := c.Status(ctx)
	if err != nil {
		return report(stderr, err)
	}
	writeStatus(stdout, st, time.Now())
	return exitOK
}

// writeStatus prints the apps, each with its notes (appNotes) under its
// row, then the workers, as tables. With short names and one listen
// address, each line fits in 80 columns: the addresses each worker serves
// are in --json (workers[].listen).
func writeStatus(out io.Writer, st *control.StatusResponse, now time.Time) {
	var apps strings.Builder
	tw := tabwriter.NewWriter(&apps, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "APP\tDESIRED\tREADY\tCPU\tMEM\tPOLICY\tLISTEN\tGENERATION\tROLLOUT\tWAITING")
	for _, a := range st.Apps {
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
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.Name, desired, a.Ready, a.Instances,
			formatCPU(a.CPUPercent), formatMem(a.RSSBytes), a.SchedulingPolicy,
			dash(strings.Join(a.Listen, ",")), gen, rollout, dash(a.Waiting))
	}
	tw.Flush()
	writeAppRows(out, apps.String(), st.Apps, now)
	fmt.Fprintln(out)
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "APP\tWORKER\tPID\tSTATE\tREADY\tUPTIME\tRESTARTS\tCPU\tMEM\tGENERATION")
	for _, w := range st.Workers {
		pid, uptime := "-", "-"
		if w.PID != 0 {
			pid = strconv.Itoa(w.PID)
			uptime = formatAge(now.Sub(w.StartedAt))
		}
		state := w.State
		if w.RestartAt != nil {
			state += " (restart in " + formatAge(w.RestartAt.Sub(now)) + ")"
		}
		ready := "no"
		if w.Ready {
			ready = "yes"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", w.App, w.ID, pid, state, ready, uptime, w.Restarts,
			formatCPU(w.CPUPercent), formatMem(w.RSSBytes), w.Generation)
	}
	tw.Flush()
}

// formatCPU prints a CPU percentage as top does, short: 0.3%, 12%, 150%;
// "-" when there is none.
func formatCPU(p *float64) string {
	switch {
	case p == nil:
		return "-"
	case *p < 10:
		return fmt.Sprintf("%.1f%%", *p)
	}
	return fmt.Sprintf("%.0f%%", *p)
}

// formatMem prints a size in bytes as bytesize.Format does; "-" when
// there is none.
func formatMem(n *int64) string {
	if n == nil {
		return "-"
	}
	return bytesize.Format(*n)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// formatAge prints a duration the way ps and kubectl do: 45s, 3m12s, 2h5m,
// 4d3h.
func formatAge(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

func cmdEvents(args []string, stdout, stderr io.Writer) int {
	fs, sock := newClientFlagSet("events", "events [--json] [--app APP]", stderr)
	asJSON := fs.Bool("json", false, "print each event as a line of JSON")
	app := fs.String("app", "", "only the events of this app")
	if code := parse(fs, args); code >= 0 {
		return code
	}
	ctx, cancel := clientContext(0)
	defer cancel()
	c := control.NewClient(control.SocketPath(*sock))
	enc := json.NewEncoder(stdout)
	err := c.Events(ctx, *app, nil, func(e control.Event) bool {
		if *asJSON {
			return enc.Encode(e) == nil
		}
		_, err := fmt.Fprintln(stdout, formatEvent(e))
		return err == nil
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
			notes = append(notes, "  | "+printable(l))
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
