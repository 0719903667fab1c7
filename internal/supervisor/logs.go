package supervisor

import (
	"context"
	"maps"
	"strings"

	"github.com/paddock-sh/paddock/internal/logfile"
	"github.com/paddock-sh/paddock/manifest"
)

// This file holds the apps' log files (`logs:`): configured from each
// manifest set applied, live (the workers are not replaced), and what is
// reported of them.

// configureLogs makes the log files of set's apps those written to from
// the next line on.
func (o *owner) configureLogs(set *manifest.Set) {
	apps := map[string]logfile.App{}
	for name, a := range set.Apps {
		if a.Logs == nil || a.Logs.Off {
			apps[name] = logfile.App{} // listed: see logfile.Set.Has
			continue
		}
		out, errPath := a.Logs.Paths()
		apps[name] = logfile.App{Stdout: out, Stderr: errPath,
			Rotation: logfile.Rotation{MaxSize: a.Logs.MaxSize, MaxFiles: a.Logs.MaxFiles, Compress: a.Logs.Compress}}
	}
	if o.logFiles != nil && maps.Equal(apps, o.logFiles) {
		return
	}
	o.logFiles = apps
	o.sup.logs.Configure(apps)
}

// reportLogs emits log-dropped when a log file starts dropping lines and
// log-resumed, with the count, when it takes them again.
func (o *owner) reportLogs() {
	for _, t := range o.sup.logs.Transitions() {
		ev := Event{Type: EventLogDropped, Detail: "writing to " + t.Path + " (" + strings.Join(t.Apps, ", ") + "): " + t.Reason +
			"; lines are dropped and counted until it takes them again"}
		if !t.Dropping {
			ev = Event{Type: EventLogResumed, Lost: t.Lost, Detail: "writing to " + t.Path + " works again"}
		}
		if len(t.Apps) == 1 {
			ev.App = t.Apps[0]
		}
		o.emit(ev)
	}
}

// ReopenLogs closes every log file and opens it again by its name,
// creating it (for an external logrotate that renamed it: SIGUSR1, or
// `paddock logs --reopen`), and returns the files reopened. Lines queued
// before the call go to the files as they were, lines after to the new
// ones. It waits until ctx is done for a writer blocked in a write.
func (s *Supervisor) ReopenLogs(ctx context.Context) ([]string, error) {
	return s.logs.Reopen(ctx)
}

// LogFiles returns the apps' log files, to read them back (Tail).
func (s *Supervisor) LogFiles() *logfile.Set { return s.logs }
