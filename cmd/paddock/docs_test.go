package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"github.com/spf13/pflag"

	"github.com/paddock-sh/paddock/internal/control"
)

var update = flag.Bool("update", false, "regenerate docs/cli/ from the command tree (make docs-cli)")

// cliDocs is where the Markdown reference of the command line is kept.
var cliDocs = filepath.Join("..", "..", "docs", "cli")

// TestCLIDocs: docs/cli/ is the Markdown reference cobra generates from
// the command tree, one page a command; it fails when a command, flag or
// help text changed without `make docs-cli`.
func TestCLIDocs(t *testing.T) {
	dir := t.TempDir()
	if err := writeCLIDocs(dir); err != nil {
		t.Fatal(err)
	}
	if *update {
		old, _ := filepath.Glob(filepath.Join(cliDocs, "*.md"))
		for _, p := range old {
			os.Remove(p)
		}
		os.MkdirAll(cliDocs, 0o755)
	}
	fresh, _ := filepath.Glob(filepath.Join(dir, "*.md"))
	kept, _ := filepath.Glob(filepath.Join(cliDocs, "*.md"))
	if len(fresh) == 0 {
		t.Fatal("no page generated")
	}
	for _, p := range fresh {
		name := filepath.Base(p)
		want, _ := os.ReadFile(p)
		if *update {
			if err := os.WriteFile(filepath.Join(cliDocs, name), want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(filepath.Join(cliDocs, name))
		if err != nil || string(got) != string(want) {
			t.Errorf("docs/cli/%s is out of date (%v): run `make docs-cli` and commit docs/cli/", name, err)
		}
	}
	for _, p := range kept {
		if !slices.Contains(fresh, filepath.Join(dir, filepath.Base(p))) && !*update {
			t.Errorf("docs/cli/%s is of no command: run `make docs-cli` and commit docs/cli/", filepath.Base(p))
		}
	}
}

// writeCLIDocs writes the Markdown reference of paddock's commands into
// dir, without the date cobra stamps on each page and with the default
// socket path said for every machine, so that the pages change only
// when the command line does.
func writeCLIDocs(dir string) error {
	root := newRootCmd(io.Discard, io.Discard)
	root.DisableAutoGenTag = true
	here := control.DefaultSocketPath()
	const anywhere = "$XDG_RUNTIME_DIR/paddock.sock, else /run/paddock.sock for root, /tmp/paddock-UID.sock for others"
	var generic func(c *cobra.Command)
	generic = func(c *cobra.Command) {
		c.Long = strings.ReplaceAll(c.Long, here, anywhere)
		c.Flags().VisitAll(func(f *pflag.Flag) { f.Usage = strings.ReplaceAll(f.Usage, here, anywhere) })
		for _, sub := range c.Commands() {
			generic(sub)
		}
	}
	generic(root)
	return doc.GenMarkdownTree(root, dir)
}
