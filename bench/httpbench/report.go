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

// disturbed is the share of a CPU used by other processes above which a
// measurement is flagged.
const disturbed = 0.05

// report writes the markdown report: the machine, the results of every
// configuration in every connection mode, the ratios against Node's best
// policy, and the targets.
func report(out io.Writer, o options, m machineInfo, configs []config, results []*result) {
	fmt.Fprintf(out, "### Machine\n\n| | |\n|---|---|\n")
	for _, r := range m.rows {
		fmt.Fprintf(out, "| %s | %s |\n", r[0], r[1])
	}
	aggs := aggregate(configs, results)
	many := o.rounds > 1
	writeResults(out, o, aggs)
	writeCPU(out, o, aggs)
	cmp := compare(configs, aggs)
	if len(cmp.best) > 0 && len(cmp.paddockPolicies) > 0 {
		writeRatios(out, cmp)
	}
	writeTargets(out, cmp, many)
}

// writeCPU writes the supervisor's CPU time per connection of every
// configuration, the rr ratios of paddock against Node's primary, and the
// load averages the measurements began at.
func writeCPU(out io.Writer, o options, aggs []*agg) {
	many := o.rounds > 1
	fmt.Fprintf(out, "\n### The supervisor's CPU per connection\n\n")
	fmt.Fprintf(out, "CPU time (user and system, from `/proc/PID/stat`) of the supervisor process (paddock, or Node's primary) during "+
		"the measurement, divided by the connections the workers accepted meanwhile. Under rr the supervisor accepts and hands out "+
		"every connection; under none and reuseport it is not on a connection's path (its figure is what it spends idle, spread "+
		"over the connections). The clock ticks of /proc are 10 ms: a figure under about 10 µs is noise, and with keep-alive "+
		"(a few dozen connections) there is none (—).")
	if many {
		fmt.Fprintf(out, " Medians over the rounds, each round's value in brackets.")
	}
	fmt.Fprintf(out, "\n\n| configuration | connections | supervisor CPU per connection | supervisor CPU, share of one CPU | load average at the start |\n|---|---|---:|---:|---|\n")
	for _, a := range aggs {
		if !a.ok() {
			continue
		}
		var per, share, loads []string
		for _, r := range a.runs {
			per = append(per, fmtMicros(r.cpuPerConn()))
			share = append(share, fmtPct(float64(r.supCPU)/float64(max(o.duration, time.Second))))
			loads = append(loads, r.load)
		}
		cell := fmtMicros(a.cpuPerConn())
		shareCell := fmtPct(median(a.runs, func(r *result) float64 { return float64(r.supCPU) / float64(max(o.duration, time.Second)) }))
		if many {
			cell += " (" + strings.Join(per, ", ") + ")"
			shareCell += " (" + strings.Join(share, ", ") + ")"
		}
		fmt.Fprintf(out, "| %s | %s | %s | %s | %s |\n", a.name(), a.mode.name, cell, shareCell, strings.Join(loads, "; "))
	}
	var p, n *agg
	for _, a := range aggs {
		if a.ok() && len(a.fails) == 0 && a.mode.close && a.cfg.policy == "rr" {
			if a.cfg.side == "paddock" {
				p = a
			} else {
				n = a
			}
		}
	}
	if p == nil || n == nil {
		return
	}
	fmt.Fprintf(out, "\nrr with `Connection: close`, paddock against Node's primary, round by round (each round measures both):\n\n")
	fmt.Fprintf(out, "| round | paddock rr req/s | Node rr req/s | req/s ratio | paddock CPU per connection | Node CPU per connection | CPU ratio |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for i := range min(len(p.runs), len(n.runs)) {
		pr, nr := p.runs[i], n.runs[i]
		fmt.Fprintf(out, "| %d | %.0f | %.0f | %s× | %s | %s | %s× |\n", i+1, pr.wrk.reqPerSec, nr.wrk.reqPerSec,
			fmtRatio(pr.wrk.reqPerSec/nr.wrk.reqPerSec), fmtMicros(pr.cpuPerConn()), fmtMicros(nr.cpuPerConn()),
			fmtRatio(pr.cpuPerConn()/nr.cpuPerConn()))
	}
}

// writeResults writes the table of results, with what its columns mean.
func writeResults(out io.Writer, o options, aggs []*agg) {
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
		fmt.Fprintln(out, resultRow(a, many))
	}
}

// resultRow is the table row of a: medians, and with many rounds each
// round's value.
func resultRow(a *agg, many bool) string {
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
	return fmt.Sprintf("| %s | %s | %s | %s | %s | %s | %s | %s | %s |", a.name(), a.mode.name, req, p99,
		strings.Join(counts, "; "), bal, fmtMiB(a.rss()), a.errors(), fmtPct(a.otherCPU()))
}

// comparison holds what the ratios and targets compare.
type comparison struct {
	aggs []*agg
	// best is Node's best policy in each mode: the one with more
	// requests/s.
	best map[mode]*agg
	// paddockPolicies are paddock's policies measured, in the order of
	// the configurations.
	paddockPolicies []string
}

// compare finds, among aggs, Node's best policy in each mode and the
// paddock policies that configs measure.
func compare(configs []config, aggs []*agg) *comparison {
	c := &comparison{aggs: aggs, best: map[mode]*agg{}}
	for _, a := range aggs {
		if a.cfg.side == "node" && a.ok() && len(a.fails) == 0 && (c.best[a.mode] == nil || a.reqPerSec() > c.best[a.mode].reqPerSec()) {
			c.best[a.mode] = a
		}
	}
	for _, cfg := range configs {
		if cfg.side == "paddock" && !slices.Contains(c.paddockPolicies, cfg.policy) {
			c.paddockPolicies = append(c.paddockPolicies, cfg.policy)
		}
	}
	return c
}

// find returns the results of side and policy in mode m, or nil when they
// were not all measured.
func (c *comparison) find(side, policy string, m mode) *agg {
	for _, a := range c.aggs {
		if a.ok() && len(a.fails) == 0 && a.cfg.side == side && a.cfg.policy == policy && a.mode == m {
			return a
		}
	}
	return nil
}

// ratio is paddock's policy pol against Node's best in mode m: requests/s
// and p99 latency; ok is false when either was not measured.
func (c *comparison) ratio(pol string, m mode) (req, p99 float64, ok bool) {
	p, b := c.find("paddock", pol, m), c.best[m]
	if p == nil || b == nil {
		return 0, 0, false
	}
	return p.reqPerSec() / b.reqPerSec(), float64(p.p99()) / float64(b.p99()), true
}

// writeRatios writes the table of paddock's policies against Node's best.
func writeRatios(out io.Writer, c *comparison) {
	fmt.Fprintf(out, "\n### Ratios against Node's best policy\n\n")
	fmt.Fprintf(out, "Node's best policy is, in each connection mode, the one with more requests/s. ")
	fmt.Fprintf(out, "Requests/s: above 1 is better for paddock; p99 latency: below 1 is better.\n\n")
	fmt.Fprintf(out, "| | keep-alive | close |\n|---|---:|---:|\n")
	row := "| Node's best policy |"
	for _, m := range modes {
		if b := c.best[m]; b != nil {
			row += fmt.Sprintf(" %s (%.0f req/s, p99 %s) |", b.cfg.policy, b.reqPerSec(), fmtDur(b.p99()))
		} else {
			row += " — |"
		}
	}
	fmt.Fprintln(out, row)
	for _, pol := range c.paddockPolicies {
		for _, metric := range []string{"req/s", "p99"} {
			row := fmt.Sprintf("| paddock %s, %s |", pol, metric)
			for _, m := range modes {
				req, p99, ok := c.ratio(pol, m)
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

// writeTargets writes the team's targets and whether they hold.
func writeTargets(out io.Writer, c *comparison, many bool) {
	fmt.Fprintf(out, "\n### Targets\n\n| target | measured | met |\n|---|---|---|\n")
	for _, t := range []struct {
		pol  string
		m    mode
		want float64
	}{{"reuseport", modes[1], 1.1}, {"none", modes[1], 1.0}, {"rr", modes[1], 0.9}, {"reuseport", modes[0], 1.0}, {"none", modes[0], 1.0}, {"rr", modes[0], 1.0}} {
		what := fmt.Sprintf("%s: paddock %s req/s ≥ %.1f× Node's best", t.m.name, t.pol, t.want)
		if v, _, ok := c.ratio(t.pol, t.m); ok {
			fmt.Fprintf(out, "| %s | %.3f× | %s |\n", what, v, yesNo(v >= t.want))
		} else {
			fmt.Fprintf(out, "| %s | not measured | — |\n", what)
		}
	}
	// paddock's rr against Node's own rr primary, on the same workers.
	if p, n := c.find("paddock", "rr", modes[1]), c.find("node", "rr", modes[1]); p != nil && n != nil {
		v := p.reqPerSec() / n.reqPerSec()
		fmt.Fprintf(out, "| %s: paddock rr req/s ≥ 1.25× Node's rr | %.3f× | %s |\n", modes[1].name, v, yesNo(v >= 1.25))
		cpu := p.cpuPerConn() / n.cpuPerConn()
		fmt.Fprintf(out, "| %s: paddock rr CPU per connection ≤ 1/3 of Node's rr primary's | %s× (%s against %s) | %s |\n",
			modes[1].name, fmtRatio(cpu), fmtMicros(p.cpuPerConn()), fmtMicros(n.cpuPerConn()), yesNo(cpu <= 1.0/3))
	}
	writeBalanceTarget(out, c, many)
	writeRSSTargets(out, c.aggs)
}

// writeBalanceTarget writes the target on how evenly reuseport spreads
// the requests.
func writeBalanceTarget(out io.Writer, c *comparison, many bool) {
	var bal []string
	balOK, balAny := true, false
	for _, m := range modes {
		if a := c.find("paddock", "reuseport", m); a != nil {
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
}

// writeRSSTargets writes paddock's RSS target, and Node's primary's RSS
// for reference.
func writeRSSTargets(out io.Writer, aggs []*agg) {
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

// fmtMicros formats a duration in nanoseconds (a float: a median) in µs.
func fmtMicros(ns float64) string {
	if math.IsNaN(ns) || math.IsInf(ns, 0) {
		return "—"
	}
	return fmt.Sprintf("%.0f µs", ns/1e3)
}
