package ondemand_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paddock-sh/paddock/internal/ondemand"
	"github.com/paddock-sh/paddock/internal/testkit"
)

// TestReadsOnlyWhileWanted: nothing is read while active says no, however
// long; a Poke after it says yes starts the readings, which go on at the
// interval until it says no again; Run returns when its context ends.
func TestReadsOnlyWhileWanted(t *testing.T) {
	var wanted atomic.Bool
	var reads atomic.Int64
	var l ondemand.Loop
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		l.Run(ctx, time.Millisecond, wanted.Load, func() { reads.Add(1) })
	})
	// Unwanted: Run waits on Poke; pokes while unwanted read nothing.
	for range 100 {
		l.Poke()
	}
	time.Sleep(20 * time.Millisecond) // a Run that read anyway would have by now
	if n := reads.Load(); n != 0 {
		t.Fatalf("%d readings while unwanted", n)
	}
	wanted.Store(true)
	l.Poke()
	testkit.WaitFor(t, "readings at the interval", func() bool { return reads.Load() >= 5 })
	wanted.Store(false)
	// At most the reading under way ends after the change is seen.
	after := reads.Load()
	time.Sleep(20 * time.Millisecond)
	if n := reads.Load(); n > after+1 {
		t.Fatalf("%d readings after it was no longer wanted", n-after)
	}
	cancel()
	wg.Wait()
}

// TestPokeNeverBlocks: Poke before Run, and many at once, return at once.
func TestPokeNeverBlocks(t *testing.T) {
	var l ondemand.Loop
	for range 1000 {
		l.Poke()
	}
}
