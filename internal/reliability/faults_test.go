package reliability

import (
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/paddock-sh/paddock/internal/control"
	"github.com/paddock-sh/paddock/internal/testkit"
)

// TestSIGKILLLeavesNoProcess: paddock with 50 workers, each a shell with
// two children of its own, is killed with SIGKILL, with its workers'
// cgroup and without one (--cgroup off: the watchdog and process groups
// alone). Every process of the test carries a marker in its environment;
// /proc is scanned for it once paddock's death is noticed (the count then
// is reported), and again until none is left.
func TestSIGKILLLeavesNoProcess(t *testing.T) {
	t.Parallel()
	const workers, perWorker = 50, 3
	for _, mode := range []string{"cgroup-auto", "cgroup-off"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			marker := fmt.Sprintf("PADDOCK_RELIABILITY_MARKER=%s-%d", mode, time.Now().UnixNano())
			name, value, _ := strings.Cut(marker, "=")
			manifest := filepath.Join(t.TempDir(), "paddock.yaml")
			writeFile(t, manifest, fmt.Sprintf(`
apps:
  family:
    exec: /bin/sh
    args: ["-c", "sleep 100000 & sleep 100000 & wait"]
    instances: %d
    env: {%s: %q}
`, workers, name, value))
			args := []string{manifest}
			if mode == "cgroup-off" {
				args = append(args, "--cgroup", "off")
			}
			s := startPaddock(t, nil, args...)
			testkit.WaitFor(t, "every worker and its children", func() bool { return len(withMarker(marker)) == workers*perWorker })
			atDeath, left := -1, -1
			lost := "nothing"
			record(t, func() (string, string, string) {
				return fmt.Sprintf("SIGKILL of paddock (--cgroup %s) with %d workers, %d processes", strings.TrimPrefix(mode, "cgroup-"), workers, workers*perWorker),
					fmt.Sprintf("%d still running when paddock's death was noticed, %d once they were killed", atDeath, left), lost
			})
			kill(t, s.pid(), syscall.SIGKILL)
			<-s.done
			atDeath = len(withMarker(marker))
			deadline := time.Now().Add(testkit.Patience)
			for left = atDeath; left > 0 && time.Now().Before(deadline); left = len(withMarker(marker)) {
				time.Sleep(10 * time.Millisecond)
			}
			if left > 0 {
				lost = fmt.Sprintf("%d processes survived paddock", left)
				for _, pid := range withMarker(marker) {
					syscall.Kill(pid, syscall.SIGKILL)
				}
				t.Error(lost)
			}
		})
	}
}

// TestCrashLoopBesideHealthy: an app whose worker exits 1 at once
// crash-loops beside a healthy app for a while (5 s short, 60 s long).
// paddock keeps its restarts to its backoff (forks counted), its own CPU
// (from /proc/PID/stat) is reported, and the healthy app's workers keep
// their pids.
func TestCrashLoopBesideHealthy(t *testing.T) {
	t.Parallel()
	window := time.Duration(size(5, 60)) * time.Second
	manifest := filepath.Join(t.TempDir(), "paddock.yaml")
	writeFile(t, manifest, `
apps:
  crash:
    exec: /bin/sh
    args: ["-c", "echo crashing; exit 1"]
  healthy:
    exec: /bin/sleep
    args: ["100000"]
    instances: 2
`)
	s := startPaddock(t, nil, manifest)
	before := s.waitRunning("healthy", 2)
	cpu0, _ := readStat(s.pid())
	forks0 := s.forks("crash")
	var forks int
	var cpu float64
	lost := "nothing"
	record(t, func() (string, string, string) {
		return fmt.Sprintf("a crash-looping app beside a healthy one for %v", window),
			fmt.Sprintf("%d forks of the crashing app (its backoff), paddock used %.2f%% of a CPU, healthy pids unchanged", forks, cpu), lost
	})
	start := time.Now()
	time.Sleep(window) // the experiment's length, not a wait for a condition
	cpu1, _ := readStat(s.pid())
	elapsed := time.Since(start)
	forks = s.forks("crash") - forks0
	cpu = float64(cpu1.ticks-cpu0.ticks) / clockTicks / elapsed.Seconds() * 100
	if st := s.status(); !crashLooping(st.Apps, "crash") {
		t.Errorf("the crashing app is not reported crash-looping: %+v", st.Apps)
	}
	after := s.pids("healthy")
	if fmt.Sprint(after) != fmt.Sprint(before) {
		lost = fmt.Sprintf("healthy workers changed: %v, then %v", before, after)
		t.Error(lost)
	}
	if forks < 2 {
		t.Errorf("only %d forks of the crashing app in %v: it is not restarted", forks, window)
	}
}

// TestReloadCycles: reloads (paddock reload) alternating a valid and an
// invalid manifest, 50 short, 1000 long. paddock's descriptors,
// goroutines (go_goroutines), RSS and zombie children are read before and
// after; none may grow beyond a small bound, and the running worker keeps
// its pid.
func TestReloadCycles(t *testing.T) {
	t.Parallel()
	cycles := size(50, 1000)
	manifest := filepath.Join(t.TempDir(), "paddock.yaml")
	valid := func(i int) string {
		return fmt.Sprintf("# cycle %d\napps:\n  steady:\n    exec: /bin/sleep\n    args: [\"100000\"]\n", i)
	}
	const invalid = "apps:\n  steady:\n    exec: /bin/sleep\n    args: [\"100000\"]\n    bogus: 1\n"
	writeFile(t, manifest, valid(0))
	metrics := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	s := startPaddock(t, nil, "--watch=false", "--metrics-addr", metrics, manifest)
	steady := s.waitRunning("steady", 1)
	reload := func(i int) {
		t.Helper()
		writeFile(t, manifest, invalid)
		if out, code := s.cli("reload"); code != 1 || !strings.Contains(out, "bogus") {
			t.Fatalf("cycle %d: reload of an invalid manifest: exit %d, %s", i, code, out)
		}
		writeFile(t, manifest, valid(i))
		if out, code := s.cli("reload"); code != 0 {
			t.Fatalf("cycle %d: reload of a valid manifest: exit %d, %s", i, code, out)
		}
	}
	reload(0) // paddock's first reloads set up what every later one reuses
	type reading struct {
		fds, zombies int
		goroutines   float64
		rss          int64
	}
	read := func() reading {
		fds, err := testkit.OpenFDs(s.pid())
		if err != nil {
			t.Fatal(err)
		}
		return reading{len(fds), zombieChildren(s.pid()), metric(t, metrics, "go_goroutines"), rssKiB(t, s.pid())}
	}
	before := read()
	var after reading
	lost := "nothing"
	record(t, func() (string, string, string) {
		return fmt.Sprintf("%d reloads, invalid then valid", 2*cycles),
			fmt.Sprintf("descriptors %d→%d, goroutines %.0f→%.0f, RSS %d→%d KiB, zombies %d→%d, the worker's pid unchanged",
				before.fds, after.fds, before.goroutines, after.goroutines, before.rss, after.rss, before.zombies, after.zombies), lost
	})
	for i := 1; i <= cycles; i++ {
		reload(i)
	}
	// What a reload started may take a moment to end (a client's
	// connection closing): wait for the readings to come back within
	// bounds, and report those that do not.
	const fdSlack, goroutineSlack, rssSlackKiB = 4, 20, 32 << 10
	within := func(r reading) bool {
		return r.fds <= before.fds+fdSlack && r.goroutines <= before.goroutines+goroutineSlack &&
			r.rss <= before.rss+rssSlackKiB && r.zombies == 0
	}
	deadline := time.Now().Add(testkit.Patience)
	for after = read(); !within(after) && time.Now().Before(deadline); after = read() {
		time.Sleep(50 * time.Millisecond)
	}
	if !within(after) {
		lost = fmt.Sprintf("grew beyond the bounds (+%d descriptors, +%d goroutines, +%d KiB, 0 zombies)", fdSlack, goroutineSlack, rssSlackKiB)
		t.Error(lost)
	}
	if now := s.pids("steady"); fmt.Sprint(now) != fmt.Sprint(steady) {
		t.Errorf("the worker changed: %v, then %v", steady, now)
	}
}

// forks counts the fork records of app in paddock's JSON log.
func (s *supervisor) forks(app string) int {
	return strings.Count(s.stderr.String(), `"msg":"fork","app":"`+app+`"`)
}

func crashLooping(apps []control.App, name string) bool {
	for _, a := range apps {
		if a.Name == name {
			return a.CrashLoop != nil
		}
	}
	return false
}
