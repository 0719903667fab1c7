package reconcile

import "time"

// This file holds the crash-loop rule: when an app counts as crash-looping,
// when it stops, and when a critical app counts as failed. Like Plan, it is
// pure: the supervisor tells it each exit and, at every turn of its loop,
// the app's workers and the time; it reads no clock of its own.

// The crash-loop thresholds. An exit counts toward a crash loop when the
// worker had not stayed up for its app's backoff.max (the rule that, in
// AfterExit, resets the restart count: a worker that stayed up that long
// is not crashing) and its restart policy replaces it.
const (
	// CrashLoopExits is how many counted exits make a crash loop: within
	// CrashLoopWindow, across the app's workers, or in a row for one
	// worker however slowly (its consecutive restart count reached it),
	// so that a long backoff.max, which spaces the restarts out, does not
	// hide a loop.
	CrashLoopExits = 3
	// CrashLoopWindow is the window of CrashLoopExits, and the one the
	// report counts exits in.
	CrashLoopWindow = time.Minute
)

// CrashPolicy is what the crash-loop rule needs of an app's settings.
type CrashPolicy struct {
	// BackoffMax is the app's backoff.max: an exit after this much uptime
	// does not count; a restart delayed this much is at the cap; a crash
	// loop ends once every worker of the app has been up this long.
	BackoffMax time.Duration
	// FailAfter, for a critical app, is how long it may be failing before
	// it is given up (see CrashLoop.Observe); 0 for an app that is never
	// given up.
	FailAfter time.Duration
}

// CrashExit is one unintended exit of a worker that its restart policy
// replaces.
type CrashExit struct {
	At time.Time
	// Uptime is how long the worker ran (0 for a start that failed).
	Uptime time.Duration
	// Code is the exit code, -1 when a signal (Signal, "SIGSEGV") ended
	// the worker or it could not be started (StartFailed).
	Code        int
	Signal      string
	StartFailed bool
	// Restarts is the consecutive restart count of the replacement (see
	// AfterExit); Delay is how long the replacement waits.
	Restarts int
	Delay    time.Duration
}

// CrashWorker is what CrashLoop.Observe needs of one worker of the app.
type CrashWorker struct {
	Phase     Phase
	Ready     bool
	StartedAt time.Time
}

// CrashLoop is the crash-loop record of one app. The zero value is an app
// with no exit recorded. Its methods are not safe for concurrent use: the
// supervisor's owner goroutine keeps one per app.
//
// The record counts a *streak*: the counted exits since the app was last
// steady (every worker it runs up for backoff.max, none waiting for a
// restart). The app is crash-looping from the exit that makes
// CrashLoopExits counted exits within CrashLoopWindow, or that gives one
// worker a consecutive restart count of CrashLoopExits, until it is steady
// again.
type CrashLoop struct {
	// recent holds the times of the streak's exits within the last
	// CrashLoopWindow, oldest first.
	recent []time.Time
	// Streak counts the exits of the streak, from StreakSince.
	Streak      int
	StreakSince time.Time
	// Looping says the app is crash-looping, since LoopSince.
	Looping   bool
	LoopSince time.Time
	// Last is the streak's last exit.
	Last CrashExit
	// AtMaxSince is when, in this crash loop, a replacement was first
	// delayed by backoff.max: paddock cannot slow down any more. Zero
	// until then.
	AtMaxSince time.Time
	// FailingSince is when the app, critical, began failing (see
	// Observe); zero when it is not.
	FailingSince time.Time
	// Failed says the app failed for FailAfter: it is given up.
	Failed bool
}

// Exit records an unintended exit of one of the app's workers that its
// restart policy replaces, and reports whether the app starts
// crash-looping with it. An exit of a worker that had stayed up for
// p.BackoffMax is not counted.
func (c *CrashLoop) Exit(e CrashExit, p CrashPolicy) (started bool) {
	if e.Uptime >= p.BackoffMax {
		return false
	}
	c.prune(e.At)
	c.recent = append(c.recent, e.At)
	if c.Streak == 0 {
		c.StreakSince = e.At
	}
	c.Streak++
	c.Last = e
	if !c.Looping && (len(c.recent) >= CrashLoopExits || e.Restarts >= CrashLoopExits) {
		c.Looping, c.LoopSince, started = true, e.At, true
	}
	if c.Looping && c.AtMaxSince.IsZero() && e.Delay >= p.BackoffMax {
		c.AtMaxSince = e.At
	}
	return started
}

// Observe looks at the app's workers (those being stopped are ignored) at
// now, after the exits recorded with Exit. It reports whether a crash loop
// ended, whether the app failed now, and when to observe again (zero:
// nothing is due).
//
// The streak, and a crash loop with it, ends once the app is steady: none
// of its workers waits for a restart, and every running one has been up
// for p.BackoffMax. Workers whose restart policy leaves them exited (done)
// do not keep it going.
//
// A crash-looping app is failing while a replacement has been delayed by
// backoff.max in this loop and not one of its workers serves (running,
// ready, and up for p.BackoffMax): workers that stay up, such as the old
// ones of a stalled rolling update, mean the app is up, if not whole. A
// critical app (p.FailAfter > 0) that has been failing for p.FailAfter
// without a break has failed; it stays failed.
func (c *CrashLoop) Observe(ws []CrashWorker, p CrashPolicy, now time.Time) (ended, failed bool, wake time.Time) {
	c.prune(now)
	if c.Streak == 0 {
		return false, false, time.Time{}
	}
	steady, serving := true, false
	for _, w := range ws {
		switch w.Phase {
		case Backoff:
			steady = false
		case Running:
			if at := w.StartedAt.Add(p.BackoffMax); now.Before(at) {
				steady = false
				wake = earliest(wake, at)
			} else if w.Ready {
				serving = true
			}
		}
	}
	if steady {
		ended = c.Looping
		*c = CrashLoop{}
		return ended, false, time.Time{}
	}
	if !c.Looping || p.FailAfter <= 0 || c.Failed {
		return false, false, wake
	}
	if c.AtMaxSince.IsZero() || serving {
		c.FailingSince = time.Time{}
		return false, false, wake
	}
	if c.FailingSince.IsZero() {
		c.FailingSince = now
	}
	at := c.FailingSince.Add(p.FailAfter)
	if now.Before(at) {
		return false, false, earliest(wake, at)
	}
	c.Failed = true
	return false, true, wake
}

// NewRelease starts the failAfter clock again: the app's spec changed, and
// its new workers get their own chance. The crash loop itself goes on until
// the app is steady.
func (c *CrashLoop) NewRelease() {
	c.AtMaxSince, c.FailingSince = time.Time{}, time.Time{}
}

// FailAt returns when a critical app that is failing will have failed;
// zero when it is not failing.
func (c *CrashLoop) FailAt(p CrashPolicy) time.Time {
	if c.FailingSince.IsZero() || p.FailAfter <= 0 {
		return time.Time{}
	}
	return c.FailingSince.Add(p.FailAfter)
}

// Rate returns the exits to report at now, and the span they happened in:
// those of the last CrashLoopWindow when they are CrashLoopExits or more,
// or the streak began within it; else (a slow loop, its restarts spaced
// out by a long backoff.max) every exit of the streak, over the time since
// it began.
func (c *CrashLoop) Rate(now time.Time) (exits int, window time.Duration) {
	c.prune(now)
	if c.Streak == 0 || len(c.recent) >= CrashLoopExits || now.Sub(c.StreakSince) <= CrashLoopWindow {
		return len(c.recent), CrashLoopWindow
	}
	return c.Streak, now.Sub(c.StreakSince)
}

// prune drops the exits older than CrashLoopWindow at now.
func (c *CrashLoop) prune(now time.Time) {
	cut := now.Add(-CrashLoopWindow)
	i := 0
	for i < len(c.recent) && !c.recent[i].After(cut) {
		i++
	}
	if i > 0 {
		c.recent = append(c.recent[:0], c.recent[i:]...)
	}
}

// earliest returns the earlier of a and b, a zero time standing for none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}
