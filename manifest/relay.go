package manifest

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// This file is `ipc.relay`: which of a worker's messages paddock forwards
// to other workers of its app, as the primary of a Node cluster does for
// libraries built on "the primary relays messages between workers"
// (@socket.io/cluster-adapter's setupPrimary()).

// Where a relayed message goes (RelayRule.To).
const (
	// RelayToOthers: every other worker of the app (the default).
	RelayToOthers = "others"
	// RelayToAll: every worker of the app, the sender included.
	RelayToAll = "all"
	// RelayToWorker: the worker whose id (cluster.worker.id,
	// PADDOCK_WORKER_ID) is the message's value at RelayRule.ToPath.
	RelayToWorker = "worker"
	// RelayToAlias: the worker that sent an earlier message whose value
	// at its rule's Alias path equals this message's value at ToPath.
	RelayToAlias = "alias"
)

// RelayPresetSocketIO is the preset for @socket.io/cluster-adapter: what
// its setupPrimary() does.
const RelayPresetSocketIO = "socket.io"

// RelayPresets lists the preset names `ipc.relay` accepts.
var RelayPresets = []string{RelayPresetSocketIO}

// Bounds of `ipc.relay`, so that a manifest cannot make the relaying of
// every message costly.
const (
	// MaxRelayRules bounds the rules of an app, presets expanded.
	MaxRelayRules = 64
	// MaxRelayMatch bounds the conditions of one rule.
	MaxRelayMatch = 16
	// MaxRelayPath bounds the length of a path, in bytes.
	MaxRelayPath = 256
)

// RelayRule is one rule of `ipc.relay`. A message a worker sends
// (process.send) that is an object, not one of Node's internal ones (cmd
// NODE_...), and matches a rule's every condition is forwarded as the rule
// says, unchanged, instead of being reported as a message event; the first
// rule that matches decides.
type RelayRule struct {
	// Match lists the conditions, sorted by path: the message's value at
	// each path equals the condition's value. At least one.
	Match []RelayMatch `json:"match"`
	// To is where the message goes: RelayToOthers (default), RelayToAll,
	// RelayToWorker or RelayToAlias.
	To string `json:"to"`
	// ToPath, for RelayToWorker and RelayToAlias, is the path of the
	// message's value that names the target.
	ToPath string `json:"toPath,omitempty"`
	// Alias, when set, is the path of a value that names the sender from
	// now on, for later messages with `to: {alias: ...}` (as
	// @socket.io/cluster-adapter's primary remembers each worker's
	// adapter uids to send it the responses to its requests).
	Alias string `json:"alias,omitempty"`
	// Preset names the preset the rule comes from; "" for a rule written
	// out.
	Preset string `json:"preset,omitempty"`
}

// RelayMatch is one condition of a RelayRule.
type RelayMatch struct {
	// Path is a dot-separated list of object keys, from the message down:
	// "source", "data.kind". A message without a value there does not
	// match.
	Path string `json:"path"`
	// Value is the JSON value the message must have there: a string, a
	// float64 (numbers compare by value: 8 matches 8.0), a bool, or nil
	// for null.
	Value any `json:"value"`
}

// relayPreset returns the rules of a preset, nil for an unknown name.
func relayPreset(name string) []RelayRule {
	switch name {
	case RelayPresetSocketIO:
		// setupPrimary() of @socket.io/cluster-adapter 0.3.0: every
		// message of source "_sio_adapter" tells the primary the
		// sender's uid; the responses to a request (FETCH_SOCKETS_RESPONSE
		// 8, SERVER_SIDE_EMIT_RESPONSE 10) go to the worker whose uid is
		// the requesterUid; every other message goes to every other
		// worker.
		source := RelayMatch{Path: "source", Value: "_sio_adapter"}
		response := func(typ float64) RelayRule {
			return RelayRule{Match: []RelayMatch{source, {Path: "type", Value: typ}}, To: RelayToAlias,
				ToPath: "requesterUid", Alias: "uid", Preset: name}
		}
		return []RelayRule{
			response(8),
			response(10),
			{Match: []RelayMatch{source}, To: RelayToOthers, Alias: "uid", Preset: name},
		}
	}
	return nil
}

// HasRelay reports whether the app relays any message between its workers.
func (a *App) HasRelay() bool { return len(a.Relay) > 0 }

// decodeIPC decodes `ipc:`: a mode (auto, node, off), or a mapping with
// mode and relay.
func decodeIPC(f *fieldDecoder, n *yaml.Node) {
	if n.Kind == yaml.MappingNode {
		f.mapping(n, "ipc has mode and relay", map[string]func(*fieldDecoder, *yaml.Node){
			"mode":  setEnum(IPCModes, func(a *App) *string { return &a.IPC }),
			"relay": decodeRelay,
		})
		return
	}
	if n.Kind != yaml.ScalarNode {
		f.errorf(n, "must be one of %s, or a mapping (mode, relay), got %s", strings.Join(IPCModes, ", "), kindName(n))
		return
	}
	if s := f.oneOf(n, IPCModes); s != "" {
		f.app.IPC = s
	}
}

// decodeRelay decodes `ipc.relay:`: a preset name, or a list of preset
// names and rules.
func decodeRelay(f *fieldDecoder, n *yaml.Node) {
	const want = "must be a preset (%s) or a list of presets and rules, got %s"
	switch n.Kind {
	case yaml.ScalarNode:
		if rules := f.relayPreset(n); rules != nil {
			f.app.Relay = rules
		}
		return
	case yaml.SequenceNode:
	default:
		f.errorf(n, want, strings.Join(RelayPresets, ", "), kindName(n))
		return
	}
	var rules []RelayRule
	for i, item := range n.Content {
		if !f.d.spend(item) {
			return
		}
		item = deref(item)
		key := fmt.Sprintf("%s[%d]", f.key, i)
		f.app.Pos[key] = f.d.pos(item)
		sub := &fieldDecoder{d: f.d, app: f.app, field: fmt.Sprintf("%s[%d]", f.field, i), key: key}
		switch item.Kind {
		case yaml.ScalarNode:
			rules = append(rules, sub.relayPreset(item)...)
		case yaml.MappingNode:
			if r, ok := sub.relayRule(item); ok {
				rules = append(rules, r)
			}
		default:
			sub.errorf(item, "must be a preset (%s) or a rule (match, to, alias), got %s", strings.Join(RelayPresets, ", "), kindName(item))
		}
	}
	if len(rules) > MaxRelayRules {
		f.errorf(n, "holds %d rules, presets expanded; at most %d", len(rules), MaxRelayRules)
		return
	}
	f.app.Relay = rules
}

// relayPreset returns the rules of the preset n names, or nil after an
// error.
func (f *fieldDecoder) relayPreset(n *yaml.Node) []RelayRule {
	if n.Tag != "!!str" {
		f.errorf(n, "must be a preset (%s) or a list of presets and rules, got %s", strings.Join(RelayPresets, ", "), kindName(n))
		return nil
	}
	rules := relayPreset(n.Value)
	if rules == nil {
		f.errorf(n, "unknown preset %q (presets: %s)", n.Value, strings.Join(RelayPresets, ", "))
	}
	return rules
}

// relayRule decodes one rule: match, to, alias.
func (f *fieldDecoder) relayRule(n *yaml.Node) (RelayRule, bool) {
	r := RelayRule{To: RelayToOthers}
	before := f.d.nerrs
	f.mapping(n, "a rule has match, to and alias", map[string]func(*fieldDecoder, *yaml.Node){
		"match": func(f *fieldDecoder, n *yaml.Node) { r.Match = f.relayMatch(n) },
		"to":    func(f *fieldDecoder, n *yaml.Node) { r.To, r.ToPath = f.relayTo(n) },
		"alias": func(f *fieldDecoder, n *yaml.Node) {
			if s, ok := f.str(n); ok && f.relayPath(n, s) {
				r.Alias = s
			}
		},
	})
	if len(r.Match) == 0 && f.d.nerrs == before {
		f.errorf(n, "a rule needs match: with at least one path and its value (a rule matching every message would relay every one)")
	}
	return r, f.d.nerrs == before
}

// relayMatch decodes a rule's match: paths and their values, sorted by
// path.
func (f *fieldDecoder) relayMatch(n *yaml.Node) []RelayMatch {
	if n.Kind != yaml.MappingNode {
		f.errorf(n, "must be a mapping of paths to values ({source: _sio_adapter}), got %s", kindName(n))
		return nil
	}
	ps := f.d.pairs(n, f.field)
	if len(ps) > MaxRelayMatch {
		f.errorf(n, "holds %d conditions; at most %d", len(ps), MaxRelayMatch)
		return nil
	}
	var out []RelayMatch
	for _, p := range ps {
		if !f.d.spend(p.key) {
			return nil
		}
		path := p.key.Value
		sub := &fieldDecoder{d: f.d, app: f.app, field: join(f.field, path), key: join(f.key, path)}
		if !sub.relayPath(p.key, path) {
			continue
		}
		v := deref(p.val)
		f.app.Pos[sub.key] = f.d.pos(v)
		value, ok := sub.relayValue(v)
		if !ok {
			continue
		}
		if s, isStr := value.(string); path == "cmd" && isStr && strings.HasPrefix(s, "NODE_") {
			sub.errorf(v, "messages whose cmd starts with NODE_ are Node's internal ones, never relayed")
			continue
		}
		out = append(out, RelayMatch{Path: path, Value: value})
	}
	slices.SortFunc(out, func(a, b RelayMatch) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// relayValue decodes the value of a condition: a YAML scalar, as the JSON
// value it stands for.
func (f *fieldDecoder) relayValue(n *yaml.Node) (any, bool) {
	if n == nil || n.Kind != yaml.ScalarNode {
		f.errorf(n, "must be a string, a number, true, false or null, got %s", kindName(n))
		return nil, false
	}
	switch n.Tag {
	case "!!null":
		return nil, true
	case "!!bool":
		var b bool
		if n.Decode(&b) == nil {
			return b, true
		}
	case "!!int", "!!float":
		var x float64
		if n.Decode(&x) == nil && !math.IsInf(x, 0) && !math.IsNaN(x) {
			return x, true
		}
		f.errorf(n, "must be a finite number, got %s", n.Value)
		return nil, false
	case "!!str":
		if strings.IndexByte(n.Value, 0) >= 0 {
			f.errorf(n, "must not contain a NUL byte")
			return nil, false
		}
		return n.Value, true
	}
	f.errorf(n, "must be a string, a number, true, false or null, got %s", kindName(n))
	return nil, false
}

// relayTo decodes a rule's to: others, all, {worker: PATH} or {alias:
// PATH}.
func (f *fieldDecoder) relayTo(n *yaml.Node) (to, path string) {
	const want = "must be others, all, {worker: PATH} or {alias: PATH}, got %s"
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!str" && (n.Value == RelayToOthers || n.Value == RelayToAll) {
			return n.Value, ""
		}
	case yaml.MappingNode:
		ps := f.d.pairs(n, f.field)
		if len(ps) != 1 || (ps[0].key.Value != RelayToWorker && ps[0].key.Value != RelayToAlias) {
			break
		}
		k, v := ps[0].key.Value, deref(ps[0].val)
		sub := &fieldDecoder{d: f.d, app: f.app, field: join(f.field, k), key: join(f.key, k)}
		f.app.Pos[sub.key] = f.d.pos(v)
		if s, ok := sub.str(v); ok && sub.relayPath(v, s) {
			return k, s
		}
		return RelayToOthers, ""
	}
	f.errorf(n, want, kindName(n))
	return RelayToOthers, ""
}

// relayPath reports whether s is a path (dot-separated object keys, none
// empty, at most MaxRelayPath bytes), recording an error at n when it is
// not.
func (f *fieldDecoder) relayPath(n *yaml.Node, s string) bool {
	switch {
	case s == "":
		f.errorf(n, "a path must not be empty")
	case len(s) > MaxRelayPath:
		f.errorf(n, "a path is at most %d bytes, got %d", MaxRelayPath, len(s))
	case slices.Contains(strings.Split(s, "."), ""):
		f.errorf(n, "a path is object keys separated by dots, none of them empty, got %q", s)
	case strings.IndexByte(s, 0) >= 0:
		f.errorf(n, "a path must not contain a NUL byte")
	default:
		return true
	}
	return false
}

// validateRelay checks what `ipc.relay` needs beside it: the IPC channel,
// over which the workers' messages come and go.
func validateRelay(l *errorList, a *App, field string) {
	if !a.HasRelay() || a.HasChannel() {
		return
	}
	why := "ipc is off"
	if a.IPC == IPCAuto {
		why = "ipc is auto and the interpreter is not node"
	}
	l.add(a.posOf("ipc.relay"), field+".ipc.relay", "needs the IPC channel, which the workers do not get (%s): set ipc.mode: node", why)
}
