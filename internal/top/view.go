package top

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
	"github.com/muesli/termenv"

	"github.com/paddock-sh/paddock/internal/display"
	"github.com/paddock-sh/paddock/internal/plural"
)

// Sparkline widths: the widest, when the terminal leaves room, and the
// narrowest before sparklines are dropped.
const (
	sparkMax = 16
	sparkMin = 4
)

// styles are the dashboard's colours. Without colour (NO_COLOR, or not a
// colour terminal) every style renders text unchanged: what a colour
// says, a word or a mark says too (the state names, the ">" of the
// selected row).
type styles struct {
	title, header, note, dim, spark, selected, errorText lipgloss.Style
	state                                                map[string]lipgloss.Style
}

func newStyles(color bool) styles {
	r := lipgloss.NewRenderer(nil)
	r.SetColorProfile(termenv.Ascii)
	if color {
		r.SetColorProfile(termenv.ANSI256)
	}
	c := func(n string) lipgloss.Style { return r.NewStyle().Foreground(lipgloss.Color(n)) }
	return styles{
		title:     r.NewStyle().Bold(true),
		header:    r.NewStyle().Bold(true).Underline(true),
		note:      c("244"),
		dim:       c("244"),
		spark:     c("39"),
		selected:  r.NewStyle().Reverse(true),
		errorText: c("196"),
		state: map[string]lipgloss.Style{
			"ok": c("40"), "running": c("40"), "yes": c("40"),
			"degraded": c("214"), "rolling": c("214"), "waiting": c("214"), "no": c("214"),
			"stopping": c("213"), "idle": c("244"), "done": c("244"),
			"crashing": c("196"), "stalled": c("196"), "backoff": c("196"),
		},
	}
}

// column is one column of the table.
type column struct {
	header string
	right  bool // aligned right (numbers)
	gap    int  // spaces before it
	// drop orders the columns that go when the terminal is narrow: 1
	// goes first; 0 never goes. Sparklines shrink to sparkMin before a
	// column whose drop is above dropBeforeShrink goes.
	drop int
	// spark, for a sparkline's column, draws it from a history, w wide;
	// cell, for the others, is the text of a row's cell.
	spark func(h *history, w int) string
	cell  func(m *Model, r row) cell
}

// cell is a table cell: its text, and the style of it (a key of
// styles.state, or "spark", or "" for none).
type cell struct {
	text, style string
}

// dropBeforeShrink: the columns with drop up to this go before the
// sparklines shrink (the generation, the pid).
const dropBeforeShrink = 2

var columns = []column{
	{header: "NAME", cell: nameCell},
	{header: "STATE", gap: 2, cell: stateCell},
	{header: "READY", gap: 2, drop: 10, cell: readyCell},
	{header: "CPU", gap: 2, right: true, drop: 9, cell: cpuCell},
	{gap: 1, drop: 6, spark: func(h *history, w int) string { return sparkline(h.cpu, w, 1) }},
	{header: "MEM", gap: 2, right: true, drop: 8, cell: memCell},
	{gap: 1, drop: 5, spark: func(h *history, w int) string { return sparkline(h.mem, w, 0) }},
	{header: "RESTARTS", gap: 2, right: true, drop: 7, cell: restartsCell},
	{header: "UPTIME", gap: 2, right: true, drop: 3, cell: uptimeCell},
	{header: "CONNS", gap: 2, right: true, drop: 4, cell: connsCell},
	{header: "PID", gap: 2, right: true, drop: 2, cell: pidCell},
	{header: "GEN", gap: 2, drop: 1, cell: genCell},
}

// maxName bounds the NAME column; longer names end in "…".
const maxName = 24

func nameCell(m *Model, r row) cell {
	if r.worker == 0 {
		return cell{text: r.app}
	}
	return cell{text: "  " + r.String()}
}

func stateCell(m *Model, r row) cell {
	if r.worker == 0 {
		if a := m.app(r.app); a != nil {
			s := appState(*a)
			return cell{s, s}
		}
		return cell{text: "removed", style: "done"}
	}
	w := m.worker(r.key)
	return cell{w.State, w.State}
}

func readyCell(m *Model, r row) cell {
	if r.worker == 0 {
		if a := m.app(r.app); a != nil {
			return cell{text: fmt.Sprintf("%d/%d", a.Ready, a.Instances)}
		}
		return cell{text: "-"}
	}
	if w := m.worker(r.key); w.Ready {
		return cell{"yes", "yes"}
	} else if w.State == "running" {
		return cell{"no", "no"}
	}
	return cell{text: "-"}
}

func cpuCell(m *Model, r row) cell {
	if r.worker == 0 {
		if a := m.app(r.app); a != nil {
			return cell{text: display.CPU(a.CPUPercent)}
		}
		return cell{text: "-"}
	}
	return cell{text: display.CPU(m.worker(r.key).CPUPercent)}
}

func memCell(m *Model, r row) cell {
	if r.worker == 0 {
		if a := m.app(r.app); a != nil {
			return cell{text: display.Mem(a.RSSBytes)}
		}
		return cell{text: "-"}
	}
	return cell{text: display.Mem(m.worker(r.key).RSSBytes)}
}

func restartsCell(m *Model, r row) cell {
	if r.worker != 0 {
		return cell{text: strconv.Itoa(m.worker(r.key).Restarts)}
	}
	n := 0
	for _, w := range m.st.Workers {
		if w.App == r.app {
			n += w.Restarts
		}
	}
	return cell{text: strconv.Itoa(n)}
}

func uptimeCell(m *Model, r row) cell {
	if r.worker == 0 {
		return cell{text: ""}
	}
	w := m.worker(r.key)
	if w.PID == 0 {
		if w.RestartAt != nil {
			return cell{text: "in " + display.Age(w.RestartAt.Sub(m.at))}
		}
		return cell{text: "-"}
	}
	return cell{text: display.Age(m.at.Sub(w.StartedAt))}
}

// handsOut reports whether paddock hands the app's connections to its
// workers (rr, sticky, with a socket to listen on), so that CONNS means
// something.
func (m *Model) handsOut(app string) bool {
	a := m.app(app)
	return a != nil && len(a.Listen) > 0 && (a.SchedulingPolicy == "rr" || a.SchedulingPolicy == "sticky")
}

func connsCell(m *Model, r row) cell {
	if !m.handsOut(r.app) {
		return cell{text: "-"}
	}
	if r.worker != 0 {
		return cell{text: strconv.FormatInt(m.worker(r.key).HandedOut, 10)}
	}
	var n int64
	for _, w := range m.st.Workers {
		if w.App == r.app {
			n += w.HandedOut
		}
	}
	return cell{text: strconv.FormatInt(n, 10)}
}

func pidCell(m *Model, r row) cell {
	if r.worker == 0 {
		return cell{text: ""}
	}
	if w := m.worker(r.key); w.PID != 0 {
		return cell{text: strconv.Itoa(w.PID)}
	}
	return cell{text: "-"}
}

func genCell(m *Model, r row) cell {
	if r.worker == 0 {
		if a := m.app(r.app); a != nil {
			return cell{text: a.Generation}
		}
		return cell{text: "-"}
	}
	return cell{text: m.worker(r.key).Generation}
}

// layout is which columns show, how wide, and how wide the sparklines are.
type layout struct {
	show   []bool
	widths []int
	spark  int
}

// fit chooses the columns for a terminal width: every column, with
// sparkMax-wide sparklines when they fit; else the generation and the pid
// go, then the sparklines shrink to sparkMin, then columns go by their
// drop order (uptime, connections, the sparklines, restarts, memory, CPU,
// readiness). Name and state always stay; a line still too long is cut.
func fit(cells [][]cell, width int) layout {
	l := layout{show: make([]bool, len(columns)), widths: make([]int, len(columns)), spark: sparkMax}
	for i, c := range columns {
		l.show[i] = true
		l.widths[i] = ansi.StringWidth(c.header)
		for _, r := range cells {
			l.widths[i] = max(l.widths[i], ansi.StringWidth(r[i].text))
		}
		if i == 0 {
			l.widths[i] = min(l.widths[i], maxName)
		}
	}
	total := func() int {
		n := 2 // the selection mark and its space
		for i, c := range columns {
			if !l.show[i] {
				continue
			}
			n += c.gap + l.widths[i]
			if c.spark != nil {
				n += l.spark
			}
		}
		return n
	}
	for drop := 1; total() > width; {
		if drop > dropBeforeShrink && l.spark > sparkMin {
			l.spark--
			continue
		}
		i := dropIndex(drop)
		if i < 0 {
			break
		}
		l.show[i] = false
		drop++
	}
	return l
}

// dropIndex returns the index of the column with drop order d, or -1.
func dropIndex(d int) int {
	for i, c := range columns {
		if c.drop == d {
			return i
		}
	}
	return -1
}

// View draws the dashboard.
func (m *Model) View() string {
	if m.width <= 0 || m.height <= 0 {
		return ""
	}
	lines := []string{m.titleLine()}
	if m.mode == modeLogs {
		lines = append(lines, m.logLines(m.height-2)...)
	} else {
		lines = append(lines, m.body()...)
	}
	if len(lines) > m.height-1 { // a terminal too short for even the table's header
		lines = lines[:max(m.height-1, 0)]
	}
	lines = append(lines, m.footer())
	for i, l := range lines {
		lines[i] = ansi.Truncate(l, m.width, "")
	}
	return strings.Join(lines, "\n")
}

// heights splits the lines between the title and the footer: the table
// (header and rows) gets what its rows need, the events (or help) pane at
// least its header and three lines, the rest going to the events.
func (m *Model) heights() (table, events int) {
	avail := max(m.height-2, 0)
	table = min(len(m.rows)+1, max(avail-4, 1))
	return table, max(avail-table, 0)
}

// scroll keeps the selected row in the part of the table shown.
func (m *Model) scroll() {
	table, _ := m.heights()
	shown := max(table-1, 1)
	i := max(m.rowIndex(m.sel), 0)
	if i < m.offset {
		m.offset = i
	}
	if i >= m.offset+shown {
		m.offset = i - shown + 1
	}
	m.offset = max(min(m.offset, len(m.rows)-shown), 0)
}

// titleLine is the first line: the supervisor, and at the right (what
// fits of it) which rows the table shows when some are out of sight, and
// the interval; in the logs pane, whose logs and how many lines.
func (m *Model) titleLine() string {
	st := m.st
	left := fmt.Sprintf("paddock top · pid %d · up %s · %s, %s", st.Supervisor.PID,
		display.Age(m.at.Sub(st.Supervisor.StartedAt)), plural.Count(len(st.Apps), "app"),
		plural.Count(len(st.Workers), "worker"))
	every := "every " + m.opts.Interval.String()
	rights := []string{every}
	if table, _ := m.heights(); table-1 < len(m.rows) && table > 1 {
		rows := fmt.Sprintf("rows %d-%d of %d", m.offset+1, min(m.offset+table-1, len(m.rows)), len(m.rows))
		rights = []string{rows + " · " + every, rows}
	}
	if m.mode == modeLogs {
		left = "logs of " + m.logs.target.String() + " (following; Esc back)"
		rights = []string{plural.Count(len(m.logs.lines), "line")}
	}
	for _, right := range rights {
		if pad := m.width - ansi.StringWidth(left) - ansi.StringWidth(right); pad >= 2 {
			return m.sty.title.Render(left + strings.Repeat(" ", pad) + right)
		}
	}
	return m.sty.title.Render(left)
}

// body draws the table and, under it, the events or the help.
func (m *Model) body() []string {
	tableH, eventsH := m.heights()
	cells := make([][]cell, len(m.rows))
	for i, r := range m.rows {
		if r.note != "" {
			continue
		}
		cells[i] = make([]cell, len(columns))
		for j, c := range columns {
			if c.spark != nil {
				cells[i][j] = cell{style: "spark"}
			} else {
				cells[i][j] = c.cell(m, r)
			}
		}
	}
	l := fit(nonNil(cells), m.width)
	out := []string{m.sty.header.Render(m.renderRow(l, headerCells(), false))}
	shown := m.rows[min(m.offset, len(m.rows)):]
	for i, r := range shown {
		if len(out) >= tableH {
			break
		}
		if r.note != "" {
			out = append(out, m.sty.note.Render(ansi.Truncate("      "+r.note, m.width, "…")))
			continue
		}
		out = append(out, m.renderRow(l, cells[m.offset+i], r.key == m.sel, r.key))
	}
	for len(out) < tableH {
		out = append(out, "")
	}
	if m.mode == modeHelp {
		return append(out, fill(m.helpLines(), eventsH)...)
	}
	return append(out, fill(m.eventLines(eventsH), eventsH)...)
}

// nonNil returns the rows of cells that are rows of the table (not notes).
func nonNil(cells [][]cell) [][]cell {
	var out [][]cell
	for _, c := range cells {
		if c != nil {
			out = append(out, c)
		}
	}
	return out
}

func headerCells() []cell {
	out := make([]cell, len(columns))
	for i, c := range columns {
		out[i] = cell{text: c.header}
	}
	return out
}

// renderRow draws one line of the table; k, when given, is the row's app
// or worker (for its sparklines).
func (m *Model) renderRow(l layout, cells []cell, selected bool, k ...key) string {
	var plain, styled strings.Builder
	mark := "  "
	if selected {
		mark = "> "
	}
	plain.WriteString(mark)
	styled.WriteString(mark)
	for i, c := range columns {
		if !l.show[i] {
			continue
		}
		text, w := cells[i].text, l.widths[i]
		if c.spark != nil {
			w = l.spark
			if len(k) == 1 && m.hist[k[0]] != nil {
				text = c.spark(m.hist[k[0]], w)
			}
		}
		text = ansi.Truncate(text, w, "…")
		pad := strings.Repeat(" ", w-ansi.StringWidth(text))
		if c.right {
			text = pad + text
		} else {
			text += pad
		}
		gap := strings.Repeat(" ", c.gap)
		plain.WriteString(gap + text)
		styled.WriteString(gap + m.style(cells[i].style).Render(text))
	}
	if selected {
		s := plain.String()
		if n := m.width - ansi.StringWidth(s); n > 0 {
			s += strings.Repeat(" ", n)
		}
		return m.sty.selected.Render(s)
	}
	return styled.String()
}

func (m *Model) style(name string) lipgloss.Style {
	if name == "spark" {
		return m.sty.spark
	}
	return m.sty.state[name] // the zero style: unchanged
}

// fill pads or cuts lines to n.
func fill(lines []string, n int) []string {
	if len(lines) > n {
		return lines[:n]
	}
	for len(lines) < n {
		lines = append(lines, "")
	}
	return lines
}

// eventLines draws the events pane: a rule, then the latest events,
// newest last.
func (m *Model) eventLines(n int) []string {
	if n <= 0 {
		return nil
	}
	out := []string{m.rule("events")}
	evs := m.events
	if len(evs) > n-1 {
		evs = evs[len(evs)-(n-1):]
	}
	if len(evs) == 0 {
		return append(out, m.sty.dim.Render("(none since top started)"))
	}
	for _, e := range evs {
		out = append(out, ansi.Truncate(formatEvent(e, m.opts.Location), m.width, "…"))
	}
	return out
}

func (m *Model) rule(title string) string {
	s := "── " + title + " "
	return m.sty.dim.Render(s + strings.Repeat("─", max(m.width-ansi.StringWidth(s), 0)))
}

// helpLines explains the keys and the columns.
func (m *Model) helpLines() []string {
	return []string{
		m.rule("help (? or Esc closes)"),
		"↑/↓ or k/j select an app or a worker; g/G first/last",
		"s  scale the app: type N, Enter (Esc cancels)",
		"r  rolling restart of the app (y confirms), as `paddock restart`",
		"x  send a signal to the worker, or to every worker of the app:",
		"   Tab cycles TERM HUP INT USR1 USR2 QUIT KILL, or type one; Enter",
		"l  follow the logs of the app or worker (Enter too); Esc back",
		"q  quit (Ctrl-C too)",
		"CPU: % of one CPU over the last reading; MEM: resident, process group",
		"CONNS: connections paddock handed out (rr, sticky); - otherwise",
		"sparklines: one bar per reading, scaled to the highest shown",
	}
}

// footer is the last line: the prompt, the outcome of the last action,
// a failed status read, or the keys.
func (m *Model) footer() string {
	switch {
	case m.mode == modePrompt:
		return m.promptLine()
	case m.msg != "":
		if strings.HasPrefix(m.msg, "error: ") {
			return m.sty.errorText.Render(m.msg)
		}
		return m.msg
	case m.pollErr != nil:
		return m.sty.errorText.Render(fmt.Sprintf("status read failed (showing the one of %s): %v",
			m.at.In(m.opts.Location).Format("15:04:05"), m.pollErr))
	case m.mode == modeLogs:
		return m.sty.dim.Render("Esc back  q quit")
	}
	keys := "↑↓ select  s scale  r restart  x signal  l logs  ? help  q quit"
	if ansi.StringWidth(keys) > m.width {
		keys = "? help  q quit"
	}
	return m.sty.dim.Render(keys)
}

func (m *Model) promptLine() string {
	p := m.prompt
	switch p.kind {
	case promptScale:
		now := ""
		if a := m.app(p.target.app); a != nil {
			now = fmt.Sprintf(" (now %d)", a.Instances)
		}
		return fmt.Sprintf("scale %s to%s: %s█  Enter sends, Esc cancels", p.target.app, now, p.input)
	case promptRestart:
		return fmt.Sprintf("rolling restart of %s? y/n", p.target.app)
	}
	target := p.target.String()
	if p.target.worker == 0 {
		target = "every worker of " + p.target.app
	}
	return fmt.Sprintf("signal %s: %s█  Tab: %s  Enter sends", target, p.input, strings.Join(signalChoices, " "))
}

// logLines draws the last n lines of the logs pane.
func (m *Model) logLines(n int) []string {
	n = max(n, 0)
	lines := m.logs.lines
	if m.logs.ended != "" {
		lines = append(lines[:len(lines):len(lines)], "("+m.logs.ended+")")
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return fill(lines, n)
}
