package main

// The measurements, and their aggregation over the rounds.

import (
	"math"
	"slices"
	"time"
)

// result is one measurement: a configuration in a connection mode.
type result struct {
	cfg       config
	mode      mode
	wrk       wrkResult
	perWorker []int64 // requests each worker answered, largest first
	conns     []int64 // connections each worker accepted, in the order of perWorker
	rss       int64   // largest VmRSS of the supervisor process, bytes
	otherCPU  float64 // CPU used by other processes meanwhile, in CPUs (1 = one CPU busy)
	// supCPU is the CPU time (user and system, every thread) the
	// supervisor process took meanwhile: paddock, or Node's primary.
	supCPU time.Duration
	load   string // the load average (1, 5, 15 min) as the measurement began
	err    error
}

// connections is how many connections the workers accepted during the
// measurement, as they counted them (with Connection: close, one per
// request).
func (r *result) connections() int64 {
	var n int64
	for _, c := range r.conns {
		n += c
	}
	return n
}

// minConnsForCPU is how many connections a measurement needs for its CPU
// per connection to mean something: /proc counts CPU time in 10 ms ticks,
// and with keep-alive wrk opens only its 64 connections.
const minConnsForCPU = 1000

// cpuPerConn is the supervisor's CPU time per connection the workers
// accepted: what the primary spends per connection it hands out under rr
// (under none and reuseport it is not on a connection's path, and this is
// its idle cost spread over them); NaN with fewer than minConnsForCPU
// connections.
func (r *result) cpuPerConn() float64 {
	n := r.connections()
	if n < minConnsForCPU {
		return math.NaN()
	}
	return float64(r.supCPU) / float64(n)
}

// balance is the largest over the smallest per-worker request count (+Inf
// when a worker answered none; NaN when there are no counts).
func (r *result) balance() float64 {
	if len(r.perWorker) == 0 {
		return math.NaN()
	}
	hi, lo := r.perWorker[0], r.perWorker[len(r.perWorker)-1]
	if lo == 0 {
		if hi == 0 {
			return math.NaN()
		}
		return math.Inf(1)
	}
	return float64(hi) / float64(lo)
}

// agg is every round of one configuration in one connection mode.
type agg struct {
	cfg   config
	mode  mode
	runs  []*result // the measurements made, in round order
	fails []error
}

func (a *agg) ok() bool { return len(a.runs) > 0 }

func (a *agg) name() string {
	if a.cfg.side == "node" {
		return "node cluster " + a.cfg.policy
	}
	return a.cfg.String()
}

func (a *agg) reqPerSec() float64 {
	return median(a.runs, func(r *result) float64 { return r.wrk.reqPerSec })
}

func (a *agg) p99() time.Duration {
	return time.Duration(median(a.runs, func(r *result) float64 { return float64(r.wrk.p99) }))
}

func (a *agg) balance() float64 { return median(a.runs, (*result).balance) }

func (a *agg) cpuPerConn() float64 { return median(a.runs, (*result).cpuPerConn) }

func (a *agg) worstBalance() float64 {
	v := math.NaN()
	for _, r := range a.runs {
		if b := r.balance(); math.IsNaN(v) || b > v {
			v = b
		}
	}
	return v
}

func (a *agg) rss() int64 {
	var v int64
	for _, r := range a.runs {
		v = max(v, r.rss)
	}
	return v
}

func (a *agg) otherCPU() float64 {
	var v float64
	for _, r := range a.runs {
		v = max(v, r.otherCPU)
	}
	return v
}

func (a *agg) errors() string {
	var sum wrkResult
	for _, r := range a.runs {
		sum.connect += r.wrk.connect
		sum.read += r.wrk.read
		sum.write += r.wrk.write
		sum.timeout += r.wrk.timeout
		sum.non2xx += r.wrk.non2xx
	}
	if s := sum.errors(); s != "" {
		return s
	}
	return "0"
}

// median of f over rs (the mean of the middle two for an even count).
func median(rs []*result, f func(*result) float64) float64 {
	if len(rs) == 0 {
		return math.NaN()
	}
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// aggregate groups results by configuration (in the order of configs) and
// connection mode.
func aggregate(configs []config, results []*result) []*agg {
	var out []*agg
	for _, c := range configs {
		for _, m := range modes {
			a := &agg{cfg: c, mode: m}
			for _, r := range results {
				if r.cfg != c || r.mode != m {
					continue
				}
				if r.err != nil {
					a.fails = append(a.fails, r.err)
				} else {
					a.runs = append(a.runs, r)
				}
			}
			out = append(out, a)
		}
	}
	return out
}
