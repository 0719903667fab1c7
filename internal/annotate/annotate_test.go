package annotate

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/go-multierror"

	"github.com/paddock-sh/paddock/internal/testkit"
	"github.com/paddock-sh/paddock/manifest"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	testkit.Golden(t, filepath.Join("testdata", name), []byte(got), *update)
}

func sampleErrors(dir string) error {
	var errs *multierror.Error
	errs = multierror.Append(errs,
		&manifest.FieldError{Pos: manifest.Pos{File: filepath.Join(dir, "deploy", "web.yaml"), Line: 4, Col: 16},
			Field: "apps.web.instances", Msg: "want a number, got \"lots\""},
		&manifest.FieldError{Pos: manifest.Pos{File: filepath.Join(dir, "deploy", "api,v2.yaml"), Line: 2, Col: 1},
			Msg: "yaml: line 2: mapping values are not allowed in this context\n100% wrong"},
		&manifest.FieldError{Pos: manifest.Pos{File: "/elsewhere/x.yaml", Line: 7, Col: 3},
			Field: "apps.db.env.A:B", Msg: "bad"},
		&manifest.PathError{Path: filepath.Join(dir, "missing.yaml"), Err: os.ErrNotExist},
		errors.New("a plain error"))
	return errs.ErrorOrNil()
}

func TestWriteGitHubGolden(t *testing.T) {
	dir := "/work/repo"
	var fs []Finding
	for _, f := range FromErrors(Error, sampleErrors(dir)) {
		fs = append(fs, f.Rel(dir))
	}
	fs = append(fs, Finding{Severity: Warning, File: "deploy/web.yaml", Line: 9, Col: 5, Field: "apps.web.listen[0]", Message: ":8080 is in use"})
	var b bytes.Buffer
	if err := WriteGitHub(&b, "paddock validate", fs); err != nil {
		t.Fatal(err)
	}
	golden(t, "github.golden", b.String())

	b.Reset()
	if err := WriteJSON(&b, Report{Valid: false, Findings: fs}); err != nil {
		t.Fatal(err)
	}
	golden(t, "json.golden", b.String())
}

// parseCommand reads a workflow command line as the Actions runner does:
// "::NAME KEY=VALUE,KEY=VALUE::MESSAGE", values and message unescaped.
func parseCommand(line string) (name string, props map[string]string, msg string, err error) {
	rest, ok := strings.CutPrefix(line, "::")
	if !ok {
		return "", nil, "", fmt.Errorf("no leading ::")
	}
	head, msg, ok := strings.Cut(rest, "::")
	if !ok {
		return "", nil, "", fmt.Errorf("no :: before the message")
	}
	name, propText, _ := strings.Cut(head, " ")
	props = map[string]string{}
	if propText != "" {
		for _, kv := range strings.Split(propText, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return "", nil, "", fmt.Errorf("property %q without =", kv)
			}
			props[k] = Unescape(v)
		}
	}
	return name, props, Unescape(msg), nil
}

// FuzzGitHubCommand: whatever the file, field and message, the command
// is one line that the runner reads back to the same values.
func FuzzGitHubCommand(f *testing.F) {
	f.Add("deploy/web.yaml", "apps.web.instances", "want a number", 4, 16)
	f.Add("a,b:c%d.yaml", "apps.x:y,z", "line 1\r\nline 2 %0A 100%", 1, 1)
	f.Add("", "", "::error::nested", 0, 0)
	f.Fuzz(func(t *testing.T, file, field, msg string, line, col int) {
		if line < 0 || col < 0 {
			return
		}
		in := Finding{Severity: Error, File: file, Line: line, Col: col, Field: field, Message: msg}
		var b bytes.Buffer
		if err := WriteGitHub(&b, "paddock", []Finding{in}); err != nil {
			t.Fatal(err)
		}
		checkReadBack(t, strings.TrimSuffix(b.String(), "\n"), in)
		if Unescape(EscapeData(msg)) != msg || Unescape(EscapeProperty(msg)) != msg {
			t.Fatalf("escaping of %q does not round-trip", msg)
		}
	})
}

// checkReadBack fails t unless out, the command written for in, is one
// line that the runner reads back to in's values.
func checkReadBack(t *testing.T, out string, in Finding) {
	t.Helper()
	if strings.ContainsAny(out, "\r\n") {
		t.Fatalf("more than one line: %q", out)
	}
	name, props, gotMsg, err := parseCommand(out)
	if err != nil {
		t.Fatalf("%q: %v", out, err)
	}
	if name != "error" || gotMsg != in.Message {
		t.Fatalf("%q: read back %q, %q", out, name, gotMsg)
	}
	wantTitle := in.Field
	if wantTitle == "" {
		wantTitle = "paddock"
	}
	if props["title"] != wantTitle {
		t.Fatalf("%q: title %q, want %q", out, props["title"], wantTitle)
	}
	if in.File == "" {
		return
	}
	if props["file"] != in.File {
		t.Fatalf("%q: file %q, want %q", out, props["file"], in.File)
	}
	if in.Line > 0 && props["line"] != strconv.Itoa(in.Line) {
		t.Fatalf("%q: line %q", out, props["line"])
	}
}

func TestRel(t *testing.T) {
	cases := []struct{ file, dir, want string }{
		{"/work/repo/deploy/a.yaml", "/work/repo", "deploy/a.yaml"},
		{"/work/other/a.yaml", "/work/repo", "/work/other/a.yaml"},
		{"/work/repo/a.yaml", "", "/work/repo/a.yaml"},
		{"", "/work/repo", ""},
	}
	for _, c := range cases {
		if got := (Finding{File: c.file}).Rel(c.dir).File; got != c.want {
			t.Errorf("Rel(%q, %q) = %q, want %q", c.file, c.dir, got, c.want)
		}
	}
}
