package manifest_test

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/paddock-sh/paddock/manifest"
)

// decodeOne decodes src, which must declare exactly one app and no error.
func decodeOne(t *testing.T, src string) *manifest.App {
	t.Helper()
	apps, err := manifest.Decode("m.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Decode:\n%v", err)
	}
	if len(apps) != 1 {
		t.Fatalf("Decode returned %d apps, want 1", len(apps))
	}
	return apps[0]
}

func TestDecodeDefaults(t *testing.T) {
	a := decodeOne(t, "apps:\n  web:\n    exec: ./server\n")
	want := manifest.App{
		Name:             "web",
		Exec:             "./server",
		Instances:        manifest.DefaultInstances,
		SchedulingPolicy: manifest.DefaultSchedulingPolicy,
		Restart:          manifest.DefaultRestart,
		Backoff:          manifest.Backoff{Initial: manifest.DefaultBackoffInitial, Max: manifest.DefaultBackoffMax},
		KillSignal:       manifest.DefaultKillSignal,
		KillTimeout:      manifest.DefaultKillTimeout,
		Readiness:        manifest.DefaultReadiness,
		IPC:              manifest.DefaultIPC,
		Serialization:    manifest.DefaultSerialization,
		ReadyTimeout:     manifest.DefaultReadyTimeout,
		MinReadyTime:     manifest.DefaultMinReadyTime,
		Rollout:          manifest.Rollout{MaxSurge: manifest.DefaultMaxSurge, MaxUnavailable: manifest.DefaultMaxUnavailable, OnStall: manifest.DefaultOnStall},
		FailAfter:        manifest.DefaultFailAfter,
		Source:           manifest.Pos{File: "m.yaml", Line: 2, Col: 3},
		Pos:              map[string]manifest.Pos{"exec": {File: "m.yaml", Line: 3, Col: 11}},
	}
	if !reflect.DeepEqual(*a, want) {
		t.Errorf("Decode:\ngot  %+v\nwant %+v", *a, want)
	}
	// The documented defaults, spelt out once more.
	if a.Instances != 1 || a.SchedulingPolicy != "rr" || a.Restart != "always" ||
		a.Backoff.Initial != 100*time.Millisecond || a.Backoff.Max != 10*time.Second ||
		a.KillSignal != "SIGTERM" || a.KillTimeout != 5*time.Second || a.Silent || a.InstancesAuto ||
		a.Critical || a.FailAfter != 5*time.Minute {
		t.Errorf("defaults differ from the documentation: %+v", *a)
	}
}

// TestDecodeNullKeepsDefault: a key given no value leaves the default.
func TestDecodeNullKeepsDefault(t *testing.T) {
	a := decodeOne(t, `
apps:
  web:
    exec: ./server
    instances:
    restart: ~
    killTimeout: null
    backoff: {initial: null, max: }
`)
	if a.Instances != manifest.DefaultInstances || a.Restart != manifest.DefaultRestart ||
		a.KillTimeout != manifest.DefaultKillTimeout ||
		a.Backoff != (manifest.Backoff{Initial: manifest.DefaultBackoffInitial, Max: manifest.DefaultBackoffMax}) {
		t.Errorf("null values changed defaults: %+v", *a)
	}
}

func TestDecodeFields(t *testing.T) {
	tests := []struct {
		name  string
		app   string // the body of app "web", indented by 4
		check func(t *testing.T, a *manifest.App)
	}{
		{"every field", `
    exec: server.js
    execPath: node
    execArgv: [--enable-source-maps]
    args: [--port, 8000]
    cwd: /srv/web
    env: {PORT: 8000}
    silent: true
    instances: 4
    schedulingPolicy: none
    restart: on-failure
    backoff: {initial: 1s, max: 1m}
    killSignal: SIGINT
    killTimeout: 30s
    user: www-data
    group: "33"
`, func(t *testing.T, a *manifest.App) {
			got := manifest.App{
				Exec: a.Exec, ExecPath: a.ExecPath, ExecArgv: a.ExecArgv, Args: a.Args, Cwd: a.Cwd,
				Env: a.Env, Silent: a.Silent, Instances: a.Instances, SchedulingPolicy: a.SchedulingPolicy,
				Restart: a.Restart, Backoff: a.Backoff, KillSignal: a.KillSignal, KillTimeout: a.KillTimeout,
				User: a.User, Group: a.Group,
			}
			want := manifest.App{
				Exec: "server.js", ExecPath: "node", ExecArgv: []string{"--enable-source-maps"},
				Args: []string{"--port", "8000"}, Cwd: "/srv/web", Env: map[string]string{"PORT": "8000"},
				Silent: true, Instances: 4, SchedulingPolicy: "none", Restart: "on-failure",
				Backoff: manifest.Backoff{Initial: time.Second, Max: time.Minute}, KillSignal: "SIGINT",
				KillTimeout: 30 * time.Second, User: "www-data", Group: "33",
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		}},
		{"instances auto", "    exec: x\n    instances: auto\n", func(t *testing.T, a *manifest.App) {
			if !a.InstancesAuto || a.Instances != manifest.DefaultInstances {
				t.Errorf("InstancesAuto=%v Instances=%d, want true and %d until resolved", a.InstancesAuto, a.Instances, manifest.DefaultInstances)
			}
		}},
		{"instances zero", "    exec: x\n    instances: 0\n", func(t *testing.T, a *manifest.App) {
			if a.Instances != 0 {
				t.Errorf("Instances = %d, want 0", a.Instances)
			}
		}},
		{"instances max", "    exec: x\n    instances: 10000\n", func(t *testing.T, a *manifest.App) {
			if a.Instances != manifest.MaxInstances {
				t.Errorf("Instances = %d, want %d", a.Instances, manifest.MaxInstances)
			}
		}},
		{"instances hex", "    exec: x\n    instances: 0x10\n", func(t *testing.T, a *manifest.App) {
			if a.Instances != 16 {
				t.Errorf("Instances = %d, want 16", a.Instances)
			}
		}},
		{"critical and failAfter", "    exec: x\n    critical: true\n    failAfter: 90s\n", func(t *testing.T, a *manifest.App) {
			if !a.Critical || a.FailAfter != 90*time.Second {
				t.Errorf("Critical=%v FailAfter=%s, want true 1m30s", a.Critical, a.FailAfter)
			}
		}},
		{"silent false", "    exec: x\n    silent: false\n", func(t *testing.T, a *manifest.App) {
			if a.Silent {
				t.Error("Silent = true")
			}
		}},
		{"fractional durations", "    exec: x\n    killTimeout: 1.5s\n    backoff: {initial: 1m30s}\n", func(t *testing.T, a *manifest.App) {
			if a.KillTimeout != 1500*time.Millisecond || a.Backoff.Initial != 90*time.Second || a.Backoff.Max != manifest.DefaultBackoffMax {
				t.Errorf("KillTimeout=%v Backoff=%+v", a.KillTimeout, a.Backoff)
			}
		}},
		{"numeric user and group", "    exec: x\n    user: 1000\n    group: 100\n", func(t *testing.T, a *manifest.App) {
			if a.User != "1000" || a.Group != "100" {
				t.Errorf("User=%q Group=%q", a.User, a.Group)
			}
		}},
		{"empty lists and maps", "    exec: x\n    args: []\n    env: {}\n", func(t *testing.T, a *manifest.App) {
			if a.Args == nil || len(a.Args) != 0 || a.Env == nil || len(a.Env) != 0 {
				t.Errorf("Args=%#v Env=%#v", a.Args, a.Env)
			}
		}},
		{"positions", "    exec: x\n    env:\n      A: b\n    backoff:\n      max: 1m\n", func(t *testing.T, a *manifest.App) {
			want := map[string]manifest.Pos{
				"exec":        {File: "m.yaml", Line: 3, Col: 11},
				"env":         {File: "m.yaml", Line: 5, Col: 7},
				"env.A":       {File: "m.yaml", Line: 5, Col: 10},
				"backoff":     {File: "m.yaml", Line: 7, Col: 7},
				"backoff.max": {File: "m.yaml", Line: 7, Col: 12},
			}
			if !reflect.DeepEqual(a.Pos, want) {
				t.Errorf("Pos = %v, want %v", a.Pos, want)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, decodeOne(t, "apps:\n  web:\n"+strings.TrimPrefix(tt.app, "\n")))
		})
	}
}

// TestDecodeEnvAsWritten: env values and args that YAML reads as numbers,
// booleans or other scalars are kept exactly as written, not re-formatted.
func TestDecodeEnvAsWritten(t *testing.T) {
	a := decodeOne(t, `
apps:
  web:
    exec: x
    env:
      PORT: 8000
      DEBUG: false
      VERBOSE: True
      RATIO: 0.50
      BIG: 1e3
      HEX: 0x1F
      OCT: 0o17
      LEADING_ZERO: 007
      INF: .inf
      QUOTED: "true"
      EMPTY: ""
      TIME: 2001-12-14
    args: [8000, false, 0.50, 1e3, -0]
`)
	wantEnv := map[string]string{
		"PORT": "8000", "DEBUG": "false", "VERBOSE": "True", "RATIO": "0.50", "BIG": "1e3",
		"HEX": "0x1F", "OCT": "0o17", "LEADING_ZERO": "007", "INF": ".inf", "QUOTED": "true",
		"EMPTY": "", "TIME": "2001-12-14",
	}
	if !reflect.DeepEqual(a.Env, wantEnv) {
		t.Errorf("Env = %v, want %v", a.Env, wantEnv)
	}
	wantArgs := []string{"8000", "false", "0.50", "1e3", "-0"}
	if !reflect.DeepEqual(a.Args, wantArgs) {
		t.Errorf("Args = %q, want %q", a.Args, wantArgs)
	}
}

func TestDecodeMergePrecedence(t *testing.T) {
	apps, err := manifest.Decode("m.yaml", []byte(`
x-base: &base
  exec: /bin/base
  instances: 2
  restart: never
  env: {A: base}
x-quiet: &quiet
  exec: /bin/quiet
  silent: true
  restart: on-failure
  killSignal: SIGINT
x-nested: &nested
  <<: *base
  killTimeout: 9s
apps:
  explicit:
    <<: *base
    instances: 3
  order:
    <<: [*quiet, *base]
  order-reversed:
    <<: [*base, *quiet]
  nested:
    <<: *nested
    restart: always
  alias: *base
`))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*manifest.App{}
	for _, a := range apps {
		got[a.Name] = a
	}
	type view struct {
		Exec, Restart, KillSignal string
		Instances                 int
		Silent                    bool
		KillTimeout               time.Duration
		Env                       map[string]string
	}
	v := func(a *manifest.App) view {
		if a == nil {
			return view{}
		}
		return view{a.Exec, a.Restart, a.KillSignal, a.Instances, a.Silent, a.KillTimeout, a.Env}
	}
	base := map[string]string{"A": "base"}
	tests := []struct {
		app  string
		want view
	}{
		// An explicit key beats the merged one.
		{"explicit", view{"/bin/base", "never", "SIGTERM", 3, false, 5 * time.Second, base}},
		// The earlier merged mapping beats the later one; keys found in only
		// one of them come through.
		{"order", view{"/bin/quiet", "on-failure", "SIGINT", 2, true, 5 * time.Second, base}},
		{"order-reversed", view{"/bin/base", "never", "SIGINT", 2, true, 5 * time.Second, base}},
		// A merged mapping may merge in turn.
		{"nested", view{"/bin/base", "always", "SIGTERM", 2, false, 9 * time.Second, base}},
		// A plain alias is a whole app.
		{"alias", view{"/bin/base", "never", "SIGTERM", 2, false, 5 * time.Second, base}},
	}
	for _, tt := range tests {
		if g := v(got[tt.app]); !reflect.DeepEqual(g, tt.want) {
			t.Errorf("app %s:\ngot  %+v\nwant %+v", tt.app, g, tt.want)
		}
	}
	// Where a merged value is written: at the anchor.
	if p := got["order"].Pos["exec"]; p.Line != 8 {
		t.Errorf("apps.order exec position = %v, want line 8 (x-quiet)", p)
	}
	if p := got["explicit"].Pos["instances"]; p.Line != 18 {
		t.Errorf("apps.explicit instances position = %v, want line 18", p)
	}
}

// TestDecodeMergeSelf: a mapping that merges itself must not loop.
func TestDecodeMergeSelf(t *testing.T) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = manifest.Decode("m.yaml", []byte("apps: &a\n  web:\n    exec: x\n    <<: *a\n"))
		_, _ = manifest.Decode("m.yaml", []byte("x: &a\n  <<: *a\n  b: 1\napps: {}\n"))
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Decode does not return on a self-merging mapping")
	}
}

func TestDecodeDocuments(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"empty", "", nil},
		{"only comments", "# nothing\n", nil},
		{"empty document markers", "---\n---\n...\n", nil},
		{"apps null", "apps:\n", nil},
		{"apps empty", "apps: {}\n", nil},
		{"x- keys are skipped", "x-anything: [1, {a: b}]\napps: {web: {exec: x}}\n", []string{"web"}},
		{"several documents", "apps: {b: {exec: x}}\n---\napps: {a: {exec: x}}\n", []string{"b", "a"}},
		{"declaration order", "apps:\n  z: {exec: x}\n  a: {exec: x}\n  m: {exec: x}\n", []string{"z", "a", "m"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			apps, err := manifest.Decode("m.yaml", []byte(tt.src))
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, a := range apps {
				names = append(names, a.Name)
			}
			if !reflect.DeepEqual(names, tt.want) {
				t.Errorf("apps %q, want %q", names, tt.want)
			}
		})
	}
}

// TestDecodeKeepsGoodApps: Decode returns the apps it could decode along
// with the errors of the others.
func TestDecodeKeepsGoodApps(t *testing.T) {
	apps, err := manifest.Decode("m.yaml", []byte("apps:\n  good: {exec: x}\n  bad: {exec: x, instances: -1}\n"))
	if err == nil {
		t.Fatal("no error")
	}
	if len(manifest.Errors(err)) != 1 {
		t.Errorf("errors: %v", err)
	}
	if len(apps) != 2 || apps[0].Name != "good" {
		t.Errorf("apps: %v", apps)
	}
}

// aliasBomb returns a manifest of apps apps that all alias one anchor with
// vars env values, each written as value.
func aliasBomb(apps, vars int, value string) []byte {
	var b strings.Builder
	b.WriteString("x-a: &a\n  exec: x\n  env:\n")
	for i := range vars {
		fmt.Fprintf(&b, "    V%d: %s\n", i, value)
	}
	b.WriteString("apps:\n")
	for i := range apps {
		fmt.Fprintf(&b, "  a%d: *a\n", i)
	}
	return []byte(b.String())
}

// TestDecodeAliasAmplification: aliases cannot make Decode's work or its
// errors grow faster than the file.
func TestDecodeAliasAmplification(t *testing.T) {
	// Moderate reuse of an anchor is fine.
	apps, err := manifest.Decode("m.yaml", aliasBomb(200, 200, "x"))
	if err != nil || len(apps) != 200 || len(apps[199].Env) != 200 {
		t.Fatalf("%d apps, err %v", len(apps), err)
	}

	// A million bad values from 25 KB: the errors are capped.
	data := aliasBomb(1000, 1000, "[1]")
	_, err = manifest.Decode("m.yaml", data)
	errs := manifest.Errors(err)
	if len(errs) > 1002 {
		t.Errorf("%d errors from %d bytes", len(errs), len(data))
	}
	if !strings.Contains(err.Error(), "too many errors, the first 1000 are reported") {
		t.Errorf("no note that errors were left out")
	}

	// A million good values from 25 KB: decoding stops.
	data = aliasBomb(1000, 1000, "x")
	alloc := allocated(func() { apps, err = manifest.Decode("m.yaml", data) })
	if err == nil || !strings.Contains(err.Error(), tooManyValues) {
		t.Errorf("%d apps, err %v", len(apps), err)
	}
	if alloc > maxBombAlloc {
		t.Errorf("Decode allocated %d MiB for %d bytes", alloc>>20, len(data))
	}
	for _, e := range manifest.Errors(err) {
		var fe *manifest.FieldError
		if !errors.As(e, &fe) || fe.Pos.Line < 1 || fe.Pos.Col < 1 {
			t.Errorf("error %v", e)
		}
	}
}

// tooManyValues is the error of a file that aliases or merge keys expand
// beyond the decoder's budget.
const tooManyValues = "too many values once aliases and merge keys (<<) are expanded"

// maxBombAlloc bounds the memory Decode may allocate for the bombs of these
// tests, files of at most 40 KB. Decode's memory follows its budget, some
// 250 bytes a value, and their budgets are below 600,000 values; an
// expansion that is not counted grows past it (merging one mapping of 3000
// keys 3000 times once allocated 963 MiB).
const maxBombAlloc = 192 << 20

// allocated returns the bytes allocated while f runs (by every goroutine:
// the tests of this package do not run in parallel).
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// mergeChain returns anchors x-0 to x-LEVELS: x-0 is a mapping of `keys`
// pairs, and each next level merges the one before it `fanout` times.
func mergeChain(levels, fanout, keys int) string {
	var b strings.Builder
	b.WriteString("x-0: &l0 {")
	for i := range keys {
		fmt.Fprintf(&b, "k%d: v, ", i)
	}
	b.WriteString("}\n")
	for l := 1; l <= levels; l++ {
		fmt.Fprintf(&b, "x-%d: &l%d {<<: [", l, l)
		for range fanout {
			fmt.Fprintf(&b, "*l%d, ", l-1)
		}
		b.WriteString("]}\n")
	}
	return b.String()
}

// TestDecodeMergeKeyAmplification: merge keys cannot make Decode's work or
// memory grow faster than the file either. Every value a merge key brings
// in counts, as a loader that copies merged mappings would count it, and
// the error names the merge key where the budget ran out.
func TestDecodeMergeKeyAmplification(t *testing.T) {
	wide := func(keys, merges int) string {
		var b strings.Builder
		b.WriteString("x-a: &a {")
		for i := range keys {
			fmt.Fprintf(&b, "k%d: v, ", i)
		}
		b.WriteString("}\napps:\n  web:\n    exec: x\n    env:\n      <<: [")
		b.WriteString(strings.Repeat("*a, ", merges))
		b.WriteString("]\n")
		return b.String()
	}
	manyApps := func(apps, keys int) string {
		var b strings.Builder
		b.WriteString("x-d: &d\n  exec: x\n  env: {")
		for i := range keys {
			fmt.Fprintf(&b, "K%d: v, ", i)
		}
		b.WriteString("}\n")
		for i := range keys {
			fmt.Fprintf(&b, "  k%d: v\n", i)
		}
		b.WriteString("apps:\n")
		for i := range apps {
			fmt.Fprintf(&b, "  a%d: {<<: *d}\n", i)
		}
		return b.String()
	}
	longChain := func(levels int) string {
		var b strings.Builder
		b.WriteString("x-0: &l0 {exec: x}\n")
		for l := 1; l <= levels; l++ {
			fmt.Fprintf(&b, "x-%d: &l%d {<<: *l%d, k%d: v}\n", l, l, l-1, l)
		}
		b.WriteString("apps:\n  web:\n    <<: *l" + fmt.Sprint(levels) + "\n")
		return b.String()
	}
	chain := mergeChain(7, 10, 10) // x-7 stands for 10^8 pairs
	tests := []struct {
		name string
		src  string
		pos  string // "line:col: field" of the error
	}{
		// Ten levels of ten merges each: 10^8 values from 500 bytes.
		{"chain into an app", chain + "apps:\n  web:\n    <<: *l7\n", "11:5: apps.web"},
		{"chain into env", chain + "apps:\n  web:\n    exec: x\n    env: {<<: *l7}\n", "12:11: apps.web.env"},
		{"chain aliased as env", chain + "apps:\n  web:\n    exec: x\n    env: *l7\n", "8:11: apps.web.env"},
		{"chain into apps", chain + "apps:\n  <<: *l7\n", "10:3: apps"},
		{"chain into the document", chain + "<<: *l7\n", "9:1: "},
		{"chain into backoff", chain + "apps:\n  web:\n    exec: x\n    backoff: {<<: *l7}\n", "12:15: apps.web.backoff"},
		// One mapping of 3000 keys merged 3000 times in one list:
		// 9 million values from 40 KB.
		{"wide list", wide(3000, 3000), "6:7: apps.web.env"},
		// 3000 mappings, each merging the one before it and adding a
		// key: the merged mappings hold 4.5 million pairs in all.
		{"long chain", longChain(3000), ""},
		// 1000 apps merge one mapping of 1000 keys (the alias bomb,
		// with merge keys).
		{"many apps", manyApps(1000, 1000), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var apps []*manifest.App
			var err error
			alloc := allocated(func() { apps, err = manifest.Decode("m.yaml", []byte(tt.src)) })
			if err == nil {
				t.Fatalf("Decode accepted %d bytes as %d apps", len(tt.src), len(apps))
			}
			if alloc > maxBombAlloc {
				t.Errorf("Decode allocated %d MiB for %d bytes", alloc>>20, len(tt.src))
			}
			var found bool
			for _, e := range manifest.Errors(err) {
				var fe *manifest.FieldError
				if !errors.As(e, &fe) || fe.Pos.File != "m.yaml" || fe.Pos.Line < 1 || fe.Pos.Col < 1 {
					t.Errorf("error %v has no position", e)
					continue
				}
				if strings.Contains(fe.Msg, tooManyValues) {
					found = true
					if got := fmt.Sprintf("%d:%d: %s", fe.Pos.Line, fe.Pos.Col, fe.Field); tt.pos != "" && got != tt.pos {
						t.Errorf("error at %s, want %s: %v", got, tt.pos, e)
					}
				}
			}
			if !found {
				t.Errorf("no %q error:\n%v", tooManyValues, err)
			}
		})
	}

	// Moderate use is fine: 200 apps that merge two mappings each, and a
	// chain of three levels that merge twice.
	var b strings.Builder
	b.WriteString(mergeChain(3, 2, 20))
	b.WriteString("x-q: &q {silent: true, restart: never}\nx-d: &d {exec: x, env: {<<: *l3}, killTimeout: 1s}\napps:\n")
	for i := range 200 {
		fmt.Fprintf(&b, "  a%d: {<<: [*q, *d], instances: 2}\n", i)
	}
	apps, err := manifest.Decode("m.yaml", []byte(b.String()))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if len(apps) != 200 || !apps[199].Silent || len(apps[199].Env) != 20 || apps[199].Instances != 2 {
		t.Errorf("%d apps, last %+v", len(apps), apps[len(apps)-1])
	}
}

func TestDecodeTooLarge(t *testing.T) {
	data := make([]byte, 8<<20+1)
	for i := range data {
		data[i] = '\n'
	}
	_, err := manifest.Decode("big.yaml", data)
	if err == nil || !strings.HasPrefix(err.Error(), "big.yaml:1:1: file is larger than") {
		t.Errorf("err = %v", err)
	}
}

// TestDecodeSyntaxErrorLine: a syntax error names the line of the problem,
// not the line where the enclosing mapping begins.
func TestDecodeSyntaxErrorLine(t *testing.T) {
	tests := []struct {
		src  string
		line int
	}{
		{"apps:\n  web:\n    exec: x\n  worker:\n    exec: x\n bad:\n", 6},
		{"# 1\n# 2\napps:\n  web: {exec: x\n", 4},
		{"apps:\n  web:\n    args: [a,\n\t@b]\n", 4},
		{"apps: {web: {exec: x}}\n---\napps:\n  a: b: c\n", 4},
		{"a: *nope\n", 1},
		{"apps:\n  web:\n    exec: 'unterminated\n", 3},
	}
	for _, tt := range tests {
		_, err := manifest.Decode("m.yaml", []byte(tt.src))
		errs := manifest.Errors(err)
		if len(errs) == 0 {
			t.Errorf("%q: no error", tt.src)
			continue
		}
		fe, ok := errs[len(errs)-1].(*manifest.FieldError)
		if !ok || !strings.HasPrefix(fe.Msg, "yaml syntax: ") {
			t.Errorf("%q: last error %v is not a syntax error", tt.src, errs[len(errs)-1])
			continue
		}
		if fe.Pos.Line != tt.line || fe.Pos.Col != 1 {
			t.Errorf("%q: error at %d:%d, want %d:1 (%v)", tt.src, fe.Pos.Line, fe.Pos.Col, tt.line, fe)
		}
	}
}

// TestDecodeTabIndent: a tab in a line's indentation is reported as such,
// at its own line and column, instead of the parser's "found character
// that cannot start any token"; a tab where YAML allows one is not.
func TestDecodeTabIndent(t *testing.T) {
	const tabMsg = "tabs cannot indent YAML; use spaces"
	tests := []struct {
		src string
		pos string // "line:col", or "" for no tab error
	}{
		{"apps:\n  web:\n\texec: x\n", "3:1"},
		{"apps:\n  web:\n    \texec: x\n", "3:5"},
		{"apps:\n\tweb:\n    exec: x\n", "2:1"},
		{"\tapps: {}\n", "1:1"},
		{"# 1\n# 2\napps:\n  web:\n    exec: x\n    args:\n\t- a\n", "7:1"},
		{"apps:\n  web:\n    exec: x\n    args:\n    -\ta\n", "5:6"},
		{"apps:\n  web:\n    exec: x\n    env:\n      A: 1\n     \tB: 2\n", "6:6"},
		{"apps:\n  web:\n    exec: x\n    env:\n      A: |\n        x\n\ty\n", "7:1"},
		{"apps:\n  web:\n    exec: x\n\t\n", "4:1"},
		{"apps: {}\n---\napps:\n  web:\n\t  exec: x\n", "5:1"},
		// A tab in the indentation of a line whose error is elsewhere.
		{"apps:\n  web:\n    args: [a,\n\t@b]\n", ""},
	}
	// Tabs YAML allows: after a key's colon, inside flow collections and
	// quoted strings, in a block scalar's text.
	ok := "apps:\n  web:\n    exec:\tx\n    args: [a,\n\tb]\n    env:\n      A: \"x\n\ty\"\n      B: |\n        z\n        \tz\n"
	if a := decodeOne(t, ok); a.Exec != "x" || len(a.Args) != 2 || a.Env["A"] != "x y" || a.Env["B"] != "z\n\tz\n" {
		t.Errorf("%q: decoded as %+v", ok, a)
	}
	for _, tt := range tests {
		_, err := manifest.Decode("m.yaml", []byte(tt.src))
		var tabErr *manifest.FieldError
		for _, e := range manifest.Errors(err) {
			if fe, ok := e.(*manifest.FieldError); ok && fe.Msg == tabMsg {
				tabErr = fe
			}
		}
		switch {
		case tt.pos == "" && tabErr != nil:
			t.Errorf("%q: %v", tt.src, tabErr)
		case tt.pos != "" && tabErr == nil:
			t.Errorf("%q: no %q error: %v", tt.src, tabMsg, err)
		case tt.pos != "":
			if got := fmt.Sprintf("%d:%d", tabErr.Pos.Line, tabErr.Pos.Col); got != tt.pos || tabErr.Field != "" || tabErr.Err == nil {
				t.Errorf("%q: error %v at %s, want %s (with the parser's error wrapped)", tt.src, tabErr, got, tt.pos)
			}
		}
	}
}

// TestValidateDurationBounds: durations below their lower bounds are
// errors at the value; the bounds themselves, and a killTimeout of 0, are
// valid.
func TestValidateDurationBounds(t *testing.T) {
	tests := []struct {
		fields string
		err    string // "line:col: field: message prefix", or "" for valid
	}{
		{"backoff: {initial: 10ms}", ""},
		{"backoff: {initial: 9ms}", "4:24: apps.web.backoff.initial: must be at least 10ms, got 9ms"},
		{"backoff: {initial: 1ns, max: 1ns}", "4:24: apps.web.backoff.initial: must be at least 10ms, got 1ns"},
		{"backoff: {initial: 0.009s}", "4:24: apps.web.backoff.initial: must be at least 10ms, got 9ms"},
		{"backoff: {initial: 10ms, max: 9ms}", "4:35: apps.web.backoff.max: must be at least backoff.initial (10ms), got 9ms"},
		{"readyTimeout: 100ms", ""},
		{"readyTimeout: 99ms", "4:19: apps.web.readyTimeout: must be at least 100ms, got 99ms"},
		{"readyTimeout: 0s", "4:19: apps.web.readyTimeout: must be at least 100ms, got 0s"},
		{"killTimeout: 0s", ""},
		{"failAfter: 1ns", ""},
		{"failAfter: 0s", "4:16: apps.web.failAfter: must be more than 0, got 0s"},
		{"failAfter: 0h0m", "4:16: apps.web.failAfter: must be more than 0, got 0s"},
		{"killTimeout: 1ns", ""},
	}
	for _, tt := range tests {
		src := "apps:\n  web:\n    exec: x\n    " + tt.fields + "\n"
		apps, err := manifest.Decode("m.yaml", []byte(src))
		if err != nil {
			t.Fatalf("%s: Decode: %v", tt.fields, err)
		}
		_, err = manifest.Validate(apps)
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("%s: %v", tt.fields, err)
		case tt.err != "" && (err == nil || !strings.HasPrefix(err.Error(), "m.yaml:"+tt.err)):
			t.Errorf("%s: error %v, want m.yaml:%s...", tt.fields, err, tt.err)
		}
	}
}

func TestBackoffDelay(t *testing.T) {
	b := manifest.Backoff{Initial: 100 * time.Millisecond, Max: 10 * time.Second}
	want := []time.Duration{
		100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
		1600 * time.Millisecond, 3200 * time.Millisecond, 6400 * time.Millisecond,
		10 * time.Second, 10 * time.Second, 10 * time.Second,
	}
	for n := 1; n <= 10; n++ {
		if got := b.Delay(n); got != want[n-1] {
			t.Errorf("Delay(%d) = %v, want %v", n, got, want[n-1])
		}
	}
	tests := []struct {
		b    manifest.Backoff
		n    int
		want time.Duration
	}{
		{b, 0, 100 * time.Millisecond}, // n < 1 counts as the first restart
		{b, -5, 100 * time.Millisecond},
		{b, math.MaxInt, 10 * time.Second},
		{b, 1 << 40, 10 * time.Second},
		// Max a power-of-two multiple of Initial is reached exactly.
		{manifest.Backoff{Initial: time.Second, Max: 8 * time.Second}, 4, 8 * time.Second},
		{manifest.Backoff{Initial: time.Second, Max: 8 * time.Second}, 5, 8 * time.Second},
		// Initial == Max: constant.
		{manifest.Backoff{Initial: time.Second, Max: time.Second}, 1, time.Second},
		{manifest.Backoff{Initial: time.Second, Max: time.Second}, 100, time.Second},
		// Max < Initial: capped from the start.
		{manifest.Backoff{Initial: time.Minute, Max: time.Second}, 1, time.Second},
		// The largest durations: doubling must not overflow.
		{manifest.Backoff{Initial: time.Nanosecond, Max: math.MaxInt64}, 63, 1 << 62},
		{manifest.Backoff{Initial: time.Nanosecond, Max: math.MaxInt64}, 64, math.MaxInt64},
		{manifest.Backoff{Initial: time.Nanosecond, Max: math.MaxInt64}, math.MaxInt, math.MaxInt64},
		{manifest.Backoff{Initial: 1 << 62, Max: math.MaxInt64}, 2, math.MaxInt64},
		{manifest.Backoff{Initial: math.MaxInt64, Max: math.MaxInt64}, math.MaxInt, math.MaxInt64},
		// A zero Initial (refused by Validate) must not loop n times.
		{manifest.Backoff{Initial: 0, Max: 10 * time.Second}, math.MaxInt, 0},
		{manifest.Backoff{}, math.MaxInt, 0},
	}
	for _, tt := range tests {
		if got := tt.b.Delay(tt.n); got != tt.want {
			t.Errorf("%+v.Delay(%d) = %v, want %v", tt.b, tt.n, got, tt.want)
		}
	}
	// Non-decreasing and never above Max.
	for _, bb := range []manifest.Backoff{b, {Initial: 3 * time.Millisecond, Max: 7 * time.Hour}, {Initial: 1, Max: math.MaxInt64}} {
		prev := time.Duration(0)
		for n := 1; n <= 100; n++ {
			d := bb.Delay(n)
			if d < prev || d > bb.Max || d <= 0 {
				t.Errorf("%+v.Delay(%d) = %v after %v", bb, n, d, prev)
			}
			prev = d
		}
	}
}

// TestGeneration: Generation changes with every field but Instances (and
// the bookkeeping fields that are not the spec), and only with them.
func TestGeneration(t *testing.T) {
	base := func() *manifest.App {
		return &manifest.App{
			Name: "web", Exec: "./server", ExecPath: "node", ExecArgv: []string{"--a"}, Args: []string{"x"},
			Cwd: "/srv", Env: map[string]string{"A": "1"}, Instances: 2, SchedulingPolicy: "rr",
			Restart: "always", Backoff: manifest.Backoff{Initial: time.Second, Max: time.Minute},
			KillSignal: "SIGTERM", KillTimeout: 5 * time.Second, User: "u", Group: "g",
			Resolved: manifest.Resolved{Path: "/usr/bin/node", Argv: []string{"/usr/bin/node", "/srv/server"}, Dir: "/srv"},
			Source:   manifest.Pos{File: "m.yaml", Line: 2, Col: 3},
			Pos:      map[string]manifest.Pos{"exec": {File: "m.yaml", Line: 3, Col: 11}},
		}
	}
	// changes lists, for every field of App, a change to it and whether the
	// change must give a new generation.
	changes := map[string]struct {
		change func(a *manifest.App)
		newGen bool
	}{
		"Name":             {func(a *manifest.App) { a.Name = "api" }, false},
		"Exec":             {func(a *manifest.App) { a.Exec = "./other" }, true},
		"ExecPath":         {func(a *manifest.App) { a.ExecPath = "bun" }, true},
		"ExecArgv":         {func(a *manifest.App) { a.ExecArgv = append(a.ExecArgv, "--b") }, true},
		"Args":             {func(a *manifest.App) { a.Args = []string{"y"} }, true},
		"Cwd":              {func(a *manifest.App) { a.Cwd = "/tmp" }, true},
		"Env":              {func(a *manifest.App) { a.Env["A"] = "2" }, true},
		"Silent":           {func(a *manifest.App) { a.Silent = true }, true},
		"Instances":        {func(a *manifest.App) { a.Instances = 7 }, false},
		"InstancesAuto":    {func(a *manifest.App) { a.InstancesAuto = true }, false},
		"SchedulingPolicy": {func(a *manifest.App) { a.SchedulingPolicy = "none" }, true},
		"Restart":          {func(a *manifest.App) { a.Restart = "never" }, true},
		"Backoff":          {func(a *manifest.App) { a.Backoff.Max = 2 * time.Minute }, true},
		"KillSignal":       {func(a *manifest.App) { a.KillSignal = "SIGINT" }, true},
		"KillTimeout":      {func(a *manifest.App) { a.KillTimeout = 6 * time.Second }, true},
		"User":             {func(a *manifest.App) { a.User = "v" }, true},
		"Group":            {func(a *manifest.App) { a.Group = "h" }, true},
		"Readiness":        {func(a *manifest.App) { a.Readiness = "notify" }, true},
		"ReadyTimeout":     {func(a *manifest.App) { a.ReadyTimeout = time.Minute }, true},
		"MinReadyTime":     {func(a *manifest.App) { a.MinReadyTime = time.Minute }, true},
		"Rollout":          {func(a *manifest.App) { a.Rollout.MaxSurge = 3 }, true},
		"Listen":           {func(a *manifest.App) { a.Listen = []manifest.Listen{{Network: "tcp", Address: ":80"}} }, true},
		"IPC":              {func(a *manifest.App) { a.IPC = "off" }, true},
		"Critical":         {func(a *manifest.App) { a.Critical = true }, false},
		"FailAfter":        {func(a *manifest.App) { a.FailAfter = time.Hour }, false},
		"DependsOn":        {func(a *manifest.App) { a.DependsOn = []string{"db"} }, false},
		"Resolved":         {func(a *manifest.App) { a.Resolved.Credential = &manifest.Credential{Uid: 5, Gid: 5} }, true},
		"Source":           {func(a *manifest.App) { a.Source.Line = 20 }, false},
		"Pos":              {func(a *manifest.App) { a.Pos["exec"] = manifest.Pos{File: "m.yaml", Line: 30, Col: 11} }, false},
		// Changing the memory limit replaces the workers as every spec
		// change does; the watchdog reaches them (WATCHDOG_USEC).
		"MaxMemory": {func(a *manifest.App) { a.MaxMemory = 1 << 30 }, true},
		"Watchdog":  {func(a *manifest.App) { a.Watchdog = 10 * time.Second }, true},
		// A probe's port: worker gives the workers a descriptor and
		// variables of their own; every other setting rolls too, as
		// killTimeout does, so that one generation has one probe.
		"HealthCheck": {func(a *manifest.App) { a.HealthCheck = &manifest.HealthCheck{TCP: &manifest.TCPProbe{}} }, true},
		// json is its one valid value: written out or left to the
		// default, the workers are the same.
		"Serialization": {func(a *manifest.App) { a.Serialization = manifest.SerializationJSON }, false},
		// Relaying is the supervisor's: the running workers take the new
		// rules at once.
		"Relay": {func(a *manifest.App) { a.Relay = []manifest.RelayRule{{To: manifest.RelayToAll}} }, false},
		// Writing the output to files is the supervisor's: the running
		// workers' lines go where the new logs: says at once.
		"Logs": {func(a *manifest.App) { a.Logs = &manifest.Logs{File: "/var/log/web.log"} }, false},
	}
	typ := reflect.TypeFor[manifest.App]()
	for i := range typ.NumField() {
		if _, ok := changes[typ.Field(i).Name]; !ok {
			t.Errorf("App.%s is new: say in this test whether it changes the generation", typ.Field(i).Name)
		}
	}

	g0 := base().Generation()
	if len(g0) != 8 || strings.Trim(g0, "0123456789abcdef") != "" {
		t.Errorf("Generation() = %q, want 8 hex digits", g0)
	}
	if g := base().Generation(); g != g0 {
		t.Errorf("Generation() not stable: %s, then %s", g0, g)
	}
	for field, c := range changes {
		a := base()
		c.change(a)
		g := a.Generation()
		if c.newGen && g == g0 {
			t.Errorf("changing %s keeps generation %s", field, g)
		}
		if !c.newGen && g != g0 {
			t.Errorf("changing %s changes the generation from %s to %s", field, g0, g)
		}
	}

	// The same spec decoded from differently formatted manifests.
	a1 := decodeOne(t, "apps:\n  web:\n    exec: x\n    env: {A: '1', B: '2'}\n    instances: 1\n")
	a2 := decodeOne(t, "# moved\napps:\n  web:\n    instances: 9\n    env:\n      B: 2\n      A: 1\n    exec: x\n")
	if a1.Generation() != a2.Generation() {
		t.Errorf("same spec, different generations: %s and %s", a1.Generation(), a2.Generation())
	}
	a3 := decodeOne(t, "apps:\n  web:\n    exec: x\n    instances: 3\n    killTimeout: 6s\n")
	if a3.Generation() == a1.Generation() {
		t.Error("killTimeout changed, generation did not")
	}
}

func TestSignalNumber(t *testing.T) {
	tests := []struct {
		name string
		sig  unix.Signal
		ok   bool
	}{
		{"SIGTERM", unix.SIGTERM, true},
		{"TERM", unix.SIGTERM, true},
		{"SIGINT", unix.SIGINT, true},
		{"INT", unix.SIGINT, true},
		{"SIGQUIT", unix.SIGQUIT, true},
		{"HUP", unix.SIGHUP, true},
		{"SIGUSR1", unix.SIGUSR1, true},
		{"USR2", unix.SIGUSR2, true},
		{"SIGKILL", unix.SIGKILL, true},
		{"SIGWINCH", unix.SIGWINCH, true},
		{"", 0, false},
		{"SIG", 0, false},
		{"SIGFOO", 0, false},
		{"FOO", 0, false},
		{"SIGSIGTERM", 0, false},
		{"sigterm", 0, false},
		{"term", 0, false},
		{" SIGTERM", 0, false},
		{"15", 0, false},
		// Signals that stop rather than end a process cannot begin a stop.
		{"SIGSTOP", 0, false},
		{"STOP", 0, false},
		{"SIGTSTP", 0, false},
		{"SIGTTIN", 0, false},
		{"TTOU", 0, false},
	}
	for _, tt := range tests {
		sig, ok := manifest.SignalNumber(tt.name)
		if sig != tt.sig || ok != tt.ok {
			t.Errorf("SignalNumber(%q) = %d, %v; want %d, %v", tt.name, sig, ok, tt.sig, tt.ok)
		}
	}
	if _, ok := manifest.SignalNumber(manifest.DefaultKillSignal); !ok {
		t.Errorf("the default kill signal %q is refused", manifest.DefaultKillSignal)
	}
}
