package schema_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
	"golang.org/x/sys/unix"

	"github.com/paddock-sh/paddock/manifest"
	"github.com/paddock-sh/paddock/schema"
)

// testHost is the host manifests are checked against: not root, and a PATH
// that every Linux system has.
var testHost = manifest.Host{Euid: 1000, Environ: []string{"PATH=/usr/bin:/bin"}}

const schemaID = "https://raw.githubusercontent.com/paddock-sh/paddock/main/schema/paddock.schema.json"

// compile compiles the embedded schema; the compiler checks it against the
// draft 2020-12 meta-schema first.
func compile(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema.JSON))
	if err != nil {
		t.Fatalf("paddock.schema.json: %v", err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(schemaID, doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(schemaID)
	if err != nil {
		t.Fatalf("compiling paddock.schema.json: %v", err)
	}
	return sch
}

// rawSchema is the schema as plain JSON values, for looking inside it.
func rawSchema(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(schema.JSON, &m); err != nil {
		t.Fatalf("paddock.schema.json: %v", err)
	}
	return m
}

// lookup follows a path of object keys from v.
func lookup(t *testing.T, v any, path ...string) any {
	t.Helper()
	for i, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("schema: %s is not an object", strings.Join(path[:i], "."))
		}
		if v, ok = m[k]; !ok {
			t.Fatalf("schema: no %s", strings.Join(path[:i+1], "."))
		}
	}
	return v
}

// yamlDocuments parses every YAML document of data into JSON values, as a
// YAML language server sees them: merge keys expanded, numbers as numbers.
func yamlDocuments(data []byte) ([]any, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []any
	for {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		j, err := toJSON(v)
		if err != nil {
			return nil, err
		}
		docs = append(docs, j)
	}
}

// toJSON turns a value decoded by yaml.v3 into the values the validator
// takes: maps with non-string keys get string keys, and numbers go through
// encoding/json so that they become json.Number.
func toJSON(v any) (any, error) {
	var norm func(v any) any
	norm = func(v any) any {
		switch v := v.(type) {
		case map[string]any:
			out := make(map[string]any, len(v))
			for k, x := range v {
				out[k] = norm(x)
			}
			return out
		case map[any]any:
			out := make(map[string]any, len(v))
			for k, x := range v {
				out[fmt.Sprint(k)] = norm(x)
			}
			return out
		case []any:
			out := make([]any, len(v))
			for i, x := range v {
				out[i] = norm(x)
			}
			return out
		}
		return v
	}
	b, err := json.Marshal(norm(v))
	if err != nil {
		return nil, err
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(b))
}

// schemaErr validates every document of data against sch.
func schemaErr(sch *jsonschema.Schema, data []byte) error {
	docs, err := yamlDocuments(data)
	if err != nil {
		return err
	}
	for i, d := range docs {
		if err := sch.Validate(d); err != nil {
			return fmt.Errorf("document %d: %w", i+1, err)
		}
	}
	return nil
}

// yamlKeys returns the manifest keys of a struct type: its yaml tags.
func yamlKeys(typ reflect.Type) []string {
	var keys []string
	for i := range typ.NumField() {
		tag := typ.Field(i).Tag.Get("yaml")
		name, _, _ := strings.Cut(tag, ",")
		if name == "" || name == "-" {
			continue
		}
		keys = append(keys, name)
	}
	sort.Strings(keys)
	return keys
}

// diff returns the elements of a missing from b.
func diff(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// TestFieldsInStep fails when a manifest key exists in the Go types but not
// in the schema, or the other way round.
func TestFieldsInStep(t *testing.T) {
	raw := rawSchema(t)
	for _, c := range []struct {
		typ  reflect.Type
		path []string
	}{
		{reflect.TypeFor[manifest.App](), []string{"$defs", "app", "properties"}},
		{reflect.TypeFor[manifest.Backoff](), []string{"$defs", "backoff", "properties"}},
		{reflect.TypeFor[manifest.Rollout](), []string{"$defs", "rollout", "properties"}},
		{reflect.TypeFor[manifest.HealthCheck](), []string{"$defs", "healthCheck", "properties"}},
		{reflect.TypeFor[manifest.HTTPProbe](), []string{"$defs", "httpProbe", "properties"}},
		{reflect.TypeFor[manifest.TCPProbe](), []string{"$defs", "tcpProbe", "properties"}},
		{reflect.TypeFor[manifest.Logs](), []string{"$defs", "logs", "properties"}},
	} {
		goKeys := yamlKeys(c.typ)
		props, ok := lookup(t, raw, c.path...).(map[string]any)
		if !ok {
			t.Fatalf("schema: %s is not an object", strings.Join(c.path, "."))
		}
		schemaKeys := slices.Sorted(maps.Keys(props))
		if len(goKeys) == 0 {
			t.Fatalf("%s has no yaml tags", c.typ)
		}
		for _, k := range diff(goKeys, schemaKeys) {
			t.Errorf("%s has the manifest key %q (a yaml tag), the schema's %s does not", c.typ, k, strings.Join(c.path, "."))
		}
		for _, k := range diff(schemaKeys, goKeys) {
			t.Errorf("the schema's %s has %q, %s has no such yaml tag", strings.Join(c.path, "."), k, c.typ)
		}
		for _, k := range schemaKeys {
			p := props[k].(map[string]any)
			for _, attr := range []string{"title", "description"} {
				if s, _ := p[attr].(string); strings.TrimSpace(s) == "" {
					t.Errorf("schema: %s.%s has no %s", strings.Join(c.path, "."), k, attr)
				}
			}
		}
	}
}

// TestSchemaKeysDecode: the decoder knows every key of the schema (decoding
// a manifest that sets it gives no "unknown field").
func TestSchemaKeysDecode(t *testing.T) {
	raw := rawSchema(t)
	appProps := lookup(t, raw, "$defs", "app", "properties").(map[string]any)
	for _, k := range slices.Sorted(maps.Keys(appProps)) {
		src := fmt.Sprintf("apps:\n  web:\n    exec: x\n    %s: null\n", k)
		if _, err := manifest.Decode("t.yaml", []byte(src)); err != nil && strings.Contains(err.Error(), "unknown") {
			t.Errorf("app key %s: %v", k, err)
		}
	}
	boProps := lookup(t, raw, "$defs", "backoff", "properties").(map[string]any)
	for _, k := range slices.Sorted(maps.Keys(boProps)) {
		src := fmt.Sprintf("apps:\n  web:\n    exec: x\n    backoff: {%s: 1s}\n", k)
		if _, err := manifest.Decode("t.yaml", []byte(src)); err != nil && strings.Contains(err.Error(), "unknown") {
			t.Errorf("backoff key %s: %v", k, err)
		}
	}
}

// TestSchemaValuesInStep compares the enums, bounds and defaults of the
// schema with the constants of package manifest.
func TestSchemaValuesInStep(t *testing.T) {
	raw := rawSchema(t)
	app := func(path ...string) any {
		return lookup(t, raw, append([]string{"$defs", "app", "properties"}, path...)...)
	}
	strs := func(v any) []string {
		var out []string
		for _, x := range v.([]any) {
			out = append(out, x.(string))
		}
		return out
	}
	dur := func(v any) time.Duration {
		d, err := time.ParseDuration(v.(string))
		if err != nil {
			t.Errorf("schema default %v: %v", v, err)
		}
		return d
	}

	for _, k := range []string{"$schema", "$id", "title", "description"} {
		if s, _ := raw[k].(string); s == "" {
			t.Errorf("schema: no %s", k)
		}
	}
	if raw["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("$schema = %v", raw["$schema"])
	}
	if raw["$id"] != schemaID {
		t.Errorf("$id = %v, want %v", raw["$id"], schemaID)
	}
	if got := strs(app("schedulingPolicy", "enum")); !slices.Equal(got, manifest.SchedulingPolicies) {
		t.Errorf("schedulingPolicy enum %q, manifest.SchedulingPolicies %q", got, manifest.SchedulingPolicies)
	}
	if got := strs(app("restart", "enum")); !slices.Equal(got, manifest.RestartPolicies) {
		t.Errorf("restart enum %q, manifest.RestartPolicies %q", got, manifest.RestartPolicies)
	}
	if got := app("instances", "oneOf").([]any)[0].(map[string]any)["maximum"]; got != float64(manifest.MaxInstances) {
		t.Errorf("instances maximum %v, manifest.MaxInstances %d", got, manifest.MaxInstances)
	}
	if got := app("instances", "default"); got != float64(manifest.DefaultInstances) {
		t.Errorf("instances default %v, want %d", got, manifest.DefaultInstances)
	}
	if got := app("schedulingPolicy", "default"); got != manifest.DefaultSchedulingPolicy {
		t.Errorf("schedulingPolicy default %v, want %s", got, manifest.DefaultSchedulingPolicy)
	}
	if got := app("restart", "default"); got != manifest.DefaultRestart {
		t.Errorf("restart default %v, want %s", got, manifest.DefaultRestart)
	}
	if got := app("killSignal", "default"); got != manifest.DefaultKillSignal {
		t.Errorf("killSignal default %v, want %s", got, manifest.DefaultKillSignal)
	}
	if got := dur(app("killTimeout", "default")); got != manifest.DefaultKillTimeout {
		t.Errorf("killTimeout default %v, want %v", got, manifest.DefaultKillTimeout)
	}
	if got := app("silent", "default"); got != false {
		t.Errorf("silent default %v, want false", got)
	}
	if got := app("critical", "default"); got != false {
		t.Errorf("critical default %v, want false", got)
	}
	if got := dur(app("failAfter", "default")); got != manifest.DefaultFailAfter {
		t.Errorf("failAfter default %v, want %v", got, manifest.DefaultFailAfter)
	}
	bo := lookup(t, raw, "$defs", "backoff").(map[string]any)
	if got := dur(lookup(t, bo, "properties", "initial", "default")); got != manifest.DefaultBackoffInitial {
		t.Errorf("backoff.initial default %v, want %v", got, manifest.DefaultBackoffInitial)
	}
	if got := dur(lookup(t, bo, "properties", "max", "default")); got != manifest.DefaultBackoffMax {
		t.Errorf("backoff.max default %v, want %v", got, manifest.DefaultBackoffMax)
	}
	if got := dur(lookup(t, bo, "default", "initial")); got != manifest.DefaultBackoffInitial {
		t.Errorf("backoff default initial %v, want %v", got, manifest.DefaultBackoffInitial)
	}
	if got := dur(lookup(t, bo, "default", "max")); got != manifest.DefaultBackoffMax {
		t.Errorf("backoff default max %v, want %v", got, manifest.DefaultBackoffMax)
	}
	ro := lookup(t, raw, "$defs", "rollout").(map[string]any)
	if got := strs(lookup(t, ro, "properties", "onStall", "enum")); !slices.Equal(got, manifest.OnStallModes) {
		t.Errorf("rollout.onStall enum %q, manifest.OnStallModes %q", got, manifest.OnStallModes)
	}
	if got := lookup(t, ro, "properties", "onStall", "default"); got != manifest.DefaultOnStall {
		t.Errorf("rollout.onStall default %v, want %s", got, manifest.DefaultOnStall)
	}
	if got := lookup(t, ro, "default", "onStall"); got != manifest.DefaultOnStall {
		t.Errorf("rollout default onStall %v, want %s", got, manifest.DefaultOnStall)
	}
	// The lower bounds are said where an editor shows them.
	if desc := lookup(t, bo, "properties", "initial", "description").(string); !strings.Contains(desc, "At least "+manifest.MinBackoffInitial.String()) {
		t.Errorf("backoff.initial description %q does not say At least %s", desc, manifest.MinBackoffInitial)
	}
	if desc := app("readyTimeout", "description").(string); !strings.Contains(desc, "At least "+manifest.MinReadyTimeout.String()) {
		t.Errorf("readyTimeout description %q does not say At least %s", desc, manifest.MinReadyTimeout)
	}
	if got := strs(app("serialization", "enum")); !slices.Equal(got, manifest.Serializations) {
		t.Errorf("serialization enum %q, manifest.Serializations %q", got, manifest.Serializations)
	}
	if got := app("serialization", "default"); got != manifest.DefaultSerialization {
		t.Errorf("serialization default %v, want %s", got, manifest.DefaultSerialization)
	}
	if got := strs(app("readiness", "enum")); !slices.Equal(got, manifest.ReadinessModes) {
		t.Errorf("readiness enum %q, manifest.ReadinessModes %q", got, manifest.ReadinessModes)
	}
	hc := func(path ...string) any {
		return lookup(t, raw, append([]string{"$defs", "healthCheck", "properties"}, path...)...)
	}
	if got := dur(hc("interval", "default")); got != manifest.DefaultHealthInterval {
		t.Errorf("healthCheck.interval default %v, want %v", got, manifest.DefaultHealthInterval)
	}
	if got := dur(hc("timeout", "default")); got != manifest.DefaultHealthTimeout {
		t.Errorf("healthCheck.timeout default %v, want %v", got, manifest.DefaultHealthTimeout)
	}
	if got := dur(hc("startPeriod", "default")); got != manifest.DefaultHealthStartPeriod {
		t.Errorf("healthCheck.startPeriod default %v, want %v", got, manifest.DefaultHealthStartPeriod)
	}
	if got := hc("failureThreshold", "default"); got != float64(manifest.DefaultHealthFailureThreshold) {
		t.Errorf("healthCheck.failureThreshold default %v, want %d", got, manifest.DefaultHealthFailureThreshold)
	}
	if got := lookup(t, raw, "$defs", "httpProbe", "properties", "path", "default"); got != manifest.DefaultHealthPath {
		t.Errorf("healthCheck.http.path default %v, want %s", got, manifest.DefaultHealthPath)
	}
	if desc := hc("interval", "description").(string); !strings.Contains(desc, "At least "+manifest.MinHealthInterval.String()) {
		t.Errorf("healthCheck.interval description %q does not say At least %s", desc, manifest.MinHealthInterval)
	}
	lg := func(path ...string) any {
		return lookup(t, raw, append([]string{"$defs", "logs", "properties"}, path...)...)
	}
	if got := strs(lg("streams", "enum")); !slices.Equal(got, manifest.LogStreams) {
		t.Errorf("logs.streams enum %q, manifest.LogStreams %q", got, manifest.LogStreams)
	}
	if got := lg("streams", "default"); got != manifest.DefaultLogStreams {
		t.Errorf("logs.streams default %v, want %s", got, manifest.DefaultLogStreams)
	}
	if got, ok := manifest.ParseSize(lg("maxSize", "default").(string)); !ok || got != manifest.DefaultLogMaxSize {
		t.Errorf("logs.maxSize default %v, want %d", lg("maxSize", "default"), manifest.DefaultLogMaxSize)
	}
	if got := lg("maxFiles", "default"); got != float64(manifest.DefaultLogMaxFiles) {
		t.Errorf("logs.maxFiles default %v, want %d", got, manifest.DefaultLogMaxFiles)
	}
	if got := lg("maxFiles", "maximum"); got != float64(manifest.MaxLogFiles) {
		t.Errorf("logs.maxFiles maximum %v, want %d", got, manifest.MaxLogFiles)
	}
	if got := strs(lookup(t, raw, "$defs", "app", "required")); !slices.Equal(got, []string{"exec"}) {
		t.Errorf("app required %q, want [exec]", got)
	}
}

// TestNoAdditionalProperties: every object schema that lists properties
// refuses the others.
func TestNoAdditionalProperties(t *testing.T) {
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if _, ok := v["properties"]; ok {
				if v["additionalProperties"] != false {
					t.Errorf("schema %s: properties without additionalProperties: false", path)
				}
			}
			for _, k := range slices.Sorted(maps.Keys(v)) {
				walk(path+"/"+k, v[k])
			}
		case []any:
			for i, x := range v {
				walk(fmt.Sprintf("%s/%d", path, i), x)
			}
		}
	}
	walk("#", rawSchema(t))
}

// loadMirrored loads the example at path (inside the repository) as
// manifest.Load would in a built checkout. Its programs under bin/ are
// build outputs (make build) that a fresh clone lacks, so the example is
// loaded from a copy of the repository layout (symbolic links) whose bin/
// holds a stub for each of them.
func loadMirrored(t *testing.T, path string) error {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(root, abs)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == "bin" {
			continue
		}
		if err := os.Symlink(filepath.Join(root, e.Name()), filepath.Join(tmp, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(tmp, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	apps, _ := manifest.Decode(path, data) // problems are for Load to report
	for _, a := range apps {
		if !strings.Contains(a.Exec, "/") || filepath.IsAbs(a.Exec) {
			continue
		}
		p := filepath.Join(tmp, filepath.Dir(rel), a.Exec)
		if filepath.Dir(p) != bin {
			continue
		}
		t.Logf("%s: stub for %s", path, filepath.Join("bin", filepath.Base(p)))
		if err := os.WriteFile(p, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	_, err = manifest.Load([]string{filepath.Join(tmp, rel)}, testHost)
	return err
}

// TestExamples: every example validates against the schema and loads.
func TestExamples(t *testing.T) {
	sch := compile(t)
	files, err := filepath.Glob("../examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no examples/*.yaml")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := schemaErr(sch, data); err != nil {
				t.Errorf("schema: %s: %v", f, err)
			}
			if err := loadMirrored(t, f); err != nil {
				t.Errorf("manifest.Load(%s):\n%v", f, err)
			}
		})
	}
}

// TestValidCorpus: the manifests that package manifest loads without error
// validate against the schema too.
func TestValidCorpus(t *testing.T) {
	sch := compile(t)
	files, err := filepath.Glob("../manifest/testdata/valid/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no manifest/testdata/valid/*.yaml")
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := schemaErr(sch, data); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// TestInvalidCorpus: invalid manifests whose problem is in the structure (a
// type, a key, an enum, a name, a bound) are refused by the schema as well
// as by package manifest. Problems on the host (a missing file, a user) and
// YAML syntax errors are beyond a schema.
func TestInvalidCorpus(t *testing.T) {
	sch := compile(t)
	for _, name := range []string{
		"apps-list",
		"backoff-initial-zero",
		"critical-not-bool",
		"duration-bare-number",
		"duration-negative",
		"duration-words",
		"durations-too-short",
		"exec-empty",
		"exec-missing",
		"exec-null",
		"fail-after-not-duration",
		"fail-after-zero",
		"group-without-user",
		"health-bad-values",
		"health-durations",
		"health-no-probe",
		"instances-negative",
		"instances-too-many",
		"many-errors",
		"maxmemory-bad",
		"watchdog-too-short",
		"watchdog-without-notify",
		"name-leading-dash",
		"name-too-long",
		"name-underscore",
		"name-uppercase",
		"restart-bad",
		"scheduling-policy-bad",
		"signal-stop",
		"signal-unknown",
		"top-level-list",
		"type-args-mapping",
		"type-env-value-list",
		"type-exec-mapping",
		"type-instances-list",
		"type-instances-string",
		"type-silent-yes",
		"unknown-app-field",
		"unknown-backoff-key",
		"unknown-top-level-key",
		"depends-not-a-list",
		"depends-bad-item",
		"depends-duplicate",
		"serialization-advanced",
		"ipc-relay-bad",
		"ipc-relay-without-channel",
		"logs-bad",
		"logs-top-level-bad",
	} {
		f := "../manifest/testdata/invalid/" + name + ".yaml"
		data, err := os.ReadFile(f)
		if err != nil {
			t.Error(err)
			continue
		}
		if _, err := manifest.Load([]string{f}, testHost); err == nil {
			t.Errorf("%s: manifest.Load accepts it", f)
		}
		docs, err := yamlDocuments(data)
		if err != nil {
			t.Errorf("%s: not a YAML syntax case, yet: %v", f, err)
			continue
		}
		if err := schemaErr(sch, data); err == nil {
			t.Errorf("%s: the schema accepts it (%d documents)", f, len(docs))
		}
	}
}

// decoderAccepts reports whether package manifest finds no problem with
// src short of the host checks.
func decoderAccepts(src string) bool {
	apps, err := manifest.Decode("t.yaml", []byte(src))
	if err != nil {
		return false
	}
	_, err = manifest.Validate(apps)
	return err == nil
}

// TestSchemaAgreesWithDecoder checks values one at a time against both the
// schema and the decoder. Known differences, where the schema is looser or
// stricter than the decoder, are left out: a duration too large for Go
// ("9999999999999999999h"), "-0s", a number for a string field (`cwd: 5`),
// and a null value for an optional field (the decoder then keeps the
// default).
func TestSchemaAgreesWithDecoder(t *testing.T) {
	sch := compile(t)
	check := func(what, src string) {
		t.Helper()
		schemaOK := schemaErr(sch, []byte(src)) == nil
		if dec := decoderAccepts(src); schemaOK != dec {
			t.Errorf("%s: schema accepts: %v, decoder accepts: %v\n%s", what, schemaOK, dec, src)
		}
	}
	app := func(fields string) string { return "apps:\n  web:\n    exec: x\n" + fields }

	for _, n := range []string{
		"web", "a", "0", "web-2", "a--b", "9lives", strings.Repeat("a", 63),
		"Web", "web_api", "-web", "web-", "-", "wéb", "web.api", "web api", strings.Repeat("a", 64),
	} {
		b, _ := json.Marshal(n)
		check("app name "+n, fmt.Sprintf("apps:\n  %s:\n    exec: x\n", b))
	}
	for _, d := range []string{
		"5s", "500ms", "1m30s", "1.5h", "2h45m10s", "10us", "10µs", "10μs", "1ns", "0s", "0", ".5s", "5.s", "+5s",
		"5", "5 seconds", "-5s", "5S", "", "1d", "s", ".s", "5s ", "1h-5m", "1e3s",
	} {
		b, _ := json.Marshal(d)
		check("killTimeout "+d, app("    killTimeout: "+string(b)+"\n"))
		check("readyTimeout "+d, app("    readyTimeout: "+string(b)+"\n"))
		check("failAfter "+d, app("    failAfter: "+string(b)+"\n"))
		check("backoff.initial "+d, app("    backoff: {initial: "+string(b)+", max: 2000000h}\n"))
		// max below initial is a rule between two fields, beyond the
		// schema.
		if v, err := time.ParseDuration(d); err != nil || v >= manifest.MinBackoffInitial {
			check("backoff.max "+d, app("    backoff: {initial: 10ms, max: "+string(b)+"}\n"))
		}
	}
	for _, d := range []string{"1ns", "0s", "0", "0.0s", "0h0m0s", "00ms", "0.000001s", "-1s"} {
		b, _ := json.Marshal(d)
		check("backoff.initial "+d, app("    backoff: {initial: "+string(b)+"}\n"))
	}
	for _, d := range []string{"1ns", "0s", "0", "+0s", ".0s", "0.s", "0.0s", "0h0m0s", "00ms", "0h0m1ns", "0.000001s", "5m", "1e3s"} {
		b, _ := json.Marshal(d)
		check("failAfter "+d, app("    failAfter: "+string(b)+"\n"))
	}
	check("killTimeout as a number", app("    killTimeout: 5\n"))
	for _, v := range []string{"0", "1", "10000", "auto", "0x10", "-1", "10001", "four", `"4"`, "1.5", "true", "[1]", "AUTO"} {
		check("instances "+v, app("    instances: "+v+"\n"))
	}
	for _, v := range []string{"true", "false", "yes", `"true"`, "1", "[]"} {
		check("silent "+v, app("    silent: "+v+"\n"))
		check("critical "+v, app("    critical: "+v+"\n"))
	}
	for _, v := range []string{"rr", "none", "reuseport", "RR", "round-robin", "1"} {
		check("schedulingPolicy "+v, app("    schedulingPolicy: "+v+"\n"))
	}
	for _, v := range []string{"json", "advanced", "JSON", "v8", "1", "[json]"} {
		check("serialization "+v, app("    serialization: "+v+"\n"))
	}
	for _, v := range []string{"always", "on-failure", "never", "Always", "on_failure", "no"} {
		check("restart "+v, app("    restart: "+v+"\n"))
	}
	for _, v := range []string{"[]", "[a, 1, true, 1.5, -0]", "[[a]]", "[{a: b}]", "[null]", "a", "{a: b}"} {
		check("args "+v, app("    args: "+v+"\n"))
		check("execArgv "+v, app("    execPath: sh\n    execArgv: "+v+"\n"))
	}
	for _, v := range []string{"{}", "{A: 1, B: true, C: x, D: 1.5}", "{A: [1]}", "{A: {b: c}}", "{A: null}", `{"A=B": x}`, `{"": x}`, "[A]", "A=B"} {
		check("env "+v, app("    env: "+v+"\n"))
	}
	for _, v := range []string{
		"user: root", "user: 1000", "user: 0", "user: [root]", "user: {name: root}",
		"user: root\n    group: wheel", "user: root\n    group: 10", "group: wheel", "user: root\n    group: [a]",
	} {
		check(v, app("    "+v+"\n"))
	}
	// maxMemory: a size too large for an int64 is a known difference (the
	// schema takes it).
	for _, v := range []string{
		"1", "4096", "0x1000", `"2048"`, "512Mi", "1Ki", "2Gi", "007Mi", "0", "-1", "0Mi", "000Ki", "512M", "512MB", "512mi",
		"1.5Gi", "1.5", "Mi", "+1Mi", "-1Mi", "1 Mi", "1Ti", "true", "[1]", "{a: 1}", `""`,
	} {
		check("maxMemory "+v, app("    maxMemory: "+v+"\n"))
	}
	// logs: a size in Ki that is a whole number of Mi (1024Ki) and a file
	// named "." or ".." are known differences (the schema is stricter on
	// the first, looser on the others).
	for _, v := range []string{
		"false", "true", "[a.log]", "a.log", "{}", "{file: a.log}", "{file: /var/log/a.log}", `{file: ""}`, "{file: logs/}",
		"{file: a.log, maxSize: 1Mi}", "{file: a.log, maxSize: 50Mi}", "{file: a.log, maxSize: 2Gi}", "{file: a.log, maxSize: 1048576}",
		"{file: a.log, maxSize: 0}", "{file: a.log, maxSize: 1536Ki}", "{file: a.log, maxSize: 1000000}", "{file: a.log, maxSize: 512M}",
		"{file: a.log, maxSize: 1.5Mi}", "{file: a.log, maxSize: -1Mi}",
		"{file: a.log, maxFiles: 0}", "{file: a.log, maxFiles: 5}", "{file: a.log, maxFiles: 10000}", "{file: a.log, maxFiles: 10001}",
		"{file: a.log, maxFiles: -1}", "{file: a.log, maxFiles: five}", "{file: a.log, compress: true}", "{file: a.log, compress: yes}",
		"{file: a.log, streams: merged}", "{file: a.log, streams: separate}", "{file: a.log, streams: both}", "{file: a.log, maxAge: 7}",
		"{maxSize: 1Mi}",
	} {
		check("logs "+v, app("    logs: "+v+"\n"))
		if v != "false" {
			check("top-level logs "+v, "logs: "+v+"\napps: {}\n")
		}
	}
	check("top-level logs null", "logs: null\napps: {}\n")
	// watchdog: other than 0s, only with readiness notify.
	for _, v := range []string{
		"watchdog: 10s", "watchdog: 0s", "watchdog: 0", "watchdog: 0h0m0s", "watchdog: 10",
		"readiness: notify\n    watchdog: 10s", "readiness: notify\n    watchdog: 0s", "readiness: online\n    watchdog: 10s",
		"readiness: listening\n    watchdog: 0.1s", "readiness: online\n    watchdog: 0s", "readiness: null\n    watchdog: 10s",
		"readiness: notify\n    watchdog: 99ms",
	} {
		check(v, app("    "+v+"\n"))
	}
	for _, v := range []string{"{}", "{initial: 1s}", "{max: 1m}", "{initial: 1s, max: 2s}", "{initial: 1s, maximum: 2s}", "1s", "[1s]"} {
		check("backoff "+v, app("    backoff: "+v+"\n"))
	}
	for _, v := range []string{
		"{http: {}}", "{http: true}", "{http: false}", "{http: {path: /healthz, port: 8080}}", "{http: {port: worker}}",
		"{http: {port: listen}}", "{http: {port: 0}}", "{http: {port: 65536}}", "{http: {port: web}}", "{http: {port: '8080'}}",
		"{http: {path: healthz}}", "{http: {path: '/a b'}}", "{http: {path: '/a?b=1&c'}}", "{http: {paht: /}}",
		"{tcp: true}", "{tcp: {}}", "{tcp: {port: 9000}}", "{tcp: {port: listen}}", "{tcp: {port: true}}", "{tcp: 1}",
		"{exec: [check]}", "{exec: [check, -v, 1]}", "{exec: []}", "{exec: check}", "{exec: ['']}", "{exec: [[a]]}",
		"{}", "{interval: 5s}", "{http: {}, tcp: true}", "{http: {}, exec: [x]}", "{exec: [x], failureThreshold: 0}",
		"{exec: [x], failureThreshold: 1}", "{exec: [x], failureThreshold: -1}", "{exec: [x], failureThreshold: 1.5}",
		"{exec: [x], timeout: 0s}", "{exec: [x], timeout: 1ns}", "{exec: [x], timeout: 5s, interval: 1s}",
		"{exec: [x], startPeriod: 0s}", "{exec: [x], startPeriod: 1m}", "{exec: [x], startPeriod: -1s}",
		"{exec: [x], extra: 1}", "[exec]", "true",
	} {
		check("healthCheck "+v, app("    listen: [\"127.0.0.1:8000\"]\n    ipc: node\n    healthCheck: "+v+"\n"))
	}
	for _, v := range []string{"http", "tcp", "exec", "HTTP", "probe"} {
		probe := "true"
		if v == "exec" {
			probe = "[x]"
		}
		check("readiness "+v, app("    readiness: "+v+"\n    listen: [8000]\n    ipc: node\n    healthCheck: {"+v+": "+probe+"}\n"))
	}
	for _, src := range []string{
		"", "apps:\n", "apps: {}\n", "x-anything: 1\napps: {}\n", "x-: 1\n", "version: 1\n", "apps: []\n", "- a\n", "a\n",
		"apps: {web: {}}\n", "apps: {web: null}\n", "apps: {web: x}\n", "apps: {web: {exec: ''}}\n",
		"apps: {web: {exec: x, extra: 1}}\n", "apps: {web: {exec: x, x-note: 1}}\n",
	} {
		check("document", src)
	}
}

// boundaryDurations returns spellings of durations around bound, in every
// unit Go knows: the bound written exactly or cut after 0 to 12 decimals,
// rounded down and up, a little and much below and above it, with leading
// zeros, a "+" sign, trailing zeros and zero components around it.
func boundaryDurations(bound time.Duration) []string {
	units := []struct {
		name string
		ns   int64
	}{{"ns", 1}, {"us", 1e3}, {"µs", 1e3}, {"μs", 1e3}, {"ms", 1e6}, {"s", 1e9}, {"m", 60e9}, {"h", 3600e9}}
	var out []string
	for _, u := range units {
		exact := new(big.Rat).SetFrac64(int64(bound), u.ns)
		var nums []string
		for digits := 0; digits <= 12; digits++ {
			ulp := new(big.Rat).SetFrac64(1, 1)
			for range digits {
				ulp.Quo(ulp, big.NewRat(10, 1))
			}
			for _, r := range []*big.Rat{
				exact,
				new(big.Rat).Sub(exact, ulp), new(big.Rat).Add(exact, ulp),
				new(big.Rat).Mul(exact, big.NewRat(1, 2)), new(big.Rat).Mul(exact, big.NewRat(99, 100)),
				new(big.Rat).Mul(exact, big.NewRat(101, 100)), new(big.Rat).Mul(exact, big.NewRat(3, 1)),
			} {
				if r.Sign() < 0 {
					continue
				}
				n := r.FloatString(digits)
				nums = append(nums, n, "0"+n)
				if strings.Contains(n, ".") {
					nums = append(nums, n+"00")
				}
				if rest, ok := strings.CutPrefix(n, "0."); ok {
					nums = append(nums, "."+rest)
				}
			}
		}
		for _, n := range nums {
			out = append(out, n+u.name)
		}
		out = append(out, "+"+nums[0]+u.name, "0h0m"+nums[0]+u.name, nums[0]+u.name+"0ns", "0.0s"+nums[0]+u.name+"0us")
	}
	return out
}

// TestDurationBoundsAgree: the schema refuses exactly the durations below
// manifest.MinBackoffInitial and manifest.MinReadyTimeout that the decoder
// refuses, however they are spelt, with one known difference: the sum of
// several non-zero components ("5ms4ms"), which the schema takes.
func TestDurationBoundsAgree(t *testing.T) {
	sch := compile(t)
	app := func(fields string) string { return "apps:\n  web:\n    exec: x\n" + fields }
	for _, c := range []struct {
		field string
		bound time.Duration
		src   func(string) string
	}{
		{"backoff.initial", manifest.MinBackoffInitial, func(d string) string { return app("    backoff: {initial: " + d + ", max: 1h}\n") }},
		{"readyTimeout", manifest.MinReadyTimeout, func(d string) string { return app("    readyTimeout: " + d + "\n") }},
		// 0s, however spelt, is no watchdog: both accept it.
		{"watchdog", manifest.MinWatchdog, func(d string) string { return app("    readiness: notify\n    watchdog: " + d + "\n") }},
		{"healthCheck.interval", manifest.MinHealthInterval, func(d string) string {
			return app("    healthCheck: {exec: [x], interval: " + d + "}\n")
		}},
	} {
		durations := boundaryDurations(c.bound)
		var below, above int
		for _, d := range durations {
			b, _ := json.Marshal(d)
			src := c.src(string(b))
			schemaOK := schemaErr(sch, []byte(src)) == nil
			decoderOK := decoderAccepts(src)
			if schemaOK != decoderOK {
				t.Errorf("%s %s: schema accepts: %v, decoder accepts: %v", c.field, d, schemaOK, decoderOK)
			}
			if decoderOK {
				above++
			} else {
				below++
			}
		}
		// Both sides of the bound are tried, in every unit.
		if below < 100 || above < 100 {
			t.Errorf("%s: %d durations refused, %d accepted, of %d", c.field, below, above, len(durations))
		}
	}
}

// TestKillSignalsAgree: the schema's signal pattern accepts exactly the
// names manifest.SignalNumber accepts, with and without the SIG prefix.
func TestKillSignalsAgree(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the schema lists Linux signals")
	}
	sch := compile(t)
	names := []string{"", "SIG", "SIGFOO", "FOO", "sigterm", "term", "15", "SIGSIGTERM", "SIGRTMIN", "SIGCLD", "SIGIOT", "SIGPOLL"}
	for s := unix.Signal(1); s < 65; s++ {
		if n := unix.SignalName(s); n != "" {
			names = append(names, n, strings.TrimPrefix(n, "SIG"))
		}
	}
	accepted := 0
	for _, n := range names {
		_, goOK := manifest.SignalNumber(n)
		doc, err := toJSON(map[string]any{"apps": map[string]any{"web": map[string]any{"exec": "x", "killSignal": n}}})
		if err != nil {
			t.Fatal(err)
		}
		schemaOK := sch.Validate(doc) == nil
		if goOK != schemaOK {
			t.Errorf("killSignal %q: manifest.SignalNumber accepts: %v, schema accepts: %v", n, goOK, schemaOK)
		}
		if goOK {
			accepted++
		}
	}
	if accepted < 40 {
		t.Errorf("only %d signal names accepted", accepted)
	}
}

// TestEmbedded: JSON is the file beside it, and valid JSON.
func TestEmbedded(t *testing.T) {
	data, err := os.ReadFile("paddock.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, schema.JSON) {
		t.Error("schema.JSON differs from paddock.schema.json")
	}
	if !json.Valid(schema.JSON) {
		t.Error("schema.JSON is not valid JSON")
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, schema.JSON, "", "  "); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), schema.JSON) {
		t.Error("paddock.schema.json is not indented with two spaces (python3 -m json.tool --indent 2, or jq .)")
	}
}

// TestDependsOnAgrees checks values of dependsOn against both the schema
// and the decoder, beside a declared app db. Beyond the schema: a name of
// no app of the set, the app itself, and cycles (Validate refuses them).
func TestDependsOnAgrees(t *testing.T) {
	sch := compile(t)
	for _, v := range []string{"[]", "[db]", "[db, db]", "db", "[[db]]", "[{db: x}]", "[null]", "[1]", "[Db]", "[db_2]", "{db: x}"} {
		src := "apps:\n  web:\n    exec: x\n    dependsOn: " + v + "\n  db:\n    exec: x\n"
		schemaOK := schemaErr(sch, []byte(src)) == nil
		if dec := decoderAccepts(src); schemaOK != dec {
			t.Errorf("dependsOn %s: schema accepts: %v, decoder accepts: %v", v, schemaOK, dec)
		}
	}
}
