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
)

// appNotes returns the lines printed under app a's row of the status
// table: "crash-loop: 14 exits in 60s, last exit 1", when paddock gives up
// on a critical app, and the last lines the app's workers wrote.
func appNotes(a control.App, now time.Time) []string {
	cl := a.CrashLoop
	if cl == nil {
		return nil
	}
	notes := []string{"crash-loop: " + cl.Summary}
	if cl.FailAt != nil {
		notes = append(notes, fmt.Sprintf("critical: unless a worker stays up, paddock stops every app and exits in %s",
			formatAge(cl.FailAt.Sub(now))))
	}
	return notes
}

// writeAppRows copies table, the apps' table as printed (a header line,
// then one line per app of apps, in order), to out with each app's notes
// indented under its row. The rows keep the columns the table gave them:
// notes printed into the table would break its alignment.
func writeAppRows(out io.Writer, table string, apps []control.App, now time.Time) {
	sc := bufio.NewScanner(strings.NewReader(table))
	for i := -1; sc.Scan(); i++ {
		fmt.Fprintln(out, sc.Text())
		if i < 0 || i >= len(apps) {
			continue
		}
		for _, n := range appNotes(apps[i], now) {
			fmt.Fprintln(out, "  "+n)
		}
	}
}
