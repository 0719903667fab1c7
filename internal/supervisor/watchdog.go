package supervisor

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/paddock-sh/paddock/reconcile"
)

// This file holds the watchdog of `readiness: notify` workers, systemd's
// WatchdogSec= (sd_notify(3)): once ready, a worker sends WATCHDOG=1 to
// $NOTIFY_SOCKET at least every `watchdog`; one that misses it is marked
// for replacement, and the planner replaces it new first. Its timers are
// deadlines the owner loop wakes for, on the clock of the seam.

// armWatchdog starts w's watchdog period from now, when it has one.
func (o *owner) armWatchdog(w *worker, now time.Time) {
	if w.watchdog > 0 {
		w.watchdogAt = now.Add(w.watchdog)
	} else {
		w.watchdogAt = time.Time{}
	}
}

// handleWatchdog takes the watchdog fields of a notification from w, a
// worker of a notify app, as systemd does: WATCHDOG=1 starts its period
// again; WATCHDOG=trigger asks to be replaced now, watchdog or not;
// WATCHDOG_USEC=N makes its period N µs from now on and starts it again (0,
// or more than a duration holds, turns its watchdog off). Invalid values
// are logged and ignored. A worker being stopped, or already marked for
// replacement, has nothing more to declare.
func (o *owner) handleWatchdog(w *worker, fields map[string]string) {
	ping, hasPing := fields["WATCHDOG"]
	usec, hasUsec := fields["WATCHDOG_USEC"]
	if (!hasPing && !hasUsec) || w.Phase != reconcile.Running || w.Replace != "" || o.shutting {
		return
	}
	now := o.clock.Now()
	switch {
	case !hasPing:
	case ping == "1":
		if w.Ready {
			o.armWatchdog(w, now)
		}
	case ping == "trigger":
		o.watchdogMissed(w, "the worker asked for it (WATCHDOG=trigger)")
		return
	default:
		o.opts.Logger.Warn("invalid WATCHDOG= from a worker, ignored", "app", w.App, "worker", w.ID, "pid", w.pid, "value", ping)
	}
	if hasUsec {
		n, err := strconv.ParseUint(usec, 10, 64)
		if err != nil {
			o.opts.Logger.Warn("invalid WATCHDOG_USEC= from a worker, ignored", "app", w.App, "worker", w.ID, "pid", w.pid, "value", usec)
			return
		}
		w.watchdog = 0
		if n <= math.MaxInt64/uint64(time.Microsecond) {
			w.watchdog = time.Duration(n) * time.Microsecond
		}
		if w.Ready {
			o.armWatchdog(w, now)
		}
	}
}

// checkWatchdogs marks the workers whose watchdog period passed without
// WATCHDOG=1 and returns when the next one ends (zero: none armed). The
// owner loop calls it before each plan, and wakes then.
func (o *owner) checkWatchdogs(now time.Time) time.Time {
	var next time.Time
	for _, w := range o.workers {
		if w.watchdogAt.IsZero() || w.Phase != reconcile.Running || w.Replace != "" || o.shutting {
			continue
		}
		if now.Before(w.watchdogAt) {
			next = earliest(next, w.watchdogAt)
			continue
		}
		o.watchdogMissed(w, fmt.Sprintf("no WATCHDOG=1 within its watchdog period (%s)", w.watchdog))
	}
	return next
}

// watchdogMissed marks w for replacement, new first, because of why, and
// reports it (watchdog-missed).
func (o *owner) watchdogMissed(w *worker, why string) {
	w.watchdogAt = time.Time{}
	w.Replace = "watchdog: " + why
	o.emit(Event{Type: EventWatchdogMissed, App: w.App, Worker: w.ID, PID: w.pid, Generation: w.Generation,
		Detail: why + "; replacing it new first"})
}

// earliest returns the earlier of a and b, a zero time counting as none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}
