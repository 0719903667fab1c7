package main

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/paddock-sh/paddock/internal/control"
	"github.com/paddock-sh/paddock/internal/testkit"
)

// guide is docs/getting-started.md and the example it walks through.
var (
	guide        = filepath.Join("..", "..", "docs", "getting-started.md")
	guideExample = filepath.Join("..", "..", "examples", "getting-started")
)

// fencedBlock is a fenced code block of a Markdown page.
type fencedBlock struct {
	lang, body string
}

// fencedBlocks returns the fenced code blocks of a Markdown text, in order.
func fencedBlocks(text string) []fencedBlock {
	var out []fencedBlock
	var cur *fencedBlock
	for _, l := range strings.SplitAfter(text, "\n") {
		trimmed := strings.TrimSpace(l)
		switch {
		case cur == nil && strings.HasPrefix(trimmed, "```"):
			cur = &fencedBlock{lang: strings.TrimPrefix(trimmed, "```")}
		case cur != nil && trimmed == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.body += l
		}
	}
	return out
}

// guideStep is a command of the page and what TestGettingStarted does
// with it and checks after it.
type guideStep struct {
	cmd string
	// how: "install" (checked as text, not run: the test has its own
	// paddock), "cd", "run" (paddock run, in the background), "follow"
	// (paddock events, in the background), "tty" (paddock top, in a tmux
	// terminal), or "" (run to its end; it must exit 0).
	how   string
	check func(t *testing.T, g *guideRun, out string)
}

// guideRun is the state of one walk through the page.
type guideRun struct {
	dir, sock string
	env       []string
	ports     *strings.Replacer
	paddock   *running
	events    *testkit.Buffer
}

// guideSteps are the page's commands, in the page's order.
var guideSteps = []guideStep{
	{cmd: "git clone https://github.com/paddock-sh/paddock", how: "install"},
	{cmd: "cd paddock", how: "install"},
	{cmd: "go install ./cmd/paddock", how: "install"},
	{cmd: "paddock version", check: func(t *testing.T, _ *guideRun, out string) {
		if strings.TrimSpace(out) == "" {
			t.Error("paddock version printed nothing")
		}
	}},
	{cmd: "cd examples/getting-started", how: "cd"},
	{cmd: "paddock run --http-addr :8080", how: "run", check: func(t *testing.T, g *guideRun, _ string) {
		testkit.WaitFor(t, "the control socket", func() bool {
			c, err := net.Dial("unix", g.sock)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
		testkit.WaitFor(t, "3 ready workers of hello", func() bool { return appOf(t, statusOf(t, g.sock), "hello").Ready == 3 })
	}},
	{cmd: "paddock status", check: func(t *testing.T, _ *guideRun, out string) {
		if !regexp.MustCompile(`(?m)^hello +3 +3/3 `).MatchString(out) {
			t.Errorf("paddock status does not show hello with 3/3 ready:\n%s", out)
		}
	}},
	{cmd: "curl -s localhost:8000", check: greets("hello")},
	{cmd: "curl -s localhost:8000", check: greets("hello")},
	{cmd: "paddock events", how: "follow", check: func(t *testing.T, g *guideRun, _ string) {
		// The stream is open once it shows an event made after it
		// started: a scale to the instances hello has changes nothing.
		testkit.WaitFor(t, "paddock events to follow", func() bool {
			mustCLI(t, g.sock, "scale", "hello", "3")
			return strings.Contains(g.events.String(), " scale hello")
		})
	}},
	{cmd: "sed -i 's/GREETING: hello/GREETING: bonjour/' paddock.yaml", check: func(t *testing.T, g *guideRun, _ string) {
		g.events.WaitFor(t, "hello: updated (env.GREETING)")
		testkit.WaitFor(t, "the rolling update to complete", func() bool {
			return regexp.MustCompile(`rollout-progress hello generation=\S+ complete`).MatchString(g.events.String())
		})
	}},
	{cmd: "curl -s localhost:8000", check: greets("bonjour")},
	{cmd: "sed -i 's/instances: 3/instances: 4/' paddock.yaml", check: func(t *testing.T, g *guideRun, _ string) {
		testkit.WaitFor(t, "4 ready workers of hello", func() bool { return appOf(t, statusOf(t, g.sock), "hello").Ready == 4 })
	}},
	{cmd: "paddock ls", check: func(t *testing.T, _ *guideRun, out string) {
		if !regexp.MustCompile(`(?m)^hello +4 +4/4 `).MatchString(out) {
			t.Errorf("paddock ls does not show hello with 4/4 ready:\n%s", out)
		}
	}},
	{cmd: "paddock top", how: "tty"},
	{cmd: "curl -s http://127.0.0.1:8080/api/status", check: func(t *testing.T, _ *guideRun, out string) {
		var st control.StatusResponse
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("the status page's /api/status: %v\n%s", err, out)
		}
		if a := appOf(t, st, "hello"); a.Ready != 4 {
			t.Errorf("/api/status: hello has %d ready workers, want 4", a.Ready)
		}
	}},
	{cmd: "paddock stop", check: func(t *testing.T, g *guideRun, _ string) {
		if code := g.paddock.wait(); code != 0 {
			t.Errorf("paddock run exited %d after paddock stop, want 0", code)
		}
	}},
}

// greets checks that a worker of the example answered with greeting.
func greets(greeting string) func(t *testing.T, _ *guideRun, out string) {
	return func(t *testing.T, _ *guideRun, out string) {
		if !regexp.MustCompile(`^` + greeting + ` from worker [1-9][0-9]*\n$`).MatchString(out) {
			t.Errorf("the server answered %q, want %q from a worker", out, greeting)
		}
	}
}

// TestGettingStarted runs docs/getting-started.md: the files it shows are
// those of examples/getting-started, word for word, and its commands are
// those of guideSteps, which it runs in order, for real, with paddock,
// node, curl and paddock top in a terminal. The ports 8000 and 8080 of the
// page are free ports here, and the control socket the test's own.
func TestGettingStarted(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"node", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	needTmux(t)
	page, err := os.ReadFile(guide)
	if err != nil {
		t.Fatal(err)
	}
	blocks := fencedBlocks(string(page))
	checkGuideQuotes(t, blocks)
	if t.Failed() {
		t.FailNow()
	}
	var cmds []string
	for _, b := range blocks {
		if b.lang != "sh" {
			continue
		}
		for _, l := range strings.Split(strings.TrimSpace(b.body), "\n") {
			cmds = append(cmds, strings.TrimSpace(l))
		}
	}
	var want []string
	for _, s := range guideSteps {
		want = append(want, s.cmd)
	}
	if !slices.Equal(cmds, want) {
		t.Fatalf("the commands of %s are not those this test runs (guideSteps):\npage: %q\ntest: %q", guide, cmds, want)
	}

	root := t.TempDir()
	g := &guideRun{dir: root, sock: socketPath(t)}
	g.ports = strings.NewReplacer("8000", strconv.Itoa(freePort(t)), "8080", strconv.Itoa(freePort(t)))
	copyExample(t, g, filepath.Join(root, "examples", "getting-started"))
	g.env = append(os.Environ(), control.SocketEnv+"="+g.sock, "PATH="+filepath.Dir(paddockBin)+":"+os.Getenv("PATH"))
	for _, s := range guideSteps {
		cmd := g.ports.Replace(s.cmd)
		t.Logf("$ %s", cmd)
		out := g.do(t, s.how, cmd)
		if s.check != nil {
			s.check(t, g, out)
		}
		if t.Failed() {
			t.Fatalf("step %q failed; paddock's log:\n%s", s.cmd, g.log())
		}
	}
}

// checkGuideQuotes: the page shows each file of the example verbatim.
func checkGuideQuotes(t *testing.T, blocks []fencedBlock) {
	t.Helper()
	for name, lang := range map[string]string{"paddock.yaml": "yaml", "server.js": "js"} {
		b, err := os.ReadFile(filepath.Join(guideExample, name))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(blocks, fencedBlock{lang: lang, body: string(b)}) {
			t.Errorf("%s does not show examples/getting-started/%s as it is, in a ```%s block", guide, name, lang)
		}
	}
}

// copyExample copies the example's files to dir, with the test's ports.
func copyExample(t *testing.T, g *guideRun, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"paddock.yaml", "server.js"} {
		b, err := os.ReadFile(filepath.Join(guideExample, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(g.ports.Replace(string(b))), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// do performs one command of the page and returns its output.
func (g *guideRun) do(t *testing.T, how, cmd string) string {
	t.Helper()
	switch how {
	case "install":
		return ""
	case "cd":
		g.dir = filepath.Join(g.dir, strings.TrimPrefix(cmd, "cd "))
		return ""
	case "run":
		c := exec.Command("bash", "-c", "exec "+cmd)
		c.Dir, c.Env = g.dir, g.env
		g.paddock = startPaddockCmd(t, c)
		return ""
	case "follow":
		g.events = &testkit.Buffer{}
		c := exec.Command("bash", "-c", "exec "+cmd)
		c.Dir, c.Env, c.Stdout, c.Stderr = g.dir, g.env, g.events, g.events
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = c.Process.Kill()
			_ = c.Wait()
		})
		return ""
	case "tty":
		args := strings.Fields(strings.TrimPrefix(cmd, "paddock top"))
		pane := startTmux(t, 120, 30, []string{control.SocketEnv + "=" + g.sock}, args...)
		pane.waitScreen("paddock top to show hello's 4 workers", `hello`, `hello/4|\b4/4\b`)
		pane.keys("q")
		if code := pane.waitExit(); code != 0 {
			t.Errorf("paddock top exited %d on q, want 0", code)
		}
		return ""
	}
	c := exec.Command("bash", "-c", cmd)
	c.Dir, c.Env = g.dir, g.env
	out, errOut, code := runCommand(t, c)
	if code != 0 {
		t.Fatalf("%s: exit %d\nstdout: %s\nstderr: %s", cmd, code, out, errOut)
	}
	return out
}

// log returns what paddock run wrote on stderr so far.
func (g *guideRun) log() string {
	if g.paddock == nil {
		return ""
	}
	g.paddock.mu.Lock()
	defer g.paddock.mu.Unlock()
	return strings.Join(g.paddock.other, "\n")
}

// TestFencedBlocks: the code blocks of a page, with their language.
func TestFencedBlocks(t *testing.T) {
	got := fencedBlocks("text\n```sh\na\nb\n```\n\n```\nc\n```\n")
	want := []fencedBlock{{"sh", "a\nb\n"}, {"", "c\n"}}
	if !slices.Equal(got, want) {
		t.Errorf("fencedBlocks = %q, want %q", got, want)
	}
}
