// Package ondemand runs a periodic reading only while something wants it,
// so that nothing is read when no one asks: the /proc sampler of the
// workers' resource use and the status page's history both read this way.
package ondemand

import (
	"context"
	"sync"
	"time"
)

// Loop calls a reading every interval while it is wanted and waits,
// reading nothing, while it is not. The zero Loop is ready to use; Run is
// called once, and Poke whenever what makes it wanted may have changed.
type Loop struct {
	once sync.Once
	wake chan struct{}
}

func (l *Loop) init() {
	l.once.Do(func() { l.wake = make(chan struct{}, 1) })
}

// Poke wakes a waiting Run to ask active again; it never blocks.
func (l *Loop) Poke() {
	l.init()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Run calls read, then waits interval, for as long as active reports true;
// when it reports false, Run waits for Poke. It returns when ctx is done.
func (l *Loop) Run(ctx context.Context, interval time.Duration, active func() bool, read func()) {
	l.init()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		if active() {
			read()
			timer.Reset(interval)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-l.wake:
		}
	}
}
