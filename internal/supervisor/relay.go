package supervisor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/paddock-sh/paddock/internal/ipc"
	"github.com/paddock-sh/paddock/manifest"
)

// This file is `ipc.relay`: the owner forwards the messages of a worker
// that match its app's rules to other workers of the app, as a Node
// primary's cluster.on('message') relay does (@socket.io/cluster-adapter's
// setupPrimary()). Relaying never blocks the owner: each copy is queued on
// the target's channel, and a target that does not read loses relayed
// messages (counted; a relay-dropped event when it starts, relay-resumed
// when it reads again), never its channel.

// Bounds of the aliases workers claim (RelayRule.Alias), so that a worker
// cannot make the supervisor hold unbounded state.
const (
	// maxRelayAliases bounds the aliases one worker holds: more are not
	// recorded (socket.io claims one per namespace).
	maxRelayAliases = 1024
	// maxRelayAlias bounds an alias, in bytes of its JSON text: a longer
	// one is not recorded.
	maxRelayAlias = 256
)

// RelayCounts counts the relayed messages of an app since paddock
// started.
type RelayCounts struct {
	// Messages counts the messages that matched one of the app's rules:
	// none of them was reported as a message event.
	Messages int64
	// Delivered counts the copies queued to a worker; Dropped those a
	// worker's queue refused (it held ipc.RelayQueueLen messages it had
	// not read) or whose channel was closing.
	Delivered, Dropped int64
	// Unrouted counts the messages for a worker (to: {worker: PATH}) or
	// an alias (to: {alias: PATH}) that named no running worker of the
	// app with an IPC channel, or named none at all.
	Unrouted int64
}

// appRelay is the relaying state of one app: its rules compiled, the
// aliases its workers claimed, each worker's drops, and its counts.
type appRelay struct {
	// src is the app whose rules were compiled, spec those rules.
	src   *manifest.App
	spec  []manifest.RelayRule
	rules []relayRule
	// aliases maps an alias (its JSON text) to the worker that claimed
	// it last.
	aliases map[string]int
	workers map[int]*workerRelay
	counts  RelayCounts
}

// workerRelay is the relaying state of one worker: the aliases it
// claimed, and whether its queue is refusing relayed messages.
type workerRelay struct {
	aliases []string
	// dropping is set from the first relayed message its queue refused to
	// the next one it took; lost counts those refused meanwhile.
	dropping bool
	lost     int64
	// tooMany is set once it claimed more than maxRelayAliases aliases
	// (logged once).
	tooMany bool
}

// relayRule is a manifest.RelayRule with its paths split.
type relayRule struct {
	match  []relayCond
	to     string
	toPath relayPath
	alias  relayPath
}

// relayCond is one condition of a rule: the value at path equals value
// (a string, a float64, a bool, or nil for null).
type relayCond struct {
	path  relayPath
	value any
}

// relayPath is a manifest path: as written (the key of a message's
// values already read), and split.
type relayPath struct {
	text string
	keys []string
}

// splitPath splits a manifest path ("data.kind"); keys is nil for "".
func splitPath(p string) relayPath {
	if p == "" {
		return relayPath{}
	}
	return relayPath{text: p, keys: strings.Split(p, ".")}
}

// compileRelay compiles the rules of an app.
func compileRelay(spec []manifest.RelayRule) []relayRule {
	rules := make([]relayRule, 0, len(spec))
	for _, r := range spec {
		c := relayRule{to: r.To, toPath: splitPath(r.ToPath), alias: splitPath(r.Alias)}
		for _, m := range r.Match {
			c.match = append(c.match, relayCond{path: splitPath(m.Path), value: m.Value})
		}
		rules = append(rules, c)
	}
	return rules
}

// relayMessage is a worker's message as the rules read it: its top-level
// keys, decoded once, and the values at the paths read so far.
type relayMessage struct {
	top  map[string]json.RawMessage
	read map[string]scalarAt
}

// scalarAt is what relayMessage.scalar found at a path.
type scalarAt struct {
	v  any
	ok bool
}

// parseRelayMessage reads the top-level keys of raw, a JSON object; ok is
// false for anything else.
func parseRelayMessage(raw json.RawMessage) (relayMessage, bool) {
	top, ok := splitObject(raw)
	return relayMessage{top: top}, ok
}

// lookup returns the JSON text at path in the message, and whether there
// is one.
func (m *relayMessage) lookup(path relayPath) (json.RawMessage, bool) {
	if len(path.keys) == 0 {
		return nil, false
	}
	v, ok := m.top[path.keys[0]]
	for _, k := range path.keys[1:] {
		if !ok {
			return nil, false
		}
		obj, isObj := splitObject(v)
		if !isObj {
			return nil, false
		}
		v, ok = obj[k]
	}
	return v, ok
}

// scalar returns the JSON value at path when it is a string, a number, a
// bool or null (as a string, a float64, a bool or nil); ok is false when
// there is none there, or an object or array. Each path is read once per
// message: rules tend to share their first condition.
func (m *relayMessage) scalar(path relayPath) (any, bool) {
	if s, done := m.read[path.text]; done {
		return s.v, s.ok
	}
	var s scalarAt
	if raw, found := m.lookup(path); found {
		s.v, s.ok = decodeScalar(raw)
	}
	if m.read == nil {
		m.read = make(map[string]scalarAt, 4)
	}
	m.read[path.text] = s
	return s.v, s.ok
}

// decodeScalar decodes raw, one valid JSON value (the channel checks every
// message), when it is a string, a number, a bool or null; without
// encoding/json's reflection for strings without escapes and numbers,
// which are what rules compare.
func decodeScalar(raw json.RawMessage) (any, bool) {
	switch raw[0] {
	case '{', '[':
		return nil, false
	case '"':
		if bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
			return string(raw[1 : len(raw)-1]), true
		}
	case 't':
		return true, true
	case 'f':
		return false, true
	case 'n':
		return nil, true
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		if f, err := strconv.ParseFloat(string(raw), 64); err == nil {
			return f, true
		}
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return nil, false
	}
	return v, true
}

// matches reports whether every condition of r holds for m.
func (r *relayRule) matches(m *relayMessage) bool {
	for _, c := range r.match {
		v, ok := m.scalar(c.path)
		if !ok || v != c.value {
			return false
		}
	}
	return true
}

// relayState returns the relaying state of the app named, its rules
// compiled from a (recompiled when a reload changed them).
func (o *owner) relayState(a *manifest.App) *appRelay {
	if o.relays == nil {
		o.relays = map[string]*appRelay{}
	}
	r := o.relays[a.Name]
	if r == nil {
		r = &appRelay{aliases: map[string]int{}, workers: map[int]*workerRelay{}}
		o.relays[a.Name] = r
	}
	if r.src != a {
		if !reflect.DeepEqual(r.spec, a.Relay) {
			r.spec, r.rules = a.Relay, compileRelay(a.Relay)
		}
		r.src = a
	}
	return r
}

// worker returns the relaying state of the worker with id.
func (r *appRelay) worker(id int) *workerRelay {
	wr := r.workers[id]
	if wr == nil {
		wr = &workerRelay{}
		r.workers[id] = wr
	}
	return wr
}

// relay forwards m, a user message from w, as the rules of w's app (as the
// manifest set now says) direct, and reports whether one matched: a
// relayed message is not reported as a message event. Only a JSON object
// can match. It never blocks.
func (o *owner) relay(w *worker, m ipc.Message) bool {
	a := o.app(w.App)
	if a == nil || !a.HasRelay() {
		return false
	}
	msg, ok := parseRelayMessage(m.Raw)
	if !ok {
		return false
	}
	r := o.relayState(a)
	for i := range r.rules {
		rule := &r.rules[i]
		if !rule.matches(&msg) {
			continue
		}
		r.counts.Messages++
		if rule.alias.keys != nil {
			o.claimAlias(r, w, &msg, rule.alias)
		}
		// One line for every target: the message as the worker wrote
		// it. A copy: m.Raw's array must not be appended to.
		line := append(m.Raw[:len(m.Raw):len(m.Raw)], '\n')
		switch rule.to {
		case manifest.RelayToOthers, manifest.RelayToAll:
			for _, t := range o.workers {
				if t.App == w.App && (t != w || rule.to == manifest.RelayToAll) && relayTarget(t) {
					o.relayTo(r, t, line)
				}
			}
		default: // a worker or an alias the message names
			if t := o.relayNamed(r, w, &msg, rule); t != nil {
				o.relayTo(r, t, line)
			} else {
				r.counts.Unrouted++
				o.opts.Logger.Debug("relayed message for no worker", "app", w.App, "worker", w.ID, "to", rule.to)
			}
		}
		return true
	}
	return false
}

// relayTarget reports whether t can be sent relayed messages: it runs,
// with an IPC channel paddock has not closed for a fault.
func relayTarget(t *worker) bool {
	return t.cl != nil && t.pid != 0 && t.fault == nil
}

// relayNamed returns the worker of w's app that msg names for rule (to:
// {worker: PATH} or {alias: PATH}), or nil when it names none that can be
// sent relayed messages.
func (o *owner) relayNamed(r *appRelay, w *worker, msg *relayMessage, rule *relayRule) *worker {
	v, ok := msg.scalar(rule.toPath)
	if !ok {
		return nil
	}
	id := 0
	switch rule.to {
	case manifest.RelayToWorker:
		switch v := v.(type) {
		case float64:
			if v == float64(int(v)) {
				id = int(v)
			}
		case string:
			id, _ = strconv.Atoi(v)
		}
	case manifest.RelayToAlias:
		key, ok := aliasKey(v)
		if !ok {
			return nil
		}
		id = r.aliases[key]
	}
	t := o.workers[id]
	if t == nil || t.App != w.App || !relayTarget(t) {
		return nil
	}
	return t
}

// aliasKey returns the key an alias value is known by: its JSON text, for
// a string, a number or a bool not longer than maxRelayAlias.
func aliasKey(v any) (string, bool) {
	switch v.(type) {
	case string, float64, bool:
	default:
		return "", false
	}
	b, err := json.Marshal(v)
	if err != nil || len(b) > maxRelayAlias {
		return "", false
	}
	return string(b), true
}

// claimAlias records that w is known by msg's value at path from now on
// (the last worker to claim an alias has it), within maxRelayAliases.
func (o *owner) claimAlias(r *appRelay, w *worker, msg *relayMessage, path relayPath) {
	v, ok := msg.scalar(path)
	if !ok {
		return
	}
	key, ok := aliasKey(v)
	if !ok || r.aliases[key] == w.ID {
		return
	}
	wr := r.worker(w.ID)
	if len(wr.aliases) >= maxRelayAliases {
		if !wr.tooMany {
			wr.tooMany = true
			o.opts.Logger.Warn("a worker claims too many relay aliases; the others are not recorded", "app", w.App, "worker", w.ID, "max", maxRelayAliases)
		}
		return
	}
	r.aliases[key] = w.ID
	wr.aliases = append(wr.aliases, key)
}

// relayTo queues line for t, counting it; the first copy t's queue
// refuses emits relay-dropped, the next one it takes relay-resumed with
// the count of those lost meanwhile.
func (o *owner) relayTo(r *appRelay, t *worker, line []byte) {
	err := t.cl.ch.SendRelayed(line)
	if err == nil {
		r.counts.Delivered++
		if wr := r.workers[t.ID]; wr != nil && wr.dropping {
			o.emit(Event{Type: EventRelayResumed, App: t.App, Worker: t.ID, PID: t.pid, Generation: t.Generation, Lost: wr.lost,
				Detail: fmt.Sprintf("%s reads its IPC channel again; %d relayed messages were dropped", t.Name(), wr.lost)})
			wr.dropping, wr.lost = false, 0
		}
		return
	}
	r.counts.Dropped++
	if errors.Is(err, ipc.ErrClosed) {
		return // it is going; nothing to report
	}
	wr := r.worker(t.ID)
	wr.lost++
	if !wr.dropping {
		wr.dropping = true
		o.emit(Event{Type: EventRelayDropped, App: t.App, Worker: t.ID, PID: t.pid, Generation: t.Generation,
			Detail: fmt.Sprintf("%s has %d messages it has not read on its IPC channel: messages relayed to it are dropped and counted until it reads", t.Name(), ipc.RelayQueueLen)})
	}
}

// forgetRelay drops what relaying knew of w, which exited: its aliases
// (those no other worker claimed since) and its drops.
func (o *owner) forgetRelay(w *worker) {
	r := o.relays[w.App]
	if r == nil {
		return
	}
	if wr := r.workers[w.ID]; wr != nil {
		for _, key := range wr.aliases {
			if r.aliases[key] == w.ID {
				delete(r.aliases, key)
			}
		}
		delete(r.workers, w.ID)
	}
}

// relayCounts returns the relay counts of every app that relayed a
// message since paddock started (apps removed since included).
func (o *owner) relayCounts() map[string]RelayCounts {
	if len(o.relays) == 0 {
		return nil
	}
	out := make(map[string]RelayCounts, len(o.relays))
	for app, r := range o.relays {
		out[app] = r.counts
	}
	return out
}

// splitObject returns the members of raw, a JSON object, as parts of raw
// (no copy), the last of two with one key winning, as JSON.parse has it.
// It reads only as far as it needs to tell where each value ends: the
// channel checked that every message is valid JSON, and this runs for
// each relayed message on the owner goroutine, where a full decode of a
// large message would cost several times more. ok is false when raw is
// not an object, or where it is not well formed.
func splitObject(raw []byte) (map[string]json.RawMessage, bool) {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return nil, false
	}
	m := make(map[string]json.RawMessage, 8)
	i = skipSpace(raw, i+1)
	if i < len(raw) && raw[i] == '}' {
		return m, skipSpace(raw, i+1) == len(raw)
	}
	for i < len(raw) {
		end := skipString(raw, i)
		if end < 0 {
			return nil, false
		}
		key, ok := stringValue(raw[i:end])
		if !ok {
			return nil, false
		}
		i = skipSpace(raw, end)
		if i >= len(raw) || raw[i] != ':' {
			return nil, false
		}
		i = skipSpace(raw, i+1)
		vend := skipValue(raw, i)
		if vend < 0 {
			return nil, false
		}
		m[key] = raw[i:vend:vend]
		i = skipSpace(raw, vend)
		switch {
		case i < len(raw) && raw[i] == ',':
			i = skipSpace(raw, i+1)
		case i < len(raw) && raw[i] == '}':
			return m, skipSpace(raw, i+1) == len(raw)
		default:
			return nil, false
		}
	}
	return nil, false
}

// skipSpace returns the index of the first byte from i on that is not
// JSON white space.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the string that starts at i, or
// -1 when there is none there.
func skipString(b []byte, i int) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}

// skipValue returns the index just past the JSON value that starts at i,
// or -1 when there is none there.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				if i < 0 {
					return -1
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return -1
	}
	start := i
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
		i++
	}
	if i == start {
		return -1
	}
	return i
}

// stringValue decodes s, a JSON string with its quotes.
func stringValue(s []byte) (string, bool) {
	if bytes.IndexByte(s, '\\') < 0 && utf8.Valid(s) {
		return string(s[1 : len(s)-1]), true
	}
	var v string
	return v, json.Unmarshal(s, &v) == nil
}
