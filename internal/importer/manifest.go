// Package importer converts the configuration of other process managers
// (PM2's ecosystem files, supervisord's INI files) into a paddock manifest,
// written as YAML with a comment for every option of the source: what it
// became, or why it has no equivalent and what to use instead. No option
// of the source is dropped without a comment.
package importer

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Manifest is a converted configuration: the apps in the order of the
// source, and notes about the source as a whole (sections or top-level
// keys that are not about one app).
type Manifest struct {
	// Source names the converter and the file ("pm2 ecosystem.config.js").
	Source string
	// Notes are comments written before apps:, one per line.
	Notes []string
	// Apps are the converted apps, in the source's order.
	Apps []*App
}

// App is one app of a converted manifest: its fields in the order they are
// written, and the comments about it.
type App struct {
	// Name is the paddock app name (valid for a manifest).
	Name string
	// Notes are comments written above the app's name.
	Notes []string
	// fields are the app's keys in the order set.
	fields []field
}

type field struct {
	key     string
	value   *yaml.Node
	comment string
}

// Set sets key to value (a string, int, bool, []string, map[string]string
// with its key order in keys, or a *yaml.Node), replacing an earlier
// value of key, with comment after it (empty: none).
func (a *App) Set(key string, value any, comment string) {
	n := toNode(value)
	for i := range a.fields {
		if a.fields[i].key == key {
			a.fields[i].value = n
			if comment != "" && !strings.Contains(a.fields[i].comment, comment) {
				a.fields[i].comment = joinComment(a.fields[i].comment, comment)
			}
			return
		}
	}
	a.fields = append(a.fields, field{key: key, value: n, comment: comment})
}

// Has reports whether key is set.
func (a *App) Has(key string) bool {
	for _, f := range a.fields {
		if f.key == key {
			return true
		}
	}
	return false
}

// Note adds a comment line above the app.
func (a *App) Note(format string, args ...any) {
	a.Notes = append(a.Notes, fmt.Sprintf(format, args...))
}

func joinComment(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// Env is an ordered map of strings, as a YAML mapping.
type Env struct {
	Keys   []string
	Values map[string]string
}

// Put sets k to v, keeping the first position of k.
func (e *Env) Put(k, v string) {
	if e.Values == nil {
		e.Values = map[string]string{}
	}
	if _, ok := e.Values[k]; !ok {
		e.Keys = append(e.Keys, k)
	}
	e.Values[k] = v
}

func toNode(v any) *yaml.Node {
	switch v := v.(type) {
	case *yaml.Node:
		return v
	case string:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v}
	case int:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: fmt.Sprint(v)}
	case int64:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: fmt.Sprint(v)}
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: fmt.Sprint(v)}
	case []string:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle}
		for _, s := range v {
			n.Content = append(n.Content, toNode(s))
		}
		return n
	case *Env:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		for _, k := range v.Keys {
			n.Content = append(n.Content, toNode(k), toNode(v.Values[k]))
		}
		return n
	case []field:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		for _, f := range v {
			k := toNode(f.key)
			if f.value.Kind == yaml.MappingNode {
				// After the key: on a block mapping the encoder would
				// put it after the mapping's last line.
				k.LineComment = comment(f.comment)
			} else {
				f.value.LineComment = comment(f.comment)
			}
			n.Content = append(n.Content, k, f.value)
		}
		return n
	}
	panic(fmt.Sprintf("importer: no YAML for %T", v))
}

// comment makes s a YAML comment, one "# " per line.
func comment(s string) string {
	if s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = "# " + strings.Map(printable, l)
	}
	return strings.Join(lines, "\n")
}

// printable keeps the runes YAML allows in a comment and makes the
// others (control characters, invalid UTF-8) a '?': comments quote the
// source, which may hold anything.
func printable(r rune) rune {
	switch {
	case r == '\t', r >= 0x20 && r <= 0x7e, r == 0x85, r >= 0xa0 && r <= 0xd7ff,
		r >= 0xe000 && r <= 0xfffd && r != 0xfeff, r >= 0x10000 && r <= 0x10ffff:
		return r
	}
	return '?'
}

// YAML writes m as a paddock manifest.
func (m *Manifest) YAML() ([]byte, error) {
	apps := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for _, a := range m.Apps {
		k := toNode(a.Name)
		k.HeadComment = comment(strings.Join(a.Notes, "\n"))
		v := toNode(a.fields)
		if len(a.fields) == 0 {
			v.Style = yaml.FlowStyle
		}
		apps.Content = append(apps.Content, k, v)
	}
	if len(m.Apps) == 0 {
		apps.Style = yaml.FlowStyle
	}
	head := []string{
		"Converted by paddock import " + m.Source + ".",
		"Every option of the source is here: mapped (its name in a comment after the field),",
		"or in a comment saying why it has no equivalent and what to use instead.",
		"Check it with: paddock validate FILE",
	}
	if len(m.Notes) > 0 {
		head = append(head, "")
		head = append(head, m.Notes...)
	}
	key := toNode("apps")
	key.HeadComment = comment(strings.Join(head, "\n"))
	for i := 0; i+1 < len(apps.Content); i += 2 {
		if err := checkUTF8(apps.Content[i+1], "apps."+apps.Content[i].Value); err != nil {
			return nil, err
		}
	}
	doc := &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{
		Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{key, apps},
	}}}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("write manifest: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("write manifest: %w", err)
	}
	return b.Bytes(), nil
}

// ErrNotUTF8 is returned for a value a YAML manifest cannot hold.
var ErrNotUTF8 = errors.New("not UTF-8: a YAML manifest cannot hold it")

// checkUTF8 reports the first value under n, at path, that is not UTF-8.
func checkUTF8(n *yaml.Node, path string) error {
	switch n.Kind {
	case yaml.ScalarNode:
		if !utf8.ValidString(n.Value) {
			return fmt.Errorf("%s: %q: %w", path, n.Value, ErrNotUTF8)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if err := checkUTF8(c, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if !utf8.ValidString(k.Value) {
				return fmt.Errorf("%s: key %q: %w", path, k.Value, ErrNotUTF8)
			}
			if err := checkUTF8(n.Content[i+1], path+"."+k.Value); err != nil {
				return err
			}
		}
	}
	return nil
}

var nameBad = regexp.MustCompile(`[^a-z0-9-]+`)

// appName turns a source's process name into a valid paddock app name
// (lower-case letters, digits and '-', at most 63, starting and ending
// with a letter or digit), unique among taken; fallback when nothing is
// left of it.
func appName(src, fallback string, taken map[string]bool) string {
	n := nameBad.ReplaceAllString(strings.ToLower(src), "-")
	n = strings.Trim(n, "-")
	if len(n) > 63 {
		n = strings.Trim(n[:63], "-")
	}
	if n == "" {
		n = fallback
	}
	base := n
	for i := 2; taken[n]; i++ {
		suffix := fmt.Sprintf("-%d", i)
		b := base
		if len(b)+len(suffix) > 63 {
			b = strings.Trim(b[:63-len(suffix)], "-")
		}
		n = b + suffix
	}
	taken[n] = true
	return n
}
