package supervisor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/paddock-sh/paddock/internal/notify"
	"github.com/paddock-sh/paddock/internal/testkit"
	"github.com/paddock-sh/paddock/internal/testkit/httpworker"
	"github.com/paddock-sh/paddock/manifest"
	"github.com/paddock-sh/paddock/procs"
	gworker "github.com/paddock-sh/paddock/worker"
	"go.uber.org/goleak"
)

// patience bounds every wait of these tests for something that must
// happen: only a failure makes a wait that long, however slow or loaded the
// machine. No test asserts on elapsed time, and timeouts in the manifests
// that a worker is expected to meet (readyTimeout, killTimeout) are at
// least this generous.
const patience = 60 * time.Second

// The test binary doubles as the worker program: with PADDOCK_TEST_HELPER
// set, TestMain runs a helper mode instead of the tests.
func TestMain(m *testing.M) {
	procs.ExecShim()
	if len(os.Args) > 1 && strings.HasPrefix(os.Args[1], "probe:") {
		probeHelper(os.Args[1]) // an exec health probe (health_test.go)
	}
	if mode := os.Getenv("PADDOCK_TEST_HELPER"); mode != "" {
		helper(mode)
		os.Exit(0)
	}
	// As the paddock binary does: descriptors inherited from whatever ran
	// the tests never reach a worker, and orphans of workers are
	// re-parented to this process and reaped by the supervisor.
	if err := procs.CloseOnExecInherited(); err != nil {
		fmt.Fprintln(os.Stderr, "close-on-exec:", err)
		os.Exit(1)
	}
	if err := procs.SetSubreaper(); err != nil {
		fmt.Fprintln(os.Stderr, "subreaper:", err)
		os.Exit(1)
	}
	testkit.ParseFlags(testkit.DefaultParallel)
	// lumberjack v2.2.1 starts a goroutine per log file that compresses
	// and removes rotated files, and never ends it.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("gopkg.in/natefinch/lumberjack%2ev2.(*Logger).millRun"))
}

// helper runs one worker behaviour:
//
//	serve               exit 0 on SIGTERM, else block
//	exit:N              exit with code N at once
//	exit:N:after=D      run for D, then exit with code N; with $STAMPS set,
//	                    append "start <unix ns>" and "exit <unix ns>" lines
//	                    to it as it starts and just before it exits
//	ignore-term         ignore SIGTERM; spawn a grandchild that ignores it too
//	                    and write the grandchild's pid to $PIDFILE
//	orphan              start a grandchild in its own session that lives 300ms,
//	                    write its pid to $PIDFILE, exit 0 at once
//	print               print two lines on stdout and one on stderr, then serve
//	grandchild          ignore SIGTERM and block
//	sleep:D             sleep D, then exit 0
//	notify-serve:D      after D, send READY=1 to $NOTIFY_SOCKET, then serve
//	notify-on-usr1      send READY=1 to $NOTIFY_SOCKET on SIGUSR1; serve
//	notify-send-hold    send READY=1 to $NOTIFY_SOCKET, print "sent", then
//	                    hold until its stdin is closed (a process that is
//	                    not a worker, or a worker's child)
//	notify-from-child   start a child (notify-send-hold) in the worker's
//	                    process group, which lives as long as the worker;
//	                    serve
//	notify-claim        on SIGUSR1, send READY=1 with credentials that claim
//	                    the pid in $CLAIM_FILE and print "claim of pid N:
//	                    sent", or "...: EPERM" when the kernel refuses; then
//	                    send "MAINPID=N\nREADY=1" as itself; serve
//	go-worker           a worker built on package worker: HTTP on
//	                    worker.Listen("tcp", "127.0.0.1:$PORT") answering
//	                    "<id> <pid> <VERSION>", reporting its ids and echoing
//	                    messages, leaving on disconnect
//	garbage             write a cluster message then garbage on the IPC
//	                    channel, then serve
//	deaf-query          never read the IPC channel; on SIGUSR1 send a
//	                    queryServer for 127.0.0.1:$PORT on it; else serve
//	late-query          speak the cluster protocol itself: ask for a server
//	                    once leaving (see lateQuery), exit 3 if answered
//	go-systemd          take the sockets and report readiness with
//	                    github.com/coreos/go-systemd (activation, daemon), then
//	                    answer "<worker id> <pid> <LISTEN_PID> <names>" over HTTP
//	udp-echo            answer datagrams on descriptor 3 (see serveUDP)
//	http                serve HTTP on the LISTEN_FDS sockets, answering
//	                    "<worker id> <pid> <LISTEN_PID>"; drain and exit 0 on
//	                    SIGTERM
//	states              serve HTTP on descriptor 3 at once, answering
//	                    "<state> <worker id>": unready, then ready from just
//	                    before it sends READY=1 (see serveStates)
//	last-words:N:C      print "out 1" ... "out N" on stdout, then a line of
//	                    2000 "é" and "last words <worker id>" on stderr,
//	                    then exit with code C
//	watchdog-ping       send READY=1, then WATCHDOG=1 every twentieth of
//	                    $WATCHDOG_USEC; the worker whose id is
//	                    $PING_LIMIT_WORKER stops after $PING_LIMIT pings;
//	                    serve
//	grow                the worker whose id is $GROW_WORKER allocates and
//	                    touches $GROW_MIB MiB; serve
//	release             a release of an HTTP server answering "<worker id>
//	                    <pid> <VERSION>", as $RELEASE says (see serveRelease)
//	health              serve HTTP with a health path (see serveHealth in
//	                    health_test.go)
//	relay               flood relayed messages on request, or, as worker
//	                    $DEAF_WORKER, never read the IPC channel (see
//	                    serveRelay in relay_test.go)
func helper(mode string) {
	switch {
	case mode == "serve":
		serve()
	case strings.HasPrefix(mode, "exit:"):
		parts := strings.Split(mode, ":")
		code, _ := strconv.Atoi(parts[1])
		stamp("start")
		if len(parts) > 2 {
			d, _ := time.ParseDuration(strings.TrimPrefix(parts[2], "after="))
			time.Sleep(d)
		}
		stamp("exit")
		os.Exit(code)
	case mode == "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "PADDOCK_TEST_HELPER=grandchild")
		if err := cmd.Start(); err != nil {
			os.Exit(3)
		}
		writePID(cmd.Process.Pid)
		select {}
	case mode == "grandchild":
		signal.Ignore(syscall.SIGTERM)
		select {}
	case mode == "orphan":
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "PADDOCK_TEST_HELPER=sleep:300ms")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			os.Exit(3)
		}
		writePID(cmd.Process.Pid)
		os.Exit(0)
	case strings.HasPrefix(mode, "sleep:"):
		d, _ := time.ParseDuration(strings.TrimPrefix(mode, "sleep:"))
		time.Sleep(d)
	case strings.HasPrefix(mode, "notify-serve:"):
		d, _ := time.ParseDuration(strings.TrimPrefix(mode, "notify-serve:"))
		time.Sleep(d)
		if sent, err := notify.Send("READY=1\nSTATUS=serving"); !sent || err != nil {
			fmt.Fprintln(os.Stderr, "notify:", sent, err)
			os.Exit(6)
		}
		serve()
	case mode == "notify-on-usr1":
		onUSR1(func() { sendNotify("READY=1") })
		serve()
	case mode == "notify-send-hold":
		sendNotify("READY=1")
		fmt.Println("sent")
		_, _ = io.Copy(io.Discard, os.Stdin) // until the other end closes it
	case mode == "notify-from-child":
		r, w, err := os.Pipe()
		if err != nil {
			os.Exit(3)
		}
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "PADDOCK_TEST_HELPER=notify-send-hold")
		cmd.Stdin = r // held open by w, which lives as long as this process
		if err := cmd.Start(); err != nil {
			os.Exit(3)
		}
		r.Close()
		defer w.Close()
		serve()
	case mode == "notify-claim":
		onUSR1(claimReady)
		serve()
	case mode == "http":
		serveHTTP()
	case mode == "udp-echo":
		serveUDP()
	case mode == "states":
		serveStates()
	case mode == "health":
		serveHealth()
	case mode == "garbage":
		fd, _ := strconv.Atoi(os.Getenv("NODE_CHANNEL_FD"))
		ch := os.NewFile(uintptr(fd), "channel")
		ch.Write([]byte("{\"cmd\":\"NODE_CLUSTER\",\"act\":\"online\",\"seq\":0}\n\x00\xff garbage {{{\n"))
		serve()
	case mode == "deaf-query":
		fd, _ := strconv.Atoi(os.Getenv("NODE_CHANNEL_FD"))
		ch := os.NewFile(uintptr(fd), "channel")
		usr1 := make(chan os.Signal, 1)
		signal.Notify(usr1, syscall.SIGUSR1)
		go func() {
			<-usr1
			ch.Write([]byte(`{"cmd":"NODE_CLUSTER","act":"queryServer","index":0,"data":null,"address":"127.0.0.1","port":` +
				os.Getenv("PORT") + `,"addressType":4,"backlog":511,"seq":0}` + "\n"))
		}()
		serve()
	case mode == "late-query":
		lateQuery()
	case mode == "go-systemd":
		serveGoSystemd()
	case mode == "go-worker":
		serveGoWorker()
	case mode == "relay":
		serveRelay()
	case mode == "release":
		serveRelease()
	case strings.HasPrefix(mode, "last-words:"):
		parts := strings.Split(mode, ":")
		n, _ := strconv.Atoi(parts[1])
		code, _ := strconv.Atoi(parts[2])
		for i := 1; i <= n; i++ {
			fmt.Printf("out %d\n", i)
		}
		fmt.Fprintln(os.Stderr, strings.Repeat("é", 2000))
		fmt.Fprintf(os.Stderr, "last words %s\n", os.Getenv("PADDOCK_WORKER_ID"))
		os.Exit(code)
	case mode == "watchdog-ping":
		pingWatchdog()
		serve()
	case mode == "grow":
		if os.Getenv("PADDOCK_WORKER_ID") == os.Getenv("GROW_WORKER") {
			n, _ := strconv.Atoi(os.Getenv("GROW_MIB"))
			growMemory(n)
		}
		serve()
	case mode == "echo-usr1":
		// Each SIGUSR1: a numbered line on stdout and on stderr.
		id, n := os.Getenv("PADDOCK_WORKER_ID"), 0
		var mu sync.Mutex
		onUSR1(func() {
			mu.Lock()
			n++
			fmt.Printf("usr1 %d from %s\n", n, id)
			fmt.Fprintf(os.Stderr, "usr1 %d on stderr from %s\n", n, id)
			mu.Unlock()
		})
		serve()
	case mode == "print":
		id := os.Getenv("PADDOCK_WORKER_ID")
		fmt.Printf("hello from %s\nsecond line from %s\n", id, id)
		fmt.Fprintf(os.Stderr, "complaint from %s", id) // no final newline
		serve()
	default:
		fmt.Fprintln(os.Stderr, "unknown helper mode", mode)
		os.Exit(2)
	}
}

// serve exits 0 on SIGTERM. Once its handler is in place it creates
// $READY_DIR/ready.<worker id>, so that a test can wait for it before asking
// for a graceful stop.
func serve() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM)
	if dir := os.Getenv("READY_DIR"); dir != "" {
		f, err := os.Create(filepath.Join(dir, "ready."+os.Getenv("PADDOCK_WORKER_ID")))
		if err != nil {
			os.Exit(5)
		}
		f.Close()
	}
	<-c
	os.Exit(0)
}

// sendNotify sends state to $NOTIFY_SOCKET, and exits 6 if it cannot.
func sendNotify(state string) {
	if sent, err := notify.Send(state); !sent || err != nil {
		fmt.Fprintln(os.Stderr, "notify:", sent, err)
		os.Exit(6)
	}
}

// onUSR1 runs f, in a goroutine of its own, on each SIGUSR1.
func onUSR1(f func()) {
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	go func() {
		for range usr1 {
			f()
		}
	}()
}

// claimReady is the notify-claim worker's answer to SIGUSR1.
func claimReady() {
	file := os.Getenv("CLAIM_FILE")
	b, err := os.ReadFile(file)
	if err != nil {
		os.Exit(17)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		os.Exit(17)
	}
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		os.Exit(17)
	}
	defer syscall.Close(fd)
	creds := syscall.UnixCredentials(&syscall.Ucred{Pid: int32(pid), Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid())})
	result := "sent"
	err = syscall.Sendmsg(fd, []byte("READY=1"), creds, &syscall.SockaddrUnix{Name: os.Getenv("NOTIFY_SOCKET")}, 0)
	if errors.Is(err, syscall.EPERM) {
		result = "EPERM"
	} else if err != nil {
		result = err.Error()
	}
	fmt.Printf("claim of pid %d: %s\n", pid, result)
	sendNotify(fmt.Sprintf("MAINPID=%d\nREADY=1", pid))
}

// stamp appends "<what> <unix ns>" to $STAMPS, if set.
func stamp(what string) {
	path := os.Getenv("STAMPS")
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		os.Exit(15)
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "%s %d\n", what, time.Now().UnixNano()); err != nil {
		os.Exit(16)
	}
}

func writePID(pid int) {
	if err := testkit.WriteFile(os.Getenv("PIDFILE"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		os.Exit(4)
	}
}

// harness runs a Supervisor over manifests written to a temporary directory.
type harness struct {
	t      testing.TB
	dir    string
	sup    *Supervisor
	events chan Event
	out    *testkit.Buffer
	cancel context.CancelFunc
	done   chan error
	// seen holds every event received so far; claimed marks those a
	// waitEvent returned.
	seen    []Event
	claimed map[int]bool
}

// self is the absolute path of the test binary, for `exec:` in manifests.
func self(t testing.TB) string {
	t.Helper()
	p, err := filepath.Abs(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// load writes yaml to dir and loads it. $SELF in yaml stands for the test
// binary, $DIR for dir.
func load(t testing.TB, dir, yaml string) *manifest.Set {
	t.Helper()
	path := filepath.Join(dir, "paddock.yaml")
	yaml = strings.NewReplacer("$SELF", self(t), "$DIR", dir).Replace(yaml)
	if err := testkit.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	// The file is written and closed above with no fork of this process in
	// between (testkit.WriteFile), and nothing else opens it; yet once, in
	// a run of 15 × the health tests in parallel, the kernel still counted
	// a writer when the lease was asked for, for a moment. What this
	// reader does with a file a writer has open is the manifest package's
	// to test; here it is a file known to be whole: read it again.
	var set *manifest.Set
	var err error
	testkit.WaitFor(t, "the manifest without a writer", func() bool {
		set, err = manifest.Load([]string{path}, manifest.CurrentHost())
		return !manifest.IsOpenForWriting(err)
	})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return set
}

func start(t testing.TB, yaml string) *harness {
	t.Helper()
	return startWith(t, yaml, nil)
}

// startReapingAll is start with the Reaper paddock itself runs, which reaps
// every child of this process, orphans re-parented to it included. A test
// that uses it must not call t.Parallel: it would take the exits of the
// other tests' workers and commands.
func startReapingAll(t testing.TB, yaml string) *harness {
	t.Helper()
	return startWith(t, yaml, func(_ *harness, o *Options) { o.Reaper = &procs.Reaper{} })
}

// startWatching starts a supervisor that watches its manifest file and
// reloads it after debounce, and waits until it watches.
func startWatching(t testing.TB, yaml string, debounce time.Duration) *harness {
	t.Helper()
	h := startWith(t, yaml, func(h *harness, o *Options) {
		path := filepath.Join(h.dir, "paddock.yaml")
		o.Watch = []string{path}
		o.ReloadDebounce = debounce
		o.Load = func() (*manifest.Set, error) { return manifest.Load([]string{path}, manifest.CurrentHost()) }
	})
	h.waitEvent("watching", isType(EventWatching))
	return h
}

// write replaces the manifest atomically, as editors do ($SELF and $DIR
// expanded as in load).
func (h *harness) write(yaml string) {
	h.t.Helper()
	yaml = strings.NewReplacer("$SELF", self(h.t), "$DIR", h.dir).Replace(yaml)
	tmp := filepath.Join(h.dir, ".paddock.yaml.tmp")
	if err := testkit.WriteFile(tmp, []byte(yaml), 0o644); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(h.dir, "paddock.yaml")); err != nil {
		h.t.Fatal(err)
	}
}

func startWith(t testing.TB, yaml string, configure func(*harness, *Options)) *harness {
	t.Helper()
	h := &harness{t: t, dir: t.TempDir(), events: make(chan Event, 10000), out: &testkit.Buffer{}, done: make(chan error, 1), claimed: map[int]bool{}}
	set := load(t, h.dir, yaml)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	opts := Options{
		Logger: logger,
		Stdout: h.out,
		Stderr: h.out,
		// Many supervisors run at once in this process (t.Parallel),
		// beside the tests' own commands: each reaps its own workers
		// alone. A test of orphan reaping sets a Reaper of its own (see
		// startReapingAll) and does not run in parallel.
		Reaper: &procs.Reaper{OwnChildrenOnly: true},
		OnEvent: func(e Event) {
			select {
			case h.events <- e:
			default:
				t.Error("event buffer full")
			}
		},
	}
	if configure != nil {
		configure(h, &opts)
	}
	h.sup = New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- h.sup.Run(ctx, set) }()
	t.Cleanup(func() {
		h.cancel()
		select {
		case <-h.done:
		case <-time.After(3 * patience):
			h.sup.Kill()
			t.Error("supervisor did not stop")
			<-h.done
		}
	})
	return h
}

// apply loads yaml and applies it to the running supervisor.
func (h *harness) apply(yaml string) {
	h.t.Helper()
	set := load(h.t, h.dir, yaml)
	if _, err := h.sup.Apply(context.Background(), set); err != nil {
		h.t.Fatal(err)
	}
}

// stop cancels Run and returns its result.
func (h *harness) stop() error {
	h.t.Helper()
	h.cancel()
	select {
	case err := <-h.done:
		h.done <- err // for Cleanup
		return err
	case <-time.After(3 * patience):
		h.t.Fatal("supervisor did not stop")
		return nil
	}
}

// waitEvent returns the earliest event not returned before that matches,
// waiting for it if need be, and fails the test after a generous deadline.
func (h *harness) waitEvent(what string, match func(Event) bool) Event {
	h.t.Helper()
	for i, e := range h.seen {
		if !h.claimed[i] && match(e) {
			h.claimed[i] = true
			return e
		}
	}
	deadline := time.After(patience)
	for {
		select {
		case e := <-h.events:
			h.seen = append(h.seen, e)
			if match(e) {
				h.claimed[len(h.seen)-1] = true
				return e
			}
		case <-deadline:
			h.t.Fatalf("timed out waiting for %s; events so far: %s", what, describe(h.seen))
		}
	}
}

// drain moves the events received so far into h.seen, for tests that
// check what happened as a whole.
func (h *harness) drain() []Event {
	for {
		select {
		case e := <-h.events:
			h.seen = append(h.seen, e)
		default:
			return h.seen
		}
	}
}

func describe(es []Event) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "\n  %s %s/%d pid=%d code=%d signal=%s intended=%v delay=%s attempt=%d %s",
			e.Type, e.App, e.Worker, e.PID, e.ExitCode, e.Signal, e.Intended, e.Delay, e.Attempt, e.Detail)
	}
	return b.String()
}

func isType(typ string) func(Event) bool {
	return func(e Event) bool { return e.Type == typ }
}

// waitWorkers polls until the supervisor reports a state that cond accepts.
func (h *harness) waitWorkers(what string, cond func([]WorkerInfo) bool) []WorkerInfo {
	h.t.Helper()
	deadline := time.Now().Add(patience)
	for {
		ws, err := h.sup.Workers(context.Background())
		if err != nil {
			h.t.Fatal(err)
		}
		if cond(ws) {
			return ws
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s; workers: %+v", what, ws)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitReady waits until each worker in ws has its signal handler in place
// (helper mode serve with READY_DIR=$DIR).
func (h *harness) waitReady(ws []WorkerInfo) {
	h.t.Helper()
	deadline := time.Now().Add(patience)
	for _, w := range ws {
		for {
			if _, err := os.Stat(filepath.Join(h.dir, "ready."+strconv.Itoa(w.ID))); err == nil {
				break
			}
			if time.Now().After(deadline) {
				h.t.Fatalf("%s/%d never became ready", w.App, w.ID)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

func running(app string, n int) func([]WorkerInfo) bool {
	return func(ws []WorkerInfo) bool {
		c := 0
		for _, w := range ws {
			if w.App == app && w.PID != 0 && w.Phase == 0 {
				c++
			}
		}
		return c == n && len(ws) == n
	}
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// exists reports whether pid has a /proc entry at all (zombies included).
func exists(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return !errors.Is(err, os.ErrNotExist)
}

func waitGone(t testing.TB, pid int, what string) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for exists(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("%s (pid %d) still exists; alive=%v", what, pid, alive(pid))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func readPID(t testing.TB, path string) int {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		b, err := os.ReadFile(path)
		if err == nil && len(b) > 0 {
			pid, err := strconv.Atoi(string(b))
			if err != nil {
				t.Fatal(err)
			}
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pid in %s", path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// environ returns the environment process pid was started with, and fails
// the test if a name appears twice in it: a program would see only one of
// the values (getenv returns the first), a reader of the map the other.
//
// A worker's start returns once the kernel switched it to the new program,
// and for a moment after that /proc shows an empty environment (the kernel
// sets it up next): environ waits until there is one.
func environ(t testing.TB, pid int) map[string]string {
	t.Helper()
	var b []byte
	deadline := time.Now().Add(patience)
	for {
		var err error
		if b, err = os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid)); err != nil {
			t.Fatal(err)
		}
		if len(b) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d has no environment", pid)
		}
		time.Sleep(time.Millisecond)
	}
	env := map[string]string{}
	for _, kv := range bytes.Split(b, []byte{0}) {
		if k, v, ok := strings.Cut(string(kv), "="); ok {
			if prev, dup := env[k]; dup {
				t.Errorf("pid %d has %s twice in its environment: %q and %q", pid, k, prev, v)
			}
			env[k] = v
		}
	}
	return env
}

// serveHTTP is a worker of the systemd socket-activation kind. On SIGTERM it
// stops accepting, lets every connection it accepted finish its request,
// and exits 0. (http.Server.Shutdown is not used: a request whose headers
// arrive after Shutdown began is dropped unanswered, on a connection that
// was accepted before.)
func serveHTTP() {
	if os.Getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) {
		fmt.Fprintln(os.Stderr, "LISTEN_PID", os.Getenv("LISTEN_PID"), "is not my pid", os.Getpid())
		os.Exit(7)
	}
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n < 1 {
		os.Exit(8)
	}
	id := os.Getenv("PADDOCK_WORKER_ID")
	var conns sync.WaitGroup
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s %d %s\n", id, os.Getpid(), os.Getenv("LISTEN_PID"))
		}),
		ConnState: httpworker.TrackConns(&conns),
	}
	var listeners []net.Listener
	var serving sync.WaitGroup
	for i := 0; i < n; i++ {
		f := os.NewFile(uintptr(3+i), "listen")
		l, err := net.FileListener(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(9)
		}
		f.Close()
		listeners = append(listeners, l)
		serving.Go(func() { srv.Serve(l) })
	}
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM)
	if dir := os.Getenv("READY_DIR"); dir != "" {
		f, _ := os.Create(filepath.Join(dir, "ready."+id))
		f.Close()
	}
	<-c
	srv.SetKeepAlivesEnabled(false)
	for _, l := range listeners {
		l.Close()
	}
	serving.Wait() // no connection is accepted after this
	drained := make(chan struct{})
	go func() { conns.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(patience):
	}
	os.Exit(0)
}

// serveGoSystemd is a worker written against go-systemd, the reference Go
// implementation of socket activation and sd_notify: paddock must look like
// systemd to it.
func serveGoSystemd() {
	listenPID := os.Getenv("LISTEN_PID")
	named, err := activation.ListenersWithNames()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(10)
	}
	var names []string
	var ls []net.Listener
	for name, l := range named {
		names = append(names, name)
		ls = append(ls, l...)
	}
	sort.Strings(names)
	if len(ls) == 0 {
		fmt.Fprintln(os.Stderr, "go-systemd found no sockets")
		os.Exit(11)
	}
	id := os.Getenv("PADDOCK_WORKER_ID")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %d %s %s\n", id, os.Getpid(), listenPID, strings.Join(names, ","))
	})}
	for _, l := range ls {
		go srv.Serve(l)
	}
	if ok, err := daemon.SdNotify(false, daemon.SdNotifyReady); !ok || err != nil {
		fmt.Fprintln(os.Stderr, "sd_notify:", ok, err)
		os.Exit(12)
	}
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM)
	<-c
	os.Exit(0)
}

// serveGoWorker is pidWorker (cluster_test.go) written in Go with package
// worker.
func serveGoWorker() {
	l, err := gworker.Listen("tcp", "127.0.0.1:"+os.Getenv("PORT"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(13)
	}
	var conns sync.WaitGroup
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%d %d %s\n", gworker.ID(), os.Getpid(), os.Getenv("VERSION"))
		}),
		ConnState: httpworker.TrackConns(&conns),
	}
	srv.SetKeepAlivesEnabled(true)
	served := make(chan struct{})
	go func() { srv.Serve(l); close(served) }()
	gworker.Send(map[string]any{"clusterId": gworker.ID(), "paddockId": os.Getenv("PADDOCK_WORKER_ID")})
	go func() {
		for m := range gworker.Messages() {
			gworker.Send(map[string]json.RawMessage{"echo": m})
		}
	}()
	<-gworker.Disconnecting()
	srv.SetKeepAlivesEnabled(false)
	<-served
	conns.Wait()
	os.Exit(0)
}

// pingWatchdog is the watchdog-ping worker: READY=1, then WATCHDOG=1 from
// a goroutine, 20 times per period.
func pingWatchdog() {
	usec, err := strconv.Atoi(os.Getenv("WATCHDOG_USEC"))
	if err != nil || usec <= 0 || os.Getenv("WATCHDOG_PID") != strconv.Itoa(os.Getpid()) {
		fmt.Fprintln(os.Stderr, "no watchdog for this process:", os.Getenv("WATCHDOG_USEC"), os.Getenv("WATCHDOG_PID"))
		os.Exit(18)
	}
	limit := -1
	if os.Getenv("PADDOCK_WORKER_ID") == os.Getenv("PING_LIMIT_WORKER") {
		limit, _ = strconv.Atoi(os.Getenv("PING_LIMIT"))
	}
	sendNotify("READY=1")
	go func() {
		for n := 0; limit < 0 || n < limit; n++ {
			sendNotify("WATCHDOG=1")
			time.Sleep(time.Duration(usec) * time.Microsecond / 20)
		}
	}()
}

// grown keeps the grow worker's memory reachable.
var grown [][]byte

// growMemory allocates n MiB and writes to each of its pages, so that
// they are resident.
func growMemory(n int) {
	for range n {
		b := make([]byte, 1<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		grown = append(grown, b)
	}
}
