package supervisor

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// relayMessages are messages of the kinds the relay reads, and a few it
// must refuse.
var relayMessages = []string{
	`{}`, ` { } `, `{"a":1}`, `{"source":"_sio_adapter","type":3,"uid":"x1","data":{"packet":{"data":["news","a \"quoted\" ]} text"]}}}`,
	`{"a":{"b":{"c":[1,{"d":"}"}]}},"e":"\u00e9\\","f":-1.5e3,"g":true,"h":null,"i":false}`,
	`{"a":1,"a":2}`, `{"k\u0061":"v"}`, "{\n\t\"a\" :\r\n [ ] ,\"b\":{ }\n}",
	`[1,2]`, `"s"`, `1`, `null`, `true`, `{"a":1}x`, `{"a" 1}`, `{"a":1,}`, `{"a"}`, `{`, `{"a":`, `{"a":[}`, `{1:2}`,
}

// TestSplitObject: splitObject reads an object's members as
// encoding/json does, the values as written, and refuses anything else.
func TestSplitObject(t *testing.T) {
	for _, raw := range relayMessages {
		checkSplitObject(t, []byte(raw))
	}
}

// checkSplitObject compares splitObject with encoding/json for raw, when
// raw is valid JSON (the channel lets no other message through).
func checkSplitObject(t *testing.T, raw []byte) {
	t.Helper()
	got, ok := splitObject(raw)
	var want map[string]json.RawMessage
	wantOK := json.Valid(raw) && json.Unmarshal(raw, &want) == nil && bytes.HasPrefix(bytes.TrimLeft(raw, " \t\r\n"), []byte("{"))
	if !json.Valid(raw) {
		return // never reaches the relay; splitObject only must not panic
	}
	if ok != wantOK {
		t.Fatalf("splitObject(%q) ok = %v, encoding/json: %v", raw, ok, wantOK)
	}
	if !ok {
		return
	}
	if len(got) != len(want) {
		t.Fatalf("splitObject(%q) = %q, encoding/json: %q", raw, got, want)
	}
	for k, v := range want {
		if !bytes.Equal(bytes.TrimSpace(got[k]), bytes.TrimSpace(v)) {
			t.Fatalf("splitObject(%q)[%q] = %q, encoding/json: %q", raw, k, got[k], v)
		}
		gs, gok := decodeScalar(got[k])
		var ws any
		_ = json.Unmarshal(v, &ws)
		switch ws.(type) {
		case map[string]any, []any:
			if gok {
				t.Fatalf("decodeScalar(%q) = %v, a scalar; it is not", got[k], gs)
			}
		default:
			if !gok || !reflect.DeepEqual(gs, ws) {
				t.Fatalf("decodeScalar(%q) = %#v, %v; encoding/json: %#v", got[k], gs, gok, ws)
			}
		}
	}
}

// FuzzRelayMessage: for any valid JSON, splitObject and decodeScalar
// agree with encoding/json, and no input makes them panic.
func FuzzRelayMessage(f *testing.F) {
	for _, raw := range relayMessages {
		f.Add([]byte(raw))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkSplitObject(t, raw)
		m, ok := parseRelayMessage(raw)
		if ok {
			m.scalar(splitPath("a.b"))
		}
	})
}
