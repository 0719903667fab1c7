package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeModule writes a tiny module in a git checkout of its own: a package
// with two functions, a test that checks only Add, and a mutation list.
func fakeModule(t *testing.T, list string) string {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	dir := t.TempDir()
	files := map[string]string{
		"go.mod":               "module example.com/fake\n\ngo 1.21\n",
		"calc/calc.go":         "package calc\n\nfunc Add(a, b int) int { return a + b }\n\nfunc Sub(a, b int) int { return a - b }\n",
		"calc/calc_test.go":    "package calc\n\nimport \"testing\"\n\nfunc TestAdd(t *testing.T) {\n\tif Add(2, 3) != 5 {\n\t\tt.Fatal(\"Add(2, 3) != 5\")\n\t}\n}\n",
		"mutations.yaml":       list,
		"ignored/out.txt":      "build output\n",
		".gitignore":           "ignored/\nnode_modules/\n",
		"js/node_modules/p.js": "an npm package\n",
		"calc/untracked_x.txt": "an untracked file is copied too\n",
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("git", "-C", dir, "init", "-q").CombinedOutput(); err != nil {
		t.Fatalf("git init: %v: %s", err, out)
	}
	if out, err := exec.Command("git", "-C", dir, "add", "go.mod", "calc/calc.go", "calc/calc_test.go", ".gitignore").CombinedOutput(); err != nil {
		t.Fatalf("git add: %v: %s", err, out)
	}
	return dir
}

const fakeList = `mutations:
  - id: add-minus
    package: ./calc
    file: calc/calc.go
    description: Add adds.
    from: 'return a + b'
    to: 'return a - b'
  - id: sub-plus
    package: ./calc
    file: calc/calc.go
    description: Sub subtracts (no test says so).
    from: 'return a - b'
    to: 'return a + b'
`

// TestCaughtAndSurvived: a mutation a test catches is reported caught, with
// the test's name; one no test sees survives, and the exit status says so.
// The working tree is left as it was.
func TestCaughtAndSurvived(t *testing.T) {
	dir := fakeModule(t, fakeList)
	before, err := os.ReadFile(filepath.Join(dir, "calc/calc.go"))
	if err != nil {
		t.Fatal(err)
	}
	muts, err := Load(filepath.Join(dir, "mutations.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(dir, muts); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	results, err := Run(ctx, dir, muts, Options{Timeout: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 2 {
		t.Fatalf("%d results, want 2", len(results))
	}
	if r := results[0]; r.Outcome != Caught || r.FailedTest != "TestAdd" {
		t.Errorf("add-minus: %s by %q, want caught by TestAdd", r.Outcome, r.FailedTest)
	}
	if r := results[1]; r.Outcome != Survived {
		t.Errorf("sub-plus: %s, want survived", r.Outcome)
	}
	after, err := os.ReadFile(filepath.Join(dir, "calc/calc.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Errorf("the working tree changed:\n%s", after)
	}

	// The command: the table, and exit status 1 for the survivor.
	var stdout, stderr bytes.Buffer
	code := run([]string{"-root", dir, "-mutations", filepath.Join(dir, "mutations.yaml"), "-run", "^sub-plus$", "-timeout", "2m"}, &stdout, &stderr)
	if code != 1 {
		t.Errorf("exit status %d with a survivor, want 1; stderr: %s", code, &stderr)
	}
	if !strings.Contains(stdout.String(), "1 mutations: 0 caught (0 by timeout), 1 survived") {
		t.Errorf("the summary does not report the survivor:\n%s", &stdout)
	}
}

// TestSnippetMustMatchOnce: a snippet that is not in its file, or is there
// twice, fails the whole run before any test runs, naming the mutation.
func TestSnippetMustMatchOnce(t *testing.T) {
	list := fakeList + `  - id: gone
    package: ./calc
    file: calc/calc.go
    description: The code changed under this one.
    from: 'return a * b'
    to: 'return a / b'
  - id: twice
    package: ./calc
    file: calc/calc.go
    description: Ambiguous.
    from: 'int {'
    to: 'uint {'
`
	dir := fakeModule(t, list)
	var stdout, stderr bytes.Buffer
	code := run([]string{"-root", dir, "-mutations", filepath.Join(dir, "mutations.yaml"), "-run", "add-minus"}, &stdout, &stderr)
	if code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	for _, want := range []string{"gone: the snippet occurs 0 times in calc/calc.go", "twice: the snippet occurs 2 times"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr does not say %q:\n%s", want, &stderr)
		}
	}
	if stdout.Len() > 0 {
		t.Errorf("mutations ran although the list is broken:\n%s", &stdout)
	}
}

// TestLoadRefusesBadLists: unknown keys, duplicate ids, missing fields.
func TestLoadRefusesBadLists(t *testing.T) {
	for name, tc := range map[string]struct{ list, want string }{
		"unknown key": {"mutations:\n  - id: a\n    pakage: ./x\n", "field pakage not found"},
		"duplicate id": {`mutations:
  - {id: a, package: ./x, file: x/x.go, description: d, from: f, to: t}
  - {id: a, package: ./x, file: x/x.go, description: d, from: f, to: t}
`, "a: id used twice"},
		"no description": {"mutations:\n  - {id: a, package: ./x, file: x/x.go, from: f, to: t}\n", "a: no description"},
		"package path":   {"mutations:\n  - {id: a, package: x, file: x/x.go, description: d, from: f, to: t}\n", `package "x" must be a path starting with ./`},
		"same from, to":  {"mutations:\n  - {id: a, package: ./x, file: x/x.go, description: d, from: f, to: f}\n", "a: from and to are the same"},
		"empty":          {"mutations: []\n", "no mutations"},
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "m.yaml")
			if err := os.WriteFile(p, []byte(tc.list), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Load(p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load: %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

// TestFirstFailure reads the first failing test, refined to its subtest.
func TestFirstFailure(t *testing.T) {
	out := "=== RUN x\n    --- FAIL: TestA/early (0.00s)\n--- FAIL: TestB (0.01s)\n    --- FAIL: TestB/sub (0.00s)\n--- FAIL: TestC (0.00s)\nFAIL\n"
	if got := firstFailure([]byte(out)); got != "TestB/sub" {
		t.Errorf("firstFailure = %q, want TestB/sub", got)
	}
	if got := firstFailure([]byte("--- FAIL: TestX (0.00s)\n--- FAIL: TestY (0.00s)\n")); got != "TestX" {
		t.Errorf("firstFailure = %q, want TestX", got)
	}
}

// TestCopyTree copies what git tracks and the untracked files it does not
// ignore, as they are on disk (a dirty tree is checked as it is), and
// links the ignored node_modules directories.
func TestCopyTree(t *testing.T) {
	dir := fakeModule(t, fakeList)
	if err := os.WriteFile(filepath.Join(dir, "calc/calc.go"), []byte("package calc // edited\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if err := copyTree(dir, dst); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		"go.mod": true, "calc/calc.go": true, "calc/untracked_x.txt": true, "mutations.yaml": true,
		"ignored/out.txt": false, ".git/HEAD": false, "js/node_modules/p.js": true,
	} {
		_, err := os.Stat(filepath.Join(dst, name))
		if got := err == nil; got != want {
			t.Errorf("%s copied: %v, want %v", name, got, want)
		}
	}
	if fi, err := os.Lstat(filepath.Join(dst, "js/node_modules")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("js/node_modules: %v, want a link to the original", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "calc/calc.go")); string(b) != "package calc // edited\n" {
		t.Errorf("calc/calc.go copied as %q, not as it is on disk", b)
	}
}
