package nodecompat

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paddock-sh/paddock/internal/testkit"
)

var (
	flagAll = flag.Bool("parity.all", false,
		"run every case (make test-node), not only the fast ones expected to pass under paddock (make test)")
	flagRun = flag.String("parity.run", "",
		"run only these cases (a comma-separated list of names), whatever -parity.all says")
	flagMarkdown = flag.String("parity.markdown", "",
		"write the results as a markdown table to this file")
)

func TestMain(m *testing.M) {
	testkit.ParseFlags(testkit.DefaultParallel)
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// workerPatience is how long a case's worker waits before it reports the
// stage it is stuck in: less than the harness's own deadline (Patience),
// so that a hung case says where it hangs.
const workerPatience = testkit.Patience * 3 / 4

// A known failure is a case that fails under paddock today, with its cause
// (the numbering of issue 14) and what goes wrong, from
// testdata/known-failures.txt. A fix removes its cases' lines.
type knownFailure struct {
	cause, what string
}

// readKnown reads testdata/known-failures.txt: one case per line, "NAME
// CAUSE WHAT...", # comments.
func readKnown(t *testing.T, cases map[string]parityCase) map[string]knownFailure {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "known-failures.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	known := make(map[string]knownFailure)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 3 {
			t.Fatalf("known-failures.txt:%d: want NAME CAUSE WHAT, got %q", n, line)
		}
		if _, ok := cases[fields[0]]; !ok {
			t.Fatalf("known-failures.txt:%d: no case %q", n, fields[0])
		}
		if _, dup := known[fields[0]]; dup {
			t.Fatalf("known-failures.txt:%d: %s listed twice", n, fields[0])
		}
		known[fields[0]] = knownFailure{cause: fields[1], what: strings.Join(fields[2:], " ")}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return known
}

var (
	buildOnce  sync.Once
	buildDir   string // removed by TestMain
	paddockBin string
	buildErr   error
)

// buildPaddock builds cmd/paddock once per test binary, into a temporary
// directory of its own.
func buildPaddock() (string, error) {
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "parity-paddock"); buildErr != nil {
			return
		}
		paddockBin = filepath.Join(buildDir, "paddock")
		cmd := exec.Command("go", "build", "-o", paddockBin, "github.com/paddock-sh/paddock/cmd/paddock")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build cmd/paddock: %w\n%s", err, out)
		}
	})
	return paddockBin, buildErr
}

// portsMu guards portsGiven, the ports handed to runs so far: two parallel
// cases never get the same one.
var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// freePort returns a port free for TCP and UDP on every interface at the
// time of the call, below the kernel's ephemeral range (a port from that
// range may become a client connection's local port meanwhile), and never
// the same one twice.
func freePort(t *testing.T) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		port := 20000 + rand.IntN(12000)
		if portsGiven[port] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
		if err != nil {
			continue
		}
		u, err := net.ListenPacket("udp", fmt.Sprintf(":%d", port))
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		portsGiven[port] = true
		return port
	}
	t.Fatal("no free port below the ephemeral range")
	return 0
}

// hasIPv6 says whether the loopback interface has IPv6.
func hasIPv6() bool {
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// An outcome is how one case ended under one primary.
type outcome struct {
	ran  bool
	pass bool
	// refused says paddock refused the case as it should
	// (parityCase.RefusedByPaddock); pass is then true.
	refused bool
	why     string // the failure, the PASS lines, or the refusal
}

// TestNodeParity runs the cases under Node's own primary and under paddock.
// It fails when a case fails under Node's primary (a defect of the
// harness), and when a case fails under paddock that known-failures.txt
// does not list. Without -parity.all it runs only the cases expected to
// pass under paddock that are not slow: make test's share.
func TestNodeParity(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	cases := allCases()
	byName := casesByName(cases)
	known := readKnown(t, byName)
	bin, err := buildPaddock()
	if err != nil {
		t.Fatal(err)
	}
	testdata, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	ipv6 := hasIPv6()
	var only map[string]bool
	if *flagRun != "" {
		only = map[string]bool{}
		for _, n := range strings.Split(*flagRun, ",") {
			if _, ok := byName[n]; !ok {
				t.Fatalf("-parity.run: no case %q", n)
			}
			only[n] = true
		}
	}

	var mu sync.Mutex
	results := map[string][2]outcome{} // by case: node, paddock
	t.Run("cases", func(t *testing.T) {
		for _, c := range cases {
			_, isKnown := known[c.Name]
			switch {
			case only != nil && !only[c.Name]:
				continue
			case only == nil && !*flagAll && (isKnown || c.Slow):
				continue
			}
			t.Run(c.Name, func(t *testing.T) {
				t.Parallel()
				if c.IPv6 && !ipv6 {
					t.Skip("no IPv6 on this machine")
				}
				var got [2]outcome
				for i, p := range []string{"node", "paddock"} {
					var prim primary = &nodePrimary{}
					if p == "paddock" {
						prim = &paddockPrimary{bin: bin}
					}
					got[i] = runCase(t, testdata, c, prim)
				}
				mu.Lock()
				results[c.Name] = got
				mu.Unlock()
				if !got[0].pass {
					t.Errorf("fails under Node's own primary (a defect of the harness: fix the case or drop it):\n%s", got[0].why)
				}
				k, isKnown := known[c.Name]
				switch {
				case !got[1].pass && !isKnown:
					t.Errorf("fails under paddock:\n%s", got[1].why)
				case !got[1].pass:
					t.Logf("fails under paddock, as known (cause %s: %s):\n%s", k.cause, k.what, got[1].why)
				case isKnown:
					t.Logf("passes under paddock: remove it from testdata/known-failures.txt (cause %s)", k.cause)
				}
			})
		}
	})
	table := report(cases, known, results)
	t.Logf("Node cluster parity:\n%s", table)
	if *flagMarkdown != "" {
		if err := os.WriteFile(*flagMarkdown, []byte(table), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// report returns the results as a markdown table, with the counts.
func report(cases []parityCase, known map[string]knownFailure, results map[string][2]outcome) string {
	var b strings.Builder
	cell := func(o outcome) string {
		switch {
		case !o.ran:
			return "–"
		case o.refused:
			return "refused by design"
		case o.pass:
			return "pass"
		default:
			return "**FAIL**"
		}
	}
	var ran, nodePass, paddockPass, paddockRefused int
	byCause := map[string]int{}
	b.WriteString("| case | policy | from | Node's primary | paddock | known cause |\n|---|---|---|---|---|---|\n")
	for _, c := range cases {
		r, ok := results[c.Name]
		if !ok {
			continue
		}
		cause := ""
		if k, isKnown := known[c.Name]; isKnown {
			cause = k.cause + ": " + k.what
		}
		paddock := cell(r[1])
		if _, isKnown := known[c.Name]; isKnown && r[1].pass {
			paddock = "pass (still listed as known)"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", c.Name, c.policy(), c.From, cell(r[0]), paddock, cause)
		if !r[0].ran {
			continue
		}
		ran++
		if r[0].pass {
			nodePass++
		}
		if r[1].refused {
			paddockRefused++
		} else if r[1].pass {
			paddockPass++
		} else if k, isKnown := known[c.Name]; isKnown {
			byCause[k.cause]++
		} else {
			byCause["unknown"]++
		}
	}
	fmt.Fprintf(&b, "\nCases run: %d. Pass under Node's primary: %d. Pass under paddock: %d.", ran, nodePass, paddockPass)
	if paddockRefused > 0 {
		fmt.Fprintf(&b, " Refused by paddock by design, with the reason: %d.", paddockRefused)
	}
	b.WriteString("\n")
	if len(byCause) > 0 {
		causes := make([]string, 0, len(byCause))
		for c := range byCause {
			causes = append(causes, c)
		}
		sort.Slice(causes, func(i, j int) bool {
			a, errA := strconv.Atoi(causes[i])
			b, errB := strconv.Atoi(causes[j])
			if errA != nil || errB != nil {
				return causes[i] < causes[j]
			}
			return a < b
		})
		b.WriteString("Failing under paddock, by cause:")
		for _, c := range causes {
			fmt.Fprintf(&b, " %s: %d;", c, byCause[c])
		}
		b.WriteString("\n")
	}
	return b.String()
}

// runCase runs c under p in a directory of its own and says how it ended.
// It fails the test only for a defect of the harness itself (a file it
// cannot write, a primary it cannot start).
func runCase(t *testing.T, testdata string, c parityCase, p primary) (o outcome) {
	t.Helper()
	o.ran = true
	// Not t.TempDir: the cases put unix sockets in their directory, and a
	// socket's path has at most 107 bytes.
	dir, err := os.MkdirTemp("", "parity")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for _, f := range []string{"common.js", "primary.js", filepath.Join("cases", c.script()+".js")} {
		b, err := os.ReadFile(filepath.Join(testdata, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := testkit.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if c.Cwd != "" {
		if err := os.MkdirAll(filepath.Join(dir, c.Cwd), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r := &run{c: c, dir: dir, events: make(chan event, 4096), output: &testkit.Buffer{}}
	r.env = append(os.Environ(),
		"PARITY_DIR="+dir,
		"PARITY_CASE="+c.Name,
		"PARITY_POLICY="+c.policy(),
		"PARITY_PATIENCE="+strconv.FormatInt(workerPatience.Milliseconds(), 10),
		"PORT="+strconv.Itoa(freePort(t)),
		"PORT2="+strconv.Itoa(freePort(t)),
	)
	for k, v := range c.PrimaryEnv {
		r.env = append(r.env, k+"="+v)
	}
	ctx, cancel := context.WithTimeout(t.Context(), testkit.Patience)
	defer cancel()
	if _, ok := p.(*paddockPrimary); ok && c.RefusedByPaddock != "" {
		return refusal(ctx, r, p, regexp.MustCompile(c.RefusedByPaddock))
	}
	if err := p.start(ctx, r); err != nil {
		p.stop()
		return outcome{ran: true, why: fmt.Sprintf("%v\n%s", err, tail(r.output.String()))}
	}
	defer p.stop()
	if err := drive(ctx, r, p); err != nil {
		return outcome{ran: true, why: fmt.Sprintf("%v\noutput:\n%s", err, tail(r.output.String()))}
	}
	return outcome{ran: true, pass: true, why: passLines(dir)}
}

// refusal starts p, paddock, for a case it must refuse (want matches the
// error it says why with), and says whether it did: it must exit before it
// serves its control socket, with want in its output.
func refusal(ctx context.Context, r *run, p primary, want *regexp.Regexp) outcome {
	err := p.start(ctx, r)
	p.stop()
	out := r.output.String()
	switch {
	case err == nil:
		return outcome{ran: true, why: fmt.Sprintf("paddock accepted the case; want it refused with %q\noutput:\n%s", want, tail(out))}
	case !want.MatchString(out):
		return outcome{ran: true, why: fmt.Sprintf("paddock did not start (%v), but without the refusal %q\noutput:\n%s", err, want, tail(out))}
	}
	return outcome{ran: true, pass: true, refused: true, why: "refused: " + want.FindString(out)}
}

// drive carries out the case's steps as the primary's events come, and
// returns nil once every worker reported PASS and (with c.Exit) exited with
// the expected code, or the reason the case failed.
func drive(ctx context.Context, r *run, p primary) error {
	type worker struct {
		exited bool
		code   *int
		signal string
	}
	workers := map[int]*worker{}
	online := 0
	var messages []event // not yet taken by a step
	next := 0            // the next step
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()

	// triggered says whether step s's trigger happened, taking the message
	// it matched.
	triggered := func(s step) bool {
		switch {
		case s.On.Online > 0:
			return online >= s.On.Online
		case s.On.Exit:
			w := workers[s.On.Worker]
			return w != nil && w.exited
		case s.On.Message != "":
			for i, m := range messages {
				if (s.On.Worker == 0 || m.Worker == s.On.Worker) && jsonEqual(m.Message, []byte(s.On.Message)) {
					messages = slices.Delete(messages, i, i+1)
					return true
				}
			}
		}
		return false
	}
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("no result after %v: %s", testkit.Patience, missing(r, len(workers)))
		case <-p.exited():
			return fmt.Errorf("the primary exited: %s", missing(r, len(workers)))
		case e := <-r.events:
			if workers[e.Worker] == nil {
				workers[e.Worker] = &worker{}
			}
			switch e.Type {
			case "online":
				online++
			case "message":
				if isEcho(e.Message) {
					if err := p.do(ctx, action{Op: "send", Worker: e.Worker, Message: string(e.Message)}); err != nil {
						return fmt.Errorf("echo to worker %d: %w", e.Worker, err)
					}
				} else {
					messages = append(messages, e)
				}
			case "exit":
				w := workers[e.Worker]
				w.exited, w.code, w.signal = true, e.Code, e.Signal
				res := result(r.dir, e.Worker)
				switch {
				case res == "":
					return fmt.Errorf("worker %d exited (%s) without reporting", e.Worker, exitText(e.Code, e.Signal))
				case r.c.Exit != nil && (e.Code == nil || *e.Code != *r.c.Exit):
					return fmt.Errorf("worker %d exited (%s), want exit code %d; it reported: %s",
						e.Worker, exitText(e.Code, e.Signal), *r.c.Exit, res)
				}
			}
		case <-tick.C:
		}
		for next < len(r.c.Steps) && triggered(r.c.Steps[next]) {
			if err := p.do(ctx, r.c.Steps[next].Do); err != nil {
				return fmt.Errorf("step %d (%s): %w", next+1, r.c.Steps[next].Do.Op, err)
			}
			next++
		}
		// Done?
		if len(workers) < r.c.instances() {
			continue
		}
		done := true
		for id, w := range workers {
			res := result(r.dir, id)
			if strings.HasPrefix(res, "FAIL") {
				return fmt.Errorf("worker %d: %s", id, res)
			}
			if res == "" || (r.c.Exit != nil && !w.exited) {
				done = false
			}
		}
		if done {
			return nil
		}
	}
}

// result returns what worker id reported, or "" before it did.
func result(dir string, id int) string {
	b, err := os.ReadFile(filepath.Join(dir, "result."+strconv.Itoa(id)))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// passLines returns every worker's report, one per line.
func passLines(dir string) string {
	files, _ := filepath.Glob(filepath.Join(dir, "result.*"))
	sort.Strings(files)
	var lines []string
	for _, f := range files {
		b, _ := os.ReadFile(f)
		lines = append(lines, filepath.Ext(f)[1:]+": "+strings.TrimSpace(string(b)))
	}
	return strings.Join(lines, "\n")
}

// missing says which workers have not reported, for a run that timed out.
func missing(r *run, started int) string {
	var parts []string
	for id := 1; id <= max(started, r.c.instances()); id++ {
		res := result(r.dir, id)
		if res == "" {
			res = "no report"
		}
		parts = append(parts, fmt.Sprintf("worker %d: %s", id, res))
	}
	return strings.Join(parts, "; ")
}

func exitText(code *int, signal string) string {
	if signal != "" {
		return "signal " + signal
	}
	if code == nil {
		return "unknown code"
	}
	return "code " + strconv.Itoa(*code)
}

// tail returns the last 40 lines of s.
func tail(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > 40 {
		lines = append([]string{"..."}, lines[len(lines)-40:]...)
	}
	return strings.Join(lines, "\n")
}
