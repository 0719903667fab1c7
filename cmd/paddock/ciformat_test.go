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

// ciGolden compares got with testdata/ci/name; `go test -run TestCI
// -update` rewrites it (with docs/cli/, as the flag says).
func ciGolden(t *testing.T, name, got string) {
	t.Helper()
	testkit.Golden(t, filepath.Join("testdata", "ci", name), []byte(got), *update)
}

// ciRepo writes a repository-like directory: deploy/web.yaml invalid
// (two errors), deploy/ok.yaml valid.
func ciRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"deploy/web.yaml": "apps:\n  web:\n    exec: /bin/sleep\n    instances: lots\n    killTimeout: soon\n",
		"deploy/ok.yaml":  "apps:\n  ok:\n    exec: /bin/sleep\n    args: [1000]\n",
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := testkit.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// runIn runs paddock ARGS in dir and returns stdout, stderr, exit code.
func runIn(t *testing.T, dir string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(paddockBin, args...)
	cmd.Dir = dir
	return runCommand(t, cmd)
}

// TestCIValidateFormats: validate --format github and json, paths relative
// to the working directory, exit codes as the text format's, and the text
// format unchanged.
func TestCIValidateFormats(t *testing.T) {
	t.Parallel()
	dir := ciRepo(t)
	out, errOut, code := runIn(t, dir, "validate", "--format", "github", "deploy")
	if code != exitFailure || errOut != "" {
		t.Errorf("validate --format github of invalid manifests: exit %d, stderr %q", code, errOut)
	}
	ciGolden(t, "validate-github.golden", out)

	out, _, code = runIn(t, dir, "validate", "--format", "json", "deploy")
	if code != exitFailure {
		t.Errorf("validate --format json: exit %d", code)
	}
	ciGolden(t, "validate-json.golden", out)

	// The text format is the default, and unchanged: errors on stderr.
	out, errOut, code = runIn(t, dir, "validate", "deploy")
	if code != exitFailure || out != "" || !strings.Contains(errOut, "deploy/web.yaml:4:16: apps.web.instances") {
		t.Errorf("validate (text): exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	// Valid: a notice, exit 0.
	out, _, code = runIn(t, dir, "validate", "--format", "github", "deploy/ok.yaml")
	if code != exitOK || out != "::notice title=paddock validate::ok: 1 app, 1 worker\n" {
		t.Errorf("validate --format github of a valid manifest: exit %d, %q", code, out)
	}
	// A missing path: exit 2, an annotation on the path.
	out, _, code = runIn(t, dir, "validate", "--format", "github", "deploy/missing.yaml")
	if code != exitUsage || !strings.HasPrefix(out, "::error file=deploy/missing.yaml,title=paddock validate::") {
		t.Errorf("validate --format github of a missing file: exit %d, %q", code, out)
	}
	// An unknown format is a usage error.
	if _, errOut, code := runIn(t, dir, "validate", "--format", "xml", "deploy"); code != exitUsage || !strings.Contains(errOut, "--format must be") {
		t.Errorf("validate --format xml: exit %d, %q", code, errOut)
	}
}

// TestCIDiffGitHub: diff --format github against a running supervisor:
// errors on the files' lines, changes as notices.
func TestCIDiffGitHub(t *testing.T) {
	t.Parallel()
	dir := ciRepo(t)
	sock := socketPath(t)
	running := filepath.Join(dir, "deploy", "ok.yaml")
	startWithSocket(t, sock, "--watch=false", running)
	waitWorkers(t, sock, "ok", 1)

	diff := func(args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(paddockBin, append([]string{"diff", "--socket", sock, "--format", "github"}, args...)...)
		cmd.Dir = dir
		out, _, code := runCommand(t, cmd)
		return out, code
	}
	out, code := diff("deploy")
	if code != exitDiffError {
		t.Errorf("diff --format github of invalid manifests: exit %d", code)
	}
	ciGolden(t, "diff-github-invalid.golden", out)

	out, code = diff()
	if code != exitDiffNone || out != "::notice title=paddock diff::no change\n" {
		t.Errorf("diff --format github of the running manifests: exit %d, %q", code, out)
	}
	if err := testkit.WriteFile(running, []byte(fmt.Sprintf("apps:\n  ok:\n    exec: /bin/sleep\n    args: [1001]\n    instances: %d\n", 2)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code = diff("deploy/ok.yaml")
	if code != exitDiffChanges || out != "::notice title=paddock diff::~ ok: updated (rolling update) for args; scaled 1 → 2 workers\n" {
		t.Errorf("diff --format github of a change: exit %d, %q", code, out)
	}
}
