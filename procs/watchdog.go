package procs

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The watchdog's environment.
const (
	// watchdogEnv holds the supervisor's pid; its presence makes ExecShim
	// run the watchdog.
	watchdogEnv = "PADDOCK_WATCHDOG"
	// watchdogMarkerEnv holds the supervisor's PADDOCK_SUPERVISOR value.
	watchdogMarkerEnv = "PADDOCK_WATCHDOG_MARKER"
	// watchdogLogEnv is "json" or "text", the format of its log lines.
	watchdogLogEnv = "PADDOCK_WATCHDOG_LOG"
)

// noRaceExitSleep is given to the processes this binary starts as itself
// that exit: a race-enabled build (the tests') would otherwise linger a
// second at exit. Other builds ignore it.
const noRaceExitSleep = "GORACE=atexit_sleep_ms=0"

// watchdogWriteTimeout bounds a write to the watchdog's pipe; a watchdog
// that does not read is killed, and replaced once reaped.
const watchdogWriteTimeout = 5 * time.Second

// WatchdogOptions configure StartWatchdog. The zero value is usable.
type WatchdogOptions struct {
	// Cgroup, when set, is killed and removed by the watchdog when the
	// supervisor dies.
	Cgroup *Cgroup
	// Logger receives the supervisor's warnings about the watchdog (it
	// died and was replaced). Default: slog.Default().
	Logger *slog.Logger
	// Stderr is where the watchdog writes its own log lines. Default:
	// os.Stderr.
	Stderr *os.File
	// JSON makes the watchdog's log lines JSON, as slog's JSON handler
	// writes them; otherwise slog's text format.
	JSON bool
}

// Watchdog is the supervisor's end of a watchdog process: a re-execution
// of this binary, in a process group of its own and ignoring the signals a
// terminal or service manager sends to stop the supervisor, that reads what
// the supervisor tells it through a pipe: the workers' cgroup, every
// process group leader started ("+pgid") and, before it is reaped, ended
// ("-pgid", so that a reused group id is never killed), and "done" at a
// clean exit. When the pipe ends without "done", the supervisor died: the
// watchdog kills the cgroup (and removes it once empty), every process
// group it was told of and, without a cgroup, every process whose
// environment carries the supervisor's PADDOCK_SUPERVISOR value (the
// descendants that left their group with setsid), then exits.
//
// Its methods are safe for concurrent use. A Reaper given the Watchdog
// tells it of its leaders and replaces it when it dies.
type Watchdog struct {
	opts WatchdogOptions

	mu      sync.Mutex
	proc    *os.Process
	pipe    *os.File
	groups  map[int]bool
	stopped bool
}

// StartWatchdog starts a watchdog for this supervisor. Call Stop at a clean
// exit, once every worker has stopped.
func StartWatchdog(opts WatchdogOptions) (*Watchdog, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	w := &Watchdog{opts: opts, groups: map[int]bool{}}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.startLocked(); err != nil {
		return nil, err
	}
	return w, nil
}

// startLocked starts the watchdog process and tells it the whole table.
func (w *Watchdog) startLocked() error {
	rd, wr, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("start watchdog: %w", err)
	}
	defer rd.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		wr.Close()
		return fmt.Errorf("start watchdog: %w", err)
	}
	defer devnull.Close()
	format := "text"
	if w.opts.JSON {
		format = "json"
	}
	p, err := os.StartProcess("/proc/self/exe", []string{"paddock-watchdog"}, &os.ProcAttr{
		Dir: "/",
		Env: []string{
			watchdogEnv + "=" + strconv.Itoa(os.Getpid()),
			watchdogMarkerEnv + "=" + supervisorEnv(),
			watchdogLogEnv + "=" + format,
			noRaceExitSleep,
		},
		Files: []*os.File{rd, devnull, w.opts.Stderr},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	if err != nil {
		wr.Close()
		return fmt.Errorf("start watchdog: %w", err)
	}
	w.proc, w.pipe = p, wr
	var b strings.Builder
	if w.opts.Cgroup != nil {
		b.WriteString("cgroup " + w.opts.Cgroup.Path + "\n")
	}
	groups := make([]int, 0, len(w.groups))
	for g := range w.groups {
		groups = append(groups, g)
	}
	sort.Ints(groups)
	for _, g := range groups {
		fmt.Fprintf(&b, "+%d\n", g)
	}
	w.sendLocked(b.String())
	return nil
}

// Pid returns the watchdog process's pid, 0 when none runs.
func (w *Watchdog) Pid() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.proc == nil {
		return 0
	}
	return w.proc.Pid
}

// sendLocked writes msg to the watchdog. A watchdog that cannot be written
// to is killed: its replacement is told the whole table.
func (w *Watchdog) sendLocked(msg string) {
	if w.pipe == nil || msg == "" {
		return
	}
	_ = w.pipe.SetWriteDeadline(time.Now().Add(watchdogWriteTimeout))
	if _, err := w.pipe.WriteString(msg); err != nil {
		w.opts.Logger.Warn("the watchdog does not read its pipe; killing it", "pid", w.proc.Pid, "err", err)
		_ = w.proc.Kill()
		w.pipe.Close()
		w.pipe = nil
	}
}

// add records process group pgid.
func (w *Watchdog) add(pgid int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.groups[pgid] = true
	w.sendLocked("+" + strconv.Itoa(pgid) + "\n")
}

// remove forgets process group pgid; call it before its leader is reaped.
func (w *Watchdog) remove(pgid int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.groups, pgid)
	w.sendLocked("-" + strconv.Itoa(pgid) + "\n")
}

// exited reports whether pid, just reaped, was the watchdog; if so, unless
// Stop was called, it starts a new one and tells it the whole table.
func (w *Watchdog) exited(pid int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.proc == nil || w.proc.Pid != pid {
		return false
	}
	_ = w.proc.Release()
	if w.pipe != nil {
		w.pipe.Close()
	}
	w.proc, w.pipe = nil, nil
	if w.stopped {
		return true
	}
	w.opts.Logger.Warn("the watchdog died; starting a new one", "pid", pid)
	if err := w.startLocked(); err != nil {
		w.opts.Logger.Error("no watchdog: if paddock is killed now, the workers' descendants may survive it", "err", err)
	}
	return true
}

// Stop tells the watchdog that the supervisor exits cleanly and waits
// (a bounded time) for it to exit. Call it once every worker stopped.
func (w *Watchdog) Stop() {
	w.mu.Lock()
	w.stopped = true
	p := w.proc
	w.sendLocked("done\n")
	if w.pipe != nil {
		w.pipe.Close()
		w.pipe = nil
	}
	w.mu.Unlock()
	if p == nil {
		return
	}
	done := make(chan struct{})
	go func() {
		// A Reaper still running may reap it first: then it is gone too.
		_, _ = p.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(watchdogWriteTimeout):
		_ = p.Kill()
		<-done
	}
}

// runWatchdog is the watchdog process: it reads the supervisor's messages
// on stdin until "done" (a clean exit: it returns) or the end of the pipe
// (the supervisor died: it kills what the supervisor left, then returns).
func runWatchdog() {
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	var h slog.Handler = slog.NewTextHandler(os.Stderr, nil)
	if os.Getenv(watchdogLogEnv) == "json" {
		h = slog.NewJSONHandler(os.Stderr, nil)
	}
	logger := slog.New(h).With("watchdog", os.Getpid(), "supervisor", os.Getenv(watchdogEnv))
	marker := os.Getenv(watchdogMarkerEnv)
	var cgroup string
	groups := map[int]bool{}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "done":
			return
		case strings.HasPrefix(line, "cgroup "):
			cgroup = strings.TrimPrefix(line, "cgroup ")
		case strings.HasPrefix(line, "+"), strings.HasPrefix(line, "-"):
			if pgid, err := strconv.Atoi(line[1:]); err == nil && pgid > 1 {
				if line[0] == '+' {
					groups[pgid] = true
				} else {
					delete(groups, pgid)
				}
			}
		}
	}
	// The supervisor died (its end of the pipe closed without "done").
	// Every recorded leader was unreaped when it died: a group that
	// still has members cannot have had its id reused.
	var attrs []any
	cgroupKilled := false
	if cgroup != "" {
		n, err := killCgroup(cgroup)
		cgroupKilled = err == nil
		attrs = append(attrs, "cgroup", cgroup, "cgroup_processes", n)
		if err != nil {
			attrs = append(attrs, "cgroup_err", err.Error())
		}
	}
	killed := 0
	for pgid := range groups {
		if groupAlive(pgid) && killGroup(pgid) == nil {
			killed++
		}
	}
	attrs = append(attrs, "process_groups", killed)
	if !cgroupKilled && marker != "" {
		attrs = append(attrs, "marked_processes", killMarked(marker))
	}
	if cgroup != "" {
		if err := removeCgroup(cgroup); err != nil {
			attrs = append(attrs, "remove_err", err.Error())
		}
	}
	logger.Warn("paddock died; killed what its workers left", attrs...)
}

// killMarked sends SIGKILL to every process whose environment holds
// PADDOCK_SUPERVISOR=marker, pass after pass until a pass finds none (a
// process may fork while it is being killed), and returns how many it
// killed. Each is signalled through a pidfd opened before its environment
// was read, so a pid reused meanwhile is never hit.
func killMarked(marker string) int {
	want := []byte(supervisorEnvName + "=" + marker)
	self := os.Getpid()
	killed := map[int]bool{}
	for pass := 0; pass < 50; pass++ {
		found := 0
		entries, err := os.ReadDir("/proc")
		if err != nil {
			break
		}
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == self {
				continue
			}
			pidfd, err := unix.PidfdOpen(pid, 0)
			if err != nil {
				continue
			}
			env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
			if err == nil && hasEntry(env, want) {
				if unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0) == nil {
					found++
					killed[pid] = true
				}
			}
			unix.Close(pidfd)
		}
		if found == 0 {
			break
		}
	}
	return len(killed)
}

// hasEntry reports whether the NUL-separated environment block env holds
// the entry want exactly.
func hasEntry(env, want []byte) bool {
	for len(env) > 0 {
		entry, rest, _ := bytes.Cut(env, []byte{0})
		if bytes.Equal(entry, want) {
			return true
		}
		env = rest
	}
	return false
}
