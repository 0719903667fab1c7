package importer

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/paddock-sh/paddock/internal/testkit"
	"github.com/paddock-sh/paddock/manifest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// testEnviron and testHost make %(ENV_x)s and %(host_node_name)s the same
// on every machine.
var (
	testEnviron = []string{"QUEUE=jobs", "HOME=/home/test"}
	testHost    = "testhost"
)

// converted is one test file and its conversion.
type converted struct {
	kind, file, golden string
	out                []byte
	keys               []string // every option key of the input
}

// convertAll converts every test file: testdata/pm2/* (each also with
// --env production when it has env_production) and
// testdata/supervisord/*.conf.
func convertAll(t *testing.T) []converted {
	t.Helper()
	convertOnce.Do(func() { converts = convertAllNow(t) })
	if converts == nil {
		t.Fatal("converting the test files failed (see the first test)")
	}
	return converts
}

var (
	convertOnce sync.Once
	converts    []converted
)

func convertAllNow(t *testing.T) []converted {
	abs, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	var all []converted
	add := func(kind, file, suffix string, m *Manifest, keys []string) {
		out, err := m.YAML()
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		// The golden files must not depend on where the checkout is.
		out = bytes.ReplaceAll(out, []byte(abs), []byte("$TESTDATA"))
		golden := filepath.Join("testdata", "golden", kind, filepath.Base(file)+suffix+".yaml")
		all = append(all, converted{kind, file, golden, out, keys})
	}
	pm2Files, _ := filepath.Glob("testdata/pm2/*")
	for _, f := range pm2Files {
		eco, err := LoadPM2(context.Background(), f, Node{})
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		keys := pm2Keys(eco)
		m, err := ConvertPM2(eco, filepath.Base(f), PM2Options{})
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		add("pm2", f, "", m, keys)
		if slicesContains(keys, "env_production") {
			m, err := ConvertPM2(eco, filepath.Base(f), PM2Options{Env: "production"})
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			add("pm2", f, ".env-production", m, keys)
		}
	}
	confs, _ := filepath.Glob("testdata/supervisord/*.conf")
	for _, f := range confs {
		m, err := ImportSupervisord(f, SupervisordOptions{Environ: testEnviron, Hostname: testHost})
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		add("supervisord", f, "", m, iniKeys(t, f))
	}
	if len(all) < 12 {
		t.Fatalf("only %d test files converted", len(all))
	}
	return all
}

func slicesContains(l []string, s string) bool {
	for _, e := range l {
		if e == s {
			return true
		}
	}
	return false
}

// pm2Keys lists the option keys of a decoded ecosystem: top-level keys and
// every app's.
func pm2Keys(eco any) []string {
	var keys []string
	apps := []any{}
	switch x := eco.(type) {
	case []any:
		apps = x
	case map[string]any:
		for k, v := range x {
			if k == "apps" {
				if l, ok := v.([]any); ok {
					apps = l
				}
				continue
			}
			keys = append(keys, k)
		}
	}
	for _, a := range apps {
		for k := range a.(map[string]any) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

// iniKeys lists the section names and keys of a supervisord file and the
// files it includes.
func iniKeys(t *testing.T, file string) []string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	secs, err := parseINI(file, data)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, s := range secs {
		keys = append(keys, "["+s.Name+"]")
		for _, k := range s.Keys {
			keys = append(keys, k.Name)
		}
		if s.Name == "include" {
			_, _, err := includes(file, s)
			if err != nil {
				t.Fatal(err)
			}
			inc, _, _ := includes(file, s)
			for _, s := range inc {
				keys = append(keys, "["+s.Name+"]")
				for _, k := range s.Keys {
					keys = append(keys, k.Name)
				}
			}
		}
	}
	return keys
}

// TestGolden compares each conversion with its golden file
// (go test -run TestGolden -update rewrites them).
func TestGolden(t *testing.T) {
	for _, c := range convertAll(t) {
		t.Run(c.golden, func(t *testing.T) {
			t.Logf("the conversion of %s", c.file)
			testkit.Golden(t, c.golden, c.out, *update)
		})
	}
}

// TestEveryKeyAccounted checks the promise that no option is dropped
// silently: every key (and section) of every test file is named in a
// comment of the output, as mapped or as not converted.
func TestEveryKeyAccounted(t *testing.T) {
	for _, c := range convertAll(t) {
		var comments strings.Builder
		for _, line := range strings.Split(string(c.out), "\n") {
			if i := strings.Index(line, "# "); i >= 0 {
				comments.WriteString(line[i:] + "\n")
			}
		}
		for _, k := range c.keys {
			if k == "name" {
				continue // the app's key in apps:, checked by the golden files
			}
			re := regexp.MustCompile(`(^|[^A-Za-z0-9_])` + regexp.QuoteMeta(k) + `($|[^A-Za-z0-9_])`)
			if !re.MatchString(comments.String()) {
				t.Errorf("%s: option %s is in no comment of the output:\n%s", c.file, k, c.out)
			}
		}
	}
}

// TestOutputValidates checks that every conversion is a manifest paddock
// accepts: decoded strictly and validated as manifest.Load does (the host
// checks, which need the programs, are left to the command's test).
func TestOutputValidates(t *testing.T) {
	for _, c := range convertAll(t) {
		apps, err := manifest.Decode(c.golden, c.out)
		if err == nil {
			_, err = manifest.Validate(apps)
		}
		if err != nil {
			t.Errorf("%s: the output is not a valid manifest: %v\n%s", c.file, err, c.out)
		}
	}
}
