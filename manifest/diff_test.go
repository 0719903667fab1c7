package manifest

import (
	"strings"
	"testing"
	"time"
)

func TestDiff(t *testing.T) {
	app := func(name string, instances int, mod func(a *App)) *App {
		a := &App{Name: name, Exec: "./srv", Instances: instances, Env: map[string]string{"SECRET": "hunter2", "A": "1"},
			Backoff: Backoff{Initial: time.Second, Max: time.Minute}}
		if mod != nil {
			mod(a)
		}
		return a
	}
	set := func(apps ...*App) *Set {
		s := &Set{Apps: map[string]*App{}}
		for _, a := range apps {
			s.Apps[a.Name] = a
		}
		return s
	}
	prev := set(app("web", 2, nil), app("api", 1, nil), app("old", 3, nil), app("same", 1, nil),
		app("guard", 1, nil), app("watch", 1, nil), app("chat", 2, nil))
	next := set(
		app("web", 4, func(a *App) {
			a.Args = []string{"--x"}
			a.Env["SECRET"] = "correct horse"
			delete(a.Env, "A")
			a.Env["B"] = "2"
			a.Backoff.Max = time.Hour
		}),
		app("api", 3, nil),
		app("new", 2, nil),
		app("same", 1, nil),
		app("guard", 1, func(a *App) { a.Critical = true }),
		app("watch", 2, func(a *App) { a.FailAfter = time.Minute }),
		app("chat", 2, func(a *App) { a.Relay = relayPreset(RelayPresetSocketIO) }),
	)
	var lines []string
	for _, c := range Diff(prev, next) {
		lines = append(lines, c.String())
	}
	got := strings.Join(lines, "\n")
	want := strings.Join([]string{
		"api: scaled 1→3",
		"chat: reconfigured (ipc.relay)",
		"guard: reconfigured (critical)",
		"new: added 2",
		"old: removed 3",
		"watch: reconfigured (failAfter) 1→2",
		"web: updated (args, env.A, env.B, env.SECRET, backoff.max) 2→4",
	}, "\n")
	if got != want {
		t.Errorf("Diff:\n%s\nwant:\n%s", got, want)
	}
	if strings.Contains(got, "hunter2") || strings.Contains(got, "correct horse") {
		t.Error("a diff shows an environment value")
	}
	if d := Diff(prev, prev); len(d) != 0 {
		t.Errorf("Diff of a set with itself: %v", d)
	}
	if d := Diff(nil, set(app("x", 1, nil))); len(d) != 1 || d[0].Kind != ChangeAdded {
		t.Errorf("Diff from nil: %v", d)
	}
}
