package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/paddock-sh/paddock/internal/control"
)

// TestStatusTableWidth: with the usual names (an app of three letters, one
// listen address, pids of five digits), the status tables show CPU and
// memory per app and per worker; the table of workers fits in 80 columns,
// and so does the table of apps but for its WAITING column (dependsOn).
func TestStatusTableWidth(t *testing.T) {
	now := time.Now()
	cpu, rss := 12.5, int64(88_080_384)
	appCPU, appRSS := 25.0, int64(176_160_768)
	st := &control.StatusResponse{
		Apps: []control.App{{Name: "web", Instances: 2, ManifestInstances: 2, Running: 2, Ready: 2, Generation: "c42fb811",
			SchedulingPolicy: "rr", Listen: []string{"127.0.0.1:8000"}, RSSBytes: &appRSS, CPUPercent: &appCPU}},
	}
	for i, pid := range []int{48211, 48212} {
		st.Workers = append(st.Workers, control.Worker{App: "web", ID: i + 1, PID: pid, State: "running", Ready: true,
			StartedAt: now.Add(-754 * time.Second), Restarts: 12, Generation: "c42fb811", Listen: []string{"127.0.0.1:8000"},
			RSSBytes: &rss, CPUPercent: &cpu})
	}
	st.Workers = append(st.Workers, control.Worker{App: "web", ID: 3, State: "backoff", Generation: "c42fb811"})
	var out bytes.Buffer
	writeStatus(&out, st, now)
	for _, line := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
		if strings.HasPrefix(line, "APP  DESIRED") || strings.HasPrefix(line, "web  2 ") {
			line = strings.TrimRight(strings.TrimSuffix(strings.TrimSuffix(line, "WAITING"), "-"), " ")
		}
		if len(line) > 80 {
			t.Errorf("%d columns: %q", len(line), line)
		}
	}
	for _, want := range []string{"web  2        2/2    25%  168Mi", "web  1       48211  running  yes    12m34s  12        12%  84Mi",
		"web  3       -      backoff  no     -       0         -    -"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}
	t.Logf("\n%s", out.String())
}

// TestWriteStatusLostLines: lines dropped from an app's log file are said
// under its row, lines paddock could not write to its stdout or stderr
// under the tables; nothing when none was lost.
func TestWriteStatusLostLines(t *testing.T) {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	st := &control.StatusResponse{
		Apps: []control.App{{Name: "api", Instances: 1, SchedulingPolicy: "none", Generation: "aaaaaaaa"},
			{Name: "web", Instances: 1, SchedulingPolicy: "none", Generation: "bbbbbbbb"}},
		LogDropped: map[string]int64{"web": 1834, "api": 0},
		LostOutput: map[string]int64{"stdout": 1, "stderr": 0},
	}
	var b strings.Builder
	writeStatus(&b, st, now)
	want := "APP  DESIRED  READY  CPU  MEM  POLICY  LISTEN  GENERATION  ROLLOUT  WAITING\n" +
		"api  1        0/1    -    -    none    -       aaaaaaaa    -        -\n" +
		"web  1        0/1    -    -    none    -       bbbbbbbb    -        -\n" +
		"  logs: 1834 lines dropped since paddock started: its log file could not keep up (a full or slow disk); writing resumes by itself\n" +
		"\n" +
		"APP  WORKER  PID  STATE  READY  UPTIME  RESTARTS  CPU  MEM  GENERATION\n" +
		"\n" +
		"paddock's stdout: 1 line of the workers' output lost since paddock started (its reader stalled or went away, or a full disk)\n"
	if b.String() != want {
		t.Errorf("status:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	st.LogDropped, st.LostOutput = nil, map[string]int64{"stdout": 0, "stderr": 0}
	writeStatus(&b, st, now)
	if strings.Contains(b.String(), "lost") || strings.Contains(b.String(), "dropped") {
		t.Errorf("status with nothing lost:\n%s", b.String())
	}
}

// TestWriteManifestsModified: the revision and rejected lines end with
// the manifest files modified against the commit, or "unknown", after
// the text they had before.
func TestWriteManifestsModified(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 5, 0, 0, time.UTC)
	applied := now.Add(-5 * time.Minute)
	cases := []struct {
		name string
		m    control.Manifests
		want string // the first line, after its applied time
	}{
		{"clean", control.Manifests{Revision: "3f2c", Kind: "git", AppliedAt: &applied}, "(5m0s ago)"},
		{"modified", control.Manifests{Revision: "3f2c", Kind: "git", AppliedAt: &applied, Modified: "deploy/web.yaml,x.yml"},
			"(5m0s ago) (modified: deploy/web.yaml,x.yml)"},
		{"unknown", control.Manifests{Revision: "3f2c", Kind: "git", AppliedAt: &applied, ModifiedUnknown: true}, "(5m0s ago) (modified: unknown)"},
		{"rejected modified", control.Manifests{Revision: "3f2c", Kind: "git", AppliedAt: &applied,
			Rejected: &control.RejectedRevision{Revision: "3f2c", Kind: "git", At: now, Error: "bad", Errors: 1, Modified: "web.yaml"}},
			"(5m0s ago)\nrejected: git 3f2c at " + now.Local().Format(time.TimeOnly) + " (0s ago): bad (modified: web.yaml)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b strings.Builder
			writeManifests(&b, c.m, now)
			got := strings.TrimSuffix(b.String(), "\n\n")
			prefix := "revision: git 3f2c applied " + applied.Local().Format(time.TimeOnly) + " "
			if got != prefix+c.want {
				t.Fatalf("got\n%q\nwant\n%q", got, prefix+c.want)
			}
		})
	}
}
