package manifest_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/paddock-sh/paddock/manifest"
)

// fuzzSeeds are inputs that are hard on a YAML decoder, besides the files
// under testdata/.
var fuzzSeeds = []string{
	"",
	"\x00",
	"apps:\n  web:\n    exec: \"a\\0b\"\n",
	"apps:\n  web:\n    exec: x\n    env: {\"A\\0\": b, \"\": c, \"A=B\": d}\n",
	// Aliases, including of keys, of the whole apps mapping, and unknown.
	"x-a: &a {exec: x}\napps: {web: *a, api: *a}\n",
	"x-k: &k exec\napps: {web: {*k : x}}\n",
	"apps: &apps\n  web:\n    exec: x\n    env: *apps\n",
	"apps: *nope\n",
	"&a [*a]\n",
	// Merge keys: cycles, chains, lists, bad values.
	"x: &a\n  <<: *a\n  exec: x\napps: {web: *a}\n",
	"x1: &a {exec: x}\nx2: &b {<<: *a}\nx3: &c {<<: [*b, *a]}\napps: {web: {<<: *c}}\n",
	"apps:\n  web:\n    <<: [1, {exec: x}, [a]]\n",
	"apps:\n  web:\n    <<: ~\n    exec: x\n",
	"apps: {<<: {web: {exec: x}}}\n",
	"<<: {apps: {web: {exec: x}}}\n",
	// A merge-key bomb, small: each level merges the one before it eight
	// times, and an app merges the last.
	"x-0: &a {exec: x, b: c}\nx-1: &b {<<: [*a, *a, *a, *a, *a, *a, *a, *a]}\nx-2: &c {<<: [*b, *b, *b, *b, *b, *b, *b, *b]}\n" +
		"x-3: &d {<<: [*c, *c, *c, *c, *c, *c, *c, *c]}\nx-4: &e {<<: [*d, *d, *d, *d, *d, *d, *d, *d]}\n" +
		"x-5: &f {<<: [*e, *e, *e, *e, *e, *e, *e, *e]}\nx-6: &g {<<: [*f, *f, *f, *f, *f, *f, *f, *f]}\n" +
		"apps: {web: {<<: *g}, api: {env: {<<: [*g, *a]}}}\n",
	// Billion laughs, small.
	"a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n" +
		"apps: {web: {exec: x, args: *c, execArgv: [*c, *c]}}\n",
	// Deep nesting, and deeper than the parser allows (10000). Kept small
	// otherwise: the fuzzer spends long minimizing large inputs.
	strings.Repeat("[", 300) + strings.Repeat("]", 300),
	strings.Repeat("{a: ", 200) + "b" + strings.Repeat("}", 200),
	"apps:\n  web:\n    exec: x\n    env:\n" + strings.Repeat(" ", 8) + strings.Repeat("a:\n  ", 100) + "b\n",
	"apps: {web: {exec: x, args: " + strings.Repeat("- ", 200) + "x}}\n",
	strings.Repeat("[", 10001),
	// Huge and odd numbers.
	"apps: {web: {exec: x, instances: 99999999999999999999999999}}\n",
	"apps: {web: {exec: x, instances: -9223372036854775808}}\n",
	"apps: {web: {exec: x, instances: 9223372036854775807}}\n",
	"apps: {web: {exec: x, instances: 1e3}}\n",
	"apps: {web: {exec: x, instances: .inf}}\n",
	"apps: {web: {exec: x, instances: 0b1010}}\n",
	"apps: {web: {exec: x, killTimeout: 9999999999999999999h}}\n",
	"apps: {web: {exec: x, killTimeout: 2562047h47m16.854775807s}}\n",
	"apps: {web: {exec: x, backoff: {initial: 1ns, max: 2562047h}}}\n",
	// Keys that are not strings, tags, odd documents.
	"apps: {? [a]: {exec: x}, ? {b: c}: d, 1: {exec: x}, null: {exec: x}}\n",
	"apps: {web: {exec: !!binary aGVsbG8=, args: !!set {a, b}}}\n",
	"apps: !!str {web: {exec: x}}\n",
	"%YAML 1.1\n---\napps: {}\n",
	"--- |\n  literal\n",
	"apps: {}\n...\n---\n- a\n---\nb\n",
	"\ufeffapps: {web: {exec: x}}\n",
	"apps:\r\n  web:\r\n    exec: x\r\n    instances: four\r\n",
	"apps:\n  web:\n    exec: x\n    exec: y\n    exec: z\n",
}

// checkLogs fails when a decoded logs: is out of its bounds.
func checkLogs(t *testing.T, what string, l *manifest.Logs) {
	t.Helper()
	if l == nil || l.Off {
		return
	}
	if !filepath.IsAbs(l.File) || l.MaxSize < manifest.LogSizeStep || l.MaxSize%manifest.LogSizeStep != 0 ||
		l.MaxFiles < 0 || l.MaxFiles > manifest.MaxLogFiles || (l.Streams != manifest.StreamsMerged && l.Streams != manifest.StreamsSeparate) {
		t.Fatalf("%s: logs %+v out of bounds", what, l)
	}
}

func FuzzDecode(f *testing.F) {
	err := filepath.WalkDir("testdata", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(path, ".yaml") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		f.Add(data)
		return nil
	})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		apps, err := manifest.Decode("f.yaml", data)
		checkFieldErrors(t, "Decode", err)

		apps2, err2 := manifest.Decode("f.yaml", data)
		if errText(err) != errText(err2) {
			t.Fatalf("Decode is not deterministic:\nfirst:\n%v\nsecond:\n%v", err, err2)
		}
		if len(apps) != len(apps2) {
			t.Fatalf("Decode is not deterministic: %d apps, then %d", len(apps), len(apps2))
		}
		for i, a := range apps {
			if a == nil {
				t.Fatalf("Decode returned a nil app at %d", i)
			}
			if a.Generation() != apps2[i].Generation() {
				t.Fatalf("app %s: generation %s, then %s", a.Name, a.Generation(), apps2[i].Generation())
			}
			if a.Source.Line < 1 || a.Source.Col < 1 {
				t.Fatalf("app %s: Source %v", a.Name, a.Source)
			}
			if a.Instances < 0 || a.Instances > manifest.MaxInstances {
				t.Fatalf("app %s: Instances %d out of range", a.Name, a.Instances)
			}
			if a.KillTimeout < 0 || a.Backoff.Initial < 0 || a.Backoff.Max < 0 {
				t.Fatalf("app %s: negative duration: %v %+v", a.Name, a.KillTimeout, a.Backoff)
			}
			checkLogs(t, "app "+a.Name, a.Logs)
		}
		file, _ := manifest.DecodeFile("f.yaml", data)
		checkLogs(t, "top-level", file.Logs)

		set, err := manifest.Validate(apps)
		checkFieldErrors(t, "Validate", err)
		if set == nil {
			t.Fatal("Validate returned a nil Set")
		}
		if err == nil {
			for _, a := range set.Apps {
				_ = a.Backoff.Delay(1 << 30)
			}
		}
	})
}

// checkFieldErrors fails unless every error in err is a *FieldError of the
// form FILE:LINE:COL: ... with a position in f.yaml.
func checkFieldErrors(t *testing.T, what string, err error) {
	t.Helper()
	errs := manifest.Errors(err)
	if err != nil && len(errs) == 0 {
		t.Fatalf("%s: error %v holds no errors", what, err)
	}
	for _, e := range errs {
		var fe *manifest.FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("%s: error %q is a %T, want *manifest.FieldError", what, e, e)
		}
		if fe.Pos.File != "f.yaml" || fe.Pos.Line < 1 || fe.Pos.Col < 1 {
			t.Fatalf("%s: error %q has position %+v", what, e, fe.Pos)
		}
		if fe.Msg == "" {
			t.Fatalf("%s: error %q has no message", what, e)
		}
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
