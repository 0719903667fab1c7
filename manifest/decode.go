package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/paddock-sh/paddock/internal/suggest"
)

// MaxInstances bounds `instances` so that a typo (40000 for 4) cannot fork
// the machine to death.
const MaxInstances = 10000

// maxDecodeBytes bounds the size of one manifest file.
const maxDecodeBytes = 8 << 20

// Aliases let a small file name one mapping or list many times over: 1000
// apps that alias one anchor of 1000 bad env values make a million errors;
// merge keys do the same with `<<: [*a, *a, ...]`, level upon level.
// Decoding stops once it has visited valuesPerByte values per byte of the
// file (plus minValues), each value brought in by a merge key counted, and
// reports at most maxErrors errors per file.
const (
	valuesPerByte = 8
	minValues     = 1 << 18
	maxErrors     = 1000
)

var appNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

// Decode parses one manifest file: zero or more YAML documents separated by
// "---", each with an optional `apps:` mapping. file names the file in
// errors, exactly as given. Defaults are applied to every app; structural
// validation (Validate) and host checks (CheckHost) are separate steps.
//
// Decode is strict: an unknown key, a value of the wrong type or a duplicate
// key is an error. It returns every app it could decode along with every
// problem it found, so that a caller can report them all at once. An empty
// file declares nothing and is valid.
func Decode(file string, data []byte) ([]*App, error) {
	f, err := DecodeFile(file, data)
	return f.Apps, err
}

// File is what one manifest file declares: its apps, and the top-level
// `logs:` that the apps of the whole set without one of their own take
// (nil when the file has none).
type File struct {
	Apps []*App
	Logs *Logs
}

// DecodeFile is Decode, also returning the file's top-level `logs:`. Load
// gives it to the apps of every file of the set; a set may have one.
func DecodeFile(file string, data []byte) (File, error) {
	var l errorList
	if len(data) > maxDecodeBytes {
		l.add(Pos{file, 1, 1}, "", "file is larger than %d bytes", maxDecodeBytes)
		return File{}, l.err()
	}
	limit := minValues + valuesPerByte*len(data)
	d := &decoder{file: file, l: &l, merged: map[*yaml.Node][]pair{}, weights: map[*yaml.Node]int{}, budget: limit, limit: limit}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var apps []*App
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			l.errs = append(l.errs, syntaxError(file, data, err))
			break
		}
		apps = append(apps, d.document(&doc)...)
		if d.budget < 0 {
			break
		}
	}
	return File{Apps: apps, Logs: d.topLogs}, l.err()
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// maxRefineBytes bounds the files whose syntax errors are located by
// re-parsing (see problemLine).
const maxRefineBytes = 1 << 20

// syntaxError turns a YAML parser error into a FieldError. The parser reports
// no column (the column is then 1) and its line is where the enclosing
// construct begins, often counted from 0, or no line at all; problemLine
// finds the line of the problem itself.
func syntaxError(file string, data []byte, err error) error {
	msg := err.Error()
	line := 1
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		if n, convErr := strconv.Atoi(m[1]); convErr == nil && n > 0 {
			line = n
		}
		msg = m[2]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	if len(data) <= maxRefineBytes {
		line = problemLine(data, line, msg)
	}
	if col := tabIndent(data, line, err); col > 0 {
		return &FieldError{Pos: Pos{file, line, col}, Msg: "tabs cannot indent YAML; use spaces", Err: err}
	}
	return &FieldError{Pos: Pos{file, line, 1}, Msg: "yaml syntax: " + msg, Err: err}
}

// tabIndent returns the column of the tab that caused the syntax error err
// on line `line` of data, or 0 when no tab did. YAML indents with spaces
// only; the parser's message for a tab there ("found character that cannot
// start any token") does not say so. A tab counts when it is in the line's
// indentation: its leading blanks, and those after a block sequence's "-".
// It caused err when the same data with those tabs made spaces parses
// without that error (a tab may be harmless there, in a flow collection or
// a quoted string, while the error is something else on the same line).
func tabIndent(data []byte, line int, err error) int {
	start := 0
	for n := 1; n < line; n++ {
		i := bytes.IndexByte(data[start:], '\n')
		if i < 0 {
			return 0
		}
		start += i + 1
	}
	end := len(data)
	if i := bytes.IndexByte(data[start:], '\n'); i >= 0 {
		end = start + i
	}
	indent := end - start // the indentation's length: all of a blank line
	for i := start; i < end; i++ {
		c := data[i]
		if c == ' ' || c == '\t' {
			continue
		}
		if c == '-' && i+1 < end && (data[i+1] == ' ' || data[i+1] == '\t') {
			continue
		}
		indent = i - start
		break
	}
	tab := bytes.IndexByte(data[start:start+indent], '\t')
	if tab < 0 {
		return 0
	}
	fixed := bytes.Clone(data)
	for i := start; i < start+indent; i++ {
		if fixed[i] == '\t' {
			fixed[i] = ' '
		}
	}
	if err2 := parseAll(fixed); err2 != nil && err2.Error() == err.Error() {
		return 0
	}
	return tab + 1
}

// problemLine returns the first line n, from line `from` on, such that the
// lines 1 to n of data alone fail to parse with the same problem msg: the
// line where the parser can tell that something is wrong. The parser reports
// at most the line where the enclosing mapping or list begins, so the search
// starts there. It is a binary search (a problem found in the first n lines
// is found in the first n+1 too), so it costs a few parses.
func problemLine(data []byte, from int, msg string) int {
	// ends[i] is the offset just past line i+1.
	var ends []int
	for i, c := range data {
		if c == '\n' {
			ends = append(ends, i+1)
		}
	}
	if len(ends) == 0 || ends[len(ends)-1] != len(data) {
		ends = append(ends, len(data))
	}
	if from < 1 || from > len(ends) {
		from = 1
	}
	fails := func(n int) bool {
		err := parseAll(data[:ends[n-1]])
		if err == nil {
			return false
		}
		m := err.Error()
		if sub := yamlLineRE.FindStringSubmatch(m); sub != nil {
			m = sub[2]
		} else {
			m = strings.TrimPrefix(m, "yaml: ")
		}
		return m == msg
	}
	lo, hi := from, len(ends) // fails(hi): the whole file fails so
	for lo < hi {
		mid := lo + (hi-lo)/2
		if fails(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// parseAll parses every document of data and returns the first error.
func parseAll(data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

type decoder struct {
	file string
	l    *errorList
	// merged caches the key/value pairs of each mapping, merge keys
	// expanded, so that many aliases of one anchor cost one expansion.
	merged map[*yaml.Node][]pair
	// weights caches mergeWeight for each mapping.
	weights map[*yaml.Node]int
	// budget is how many more values (mapping pairs, list items, values
	// brought in by merge keys) the decoder may visit; it is -1 once
	// spent, and decoding stops. limit is what it started at. nerrs
	// counts the errors.
	budget int
	limit  int
	nerrs  int
	// topLogs is the file's top-level `logs:`, from any of its documents.
	topLogs *Logs
}

type pair struct{ key, val *yaml.Node }

func (d *decoder) pos(n *yaml.Node) Pos { return Pos{d.file, n.Line, n.Column} }

func (d *decoder) errorf(n *yaml.Node, field, format string, args ...any) {
	if d.budget < 0 {
		return // decoding stopped: what follows is only its aftermath
	}
	d.nerrs++
	switch {
	case d.nerrs <= maxErrors:
		d.l.add(d.pos(n), field, format, args...)
	case d.nerrs == maxErrors+1:
		d.l.add(d.pos(n), "", "too many errors, the first %d are reported", maxErrors)
	}
}

// spend takes one value from the budget. Once it is spent, it records an
// error at n and returns false: the caller stops.
func (d *decoder) spend(n *yaml.Node) bool { return d.spendN(n, "", 1) }

// spendN takes w values from the budget, for field at n. When the budget
// cannot pay for them, it records an error at n (the first time) and
// returns false: the caller stops.
func (d *decoder) spendN(n *yaml.Node, field string, w int) bool {
	if w <= d.budget {
		d.budget -= w
		return true
	}
	if d.budget >= 0 {
		d.budget = -1
		d.l.add(d.pos(n), field, "too many values once aliases and merge keys (<<) are expanded (at most %d for this file); decoding stopped", d.limit)
	}
	return false
}

// deref follows aliases to the node they name.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// kindName describes a node for "got X" in error messages.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "null"
		case "!!str":
			return strconv.Quote(n.Value)
		default:
			return n.Value
		}
	}
	return "unknown"
}

// pairs returns the key/value pairs of mapping node m with YAML merge keys
// ("<<: *base") expanded: explicit keys win over merged ones, and earlier
// merged mappings win over later ones. A duplicate explicit key is an error.
//
// Every read of m pays the budget for all that its merge keys bring in,
// counted as a YAML loader that copies each merged mapping would count it
// (mergeWeight): a merged key that an explicit key or an earlier merge
// overrides still counts, and so does every merge of the same mapping. So a
// fan-out chain (each level merging the one before it ten times) is
// refused like an alias bomb, although the expansion is computed once per
// mapping (expand). Once the budget is spent, pairs returns nil.
func (d *decoder) pairs(m *yaml.Node, field string) []pair {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := m.Content[i]; isMergeKey(k) {
			if !d.spendN(k, field, d.mergeWeight(m.Content[i+1])) {
				return nil
			}
		}
	}
	return d.expand(m, field)
}

// expand returns the pairs of m, merge keys expanded, computing them once
// per mapping: many reads of one anchor cost one expansion. Expanding pays
// the budget too, one value for each pair it takes from a merged mapping:
// mergeWeight counts a chain of mappings that each merge the one before
// it and add a key once per link, while expanding every link of it copies
// the whole chain so far. Once the budget is spent, the pairs gathered so
// far are returned (and kept).
func (d *decoder) expand(m *yaml.Node, field string) []pair {
	if ps, ok := d.merged[m]; ok {
		return ps
	}
	d.merged[m] = nil // a mapping that merges itself sees nothing
	var out []pair
	var merges []pair // merge key and value
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if isMergeKey(k) {
			merges = append(merges, pair{k, v})
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, field, "keys must be strings, got %s", kindName(deref(k)))
			continue
		}
		if prev, dup := seen[k.Value]; dup {
			d.errorf(k, join(field, k.Value), "duplicate key, first at line %d", prev.Line)
			continue
		}
		seen[k.Value] = k
		out = append(out, pair{k, v})
	}
merging:
	for _, mk := range merges {
		for _, src := range d.mergeSources(mk.val, field) {
			ps := d.expand(src, field)
			if !d.spendN(mk.key, field, len(ps)) {
				break merging
			}
			for _, p := range ps {
				if _, ok := seen[p.key.Value]; ok {
					continue
				}
				seen[p.key.Value] = p.key
				out = append(out, p)
			}
		}
	}
	d.merged[m] = out
	return out
}

func isMergeKey(k *yaml.Node) bool { return k.Kind == yaml.ScalarNode && k.Tag == "!!merge" }

// mergeSources returns the mappings that a merge key's value v names: v
// itself, or the items of a list; anything else is an error.
func (d *decoder) mergeSources(v *yaml.Node, field string) []*yaml.Node {
	v = deref(v)
	switch {
	case v == nil:
		return nil
	case v.Kind == yaml.MappingNode:
		return []*yaml.Node{v}
	case v.Kind == yaml.SequenceNode:
		var out []*yaml.Node
		for _, item := range v.Content {
			item = deref(item)
			if item == nil || item.Kind != yaml.MappingNode {
				d.errorf(v, field, "a merge key (<<) takes a mapping or a list of mappings")
				continue
			}
			out = append(out, item)
		}
		return out
	default:
		d.errorf(v, field, "a merge key (<<) takes a mapping or a list of mappings")
		return nil
	}
}

// maxWeight caps mergeWeight, far above any budget, so that sums of weights
// never overflow.
const maxWeight = 1 << 40

// mergeWeight is how many values the merge key value v brings in when each
// mapping it names is copied in full, with the merge keys of that mapping
// expanded the same way, duplicates and overridden keys included: for a
// mapping, its pairs plus what its own merge keys bring in; for a list, one
// for each item plus each mapping's weight. It is computed once per mapping,
// by a walk that is linear in the file; a mapping that merges itself
// (directly or not) counts nothing the second time.
func (d *decoder) mergeWeight(v *yaml.Node) int {
	v = deref(v)
	switch {
	case v == nil:
		return 0
	case v.Kind == yaml.MappingNode:
		if w, ok := d.weights[v]; ok {
			return w
		}
		d.weights[v] = 0
		w := 0
		for i := 0; i+1 < len(v.Content); i += 2 {
			w = min(w+1, maxWeight)
			if isMergeKey(v.Content[i]) {
				w = min(w+d.mergeWeight(v.Content[i+1]), maxWeight)
			}
		}
		d.weights[v] = w
		return w
	case v.Kind == yaml.SequenceNode:
		w := 0
		for _, item := range v.Content {
			w = min(w+1, maxWeight)
			if item = deref(item); item != nil && item.Kind == yaml.MappingNode {
				w = min(w+d.mergeWeight(item), maxWeight)
			}
		}
		return w
	}
	return 0
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// document decodes one YAML document.
func (d *decoder) document(doc *yaml.Node) []*App {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil
	}
	root := deref(doc.Content[0])
	if isNull(root) {
		return nil
	}
	if root.Kind != yaml.MappingNode {
		d.errorf(root, "", "a manifest must be a mapping with an `apps:` key, got %s", kindName(root))
		return nil
	}
	var apps []*App
	for _, p := range d.pairs(root, "") {
		if strings.HasPrefix(p.key.Value, "x-") {
			continue // extension keys hold YAML anchors for apps to merge
		}
		if p.key.Value == "logs" {
			d.topLevelLogs(p.val)
			continue
		}
		if p.key.Value != "apps" {
			d.errorf(p.key, p.key.Value, "unknown key (a manifest has `apps:`, `logs:`, and `x-` keys for anchors)")
			continue
		}
		v := deref(p.val)
		if isNull(v) {
			continue
		}
		if v.Kind != yaml.MappingNode {
			d.errorf(v, "apps", "must be a mapping of app names to apps, got %s", kindName(v))
			continue
		}
		for _, ap := range d.pairs(v, "apps") {
			if !d.spend(ap.key) {
				break
			}
			if a := d.app(ap.key, ap.val); a != nil {
				apps = append(apps, a)
			}
		}
	}
	return apps
}

// app decodes one app; it returns nil only when the node cannot be an app at
// all (then an error was recorded).
func (d *decoder) app(key, val *yaml.Node) *App {
	name := key.Value
	field := "apps." + name
	a := &App{
		Name:             name,
		Source:           d.pos(key),
		Pos:              map[string]Pos{},
		Instances:        DefaultInstances,
		SchedulingPolicy: DefaultSchedulingPolicy,
		Restart:          DefaultRestart,
		Backoff:          Backoff{Initial: DefaultBackoffInitial, Max: DefaultBackoffMax},
		KillSignal:       DefaultKillSignal,
		KillTimeout:      DefaultKillTimeout,
		Readiness:        DefaultReadiness,
		IPC:              DefaultIPC,
		Serialization:    DefaultSerialization,
		ReadyTimeout:     DefaultReadyTimeout,
		MinReadyTime:     DefaultMinReadyTime,
		Rollout:          Rollout{MaxSurge: DefaultMaxSurge, MaxUnavailable: DefaultMaxUnavailable, OnStall: DefaultOnStall},
		FailAfter:        DefaultFailAfter,
	}
	if !appNameRE.MatchString(name) || len(name) > 63 {
		d.errorf(key, field, "app names are lower-case letters, digits and '-', start and end with a letter or digit, at most 63 characters")
	}
	v := deref(val)
	if isNull(v) {
		d.errorf(key, field, "an app needs at least `exec:`")
		return a
	}
	if v.Kind != yaml.MappingNode {
		d.errorf(v, field, "must be a mapping, got %s", kindName(v))
		return nil
	}
	for _, p := range d.pairs(v, field) {
		if !d.spend(p.key) {
			break
		}
		k := p.key.Value
		set, ok := appFields[k]
		if !ok {
			hint := ""
			if d.nerrs < maxErrors { // not for errors left out: it costs
				hint = didYouMean(k)
			}
			d.errorf(p.key, join(field, k), "unknown field%s", hint)
			continue
		}
		pv := deref(p.val)
		if pv == nil {
			continue
		}
		a.Pos[k] = d.pos(pv)
		if isNull(pv) {
			if k == "exec" {
				d.errorf(pv, join(field, k), "required")
			}
			continue // null leaves the default
		}
		set(&fieldDecoder{d: d, app: a, field: join(field, k), key: k}, pv)
	}
	if _, ok := a.Pos["exec"]; !ok {
		d.errorf(key, join(field, "exec"), "required")
	}
	return a
}

// fieldDecoder decodes one field of one app.
type fieldDecoder struct {
	d     *decoder
	app   *App
	field string // full path, for errors
	key   string // path relative to the app, for App.Pos
}

func (f *fieldDecoder) errorf(n *yaml.Node, format string, args ...any) {
	f.d.errorf(n, f.field, format, args...)
}

// str accepts any non-null scalar, as written: `user: 1000` and
// `args: [--port, 8000]` mean the strings "1000" and "8000".
func (f *fieldDecoder) str(n *yaml.Node) (string, bool) {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		f.errorf(n, "must be a string, got %s", kindName(n))
		return "", false
	}
	if strings.IndexByte(n.Value, 0) >= 0 {
		f.errorf(n, "must not contain a NUL byte")
		return "", false
	}
	return n.Value, true
}

func (f *fieldDecoder) strList(n *yaml.Node) []string {
	if n.Kind != yaml.SequenceNode {
		f.errorf(n, "must be a list of strings, got %s", kindName(n))
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for i, item := range n.Content {
		if !f.d.spend(item) {
			break
		}
		item = deref(item)
		sub := &fieldDecoder{d: f.d, app: f.app, field: fmt.Sprintf("%s[%d]", f.field, i), key: f.key}
		if s, ok := sub.str(item); ok {
			out = append(out, s)
		}
	}
	return out
}

func (f *fieldDecoder) oneOf(n *yaml.Node, allowed []string) string {
	s, ok := f.str(n)
	if !ok {
		return ""
	}
	for _, a := range allowed {
		if s == a {
			return s
		}
	}
	f.errorf(n, "must be one of %s, got %q", strings.Join(allowed, ", "), s)
	return ""
}

func (f *fieldDecoder) duration(n *yaml.Node) (time.Duration, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		f.errorf(n, "must be a duration with a unit such as 500ms, 5s or 1m, got %s", kindName(n))
		return 0, false
	}
	dur, err := time.ParseDuration(n.Value)
	if err != nil {
		f.errorf(n, "must be a duration with a unit such as 500ms, 5s or 1m, got %q", n.Value)
		return 0, false
	}
	if dur < 0 {
		f.errorf(n, "must not be negative, got %s", n.Value)
		return 0, false
	}
	return dur, true
}

// mapping decodes a field that is a mapping with fixed keys: each value,
// unless null, goes to the decoder of its key; other keys are errors that
// say which keys there are (keys).
func (f *fieldDecoder) mapping(n *yaml.Node, keys string, decoders map[string]func(*fieldDecoder, *yaml.Node)) {
	if n.Kind != yaml.MappingNode {
		f.errorf(n, "must be a mapping (%s), got %s", keys, kindName(n))
		return
	}
	for _, p := range f.d.pairs(n, f.field) {
		if !f.d.spend(p.key) {
			break
		}
		k := p.key.Value
		sub := &fieldDecoder{d: f.d, app: f.app, field: join(f.field, k), key: join(f.key, k)}
		decode, ok := decoders[k]
		if !ok {
			sub.d.errorf(p.key, sub.field, "unknown field (%s)", keys)
			continue
		}
		v := deref(p.val)
		f.app.Pos[sub.key] = f.d.pos(v)
		if !isNull(v) {
			decode(sub, v)
		}
	}
}

// count accepts an integer from 0 to MaxInstances.
func (f *fieldDecoder) count(n *yaml.Node) (int, bool) {
	var i int
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&i) != nil || i < 0 || i > MaxInstances {
		f.errorf(n, "must be an integer from 0 to %d, got %s", MaxInstances, kindName(n))
		return 0, false
	}
	return i, true
}

// setString, setEnum, setDuration, setBool and setCount make the decoder of a field
// of that kind, stored where dst points.
func setString(dst func(*App) *string) func(*fieldDecoder, *yaml.Node) {
	return func(f *fieldDecoder, n *yaml.Node) {
		if s, ok := f.str(n); ok {
			*dst(f.app) = s
		}
	}
}

func setEnum(allowed []string, dst func(*App) *string) func(*fieldDecoder, *yaml.Node) {
	return func(f *fieldDecoder, n *yaml.Node) {
		if s := f.oneOf(n, allowed); s != "" {
			*dst(f.app) = s
		}
	}
}

func setDuration(dst func(*App) *time.Duration) func(*fieldDecoder, *yaml.Node) {
	return func(f *fieldDecoder, n *yaml.Node) {
		if d, ok := f.duration(n); ok {
			*dst(f.app) = d
		}
	}
}

func setBool(dst func(*App) *bool) func(*fieldDecoder, *yaml.Node) {
	return func(f *fieldDecoder, n *yaml.Node) {
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			f.errorf(n, "must be true or false, got %s", kindName(n))
			return
		}
		_ = n.Decode(dst(f.app))
	}
}

func setCount(dst func(*App) *int) func(*fieldDecoder, *yaml.Node) {
	return func(f *fieldDecoder, n *yaml.Node) {
		if i, ok := f.count(n); ok {
			*dst(f.app) = i
		}
	}
}

// appFields decodes each manifest key of an app. Its keys are exactly the
// yaml tags of App (a test keeps them, and the JSON schema, in step).
var appFields = map[string]func(f *fieldDecoder, n *yaml.Node){
	"exec": func(f *fieldDecoder, n *yaml.Node) {
		if s, ok := f.str(n); ok {
			if s == "" {
				f.errorf(n, "must not be empty")
			}
			f.app.Exec = s
		}
	},
	"execPath": setString(func(a *App) *string { return &a.ExecPath }),
	"execArgv": func(f *fieldDecoder, n *yaml.Node) { f.app.ExecArgv = f.strList(n) },
	"args":     func(f *fieldDecoder, n *yaml.Node) { f.app.Args = f.strList(n) },
	"cwd":      setString(func(a *App) *string { return &a.Cwd }),
	"env": func(f *fieldDecoder, n *yaml.Node) {
		if n.Kind != yaml.MappingNode {
			f.errorf(n, "must be a mapping of variable names to values, got %s", kindName(n))
			return
		}
		ps := f.d.pairs(n, f.field)
		// Sized once: an anchor of many variables may be read by
		// many apps, and growing two maps step by step costs several
		// times their size.
		f.app.Env = make(map[string]string, len(ps))
		pos := make(map[string]Pos, len(f.app.Pos)+len(ps))
		maps.Copy(pos, f.app.Pos)
		f.app.Pos = pos
		for _, p := range ps {
			if !f.d.spend(p.key) {
				break
			}
			name := p.key.Value
			sub := &fieldDecoder{d: f.d, app: f.app, field: join(f.field, name), key: "env." + name}
			if name == "" || strings.ContainsAny(name, "=\x00") {
				sub.d.errorf(p.key, sub.field, "variable names must be non-empty and contain no '=' or NUL")
				continue
			}
			v := deref(p.val)
			f.app.Pos[sub.key] = f.d.pos(v)
			if s, ok := sub.str(v); ok {
				f.app.Env[name] = s
			}
		}
	},
	"silent": func(f *fieldDecoder, n *yaml.Node) {
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			f.errorf(n, "must be true or false, got %s", kindName(n))
			return
		}
		_ = n.Decode(&f.app.Silent)
	},
	"instances": func(f *fieldDecoder, n *yaml.Node) {
		if n.Kind == yaml.ScalarNode && n.Tag == "!!str" && n.Value == "auto" {
			f.app.InstancesAuto = true
			return
		}
		var i int
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&i) != nil || i < 0 {
			f.errorf(n, "must be an integer >= 0 or \"auto\", got %s", kindName(n))
			return
		}
		if i > MaxInstances {
			f.errorf(n, "must be at most %d, got %d", MaxInstances, i)
			return
		}
		f.app.Instances = i
	},
	"schedulingPolicy": setEnum(SchedulingPolicies, func(a *App) *string { return &a.SchedulingPolicy }),
	"restart":          setEnum(RestartPolicies, func(a *App) *string { return &a.Restart }),
	"backoff": func(f *fieldDecoder, n *yaml.Node) {
		f.mapping(n, "backoff has initial and max", map[string]func(*fieldDecoder, *yaml.Node){
			"initial": setDuration(func(a *App) *time.Duration { return &a.Backoff.Initial }),
			"max":     setDuration(func(a *App) *time.Duration { return &a.Backoff.Max }),
		})
	},
	"killSignal":   setString(func(a *App) *string { return &a.KillSignal }),
	"killTimeout":  setDuration(func(a *App) *time.Duration { return &a.KillTimeout }),
	"user":         setString(func(a *App) *string { return &a.User }),
	"readiness":    setEnum(ReadinessModes, func(a *App) *string { return &a.Readiness }),
	"ipc":          decodeIPC,
	"readyTimeout": setDuration(func(a *App) *time.Duration { return &a.ReadyTimeout }),
	"minReadyTime": setDuration(func(a *App) *time.Duration { return &a.MinReadyTime }),
	"rollout": func(f *fieldDecoder, n *yaml.Node) {
		f.mapping(n, "rollout has maxSurge, maxUnavailable and onStall", map[string]func(*fieldDecoder, *yaml.Node){
			"maxSurge":       setCount(func(a *App) *int { return &a.Rollout.MaxSurge }),
			"maxUnavailable": setCount(func(a *App) *int { return &a.Rollout.MaxUnavailable }),
			"onStall":        setEnum(OnStallModes, func(a *App) *string { return &a.Rollout.OnStall }),
		})
	},
	"listen": func(f *fieldDecoder, n *yaml.Node) {
		if n.Kind != yaml.SequenceNode {
			f.errorf(n, "must be a list of addresses (8000, \"127.0.0.1:8000\", \"[::1]:8000\", \"unix:/run/web.sock\"), got %s", kindName(n))
			return
		}
		for i, item := range n.Content {
			if !f.d.spend(item) {
				break
			}
			item = deref(item)
			key := fmt.Sprintf("listen[%d]", i)
			sub := &fieldDecoder{d: f.d, app: f.app, field: f.field + fmt.Sprintf("[%d]", i), key: key}
			f.app.Pos[key] = f.d.pos(item)
			if item.Kind != yaml.ScalarNode || isNull(item) {
				sub.errorf(item, "must be an address such as 8000, \"127.0.0.1:8000\" or \"unix:/run/web.sock\", got %s", kindName(item))
				continue
			}
			l, err := ParseListen(item.Value, manifestDirOf(f.d.file))
			if err != nil {
				sub.errorf(item, "%v", err)
				continue
			}
			l.Index = i
			f.app.Listen = append(f.app.Listen, l)
		}
	},
	"group": setString(func(a *App) *string { return &a.Group }),

	"dependsOn": decodeDependsOn,
	"maxMemory": func(f *fieldDecoder, n *yaml.Node) { f.app.MaxMemory, _ = f.size(n) },
	"watchdog":  setDuration(func(a *App) *time.Duration { return &a.Watchdog }),
	"critical":  setBool(func(a *App) *bool { return &a.Critical }),
	"failAfter": setDuration(func(a *App) *time.Duration { return &a.FailAfter }),

	"healthCheck": decodeHealthCheck,
	"logs":        decodeAppLogs,

	// Any string: Validate says why advanced is refused.
	"serialization": setString(func(a *App) *string { return &a.Serialization }),
}

// decodeDependsOn decodes `dependsOn:`, a list of app names, recording the
// position of each item as "dependsOn[i]". Whether the names are those of
// apps of the set is for Validate to say. A list with an item that is not
// a name (a list, a mapping, null) is reported and dropped whole: the
// positions of its other items would not match their places.
func decodeDependsOn(f *fieldDecoder, n *yaml.Node) {
	if n.Kind != yaml.SequenceNode {
		f.errorf(n, "must be a list of app names, got %s", kindName(n))
		return
	}
	names := make([]string, 0, len(n.Content))
	ok := true
	for i, item := range n.Content {
		if !f.d.spend(item) {
			return
		}
		item = deref(item)
		key := fmt.Sprintf("dependsOn[%d]", i)
		f.app.Pos[key] = f.d.pos(item)
		sub := &fieldDecoder{d: f.d, app: f.app, field: fmt.Sprintf("%s[%d]", f.field, i), key: key}
		if item.Kind != yaml.ScalarNode || isNull(item) {
			sub.errorf(item, "must be an app name, got %s", kindName(item))
			ok = false
			continue
		}
		s, good := sub.str(item)
		ok = ok && good
		names = append(names, s)
	}
	if ok && len(names) > 0 { // [] is the default, nil
		f.app.DependsOn = names
	}
}

// appFieldNames lists the fields of an app, for suggestions.
var appFieldNames = func() []string {
	names := make([]string, 0, len(appFields))
	for name := range appFields {
		names = append(names, name)
	}
	return names
}()

// didYouMean returns ` (did you mean "x"?)` for a misspelt field name.
func didYouMean(k string) string {
	best := suggest.Closest(k, appFieldNames, 2)
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}
