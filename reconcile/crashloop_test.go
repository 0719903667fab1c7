package reconcile

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// crashStep is one step of a crash-loop case: an exit recorded at At, or
// (Exit nil) an observation of Workers at At. The want fields say what the
// step reports; state, when not empty, what the record says after it.
type crashStep struct {
	at      time.Duration
	exit    *CrashExit
	workers []CrashWorker

	started, ended, failed bool
	wake                   time.Duration // -1: none
	state                  string
}

// sec is a duration of n seconds.
func sec(n float64) time.Duration { return time.Duration(n * float64(time.Second)) }

// crashExit is an exit with uptime, the replacement's restart count and
// delay, and code 1.
func crashExit(uptime time.Duration, restarts int, delay time.Duration) *CrashExit {
	return &CrashExit{Uptime: uptime, Code: 1, Restarts: restarts, Delay: delay}
}

// running is a running worker started at offset start, ready or not.
func running(start time.Duration, ready bool) CrashWorker {
	return CrashWorker{Phase: Running, StartedAt: epoch.Add(start), Ready: ready}
}

var backingOff = CrashWorker{Phase: Backoff}

// describeCrash summarizes a record for the cases: "looping streak=3 rate=3/1m0s atmax=12s failing=12s failed".
func describeCrash(c *CrashLoop, now time.Time) string {
	var parts []string
	if c.Looping {
		parts = append(parts, "looping")
	}
	exits, window := c.Rate(now)
	parts = append(parts, fmt.Sprintf("streak=%d rate=%d/%s", c.Streak, exits, window))
	if !c.AtMaxSince.IsZero() {
		parts = append(parts, "atmax="+c.AtMaxSince.Sub(epoch).String())
	}
	if !c.FailingSince.IsZero() {
		parts = append(parts, "failing="+c.FailingSince.Sub(epoch).String())
	}
	if c.Failed {
		parts = append(parts, "failed")
	}
	return strings.Join(parts, " ")
}

func TestCrashLoop(t *testing.T) {
	p := CrashPolicy{BackoffMax: sec(10), FailAfter: sec(60)}
	notCritical := CrashPolicy{BackoffMax: sec(10)}
	tests := []struct {
		name   string
		policy CrashPolicy
		steps  []crashStep
	}{
		{"three quick exits within the window start a loop", p, []crashStep{
			{at: sec(1), exit: crashExit(sec(1), 1, sec(0.1)), state: "streak=1 rate=1/1m0s"},
			{at: sec(1), workers: []CrashWorker{backingOff}, wake: -1},
			{at: sec(2), exit: crashExit(sec(0.5), 2, sec(0.2)), state: "streak=2 rate=2/1m0s"},
			{at: sec(3), exit: crashExit(sec(0.5), 3, sec(0.4)), started: true, state: "looping streak=3 rate=3/1m0s"},
		}},
		{"exits of several workers count together", notCritical, []crashStep{
			{at: sec(1), exit: crashExit(sec(1), 1, sec(0.1))},
			{at: sec(1.5), exit: crashExit(sec(1), 1, sec(0.1))},
			{at: sec(2), exit: crashExit(sec(1), 1, sec(0.1)), started: true, state: "looping streak=3 rate=3/1m0s"},
		}},
		{"exits more than the window apart do not", notCritical, []crashStep{
			{at: sec(0), exit: crashExit(sec(1), 1, sec(0.1))},
			{at: sec(30), exit: crashExit(sec(1), 1, sec(0.1))},
			{at: sec(60), exit: crashExit(sec(1), 1, sec(0.1)), state: "streak=3 rate=2/1m0s"},
			// The first one left the window: 2 of 3 in the last minute,
			// the streak of 3 is reported over its whole span.
			{at: sec(61), workers: []CrashWorker{backingOff}, wake: -1, state: "streak=3 rate=3/1m1s"},
		}},
		{"an exit after backoff.max of uptime is not counted", notCritical, []crashStep{
			{at: sec(10), exit: crashExit(sec(10), 1, sec(0.1)), state: "streak=0 rate=0/1m0s"},
			{at: sec(21), exit: crashExit(sec(11), 1, sec(0.1))},
			{at: sec(32), exit: crashExit(sec(11), 1, sec(0.1)), state: "streak=0 rate=0/1m0s"},
		}},
		{"a slow loop: three restarts in a row of one worker", CrashPolicy{BackoffMax: sec(600)}, []crashStep{
			{at: sec(0), exit: crashExit(sec(5), 1, sec(60))},
			{at: sec(65), exit: crashExit(sec(5), 2, sec(120))},
			{at: sec(190), exit: crashExit(sec(5), 3, sec(240)), started: true, state: "looping streak=3 rate=3/3m10s"},
		}},
		{"the loop ends once every worker stayed up for backoff.max", notCritical, []crashStep{
			{at: sec(0), exit: crashExit(0, 1, sec(0.1))},
			{at: sec(0.1), exit: crashExit(0, 2, sec(0.2))},
			{at: sec(0.3), exit: crashExit(0, 3, sec(0.4)), started: true},
			// Restarted at 0.7s and 0.5s: not steady before 10.7s.
			{at: sec(1), workers: []CrashWorker{running(sec(0.7), true), running(sec(0.5), true)}, wake: sec(10.5)},
			{at: sec(10.5), workers: []CrashWorker{running(sec(0.7), true), running(sec(0.5), true)}, wake: sec(10.7)},
			{at: sec(10.7), workers: []CrashWorker{running(sec(0.7), true), running(sec(0.5), true)}, ended: true, wake: -1,
				state: "streak=0 rate=0/1m0s"},
			// A new streak starts from nothing.
			{at: sec(11), exit: crashExit(0, 1, sec(0.1)), state: "streak=1 rate=1/1m0s"},
		}},
		{"a worker waiting for its restart keeps it going", notCritical, []crashStep{
			{at: sec(0), exit: crashExit(0, 1, sec(0.1))},
			{at: sec(0), exit: crashExit(0, 1, sec(0.1))},
			{at: sec(0), exit: crashExit(0, 1, sec(0.1)), started: true},
			{at: sec(100), workers: []CrashWorker{running(sec(1), true), backingOff}, wake: -1, state: "looping streak=3 rate=3/1m40s"},
		}},
		{"done and stopping workers do not keep it going", notCritical, []crashStep{
			{at: sec(0), exit: crashExit(0, 1, sec(0.1))},
			{at: sec(0), exit: crashExit(0, 1, sec(0.1))},
			{at: sec(0), exit: crashExit(0, 1, sec(0.1)), started: true},
			{at: sec(1), workers: []CrashWorker{{Phase: Done}, {Phase: Stopping, StartedAt: epoch.Add(sec(0.9))}}, ended: true, wake: -1},
		}},
		{"steady before the loop began: the streak alone is forgotten", notCritical, []crashStep{
			{at: sec(0), exit: crashExit(sec(1), 1, sec(0.1))},
			{at: sec(20), workers: []CrashWorker{running(sec(0.1), false)}, wake: -1, state: "streak=0 rate=0/1m0s"},
			{at: sec(21), exit: crashExit(sec(1), 1, sec(0.1))},
			{at: sec(22), exit: crashExit(sec(1), 1, sec(0.1)), state: "streak=2 rate=2/1m0s"},
		}},
		{"a critical app fails after failAfter at backoff.max with nothing serving", p, []crashStep{
			{at: sec(0), exit: crashExit(0, 1, sec(2.5))},
			{at: sec(3), exit: crashExit(0, 2, sec(5))},
			{at: sec(8), exit: crashExit(0, 3, sec(10)), started: true, state: "looping streak=3 rate=3/1m0s atmax=8s"},
			{at: sec(8), workers: []CrashWorker{backingOff}, wake: sec(68), state: "looping streak=3 rate=3/1m0s atmax=8s failing=8s"},
			{at: sec(18), workers: []CrashWorker{running(sec(18), true)}, wake: sec(28)},
			{at: sec(18.5), exit: crashExit(sec(0.5), 4, sec(10))},
			{at: sec(67.9), workers: []CrashWorker{backingOff}, wake: sec(68)},
			{at: sec(68), workers: []CrashWorker{backingOff}, failed: true, wake: -1,
				state: "looping streak=4 rate=4/1m8s atmax=8s failing=8s failed"},
			// Failed once: not again.
			{at: sec(80), workers: []CrashWorker{backingOff}, wake: -1},
		}},
		{"a loop below backoff.max is not failing yet", p, []crashStep{
			{at: sec(0), exit: crashExit(0, 1, sec(0.1))},
			{at: sec(0.1), exit: crashExit(0, 2, sec(0.2))},
			{at: sec(0.3), exit: crashExit(0, 3, sec(0.4)), started: true},
			{at: sec(0.3), workers: []CrashWorker{backingOff}, wake: -1, state: "looping streak=3 rate=3/1m0s"},
		}},
		{"a worker that stays up and ready means the app is up", p, []crashStep{
			{at: sec(0), exit: crashExit(0, 1, sec(10))},
			{at: sec(10), exit: crashExit(0, 2, sec(10))},
			{at: sec(20), exit: crashExit(0, 3, sec(10)), started: true},
			// An old worker of a stalled rollout, up since long before.
			{at: sec(20), workers: []CrashWorker{running(-sec(3600), true), backingOff}, wake: -1,
				state: "looping streak=3 rate=3/1m0s atmax=20s"},
			{at: sec(200), workers: []CrashWorker{running(-sec(3600), true), backingOff}, wake: -1},
			// It goes: the app is failing from then on.
			{at: sec(300), workers: []CrashWorker{backingOff}, wake: sec(360)},
			// A worker up for backoff.max but not ready serves nothing.
			{at: sec(330), workers: []CrashWorker{running(sec(310), false), backingOff}, wake: sec(360)},
			// One back, ready: failing stops, and starts again from nothing.
			{at: sec(340), workers: []CrashWorker{running(sec(310), true), backingOff}, wake: -1,
				state: "looping streak=3 rate=3/5m40s atmax=20s"},
			{at: sec(350), workers: []CrashWorker{backingOff}, wake: sec(410)},
		}},
		{"an app that is not critical never fails", notCritical, []crashStep{
			{at: sec(0), exit: crashExit(0, 1, sec(10))},
			{at: sec(10), exit: crashExit(0, 2, sec(10))},
			{at: sec(20), exit: crashExit(0, 3, sec(10)), started: true},
			{at: sec(3600), workers: []CrashWorker{backingOff}, wake: -1, state: "looping streak=3 rate=3/1h0m0s atmax=20s"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c CrashLoop
			for i, s := range tt.steps {
				now := epoch.Add(s.at)
				if s.exit != nil {
					e := *s.exit
					e.At = now
					if got := c.Exit(e, tt.policy); got != s.started {
						t.Errorf("step %d: Exit started %v, want %v", i, got, s.started)
					}
				} else {
					ended, failed, wake := c.Observe(s.workers, tt.policy, now)
					wantWake := time.Time{}
					if s.wake >= 0 {
						wantWake = epoch.Add(s.wake)
					}
					if ended != s.ended || failed != s.failed || !wake.Equal(wantWake) {
						t.Errorf("step %d: Observe ended=%v failed=%v wake=%s, want %v %v %s", i, ended, failed,
							offset(wake), s.ended, s.failed, offset(wantWake))
					}
				}
				if s.state != "" {
					if got := describeCrash(&c, now); got != s.state {
						t.Errorf("step %d: state %q, want %q", i, got, s.state)
					}
				}
			}
		})
	}
}

// offset prints t as an offset from epoch, "none" for zero.
func offset(t time.Time) string {
	if t.IsZero() {
		return "none"
	}
	return t.Sub(epoch).String()
}

// TestCrashLoopNewRelease: a new release starts the failAfter clock again.
func TestCrashLoopNewRelease(t *testing.T) {
	p := CrashPolicy{BackoffMax: sec(1), FailAfter: sec(30)}
	var c CrashLoop
	for i := range 3 {
		c.Exit(CrashExit{At: epoch.Add(sec(float64(i))), Restarts: i + 1, Delay: sec(1)}, p)
	}
	if _, _, wake := c.Observe([]CrashWorker{backingOff}, p, epoch.Add(sec(2))); !wake.Equal(epoch.Add(sec(32))) {
		t.Fatalf("wake %s, want 32s", offset(wake))
	}
	if at := c.FailAt(p); !at.Equal(epoch.Add(sec(32))) {
		t.Errorf("FailAt %s, want 32s", offset(at))
	}
	c.NewRelease()
	if !c.Looping || !c.FailAt(p).IsZero() {
		t.Fatalf("after NewRelease: looping %v, FailAt %s; want looping, no FailAt", c.Looping, offset(c.FailAt(p)))
	}
	// Failing again only once a new replacement is delayed by backoff.max.
	if _, failed, wake := c.Observe([]CrashWorker{backingOff}, p, epoch.Add(sec(40))); failed || !wake.IsZero() {
		t.Errorf("failed %v wake %s before the new release reached backoff.max", failed, offset(wake))
	}
	c.Exit(CrashExit{At: epoch.Add(sec(41)), Restarts: 4, Delay: sec(1)}, p)
	if _, _, wake := c.Observe([]CrashWorker{backingOff}, p, epoch.Add(sec(41))); !wake.Equal(epoch.Add(sec(71))) {
		t.Errorf("wake %s, want 71s", offset(wake))
	}
}
