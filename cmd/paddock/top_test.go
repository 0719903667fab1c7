package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/paddock-sh/paddock/internal/control"
	"github.com/paddock-sh/paddock/internal/testkit"
)

var topScreen = flag.String("top.screen", "", "TestTopScreen: write the 80x24 screen of paddock top against examples/hello.yaml to this file (make top-screen)")

// tmuxPane is a pane of a tmux server of the test's own, running a shell
// command in a terminal of a given size.
type tmuxPane struct {
	t    *testing.T
	sock string // the tmux server's socket
	dir  string
}

// needTmux fails the test when tmux is not installed (make test installs
// it: make test-deps), or skips it when PADDOCK_SKIP_TMUX=1 says to.
func needTmux(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		if os.Getenv("PADDOCK_SKIP_TMUX") == "1" {
			t.Skip("tmux is not installed and PADDOCK_SKIP_TMUX=1: the end-to-end tests of paddock top skip")
		}
		t.Fatal("tmux is not installed (make test-deps installs it; Debian: apt-get install tmux): the end-to-end tests of paddock top need it; PADDOCK_SKIP_TMUX=1 skips them")
	}
}

// startTmux runs `paddock top ARGS...` in a width×height tmux pane, with
// env added to its environment, inside a shell that records the terminal's
// settings before and after it (stty -g) and its exit code (tmux's
// pane_dead_status is not always set when a pane's terminal closes before
// its process is reaped), then waits for a line, so that the terminal can
// be looked at after top.
func startTmux(t *testing.T, width, height int, env []string, args ...string) *tmuxPane {
	t.Helper()
	dir := t.TempDir()
	p := &tmuxPane{t: t, sock: filepath.Join(dir, "tmux.sock"), dir: dir}
	conf := filepath.Join(dir, "tmux.conf")
	if err := os.WriteFile(conf, []byte("set -g remain-on-exit on\nset -g status off\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	script := fmt.Sprintf(`cd %[1]s; stty -g > before; %[2]s top %[3]s; code=$?; stty -g > after; echo $code > code; echo "top exited $code"; read more`,
		dir, paddockBin, strings.Join(quoted, " "))
	cmd := []string{"-f", conf, "new-session", "-d", "-x", strconv.Itoa(width), "-y", strconv.Itoa(height)}
	for _, e := range env {
		cmd = append(cmd, "-e", e)
	}
	p.tmux(append(cmd, "sh", "-c", script)...)
	t.Cleanup(func() { _ = exec.Command("tmux", "-S", p.sock, "kill-server").Run() })
	return p
}

// tmuxEnv is the environment of the tmux server, and so of every pane's
// shell: the test's own, without the variables that choose colours
// (NO_COLOR, CLICOLOR, CLICOLOR_FORCE, COLORTERM), which a CI runner may
// set and which would decide what the tests mean to decide with env.
func tmuxEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "NO_COLOR", "CLICOLOR", "CLICOLOR_FORCE", "COLORTERM":
			continue
		}
		env = append(env, kv)
	}
	return env
}

func (p *tmuxPane) tmux(args ...string) string {
	p.t.Helper()
	cmd := exec.Command("tmux", append([]string{"-S", p.sock}, args...)...)
	cmd.Env = tmuxEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		p.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// screen returns what the pane shows, as text, lines that wrapped joined.
func (p *tmuxPane) screen() string { return p.tmux("capture-pane", "-p", "-J") }

// keys types keys (tmux key names: Enter, Escape, Tab, C-c, or text).
func (p *tmuxPane) keys(keys ...string) { p.tmux(append([]string{"send-keys"}, keys...)...) }

// waitScreen waits until the screen matches every regular expression of
// res, and returns it; the last screen seen is logged when it never does.
func (p *tmuxPane) waitScreen(what string, res ...string) string {
	p.t.Helper()
	var s string
	defer func() {
		if p.t.Failed() {
			p.t.Logf("the last screen:\n%s", s)
		}
	}()
	testkit.WaitFor(p.t, what, func() bool {
		s = p.screen()
		for _, re := range res {
			if !regexp.MustCompile(re).MatchString(s) {
				return false
			}
		}
		return true
	})
	return s
}

// waitExit waits until top exited and returns its exit code; it checks that the terminal was restored: the same stty settings
// as before top, the normal screen again, the cursor shown.
func (p *tmuxPane) waitExit() int {
	p.t.Helper()
	p.waitScreen("paddock top to exit", `top exited \d+`)
	before, _ := os.ReadFile(filepath.Join(p.dir, "before"))
	after, _ := os.ReadFile(filepath.Join(p.dir, "after"))
	if len(before) == 0 || string(before) != string(after) {
		p.t.Errorf("the terminal's settings after top differ from before:\n%s\n%s", before, after)
	}
	if s := p.tmux("display-message", "-p", "#{alternate_on} #{cursor_flag}"); strings.TrimSpace(s) != "0 1" {
		p.t.Errorf("after top: alternate screen, cursor shown = %q, want 0 1", s)
	}
	b, err := os.ReadFile(filepath.Join(p.dir, "code"))
	if err != nil {
		p.t.Fatal(err)
	}
	code, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		p.t.Fatal(err)
	}
	p.keys("Enter")
	testkit.WaitFor(p.t, "the shell to exit", func() bool {
		return strings.TrimSpace(p.tmux("display-message", "-p", "#{pane_dead}")) == "1"
	})
	return code
}

// webOf returns the app web (nil when there is none) and its live
// workers, in the status's order.
func webOf(st control.StatusResponse) (*control.App, []control.Worker) {
	var app *control.App
	for i := range st.Apps {
		if st.Apps[i].Name == "web" {
			app = &st.Apps[i]
		}
	}
	var ws []control.Worker
	for _, w := range st.Workers {
		if w.App == "web" && w.PID != 0 && w.State == "running" {
			ws = append(ws, w)
		}
	}
	return app, ws
}

// topRestart: r, y in top restart web: every worker is replaced by one of
// a new generation, and top says so.
func topRestart(t *testing.T, p *tmuxPane, sock string) {
	t.Helper()
	before, _ := webOf(statusOf(t, sock))
	p.keys("r")
	p.waitScreen("the restart's question", `rolling restart of web\? y/n`)
	p.keys("y")
	var gen string
	testkit.WaitFor(t, "web restarted: every worker of a new generation, no rollout", func() bool {
		a, ws := webOf(statusOf(t, sock))
		if a == nil || a.Rollout != nil || a.Ready != 3 || len(ws) != 3 || a.Generation == before.Generation {
			return false
		}
		gen = a.Generation
		return ws[0].Generation == gen && ws[1].Generation == gen && ws[2].Generation == gen
	})
	p.waitScreen("the restart's outcome", `web: rolling restart of 3 workers \(generation `+gen+`\)`)
}

// topSignal: x, Enter on web's first worker in top sends it SIGTERM: its
// process exits, a new worker takes its place, and top shows the exit.
func topSignal(t *testing.T, p *tmuxPane, sock string) {
	t.Helper()
	_, ws := webOf(statusOf(t, sock))
	victim := ws[0]
	// top reads the status every 200ms: wait until it shows what the
	// supervisor's status said, before selecting by position.
	p.waitScreen("the restarted workers", fmt.Sprintf(`\n[> ] +web +ok +3/3 .*\n +web/%d +running .*\n +web/%d +running .*\n +web/%d +running .*\n── events`,
		ws[0].ID, ws[1].ID, ws[2].ID))
	p.keys("g", "j", "j", "j") // idle, idle/1, web, its first worker
	p.waitScreen("the first worker selected", fmt.Sprintf(`(?m)^> +web/%d `, victim.ID))
	p.keys("x")
	p.waitScreen("the signal prompt", fmt.Sprintf(`signal web/%d: TERM`, victim.ID))
	p.keys("Enter")
	waitDead(t, victim.PID)
	testkit.WaitFor(t, "a new worker in place of the one signalled", func() bool {
		_, ws := webOf(statusOf(t, sock))
		for _, w := range ws {
			if w.PID == victim.PID {
				return false
			}
		}
		return len(ws) == 3
	})
	p.waitScreen("the signal's outcome and the exit event", fmt.Sprintf(`exit web/%d pid=%d signal=SIGTERM`, victim.ID, victim.PID),
		fmt.Sprintf(`signalled web/%d with TERM`, victim.ID))
}

// colour matches an escape sequence that sets a colour (SGR 30-38, 40-48,
// 90-97), as tmux's capture-pane -e writes them.
var colour = regexp.MustCompile(`\x1b\[[0-9;]*(3[0-8]|4[0-8]|9[0-7])[;m]`)

// TestTopTmux runs paddock top in an 80×24 tmux pane, without colour
// (NO_COLOR), against a real supervisor, and uses it as an operator would:
// the apps and workers appear; s scales (the supervisor's status shows the
// new count); r y restarts (every worker replaced by one of the new
// generation); x signals the selected worker (its process exits, a new one
// replaces it); l follows its app's logs; q quits with exit code 0 and the
// terminal as it was.
func TestTopTmux(t *testing.T) {
	t.Parallel()
	needTmux(t)
	sock := socketPath(t)
	r := startWithSocket(t, sock, writeManifest(t, `
apps:
  web:
    exec: /bin/sh
    args: ["-c", "echo web worker $PADDOCK_WORKER_ID says hello; exec sleep 100000"]
    instances: 2
    restart: always
  idle:
    exec: /bin/sh
    args: ["-c", "exec sleep 100000"]
`))
	defer r.cmd.Process.Kill()
	p := startTmux(t, 80, 24, []string{"NO_COLOR=1"}, "--socket", sock, "--interval", "200ms")
	p.waitScreen("the apps and workers", `NAME +STATE +READY +CPU +MEM +RESTARTS +UPTIME +CONNS\n`,
		`\n  web +ok +2/2 .*\n +web/\d+ +running +yes .*\n +web/\d+ +running +yes `, `\n> idle +ok +1/1 .*\n +idle/1 +running +yes `, `── events`)
	if raw := p.tmux("capture-pane", "-p", "-e"); colour.MatchString(raw) {
		t.Errorf("colours with NO_COLOR: %q", raw)
	}

	p.keys("j", "j", "j", "s", "3", "Enter") // from idle to web
	testkit.WaitFor(t, "web scaled to 3", func() bool {
		st := statusOf(t, sock)
		a, ws := webOf(st)
		return a != nil && a.Instances == 3 && len(ws) == 3
	})
	p.waitScreen("the scale's outcome", `web +ok +3/3 `, `web: 2 → 3 workers`)

	topRestart(t, p, sock)
	topSignal(t, p, sock)

	p.keys("g", "j", "j", "l") // web
	p.waitScreen("the logs pane", `^logs of web \(following; Esc back\)`, `\nweb/\d+ \| web worker \d+ says hello`)
	p.keys("Escape")
	p.waitScreen("the table again", `NAME +STATE`, `── events`)

	p.keys("q")
	if code := p.waitExit(); code != 0 {
		t.Errorf("top exited %d after q, want 0\n%s", code, p.screen())
	}
	if s := p.tmux("capture-pane", "-p", "-J", "-S", "-"); !strings.Contains(s, "top exited 0") || strings.Contains(s, "── events") {
		t.Errorf("the screen after q:\n%s", s)
	}
}

// TestTopColourCtrlCAndStop: with a colour terminal top draws in colour;
// Ctrl-C quits with exit code 0 and the terminal restored; when the
// supervisor stops while top runs, top says so and exits (0).
func TestTopColourCtrlCAndStop(t *testing.T) {
	t.Parallel()
	needTmux(t)
	sock := socketPath(t)
	r := startWithSocket(t, sock, writeManifest(t, `
apps:
  web:
    exec: /bin/sh
    args: ["-c", "exec sleep 100000"]
`))
	defer r.cmd.Process.Kill()
	p := startTmux(t, 100, 30, []string{"TERM=xterm-256color"}, "--socket", sock)
	p.waitScreen("the worker", `web/1 +running`)
	if raw := p.tmux("capture-pane", "-p", "-e"); !colour.MatchString(raw) {
		t.Errorf("no colour in a colour terminal: %q", raw)
	}
	p.keys("C-c")
	if code := p.waitExit(); code != 0 {
		t.Errorf("top exited %d after Ctrl-C, want 0\n%s", code, p.screen())
	}

	p = startTmux(t, 80, 24, nil, "--socket", sock)
	p.waitScreen("the worker", `web/1 +running`)
	mustCLI(t, sock, "stop")
	if code := p.waitExit(); code != 0 {
		t.Errorf("top exited %d when the supervisor stopped, want 0", code)
	}
	if s := p.tmux("capture-pane", "-p", "-J", "-S", "-"); !strings.Contains(s, "paddock top: the supervisor on "+sock+" stopped") {
		t.Errorf("top did not say the supervisor stopped:\n%s", s)
	}
}

// TestTopNoSupervisor: with no supervisor on the socket, top exits 1 with
// the message every client command prints.
func TestTopNoSupervisor(t *testing.T) {
	t.Parallel()
	sock := socketPath(t)
	_, want, _ := cli(t, sock, "status")
	out, errOut, code := cli(t, sock, "top")
	if code != 1 || out != "" || errOut != want || !strings.Contains(errOut, "no paddock supervisor answers on "+sock) {
		t.Errorf("top without a supervisor: exit %d\nstdout: %s\nstderr: %s\nwant stderr: %s", code, out, errOut, want)
	}
}

// TestTopScreen writes the 80×24 screen of paddock top against
// examples/hello.yaml to the file -top.screen names (make top-screen, for
// the README); without the flag it does nothing.
func TestTopScreen(t *testing.T) {
	if *topScreen == "" {
		t.Skip("writes the README's screen only when asked: make top-screen")
	}
	needTmux(t)
	example, err := filepath.Abs("../../examples/hello.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sock := socketPath(t)
	r := startWithSocket(t, sock, example)
	defer r.cmd.Process.Kill()
	testkit.WaitFor(t, "3 workers ready", func() bool {
		st := statusOf(t, sock)
		return len(st.Apps) == 1 && st.Apps[0].Ready == 3
	})
	p := startTmux(t, 80, 24, []string{"NO_COLOR=1"}, "--socket", sock, "--interval", "1s")
	p.waitScreen("the workers", `hello/3 +running`)
	p.keys("s", "4", "Enter")
	p.waitScreen("the fourth worker ready", `hello/4 +running +yes`)
	p.keys("j", "j")
	// Enough readings to fill the sparklines (6 bars at 80 columns).
	s := p.waitScreen("six readings", `hello/1 .*[▁▂▃▄▅▆▇█]{6}`)
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	if err := os.WriteFile(*topScreen, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.keys("q")
	p.waitExit()
}

// TestREADMEShowsTopScreen: the README's Operating section shows the
// screen make top-screen wrote last (docs/top-screen.txt), not an older
// one.
func TestREADMEShowsTopScreen(t *testing.T) {
	screen, err := os.ReadFile("../../docs/top-screen.txt")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "```\n"+string(screen)+"```\n") {
		t.Error("README.md does not show docs/top-screen.txt as it is: after make top-screen, copy it into the README's Watching it live section")
	}
}

// TestColourTerminal: top's choice of colour follows NO_COLOR, CLICOLOR
// and $TERM, and not $CI (which termenv alone takes for "not a
// terminal"): the tmux tests see it end to end in one environment, this
// in each.
func TestColourTerminal(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want bool
	}{
		{map[string]string{"TERM": "xterm-256color"}, true},
		{map[string]string{"TERM": "xterm-256color", "CI": "true"}, true},
		{map[string]string{"TERM": "screen", "COLORTERM": "truecolor"}, true},
		{map[string]string{"TERM": "xterm-256color", "NO_COLOR": "1"}, false},
		{map[string]string{"TERM": "xterm-256color", "CLICOLOR": "0"}, false},
		{map[string]string{"TERM": "dumb"}, false},
		{map[string]string{"TERM": ""}, false},
	} {
		for _, name := range []string{"TERM", "CI", "COLORTERM", "NO_COLOR", "CLICOLOR", "CLICOLOR_FORCE"} {
			t.Setenv(name, c.env[name])
			if _, set := c.env[name]; !set {
				os.Unsetenv(name)
			}
		}
		if got := colourTerminal(os.Stdout); got != c.want {
			t.Errorf("%v: colour %v, want %v", c.env, got, c.want)
		}
	}
}
