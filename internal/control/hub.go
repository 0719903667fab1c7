package control

import (
	"github.com/paddock-sh/paddock/internal/fanout"
	"github.com/paddock-sh/paddock/internal/supervisor"
)

// Limits of the streams (GET /v1/events, GET /v1/logs?follow=1): each
// allows MaxFollowers followers at once (more are answered 503), and a
// follower may fall FollowerQueue values behind before values are dropped
// for it and reported as lost. A follower's queue holds only what waits
// for it, so idle followers cost next to nothing.
const (
	MaxFollowers  = 64
	FollowerQueue = 1024
)

// Hub fans the supervisor's events out to the followers of GET /v1/events.
// Publish never blocks, so it can be the supervisor's OnEvent.
type Hub struct {
	hub *fanout.Hub[supervisor.Event]
}

// NewHub returns a Hub without followers.
func NewHub() *Hub { return &Hub{hub: fanout.New[supervisor.Event](MaxFollowers, FollowerQueue)} }

// Publish hands e to every follower interested in it.
func (h *Hub) Publish(e supervisor.Event) { h.hub.Publish(e) }

// Follow returns a follower of app's events (every event when app is ""),
// or fanout.ErrTooManyFollowers when MaxFollowers already follow: GET
// /v1/events and the status page's stream share the limit. The follower
// never holds up Publish (a slow one loses events, counted by Take); call
// Leave when done.
func (h *Hub) Follow(app string) (*fanout.Follower[supervisor.Event], error) {
	var filter func(supervisor.Event) bool
	if app != "" {
		filter = func(e supervisor.Event) bool { return e.App == app }
	}
	return h.hub.Follow(filter)
}

// Followers returns how many clients follow the events.
func (h *Hub) Followers() int { return h.hub.Len() }
