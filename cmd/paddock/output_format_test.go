package main

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/paddock-sh/paddock/internal/control"
)

// TestJSONToYAML: -o yaml keeps the JSON's keys and their order, numbers
// as written, and quotes a string only where YAML would read it as
// something else.
func TestJSONToYAML(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{`{"b":1,"a":2}`, "b: 1\na: 2\n"},
		{`{"rssBytes":88080384,"cpuPercent":12.5,"big":12345678901234567890}`,
			"rssBytes: 88080384\ncpuPercent: 12.5\nbig: 12345678901234567890\n"},
		{`{"s":"yes","n":"123","z":"null","e":"","t":"plain text","c":"a: b"}`,
			"s: yes\nn: \"123\"\nz: \"null\"\ne: \"\"\nt: plain text\nc: 'a: b'\n"},
		{`{"apps":[{"name":"web","listen":[]},{"name":"api","listen":["127.0.0.1:80"]}]}`,
			"apps:\n  - name: web\n    listen: []\n  - name: api\n    listen:\n      - 127.0.0.1:80\n"},
		{`{"lines":["\u003chtml\u003e","tab\there","é"]}`, "lines:\n  - <html>\n  - \"tab\\there\"\n  - é\n"},
		{`{"failAt":null,"ok":true}`, "failAt: null\nok: true\n"},
		// A worker's line with DEL and C1 controls, which YAML has escaped.
		{"{\"line\":\"a\x7fb\xc2\x85c\xc2\x90\"}", "line: \"a\\x7Fb\\Nc\\x90\"\n"},
	} {
		got, err := jsonToYAML([]byte(tt.in))
		if err != nil || string(got) != tt.want {
			t.Errorf("jsonToYAML(%s) = %v\n%s\nwant:\n%s", tt.in, err, got, tt.want)
		}
	}
}

// TestFormatEventWideEveryField: -o wide shows every field an event can
// have, under its JSON name; a field added to control.Event is shown
// without anyone having to remember it.
func TestFormatEventWideEveryField(t *testing.T) {
	var e control.Event
	fill(t, reflect.ValueOf(&e).Elem())
	raw, _ := json.Marshal(e)
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		t.Fatal(err)
	}
	line := formatEventWide(e)
	if strings.Contains(line, "\n") {
		t.Errorf("not one line: %q", line)
	}
	if !strings.HasPrefix(line, e.Time.Local().Format("2006-01-02T15:04:05.000")) || !strings.Contains(line, " x web/7 ") {
		t.Errorf("the line does not start with time, type, app/worker: %s", line)
	}
	for name := range fields {
		switch name {
		case "time", "type", "app", "worker":
			continue
		}
		if !strings.Contains(line, " "+name+"=") {
			t.Errorf("-o wide lacks %s: %s", name, line)
		}
	}
	for _, want := range []string{`detail="two words"`, `lines=["two words","x"]`, "pid=7", "intended=true", `lastExit={"worker":7,`} {
		if !strings.Contains(line, want) {
			t.Errorf("-o wide lacks %s: %s", want, line)
		}
	}
	t.Log(line)
}

// fill sets every field of v, recursively, to a value that is not zero:
// strings "x" (Detail and Lines with a space, to be quoted), numbers 7,
// true, the time now.
func fill(t *testing.T, v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(time.Date(2026, 12, 2, 10, 41, 3, 123e6, time.UTC)))
			return
		}
		for i := range v.NumField() {
			fill(t, v.Field(i))
		}
		if f := v.FieldByName("Detail"); f.IsValid() {
			f.SetString("two words")
		}
		if f := v.FieldByName("App"); f.IsValid() {
			f.SetString("web")
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(t, v.Elem())
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		fill(t, v.Index(0))
		fill(t, v.Index(1))
		if v.Type().Elem().Kind() == reflect.String {
			v.Index(0).SetString("two words")
		}
	case reflect.String:
		v.SetString("x")
	case reflect.Int, reflect.Int64:
		v.SetInt(7)
	case reflect.Float64:
		v.SetFloat(7)
	case reflect.Bool:
		v.SetBool(true)
	default:
		t.Fatalf("fill: no value for a %s", v.Type())
	}
}

// TestOutputFlags: -o takes json, yaml and wide; --json is -o json and
// contradicts any other.
func TestOutputFlags(t *testing.T) {
	for _, tt := range []struct {
		output string
		json   bool
		want   string
		ok     bool
	}{
		{"", false, outputTable, true},
		{"json", false, outputJSON, true},
		{"yaml", false, outputYAML, true},
		{"wide", false, outputWide, true},
		{"", true, outputJSON, true},
		{"json", true, outputJSON, true},
		{"yaml", true, "", false},
		{"xml", false, "", false},
		{"JSON", false, "", false},
	} {
		var stderr bytes.Buffer
		f := outputFlags{output: tt.output, json: tt.json}
		got, ok := f.format(&stderr, "status")
		if got != tt.want || ok != tt.ok || ok != (stderr.Len() == 0) {
			t.Errorf("-o %q --json=%t: %q %t %q, want %q %t", tt.output, tt.json, got, ok, stderr.String(), tt.want, tt.ok)
		}
	}
}

// FuzzJSONToYAML: whatever JSON the control API sends (as Go's encoder
// writes it), -o yaml converts it, and the YAML reads back as the same
// value.
func FuzzJSONToYAML(f *testing.F) {
	for _, s := range []string{`{"apps":[{"name":"web","listen":[],"rssBytes":88080384}]}`, `{"s":"yes","n":"0x10","t":"~"}`,
		`{"lines":["- a","#b","key: v","\u2028","'q'","\"dq\"",""]}`, `[1.5e300,-0,true,null,{}]`, `"text"`, "\"a\u0085b\u007f\""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v any
		if json.Unmarshal(data, &v) != nil {
			return
		}
		raw, err := json.Marshal(v)
		if err != nil {
			return
		}
		y, err := jsonToYAML(raw)
		if err != nil {
			t.Fatalf("jsonToYAML(%s): %v", raw, err)
		}
		var back any
		if err := yaml.Unmarshal(y, &back); err != nil {
			t.Fatalf("the YAML of %s does not read back: %v\n%s", raw, err, y)
		}
		again, err := json.Marshal(back)
		if err != nil {
			t.Fatalf("the YAML of %s reads back as %#v, not JSON: %v", raw, back, err)
		}
		var w any
		if json.Unmarshal(again, &w) != nil || !reflect.DeepEqual(v, w) {
			t.Fatalf("%s became YAML\n%s\nwhich reads back as %s", raw, y, again)
		}
	})
}
