package top

import (
	"errors"
	"fmt"

	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/paddock-sh/paddock/internal/control"
	"github.com/paddock-sh/paddock/internal/plural"
)

// Limits of what the model keeps.
const (
	historyLen = 32   // readings per worker and app: the widest sparkline
	maxEvents  = 200  // latest events
	maxLogs    = 1000 // lines of the logs pane
)

// sample is one reading of a value; ok is false when none was read (the
// worker did not run then).
type sample struct {
	v  float64
	ok bool
}

// history is the last readings of a worker or an app (totals), oldest
// first, one per status read.
type history struct {
	cpu, mem []sample
}

func (h *history) add(cpu *float64, mem *int64) {
	var c, m sample
	if cpu != nil {
		c = sample{*cpu, true}
	}
	if mem != nil {
		m = sample{float64(*mem), true}
	}
	h.cpu = append(h.cpu, c)
	h.mem = append(h.mem, m)
	if n := len(h.cpu) - historyLen; n > 0 {
		h.cpu, h.mem = slices.Delete(h.cpu, 0, n), slices.Delete(h.mem, 0, n)
	}
}

// key names an app (worker 0) or one of its workers.
type key struct {
	app    string
	worker int
}

func (k key) String() string {
	if k.worker == 0 {
		return k.app
	}
	return k.app + "/" + strconv.Itoa(k.worker)
}

// row is a line of the table: an app, one of its workers, or a note under
// an app's row (not selectable).
type row struct {
	key
	note string
}

// mode is what the keys act on.
type mode int

const (
	modeTable  mode = iota // the table: select, act
	modePrompt             // a question in the footer: scale's N, a signal, a confirmation
	modeLogs               // the logs pane
	modeHelp               // the help pane in place of the events
)

// Prompt kinds.
const (
	promptScale   = "scale"
	promptRestart = "restart"
	promptSignal  = "signal"
)

// signalChoices are the signals Tab cycles through in the signal prompt;
// any other name or number may be typed.
var signalChoices = []string{"TERM", "HUP", "INT", "USR1", "USR2", "QUIT", "KILL"}

// prompt is a question asked in the footer.
type prompt struct {
	kind   string
	target key
	input  string
	choice int // signal: the index of input in signalChoices, when it is one
}

// request is one change asked of the supervisor: a POST of body to path,
// whose answer is decoded into out; done says what happened once it
// succeeded.
type request struct {
	path string
	body any
	out  any
	done func() string
}

// backend is what the model needs of the supervisor. Run's talks to the
// control socket; the tests' records what is asked.
type backend interface {
	// poll reads the status: a statusMsg.
	poll() tea.Cmd
	// do sends r: a doneMsg.
	do(r request) tea.Cmd
	// follow streams the recent and next log lines of app (worker 0:
	// all its workers) as logMsg tagged with gen, then a logsEndedMsg,
	// until stop is called.
	follow(app string, worker, gen int) (stop func())
}

// Messages.
type (
	statusMsg struct {
		st  *control.StatusResponse
		err error
		at  time.Time
	}
	tickMsg        struct{}
	eventMsg       control.Event
	eventsEndedMsg struct{ err error }
	logMsg         struct {
		gen  int
		line control.LogLine
	}
	logsEndedMsg struct {
		gen int
		err error
	}
	doneMsg struct {
		r   request
		err error
	}
)

// ErrStopped is returned by Run when the supervisor stopped while the
// dashboard showed it.
var ErrStopped = errors.New("the supervisor stopped")

// Model is the dashboard: the last status read, the readings kept for
// the sparklines, the latest events, the selection and what the keys do.
// It is a bubbletea model; Run runs it.
type Model struct {
	opts Options
	be   backend
	sty  styles

	st      *control.StatusResponse
	at      time.Time // when st was read
	pollErr error     // of the last status read, shown until one succeeds
	hist    map[key]*history
	events  []control.Event
	rows    []row

	sel    key
	offset int // of the first table row shown
	width  int
	height int

	mode   mode
	prompt prompt
	logs   logPane
	msg    string // the outcome of the last action, until the next key

	err error // why the dashboard ended, when not on a key: ErrStopped or a failure
}

// logPane is the logs pane of one app or worker.
type logPane struct {
	target key
	gen    int // of the stream; lines of an earlier one are ignored
	stop   func()
	lines  []string
	ended  string // why the stream ended, once it did
}

// newModel returns the dashboard of st, read at at.
func newModel(opts Options, be backend, st *control.StatusResponse, at time.Time) *Model {
	opts = opts.withDefaults()
	m := &Model{opts: opts, be: be, sty: newStyles(opts.Color), hist: map[key]*history{}, width: 80, height: 24}
	m.setStatus(st, at)
	return m
}

// Init starts the polling.
func (m *Model) Init() tea.Cmd { return m.tick() }

func (m *Model) tick() tea.Cmd {
	return tea.Tick(m.opts.Interval, func(time.Time) tea.Msg { return tickMsg{} })
}

// Err is why the dashboard ended when it was not a key (q, Ctrl-C): nil,
// ErrStopped, or what failed.
func (m *Model) Err() error { return m.err }

// Update applies msg.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
	case tea.KeyMsg:
		return m, m.key(msg)
	case tickMsg:
		return m, m.be.poll()
	case statusMsg:
		return m, m.status(msg)
	case eventMsg:
		m.events = append(m.events, control.Event(msg))
		if n := len(m.events) - maxEvents; n > 0 {
			m.events = slices.Delete(m.events, 0, n)
		}
	case eventsEndedMsg:
		return m, m.fail(msg.err)
	case logMsg:
		m.logLine(msg)
	case logsEndedMsg:
		if msg.gen == m.logs.gen {
			m.logs.ended = "the stream ended"
			if msg.err != nil {
				m.logs.ended += ": " + msg.err.Error()
			}
		}
	case doneMsg:
		if msg.err != nil {
			m.msg = "error: " + errorText(msg.err)
		} else {
			m.msg = msg.r.done()
		}
	}
	m.scroll()
	return m, nil
}

// status takes a status read.
func (m *Model) status(msg statusMsg) tea.Cmd {
	if msg.err != nil {
		var nr *control.NotRunningError
		if errors.As(msg.err, &nr) {
			return m.fail(nil)
		}
		m.pollErr = msg.err
		return m.tick()
	}
	m.pollErr = nil
	m.setStatus(msg.st, msg.at)
	m.scroll()
	return m.tick()
}

// fail ends the dashboard because the supervisor is gone (err nil: it
// stopped) or a stream failed.
func (m *Model) fail(err error) tea.Cmd {
	if err == nil {
		err = ErrStopped
	}
	m.err = err
	m.closeLogs()
	return tea.Quit
}

// setStatus keeps st, adds its readings to the histories, and rebuilds
// the rows, keeping the selection on the same app or worker (on its app
// when the worker is gone).
func (m *Model) setStatus(st *control.StatusResponse, at time.Time) {
	m.st, m.at = st, at
	seen := map[key]bool{}
	add := func(k key, cpu *float64, mem *int64) {
		h := m.hist[k]
		if h == nil {
			h = &history{}
			m.hist[k] = h
		}
		h.add(cpu, mem)
		seen[k] = true
	}
	for _, a := range st.Apps {
		add(key{app: a.Name}, a.CPUPercent, a.RSSBytes)
	}
	for _, w := range st.Workers {
		add(key{w.App, w.ID}, w.CPUPercent, w.RSSBytes)
	}
	for k := range m.hist {
		if !seen[k] {
			delete(m.hist, k)
		}
	}
	m.rows = buildRows(st)
	if m.rowIndex(m.sel) < 0 {
		if m.rowIndex(key{app: m.sel.app}) >= 0 {
			m.sel = key{app: m.sel.app}
		} else if len(m.rows) > 0 {
			m.sel = m.rows[0].key
		}
	}
}

// buildRows lists each app, the notes under it and its workers, in the
// status's order; workers of an app no longer in the manifests (still
// stopping) come last, under their app's name.
func buildRows(st *control.StatusResponse) []row {
	var rows []row
	byApp := map[string][]control.Worker{}
	var order []string
	for _, w := range st.Workers {
		if _, ok := byApp[w.App]; !ok {
			order = append(order, w.App)
		}
		byApp[w.App] = append(byApp[w.App], w)
	}
	listed := map[string]bool{}
	for _, a := range st.Apps {
		listed[a.Name] = true
		rows = append(rows, row{key: key{app: a.Name}})
		for _, n := range appNotes(a) {
			rows = append(rows, row{key: key{app: a.Name}, note: n})
		}
		for _, w := range byApp[a.Name] {
			rows = append(rows, row{key: key{w.App, w.ID}})
		}
	}
	for _, app := range order {
		if listed[app] {
			continue
		}
		rows = append(rows, row{key: key{app: app}, note: "removed from the manifests"})
		for _, w := range byApp[app] {
			rows = append(rows, row{key: key{w.App, w.ID}})
		}
	}
	return rows
}

// rowIndex returns the index of k's selectable row, or -1.
func (m *Model) rowIndex(k key) int {
	return slices.IndexFunc(m.rows, func(r row) bool { return r.note == "" && r.key == k })
}

// app returns the status of the app named name, or nil.
func (m *Model) app(name string) *control.App {
	for i := range m.st.Apps {
		if m.st.Apps[i].Name == name {
			return &m.st.Apps[i]
		}
	}
	return nil
}

// worker returns the status of worker k, or nil.
func (m *Model) worker(k key) *control.Worker {
	for i := range m.st.Workers {
		if w := &m.st.Workers[i]; w.App == k.app && w.ID == k.worker {
			return w
		}
	}
	return nil
}

// key handles a key press. Keys typed faster than the terminal is read
// arrive as one message of several runes ("s5"): each is a key of its own.
func (m *Model) key(k tea.KeyMsg) tea.Cmd {
	if k.Type == tea.KeyRunes && len(k.Runes) > 1 && !k.Paste {
		var cmds []tea.Cmd
		for _, r := range k.Runes {
			cmds = append(cmds, m.key(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}, Alt: k.Alt}))
		}
		return tea.Sequence(cmds...)
	}
	if k.Type == tea.KeyCtrlC {
		m.closeLogs()
		return tea.Quit
	}
	if m.mode != modePrompt {
		m.msg = ""
	}
	var cmd tea.Cmd
	switch m.mode {
	case modePrompt:
		cmd = m.promptKey(k)
	case modeLogs:
		cmd = m.logsKey(k)
	default:
		cmd = m.tableKey(k)
	}
	m.scroll()
	return cmd
}

func (m *Model) tableKey(k tea.KeyMsg) tea.Cmd {
	switch k.String() {
	case "q":
		return tea.Quit
	case "up", "k":
		m.move(-1)
	case "down", "j":
		m.move(1)
	case "home", "g":
		m.move(-len(m.rows))
	case "end", "G":
		m.move(len(m.rows))
	case "?":
		if m.mode == modeHelp {
			m.mode = modeTable
		} else {
			m.mode = modeHelp
		}
	case "esc":
		m.mode = modeTable
	case "s":
		m.ask(promptScale, "")
	case "r":
		m.ask(promptRestart, "")
	case "x":
		m.ask(promptSignal, signalChoices[0])
	case "l", "enter":
		m.openLogs()
	}
	return nil
}

// move moves the selection by n selectable rows, within the table.
func (m *Model) move(n int) {
	i := m.rowIndex(m.sel)
	step := 1
	if n < 0 {
		step, n = -1, -n
	}
	for j := i + step; n > 0 && j >= 0 && j < len(m.rows); j += step {
		if m.rows[j].note == "" {
			m.sel, n = m.rows[j].key, n-1
		}
	}
}

// ask opens a prompt about the selection: scale and restart act on its
// app, a signal on the selected worker (or every worker of the selected
// app).
func (m *Model) ask(kind, input string) {
	if m.rowIndex(m.sel) < 0 {
		return
	}
	target := m.sel
	if kind != promptSignal {
		target = key{app: m.sel.app}
	}
	m.mode, m.prompt = modePrompt, prompt{kind: kind, target: target, input: input}
}

func (m *Model) promptKey(k tea.KeyMsg) tea.Cmd {
	p := &m.prompt
	switch k.Type {
	case tea.KeyEsc:
		m.mode = modeTable
		return nil
	case tea.KeyEnter:
		return m.submit()
	case tea.KeyBackspace:
		if p.input != "" {
			r := []rune(p.input)
			p.input = string(r[:len(r)-1])
		}
		return nil
	case tea.KeyTab, tea.KeyShiftTab:
		if p.kind == promptSignal {
			step := 1
			if k.Type == tea.KeyShiftTab {
				step = len(signalChoices) - 1
			}
			p.choice = (p.choice + step) % len(signalChoices)
			p.input = signalChoices[p.choice]
		}
		return nil
	case tea.KeyRunes, tea.KeySpace:
		if p.kind == promptRestart {
			switch strings.ToLower(string(k.Runes)) {
			case "y":
				return m.submit()
			case "n", "q":
				m.mode = modeTable
			}
			return nil
		}
		if p.kind == promptSignal && slices.Contains(signalChoices, p.input) {
			p.input = "" // typing replaces the offered choice
		}
		if len(p.input) < 16 {
			p.input += printable(string(k.Runes))
		}
	}
	return nil
}

// submit sends what the prompt asks for, or says why it cannot.
func (m *Model) submit() tea.Cmd {
	p := m.prompt
	m.mode = modeTable
	path := "/v1/apps/" + url.PathEscape(p.target.app)
	switch p.kind {
	case promptScale:
		n, err := strconv.Atoi(strings.TrimSpace(p.input))
		if err != nil || n < 0 {
			m.msg = fmt.Sprintf("error: scale %s: want a worker count >= 0, got %q", p.target.app, p.input)
			return nil
		}
		var resp control.ScaleResponse
		return m.be.do(request{path: path + "/scale", body: control.ScaleRequest{Instances: &n}, out: &resp,
			done: func() string {
				return fmt.Sprintf("%s: %d → %s", p.target.app, resp.From, plural.Count(resp.Instances, "worker"))
			}})
	case promptRestart:
		var resp control.RestartResponse
		return m.be.do(request{path: path + "/restart", out: &resp, done: func() string {
			return fmt.Sprintf("%s: rolling restart of %s (generation %s)", p.target.app,
				plural.Count(resp.Workers, "worker"), resp.Generation)
		}})
	}
	if _, err := control.ParseSignal(p.input); err != nil {
		m.msg = "error: " + err.Error()
		return nil
	}
	var resp control.SignalResponse
	return m.be.do(request{path: path + "/signal", body: control.SignalRequest{Worker: p.target.worker, Signal: p.input},
		out: &resp, done: func() string {
			ids := make([]string, len(resp.Workers))
			for i, w := range resp.Workers {
				ids[i] = key{p.target.app, w}.String()
			}
			if len(ids) == 0 {
				return "signalled no worker (none is running)"
			}
			return "signalled " + strings.Join(ids, " ") + " with " + p.input
		}})
}

// errorText is the supervisor's message for an error it answered, else
// the error.
func errorText(err error) string {
	var apiErr *control.APIError
	if errors.As(err, &apiErr) {
		return strings.Join(apiErr.Messages(), "; ")
	}
	return err.Error()
}

// openLogs opens the logs pane of the selection: its app's lines, or its
// worker's.
func (m *Model) openLogs() {
	if m.rowIndex(m.sel) < 0 {
		return
	}
	m.closeLogs()
	gen := m.logs.gen + 1
	m.logs = logPane{target: m.sel, gen: gen}
	m.logs.stop = m.be.follow(m.sel.app, m.sel.worker, gen)
	m.mode = modeLogs
}

func (m *Model) closeLogs() {
	if m.logs.stop != nil {
		m.logs.stop()
		m.logs.stop = nil
	}
}

func (m *Model) logsKey(k tea.KeyMsg) tea.Cmd {
	switch k.String() {
	case "q":
		m.closeLogs()
		return tea.Quit
	case "esc", "l":
		m.closeLogs()
		m.mode = modeTable
	}
	return nil
}

func (m *Model) logLine(msg logMsg) {
	if msg.gen != m.logs.gen || m.logs.stop == nil {
		return
	}
	l := msg.line
	text := fmt.Sprintf("%s/%d | %s", l.App, l.Worker, l.Text)
	if l.Lost > 0 {
		text = fmt.Sprintf("(%s lost: this reader fell behind)", plural.Count(l.Lost, "line"))
	}
	m.logs.lines = append(m.logs.lines, printable(text))
	if n := len(m.logs.lines) - maxLogs; n > 0 {
		m.logs.lines = slices.Delete(m.logs.lines, 0, n)
	}
}
