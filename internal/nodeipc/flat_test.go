package nodeipc

import (
	"encoding/json"
	"testing"
)

// TestScanFlat: the lines a busy channel carries most are flat objects and
// take the fast path; anything else is refused by it (and left to
// encoding/json), also where it is valid JSON.
func TestScanFlat(t *testing.T) {
	for _, tc := range []struct {
		line string
		flat bool
		cmd  string
	}{
		{`{"cmd":"NODE_CLUSTER","ack":12,"accepted":true,"seq":7}`, true, "NODE_CLUSTER"},
		{`{"accepted":false,"ack":3,"cmd":"NODE_CLUSTER","seq":0}`, true, "NODE_CLUSTER"},
		{`{"cmd":"NODE_HANDLE_ACK"}`, true, "NODE_HANDLE_ACK"},
		{`{"cmd":"NODE_HANDLE_NACK"}`, true, "NODE_HANDLE_NACK"},
		{`{"cmd":"hello world","n":-5,"x":null}`, true, "hello world"},
		{`{"cmd":5}`, true, ""},
		{`{"cmd":"a","cmd":"NODE_HANDLE_ACK"}`, true, "NODE_HANDLE_ACK"},
		{`{"cmd":"NODE_HANDLE_ACK","cmd":7}`, true, ""},
		{`{}`, true, ""},
		{`{"a":"é"}`, false, ""},
		{`{"a":"\n"}`, false, ""},
		{`{"a":"\u0041"}`, false, ""},
		{`{"a":1.5}`, false, ""},
		{`{"a":01}`, false, ""},
		{`{"a":-}`, false, ""},
		{`{"a":1234567890123456789}`, false, ""},
		{`{"a":{"b":1}}`, false, ""},
		{`{"a":[1]}`, false, ""},
		{`{ "a":1}`, false, ""},
		{`{"a":1,}`, false, ""},
		{`{"a":tru}`, false, ""},
		{`{"a":truex}`, false, ""},
		{`{"a"}`, false, ""},
		{`{"":1}`, false, ""},
		{`{"a":1`, false, ""},
		{`["a"]`, false, ""},
		{`{`, false, ""},
		{``, false, ""},
	} {
		cmd, flat := flatCmd([]byte(tc.line))
		if flat != tc.flat || cmd != tc.cmd {
			t.Errorf("%s: flat %t cmd %q, want %t %q", tc.line, flat, cmd, tc.flat, tc.cmd)
		}
	}
}

// FuzzScanFlat: a line the fast path takes is valid JSON, its cmd is the
// one JSON.parse would find, and its members are the object's.
func FuzzScanFlat(f *testing.F) {
	for _, s := range []string{`{"cmd":"NODE_CLUSTER","ack":12,"accepted":true,"seq":7}`, `{"cmd":"NODE_HANDLE_ACK"}`, `{"a":-0,"b":null}`, `{"cmd":1,"cmd":"x"}`, `{"Cmd":"x"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		cmd, flat := flatCmd(line)
		if !flat {
			return
		}
		if !json.Valid(line) {
			t.Fatalf("%q: flat, but not valid JSON", line)
		}
		// Keys compared exactly, the last of equal keys counting, as
		// JSON.parse does.
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		want, _ := m["cmd"].(string)
		if cmd != want {
			t.Fatalf("%q: cmd %q, encoding/json %q", line, cmd, want)
		}
		ScanFlat(line, func(key, value []byte) bool {
			if _, ok := m[string(key)]; !ok {
				t.Fatalf("%q: key %q not in %v", line, key, m)
			}
			if _, ok := ParseInt(value); ok != (value[0] == '-' || isDigit(value[0])) {
				t.Fatalf("%q: ParseInt(%q) %t", line, value, ok)
			}
			return true
		})
	})
}
