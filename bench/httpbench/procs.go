package main

// The processes the run starts: each leads a process group of its own, and
// all are stopped at the end, whatever happens.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// procSet is every process the run started, for the final clean-up.
type procSet struct {
	mu      sync.Mutex
	procs   []*proc
	workers map[int]bool // worker pids seen (children of a supervisor)
}

// proc is a started process, leader of its own process group.
type proc struct {
	set  *procSet
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when it has exited and been waited for
	err  error

	mu    sync.Mutex
	lines []string // the last lines of its output
	addr  string   // paddock: the bound address from the "listening" line
	ports []int    // node primary: the port of each "listening" line
}

const tailLines = 40

// start starts cmd in a process group of its own, killed by the kernel if
// this process dies. Unless cmd.Stdout is set, its stdout and stderr are
// read line by line (kept in log when not nil, the last lines in memory).
func (ps *procSet) start(name string, cmd *exec.Cmd, log io.WriteCloser) (*proc, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &proc{set: ps, name: name, cmd: cmd, done: make(chan struct{})}
	// Our own pipe, not cmd.StdoutPipe: Wait must return when the process
	// exits even if a child of it still holds the pipe open.
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	if cmd.Stdout == nil {
		cmd.Stdout = w
	}
	cmd.Stderr = w
	ps.mu.Lock() // no clean-up between the start and the registration
	err = cmd.Start()
	if err == nil {
		ps.procs = append(ps.procs, p)
	}
	ps.mu.Unlock()
	w.Close()
	if err != nil {
		r.Close()
		return nil, err
	}
	go p.read(r, log)
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) read(r io.ReadCloser, log io.WriteCloser) {
	defer r.Close()
	if log != nil {
		defer log.Close()
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if log != nil {
			fmt.Fprintln(log, line)
		}
		var ev struct {
			Msg     string `json:"msg"`
			Address string `json:"address"`
			Port    int    `json:"port"`
		}
		_ = json.Unmarshal([]byte(line), &ev)
		p.mu.Lock()
		p.lines = append(p.lines, line)
		if len(p.lines) > tailLines {
			p.lines = p.lines[len(p.lines)-tailLines:]
		}
		if ev.Msg == "listening" {
			if ev.Address != "" && p.addr == "" {
				p.addr = ev.Address // paddock: the socket it bound
			}
			if ev.Port > 0 {
				p.ports = append(p.ports, ev.Port) // Node's primary: a worker listens
			}
		}
		p.mu.Unlock()
	}
}

// port is the port the workers listen on, once known: for paddock from its
// "listening" line, for Node's primary once n workers reported listening.
func (p *proc) port(side string, n int) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if side == "paddock" {
		if p.addr == "" {
			return 0
		}
		_, port, err := net.SplitHostPort(p.addr)
		if err != nil {
			return 0
		}
		v, _ := strconv.Atoi(port)
		return v
	}
	if len(p.ports) < n {
		return 0
	}
	return p.ports[0]
}

func (p *proc) tail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.lines) == 0 {
		return ""
	}
	return "last output of " + p.name + ":\n  " + strings.Join(p.lines, "\n  ")
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) exitErr() error {
	if !p.exited() {
		return nil
	}
	return p.err
}

// stop sends SIGTERM to the process, SIGKILL to its group after grace, and
// SIGKILL to what is left of its group once it has exited.
func (p *proc) stop(grace time.Duration) {
	pid := p.pid()
	if !p.exited() {
		_ = syscall.Kill(pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
			logf("%s (pid %d) still running %s after SIGTERM: killing its process group", p.name, pid, grace)
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			select {
			case <-p.done:
			case <-time.After(5 * time.Second):
				logf("%s (pid %d) did not exit after SIGKILL", p.name, pid)
			}
		}
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL) // ESRCH when the group is empty
	ps := p.set
	ps.mu.Lock()
	ps.procs = slices.DeleteFunc(ps.procs, func(q *proc) bool { return q == p })
	ps.mu.Unlock()
}

func (ps *procSet) addWorker(pid int) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.workers == nil {
		ps.workers = map[int]bool{}
	}
	ps.workers[pid] = true
}

// killWorkers kills every worker seen that is still running: a supervisor
// should have stopped them, so one left is reported.
func (ps *procSet) killWorkers() {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for pid := range ps.workers {
		delete(ps.workers, pid)
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !alive(pid) || !bytes.Contains(cmdline, []byte("hello.js")) {
			continue
		}
		logf("worker %d outlived its supervisor: killing it", pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// cleanup stops every process not stopped yet, then any worker left.
func (ps *procSet) cleanup() {
	ps.mu.Lock()
	procs := slices.Clone(ps.procs)
	ps.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.stop(8 * time.Second)
		}()
	}
	wg.Wait()
	ps.killWorkers()
}

// ---- wrk ----

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// State is the field after the parenthesised command name; Z is a zombie.
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] != 'Z'
	}
	return true
}
