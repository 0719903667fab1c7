package testkit

import (
	"flag"
	"strconv"
)

// DefaultParallel is how many tests of a package that waits on real
// processes run at once unless -test.parallel says otherwise: such tests
// spend most of their time waiting for processes (signals, readiness,
// restarts, rollouts) rather than computing, so more of them than
// GOMAXPROCS, go test's default, fit on a small machine.
const DefaultParallel = 4

// ParseFlags parses the test binary's flags, as testing.M.Run would, and
// sets -test.parallel to parallel unless the command line gave it. Call it
// from TestMain before m.Run.
func ParseFlags(parallel int) {
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if !given {
		flag.Set("test.parallel", strconv.Itoa(parallel))
	}
}
