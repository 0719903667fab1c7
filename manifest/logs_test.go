package manifest_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/paddock-sh/paddock/manifest"
)

func TestStderrPath(t *testing.T) {
	for in, want := range map[string]string{
		"/var/log/web.log":     "/var/log/web.stderr.log",
		"/var/log/web":         "/var/log/web.stderr",
		"/var/log/web.log.txt": "/var/log/web.log.stderr.txt",
		"/var/log.d/web":       "/var/log.d/web.stderr",
		"/var/log/.web":        "/var/log/.stderr.web",
	} {
		if got := manifest.StderrPath(in); got != want {
			t.Errorf("StderrPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestLogsLoad: a relative file is resolved against the manifest's
// directory; the defaults; the top-level logs: reaches the apps of every
// file without their own; logs: false opts out; Paths.
func TestLogsLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yaml", "logs: {file: logs/all.log}\napps:\n  web: {exec: /bin/sh}\n  own: {exec: /bin/sh, logs: {file: /tmp/own.log, streams: separate, maxSize: 2Mi, maxFiles: 0, compress: true}}\n")
	write("b.yaml", "apps:\n  worker: {exec: /bin/sh}\n  quiet: {exec: /bin/sh, logs: false}\n")
	set, err := manifest.Load([]string{dir}, testHost)
	if err != nil {
		t.Fatal(err)
	}
	all := filepath.Join(dir, "logs", "all.log")
	for _, name := range []string{"web", "worker"} {
		checkDefaultLogs(t, name, set.Apps[name].Logs, all)
	}
	if l := set.Apps["quiet"].Logs; l != nil {
		t.Errorf("quiet: logs %+v, want none (logs: false)", l)
	}
	own := set.Apps["own"].Logs
	if own.File != "/tmp/own.log" || own.MaxSize != 2<<20 || own.MaxFiles != 0 || !own.Compress {
		t.Errorf("own: logs %+v", own)
	}
	if out, errPath := own.Paths(); out != "/tmp/own.log" || errPath != "/tmp/own.stderr.log" {
		t.Errorf("own: Paths() = %s, %s", out, errPath)
	}
}

// checkDefaultLogs fails unless l writes both streams to file with the
// default rotation.
func checkDefaultLogs(t *testing.T, name string, l *manifest.Logs, file string) {
	t.Helper()
	if l == nil || l.File != file || l.MaxSize != manifest.DefaultLogMaxSize || l.MaxFiles != manifest.DefaultLogMaxFiles ||
		l.Compress || l.Streams != manifest.StreamsMerged {
		t.Errorf("%s: logs %+v, want the top-level one with the defaults", name, l)
		return
	}
	if out, errPath := l.Paths(); out != file || errPath != file {
		t.Errorf("%s: Paths() = %s, %s", name, out, errPath)
	}
}

// TestLogsChangeKeepsWorkers: a changed logs: is a reconfiguration, not a
// rolling update; the same settings written elsewhere (another line, the
// top-level logs: instead of the app's own) are no change.
func TestLogsChangeKeepsWorkers(t *testing.T) {
	dir := t.TempDir() // one directory: the workers' cwd is the same
	load := func(src string) *manifest.Set {
		t.Helper()
		p := filepath.Join(dir, "m.yaml")
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		set, err := manifest.Load([]string{p}, testHost)
		if err != nil {
			t.Fatal(err)
		}
		return set
	}
	a := load("apps:\n  web: {exec: /bin/sh, logs: {file: /tmp/a.log}}\n")
	b := load("apps:\n  web: {exec: /bin/sh, logs: {file: /tmp/b.log}}\n")
	c := load("\n\nlogs: {file: /tmp/a.log}\napps:\n  web: {exec: /bin/sh}\n")
	if a.Apps["web"].Generation() != b.Apps["web"].Generation() {
		t.Error("changing logs changed the generation")
	}
	changes := manifest.Diff(a, b)
	if len(changes) != 1 || changes[0].Kind != manifest.ChangeReconfigured || len(changes[0].Fields) != 1 || changes[0].Fields[0] != "logs" {
		t.Errorf("Diff = %v, want web reconfigured (logs)", changes)
	}
	if changes := manifest.Diff(a, c); len(changes) != 0 {
		t.Errorf("Diff(own logs, same top-level logs) = %v, want none", changes)
	}
}
