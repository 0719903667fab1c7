package reconcile

import (
	"testing"
	"time"
)

// TestStallIsSticky plans a crash-looping rolling update turn by turn, as
// the supervisor does: each plan's stall is recorded (StallOf) and passed
// back in AppSpec.Stall. Once stalled, the update stays stalled while the
// new worker's replacement starts, until a new worker is available.
func TestStallIsSticky(t *testing.T) {
	spec := AppSpec{Name: "web", Generation: "b", Instances: 2, MaxSurge: 1, KillSignal: "SIGTERM",
		KillTimeout: 5 * time.Second, MinReadyTime: time.Second}
	old := []Worker{
		{ID: 1, App: "web", Generation: "a", Phase: Running, Ready: true},
		{ID: 2, App: "web", Generation: "a", Phase: Running, Ready: true},
	}
	at := func(d time.Duration) time.Time { return epoch.Add(d) }
	steps := []struct {
		name        string
		now         time.Duration
		new         []Worker
		wantStalled string
		wantWorker  int
	}{
		{"starting", time.Second, []Worker{{ID: 3, Phase: Running, ReadyDeadline: at(30 * time.Second)}}, "", 0},
		{"it crashed before ready", 2 * time.Second,
			[]Worker{{ID: 3, Phase: Backoff, FailedUnready: true, RestartAt: at(3 * time.Second)}},
			"web/3 exited before it was ready", 3},
		{"its replacement starts", 3 * time.Second,
			[]Worker{{ID: 4, Phase: Running, ReadyDeadline: at(33 * time.Second)}},
			"web/3 exited before it was ready", 3},
		{"the replacement is ready, not yet available", 4 * time.Second,
			[]Worker{{ID: 4, Phase: Running, Ready: true, ReadyAt: at(4 * time.Second)}},
			"web/3 exited before it was ready", 3},
		{"it crashed within minReadyTime", 4500 * time.Millisecond,
			[]Worker{{ID: 4, Phase: Backoff, FailedUnready: true, ReadyAt: at(4 * time.Second), RestartAt: at(5 * time.Second)}},
			"web/3 exited before it was ready", 3},
		{"the next one is available: progress", 7 * time.Second,
			[]Worker{{ID: 5, Phase: Running, Ready: true, ReadyAt: at(5 * time.Second)}}, "", 0},
		{"a new stall after progress", 8 * time.Second,
			[]Worker{{ID: 5, Phase: Running, Ready: true, ReadyAt: at(5 * time.Second)},
				{ID: 6, Phase: Backoff, FailedUnready: true, RestartAt: at(9 * time.Second)}},
			"web/6 exited before it was ready", 6},
		{"the second new worker's replacement starts", 9 * time.Second,
			[]Worker{{ID: 5, Phase: Running, Ready: true, ReadyAt: at(5 * time.Second)},
				{ID: 7, Phase: Running, ReadyDeadline: at(39 * time.Second)}},
			"web/6 exited before it was ready", 6},
	}
	for _, step := range steps {
		observed := append([]Worker(nil), old...)
		for _, w := range step.new {
			w.App, w.Generation = "web", "b"
			observed = append(observed, w)
		}
		r := Plan(map[string]AppSpec{"web": spec}, observed, at(step.now))
		st, ok := r.Rollouts["web"]
		if !ok {
			t.Fatalf("%s: no rollout reported", step.name)
		}
		if st.Stalled != step.wantStalled || st.StalledWorker != step.wantWorker {
			t.Errorf("%s: stalled %q (worker %d), want %q (worker %d)", step.name, st.Stalled, st.StalledWorker, step.wantStalled, step.wantWorker)
		}
		spec.Stall = StallOf(st)
	}
}

// TestStallOf: the recorded stall carries the status's reason, worker and
// available count; a status that is not stalled records none.
func TestStallOf(t *testing.T) {
	if got := StallOf(RolloutStatus{NewReady: 2}); got != (Stall{}) {
		t.Errorf("not stalled: %+v", got)
	}
	got := StallOf(RolloutStatus{Stalled: "web/3 x", StalledWorker: 3, NewReady: 1, New: 2, Old: 1})
	if want := (Stall{Reason: "web/3 x", Worker: 3, NewReady: 1}); got != want {
		t.Errorf("StallOf = %+v, want %+v", got, want)
	}
}

func TestSettled(t *testing.T) {
	now := epoch.Add(time.Minute)
	spec := AppSpec{Name: "web", Generation: "b", Instances: 2, MinReadyTime: time.Second}
	ready := func(id int, gen string, readyAt time.Duration) Worker {
		return Worker{ID: id, App: "web", Generation: gen, Phase: Running, Ready: true, ReadyAt: now.Add(-readyAt)}
	}
	tests := []struct {
		name     string
		spec     AppSpec
		observed []Worker
		want     bool
	}{
		{"all available", spec, []Worker{ready(1, "b", time.Hour), ready(2, "b", time.Second)}, true},
		{"one ready for less than minReadyTime", spec, []Worker{ready(1, "b", time.Hour), ready(2, "b", time.Second-1)}, false},
		{"one short", spec, []Worker{ready(1, "b", time.Hour)}, false},
		{"one in backoff", spec, []Worker{ready(1, "b", time.Hour), {ID: 2, App: "web", Generation: "b", Phase: Backoff}}, false},
		{"one not ready", spec, []Worker{ready(1, "b", time.Hour), {ID: 2, App: "web", Generation: "b", Phase: Running}}, false},
		{"an old one still running", spec, []Worker{ready(1, "b", time.Hour), ready(2, "b", time.Hour), ready(3, "a", time.Hour)}, false},
		{"an old one stopping", spec, []Worker{ready(1, "b", time.Hour), ready(2, "b", time.Hour),
			{ID: 3, App: "web", Generation: "a", Phase: Stopping}}, true},
		{"an old one exited", spec, []Worker{ready(1, "b", time.Hour), ready(2, "b", time.Hour),
			{ID: 3, App: "web", Generation: "a", Phase: Backoff}}, true},
		{"another app's workers do not count", spec, []Worker{ready(1, "b", time.Hour),
			{ID: 2, App: "api", Generation: "b", Phase: Running, Ready: true, ReadyAt: now.Add(-time.Hour)}}, false},
		{"no instances, no worker", AppSpec{Name: "web", Generation: "b"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Settled(tt.spec, tt.observed, now); got != tt.want {
				t.Errorf("Settled = %t, want %t", got, tt.want)
			}
		})
	}
}
