package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/paddock-sh/paddock/internal/testkit"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden with the output of this code")

// reportResults is two rounds of every configuration, with a failure, a
// worker that answered nothing, and a disturbed measurement.
func reportResults() ([]config, []*result) {
	configs := []config{{"paddock", "none"}, {"paddock", "reuseport"}, {"paddock", "rr"}, {"node", "rr"}, {"node", "none"}}
	var results []*result
	for round := range 2 {
		for i, c := range configs {
			for j, m := range modes {
				n := float64(1000*(i+1) + 100*j + 10*round)
				r := &result{cfg: c, mode: m,
					wrk: wrkResult{reqPerSec: n, p99: time.Duration(n) * time.Microsecond, requests: int64(n) * 8,
						read: int64(round * j)},
					perWorker: []int64{int64(n) * 5, int64(n) * 4}, conns: []int64{33, 31},
					rss: int64(n) * 10 << 10, otherCPU: 0.01 * float64(round+j),
					supCPU: time.Duration(n) * time.Duration(10+i) * time.Microsecond, load: fmt.Sprintf("%d.00 1.50 1.25", 2+round)}
				if m.close {
					r.conns = append([]int64(nil), r.perWorker...) // one connection per request
				}
				switch {
				case c == configs[2] && m == modes[0] && round == 1:
					r.err = errors.New("supervisor exited: exit status 1 | see the log\nsecond line")
				case c == configs[4] && m == modes[1]:
					r.perWorker = []int64{9000, 0}
				case c == configs[1] && round == 1:
					r.otherCPU = 0.2
				}
				results = append(results, r)
			}
		}
	}
	return configs, results
}

// TestReportGolden: the report's format, for one and for several rounds.
func TestReportGolden(t *testing.T) {
	m := machineInfo{rows: [][2]string{{"CPUs", "2 usable (nproc), a CPU"}, {"rounds", "2"}}}
	configs, results := reportResults()
	for _, tc := range []struct {
		name    string
		rounds  int
		results []*result
	}{
		{"report-1round", 1, results[:len(results)/2]},
		{"report-2rounds", 2, results},
		{"report-node-only", 1, results[6:10]},
		{"report-paddock-wins", 1, paddockWins(results[:len(results)/2])},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			report(&out, options{rounds: tc.rounds}, m, configs, tc.results)
			testkit.Golden(t, filepath.Join("testdata", tc.name+".golden"), out.Bytes(), *update)
		})
	}
}

// paddockWins is rs with paddock's configurations fast, small and
// balanced, so that the targets are met.
func paddockWins(rs []*result) []*result {
	out := make([]*result, len(rs))
	for i, r := range rs {
		c := *r
		if c.cfg.side == "paddock" {
			c.wrk.reqPerSec *= 10
			c.wrk.p99 /= 10
			c.perWorker = []int64{1000, 950}
			c.rss = 8 << 20
			c.err = nil
		}
		out[i] = &c
	}
	return out
}
