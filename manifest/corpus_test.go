package manifest_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/paddock-sh/paddock/internal/testkit"
	"github.com/paddock-sh/paddock/manifest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/invalid/")

// testHost is a fixed host, so that results do not depend on the machine
// running the tests: not root, and a PATH that every Linux system has.
var testHost = manifest.Host{Euid: 1000, Environ: []string{"PATH=/usr/bin:/bin"}}

// pkgDirVar stands for the absolute directory of this package in golden
// files: CheckHost reports absolute paths, which differ between checkouts.
const pkgDirVar = "$PKGDIR"

// errorLineRE is the form of every error line: FILE:LINE:COL: ...
var errorLineRE = regexp.MustCompile(`^testdata/invalid/[^:]+:[1-9][0-9]*:[1-9][0-9]*: .+$`)

// corpusCases lists the cases under dir: each NAME.yaml file, and each
// directory holding at least one .yaml file (loaded as a whole, like a
// directory given on the command line).
func corpusCases(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var cases []string
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() {
			if strings.HasSuffix(name, ".yaml") {
				cases = append(cases, name)
			}
			continue
		}
		yamls, err := filepath.Glob(filepath.Join(dir, name, "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if len(yamls) > 0 {
			cases = append(cases, name)
		}
	}
	return cases
}

func TestInvalidCorpus(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	const dir = "testdata/invalid"
	cases := corpusCases(t, dir)
	if len(cases) < 32 {
		t.Errorf("the invalid corpus has %d cases, want at least 32", len(cases))
	}
	for _, c := range cases {
		name := strings.TrimSuffix(c, ".yaml")
		t.Run(name, func(t *testing.T) {
			path := dir + "/" + c // slash-separated, as in the golden files
			set, err := manifest.Load([]string{path}, testHost)
			if err == nil {
				t.Fatalf("Load(%s) succeeded with apps %v; want errors", path, set.Names())
			}
			var lines []string
			for _, e := range manifest.Errors(err) {
				var fe *manifest.FieldError
				if !errors.As(e, &fe) {
					t.Errorf("error %q is a %T, want *manifest.FieldError", e, e)
				}
				line := e.Error()
				if strings.Contains(line, "\n") {
					t.Errorf("error %q spans several lines", line)
				}
				line = strings.ReplaceAll(line, wd, pkgDirVar)
				if !errorLineRE.MatchString(line) {
					t.Errorf("error %q is not of the form FILE:LINE:COL: ...", line)
				}
				lines = append(lines, line)
			}
			got := strings.Join(lines, "\n") + "\n"

			t.Logf("the errors of Load(%s)", path)
			testkit.Golden(t, filepath.Join(dir, name+".golden"), []byte(got), *update)
		})
	}
}

// TestInvalidCorpusGoldens finds golden files left behind by a removed case.
func TestInvalidCorpusGoldens(t *testing.T) {
	const dir = "testdata/invalid"
	cases := map[string]bool{}
	for _, c := range corpusCases(t, dir) {
		cases[strings.TrimSuffix(c, ".yaml")] = true
	}
	goldens, err := filepath.Glob(filepath.Join(dir, "*.golden"))
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range goldens {
		if name := strings.TrimSuffix(filepath.Base(g), ".golden"); !cases[name] {
			t.Errorf("%s has no case %s.yaml or %s/", g, name, name)
		}
	}
}

// TestNotExecutableFixture guards the fixture of the exec-not-executable case:
// a checkout or an editor that sets its x bit would silently change the case.
func TestNotExecutableFixture(t *testing.T) {
	fi, err := os.Stat("testdata/invalid/files/not-executable.sh")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o111 != 0 {
		t.Fatalf("testdata/invalid/files/not-executable.sh has mode %v; it must not be executable (git update-index --chmod=-x)", fi.Mode().Perm())
	}
}

func TestValidCorpus(t *testing.T) {
	const dir = "testdata/valid"
	cases := corpusCases(t, dir)
	if len(cases) == 0 {
		t.Fatal("no valid cases")
	}
	for _, c := range cases {
		t.Run(strings.TrimSuffix(c, ".yaml"), func(t *testing.T) {
			path := dir + "/" + c
			set, err := manifest.Load([]string{path}, testHost)
			if err != nil {
				t.Fatalf("Load(%s):\n%v", path, err)
			}
			for _, name := range set.Names() {
				a := set.Apps[name]
				if a.Resolved.Path == "" || len(a.Resolved.Argv) == 0 || a.Resolved.Dir == "" {
					t.Errorf("app %s: Resolved not filled in: %+v", name, a.Resolved)
				}
				if g := a.Generation(); len(g) != 8 {
					t.Errorf("app %s: Generation() = %q, want 8 hex digits", name, g)
				}
			}
		})
	}
}
