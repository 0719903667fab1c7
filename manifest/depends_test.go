package manifest

import (
	"slices"
	"strings"
	"testing"
)

// TestDecodeDependsOn: dependsOn keeps the names in order, each item's
// position under "dependsOn[i]", and leaves Generation alone.
func TestDecodeDependsOn(t *testing.T) {
	src := "apps:\n  web:\n    exec: x\n    dependsOn: [api, db]\n  api: {exec: x}\n  db: {exec: x}\n"
	apps, err := Decode("m.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	set, err := Validate(apps)
	if err != nil {
		t.Fatal(err)
	}
	web := set.Apps["web"]
	if !slices.Equal(web.DependsOn, []string{"api", "db"}) {
		t.Errorf("DependsOn = %q", web.DependsOn)
	}
	for key, want := range map[string]string{"dependsOn": "m.yaml:4:16", "dependsOn[0]": "m.yaml:4:17", "dependsOn[1]": "m.yaml:4:22"} {
		if got := web.Pos[key].String(); got != want {
			t.Errorf("Pos[%s] = %s, want %s", key, got, want)
		}
	}
	plain, _ := Decode("m.yaml", []byte("apps:\n  web:\n    exec: x\n"))
	if web.Generation() != plain[0].Generation() {
		t.Errorf("dependsOn changed the generation: %s, without it %s", web.Generation(), plain[0].Generation())
	}
}

// TestDiffDependsOn: a change of dependsOn alone is reported as
// reconfigured (the workers stay), with instances; beside a change that
// replaces the workers it is one more field of the update.
func TestDiffDependsOn(t *testing.T) {
	app := func(instances int, deps ...string) *App {
		return &App{Name: "web", Exec: "./srv", Instances: instances, DependsOn: deps}
	}
	set := func(a *App) *Set { return &Set{Apps: map[string]*App{a.Name: a}} }
	tests := []struct {
		prev, next *App
		want       string
	}{
		{app(2, "db"), app(2, "db"), ""},
		{app(2), app(2, "db"), "web: reconfigured (dependsOn)"},
		{app(2, "db", "api"), app(3, "api"), "web: reconfigured (dependsOn) 2→3"},
		{app(2, "db"), func() *App { a := app(2); a.Args = []string{"x"}; return a }(), "web: updated (args, dependsOn)"},
	}
	for _, tt := range tests {
		var got []string
		for _, c := range Diff(set(tt.prev), set(tt.next)) {
			got = append(got, c.String())
		}
		if strings.Join(got, "; ") != tt.want {
			t.Errorf("Diff(%q → %q) = %q, want %q", tt.prev.DependsOn, tt.next.DependsOn, got, tt.want)
		}
	}
}
