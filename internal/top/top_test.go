package top

import (
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	"github.com/paddock-sh/paddock/internal/control"
	"github.com/paddock-sh/paddock/internal/testkit"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// fakeBackend records what the model asks of the supervisor.
type fakeBackend struct {
	polls    int
	requests []request
	follows  []key
	stopped  int
}

func (b *fakeBackend) poll() tea.Cmd { b.polls++; return nil }
func (b *fakeBackend) do(r request) tea.Cmd {
	b.requests = append(b.requests, r)
	return nil
}
func (b *fakeBackend) follow(app string, worker, gen int) func() {
	b.follows = append(b.follows, key{app, worker})
	return func() { b.stopped++ }
}

// t0 is when the fixture's supervisor started.
var t0 = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

func ptr[T any](v T) *T { return &v }

// fixture returns the status of a supervisor with a web app (rr, a
// rolling update under way, a worker in backoff) and a queue app, read
// the nth time (the resource use changes from one reading to the next).
func fixture(n int) *control.StatusResponse {
	cpu := func(base float64) *float64 { return ptr(base + float64(n%4)*base/2) }
	mem := func(base int64) *int64 { return ptr(base + int64(n)*1<<20) }
	return &control.StatusResponse{
		Supervisor: control.SupervisorInfo{PID: 4711, Version: "v1.0.0", StartedAt: t0},
		Apps: []control.App{
			{Name: "web", Instances: 3, ManifestInstances: 3, Running: 3, Ready: 2, Generation: "a1b2c3",
				SchedulingPolicy: "rr", Listen: []string{"127.0.0.1:8080"},
				CPUPercent: cpu(12), RSSBytes: mem(90 << 20),
				Rollout: &control.Rollout{Instances: 3, New: 2, NewReady: 1, Old: 1, Summary: "1/3 new ready, 1 starting, 1 old"}},
			{Name: "queue", Instances: 2, ManifestInstances: 1, Override: true, Running: 2, Ready: 2, Generation: "d4e5f6",
				SchedulingPolicy: "none", CPUPercent: cpu(0.4), RSSBytes: mem(8 << 20)},
		},
		Workers: []control.Worker{
			{App: "web", ID: 1, PID: 101, State: "running", Ready: true, StartedAt: t0.Add(time.Minute), Restarts: 0,
				Generation: "9f8e7d", HandedOut: 1234, CPUPercent: cpu(5), RSSBytes: mem(30 << 20)},
			{App: "web", ID: 4, PID: 104, State: "running", Ready: true, StartedAt: t0.Add(9 * time.Minute), Restarts: 0,
				Generation: "a1b2c3", HandedOut: 56, CPUPercent: cpu(6), RSSBytes: mem(30 << 20)},
			{App: "web", ID: 5, PID: 105, State: "running", Ready: false, StartedAt: t0.Add(10 * time.Minute), Restarts: 2,
				Generation: "a1b2c3", CPUPercent: cpu(1), RSSBytes: mem(30 << 20)},
			{App: "queue", ID: 1, PID: 0, State: "backoff", RestartAt: ptr(t0.Add(10*time.Minute + 25*time.Second)),
				StartedAt: t0.Add(time.Minute), Restarts: 7, Generation: "d4e5f6"},
			{App: "queue", ID: 2, PID: 202, State: "running", Ready: true, StartedAt: t0.Add(2 * time.Minute), Restarts: 0,
				Generation: "d4e5f6", CPUPercent: cpu(0.4), RSSBytes: mem(8 << 20)},
		},
	}
}

func exitEvent(app string, w, pid, code int, sig string, at time.Time) control.Event {
	return control.Event{Time: at, Type: "exit", App: app, Worker: w, PID: pid, ExitCode: &code, Signal: sig, Intended: ptr(false)}
}

// newFixtureModel returns the dashboard after six readings of the fixture
// and a few events, at width×height, without colour.
func newFixtureModel(t *testing.T, width, height int) (*Model, *fakeBackend) {
	t.Helper()
	be := &fakeBackend{}
	m := newModel(Options{Interval: 2 * time.Second, Location: time.UTC}, be, fixture(0), t0.Add(10*time.Minute))
	for n := 1; n < 6; n++ {
		m.Update(statusMsg{st: fixture(n), at: t0.Add(10*time.Minute + time.Duration(n)*2*time.Second)})
	}
	m.Update(tea.WindowSizeMsg{Width: width, Height: height})
	at := t0.Add(10 * time.Minute)
	for _, e := range []control.Event{
		{Time: at, Type: "restart-requested", App: "web", Generation: "a1b2c3"},
		{Time: at.Add(time.Second), Type: "fork", App: "web", Worker: 5, PID: 105},
		exitEvent("queue", 1, 201, 1, "", at.Add(3*time.Second)),
		{Time: at.Add(3 * time.Second), Type: "restart", App: "queue", Worker: 1, Delay: "1.6s", Attempt: 7},
		{Time: at.Add(4 * time.Second), Type: "ready", App: "web", Worker: 4, PID: 104, Delay: "812.345678ms"},
		{Time: at.Add(5 * time.Second), Type: "rollout-progress", App: "web", Generation: "a1b2c3", Detail: "1/3 new ready, 1 old"},
	} {
		m.Update(eventMsg(e))
	}
	return m, be
}

// TestViewGolden compares the screen, without colour, with
// testdata/view-WxH.txt (go test -update rewrites them): at 80×24 every
// column the dashboard promises fits; narrower, columns go in their order;
// wider, the generation and pid come back and the sparklines widen.
func TestViewGolden(t *testing.T) {
	for _, size := range [][2]int{{80, 24}, {60, 24}, {120, 30}, {40, 12}} {
		t.Run(fmt.Sprintf("%dx%d", size[0], size[1]), func(t *testing.T) {
			m, _ := newFixtureModel(t, size[0], size[1])
			got := m.View()
			checkScreen(t, got, size[0], size[1])
			golden(t, fmt.Sprintf("view-%dx%d.txt", size[0], size[1]), got)
		})
	}
}

// checkScreen fails when the screen has other than height lines, a line
// wider than width, or any escape sequence.
func checkScreen(t *testing.T, screen string, width, height int) {
	t.Helper()
	lines := strings.Split(screen, "\n")
	if len(lines) != height {
		t.Errorf("%d lines, want %d", len(lines), height)
	}
	for i, l := range lines {
		if w := ansi.StringWidth(l); w > width {
			t.Errorf("line %d is %d wide, more than %d: %q", i+1, w, width, l)
		}
	}
	if strings.Contains(screen, "\x1b") {
		t.Errorf("an escape sequence without colour: %q", screen)
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	testkit.Golden(t, filepath.Join("testdata", name), []byte(got+"\n"), *update)
}

// Test80x24Shows: at 80×24 the screen shows what the dashboard promises:
// every worker with state, readiness, CPU and memory with a sparkline,
// restarts, uptime, connections handed out, the rollout's progress, and
// the latest events.
func Test80x24Shows(t *testing.T) {
	m, _ := newFixtureModel(t, 80, 24)
	screen := m.View()
	for _, want := range []string{
		"NAME", "STATE", "READY", "CPU", "MEM", "RESTARTS", "UPTIME", "CONNS",
		"rollout: 1/3 new ready, 1 starting, 1 old",
		"web/5    running  no", "queue/1  backoff  -", "in 15s", "1234",
		"rollout-progress web", "exit queue/1 pid=201 code=1", "ready web/4 pid=104 after 812.35ms",
	} {
		if !strings.Contains(screen, want) {
			t.Errorf("no %q on the screen:\n%s", want, screen)
		}
	}
	// Six readings: six bars in each sparkline of a worker that ran all along.
	for _, line := range strings.Split(screen, "\n") {
		if strings.Contains(line, "web/1 ") && strings.Count(line, "▁")+strings.Count(line, "█")+countBars(line) < 12 {
			t.Errorf("web/1's sparklines do not have six bars each: %q", line)
		}
	}
}

func countBars(s string) int {
	n := 0
	for _, r := range s {
		if r > '▁' && r < '█' {
			n++
		}
	}
	return n
}

// TestColor: with colour, states and sparklines are coloured; without
// (NO_COLOR), not one escape sequence, and the selected row still reads
// as such (">").
func TestColor(t *testing.T) {
	m := newModel(Options{Color: true, Location: time.UTC}, &fakeBackend{}, fixture(0), t0)
	if s := m.View(); !strings.Contains(s, "\x1b[") {
		t.Errorf("no colour with Color: %q", s)
	}
	m = newModel(Options{Location: time.UTC}, &fakeBackend{}, fixture(0), t0)
	s := m.View()
	if strings.Contains(s, "\x1b") {
		t.Errorf("an escape sequence without Color: %q", s)
	}
	if !strings.Contains(s, "> web ") {
		t.Errorf("the selected row has no >:\n%s", s)
	}
}

func keys(m *Model, ks ...string) tea.Cmd {
	var last tea.Cmd
	for _, k := range ks {
		var msg tea.KeyMsg
		switch k {
		case "enter":
			msg = tea.KeyMsg{Type: tea.KeyEnter}
		case "esc":
			msg = tea.KeyMsg{Type: tea.KeyEsc}
		case "tab":
			msg = tea.KeyMsg{Type: tea.KeyTab}
		case "down":
			msg = tea.KeyMsg{Type: tea.KeyDown}
		case "up":
			msg = tea.KeyMsg{Type: tea.KeyUp}
		case "ctrl+c":
			msg = tea.KeyMsg{Type: tea.KeyCtrlC}
		case "backspace":
			msg = tea.KeyMsg{Type: tea.KeyBackspace}
		default:
			msg = tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(k)}
		}
		_, last = m.Update(msg)
	}
	return last
}

// TestSelect: j/k and the arrows move over apps and workers, never onto a
// note; the selection stays on its worker across status reads, and goes
// to the worker's app when the worker is gone.
func TestSelect(t *testing.T) {
	m, _ := newFixtureModel(t, 80, 24)
	var got []string
	for range 7 {
		got = append(got, m.sel.String())
		keys(m, "j")
	}
	want := []string{"web", "web/1", "web/4", "web/5", "queue", "queue/1", "queue/2"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("j from the top selects %v, want %v", got, want)
	}
	keys(m, "j") // at the bottom: stays
	if m.sel.String() != "queue/2" {
		t.Errorf("j at the bottom moved to %s", m.sel)
	}
	keys(m, "k", "up", "up", "up", "down")
	if m.sel.String() != "web/5" {
		t.Errorf("k, up, up, up, down from queue/2: %s, want web/5", m.sel)
	}
	m.Update(statusMsg{st: fixture(7), at: t0.Add(11 * time.Minute)})
	if m.sel.String() != "web/5" {
		t.Errorf("after a status read the selection is %s, want web/5", m.sel)
	}
	st := fixture(8)
	st.Workers = append(st.Workers[:2:2], st.Workers[3:]...) // web/5 gone
	m.Update(statusMsg{st: st, at: t0.Add(11 * time.Minute)})
	if m.sel.String() != "web" {
		t.Errorf("web/5 gone: the selection is %s, want web", m.sel)
	}
	if strings.Contains(m.View(), "  web/5 ") {
		t.Errorf("web/5 is still shown:\n%s", m.View())
	}
}

// TestScroll: with more rows than the table's height, the selected row
// stays on the screen.
func TestScroll(t *testing.T) {
	m, _ := newFixtureModel(t, 80, 9)
	keys(m, "G")
	if s := m.View(); !strings.Contains(s, ">   queue/2") || !strings.Contains(s, "rows 7-8 of 8") {
		t.Errorf("the last row selected is not shown, or not said where:\n%s", s)
	}
	keys(m, "g")
	if s := m.View(); !strings.Contains(s, "> web ") || !strings.Contains(s, "rows 1-2 of 8") {
		t.Errorf("the first row selected is not shown, or not said where:\n%s", s)
	}
	m.Update(tea.WindowSizeMsg{Width: 80, Height: 24})
	if s := m.View(); strings.Contains(s, "rows ") {
		t.Errorf("every row shown, yet said which:\n%s", s)
	}
}

// TestScale: s opens a prompt about the selected worker's app; Enter
// sends what `paddock scale` sends; a bad count is refused without a
// request; Esc cancels.
func TestScale(t *testing.T) {
	m, be := newFixtureModel(t, 80, 24)
	keys(m, "j", "s")
	if f := lastLine(m.View()); !strings.Contains(f, "scale web to (now 3): ") {
		t.Errorf("the scale prompt: %q", f)
	}
	keys(m, "5", "enter")
	if len(be.requests) != 1 {
		t.Fatalf("%d requests, want 1", len(be.requests))
	}
	r := be.requests[0]
	body, ok := r.body.(control.ScaleRequest)
	if r.path != "/v1/apps/web/scale" || !ok || body.Instances == nil || *body.Instances != 5 {
		t.Errorf("the request: %s %+v", r.path, r.body)
	}
	*r.out.(*control.ScaleResponse) = control.ScaleResponse{App: "web", From: 3, Instances: 5}
	m.Update(doneMsg{r: r})
	if f := lastLine(m.View()); f != "web: 3 → 5 workers" {
		t.Errorf("after the scale: %q", f)
	}
	keys(m, "s", "x", "enter")
	keys(m, "s", "1", "esc")
	if len(be.requests) != 1 {
		t.Errorf("a bad count or Esc sent a request: %+v", be.requests[1:])
	}
	keys(m, "s", "x", "enter")
	if f := lastLine(m.View()); !strings.Contains(f, `want a worker count >= 0, got "x"`) {
		t.Errorf("a bad count: %q", f)
	}
	m.Update(doneMsg{r: r, err: &control.APIError{Status: 404, ErrorResponse: control.ErrorResponse{Error: `no app "web"`}}})
	if f := lastLine(m.View()); f != `error: no app "web"` {
		t.Errorf("an error answer: %q", f)
	}
}

func lastLine(s string) string { return s[strings.LastIndexByte(s, '\n')+1:] }

// TestRestart: r asks, y sends the rolling restart `paddock restart`
// sends, n does not.
func TestRestart(t *testing.T) {
	m, be := newFixtureModel(t, 80, 24)
	keys(m, "r", "n", "r")
	if f := lastLine(m.View()); f != "rolling restart of web? y/n" {
		t.Errorf("the restart prompt: %q", f)
	}
	keys(m, "y")
	if len(be.requests) != 1 || be.requests[0].path != "/v1/apps/web/restart" || be.requests[0].body != nil {
		t.Fatalf("requests: %+v", be.requests)
	}
}

// TestSignal: x about a worker signals that worker, about an app every
// worker of it; Tab cycles the signals offered, typing replaces them, a
// name that is no signal is refused.
func TestSignal(t *testing.T) {
	m, be := newFixtureModel(t, 80, 24)
	keys(m, "j", "j", "x", "tab", "enter")
	keys(m, "g", "x", "U", "S", "R", "1", "enter")
	keys(m, "x", "N", "O", "P", "E", "enter")
	if len(be.requests) != 2 {
		t.Fatalf("%d requests, want 2", len(be.requests))
	}
	for i, want := range []control.SignalRequest{{Worker: 4, Signal: "HUP"}, {Worker: 0, Signal: "USR1"}} {
		r := be.requests[i]
		if r.path != "/v1/apps/web/signal" || r.body != want {
			t.Errorf("request %d: %s %+v, want %+v", i, r.path, r.body, want)
		}
	}
	if f := lastLine(m.View()); !strings.Contains(f, "NOPE") {
		t.Errorf("a bad signal: %q", f)
	}
	r := be.requests[0]
	*r.out.(*control.SignalResponse) = control.SignalResponse{Workers: []int{4}}
	m.Update(doneMsg{r: r})
	if f := lastLine(m.View()); f != "signalled web/4 with HUP" {
		t.Errorf("after the signal: %q", f)
	}
}

// TestKeysTypedFast: keys read together ("s5") act one by one.
func TestKeysTypedFast(t *testing.T) {
	m, be := newFixtureModel(t, 80, 24)
	keys(m, "js2")
	keys(m, "enter")
	if len(be.requests) != 1 || *be.requests[0].body.(control.ScaleRequest).Instances != 2 {
		t.Errorf("requests: %+v", be.requests)
	}
}

// TestLogs: l follows the selected worker's (or app's) logs in a pane;
// Esc stops the stream and goes back; lines of a stream closed are not
// shown.
func TestLogs(t *testing.T) {
	m, be := newFixtureModel(t, 80, 24)
	keys(m, "j", "l")
	if len(be.follows) != 1 || be.follows[0] != (key{"web", 1}) || m.mode != modeLogs {
		t.Fatalf("follows %v, mode %d", be.follows, m.mode)
	}
	gen := m.logs.gen
	m.Update(logMsg{gen: gen, line: control.LogLine{App: "web", Worker: 1, Text: "GET / 200\x1b[31m"}})
	m.Update(logMsg{gen: gen - 1, line: control.LogLine{App: "web", Worker: 1, Text: "stale"}})
	s := m.View()
	if !strings.Contains(s, "web/1 | GET / 200\ufffd[31m") || strings.Contains(s, "stale") || !strings.HasPrefix(s, "logs of web/1") {
		t.Errorf("the logs pane:\n%s", s)
	}
	checkScreen(t, s, 80, 24)
	keys(m, "esc")
	if be.stopped != 1 || m.mode != modeTable {
		t.Errorf("Esc: %d streams stopped, mode %d", be.stopped, m.mode)
	}
	m.Update(logMsg{gen: gen, line: control.LogLine{App: "web", Worker: 1, Text: "late"}})
	keys(m, "g", "l")
	if be.follows[1] != (key{app: "web"}) || strings.Contains(m.View(), "late") || strings.Contains(m.View(), "GET /") {
		t.Errorf("the app's logs: follows %v\n%s", be.follows, m.View())
	}
	if cmd := keys(m, "q"); !isQuit(cmd) || be.stopped != 2 {
		t.Errorf("q in the logs pane: quit %v, %d streams stopped", isQuit(cmd), be.stopped)
	}
}

func isQuit(cmd tea.Cmd) bool {
	if cmd == nil {
		return false
	}
	_, ok := cmd().(tea.QuitMsg)
	return ok
}

// TestQuit: q and Ctrl-C quit without an error; Ctrl-C even in a prompt.
func TestQuit(t *testing.T) {
	m, _ := newFixtureModel(t, 80, 24)
	if !isQuit(keys(m, "q")) || m.Err() != nil {
		t.Errorf("q: err %v", m.Err())
	}
	m, _ = newFixtureModel(t, 80, 24)
	if !isQuit(keys(m, "s", "ctrl+c")) || m.Err() != nil {
		t.Errorf("Ctrl-C: err %v", m.Err())
	}
	m, _ = newFixtureModel(t, 80, 24)
	if isQuit(keys(m, "s", "q")) {
		t.Error("q typed in a prompt quit")
	}
}

// TestSupervisorStops: the events stream ending, or a status read finding
// no supervisor, ends the dashboard with ErrStopped; another failed read
// is shown and the polling goes on.
func TestSupervisorStops(t *testing.T) {
	m, _ := newFixtureModel(t, 80, 24)
	if _, cmd := m.Update(eventsEndedMsg{}); !isQuit(cmd) || !errors.Is(m.Err(), ErrStopped) {
		t.Errorf("events ended: err %v", m.Err())
	}
	m, _ = newFixtureModel(t, 80, 24)
	gone := &control.NotRunningError{Path: "/x.sock", Err: errors.New("connect: no such file or directory")}
	if _, cmd := m.Update(statusMsg{err: gone}); !isQuit(cmd) || !errors.Is(m.Err(), ErrStopped) {
		t.Errorf("no supervisor: err %v", m.Err())
	}
	m, be := newFixtureModel(t, 80, 24)
	_, cmd := m.Update(statusMsg{err: errors.New("bad answer from the supervisor")})
	if cmd == nil || m.Err() != nil { // cmd: the next tick

		t.Errorf("a failed read ended the dashboard: %v", m.Err())
	}
	if f := lastLine(m.View()); !strings.Contains(f, "status read failed (showing the one of 10:10:10): bad answer") {
		t.Errorf("a failed read: %q", f)
	}
	m.Update(tickMsg{})
	if be.polls != 1 {
		t.Errorf("%d polls after the tick, want 1", be.polls)
	}
}

// TestHelp: ? shows the keys in place of the events, ? or Esc hides them.
func TestHelp(t *testing.T) {
	m, _ := newFixtureModel(t, 80, 24)
	keys(m, "?")
	s := m.View()
	if !strings.Contains(s, "s  scale the app") || strings.Contains(s, "── events") {
		t.Errorf("help:\n%s", s)
	}
	checkScreen(t, s, 80, 24)
	keys(m, "esc")
	if !strings.Contains(m.View(), "── events") {
		t.Error("Esc did not close the help")
	}
}

func TestSparkline(t *testing.T) {
	s := func(vs ...float64) []sample {
		var out []sample
		for _, v := range vs {
			out = append(out, sample{v, v >= 0})
		}
		return out
	}
	for _, tc := range []struct {
		h     []sample
		width int
		floor float64
		want  string
	}{
		{s(0, 1, 2, 3, 4, 5, 6, 7), 8, 0, "▁▂▃▄▅▆▇█"},
		{s(7, 7), 4, 0, "  ██"},
		{s(0.1, 0.12), 2, 1, "▁▁"},         // under the floor: low bars
		{s(1, -1, 2), 3, 0, "▄ █"},         // no reading: a gap
		{s(1, 2, 3, 4, 5, 6), 3, 0, "▅▆█"}, // the last width readings
		{s(), 2, 0, "  "},
		{s(5), 0, 0, ""},
	} {
		if got := sparkline(tc.h, tc.width, tc.floor); got != tc.want {
			t.Errorf("sparkline(%v, %d, %g) = %q, want %q", tc.h, tc.width, tc.floor, got, tc.want)
		}
	}
}

// TestFitDropOrder: as the terminal narrows, the generation and the pid
// go first, then the sparklines shrink, then uptime, connections, the
// sparklines; name and state stay.
func TestFitDropOrder(t *testing.T) {
	m, _ := newFixtureModel(t, 200, 24)
	var prev []string
	for w := 200; w >= 30; w-- {
		m.Update(tea.WindowSizeMsg{Width: w, Height: 24})
		header := strings.Fields(strings.Split(m.View(), "\n")[1])
		if len(prev) > 0 && len(header) < len(prev) {
			t.Logf("at %d columns: %v", w, header)
		}
		prev = header
		if header[0] != "NAME" || header[1] != "STATE" {
			t.Fatalf("at %d columns the header is %v", w, header)
		}
		if w == 80 && strings.Join(header, " ") != "NAME STATE READY CPU MEM RESTARTS UPTIME CONNS" {
			t.Errorf("at 80 columns: %v", header)
		}
	}
}

// TestEverySize: whatever the terminal's size, in every mode, the screen
// has exactly its height in lines and no line is wider than it.
func TestEverySize(t *testing.T) {
	for _, mode := range []string{"", "?", "s", "l"} {
		m, _ := newFixtureModel(t, 80, 24)
		if mode != "" {
			keys(m, "j", mode)
		}
		var sizes [][2]int
		for w := 1; w <= 130; w++ {
			for _, h := range []int{1, 2, 3, 4, 5, 8, 24} {
				sizes = append(sizes, [2]int{w, h})
			}
		}
		for h := 1; h <= 40; h++ {
			for _, w := range []int{1, 10, 40, 80, 130} {
				sizes = append(sizes, [2]int{w, h})
			}
		}
		for _, size := range sizes {
			w, h := size[0], size[1]
			m.Update(tea.WindowSizeMsg{Width: w, Height: h})
			s := m.View()
			lines := strings.Split(s, "\n")
			if len(lines) != h {
				t.Fatalf("mode %q at %dx%d: %d lines", mode, w, h, len(lines))
			}
			for _, l := range lines {
				if ansi.StringWidth(l) > w {
					t.Fatalf("mode %q at %dx%d: a line %d wide: %q", mode, w, h, ansi.StringWidth(l), l)
				}
			}
		}
	}
	// No app, no worker: the header alone.
	m := newModel(Options{Location: time.UTC}, &fakeBackend{}, &control.StatusResponse{}, t0)
	keys(m, "j", "s", "x", "l")
	if s := m.View(); !strings.Contains(s, "0 apps, 0 workers") || m.mode != modeTable {
		t.Errorf("with nothing running:\n%s", s)
	}
}
