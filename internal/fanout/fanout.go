// Package fanout hands values from publishers to followers without ever
// blocking a publisher and with bounded memory: the number of followers is
// capped, each follower's queue holds at most a fixed number of values and
// grows only while values wait in it, and values a follower has no room
// for are dropped and counted for it.
//
// It serves the control API's streams (events, logs), whose followers are
// remote clients that may read slowly or not at all.
package fanout

import (
	"errors"
	"sync"
)

// ErrTooManyFollowers is returned by Follow when the hub has as many
// followers as it allows.
var ErrTooManyFollowers = errors.New("too many followers")

// Hub fans values out to its followers. It is safe for concurrent use.
type Hub[T any] struct {
	maxFollowers, queueLen int

	mu        sync.Mutex
	followers map[*Follower[T]]struct{}
}

// New returns a hub that allows maxFollowers followers, each of which may
// fall queueLen values behind.
func New[T any](maxFollowers, queueLen int) *Hub[T] {
	return &Hub[T]{maxFollowers: maxFollowers, queueLen: queueLen, followers: map[*Follower[T]]struct{}{}}
}

// Follower receives the values published after it began to follow and that
// its filter accepts.
type Follower[T any] struct {
	hub    *Hub[T]
	filter func(T) bool
	ready  chan struct{}

	mu      sync.Mutex
	queue   []T
	dropped int
}

// Follow adds a follower of the values filter accepts (every value when
// filter is nil). It fails with ErrTooManyFollowers when the hub is full.
// Call Leave when done.
func (h *Hub[T]) Follow(filter func(T) bool) (*Follower[T], error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.followers) >= h.maxFollowers {
		return nil, ErrTooManyFollowers
	}
	f := &Follower[T]{hub: h, filter: filter, ready: make(chan struct{}, 1)}
	h.followers[f] = struct{}{}
	return f, nil
}

// Len returns the number of followers.
func (h *Hub[T]) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.followers)
}

// Publish hands v to every follower whose filter accepts it. It never
// blocks on a follower.
func (h *Hub[T]) Publish(v T) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for f := range h.followers {
		if f.filter != nil && !f.filter(v) {
			continue
		}
		f.push(v)
	}
}

func (f *Follower[T]) push(v T) {
	f.mu.Lock()
	if len(f.queue) >= f.hub.queueLen {
		f.dropped++
		f.mu.Unlock()
		return
	}
	f.queue = append(f.queue, v)
	f.mu.Unlock()
	select {
	case f.ready <- struct{}{}:
	default:
	}
}

// Ready receives a value when values may be waiting: call Take then.
func (f *Follower[T]) Ready() <-chan struct{} { return f.ready }

// Take returns the values waiting, oldest first, and how many were dropped
// since the last Take because the follower fell queueLen behind. The queue
// starts again empty, so the memory of a burst is freed once taken.
func (f *Follower[T]) Take() (values []T, dropped int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	values, dropped = f.queue, f.dropped
	f.queue, f.dropped = nil, 0
	return values, dropped
}

// Leave removes the follower from its hub; nothing is queued for it from
// then on. Leaving twice is harmless.
func (f *Follower[T]) Leave() {
	f.hub.mu.Lock()
	delete(f.hub.followers, f)
	f.hub.mu.Unlock()
	f.mu.Lock()
	f.queue = nil
	f.mu.Unlock()
}
