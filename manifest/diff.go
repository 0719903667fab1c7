package manifest

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// Change kinds.
const (
	ChangeAdded   = "added"   // a new app: its workers start
	ChangeRemoved = "removed" // an app gone: its workers are retired
	ChangeScaled  = "scaled"  // only instances changed
	ChangeUpdated = "updated" // the spec changed: a rolling update (instances may change too)
	// ChangeReconfigured: only fields that do not replace workers changed
	// (dependsOn, critical, failAfter, ipc.relay, logs), and maybe instances;
	// the workers are kept.
	ChangeReconfigured = "reconfigured"
)

// Change is how one app differs between two sets.
type Change struct {
	App  string
	Kind string
	// From and To are the instances before and after.
	From, To int
	// Fields lists the manifest fields that differ, for an update:
	// "args", "backoff.max", "env.API_KEY". Environment values are never
	// included, only the names of the variables that changed.
	Fields []string
}

// String describes the change in one phrase: "web: updated (args, env.TOKEN)
// 2→3".
func (c Change) String() string {
	s := c.App + ": " + c.Kind
	if len(c.Fields) > 0 {
		s += " (" + strings.Join(c.Fields, ", ") + ")"
	}
	switch {
	case c.Kind == ChangeAdded:
		s += fmt.Sprintf(" %d", c.To)
	case c.Kind == ChangeRemoved:
		s += fmt.Sprintf(" %d", c.From)
	case c.From != c.To:
		s += fmt.Sprintf(" %d→%d", c.From, c.To)
	}
	return s
}

// Diff returns how next differs from prev, app by app in name order. A nil
// prev is an empty set. Apps whose spec and instances are equal are left
// out: an empty result means applying next changes nothing.
func Diff(prev, next *Set) []Change {
	if prev == nil {
		prev = &Set{}
	}
	if next == nil {
		next = &Set{}
	}
	names := map[string]bool{}
	for n := range prev.Apps {
		names[n] = true
	}
	for n := range next.Apps {
		names[n] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	var out []Change
	for _, n := range sorted {
		a, b := prev.Apps[n], next.Apps[n]
		switch {
		case a == nil:
			out = append(out, Change{App: n, Kind: ChangeAdded, To: b.Instances})
		case b == nil:
			out = append(out, Change{App: n, Kind: ChangeRemoved, From: a.Instances})
		case a.Generation() != b.Generation():
			fields := fieldDiff(a, b)
			if len(fields) == 0 {
				fields = []string{"resolved program or credentials"}
			}
			out = append(out, Change{App: n, Kind: ChangeUpdated, From: a.Instances, To: b.Instances, Fields: fields})
		case len(fieldDiff(a, b)) > 0:
			out = append(out, Change{App: n, Kind: ChangeReconfigured, From: a.Instances, To: b.Instances, Fields: fieldDiff(a, b)})
		case a.Instances != b.Instances:
			out = append(out, Change{App: n, Kind: ChangeScaled, From: a.Instances, To: b.Instances})
		}
	}
	return out
}

// fieldDiff names the manifest fields (yaml tags) that differ between a and
// b, instances aside.
func fieldDiff(a, b *App) []string {
	var fields []string
	va, vb := reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem()
	t := va.Type()
	for i := range t.NumField() {
		tag := t.Field(i).Tag.Get("yaml")
		if tag == "" || tag == "-" || tag == "instances" {
			continue
		}
		fa, fb := va.Field(i).Interface(), vb.Field(i).Interface()
		if tag == "env" {
			fields = append(fields, envDiff(a.Env, b.Env)...)
			continue
		}
		if tag == "logs" {
			if !a.Logs.Equal(b.Logs) {
				fields = append(fields, "logs")
			}
			continue
		}
		if !reflect.DeepEqual(fa, fb) {
			fields = append(fields, subfieldDiff(tag, va.Field(i), vb.Field(i))...)
		}
	}
	if !reflect.DeepEqual(a.Relay, b.Relay) {
		fields = append(fields, "ipc.relay") // no yaml tag of its own
	}
	return fields
}

// subfieldDiff names the differing sub-fields of a struct field such as
// backoff, or the field itself.
func subfieldDiff(name string, a, b reflect.Value) []string {
	if a.Kind() != reflect.Struct {
		return []string{name}
	}
	var out []string
	for i := range a.Type().NumField() {
		if !reflect.DeepEqual(a.Field(i).Interface(), b.Field(i).Interface()) {
			out = append(out, name+"."+a.Type().Field(i).Tag.Get("yaml"))
		}
	}
	return out
}

func envDiff(a, b map[string]string) []string {
	var out []string
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			out = append(out, "env."+k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, "env."+k)
		}
	}
	sort.Strings(out)
	return out
}
