package nodecompat

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/paddock-sh/paddock/internal/testkit"
)

// An event is what a primary reports of its workers, in the same shape for
// both primaries: fork (with the pid), online, listening, message (with
// the JSON value) and exit (the code, or the signal that ended it).
type event struct {
	Type    string
	Worker  int
	PID     int
	Message json.RawMessage
	Code    *int
	Signal  string
}

// A primary runs one case's workers: Node's own cluster module, or paddock.
type primary interface {
	// start starts the primary for r; its events go to r.events until stop.
	start(ctx context.Context, r *run) error
	// do carries out a step's action.
	do(ctx context.Context, a action) error
	// exited is closed once the primary exited (or, for Node's, closed its
	// event descriptor, which it does only by exiting).
	exited() <-chan struct{}
	// stop ends the primary and every worker it started, and waits for it.
	stop()
}

// A run is one case under one primary.
type run struct {
	c      parityCase
	dir    string          // the case's directory: scripts, results, sockets
	env    []string        // the primary's own environment
	events chan event      // the primary's events, in order
	output *testkit.Buffer // what the primary and its workers wrote
}

// exec returns the absolute path of the case's script in its directory.
func (r *run) exec() string {
	return filepath.Join(r.dir, "cases", r.c.script()+".js")
}

// cwd returns the workers' working directory, or "" for the case's.
func (r *run) cwd() string {
	if r.c.Cwd == "" {
		return ""
	}
	return filepath.Join(r.dir, r.c.Cwd)
}

// nodePrimary is Node's own cluster primary: testdata/primary.js, fed
// commands on its stdin, reporting events on descriptor 3.
type nodePrimary struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{} // closed when the event reader ended
}

func (p *nodePrimary) start(ctx context.Context, r *run) error {
	conf := map[string]any{"exec": r.exec(), "instances": r.c.instances(), "policy": r.c.policy()}
	if len(r.c.Args) > 0 {
		conf["args"] = r.c.Args
	}
	if len(r.c.ExecArgv) > 0 {
		conf["execArgv"] = r.c.ExecArgv
	}
	if r.c.Cwd != "" {
		conf["cwd"] = r.cwd()
	}
	if len(r.c.Env) > 0 {
		conf["env"] = r.c.Env
	}
	if r.c.Serialization != "" {
		conf["serialization"] = r.c.Serialization
	}
	if m := r.c.Relay; m != nil {
		conf["relay"] = map[string]string{"key": m.Key, "value": m.Value}
	}
	setup, err := json.Marshal(conf)
	if err != nil {
		return err
	}
	evr, evw, err := os.Pipe()
	if err != nil {
		return err
	}
	defer evw.Close()
	p.cmd = exec.Command("node", filepath.Join(r.dir, "primary.js"), string(setup))
	p.cmd.Dir = r.dir
	p.cmd.Env = r.env
	p.cmd.Stdout, p.cmd.Stderr = r.output, r.output
	p.cmd.ExtraFiles = []*os.File{evw}
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		evr.Close()
		return err
	}
	if err := p.cmd.Start(); err != nil {
		evr.Close()
		return fmt.Errorf("start node's primary: %w", err)
	}
	p.done = make(chan struct{})
	go func() {
		defer close(p.done)
		defer evr.Close()
		sc := bufio.NewScanner(evr)
		sc.Buffer(nil, 8<<20)
		for sc.Scan() {
			var e struct {
				Type     string          `json:"type"`
				Worker   int             `json:"worker"`
				PID      int             `json:"pid"`
				Message  json.RawMessage `json:"message"`
				ExitCode *int            `json:"exitCode"`
				Signal   *string         `json:"signal"`
			}
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				fmt.Fprintf(r.output, "harness: bad event line from node's primary: %q\n", sc.Text())
				continue
			}
			ev := event{Type: e.Type, Worker: e.Worker, PID: e.PID, Message: e.Message, Code: e.ExitCode}
			if e.Signal != nil {
				ev.Signal = *e.Signal
			}
			select {
			case r.events <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	return nil
}

func (p *nodePrimary) do(_ context.Context, a action) error {
	cmd := map[string]any{"op": a.Op, "worker": a.Worker}
	if a.Message != "" {
		cmd["message"] = json.RawMessage(a.Message)
	}
	line, err := json.Marshal(cmd)
	if err != nil {
		return err
	}
	_, err = p.stdin.Write(append(line, '\n'))
	return err
}

func (p *nodePrimary) exited() <-chan struct{} { return p.done }

func (p *nodePrimary) stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	p.stdin.Close()
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) // the primary and its workers: one process group
	p.cmd.Wait()
	if p.done != nil {
		<-p.done
	}
}

// paddockPrimary is paddock: the built binary running a generated manifest
// with one app, "parity", of the case's workers (ipc: node, restart: never,
// as Node's primary never restarts a worker). It starts with no worker and
// scales to the case's count once the harness follows its events, so that
// none is missed.
type paddockPrimary struct {
	bin      string
	sockDir  string
	cmd      *exec.Cmd
	client   *http.Client
	gone     chan struct{} // closed once paddock exited
	follow   chan struct{} // closed when the event stream ended
	cancel   context.CancelFunc
	desired  int
	mu       sync.Mutex
	pids     map[int]int // worker id -> pid, of workers not seen exiting
	exitErr  error
	manifest string
}

// manifestFor writes the manifest of r into r.dir.
func (p *paddockPrimary) manifestFor(r *run) (string, error) {
	app := map[string]any{
		"exec":             "./cases/" + r.c.script() + ".js",
		"ipc":              "node",
		"instances":        0,
		"schedulingPolicy": r.c.policy(),
		"restart":          "never",
		// Node's primary waits for a disconnected worker as long as it
		// takes; a short killTimeout would fail a slow machine's cases.
		// The harness's own deadline bounds a worker that never exits.
		"killTimeout": testkit.Patience.String(),
	}
	if len(r.c.Env) > 0 {
		app["env"] = r.c.Env
	}
	if len(r.c.Args) > 0 {
		app["args"] = r.c.Args
	}
	if len(r.c.ExecArgv) > 0 {
		app["execArgv"] = r.c.ExecArgv
	}
	if r.c.Cwd != "" {
		app["cwd"] = r.c.Cwd
	}
	if r.c.Serialization != "" {
		// The name Node's setupPrimary uses; paddock knows json only
		// and refuses advanced (parityCase.RefusedByPaddock).
		app["serialization"] = r.c.Serialization
	}
	if m := r.c.Relay; m != nil {
		app["ipc"] = map[string]any{"mode": "node", "relay": []any{map[string]any{"match": map[string]string{m.Key: m.Value}}}}
	}
	b, err := json.MarshalIndent(map[string]any{"apps": map[string]any{"parity": app}}, "", "  ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(r.dir, "paddock.yaml") // JSON is YAML
	return path, testkit.WriteFile(path, b, 0o644)
}

func (p *paddockPrimary) start(ctx context.Context, r *run) error {
	manifest, err := p.manifestFor(r)
	if err != nil {
		return err
	}
	p.manifest = manifest
	// A unix socket path has at most 107 bytes: the socket lives in a
	// short directory of its own, not in the case's.
	if p.sockDir, err = os.MkdirTemp("", "pdk"); err != nil {
		return err
	}
	sock := filepath.Join(p.sockDir, "c.sock")
	p.client = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	p.pids = make(map[int]int)
	p.cmd = exec.Command(p.bin, "run", "--socket", sock, "--watch=false", "--cgroup", "off", "--sysctl=false", manifest)
	p.cmd.Dir = r.dir
	p.cmd.Env = r.env
	p.cmd.Stdout, p.cmd.Stderr = r.output, r.output
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("start paddock: %w", err)
	}
	p.gone = make(chan struct{})
	go func() {
		err := p.cmd.Wait()
		p.mu.Lock()
		p.exitErr = err
		p.mu.Unlock()
		close(p.gone)
	}()

	// Follow the events, then start the workers.
	deadline := time.Now().Add(testkit.Patience)
	var resp *http.Response
	for {
		req, err := http.NewRequestWithContext(ctx, "GET", "http://paddock/v1/events?app=parity", nil)
		if err != nil {
			return err
		}
		resp, err = p.client.Do(req)
		if err == nil && resp.StatusCode == http.StatusOK {
			break
		}
		if err == nil {
			resp.Body.Close()
		}
		select {
		case <-p.gone:
			return fmt.Errorf("paddock exited before it served its control socket (%v): it refused the manifest?", p.exitErr)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("paddock's control socket did not answer within %v: %v", testkit.Patience, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	fctx, cancel := context.WithCancel(ctx)
	p.cancel = cancel
	p.follow = make(chan struct{})
	go func() {
		defer close(p.follow)
		defer resp.Body.Close()
		stop := context.AfterFunc(fctx, func() { resp.Body.Close() })
		defer stop()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 8<<20)
		for sc.Scan() {
			var e struct {
				Type     string `json:"type"`
				Worker   int    `json:"worker"`
				PID      int    `json:"pid"`
				ExitCode *int   `json:"exitCode"`
				Signal   string `json:"signal"`
				Detail   string `json:"detail"`
			}
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				fmt.Fprintf(r.output, "harness: bad event line from paddock: %q\n", sc.Text())
				continue
			}
			ev := event{Type: e.Type, Worker: e.Worker, PID: e.PID, Signal: e.Signal}
			switch e.Type {
			case "fork":
				p.mu.Lock()
				p.pids[e.Worker] = e.PID
				p.mu.Unlock()
			case "message":
				ev.Message = json.RawMessage(e.Detail)
			case "exit":
				p.mu.Lock()
				delete(p.pids, e.Worker)
				p.mu.Unlock()
				if e.Signal == "" {
					ev.Code = e.ExitCode
				}
			case "online", "listening":
			default:
				continue
			}
			select {
			case r.events <- ev:
			case <-fctx.Done():
				return
			}
		}
	}()
	return p.scale(ctx, r.c.instances())
}

// post sends a control API request and decodes nothing: paddock's answer
// is checked for its status only.
func (p *paddockPrimary) post(ctx context.Context, path string, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, "POST", "http://paddock"+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("paddock %s: %w", path, err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("paddock %s: %s: %s", path, resp.Status, strings.TrimSpace(string(answer)))
	}
	return nil
}

func (p *paddockPrimary) scale(ctx context.Context, n int) error {
	if n < 0 {
		n = 0
	}
	p.desired = n
	return p.post(ctx, "/v1/apps/parity/scale", map[string]int{"instances": n})
}

func (p *paddockPrimary) do(ctx context.Context, a action) error {
	switch a.Op {
	case "fork":
		return p.scale(ctx, p.desired+1)
	case "disconnect-all":
		return p.scale(ctx, 0)
	case "disconnect-newest":
		return p.scale(ctx, p.desired-1)
	case "send":
		return p.post(ctx, "/v1/apps/parity/send", map[string]any{"worker": a.Worker, "message": json.RawMessage(a.Message)})
	}
	return fmt.Errorf("unknown action %q", a.Op)
}

func (p *paddockPrimary) exited() <-chan struct{} { return p.gone }

func (p *paddockPrimary) stop() {
	if p.sockDir != "" {
		defer os.RemoveAll(p.sockDir)
	}
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.gone:
	case <-time.After(testkit.Patience):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.gone
	}
	if p.cancel != nil {
		p.cancel()
		<-p.follow
	}
	// A worker paddock could not stop (it died first) must not outlive the
	// run.
	p.mu.Lock()
	for _, pid := range p.pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	p.mu.Unlock()
}
