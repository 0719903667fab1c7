package procstat

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/paddock-sh/paddock/internal/testkit"
)

// patience bounds every wait for something that must happen; only a
// failure waits that long.
const patience = 60 * time.Second

const mib = 1 << 20

// The test binary doubles as the measured process: with PROCSTAT_HELPER
// set, TestMain runs a helper mode instead of the tests.
func TestMain(m *testing.M) {
	if mode := os.Getenv("PROCSTAT_HELPER"); mode != "" {
		helper(mode)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// sink keeps the helpers' memory reachable.
var sink [][]byte

// helper runs one measured behaviour:
//
//	alloc:N    allocate N MiB and write to every page; print "ready"; hold
//	           until stdin is closed
//	pair:N     start alloc:N as a child in this process's group, allocate
//	           N MiB too; print "ready" once both are; hold until stdin is
//	           closed
//	spin       burn CPU until stdin is closed
func helper(mode string) {
	kind, arg, _ := strings.Cut(mode, ":")
	switch kind {
	case "alloc":
		n, _ := strconv.Atoi(arg)
		touch(n)
		fmt.Println("ready")
	case "pair":
		n, _ := strconv.Atoi(arg)
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "PROCSTAT_HELPER=alloc:"+arg)
		cmd.Stdin = os.Stdin // the child holds until the test closes it too
		out, err := cmd.StdoutPipe()
		if err != nil {
			os.Exit(3)
		}
		if err := cmd.Start(); err != nil {
			os.Exit(3)
		}
		if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
			os.Exit(4)
		}
		touch(n)
		fmt.Println("ready")
		defer cmd.Wait()
	case "spin":
		go func() {
			io.Copy(io.Discard, os.Stdin)
			os.Exit(0)
		}()
		for x := 0; ; x++ {
			_ = x * x
		}
	default:
		fmt.Fprintln(os.Stderr, "unknown helper mode", mode)
		os.Exit(2)
	}
	io.Copy(io.Discard, os.Stdin)
}

// touch allocates n MiB and writes to each of its pages, so that they are
// resident.
func touch(n int) {
	for range n {
		b := make([]byte, mib)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		sink = append(sink, b)
	}
}

// startGroup starts the test binary in helper mode as the leader of a new
// process group and waits for its "ready" when it prints one. It returns
// its pid (its pgid). The process ends when the test does.
func startGroup(t *testing.T, mode string, waitReady bool) int {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "PROCSTAT_HELPER="+mode)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(patience):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	if waitReady {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil || line != "ready\n" {
			t.Fatalf("helper %s: %q, %v", mode, line, err)
		}
	}
	return cmd.Process.Pid
}

// statRSS returns the RSS of one process from its stat file, in bytes.
func statRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	st, ok := parseStat(b)
	if !ok {
		t.Fatalf("cannot parse %q", b)
	}
	return st.rss * int64(os.Getpagesize())
}

func TestParseStat(t *testing.T) {
	tests := []struct {
		name, line string
		want       stat
		ok         bool
	}{
		{"plain", "4711 (sleep) S 1 4711 4711 0 -1 4194560 100 0 0 0 7 3 2 1 20 0 1 0 123 8192000 250 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n",
			stat{pgrp: 4711, ticks: 13, rss: 250}, true},
		{"name with spaces and parens", "12 (a) b (c)) R 1 99 12 0 -1 0 0 0 0 0 100 200 0 0 20 0 1 0 5 0 42 0\n",
			stat{pgrp: 99, ticks: 300, rss: 42}, true},
		{"zombie", "13 (x) Z 1 13 13 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 5 0 0 0",
			stat{pgrp: 13, ticks: 2, rss: 0}, true},
		{"truncated", "14 (x) S 1 14 14 0 -1 0 0 0 0 0 1 1 0", stat{}, false},
		{"no name", "14 x S 1 14", stat{}, false},
		{"garbage pgrp", "14 (x) S 1 zz 14 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 5 0 0 0", stat{}, false},
		{"empty", "", stat{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseStat([]byte(tt.line))
			if ok != tt.ok || (ok && got != tt.want) {
				t.Errorf("parseStat(%q) = %+v, %v; want %+v, %v", tt.line, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// TestScanOneProcess: the group of a process that allocated and touched
// 64 MiB is read with at least that much resident, and with what its stat
// file says.
func TestScanOneProcess(t *testing.T) {
	t.Parallel()
	pgid := startGroup(t, "alloc:64", true)
	var s Scanner
	got, err := s.Scan(map[int]bool{pgid: true, 999999999: true})
	if err != nil {
		t.Fatal(err)
	}
	u, ok := got[pgid]
	if !ok || len(got) != 1 {
		t.Fatalf("Scan = %+v, want group %d alone", got, pgid)
	}
	if u.Procs != 1 {
		t.Errorf("Procs = %d, want 1", u.Procs)
	}
	if u.RSS < 64*mib {
		t.Errorf("RSS = %d, want at least 64 MiB", u.RSS)
	}
	if own := statRSS(t, pgid); u.RSS > own+8*mib || u.RSS < own-8*mib {
		t.Errorf("RSS = %d, the process's own stat says %d", u.RSS, own)
	}
}

// TestScanSumsGroup: a group of two processes, each with 48 MiB touched,
// is read as both: two processes, the sum of their RSS.
func TestScanSumsGroup(t *testing.T) {
	t.Parallel()
	pgid := startGroup(t, "pair:48", true)
	other := startGroup(t, "alloc:8", true) // another group, not counted
	var s Scanner
	got, err := s.Scan(map[int]bool{pgid: true})
	if err != nil {
		t.Fatal(err)
	}
	u := got[pgid]
	if u.Procs != 2 {
		t.Fatalf("Procs = %d, want 2 (Scan: %+v)", u.Procs, got)
	}
	if u.RSS < 96*mib {
		t.Errorf("RSS = %d, want at least 96 MiB (two processes of 48)", u.RSS)
	}
	if _, ok := got[other]; ok {
		t.Errorf("group %d was not asked for: %+v", other, got)
	}
	// The sum is the two processes' own figures.
	child := 0
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == pgid {
			continue
		}
		if b, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil {
			if st, ok := parseStat(b); ok && st.pgrp == pgid {
				child = pid
			}
		}
	}
	if child == 0 {
		t.Fatal("no second process in the group")
	}
	if sum := statRSS(t, pgid) + statRSS(t, child); u.RSS > sum+8*mib || u.RSS < sum-8*mib {
		t.Errorf("RSS = %d, the two processes' stat files say %d", u.RSS, sum)
	}
}

// TestScanCPU: a process that burns CPU is read with a growing CPU time,
// and the Sampler reports a CPU percentage for it.
func TestScanCPU(t *testing.T) {
	t.Parallel()
	pgid := startGroup(t, "spin", false)
	s := &Sampler{Interval: 50 * time.Millisecond}
	s.Watch(pgid, time.Now(), true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	var last Sample
	testkit.WaitFor(t, "200ms of CPU and a CPU percentage over an interval", func() bool {
		smp, ok := s.Last(pgid)
		last = smp
		return ok && smp.Count > 1 && smp.CPUTotal >= 200*time.Millisecond && smp.CPUPercent > 0
	})
	if last.CPUPercent > 100*float64(2*testCPUs()) {
		t.Errorf("CPUPercent = %.1f, beyond what the machine has", last.CPUPercent)
	}
}

// testCPUs is the number of CPUs of the machine.
func testCPUs() int {
	n := 0
	b, _ := os.ReadFile("/proc/stat")
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "cpu") && len(line) > 3 && line[3] >= '0' && line[3] <= '9' {
			n++
		}
	}
	return max(n, 1)
}

// TestScanMissingProc: a proc directory that does not exist is an error
// that says so.
func TestScanMissingProc(t *testing.T) {
	s := Scanner{Dir: t.TempDir() + "/none"}
	if _, err := s.Scan(map[int]bool{1: true}); err == nil || !strings.Contains(err.Error(), "none") {
		t.Errorf("Scan of a missing directory: %v", err)
	}
}
