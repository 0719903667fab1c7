// Package control is paddock's control API: HTTP/1.1 with JSON over a Unix
// socket private to the supervisor's user (see Listen), and the client the
// CLI uses. docs/api.md documents every endpoint.
package control

import (
	"encoding/json"
	"time"

	"github.com/paddock-sh/paddock/internal/supervisor"
	"github.com/paddock-sh/paddock/manifest"
)

// The types below are the JSON bodies of the API. Field names are part of
// the API: add, never rename.

// StatusResponse is GET /v1/status.
type StatusResponse struct {
	Supervisor SupervisorInfo `json:"supervisor"`
	// LostOutput counts the lines of workers that could not be
	// written to paddock's stdout and stderr (a broken pipe, a full disk).
	LostOutput map[string]int64 `json:"lostOutput"`
	Apps       []App            `json:"apps"`
	Workers    []Worker         `json:"workers"`
	// HealthChecks counts each app's health probes by result since
	// paddock started.
	HealthChecks map[string]HealthCounts `json:"healthChecks,omitempty"`
	// Relay counts the relayed messages (ipc.relay) of each app that
	// relayed one since paddock started.
	Relay map[string]RelayCounts `json:"relay,omitempty"`
	// LogDropped counts, by app, the lines that could not be written to
	// its log file (logs:) since paddock started.
	LogDropped map[string]int64 `json:"logDropped,omitempty"`
	// Manifests is the revision of the manifests that runs, and the one
	// last rejected.
	Manifests Manifests `json:"manifests"`
}

// Manifests is the revision of the manifests' source that runs: the commit
// HEAD names when the manifests are in a git work tree, or the target of
// the git-sync or ConfigMap `..data` link they are under.
type Manifests struct {
	// Revision is the commit hash (kind "git") or the link target's name
	// (kind "link"); empty, with no kind, when none was found.
	Revision string `json:"revision,omitempty"`
	Kind     string `json:"kind,omitempty"`
	// Source is the work tree or the link.
	Source string `json:"source,omitempty"`
	// Modified (kind "git") lists the manifest files read that differ
	// from the commit (edited in place, or not committed), relative to
	// the work tree, comma-separated; empty when they match it.
	Modified string `json:"modified,omitempty"`
	// ModifiedUnknown (kind "git") is true when whether the manifest
	// files differ from the commit could not be told (its objects could
	// not be read): Modified is then empty but means nothing.
	ModifiedUnknown bool `json:"modifiedUnknown,omitempty"`
	// AppliedAt is when the revision was applied.
	AppliedAt *time.Time `json:"appliedAt,omitempty"`
	// Rejected is the last reload rejected since the last one applied.
	Rejected *RejectedRevision `json:"rejected,omitempty"`
}

// RejectedRevision is a reload that was not applied.
type RejectedRevision struct {
	Revision string `json:"revision,omitempty"`
	Kind     string `json:"kind,omitempty"`
	// Modified and ModifiedUnknown are as in Manifests, of the files
	// whose reload was rejected.
	Modified        string    `json:"modified,omitempty"`
	ModifiedUnknown bool      `json:"modifiedUnknown,omitempty"`
	At              time.Time `json:"at"`
	// Error is the first error, Errors how many there were.
	Error  string `json:"error"`
	Errors int    `json:"errors"`
}

// ManifestsFrom converts the supervisor's revisions.
func ManifestsFrom(m supervisor.ManifestsStatus) Manifests {
	out := Manifests{Revision: m.Revision.ID, Kind: m.Revision.Kind, Source: m.Revision.Source,
		Modified: m.Revision.Modified, ModifiedUnknown: m.Revision.ModifiedUnknown}
	if !m.AppliedAt.IsZero() {
		t := m.AppliedAt
		out.AppliedAt = &t
	}
	if r := m.Rejected; r != nil {
		out.Rejected = &RejectedRevision{Revision: r.Revision.ID, Kind: r.Revision.Kind, Modified: r.Revision.Modified,
			ModifiedUnknown: r.Revision.ModifiedUnknown, At: r.At, Error: r.Error, Errors: r.Errors}
	}
	return out
}

// SupervisorInfo describes the supervisor process.
type SupervisorInfo struct {
	PID       int       `json:"pid"`
	Version   string    `json:"version"`
	StartedAt time.Time `json:"startedAt"`
	Manifests []string  `json:"manifests"`
	Socket    string    `json:"socket"`
}

// App is one app of the running set.
type App struct {
	Name string `json:"name"`
	// Instances is the desired worker count now; ManifestInstances what
	// the manifest says; Override tells whether `paddock scale` set it.
	Instances         int    `json:"instances"`
	ManifestInstances int    `json:"manifestInstances"`
	Override          bool   `json:"override"`
	Running           int    `json:"running"`
	Ready             int    `json:"ready"`
	Generation        string `json:"generation"`
	SchedulingPolicy  string `json:"schedulingPolicy"`
	// Silent: the workers' lines reach paddock's stdout and stderr
	// prefixed with "app/id | ".
	Silent bool `json:"silent"`
	// Listen: the addresses of the app's listen: sockets, then those
	// opened for its cluster workers on demand ("udp:" before a UDP
	// socket's).
	Listen  []string `json:"listen"`
	Rollout *Rollout `json:"rollout,omitempty"`
	// The resource use of the app's live workers, summed (absent when
	// none was read): see Worker.
	RSSBytes   *int64   `json:"rssBytes,omitempty"`
	CPUPercent *float64 `json:"cpuPercent,omitempty"`
	// Waiting, when present, says which dependencies (dependsOn) the app's
	// workers wait for: "waiting for db: 0/1 available".
	Waiting string `json:"waiting,omitempty"`
	// Critical: paddock gives up when the app fails (`critical: true`,
	// or --exit-on-failed). CrashLoop is present while the app is
	// crash-looping.
	Critical  bool       `json:"critical,omitempty"`
	CrashLoop *CrashLoop `json:"crashLoop,omitempty"`
	// LastExit is the last exit of one of the app's workers that paddock
	// did not ask for, with its last output lines.
	LastExit *ExitInfo `json:"lastExit,omitempty"`
	// RolledBack, when present, says the app runs an earlier generation
	// (Generation) than its manifest's, after a stalled rolling update
	// (rollout.onStall: rollback).
	RolledBack *RolledBack `json:"rolledBack,omitempty"`
}

// RolledBack says an app was rolled back from generation From (the
// manifest's, or a restart of it) to To, because its rolling update
// stalled (Reason).
type RolledBack struct {
	App    string `json:"app,omitempty"` // in a diff's answer
	From   string `json:"from"`
	To     string `json:"to"`
	Reason string `json:"reason"`
}

// CrashLoop describes an app whose workers keep exiting before they
// stayed up for its backoff.max.
type CrashLoop struct {
	// Exits happened within Window (a Go duration string, "1m0s") up to
	// now; Since is when the crash loop began.
	Exits  int       `json:"exits"`
	Window string    `json:"window"`
	Since  time.Time `json:"since"`
	// The last exit: its code (-1 when a signal ended the worker or it
	// could not start), the signal, whether it could not start, and when.
	LastExitCode    int       `json:"lastExitCode"`
	LastSignal      string    `json:"lastSignal,omitempty"`
	LastStartFailed bool      `json:"lastStartFailed,omitempty"`
	LastExitAt      time.Time `json:"lastExitAt"`
	// FailAt, for a critical app that is failing, is when paddock gives
	// up on it and exits.
	FailAt *time.Time `json:"failAt,omitempty"`
	// Summary: "14 exits in 60s, last exit 1".
	Summary string `json:"summary"`
}

// ExitInfo is what paddock kept of a worker's exit.
type ExitInfo struct {
	Worker     int    `json:"worker"`
	PID        int    `json:"pid"` // 0: the worker could not be started
	Generation string `json:"generation"`
	// Code is the exit code, -1 when a signal ended the worker (Signal
	// names it) or it could not be started.
	Code   int       `json:"code"`
	Signal string    `json:"signal,omitempty"`
	At     time.Time `json:"at"`
	// Uptime is how long it ran, a Go duration string.
	Uptime string `json:"uptime"`
	// Lines are its last output lines (stdout and stderr), oldest first.
	Lines []string `json:"lines"`
}

// FromExit converts a supervisor exit record; nil for nil.
func FromExit(e *supervisor.ExitInfo) *ExitInfo {
	if e == nil {
		return nil
	}
	return &ExitInfo{Worker: e.Worker, PID: e.PID, Generation: e.Generation, Code: e.Code, Signal: e.Signal,
		At: e.At, Uptime: e.Uptime.String(), Lines: nonNil(e.Lines)}
}

// Rollout is a rolling update in progress.
type Rollout struct {
	Instances int    `json:"instances"`
	New       int    `json:"new"`
	NewReady  int    `json:"newReady"`
	Old       int    `json:"old"`
	Stalled   string `json:"stalled,omitempty"`
	Summary   string `json:"summary"`
	// StalledWorker is the worker Stalled is about; LastExit the last exit
	// of a worker of the generation rolling out (that one, or a later
	// replacement of it); Lines the last output lines of StalledWorker
	// while it still runs (not ready within its readyTimeout).
	StalledWorker int       `json:"stalledWorker,omitempty"`
	LastExit      *ExitInfo `json:"lastExit,omitempty"`
	Lines         []string  `json:"lines,omitempty"`
}

// Worker is one worker.
type Worker struct {
	App string `json:"app"`
	ID  int    `json:"id"`
	PID int    `json:"pid"` // 0 once exited (backoff, done)
	// State: running, stopping, backoff or done.
	State      string     `json:"state"`
	Ready      bool       `json:"ready"`
	StartedAt  time.Time  `json:"startedAt"`
	RestartAt  *time.Time `json:"restartAt,omitempty"`
	Restarts   int        `json:"restarts"`
	Generation string     `json:"generation"`
	Listen     []string   `json:"listen"`
	// Connections handed to the worker by paddock (rr, sticky).
	HandedOut int64 `json:"handedOut"`
	// Status is the worker's last sd_notify STATUS=.
	Status string `json:"status,omitempty"`
	// The resource use of the live worker's process group, as last read
	// from /proc (absent for a worker gone): resident memory in bytes,
	// CPU over the last sampling interval in percent of one CPU, CPU
	// seconds since it started, processes in the group.
	RSSBytes   *int64   `json:"rssBytes,omitempty"`
	CPUPercent *float64 `json:"cpuPercent,omitempty"`
	CPUSeconds *float64 `json:"cpuSeconds,omitempty"`
	Processes  *int     `json:"processes,omitempty"`
	// HealthFailures counts the health probes it failed in a row;
	// HealthAnswer is the last probe's answer paddock took note of.
	HealthFailures int    `json:"healthFailures,omitempty"`
	HealthAnswer   string `json:"healthAnswer,omitempty"`
}

// HealthCounts counts an app's health probes by result.
type HealthCounts struct {
	Pass    int64 `json:"pass"`
	Fail    int64 `json:"fail"`
	Timeout int64 `json:"timeout"`
}

// Event is one line of GET /v1/events.
type Event struct {
	Time       time.Time `json:"time"`
	Type       string    `json:"type"`
	App        string    `json:"app,omitempty"`
	Worker     int       `json:"worker,omitempty"`
	PID        int       `json:"pid,omitempty"`
	Generation string    `json:"generation,omitempty"`
	// Exit events: the code (-1 when a signal ended the worker), the
	// signal, and whether the exit was asked for.
	ExitCode *int   `json:"exitCode,omitempty"`
	Signal   string `json:"signal,omitempty"`
	Intended *bool  `json:"intended,omitempty"`
	// Delay: restart (backoff), stopping/disconnect (killTimeout), ready
	// (time since start); a Go duration string.
	Delay   string `json:"delay,omitempty"`
	Attempt int    `json:"attempt,omitempty"`
	// Output events: paddock's "stdout" or "stderr", and (output-restored)
	// how many lines were lost.
	Stream string `json:"stream,omitempty"`
	Lost   int64  `json:"lost,omitempty"`
	Detail string `json:"detail,omitempty"`
	// rollout-stalled: the last exit of a worker of the generation rolling
	// out, or the last output lines of the stalled worker while it still
	// runs (as in Rollout).
	LastExit *ExitInfo `json:"lastExit,omitempty"`
	Lines    []string  `json:"lines,omitempty"`
	// rollout-rollback: the generation whose rolling update stalled (the
	// app returns to Generation).
	FromGeneration string `json:"fromGeneration,omitempty"`
	// apply, reload, reload-failed: the revision of the manifests applied
	// or rejected (see Manifests).
	Revision string `json:"revision,omitempty"`
}

// EventLost is the type of the line GET /v1/events sends in place of
// events a slow reader missed (Detail says how many).
const EventLost = "events-lost"

// FromEvent converts a supervisor event.
func FromEvent(e supervisor.Event) Event {
	out := Event{Time: e.Time, Type: e.Type, App: e.App, Worker: e.Worker, PID: e.PID, Generation: e.Generation,
		Signal: e.Signal, Attempt: e.Attempt, Stream: e.Stream, Lost: e.Lost, Detail: e.Detail, FromGeneration: e.FromGeneration, Revision: e.Revision}
	if e.Type == supervisor.EventExit {
		code, intended := e.ExitCode, e.Intended
		out.ExitCode, out.Intended = &code, &intended
	}
	if e.Delay != 0 {
		out.Delay = e.Delay.String()
	}
	if e.Stall != nil {
		out.LastExit, out.Lines = FromExit(e.Stall.Exit), e.Stall.Lines
	}
	return out
}

// Change is how one app differs: POST /v1/reload and POST /v1/diff.
type Change struct {
	App string `json:"app"`
	// Kind: added, removed, scaled or updated (a rolling update).
	Kind string `json:"kind"`
	From int    `json:"from"`
	To   int    `json:"to"`
	// Fields names the fields that differ (environment variables by name
	// only, never their values).
	Fields  []string `json:"fields,omitempty"`
	Summary string   `json:"summary"`
}

func fromChanges(cs []manifest.Change) []Change {
	out := make([]Change, 0, len(cs))
	for _, c := range cs {
		out = append(out, Change{App: c.App, Kind: c.Kind, From: c.From, To: c.To, Fields: c.Fields, Summary: c.String()})
	}
	return out
}

// ChangesResponse answers reload and diff.
type ChangesResponse struct {
	Changes []Change `json:"changes"`
	// RolledBack (diff only) lists the apps that run an earlier generation
	// than the manifests say and that applying them leaves so: their
	// rolling update to the manifests' generation stalled and was rolled
	// back (rollout.onStall: rollback). By app name.
	RolledBack []RolledBack `json:"rolledBack,omitempty"`
}

// DiffRequest is the body of POST /v1/diff: the manifest paths to compare
// with the running set (absolute, or relative to the supervisor's working
// directory); none means the supervisor's own manifests.
type DiffRequest struct {
	Paths []string `json:"paths"`
}

// ScaleRequest is the body of POST /v1/apps/{app}/scale.
type ScaleRequest struct {
	Instances *int `json:"instances"`
}

// ScaleResponse answers it.
type ScaleResponse struct {
	App               string `json:"app"`
	From              int    `json:"from"`
	Instances         int    `json:"instances"`
	ManifestInstances int    `json:"manifestInstances"`
	Override          bool   `json:"override"`
}

// RestartResponse answers POST /v1/apps/{app}/restart.
type RestartResponse struct {
	App        string `json:"app"`
	Generation string `json:"generation"`
	Workers    int    `json:"workers"`
}

// SendRequest is the body of POST /v1/apps/{app}/send; Worker 0 means every
// worker of the app with an IPC channel.
type SendRequest struct {
	Worker  int             `json:"worker"`
	Message json.RawMessage `json:"message"`
}

// SendResponse answers it.
type SendResponse struct {
	Delivered int `json:"delivered"`
}

// SignalRequest is the body of POST /v1/apps/{app}/signal: Signal as
// "HUP", "SIGHUP" or a number; Worker 0 means every live worker.
type SignalRequest struct {
	Worker int    `json:"worker"`
	Signal string `json:"signal"`
}

// SignalResponse answers it with the workers signalled.
type SignalResponse struct {
	Workers []int `json:"workers"`
}

// LogLine is one line of GET /v1/logs. A line read back from a text log
// file has no time, and no stream when the file holds both.
type LogLine struct {
	Time   time.Time `json:"time,omitzero"`
	App    string    `json:"app"`
	Worker int       `json:"worker"`
	Stream string    `json:"stream"`
	Text   string    `json:"text"`
	// Lost, on a line of its own (Text empty), counts lines a slow
	// follower missed.
	Lost int `json:"lost,omitempty"`
}

// ErrorResponse is the body of every 4xx/5xx answer. Errors lists every
// manifest error (FILE:LINE:COL: FIELD: message) when there are several.
type ErrorResponse struct {
	Error  string   `json:"error"`
	Errors []string `json:"errors,omitempty"`
	// Details places each manifest error (one with a file) for CI
	// annotations: `paddock diff --format github`.
	Details []ErrorDetail `json:"details,omitempty"`
}

// ErrorDetail is one manifest error of an ErrorResponse, by parts.
type ErrorDetail struct {
	File    string `json:"file"`
	Line    int    `json:"line,omitempty"`
	Col     int    `json:"col,omitempty"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}
