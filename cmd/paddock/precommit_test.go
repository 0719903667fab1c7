package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
)

// repoRoot is the repository's root, from this package's directory.
var repoRoot = filepath.Join("..", "..")

// checkPaddockCommand fails t unless line, a shell command starting with
// "paddock ", names a paddock command and flags that exist.
func checkPaddockCommand(t *testing.T, where, line string) {
	t.Helper()
	args := strings.Fields(line)[1:]
	root := newRootCmd(io.Discard, io.Discard)
	c, rest, err := root.Find(args)
	if err != nil || c == root {
		t.Errorf("%s: %q names no paddock command: %v", where, line, err)
		return
	}
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		if !strings.HasPrefix(a, "-") || a == "-" || a == "--" {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		var ok bool
		if strings.HasPrefix(a, "--") {
			ok = c.Flags().Lookup(name) != nil || c.InheritedFlags().Lookup(name) != nil
		} else {
			ok = c.Flags().ShorthandLookup(name) != nil
		}
		if !ok {
			t.Errorf("%s: %q: paddock %s has no flag %s", where, line, c.Name(), a)
		}
	}
	checkFormatValues(t, where, line, c)
}

// checkFormatValues fails t when line gives --format a value paddock
// refuses.
func checkFormatValues(t *testing.T, where, line string, c *cobra.Command) {
	t.Helper()
	f := strings.Fields(line)
	for i, a := range f {
		if a == "--format" && i+1 < len(f) && !validFormat(f[i+1]) {
			t.Errorf("%s: %q: paddock %s --format %s is refused", where, line, c.Name(), f[i+1])
		}
	}
}

// paddockCommands returns the paddock command lines in a shell script:
// the parts of s, split at line ends, ";", "&&" and "||", that start with
// "paddock ".
func paddockCommands(s string) []string {
	var out []string
	for _, part := range regexp.MustCompile(`\n|;|&&|\|\|`).Split(s, -1) {
		part = strings.TrimSpace(part)
		if strings.HasPrefix(part, "paddock ") {
			out = append(out, part)
		}
	}
	return out
}

// scalars returns every string scalar under n.
func scalars(n *yaml.Node) []string {
	if n.Kind == yaml.ScalarNode {
		return []string{n.Value}
	}
	var out []string
	for _, c := range n.Content {
		out = append(out, scalars(c)...)
	}
	return out
}

// preCommitHook is an entry of .pre-commit-hooks.yaml (the fields paddock
// sets).
type preCommitHook struct {
	ID            string   `yaml:"id"`
	Name          string   `yaml:"name"`
	Description   string   `yaml:"description"`
	Language      string   `yaml:"language"`
	Entry         string   `yaml:"entry"`
	Files         string   `yaml:"files"`
	Types         []string `yaml:"types"`
	Args          []string `yaml:"args"`
	PassFilenames *bool    `yaml:"pass_filenames"`
	RequireSerial bool     `yaml:"require_serial"`
}

// TestPreCommitHooks: .pre-commit-hooks.yaml parses, its hook runs a
// paddock command and flags that exist, and its files pattern matches the
// manifests it says it does.
func TestPreCommitHooks(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, ".pre-commit-hooks.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var hooks []preCommitHook
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&hooks); err != nil {
		t.Fatalf(".pre-commit-hooks.yaml: %v", err)
	}
	if len(hooks) != 1 || hooks[0].ID != "paddock-validate" {
		t.Fatalf("hooks: %+v, want paddock-validate", hooks)
	}
	h := hooks[0]
	if h.Language != "golang" && h.Language != "system" {
		t.Errorf("language %q", h.Language)
	}
	if !strings.HasPrefix(h.Entry, "paddock validate") {
		t.Errorf("entry %q is not paddock validate", h.Entry)
	}
	checkPaddockCommand(t, ".pre-commit-hooks.yaml entry", strings.Join(append([]string{h.Entry}, h.Args...), " "))
	re, err := regexp.Compile(h.Files)
	if err != nil {
		t.Fatalf("files %q: %v", h.Files, err)
	}
	for name, want := range map[string]bool{
		"paddock.yaml": true, "deploy/paddock.yml": true, "web.paddock.yaml": true, "ops/paddock/web.yaml": true,
		"deploy/other.yaml": false, "paddock.yaml.bak": false, "mypaddock.yaml": false, "README.md": false,
	} {
		if re.MatchString(name) != want {
			t.Errorf("files %q matches %s: %v, want %v", h.Files, name, !want, want)
		}
	}
}

// TestCIDocExamples: every YAML block of docs/ci.md parses; each paddock
// command in them exists with its flags; the GitHub workflow has its
// triggers and jobs and runs validate --format github; the pre-commit
// example names the hook paddock ships; `go install` names this module's
// command.
func TestCIDocExamples(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "docs", "ci.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(b), -1)
	if len(blocks) < 4 {
		t.Fatalf("docs/ci.md has %d yaml blocks, want the workflow, GitLab, and two pre-commit examples", len(blocks))
	}
	var saw ciDocSeen
	for i, m := range blocks {
		saw.check(t, fmt.Sprintf("docs/ci.md yaml block %d", i+1), m[1])
	}
	if !saw.workflow || !saw.githubFormat || !saw.gitlab || !saw.hook {
		t.Errorf("docs/ci.md: workflow %v, --format github %v, GitLab job %v, pre-commit hook %v; want all", saw.workflow, saw.githubFormat, saw.gitlab, saw.hook)
	}
}

// ciDocSeen is what the examples of docs/ci.md were found to hold.
type ciDocSeen struct {
	workflow, githubFormat, gitlab, hook bool
}

// check parses the YAML block text of docs/ci.md (where names it) and
// checks its paddock commands, noting what it holds.
func (saw *ciDocSeen) check(t *testing.T, where, text string) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		// A snippet of a list (the second pre-commit example) is
		// checked as an item.
		if err2 := yaml.Unmarshal([]byte(dedent(text)), &doc); err2 != nil {
			t.Errorf("%s does not parse: %v", where, err)
			return
		}
	}
	var generic map[string]any
	_ = yaml.Unmarshal([]byte(text), &generic)
	if _, ok := generic["jobs"]; ok {
		saw.workflow = true
		if _, ok := generic["on"]; !ok {
			t.Errorf("%s: a workflow without on:", where)
		}
	}
	if _, ok := generic["paddock-validate"]; ok {
		saw.gitlab = true
	}
	for _, s := range scalars(&doc) {
		saw.hook = saw.hook || s == "paddock-validate"
		if strings.Contains(s, "go install ") && !strings.Contains(s, "github.com/paddock-sh/paddock/cmd/paddock@") {
			t.Errorf("%s: %q does not install this module's cmd/paddock", where, s)
		}
		for _, line := range paddockCommands(s) {
			checkPaddockCommand(t, where, line)
			saw.githubFormat = saw.githubFormat || strings.Contains(line, "--format github")
		}
	}
}

// dedent removes the indentation of s's first line from each line.
func dedent(s string) string {
	first := strings.SplitN(s, "\n", 2)[0]
	ind := first[:len(first)-len(strings.TrimLeft(first, " "))]
	var out []string
	for _, l := range strings.Split(s, "\n") {
		out = append(out, strings.TrimPrefix(l, ind))
	}
	return strings.Join(out, "\n")
}
