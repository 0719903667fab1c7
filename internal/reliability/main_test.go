// Package reliability is paddock's reliability suite: the real paddock
// binary, real workers, signals and sockets, put through what a production
// host does to a supervisor (rolling updates under load, kill -9, a
// crash-looping neighbour, thousands of reloads, hostile manifest files, a
// reader of its output that stops reading), each measured and reported as
// one line: what was tried, what held, what was lost (which must be
// nothing).
//
// `go test ./internal/reliability` (part of make test) runs the short
// part; `make reliability` runs the long one (-reliability.long) with -v,
// which prints the report table. Nothing here asserts on elapsed time:
// every wait is for a condition, bounded by testkit.Patience.
package reliability

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/paddock-sh/paddock/internal/testkit"
)

// long selects the long part of the suite (make reliability).
var long = flag.Bool("reliability.long", false, "run the long part of the reliability suite (make reliability)")

// paddockBin is the paddock binary built for the suite, without the race
// detector: the figures are those of the binary users run.
var paddockBin string

// selfBin is this test binary, which doubles as the workers' program
// (helper modes, see helper.go).
var selfBin string

// size returns the short or the long figure, as the suite runs.
func size(short, longer int) int {
	if *long {
		return longer
	}
	return short
}

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helper(mode))
	}
	dir, err := os.MkdirTemp("", "paddock-reliability-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	paddockBin = filepath.Join(dir, "paddock")
	os.Setenv("PADDOCK_SOCKET", filepath.Join(dir, "default.sock"))
	build := exec.Command("go", "build", "-o", paddockBin, "github.com/paddock-sh/paddock/cmd/paddock")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building paddock:", err)
		os.Exit(1)
	}
	if selfBin, err = os.Executable(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testkit.ParseFlags(testkit.DefaultParallel)
	code := m.Run()
	printReport(code)
	os.RemoveAll(dir)
	os.Exit(code)
}

// A finding is one line of the report.
type finding struct {
	name, tried, held, lost string
	failed                  bool
}

var (
	reportMu sync.Mutex
	report   []finding
)

// record adds t's line to the report once the test has ended (its
// defers run): f says what was tried, what held, and what was lost, which
// must be "nothing" unless the test failed.
func record(t *testing.T, f func() (tried, held, lost string)) {
	t.Cleanup(func() {
		tried, held, lost := f()
		reportMu.Lock()
		defer reportMu.Unlock()
		report = append(report, finding{name: t.Name(), tried: tried, held: held, lost: lost, failed: t.Failed()})
	})
}

// printReport prints the report table on stdout (go test shows it with
// -v, or when a test failed).
func printReport(code int) {
	reportMu.Lock()
	defer reportMu.Unlock()
	if len(report) == 0 {
		return
	}
	sort.Slice(report, func(i, j int) bool { return report[i].name < report[j].name })
	part := "short"
	if *long {
		part = "long"
	}
	fmt.Printf("\nreliability report (%s part)\n\n", part)
	fmt.Println("| test | tried | held | lost | result |")
	fmt.Println("|---|---|---|---|---|")
	for _, f := range report {
		result := "ok"
		if f.failed {
			result = "FAILED"
		}
		fmt.Printf("| %s | %s | %s | %s | %s |\n", f.name, cell(f.tried), cell(f.held), cell(f.lost), result)
	}
	if code != 0 {
		fmt.Println("\nsomething was lost: see the FAILED lines")
	}
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
