package schema_test

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The README's field tables ("Top-level keys" and "App fields") are the
// manifest reference. The tests below hold them to the schema: every key of
// every level of the schema has a row, every row names a key of the schema,
// and where both state a default, the allowed values or an integer's bounds,
// they agree.

// readme is the reference, from this package's directory.
const readme = "../README.md"

// field is what the schema says of one manifest key.
type field struct {
	def      any // the default; nil when the schema states none
	hasDef   bool
	enum     []string
	min, max *float64
	parent   bool // has keys of its own (an object, or a form that is one)
}

// schemaFields flattens the schema's app object into dotted key paths
// (backoff.initial, healthCheck.http.port, ipc.relay, logs.maxFiles...), a
// key's object forms (a $ref, or oneOf members that are objects) giving
// their keys under its path. Array items are not entered: a list's items
// are described in its own row.
func schemaFields(t *testing.T, raw map[string]any) map[string]field {
	t.Helper()
	defs := lookup(t, raw, "$defs").(map[string]any)
	out := map[string]field{}
	var walk func(path string, p map[string]any, depth int)
	resolve := func(p map[string]any) map[string]any {
		ref, ok := p["$ref"].(string)
		if !ok {
			return p
		}
		target, ok := defs[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
		if !ok {
			t.Fatalf("schema: unresolved %s", ref)
		}
		merged := map[string]any{}
		for k, v := range target {
			merged[k] = v
		}
		for k, v := range p { // the property's own default, title... win
			if k != "$ref" {
				merged[k] = v
			}
		}
		return merged
	}
	walk = func(path string, p map[string]any, depth int) {
		if depth > 8 {
			t.Fatalf("schema: %s nests too deep", path)
		}
		p = resolve(p)
		forms := []map[string]any{p}
		for _, o := range anyList(p["oneOf"]) {
			if m, ok := o.(map[string]any); ok {
				forms = append(forms, resolve(m))
			}
		}
		f := fieldOf(p, forms)
		for _, form := range forms {
			props, _ := form["properties"].(map[string]any)
			for k, v := range props {
				walk(join(path, k), v.(map[string]any), depth+1)
			}
		}
		if path != "" {
			out[path] = f
		}
	}
	walk("", lookup(t, raw, "$defs", "app").(map[string]any), 0)
	return out
}

// fieldOf returns what a property's schema p, and the forms it may take
// (p and its oneOf members, resolved), say of its value.
func fieldOf(p map[string]any, forms []map[string]any) field {
	f := field{}
	if d, ok := p["default"]; ok {
		f.def, f.hasDef = d, true
	}
	for _, form := range forms {
		for _, e := range anyList(form["enum"]) {
			if s, ok := e.(string); ok {
				f.enum = append(f.enum, s)
			}
		}
		if form["type"] == "integer" || form["type"] == nil {
			if v, ok := form["minimum"].(float64); ok {
				f.min = &v
			}
			if v, ok := form["maximum"].(float64); ok {
				f.max = &v
			}
		}
		if _, ok := form["properties"].(map[string]any); ok {
			f.parent = true
		}
	}
	return f
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

func anyList(v any) []any {
	l, _ := v.([]any)
	return l
}

// row is one row of a README field table.
type row struct {
	line            int
	names           []string
	typ, def, means string
}

var (
	codeSpan = regexp.MustCompile("`([^`]*)`")
	// cellSep splits a table row at the pipes that are not escaped (\|).
	cellSep = regexp.MustCompile(`(^|[^\\])\|`)
)

// tableRows returns the rows of the first table under the heading named
// title in the README (its lines that start with "| `").
func tableRows(t *testing.T, title string) []row {
	t.Helper()
	b, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	start := slices.Index(lines, title)
	if start < 0 {
		t.Fatalf("README.md has no heading %q", title)
	}
	var rows []row
	for i := start + 1; i < len(lines); i++ {
		l := lines[i]
		if strings.HasPrefix(l, "#") {
			break
		}
		if !strings.HasPrefix(l, "| `") {
			if len(rows) > 0 {
				break // the table ended
			}
			continue
		}
		cells := splitRow(l)
		if len(cells) < 4 {
			t.Fatalf("README.md:%d: a field row needs field, type, default and meaning: %s", i+1, l)
		}
		r := row{line: i + 1, typ: cells[1], def: cells[2], means: cells[3]}
		for _, m := range codeSpan.FindAllStringSubmatch(cells[0], -1) {
			r.names = append(r.names, m[1])
		}
		rows = append(rows, r)
	}
	if len(rows) == 0 {
		t.Fatalf("README.md: no table under %q", title)
	}
	return rows
}

// splitRow returns the cells of a Markdown table row, \| kept as |.
func splitRow(l string) []string {
	l = strings.TrimSpace(l)
	l = strings.TrimPrefix(strings.TrimSuffix(l, "|"), "|")
	marked := cellSep.ReplaceAllString(l, "$1\x00")
	var cells []string
	for _, c := range strings.Split(marked, "\x00") {
		cells = append(cells, strings.TrimSpace(strings.ReplaceAll(c, `\|`, "|")))
	}
	return cells
}

// statedDefault returns the default a README cell states: a single code
// span (`1`, `rr`, `100ms`, `[]`), optionally followed by a remark in
// parentheses; none for "—", "none" or prose.
func statedDefault(cell string) (string, bool) {
	m := regexp.MustCompile("^`([^`]*)`(\\s*\\(.*\\))?$").FindStringSubmatch(cell)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// statedNoDefault reports whether a README cell says there is no default.
func statedNoDefault(cell string) bool {
	return cell == "—" || cell == "none"
}

// statedEnum returns the values a README type cell allows, when it lists
// them: code spans separated by |, before any ", or ..." (ranges such as
// 1–65535 may stand among them), or a single code span.
func statedEnum(cell string) ([]string, bool) {
	head, _, _ := strings.Cut(cell, ", ")
	parts := strings.Split(head, "|")
	span := regexp.MustCompile("^`([^`]*)`$")
	rangeRE := regexp.MustCompile(`^\d+–\d+$`)
	var out []string
	for _, p := range parts {
		p = strings.TrimSpace(p)
		if m := span.FindStringSubmatch(p); m != nil {
			out = append(out, m[1])
		} else if !rangeRE.MatchString(p) {
			return nil, false
		}
	}
	return out, len(out) > 0
}

// statedBounds returns the integer bounds a README type cell states:
// "integer ≥ N" or "integer N–M".
func statedBounds(cell string) (lo, hi *float64) {
	if m := regexp.MustCompile(`^integer ≥ (\d+)`).FindStringSubmatch(cell); m != nil {
		v, _ := strconv.ParseFloat(m[1], 64)
		return &v, nil
	}
	if m := regexp.MustCompile(`^integer (\d+)–(\d+)`).FindStringSubmatch(cell); m != nil {
		a, _ := strconv.ParseFloat(m[1], 64)
		b, _ := strconv.ParseFloat(m[2], 64)
		return &a, &b
	}
	return nil, nil
}

// render writes a schema default as the README writes it.
func render(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// checkRows compares the rows of a README table with the schema's fields.
func checkRows(t *testing.T, table string, rows []row, fields map[string]field) {
	t.Helper()
	documented := map[string]bool{}
	for _, r := range rows {
		at := fmt.Sprintf("README.md:%d (%s)", r.line, table)
		if len(r.names) == 0 {
			t.Errorf("%s: a row without a field name", at)
		}
		for _, name := range r.names {
			documented[name] = true
			f, ok := fields[name]
			if !ok {
				t.Errorf("%s: %s: the schema has no such field", at, name)
				continue
			}
			checkRow(t, at, name, r, f)
		}
	}
	var missing []string
	for name, f := range fields {
		if documented[name] {
			continue
		}
		// An object whose every key has a row is documented by them.
		if f.parent && childrenDocumented(name, fields, documented) {
			continue
		}
		missing = append(missing, name)
	}
	slices.Sort(missing)
	for _, name := range missing {
		t.Errorf("README.md (%s): the schema's field %s has no row", table, name)
	}
}

func childrenDocumented(name string, fields map[string]field, documented map[string]bool) bool {
	for k := range fields {
		if strings.HasPrefix(k, name+".") && !documented[k] && !fields[k].parent {
			return false
		}
	}
	return true
}

// checkRow compares what one row states of a field with the schema.
func checkRow(t *testing.T, at, name string, r row, f field) {
	t.Helper()
	checkDefault(t, at, name, r, f)
	checkEnum(t, at, name, r, f)
	lo, hi := statedBounds(r.typ)
	if lo != nil && (f.min == nil || *f.min != *lo) {
		t.Errorf("%s: %s: the README's minimum is %v, the schema's %v", at, name, *lo, deref(f.min))
	}
	if hi != nil && (f.max == nil || *f.max != *hi) {
		t.Errorf("%s: %s: the README's maximum is %v, the schema's %v", at, name, *hi, deref(f.max))
	}
}

// checkDefault compares the default a row states with the schema's.
func checkDefault(t *testing.T, at, name string, r row, f field) {
	t.Helper()
	if d, ok := statedDefault(r.def); ok {
		if f.hasDef && render(f.def) != d {
			t.Errorf("%s: %s: the README's default is %q, the schema's %q", at, name, d, render(f.def))
		}
	} else if statedNoDefault(r.def) && f.hasDef {
		t.Errorf("%s: %s: the README says no default (%s), the schema's is %q", at, name, r.def, render(f.def))
	}
}

// checkEnum compares the values a row allows with the schema's enum.
func checkEnum(t *testing.T, at, name string, r row, f field) {
	t.Helper()
	enum, ok := statedEnum(r.typ)
	if !ok {
		return
	}
	if len(f.enum) == 0 {
		t.Errorf("%s: %s: the README lists values %q, the schema has no enum", at, name, enum)
		return
	}
	a, b := slices.Clone(enum), slices.Clone(f.enum)
	slices.Sort(a)
	slices.Sort(b)
	if !slices.Equal(a, b) {
		t.Errorf("%s: %s: the README allows %q, the schema %q", at, name, enum, f.enum)
	}
}

func deref(p *float64) any {
	if p == nil {
		return "none"
	}
	return *p
}

// TestReadmeAppFields: the README's "App fields" table is the reference of
// every key of an app, nested keys included (backoff.*, rollout.*, ipc.*,
// healthCheck.*, logs.*), and agrees with the schema.
func TestReadmeAppFields(t *testing.T) {
	fields := schemaFields(t, rawSchema(t))
	for _, want := range []string{"exec", "backoff.initial", "rollout.onStall", "ipc.mode", "ipc.relay", "healthCheck.http.port", "logs.streams"} {
		if _, ok := fields[want]; !ok {
			t.Fatalf("schemaFields missed %s: %v", want, fields)
		}
	}
	checkRows(t, "App fields", tableRows(t, "### App fields"), fields)
}

// TestReadmeTopLevelKeys: the README's "Top-level keys" table names every
// key a manifest file may have beside apps' own, as the schema does.
func TestReadmeTopLevelKeys(t *testing.T) {
	raw := rawSchema(t)
	fields := map[string]field{}
	for k, v := range lookup(t, raw, "properties").(map[string]any) {
		f := field{}
		if d, ok := v.(map[string]any)["default"]; ok {
			f.def, f.hasDef = d, true
		}
		fields[k] = f
	}
	for pattern := range lookup(t, raw, "patternProperties").(map[string]any) {
		fields[strings.TrimPrefix(pattern, "^")+"*"] = field{}
	}
	checkRows(t, "Top-level keys", tableRows(t, "### Top-level keys"), fields)
}

// TestReferenceChecks: the README parsing that the tests above rely on.
func TestReferenceChecks(t *testing.T) {
	cells := splitRow("| `a`, `b` | `x` \\| `y` | `1` (one) | text |")
	if want := []string{"`a`, `b`", "`x` | `y`", "`1` (one)", "text"}; !slices.Equal(cells, want) {
		t.Errorf("splitRow = %q, want %q", cells, want)
	}
	for cell, want := range map[string]string{"`1`": "1", "`0s` (none)": "0s", "—": "", "`node` for `.js`; else none": ""} {
		got, _ := statedDefault(cell)
		if got != want {
			t.Errorf("statedDefault(%q) = %q, want %q", cell, got, want)
		}
	}
	for cell, want := range map[string][]string{
		"`rr` | `none`":                        {"rr", "none"},
		"`auto` | `node`, or a mapping":        {"auto", "node"},
		"`listen` | `worker` | 1–65535":        {"listen", "worker"},
		"`json`":                               {"json"},
		"`true`/`false`":                       nil,
		"integer ≥ 0, or `\"auto\"`":           nil,
		"list of strings":                      nil,
		"duration ≥ `100ms`, or `0s`":          nil,
		"`keep` | `rollback`":                  {"keep", "rollback"},
		"mapping, or `false`":                  nil,
		"size > 0: bytes, or `Ki`, `Mi`, `Gi`": nil,
	} {
		if got, _ := statedEnum(cell); !slices.Equal(got, want) {
			t.Errorf("statedEnum(%q) = %q, want %q", cell, got, want)
		}
	}
}
