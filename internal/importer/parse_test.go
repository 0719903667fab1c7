package importer

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/paddock-sh/paddock/manifest"
)

func TestSplitWords(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  error
	}{
		{`/bin/cat`, []string{"/bin/cat"}, nil},
		{`  a   b  `, []string{"a", "b"}, nil},
		{`a "b c" 'd e'`, []string{"a", "b c", "d e"}, nil},
		{`a"b"'c'`, []string{"abc"}, nil},
		{`"" ''`, []string{"", ""}, nil},
		{`a\ b`, []string{"a b"}, nil},
		{`"a \"q\" \$x \\ \n"`, []string{`a "q" $x \ \n`}, nil},
		{`'no \escape'`, []string{`no \escape`}, nil},
		{"a\nb", []string{"a", "b"}, nil},
		{`x | y && $Z > f`, []string{"x", "|", "y", "&&", "$Z", ">", "f"}, nil},
		{`"open`, nil, ErrUnclosedQuote},
		{`'open`, nil, ErrUnclosedQuote},
	} {
		got, err := SplitWords(tc.in)
		if !errors.Is(err, tc.err) || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("SplitWords(%q) = %q, %v; want %q, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestExpand(t *testing.T) {
	vars := map[string]string{"program_name": "web", "process_num": "7", "here": "/etc/sv", "ENV_HOME": "/root"}
	for _, tc := range []struct{ in, want, err string }{
		{"%(program_name)s_%(process_num)02d", "web_07", ""},
		{"%(process_num)d %(process_num)3d|%(process_num)-3d|", "7   7|7  |", ""},
		{"%(here)s/x %(ENV_HOME)s", "/etc/sv/x /root", ""},
		{"100%% sure", "100% sure", ""},
		{"%(program_name)d", "", "not a number"},
		{"%(nope)s", "", "no such expansion"},
		{"%(here)", "", "without a conversion"},
		{"50%", "", "write %% for a %"},
		{"%(here", "", "without )"},
	} {
		got, err := expand(tc.in, vars)
		if tc.err == "" && (err != nil || got != tc.want) || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("expand(%q) = %q, %v; want %q, error %q", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestParseEnvironment(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want map[string]string
		err  string
	}{
		{`A="1",B="2"`, map[string]string{"A": "1", "B": "2"}, ""},
		{`KEY="val, with comma",K2=plain , K3='single "q"'`, map[string]string{"KEY": "val, with comma", "K2": "plain", "K3": `single "q"`}, ""},
		{"A=1,\n  B=2,", map[string]string{"A": "1", "B": "2"}, ""},
		{`E=""`, map[string]string{"E": ""}, ""},
		{`A=two words`, nil, "needs quotes"},
		{`A="open`, nil, "no closing"},
		{`=x`, nil, "expected KEY=value"},
		{`A`, nil, "expected KEY=value"},
	} {
		env, err := parseEnvironment(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseEnvironment(%q): error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(env.Values, tc.want) {
			t.Errorf("parseEnvironment(%q) = %v, %v; want %v", tc.in, env, err, tc.want)
		}
	}
}

func TestParseINIErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"a=1\n", "x.conf:1: key before any [section]"},
		{"[p]\na=1\na=2\n", "x.conf:3: key a already set on line 2 in [p]"},
		{"[p]\n[p]\n", "x.conf:2: section [p] already declared on line 1"},
		{"[p\n", "x.conf:1: section header without ]"},
		{"[p]\n  cont\n", "x.conf:2: indented line continues no value"},
		{"[p]\njunk\n", "x.conf:2: not a section"},
	} {
		_, err := parseINI("x.conf", []byte(tc.in))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("parseINI(%q): %v, want %q", tc.in, err, tc.want)
		}
	}
	secs, err := parseINI("x.conf", []byte("[program:a]\ncommand = /bin/x ; note\n  --flag;kept\nkey: v # c\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := secs[0].Get("command").Value; got != "/bin/x\n--flag;kept" {
		t.Errorf("command = %q", got)
	}
	if got := secs[0].Get("key").Value; got != "v" {
		t.Errorf("key = %q", got)
	}
}

// TestSupervisordErrorsNameLine checks that a bad value is reported at
// its file and line, and no manifest is written.
func TestSupervisordErrorsNameLine(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "s.conf")
	for _, tc := range []struct{ in, want string }{
		{"[program:a]\ncommand=/bin/x %(nope)s\n", "s.conf:2: [program:a] command: %(nope)s: no such expansion"},
		{"[program:a]\ncommand=/bin/x\nnumprocs=zero\n", "s.conf:3: [program:a] numprocs: not a number >= 1"},
		{"[program:a]\ncommand=/bin/x\nenvironment=A=b c\n", "s.conf:1: [program:a] environment: A: a value with blanks needs quotes"},
		{"[program:a]\ndirectory=/\n", "s.conf:1: [program:a] no command"},
		{"[program:a]\ncommand='unclosed\n", "command: no closing quotation"},
	} {
		if err := os.WriteFile(f, []byte(tc.in), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := ImportSupervisord(f, SupervisordOptions{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.in, err, tc.want)
		}
	}
}

// TestPM2Node covers the evaluation of JavaScript files: an ES module, a
// file that throws, a file that never ends (the timeout), and no node.
func TestPM2Node(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	esm := write("ecosystem.config.mjs", "export default {apps: [{name: 'm', script: 'm.js', instances: 2}]};\n")
	m, err := ImportPM2(context.Background(), esm, Node{}, PM2Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Apps) != 1 || m.Apps[0].Name != "m" {
		t.Fatalf("apps = %+v", m.Apps)
	}
	bad := write("bad.config.js", "throw new Error('broken config');\n")
	if _, err := ImportPM2(context.Background(), bad, Node{}, PM2Options{}); err == nil || !strings.Contains(err.Error(), "broken config") {
		t.Errorf("a throwing file: %v", err)
	}
	hang := write("hang.config.js", "setInterval(() => {}, 1000); module.exports = {apps: []};\n")
	_, err = Node{Timeout: 500 * time.Millisecond}.Eval(context.Background(), hang)
	if err == nil || !strings.Contains(err.Error(), "gave no answer within 500ms") {
		t.Errorf("a file that never ends: %v", err)
	}
	_, err = Node{Path: filepath.Join(dir, "no-such-node")}.Eval(context.Background(), esm)
	if !errors.Is(err, ErrNoNode) || !strings.Contains(err.Error(), "install Node.js") {
		t.Errorf("without node: %v", err)
	}
	// A strict JSON file needs no node at all.
	js := write("p.json", `{"apps": [{"name": "j", "script": "j.js"}]}`)
	if _, err := ImportPM2(context.Background(), js, Node{Path: filepath.Join(dir, "no-such-node")}, PM2Options{}); err != nil {
		t.Errorf("strict JSON without node: %v", err)
	}
}

// FuzzSupervisord feeds the INI reader and the converter any file: no
// panic, and whatever converts is YAML that paddock's decoder reads.
func FuzzSupervisord(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/supervisord/*.conf")
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("[program:x]\ncommand=a %(process_num)05d\nnumprocs=3\nenvironment=A=\"1\",B='2'\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		secs, err := parseINI("f.conf", data)
		if err != nil {
			return
		}
		m, err := ConvertSupervisord(secs, "f.conf", SupervisordOptions{Environ: []string{"A=1"}, Hostname: "h"})
		if err != nil {
			return
		}
		out, err := m.YAML()
		if errors.Is(err, ErrNotUTF8) {
			return
		}
		if err != nil {
			t.Fatalf("YAML: %v", err)
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(out, &doc); err != nil {
			t.Fatalf("output is not YAML: %v\n%s", err, out)
		}
		if _, err := manifest.Decode("out.yaml", out); err != nil && strings.Contains(err.Error(), "unknown field") {
			t.Fatalf("output has a field paddock does not know: %v\n%s", err, out)
		}
	})
}
