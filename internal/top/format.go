package top

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/paddock-sh/paddock/internal/control"
	"github.com/paddock-sh/paddock/internal/display"
)

// sparkBars are the eight heights of a sparkline's bar, lowest first.
var sparkBars = []rune("▁▂▃▄▅▆▇█")

// sparkline draws the last width samples of h as bars scaled from 0 to the
// largest of them (at least floor, so that an idle worker's CPU draws low
// bars rather than noise blown up to full height). A sample not read (a
// worker not running then) is a space; fewer samples than width leave the
// left end blank.
func sparkline(h []sample, width int, floor float64) string {
	if width <= 0 {
		return ""
	}
	if len(h) > width {
		h = h[len(h)-width:]
	}
	top := floor
	for _, s := range h {
		if s.ok && s.v > top {
			top = s.v
		}
	}
	var b strings.Builder
	b.WriteString(strings.Repeat(" ", width-len(h)))
	for _, s := range h {
		if !s.ok {
			b.WriteByte(' ')
			continue
		}
		i := 0
		if top > 0 {
			i = int(s.v / top * float64(len(sparkBars)-1))
		}
		b.WriteRune(sparkBars[max(0, min(i, len(sparkBars)-1))])
	}
	return b.String()
}

// formatEvent prints an event on one short line: time, type, app/worker,
// then what matters of the rest (pid, exit code or signal, delay, detail).
func formatEvent(e control.Event, loc *time.Location) string {
	var b strings.Builder
	b.WriteString(e.Time.In(loc).Format("15:04:05"))
	b.WriteString(" " + e.Type)
	if e.App != "" {
		b.WriteString(" " + e.App)
		if e.Worker != 0 {
			b.WriteString("/" + strconv.Itoa(e.Worker))
		}
	}
	if e.PID != 0 {
		fmt.Fprintf(&b, " pid=%d", e.PID)
	}
	switch {
	case e.Signal != "":
		b.WriteString(" signal=" + e.Signal)
	case e.ExitCode != nil:
		fmt.Fprintf(&b, " code=%d", *e.ExitCode)
	}
	if e.Intended != nil && *e.Intended {
		b.WriteString(" (asked)")
	}
	if e.Delay != "" {
		b.WriteString(" after " + shortDuration(e.Delay))
	}
	if e.Detail != "" {
		b.WriteString(" " + e.Detail)
	}
	return printable(b.String())
}

// printable returns s with its control characters replaced
// (display.Printable) and its tabs as spaces: one line of a cell, which
// neither moves the cursor nor changes colours.
func printable(s string) string {
	return strings.ReplaceAll(display.Printable(s), "\t", " ")
}

// appState says in a word how an app fares: crashing, stalled (its
// rolling update), rolling, waiting (for its dependencies), degraded
// (fewer workers ready than wanted), ok, or idle (scaled to 0).
func appState(a control.App) string {
	switch {
	case a.CrashLoop != nil:
		return "crashing"
	case a.Rollout != nil && a.Rollout.Stalled != "":
		return "stalled"
	case a.Rollout != nil:
		return "rolling"
	case a.Waiting != "":
		return "waiting"
	case a.Instances == 0 && a.Running == 0:
		return "idle"
	case a.Ready < a.Instances:
		return "degraded"
	}
	return "ok"
}

// appNotes returns the lines shown under an app's row: its rolling
// update's progress, crash loop, dependencies waited for, rollback.
func appNotes(a control.App) []string {
	var notes []string
	if ro := a.Rollout; ro != nil {
		notes = append(notes, "rollout: "+ro.Summary)
	}
	if cl := a.CrashLoop; cl != nil {
		notes = append(notes, "crash loop: "+cl.Summary)
	}
	if a.Waiting != "" {
		notes = append(notes, a.Waiting)
	}
	if rb := a.RolledBack; rb != nil {
		notes = append(notes, fmt.Sprintf("rolled back from generation %s to %s: %s", rb.From, rb.To, rb.Reason))
	}
	return notes
}

// shortDuration rounds a Go duration string to three significant figures
// at most (8.187839ms: 8.19ms); what does not parse is shown as it is.
func shortDuration(s string) string {
	d, err := time.ParseDuration(s)
	if err != nil {
		return s
	}
	for _, unit := range []time.Duration{time.Second, time.Millisecond, time.Microsecond} {
		if d >= unit {
			return d.Round(unit / 100).String()
		}
	}
	return d.String()
}
