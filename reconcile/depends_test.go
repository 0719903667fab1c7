package reconcile

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkPlanDependencies is BenchmarkPlan with each of the 20 apps
// depending on the one before it (a chain: the deepest order there is),
// every dependency available.
func BenchmarkPlanDependencies(b *testing.B) {
	desired := map[string]AppSpec{}
	var observed []Worker
	id := 1
	for a := 0; a < 20; a++ {
		name := fmt.Sprintf("app-%02d", a)
		spec := AppSpec{Name: name, Generation: "g", Instances: 50, KillSignal: "SIGTERM", KillTimeout: 5 * time.Second}
		if a > 0 {
			spec.DependsOn = []string{fmt.Sprintf("app-%02d", a-1)}
		}
		desired[name] = spec
		for i := 0; i < 50; i++ {
			if a == 19 && i == 0 {
				continue
			}
			observed = append(observed, Worker{ID: id, App: name, Generation: "g", Phase: Running, Ready: true, ReadyAt: epoch})
			id++
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		r := Plan(desired, observed, epoch.Add(time.Hour))
		if len(r.Actions) != 1 || len(r.Held) != 0 {
			b.Fatalf("plan %v, held %v", r.Actions, r.Held)
		}
	}
}
