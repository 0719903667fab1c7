package main

// The crash-loop lines of paddock status: under an app's row, what the
// operator needs to act without searching the log.

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/paddock-sh/paddock/internal/control"
	"github.com/paddock-sh/paddock/internal/display"
	"github.com/paddock-sh/paddock/internal/plural"
)

// statusLines is how many of the last output lines of a crash-looping
// app `paddock status` shows (status --json has all that paddock keeps).
const statusLines = 5

// appNotes returns the lines printed under app a's row of the status
// table: "crash-loop: 14 exits in 60s, last exit 1", when paddock gives up
// on a critical app, and the last lines the worker that exited last wrote
// (control characters shown as U+FFFD: they would garble the table).
func appNotes(a control.App, now time.Time) []string {
	cl := a.CrashLoop
	if cl == nil {
		return nil
	}
	notes := []string{"crash-loop: " + cl.Summary}
	if cl.FailAt != nil {
		notes = append(notes, fmt.Sprintf("critical: unless a worker stays up, paddock stops every app and exits in %s",
			display.Age(cl.FailAt.Sub(now))))
	}
	if le := a.LastExit; le != nil {
		lines := le.Lines
		if len(lines) > statusLines {
			lines = lines[len(lines)-statusLines:]
		}
		for _, l := range lines {
			notes = append(notes, "  | "+display.Printable(l))
		}
	}
	return notes
}

// writeAppRows copies table, the apps' table as printed (a header line,
// then one line per app of apps, in order), to out with each app's notes
// indented under its row. The rows keep the columns the table gave them:
// notes printed into the table would break its alignment.
func writeAppRows(out io.Writer, table string, apps []control.App, logDropped map[string]int64, now time.Time) {
	sc := bufio.NewScanner(strings.NewReader(table))
	for i := -1; sc.Scan(); i++ {
		fmt.Fprintln(out, sc.Text())
		if i < 0 || i >= len(apps) {
			continue
		}
		notes := append(appNotes(apps[i], now), deployNotes(apps[i])...)
		if n := logDropped[apps[i].Name]; n > 0 {
			notes = append(notes, fmt.Sprintf("logs: %s dropped since paddock started: its log file could not keep up (a full or slow disk); writing resumes by itself",
				plural.Count(int(n), "line")))
		}
		for _, n := range notes {
			fmt.Fprintln(out, "  "+n)
		}
	}
}
