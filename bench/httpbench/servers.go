package main

// Running the servers: a supervisor (paddock or Node's cluster primary)
// with its workers, ready to serve, and stopping it.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// bench holds what every configuration shares.
type bench struct {
	o       options
	procs   *procSet
	work    string // temporary directory: manifests, logs, counts
	paddock string // absolute paths
	node    string
	wrk     string
	hello   string
	primary string
	seq     int // supervisors started, to name their files

	mu            sync.Mutex
	paddockListen []string // how paddock's workers took their socket, as seen
}

// listenPath tells, from a paddock worker's environment, how it took its
// socket: as one of paddock's cluster workers (an IPC channel), or by
// socket activation alone.
func listenPath(pid int) string {
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return "unknown"
	}
	cluster := false
	for _, kv := range bytes.Split(env, []byte{0}) {
		if bytes.HasPrefix(kv, []byte("NODE_UNIQUE_ID=")) {
			cluster = true
		}
	}
	if cluster {
		return "cluster workers: `listen({fd: 3})` answered by paddock over the cluster protocol (IPC channel)"
	}
	return "socket activation: `listen({fd: 3})` on the inherited socket (LISTEN_FDS, no IPC channel)"
}

func (b *bench) setup(ctx context.Context) error {
	var err error
	if b.paddock, err = filepath.Abs(b.o.paddock); err != nil {
		return err
	}
	if fi, err := os.Stat(b.paddock); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable paddock binary (build it: go build -o bin/paddock ./cmd/paddock)", b.o.paddock)
	}
	if b.node, err = exec.LookPath(b.o.node); err != nil {
		return fmt.Errorf("node: %v", err)
	}
	if b.node, err = filepath.Abs(b.node); err != nil {
		return err
	}
	dir, err := filepath.Abs(b.o.dir)
	if err != nil {
		return err
	}
	b.hello, b.primary = filepath.Join(dir, "hello.js"), filepath.Join(dir, "primary.js")
	for _, f := range []string{b.hello, b.primary} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("%v (run from the repository root, or pass -dir)", err)
		}
	}
	if b.wrk, err = findWrk(b.o.wrk); err != nil {
		return err
	}
	b.work, err = os.MkdirTemp("", "paddock-httpbench-")
	return err
}

// findWrk returns the path of wrk, or an error that says how to get it.
func findWrk(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s is not installed: install Debian's package (apt-get install wrk) or give its path with -wrk", name)
	}
	return p, nil
}

// server is a running supervisor with its workers, ready to serve.
type server struct {
	sup      *proc
	port     int
	countDir string
	workers  []int // worker pids
}

// start starts the supervisor of c and waits until its workers listen.
func (b *bench) start(ctx context.Context, c config) (*server, error) {
	b.seq++
	name := fmt.Sprintf("%d-%s", b.seq, strings.ReplaceAll(c.String(), " ", "-"))
	countDir := filepath.Join(b.work, name+"-counts")
	if err := os.Mkdir(countDir, 0o755); err != nil {
		return nil, err
	}
	cmd, err := b.command(c, name, countDir)
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(b.work, name+".log"))
	if err != nil {
		return nil, err
	}
	sup, err := b.procs.start(name, cmd, logFile)
	if err != nil {
		logFile.Close()
		return nil, err
	}
	srv := &server{sup: sup, countDir: countDir}
	return srv, b.waitListening(ctx, c, srv)
}

// command returns the command that runs the supervisor of c, named name,
// whose workers write their counts in countDir (for paddock, after
// writing its manifest).
func (b *bench) command(c config, name, countDir string) (*exec.Cmd, error) {
	var cmd *exec.Cmd
	env := cleanEnv()
	switch c.side {
	case "paddock":
		manifest := filepath.Join(b.work, name+".yaml")
		if err := os.WriteFile(manifest, []byte(b.manifest(c.policy, countDir)), 0o644); err != nil {
			return nil, err
		}
		// A control socket of its own: the benchmark never meets an
		// operator's supervisor.
		cmd = exec.Command(b.paddock, "run", "--log-format", "json", "--socket", filepath.Join(b.work, name+".sock"), manifest)
	case "node":
		cmd = exec.Command(b.node, b.primary)
		env = append(env, "BENCH_SCHED_POLICY="+c.policy, "BENCH_WORKERS="+strconv.Itoa(b.o.workers),
			"HOST=127.0.0.1", "PORT=0", "HELLO_COUNT_DIR="+countDir)
	}
	cmd.Env = env
	cmd.Dir = b.work
	return cmd, nil
}

// waitListening waits, up to 20 s, until every worker of srv counts (it
// listens) and the port is known, and fills in srv's port and workers.
func (b *bench) waitListening(ctx context.Context, c config, srv *server) error {
	sup := srv.sup
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if sup.exited() {
			return fmt.Errorf("%s exited before its workers listened: %v\n%s", c.side, sup.exitErr(), sup.tail())
		}
		counts, err := readCounts(srv.countDir)
		if err != nil {
			return err
		}
		for pid := range counts {
			b.procs.addWorker(pid)
		}
		port := sup.port(c.side, b.o.workers)
		if port > 0 && len(counts) >= b.o.workers {
			srv.port = port
			for pid := range counts {
				srv.workers = append(srv.workers, pid)
			}
			slices.Sort(srv.workers)
			if len(counts) > b.o.workers {
				return fmt.Errorf("%d workers started, %d asked for\n%s", len(counts), b.o.workers, sup.tail())
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: workers not listening after 20s (%d of %d ready)\n%s", c.side, len(counts), b.o.workers, sup.tail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// manifest is the paddock manifest for policy. Strings are written as JSON
// strings, which YAML reads as double-quoted scalars.
func (b *bench) manifest(policy, countDir string) string {
	q := func(s string) string {
		j, _ := json.Marshal(s)
		return string(j)
	}
	ipc := ""
	if b.o.paddockIPC != "" {
		ipc = "    ipc: " + b.o.paddockIPC + "\n"
	}
	return fmt.Sprintf(`# written by bench/httpbench
apps:
  hello:
    exec: %s
    execPath: %s
    instances: %d
    listen: ["127.0.0.1:0"]
    schedulingPolicy: %s
    env: {HELLO_COUNT_DIR: %s}
    restart: never
    killTimeout: 5s
`, q(b.hello), q(b.node), b.o.workers, policy, q(countDir)) + ipc
}

// stop stops a supervisor and whatever it left behind.
func (b *bench) stop(srv *server) {
	srv.sup.stop(8 * time.Second)
	b.procs.killWorkers()
}

// check reports an error when the supervisor or a worker has exited.
func (s *server) check() error {
	if s.sup.exited() {
		return fmt.Errorf("the supervisor exited during the measurement: %v\n%s", s.sup.exitErr(), s.sup.tail())
	}
	for _, pid := range s.workers {
		if !alive(pid) {
			return fmt.Errorf("worker %d exited during the measurement\n%s", pid, s.sup.tail())
		}
	}
	counts, err := readCounts(s.countDir)
	if err != nil {
		return err
	}
	if len(counts) != len(s.workers) {
		return fmt.Errorf("%d workers wrote counts, %d were started (a worker was restarted?)\n%s", len(counts), len(s.workers), s.sup.tail())
	}
	return nil
}

// cleanEnv is this process's environment without the socket-activation
// variables, which must not reach Node's primary or paddock by accident.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET", "NODE_CLUSTER_SCHED_POLICY", "HELLO_COUNT_DIR":
			continue
		}
		env = append(env, kv)
	}
	return env
}
