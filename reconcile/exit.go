package reconcile

import "time"

// This file holds what follows a worker's unintended exit: its restart
// policy and backoff.

// ExitPolicy is what AfterExit needs of an app's restart settings.
type ExitPolicy struct {
	// Restart is always, on-failure or never.
	Restart string
	// Delay returns the delay before the n-th consecutive restart.
	Delay func(n int) time.Duration
	// ResetAfter is how long a worker must have stayed up for its restart
	// count to start again from 1.
	ResetAfter time.Duration
	// MinReadyTime is how long a worker must have stayed ready to have
	// been available (see AppSpec.MinReadyTime).
	MinReadyTime time.Duration
}

// AfterExit returns the state of a worker that exited unintentionally (not
// being stopped) after running for uptime: Done when its restart policy says
// so, else Backoff with the restart count and time of its replacement.
// success means exit code 0. A worker that was never available (never
// ready, or ready for less than p.MinReadyTime) is marked FailedUnready;
// ReadyAt keeps when it became ready, if it did.
func AfterExit(w Worker, p ExitPolicy, success bool, uptime time.Duration, now time.Time) Worker {
	w.FailedUnready = !w.Ready || now.Before(w.availableAt(p.MinReadyTime))
	if !w.Ready {
		w.ReadyAt = time.Time{}
	}
	w.Ready = false
	if p.Restart == "never" || (p.Restart == "on-failure" && success) {
		w.Phase = Done
		return w
	}
	n := w.Restarts + 1
	if uptime >= p.ResetAfter {
		n = 1
	}
	w.Phase = Backoff
	w.Restarts = n
	w.RestartAt = now.Add(p.Delay(n))
	return w
}
