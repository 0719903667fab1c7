package manifest

import (
	"fmt"
	"strings"

	"github.com/paddock-sh/paddock/internal/suggest"
)

// This file holds the checks of `dependsOn:` across the apps of a set.

// validateDependsOn checks the dependsOn lists of the apps of set: each
// name is that of another app of the set (with a suggestion for a close
// one), listed once, and no app depends on itself through others. Every
// error is at the list item at fault; a cycle is reported once, at the
// item that closes it, and named whole ("web -> api -> web").
func validateDependsOn(set *Set, l *errorList) {
	names := set.Names()
	// edges holds, per app, the dependencies that passed the checks of
	// one item, with the item's index: the graph the cycles are looked
	// for in.
	type edge struct {
		to    string
		index int
	}
	edges := map[string][]edge{}
	for _, name := range names {
		a := set.Apps[name]
		seen := map[string]bool{}
		for i, dep := range a.DependsOn {
			key := fmt.Sprintf("dependsOn[%d]", i)
			pos, field := a.posOf(key), "apps."+name+"."+key
			switch {
			case dep == name:
				l.add(pos, field, "an app cannot depend on itself")
			case seen[dep]:
				l.add(pos, field, "%s is listed twice", dep)
			case set.Apps[dep] == nil:
				l.add(pos, field, "unknown app %q%s", dep, appHint(dep, name, names))
			default:
				edges[name] = append(edges[name], edge{dep, i})
			}
			seen[dep] = true
		}
	}

	// A depth-first walk in name order: an edge to an app still on the
	// walk's path closes a cycle.
	const (
		unvisited = iota
		onPath
		finished
	)
	state := map[string]int{}
	var path []string
	var visit func(name string)
	visit = func(name string) {
		state[name] = onPath
		path = append(path, name)
		for _, e := range edges[name] {
			switch state[e.to] {
			case unvisited:
				visit(e.to)
			case onPath:
				start := len(path) - 1
				for path[start] != e.to {
					start--
				}
				// Named from the app whose item closes it.
				cycle := append([]string{name}, path[start:]...)
				a := set.Apps[name]
				key := fmt.Sprintf("dependsOn[%d]", e.index)
				l.add(a.posOf(key), "apps."+name+"."+key, "dependency cycle: %s", strings.Join(cycle, " -> "))
			}
		}
		path = path[:len(path)-1]
		state[name] = finished
	}
	for _, name := range names {
		if state[name] == unvisited {
			visit(name)
		}
	}
}

// appHint returns ` (did you mean "x"?)` for dep, a name that is not one of
// names, when one of them other than self is close to it.
func appHint(dep, self string, names []string) string {
	others := make([]string, 0, len(names))
	for _, n := range names {
		if n != self {
			others = append(others, n)
		}
	}
	// Two edits turn "db" into "web": short names get fewer.
	best := suggest.Closest(dep, others, min(2, (len(dep)-1)/2))
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}
