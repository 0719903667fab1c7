package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/paddock-sh/paddock/internal/testkit"
)

// commitManifest writes content to the manifest file of the work tree
// repo and commits it; it returns the commit's hash.
func commitManifest(t *testing.T, repo, content string) string {
	t.Helper()
	p := filepath.Join(repo, "deploy", "paddock.yaml")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := testkit.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	testkit.Git(t, repo, "add", "-A")
	testkit.Git(t, repo, "commit", "-q", "-m", "manifest")
	return testkit.Git(t, repo, "rev-parse", "HEAD")
}

// gitopsRun is a paddock running a directory of a git work tree, with
// its metrics served.
type gitopsRun struct {
	t          *testing.T
	r          *running
	sock, repo string
	metricsURL string
}

// startGitops commits a manifest of one worker to deploy/ of a new git
// work tree, runs paddock on that directory (no watching: the test
// reloads; metrics on), and checks that the commit was applied; it
// returns the run and the commit.
func startGitops(t *testing.T) (*gitopsRun, string) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("this test needs the git binary (test time only): apt-get install git")
	}
	g := &gitopsRun{t: t, repo: t.TempDir(), sock: socketPath(t)}
	testkit.Git(t, g.repo, "init", "-q", "-b", "main")
	first := commitManifest(t, g.repo, fmt.Sprintf(sleepers, 1))
	g.r = startWithSocket(t, g.sock, "--watch=false", "--metrics-addr", "127.0.0.1:0", filepath.Join(g.repo, "deploy"))
	g.metricsURL = metricsURLOf(t, g.r)
	waitWorkers(t, g.sock, "web", 1)
	g.checkApplied(first, "apply")
	return g, first
}

// TestGitRevisionThroughReloads runs paddock on a directory of a git work
// tree: status, events and metrics show the commit applied; an invalid
// commit is rejected (the applied one stays, the rejected one is shown
// with its error); a fixed commit clears the rejection.
func TestGitRevisionThroughReloads(t *testing.T) {
	t.Parallel()
	g, _ := startGitops(t)

	// A new commit: reload applies it; status, event and metric follow.
	second := commitManifest(t, g.repo, fmt.Sprintf(sleepers, 2))
	mustCLI(t, g.sock, "reload")
	waitWorkers(t, g.sock, "web", 2)
	g.checkApplied(second, "reload")

	// An invalid commit: rejected, the second stays applied.
	bad := commitManifest(t, g.repo, "apps:\n  web:\n    exec: /bin/sleep\n    instances: lots\n")
	if _, errOut, code := cli(t, g.sock, "reload"); code != 1 {
		t.Fatalf("reload of an invalid commit: exit %d, %s", code, errOut)
	}
	g.checkRejected(second, bad)

	// A commit that changes no app (a comment) after the fix: applied,
	// the rejection cleared, and a reload event tells the new revision.
	fixed := commitManifest(t, g.repo, fmt.Sprintf(sleepers, 2)+"# fixed\n")
	if out := mustCLI(t, g.sock, "reload"); !strings.Contains(out, "no change") {
		t.Errorf("reload of a comment: %q", out)
	}
	g.checkApplied(fixed, "reload")
}

// TestGitModifiedInPlace: a manifest edited in place, not committed, is
// applied and shown as modified against the commit (status text and
// JSON, the reload event, the metric); once committed, it is not.
func TestGitModifiedInPlace(t *testing.T) {
	t.Parallel()
	g, first := startGitops(t)
	g.checkModified(first, "")

	// Edited in place: the same commit, the file modified.
	if err := testkit.WriteFile(filepath.Join(g.repo, "deploy", "paddock.yaml"), []byte(fmt.Sprintf(sleepers, 2)), 0o644); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, g.sock, "reload")
	waitWorkers(t, g.sock, "web", 2)
	g.checkModified(first, "deploy/paddock.yaml")
	if e := g.r.find(func(m map[string]any) bool {
		return m["msg"] == "reload" && m["revision"] == first && strings.HasSuffix(fmt.Sprint(m["detail"]), " (modified: deploy/paddock.yaml)")
	}); e == nil {
		t.Errorf("no reload event of %s saying deploy/paddock.yaml is modified", first)
	}

	// Committed as it is: no app changes, the file is no longer modified.
	second := commitManifest(t, g.repo, fmt.Sprintf(sleepers, 2))
	if out := mustCLI(t, g.sock, "reload"); !strings.Contains(out, "no change") {
		t.Errorf("reload of the commit of what runs: %q", out)
	}
	g.checkApplied(second, "reload")
	g.checkModified(second, "")
}

// checkModified checks that rev runs with the manifest files modified
// against it ("" none) in status (JSON and text) and the metrics.
func (g *gitopsRun) checkModified(rev, modified string) {
	t := g.t
	t.Helper()
	if m := statusOfCLI(t, g.sock).Manifests; m.Revision != rev || m.Modified != modified || m.ModifiedUnknown {
		t.Errorf("status manifests: %+v, want %s modified %q", m, rev, modified)
	}
	out := mustCLI(t, g.sock, "status")
	line, _, _ := strings.Cut(out, "\n")
	if !strings.HasPrefix(line, "revision: git "+rev+" applied ") ||
		(modified == "") == strings.HasSuffix(line, " (modified: "+modified+")") || (modified == "" && strings.Contains(line, "modified")) {
		t.Errorf("status text's revision line: %q, want %s modified %q", line, rev, modified)
	}
	v := 0
	if modified != "" {
		v = 1
	}
	_, body := httpGet(t, g.metricsURL)
	if want := fmt.Sprintf(`paddock_manifest_modified{files="%s",kind="git",revision="%s"} %d`, modified, rev, v); !strings.Contains(body, want) ||
		strings.Count(body, "paddock_manifest_modified{") != 1 {
		t.Errorf("metrics, want %s:\n%s", want, grepLines(body, "paddock_manifest"))
	}
}

// checkApplied checks that rev is the revision applied, with no rejection,
// in status (JSON and text), an event of type event, and the metrics.
func (g *gitopsRun) checkApplied(rev, event string) {
	t := g.t
	t.Helper()
	if m := statusOfCLI(t, g.sock).Manifests; m.Revision != rev || m.Kind != "git" || m.Source != g.repo || m.AppliedAt == nil || m.Rejected != nil {
		t.Fatalf("status manifests: %+v (rejected %+v), want git %s in %s, no rejection", m, m.Rejected, rev, g.repo)
	}
	if out := mustCLI(t, g.sock, "status"); !strings.HasPrefix(out, "revision: git "+rev+" applied ") || strings.Contains(out, "rejected:") {
		t.Errorf("status text:\n%s\nwant the revision %s first, no rejection", out, rev)
	}
	if e := g.r.find(func(m map[string]any) bool { return m["msg"] == event && m["revision"] == rev }); e == nil {
		t.Errorf("no %s event with revision %s", event, rev)
	}
	_, body := httpGet(t, g.metricsURL)
	if !strings.Contains(body, fmt.Sprintf(`paddock_manifest_info{kind="git",revision="%s"} 1`, rev)) ||
		strings.Count(body, "paddock_manifest_info{") != 1 || strings.Contains(body, "paddock_manifest_rejected_info{") {
		t.Errorf("metrics, want one paddock_manifest_info of %s and no rejection:\n%s", rev, grepLines(body, "paddock_manifest"))
	}
}

// checkRejected checks that bad is shown rejected, with its error, while
// applied still runs.
func (g *gitopsRun) checkRejected(applied, bad string) {
	t := g.t
	t.Helper()
	m := statusOfCLI(t, g.sock).Manifests
	if m.Revision != applied || m.Rejected == nil || m.Rejected.Revision != bad || m.Rejected.Kind != "git" ||
		!strings.Contains(m.Rejected.Error, "apps.web.instances") || m.Rejected.Errors != 1 {
		t.Fatalf("status manifests after an invalid commit: %+v (rejected %+v), want applied %s, rejected %s", m, m.Rejected, applied, bad)
	}
	if e := g.r.find(func(m map[string]any) bool { return m["msg"] == "reload-failed" }); e == nil || e["revision"] != bad ||
		!strings.Contains(fmt.Sprint(e["detail"]), "revision "+bad+" rejected") {
		t.Errorf("reload-failed event: %v, want revision %s", e, bad)
	}
	if out := mustCLI(t, g.sock, "status"); !strings.Contains(out, "revision: git "+applied) ||
		!strings.Contains(out, "rejected: git "+bad) || !strings.Contains(out, "apps.web.instances") {
		t.Errorf("status text lacks the applied and rejected revisions:\n%s", out)
	}
	_, body := httpGet(t, g.metricsURL)
	for _, want := range []string{
		fmt.Sprintf(`paddock_manifest_info{kind="git",revision="%s"} 1`, applied),
		fmt.Sprintf(`paddock_manifest_rejected_info{applied_revision="%s",kind="git",revision="%s"} 1`, applied, bad),
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(body, "paddock_manifest"))
		}
	}
}

// TestConfigMapRevision: manifests under a ConfigMap-like ..data link
// report the link's target, and a swap (as the kubelet does) is applied
// with the new one.
func TestConfigMapRevision(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	swap := func(ts, content string) {
		if err := os.MkdirAll(filepath.Join(dir, ts), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := testkit.WriteFile(filepath.Join(dir, ts, "paddock.yaml"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(ts, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	swap("..2026_12_02_11_00_00.000000001", fmt.Sprintf(sleepers, 1))
	if err := os.Symlink("..data/paddock.yaml", filepath.Join(dir, "paddock.yaml")); err != nil {
		t.Fatal(err)
	}
	sock := socketPath(t)
	startWithSocket(t, sock, "--watch=false", dir)
	waitWorkers(t, sock, "web", 1)
	if m := statusOfCLI(t, sock).Manifests; m.Revision != "..2026_12_02_11_00_00.000000001" || m.Kind != "link" {
		t.Fatalf("status manifests: %+v", m)
	}
	swap("..2026_12_02_11_05_00.000000002", fmt.Sprintf(sleepers, 2))
	mustCLI(t, sock, "reload")
	waitWorkers(t, sock, "web", 2)
	if m := statusOfCLI(t, sock).Manifests; m.Revision != "..2026_12_02_11_05_00.000000002" || m.Kind != "link" {
		t.Fatalf("status manifests after the swap: %+v", m)
	}
}

// metricsURLOf returns the URL paddock logged for --metrics-addr.
func metricsURLOf(t *testing.T, r *running) string {
	t.Helper()
	var url string
	testkit.WaitFor(t, "the metrics address in the log", func() bool {
		if m := r.find(func(m map[string]any) bool { return m["msg"] == "serving metrics" }); m != nil {
			url, _ = m["url"].(string)
		}
		return url != ""
	})
	return url
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
