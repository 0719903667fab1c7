package schema_test

import (
	"strings"
	"testing"
)

// TestIPCAgrees checks values of ipc, the mode alone or a mapping of mode
// and relay, against both the schema and the decoder. Known differences:
// a path's length counts bytes for the decoder, characters for the
// schema; a list of presets whose rules, expanded, are more than
// manifest.MaxRelayRules; and relay without the IPC channel (ipc auto
// for a program node does not run), which depends on the interpreter.
func TestIPCAgrees(t *testing.T) {
	sch := compile(t)
	long := strings.Repeat("a", 256)
	for _, v := range []string{
		"auto", "node", "off", "on", "NODE", "1", "true", "[node]",
		"{}", "{mode: node}", "{mode: off}", "{mode: on}", "{mode: [node]}", "{mode: node, extra: 1}",
		"{mode: node, relay: socket.io}", "{relay: socket.io}", "{mode: node, relay: socketio}", "{mode: node, relay: 1}",
		"{mode: node, relay: []}", "{mode: node, relay: [socket.io]}", "{mode: node, relay: [socket.io, socket.io]}",
		"{mode: node, relay: {match: {a: b}}}", "{mode: node, relay: [[a]]}", "{mode: node, relay: [1]}",
		"{mode: node, relay: [{match: {a: b}}]}", "{mode: node, relay: [{match: {}}]}", "{mode: node, relay: [{to: all}]}",
		"{mode: node, relay: [{match: {a: b}, extra: 1}]}", "{mode: node, relay: [{match: [a]}]}",
		"{mode: node, relay: [{match: {a: 1, b: 1.5, c: true, d: null, e: '', f: -0}}]}",
		"{mode: node, relay: [{match: {a: [1]}}]}", "{mode: node, relay: [{match: {a: {b: c}}}]}",
		"{mode: node, relay: [{match: {a.b.c: x}}]}", "{mode: node, relay: [{match: {a..b: x}}]}",
		"{mode: node, relay: [{match: {.a: x}}]}", "{mode: node, relay: [{match: {a.: x}}]}", `{mode: node, relay: [{match: {"": x}}]}`,
		"{mode: node, relay: [{match: {" + long + ": x}}]}", "{mode: node, relay: [{match: {" + long + "a: x}}]}",
		`{mode: node, relay: [{match: {"a\0b": x}}]}`, `{mode: node, relay: [{match: {a: "x\0"}}]}`,
		"{mode: node, relay: [{match: {cmd: NODE_CLUSTER}}]}", "{mode: node, relay: [{match: {cmd: NODE}}]}",
		"{mode: node, relay: [{match: {cmd: node_x}}]}", "{mode: node, relay: [{match: {cmd: 1}}]}", "{mode: node, relay: [{match: {cmd: [NODE_X]}}]}",
		"{mode: node, relay: [{match: {a: 1, b: 1, c: 1, d: 1, e: 1, f: 1, g: 1, h: 1, i: 1, j: 1, k: 1, l: 1, m: 1, n: 1, o: 1, p: 1}}]}",
		"{mode: node, relay: [{match: {a: 1, b: 1, c: 1, d: 1, e: 1, f: 1, g: 1, h: 1, i: 1, j: 1, k: 1, l: 1, m: 1, n: 1, o: 1, p: 1, q: 1}}]}",
		"{mode: node, relay: [{match: {a: b}, to: others}]}", "{mode: node, relay: [{match: {a: b}, to: all}]}",
		"{mode: node, relay: [{match: {a: b}, to: some}]}", "{mode: node, relay: [{match: {a: b}, to: worker}]}",
		"{mode: node, relay: [{match: {a: b}, to: {worker: to}}]}", "{mode: node, relay: [{match: {a: b}, to: {alias: d.for}}]}",
		"{mode: node, relay: [{match: {a: b}, to: {worker: x, alias: y}}]}", "{mode: node, relay: [{match: {a: b}, to: {app: x}}]}",
		"{mode: node, relay: [{match: {a: b}, to: {worker: ''}}]}", "{mode: node, relay: [{match: {a: b}, to: {worker: [x]}}]}",
		"{mode: node, relay: [{match: {a: b}, to: {}}]}", "{mode: node, relay: [{match: {a: b}, to: [all]}]}",
		"{mode: node, relay: [{match: {a: b}, alias: uid}]}", "{mode: node, relay: [{match: {a: b}, alias: u.id}]}",
		"{mode: node, relay: [{match: {a: b}, alias: 'u..id'}]}", "{mode: node, relay: [{match: {a: b}, alias: [uid]}]}",
		"{mode: off, relay: socket.io}", "{mode: off, relay: []}",
	} {
		src := "apps:\n  web:\n    exec: x.js\n    ipc: " + v + "\n"
		schemaOK := schemaErr(sch, []byte(src)) == nil
		if dec := decoderAccepts(src); schemaOK != dec {
			t.Errorf("ipc %s: schema accepts: %v, decoder accepts: %v", v, schemaOK, dec)
		}
	}
}
