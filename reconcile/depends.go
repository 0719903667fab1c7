package reconcile

import (
	"container/heap"
	"fmt"
	"slices"
	"strings"
	"time"
)

// This file holds what Plan does with the dependencies between apps: the
// order it plans them in, when an app is available to those that depend
// on it, and which removals wait for others.

// graph holds the dependencies of the apps of one plan, and what the plan
// learnt so far of the apps others depend on.
type graph struct {
	// order is the order the apps are planned in: each after the apps it
	// depends on, ties in name order.
	order []string
	// rank is each app's place in order; on the dependencies of each app
	// (AppSpec.DependsOn for a desired app, its workers' DependsOn for
	// another). Both are nil when no app depends on another.
	rank map[string]int
	on   map[string][]string
	// dependants lists, for each app, the apps that depend on it (the
	// dependencies Plan follows only, in name order); isDependency marks
	// the apps others depend on.
	dependants   map[string][]string
	isDependency map[string]bool
	// avail holds, for each desired app that others depend on and that
	// was planned already, whether it is available after its actions.
	avail map[string]avail
}

// newGraph returns the dependency graph of the apps names (sorted), of
// which desired are wanted and byApp have workers.
func newGraph(desired map[string]AppSpec, byApp map[string][]Worker, names []string) *graph {
	g := &graph{order: names}
	for _, name := range names {
		var deps []string
		if spec, ok := desired[name]; ok {
			deps = spec.DependsOn
		} else {
			deps = workerDeps(byApp[name])
		}
		if len(deps) > 0 {
			if g.on == nil {
				g.on = map[string][]string{}
			}
			g.on[name] = deps
		}
	}
	if g.on == nil {
		return g // no dependencies: name order
	}
	g.order = startOrder(names, g.on)
	g.rank = make(map[string]int, len(g.order))
	for i, name := range g.order {
		g.rank[name] = i
	}
	g.dependants, g.isDependency, g.avail = map[string][]string{}, map[string]bool{}, map[string]avail{}
	for _, name := range names {
		for _, dep := range g.on[name] {
			if g.follows(name, dep) {
				g.isDependency[dep] = true
				if !slices.Contains(g.dependants[dep], name) {
					g.dependants[dep] = append(g.dependants[dep], name)
				}
			}
		}
	}
	return g
}

// workerDeps returns the dependencies the workers ws carry, each once.
func workerDeps(ws []Worker) []string {
	var deps []string
	for _, w := range ws {
		for _, d := range w.DependsOn {
			if !slices.Contains(deps, d) {
				deps = append(deps, d)
			}
		}
	}
	return deps
}

// follows reports whether Plan follows app's dependency on dep: dep is
// another app, planned before app (or declared nowhere). A dependency that
// goes against the order closes a cycle, which is broken there.
func (g *graph) follows(app, dep string) bool {
	if dep == app {
		return false
	}
	r, known := g.rank[dep]
	return !known || r < g.rank[app]
}

// startOrder returns names (sorted) ordered so that every app comes after
// the apps of names it depends on (on), ties in name order. On a cycle, the
// app first in name order among those left comes next.
func startOrder(names []string, on map[string][]string) []string {
	known := make(map[string]bool, len(names))
	for _, n := range names {
		known[n] = true
	}
	waiting := map[string]int{}         // dependencies not placed yet
	dependants := map[string][]string{} // who waits for whom
	for _, n := range names {
		for _, d := range on[n] {
			if d != n && known[d] {
				waiting[n]++
				dependants[d] = append(dependants[d], n)
			}
		}
	}
	ready := &nameHeap{}
	for _, n := range names {
		if waiting[n] == 0 {
			heap.Push(ready, n)
		}
	}
	placed := make(map[string]bool, len(names))
	order := make([]string, 0, len(names))
	next := 0 // the first name that may not be placed yet
	for len(order) < len(names) {
		var n string
		if ready.Len() > 0 {
			n = heap.Pop(ready).(string)
		} else {
			// Only cycles are left: break the first in name order.
			for placed[names[next]] {
				next++
			}
			n = names[next]
		}
		if placed[n] {
			continue
		}
		placed[n] = true
		order = append(order, n)
		for _, m := range dependants[n] {
			if waiting[m]--; waiting[m] == 0 && !placed[m] {
				heap.Push(ready, m)
			}
		}
	}
	return order
}

// nameHeap is a min-heap of app names (container/heap).
type nameHeap []string

func (h nameHeap) Len() int           { return len(h) }
func (h nameHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h nameHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *nameHeap) Push(x any)        { *h = append(*h, x.(string)) }
func (h *nameHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// avail says whether an app is available to the apps that depend on it.
type avail struct {
	ok bool
	// why says, when not ok, what is missing: "0/1 available".
	why string
	// next is when a ready worker of the app becomes available (it has
	// not been ready for its MinReadyTime yet); zero: none will.
	next time.Time
}

// availability returns whether the desired app spec, with workers ws and
// after actions (this plan's, for it) and rollout status rs, is available:
// not in a stalled rolling update, and with at least max(1,
// Instances-MaxUnavailable) workers of any generation running, ready for
// MinReadyTime and not being stopped by actions (old workers of a rolling
// update serve too). An app with no instance wanted is available.
func availability(spec AppSpec, ws []Worker, actions []Action, rs RolloutStatus, now time.Time) avail {
	if rs.Stalled != "" {
		return avail{why: "its rolling update is stalled"}
	}
	if spec.Instances == 0 {
		return avail{ok: true}
	}
	stopped := map[int]bool{}
	for _, a := range actions {
		if s, ok := a.(Stop); ok {
			stopped[s.Worker] = true
		}
	}
	need := max(1, spec.Instances-spec.MaxUnavailable)
	n := 0
	var next time.Time
	for _, w := range ws {
		if w.Phase != Running || !w.Ready || stopped[w.ID] {
			continue
		}
		at := w.availableAt(spec.MinReadyTime)
		if !now.Before(at) {
			n++
		} else if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	if n >= need {
		return avail{ok: true}
	}
	return avail{why: fmt.Sprintf("%d/%d available", n, need), next: next}
}

// waitFor returns why the desired app spec must wait for its
// dependencies ("waiting for db: 0/1 available, cache: its rolling update
// is stalled"), or "" when each is available. A dependency that is not
// desired is not available. When a dependency will be available at a
// known time (a ready worker's MinReadyTime ends), r is asked to plan
// again then.
func (g *graph) waitFor(r *Result, spec AppSpec, now time.Time) string {
	var parts []string
	for i, dep := range spec.DependsOn {
		if !g.follows(spec.Name, dep) || slices.Contains(spec.DependsOn[:i], dep) {
			continue
		}
		a, planned := g.avail[dep]
		if !planned {
			a = avail{why: "not declared"}
		}
		if a.ok {
			continue
		}
		parts = append(parts, dep+": "+a.why)
		if !a.next.IsZero() && a.next.After(now) {
			r.requeue(a.next)
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "waiting for " + strings.Join(parts, ", ")
}

// aliveDependant returns an app that depends on app and has a live worker
// (running or stopping), or "" when none has: the running workers of app,
// no longer desired, stop only then.
func (g *graph) aliveDependant(app string, byApp map[string][]Worker) string {
	for _, d := range g.dependants[app] {
		for _, w := range byApp[d] {
			if w.Phase == Running || w.Phase == Stopping {
				return d
			}
		}
	}
	return ""
}
