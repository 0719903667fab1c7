package main

// The report: the results aggregated over the rounds, as markdown.

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
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
	err       error
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

// disturbed is the share of a CPU used by other processes above which a
// measurement is flagged.
const disturbed = 0.05

func report(out io.Writer, o options, m machineInfo, configs []config, results []*result) {
	fmt.Fprintf(out, "### Machine\n\n| | |\n|---|---|\n")
	for _, r := range m.rows {
		fmt.Fprintf(out, "| %s | %s |\n", r[0], r[1])
	}
	aggs := aggregate(configs, results)
	many := o.rounds > 1

	fmt.Fprintf(out, "\n### Results\n\n")
	if many {
		fmt.Fprintf(out, "%d rounds, configurations in a rotated order each round. req/s, p99 and max/min are the medians "+
			"over the rounds, each round's value in brackets; supervisor RSS is the largest sample of all rounds; "+
			"errors are summed; other CPU is the largest of the rounds.\n\n", o.rounds)
	}
	var other float64
	for _, a := range aggs {
		other = max(other, a.otherCPU())
	}
	fmt.Fprintf(out, "Requests per worker: as counted by the workers, busiest first; with keep-alive, also the connections each accepted. ")
	fmt.Fprintf(out, "Other CPU: CPU time used by processes other than the benchmark's (the supervisor, its workers, wrk, "+
		"this runner) during the measurement, as a share of one CPU; above a few %% the figures are disturbed.\n\n")
	if other > disturbed {
		fmt.Fprintf(out, "**Other processes used up to %s of a CPU during some measurements: those figures are disturbed; "+
			"run again on a quiet machine.**\n\n", fmtPct(other))
	}
	fmt.Fprintf(out, "| configuration | connections | req/s | p99 | requests per worker | max/min | supervisor RSS | errors | other CPU |\n")
	fmt.Fprintf(out, "|---|---|---:|---:|---|---:|---:|---|---:|\n")
	for _, a := range aggs {
		if len(a.fails) > 0 {
			fmt.Fprintf(out, "| %s | %s | failed (%d of %d): %s | | | | | | |\n", a.name(), a.mode.name,
				len(a.fails), len(a.fails)+len(a.runs), mdCell(firstOf(a.fails[0].Error())))
			continue
		}
		if !a.ok() {
			continue // not reached: the run was interrupted
		}
		var reqs, p99s, counts, bals []string
		for _, r := range a.runs {
			reqs = append(reqs, fmt.Sprintf("%.0f", r.wrk.reqPerSec))
			p99s = append(p99s, fmtDur(r.wrk.p99))
			cell := joinCounts(r.perWorker)
			if !r.mode.close {
				// With keep-alive, how wrk's few connections were split
				// between the workers (by the kernel or the primary).
				cell += " (" + joinCounts(r.conns) + " conns)"
			}
			counts = append(counts, cell)
			bals = append(bals, fmtRatio(r.balance()))
		}
		req, p99, bal := fmt.Sprintf("%.0f", a.reqPerSec()), fmtDur(a.p99()), fmtRatio(a.balance())
		if many {
			req += " (" + strings.Join(reqs, ", ") + ")"
			p99 += " (" + strings.Join(p99s, ", ") + ")"
			bal += " (" + strings.Join(bals, ", ") + ")"
		}
		fmt.Fprintf(out, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", a.name(), a.mode.name, req, p99,
			strings.Join(counts, "; "), bal, fmtMiB(a.rss()), a.errors(), fmtPct(a.otherCPU()))
	}

	find := func(side, policy string, m mode) *agg {
		for _, a := range aggs {
			if a.ok() && len(a.fails) == 0 && a.cfg.side == side && a.cfg.policy == policy && a.mode == m {
				return a
			}
		}
		return nil
	}
	// Node's best policy in each mode: the one with more requests/s.
	best := map[mode]*agg{}
	for _, a := range aggs {
		if a.cfg.side == "node" && a.ok() && len(a.fails) == 0 && (best[a.mode] == nil || a.reqPerSec() > best[a.mode].reqPerSec()) {
			best[a.mode] = a
		}
	}
	var paddockPolicies []string
	for _, c := range configs {
		if c.side == "paddock" && !slices.Contains(paddockPolicies, c.policy) {
			paddockPolicies = append(paddockPolicies, c.policy)
		}
	}
	ratio := func(pol string, m mode) (req, p99 float64, ok bool) {
		p, b := find("paddock", pol, m), best[m]
		if p == nil || b == nil {
			return 0, 0, false
		}
		return p.reqPerSec() / b.reqPerSec(), float64(p.p99()) / float64(b.p99()), true
	}

	if len(best) > 0 && len(paddockPolicies) > 0 {
		fmt.Fprintf(out, "\n### Ratios against Node's best policy\n\n")
		fmt.Fprintf(out, "Node's best policy is, in each connection mode, the one with more requests/s. ")
		fmt.Fprintf(out, "Requests/s: above 1 is better for paddock; p99 latency: below 1 is better.\n\n")
		fmt.Fprintf(out, "| | keep-alive | close |\n|---|---:|---:|\n")
		row := "| Node's best policy |"
		for _, m := range modes {
			if b := best[m]; b != nil {
				row += fmt.Sprintf(" %s (%.0f req/s, p99 %s) |", b.cfg.policy, b.reqPerSec(), fmtDur(b.p99()))
			} else {
				row += " — |"
			}
		}
		fmt.Fprintln(out, row)
		for _, pol := range paddockPolicies {
			for _, metric := range []string{"req/s", "p99"} {
				row := fmt.Sprintf("| paddock %s, %s |", pol, metric)
				for _, m := range modes {
					req, p99, ok := ratio(pol, m)
					switch {
					case !ok:
						row += " — |"
					case metric == "req/s":
						row += " " + fmtRatio(req) + "× |"
					default:
						row += " " + fmtRatio(p99) + "× |"
					}
				}
				fmt.Fprintln(out, row)
			}
		}
	}

	fmt.Fprintf(out, "\n### Targets\n\n| target | measured | met |\n|---|---|---|\n")
	for _, t := range []struct {
		pol  string
		m    mode
		want float64
	}{{"reuseport", modes[1], 1.1}, {"none", modes[1], 1.0}, {"rr", modes[1], 0.9}, {"reuseport", modes[0], 1.0}, {"none", modes[0], 1.0}, {"rr", modes[0], 1.0}} {
		what := fmt.Sprintf("%s: paddock %s req/s ≥ %.1f× Node's best", t.m.name, t.pol, t.want)
		if v, _, ok := ratio(t.pol, t.m); ok {
			fmt.Fprintf(out, "| %s | %.3f× | %s |\n", what, v, yesNo(v >= t.want))
		} else {
			fmt.Fprintf(out, "| %s | not measured | — |\n", what)
		}
	}
	// paddock's rr against Node's own rr primary, on the same workers.
	if p, n := find("paddock", "rr", modes[1]), find("node", "rr", modes[1]); p != nil && n != nil {
		v := p.reqPerSec() / n.reqPerSec()
		fmt.Fprintf(out, "| %s: paddock rr req/s ≥ 1.5× Node's rr | %.3f× | %s |\n", modes[1].name, v, yesNo(v >= 1.5))
	}
	var bal []string
	balOK, balAny := true, false
	for _, m := range modes {
		if a := find("paddock", "reuseport", m); a != nil {
			v := a.balance()
			s := fmtRatio(v) + " (" + m.name
			if many {
				s += ", worst round " + fmtRatio(a.worstBalance())
			}
			bal = append(bal, s+")")
			balAny = true
			if !(v < 1.2) {
				balOK = false
			}
		}
	}
	what := "paddock reuseport: max/min requests per worker < 1.2"
	if balAny {
		fmt.Fprintf(out, "| %s | %s | %s |\n", what, strings.Join(bal, ", "), yesNo(balOK))
	} else {
		fmt.Fprintf(out, "| %s | not measured | — |\n", what)
	}
	var padRSS, nodeRSS int64
	for _, a := range aggs {
		if a.cfg.side == "paddock" {
			padRSS = max(padRSS, a.rss())
		} else {
			nodeRSS = max(nodeRSS, a.rss())
		}
	}
	if padRSS > 0 {
		fmt.Fprintf(out, "| paddock's RSS ≤ 10 MiB while serving (largest sample) | %s | %s |\n", fmtMiB(padRSS), yesNo(padRSS <= 10<<20))
	}
	if nodeRSS > 0 {
		fmt.Fprintf(out, "| for reference: Node primary's RSS while serving (largest sample) | %s | — |\n", fmtMiB(nodeRSS))
	}
}

func joinCounts(ns []int64) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.FormatInt(n, 10)
	}
	return strings.Join(s, " / ")
}

func firstOf(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func mdCell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "**no**"
}

func fmtRatio(v float64) string {
	switch {
	case math.IsNaN(v):
		return "—"
	case math.IsInf(v, 1):
		return "∞"
	}
	return fmt.Sprintf("%.2f", v)
}

func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

// fmtPct formats a number of CPUs as a percentage of one CPU.
func fmtPct(cpus float64) string { return fmt.Sprintf("%.0f%%", 100*cpus) }

func fmtMiB(b int64) string {
	if b <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}
