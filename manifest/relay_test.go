package manifest_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/paddock-sh/paddock/manifest"
)

// socketIORules is what the preset socket.io expands to: the routing of
// @socket.io/cluster-adapter's setupPrimary().
var socketIORules = []manifest.RelayRule{
	{Match: []manifest.RelayMatch{{Path: "source", Value: "_sio_adapter"}, {Path: "type", Value: 8.0}},
		To: manifest.RelayToAlias, ToPath: "requesterUid", Alias: "uid", Preset: "socket.io"},
	{Match: []manifest.RelayMatch{{Path: "source", Value: "_sio_adapter"}, {Path: "type", Value: 10.0}},
		To: manifest.RelayToAlias, ToPath: "requesterUid", Alias: "uid", Preset: "socket.io"},
	{Match: []manifest.RelayMatch{{Path: "source", Value: "_sio_adapter"}},
		To: manifest.RelayToOthers, Alias: "uid", Preset: "socket.io"},
}

// TestDecodeIPC: `ipc` is a mode, as it always was, or a mapping of mode
// and relay; relay is a preset or a list of presets and rules.
func TestDecodeIPC(t *testing.T) {
	for _, c := range []struct {
		name, ipc string
		mode      string
		relay     []manifest.RelayRule
	}{
		{"scalar node", "node", "node", nil},
		{"scalar off", "off", "off", nil},
		{"scalar auto", "auto", "auto", nil},
		{"left out", "", "auto", nil},
		{"null", "null", "auto", nil},
		{"empty mapping", "{}", "auto", nil},
		{"mode only", "{mode: node}", "node", nil},
		{"relay null", "{mode: node, relay: null}", "node", nil},
		{"relay empty list", "{mode: node, relay: []}", "node", nil},
		{"preset", "{mode: node, relay: socket.io}", "node", socketIORules},
		{"preset, mode auto by default", "{relay: socket.io}", "auto", socketIORules},
		{"preset in a list", "{mode: node, relay: [socket.io]}", "node", socketIORules},
		{"one rule, to others by default", "{mode: node, relay: [{match: {kind: chat}}]}", "node",
			[]manifest.RelayRule{{Match: []manifest.RelayMatch{{Path: "kind", Value: "chat"}}, To: "others"}}},
		{"conditions sorted by path, values typed", `{mode: node, relay: [{match: {z: 1, a.b: true, m: null, f: 1.5, s: "8", h: 0x10}, to: all}]}`, "node",
			[]manifest.RelayRule{{Match: []manifest.RelayMatch{
				{Path: "a.b", Value: true}, {Path: "f", Value: 1.5}, {Path: "h", Value: 16.0}, {Path: "m", Value: nil},
				{Path: "s", Value: "8"}, {Path: "z", Value: 1.0}}, To: "all"}}},
		{"to a worker named by the message", "{mode: node, relay: [{match: {kind: direct}, to: {worker: data.to}}]}", "node",
			[]manifest.RelayRule{{Match: []manifest.RelayMatch{{Path: "kind", Value: "direct"}}, To: "worker", ToPath: "data.to"}}},
		{"aliases", "{mode: node, relay: [{match: {kind: reply}, to: {alias: for}, alias: name}]}", "node",
			[]manifest.RelayRule{{Match: []manifest.RelayMatch{{Path: "kind", Value: "reply"}}, To: "alias", ToPath: "for", Alias: "name"}}},
		{"rules and presets in order", "{mode: node, relay: [{match: {kind: x}}, socket.io]}", "node",
			append([]manifest.RelayRule{{Match: []manifest.RelayMatch{{Path: "kind", Value: "x"}}, To: "others"}}, socketIORules...)},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := "apps:\n  web:\n    exec: ./server.js\n"
			if c.ipc != "" {
				src += "    ipc: " + c.ipc + "\n"
			}
			a := decodeOne(t, src)
			if a.IPC != c.mode {
				t.Errorf("IPC = %q, want %q", a.IPC, c.mode)
			}
			if !reflect.DeepEqual(a.Relay, c.relay) {
				t.Errorf("Relay = %#v\nwant %#v", a.Relay, c.relay)
			}
			if _, err := manifest.Validate([]*manifest.App{a}); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

// TestDecodeIPCErrors: each bad value of ipc is reported at its place,
// naming the field.
func TestDecodeIPCErrors(t *testing.T) {
	long := strings.Repeat("a", manifest.MaxRelayPath+1)
	many := "["
	for i := range manifest.MaxRelayRules + 1 {
		if i > 0 {
			many += ", "
		}
		many += "{match: {k: " + strings.Repeat("1", i+1) + "}}"
	}
	many += "]"
	for _, c := range []struct {
		name, ipc string
		want      string // "LINE:COL: FIELD: message" fragment
	}{
		{"bad mode", "nodejs", `5:10: apps.web.ipc: must be one of auto, node, off, got "nodejs"`},
		{"a list", "[node]", `5:10: apps.web.ipc: must be one of auto, node, off, or a mapping (mode, relay), got a list`},
		{"bad mode in the mapping", "{mode: on}", `5:17: apps.web.ipc.mode: must be one of auto, node, off, got "on"`},
		{"unknown key", "{mode: node, relays: socket.io}", `5:23: apps.web.ipc.relays: unknown field (ipc has mode and relay)`},
		{"unknown preset", "{relay: socketio}", `5:18: apps.web.ipc.relay: unknown preset "socketio" (presets: socket.io)`},
		{"relay a number", "{relay: 5}", `5:18: apps.web.ipc.relay: must be a preset (socket.io) or a list of presets and rules, got 5`},
		{"relay a mapping", "{relay: {match: {a: b}}}", `apps.web.ipc.relay: must be a preset (socket.io) or a list of presets and rules, got a mapping`},
		{"item a list", "{relay: [[a]]}", `5:19: apps.web.ipc.relay[0]: must be a preset (socket.io) or a rule (match, to, alias), got a list`},
		{"unknown preset in a list", "{relay: [sio]}", `5:19: apps.web.ipc.relay[0]: unknown preset "sio"`},
		{"rule without match", "{relay: [{to: all}]}", `5:19: apps.web.ipc.relay[0]: a rule needs match: with at least one path`},
		{"empty match", "{relay: [{match: {}}]}", `5:19: apps.web.ipc.relay[0]: a rule needs match:`},
		{"match a list", "{relay: [{match: [a]}]}", `5:27: apps.web.ipc.relay[0].match: must be a mapping of paths to values`},
		{"match value a mapping", "{relay: [{match: {a: {b: c}}}]}", `5:31: apps.web.ipc.relay[0].match.a: must be a string, a number, true, false or null, got a mapping`},
		{"match value a list", "{relay: [{match: {a: [1]}}]}", `apps.web.ipc.relay[0].match.a: must be a string, a number, true, false or null, got a list`},
		{"match value infinite", "{relay: [{match: {a: .inf}}]}", `apps.web.ipc.relay[0].match.a: must be a finite number, got .inf`},
		{"match value NaN", "{relay: [{match: {a: .nan}}]}", `apps.web.ipc.relay[0].match.a: must be a finite number, got .nan`},
		{"empty path", `{relay: [{match: {"": x}}]}`, `apps.web.ipc.relay[0].match.: a path must not be empty`},
		{"empty segment", "{relay: [{match: {a..b: x}}]}", `apps.web.ipc.relay[0].match.a..b: a path is object keys separated by dots, none of them empty, got "a..b"`},
		{"trailing dot", "{relay: [{match: {a.: x}}]}", `none of them empty, got "a."`},
		{"long path", "{relay: [{match: {" + long + ": x}}]}", `a path is at most 256 bytes, got 257`},
		{"internal cmd", "{relay: [{match: {cmd: NODE_CLUSTER}}]}", `apps.web.ipc.relay[0].match.cmd: messages whose cmd starts with NODE_ are Node's internal ones, never relayed`},
		{"to unknown", "{relay: [{match: {a: b}, to: some}]}", `apps.web.ipc.relay[0].to: must be others, all, {worker: PATH} or {alias: PATH}, got "some"`},
		{"to worker scalar", "{relay: [{match: {a: b}, to: worker}]}", `apps.web.ipc.relay[0].to: must be others, all, {worker: PATH} or {alias: PATH}, got "worker"`},
		{"to two targets", "{relay: [{match: {a: b}, to: {worker: x, alias: y}}]}", `apps.web.ipc.relay[0].to: must be others, all, {worker: PATH} or {alias: PATH}, got a mapping`},
		{"to unknown target", "{relay: [{match: {a: b}, to: {app: x}}]}", `apps.web.ipc.relay[0].to: must be others, all`},
		{"to worker bad path", "{relay: [{match: {a: b}, to: {worker: .x}}]}", `apps.web.ipc.relay[0].to.worker: a path is object keys separated by dots`},
		{"to worker a list", "{relay: [{match: {a: b}, to: {worker: [x]}}]}", `apps.web.ipc.relay[0].to.worker: must be a string, got a list`},
		{"alias bad path", "{relay: [{match: {a: b}, alias: x.}]}", `apps.web.ipc.relay[0].alias: a path is object keys separated by dots`},
		{"unknown rule key", "{relay: [{match: {a: b}, from: x}]}", `apps.web.ipc.relay[0].from: unknown field (a rule has match, to and alias)`},
		{"too many rules", "{relay: " + many + "}", `apps.web.ipc.relay: holds 65 rules, presets expanded; at most 64`},
		{"too many conditions", "{relay: [{match: {a: 1, b: 1, c: 1, d: 1, e: 1, f: 1, g: 1, h: 1, i: 1, j: 1, k: 1, l: 1, m: 1, n: 1, o: 1, p: 1, q: 1}}]}",
			`apps.web.ipc.relay[0].match: holds 17 conditions; at most 16`},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := "apps:\n  web:\n    exec: ./server.js\n    instances: 2\n    ipc: " + c.ipc + "\n"
			_, err := manifest.Decode("m.yaml", []byte(src))
			if err == nil {
				t.Fatalf("Decode accepts ipc: %s", c.ipc)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("Decode error:\n%v\nwant it to contain %q", err, c.want)
			}
		})
	}
}

// TestValidateRelayNeedsChannel: relaying needs the IPC channel; the error
// says why the workers have none and points at relay.
func TestValidateRelayNeedsChannel(t *testing.T) {
	for _, c := range []struct {
		name, exec, ipc, want string
	}{
		{"off", "./server.js", "{mode: off, relay: socket.io}", "5:29: apps.web.ipc.relay: needs the IPC channel, which the workers do not get (ipc is off): set ipc.mode: node"},
		{"auto, not node", "./server", "{relay: socket.io}", "5:18: apps.web.ipc.relay: needs the IPC channel, which the workers do not get (ipc is auto and the interpreter is not node): set ipc.mode: node"},
		{"node", "./server", "{mode: node, relay: socket.io}", ""},
		{"auto, node", "./server.js", "{relay: socket.io}", ""},
		{"off without relay", "./server.js", "{mode: off}", ""},
		{"off, relay empty", "./server.js", "{mode: off, relay: []}", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := decodeOne(t, "apps:\n  web:\n    exec: "+c.exec+"\n    instances: 2\n    ipc: "+c.ipc+"\n")
			_, err := manifest.Validate([]*manifest.App{a})
			switch {
			case c.want == "" && err != nil:
				t.Errorf("Validate: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("Validate: %v\nwant %q", err, c.want)
			}
		})
	}
}

// TestRelayReconfigures: changing ipc.relay keeps the workers (a
// reconfigured app, not an update); changing ipc.mode replaces them.
func TestRelayReconfigures(t *testing.T) {
	set := func(ipc string) *manifest.Set {
		a := decodeOne(t, "apps:\n  web:\n    exec: ./server.js\n    ipc: "+ipc+"\n")
		s, err := manifest.Validate([]*manifest.App{a})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, c := range []struct{ from, to, want string }{
		{"node", "{mode: node, relay: socket.io}", "web: reconfigured (ipc.relay)"},
		{"{mode: node, relay: socket.io}", "{mode: node, relay: [{match: {a: b}}]}", "web: reconfigured (ipc.relay)"},
		{"{mode: node, relay: socket.io}", "node", "web: reconfigured (ipc.relay)"},
		{"node", "{mode: node}", ""},
		{"{mode: node, relay: socket.io}", "{mode: node, relay: [socket.io]}", ""},
		{"{relay: socket.io}", "{mode: node, relay: socket.io}", "web: updated (ipc)"},
	} {
		var got []string
		for _, ch := range manifest.Diff(set(c.from), set(c.to)) {
			got = append(got, ch.String())
		}
		if strings.Join(got, "; ") != c.want {
			t.Errorf("ipc %s → %s: %q, want %q", c.from, c.to, got, c.want)
		}
	}
}
