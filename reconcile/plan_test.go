package reconcile

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden plans in testdata/")

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// parseCase reads the input half of a golden file:
//
//	now 10s
//	app NAME gen=G instances=N [signal=S] [timeout=D]
//	worker ID APP gen=G PHASE [restarts=N] [at=D] [deadline=D] [readyby=D] [killed] [ready] [failedunready]
//
// app also takes surge=N, unavailable=N (default 1 and 0) and minready=D,
// the flag rollingout (AppSpec.RollingOut), and stall=W:N, a stall recorded
// from an earlier plan (AppSpec.Stall: about worker W, with N new workers
// available then; its reason "APP/W recorded stall"); worker takes
// readyat=D. Both take depends=A,B (AppSpec.DependsOn, Worker.DependsOn).
//
// Times are offsets from an arbitrary epoch.
func parseCase(t *testing.T, input string) (map[string]AppSpec, []Worker, time.Time) {
	t.Helper()
	desired := map[string]AppSpec{}
	var observed []Worker
	now := epoch
	at := func(s string) time.Time {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("bad time %q: %v", s, err)
		}
		return epoch.Add(d)
	}
	sc := bufio.NewScanner(strings.NewReader(input))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		kv := map[string]string{}
		var flags []string
		for _, x := range f[1:] {
			if k, v, ok := strings.Cut(x, "="); ok {
				kv[k] = v
			} else {
				flags = append(flags, x)
			}
		}
		switch f[0] {
		case "now":
			now = at(f[1])
		case "app":
			n, _ := strconv.Atoi(kv["instances"])
			s := AppSpec{Name: f[1], Generation: kv["gen"], Instances: n, KillSignal: "SIGTERM", KillTimeout: 5 * time.Second}
			if v, ok := kv["signal"]; ok {
				s.KillSignal = v
			}
			if v, ok := kv["timeout"]; ok {
				s.KillTimeout, _ = time.ParseDuration(v)
			}
			s.MaxSurge, s.MaxUnavailable = 1, 0
			if v, ok := kv["surge"]; ok {
				s.MaxSurge, _ = strconv.Atoi(v)
			}
			if v, ok := kv["unavailable"]; ok {
				s.MaxUnavailable, _ = strconv.Atoi(v)
			}
			s.RollingOut = strings.Contains(sc.Text(), " rollingout")
			if v, ok := kv["minready"]; ok {
				s.MinReadyTime, _ = time.ParseDuration(v)
			}
			if v, ok := kv["stall"]; ok {
				w, n, _ := strings.Cut(v, ":")
				s.Stall.Worker, _ = strconv.Atoi(w)
				s.Stall.NewReady, _ = strconv.Atoi(n)
				s.Stall.Reason = fmt.Sprintf("%s/%d recorded stall", s.Name, s.Stall.Worker)
			}
			if v, ok := kv["depends"]; ok {
				s.DependsOn = strings.Split(v, ",")
			}
			desired[s.Name] = s
		case "worker":
			id, _ := strconv.Atoi(f[1])
			w := Worker{ID: id, App: f[2], Generation: kv["gen"], KillSignal: "SIGTERM", KillTimeout: 5 * time.Second}
			for _, fl := range flags[2:] {
				switch fl {
				case "running":
					w.Phase = Running
				case "stopping":
					w.Phase = Stopping
				case "backoff":
					w.Phase = Backoff
				case "done":
					w.Phase = Done
				case "killed":
					w.Killed = true
				case "ready":
					w.Ready = true
				case "failedunready":
					w.FailedUnready = true
				default:
					t.Fatalf("unknown flag %q", fl)
				}
			}
			w.Restarts, _ = strconv.Atoi(kv["restarts"])
			if v, ok := kv["at"]; ok {
				w.RestartAt = at(v)
			}
			if v, ok := kv["deadline"]; ok {
				w.StopDeadline = at(v)
			}
			if v, ok := kv["readyby"]; ok {
				w.ReadyDeadline = at(v)
			}
			if v, ok := kv["readyat"]; ok {
				w.ReadyAt = at(v)
			}
			w.Replace = kv["replace"]
			if v, ok := kv["depends"]; ok {
				w.DependsOn = strings.Split(v, ",")
			}
			observed = append(observed, w)
		default:
			t.Fatalf("unknown line %q", sc.Text())
		}
	}
	return desired, observed, now
}

func format(r Result) string {
	var b strings.Builder
	for _, a := range r.Actions {
		fmt.Fprintln(&b, a)
	}
	if !r.RequeueAt.IsZero() {
		fmt.Fprintf(&b, "requeue %s\n", r.RequeueAt.Sub(epoch))
	}
	names := make([]string, 0, len(r.Rollouts))
	for n := range r.Rollouts {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "rollout %s: %s\n", n, r.Rollouts[n])
	}
	held := make([]string, 0, len(r.Held))
	for n := range r.Held {
		held = append(held, n)
	}
	sort.Strings(held)
	for _, n := range held {
		fmt.Fprintf(&b, "held %s: %s\n", n, r.Held[n])
	}
	return b.String()
}

// TestPlanGolden runs every testdata/*.plan file: desired and observed
// state, a "---" line, then the expected actions. go test -update rewrites
// the expectations.
func TestPlanGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.plan")
	if len(files) < 10 {
		t.Fatalf("expected the golden plans in testdata/, found %d", len(files))
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".plan"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			input, want, ok := strings.Cut(string(data), "---\n")
			if !ok {
				t.Fatalf("%s: no --- separator", file)
			}
			desired, observed, now := parseCase(t, input)
			got := format(Plan(desired, observed, now))
			// Planning twice gives the same plan: no hidden state.
			if again := format(Plan(desired, observed, now)); again != got {
				t.Fatalf("plan is not deterministic:\n%s\nthen\n%s", got, again)
			}
			if *update {
				if err := os.WriteFile(file, []byte(input+"---\n"+got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got != want {
				t.Errorf("plan mismatch\n got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestAfterExit(t *testing.T) {
	delay := func(n int) time.Duration { return time.Duration(100<<(n-1)) * time.Millisecond }
	now := epoch.Add(time.Minute)
	base := Worker{ID: 4, App: "web", Generation: "g", Phase: Running, Restarts: 2}
	tests := []struct {
		name      string
		restart   string
		success   bool
		uptime    time.Duration
		wantPhase Phase
		wantN     int
	}{
		{"always after success", "always", true, time.Second, Backoff, 3},
		{"always after failure", "always", false, time.Second, Backoff, 3},
		{"on-failure after failure", "on-failure", false, time.Second, Backoff, 3},
		{"on-failure after success", "on-failure", true, time.Second, Done, 2},
		{"never after failure", "never", false, time.Second, Done, 2},
		{"never after success", "never", true, time.Second, Done, 2},
		{"count resets after a long run", "always", false, 10 * time.Second, Backoff, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := AfterExit(base, ExitPolicy{Restart: tt.restart, Delay: delay, ResetAfter: 10 * time.Second}, tt.success, tt.uptime, now)
			if got.Phase != tt.wantPhase || got.Restarts != tt.wantN {
				t.Fatalf("got phase %s restarts %d, want %s %d", got.Phase, got.Restarts, tt.wantPhase, tt.wantN)
			}
			if got.Phase == Backoff && !got.RestartAt.Equal(now.Add(delay(tt.wantN))) {
				t.Fatalf("RestartAt = %s, want now+%s", got.RestartAt.Sub(now), delay(tt.wantN))
			}
		})
	}
}

// BenchmarkPlan plans for 1000 running workers over 20 apps, one of which
// needs one more worker: the steady-state cost of each turn of the loop.
func BenchmarkPlan(b *testing.B) {
	desired := map[string]AppSpec{}
	var observed []Worker
	id := 1
	for a := 0; a < 20; a++ {
		name := fmt.Sprintf("app-%02d", a)
		desired[name] = AppSpec{Name: name, Generation: "g", Instances: 50, KillSignal: "SIGTERM", KillTimeout: 5 * time.Second}
		for i := 0; i < 50; i++ {
			if a == 0 && i == 0 {
				continue
			}
			observed = append(observed, Worker{ID: id, App: name, Generation: "g", Phase: Running})
			id++
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		r := Plan(desired, observed, epoch)
		if len(r.Actions) != 1 {
			b.Fatalf("plan %v", r.Actions)
		}
	}
}

// TestAfterExitAvailability: a worker that exits is marked FailedUnready
// unless it was available, that is ready for at least MinReadyTime.
func TestAfterExitAvailability(t *testing.T) {
	now := epoch.Add(time.Minute)
	p := ExitPolicy{Restart: "always", Delay: func(int) time.Duration { return time.Second }, ResetAfter: time.Hour, MinReadyTime: time.Second}
	tests := []struct {
		name        string
		ready       bool
		readyAt     time.Time
		wantFailed  bool
		wantReadyAt time.Time
	}{
		{"never ready", false, time.Time{}, true, time.Time{}},
		{"ready 200ms before it exited", true, now.Add(-200 * time.Millisecond), true, now.Add(-200 * time.Millisecond)},
		{"ready exactly minReadyTime", true, now.Add(-time.Second), false, now.Add(-time.Second)},
		{"ready long before", true, now.Add(-time.Hour), false, now.Add(-time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := Worker{ID: 1, App: "web", Phase: Running, Ready: tt.ready, ReadyAt: tt.readyAt}
			got := AfterExit(w, p, false, time.Minute, now)
			if got.FailedUnready != tt.wantFailed || got.Ready || !got.ReadyAt.Equal(tt.wantReadyAt) {
				t.Errorf("FailedUnready %t Ready %t ReadyAt %v; want %t false %v", got.FailedUnready, got.Ready, got.ReadyAt, tt.wantFailed, tt.wantReadyAt)
			}
		})
	}
}
