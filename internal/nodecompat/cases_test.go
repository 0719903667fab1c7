package nodecompat

import (
	"encoding/json"
	"strings"
)

// A parityCase is one worker-side behaviour of Node's cluster, taken from
// one of Node's test-cluster-* tests: a worker script in testdata/cases and
// what its primary does around it. Both primaries run every case the same
// way: they start Instances workers of Script with Env, then carry out
// Steps in order, each when its trigger has happened, and Echo every
// message of the form {"echo": ...} back to the worker that sent it.
//
// The case passes when every worker started reported PASS (see
// testdata/common.js) and, with Exit set, every worker exited with the
// expected code.
type parityCase struct {
	// Name is the case's name in reports and in known-failures.txt.
	Name string
	// Script is the file in testdata/cases, without .js; default Name.
	Script string
	// From names the Node test (test/parallel unless it says otherwise) or
	// the item of issue 14 the case comes from.
	From string
	// Policy is the scheduling policy: "rr" (the default) or "none".
	Policy string
	// Instances is the number of workers started first; default 1.
	Instances int
	// Env is the workers' environment over the primary's own.
	Env map[string]string
	// PrimaryEnv is set in the primary's own environment.
	PrimaryEnv map[string]string
	// Args and ExecArgv are the workers' arguments and Node options.
	Args, ExecArgv []string
	// Cwd is the workers' working directory, relative to the case's
	// directory, which is created; default the case's directory.
	Cwd string
	// Serialization is the IPC channel's serialization: "" (json) or
	// "advanced".
	Serialization string
	// RefusedByPaddock, when set, is a regular expression for the error
	// paddock refuses the case's manifest with, by design (a Node feature
	// paddock does not offer, and says so): under paddock the case passes
	// when paddock exits before it starts a worker and its output matches;
	// under Node's primary the case runs as any other.
	RefusedByPaddock string
	// Steps are what the primary does, in order.
	Steps []step
	// Exit, when not nil, is the exit code every worker must end with.
	Exit *int
	// IPv6 says the case needs IPv6 on the loopback interface.
	IPv6 bool
	// Slow marks a case that takes seconds even when it passes: it runs in
	// make test-node only.
	Slow bool
	// Relay, when not nil, makes the primary relay every message whose
	// Key is Value to every other worker, as @socket.io/cluster-adapter's
	// setupPrimary() does: Node's primary by cluster.on('message'),
	// paddock by ipc.relay.
	Relay *relayMatch
}

// relayMatch is the messages a primary relays: those whose Key is Value.
type relayMatch struct{ Key, Value string }

// A step is one thing a primary does, once On has happened.
type step struct {
	On trigger
	Do action
}

// A trigger is an event the primary saw: Online workers online (at least
// that many so far), a Message from Worker (0: any) equal to the JSON value,
// or the Exit of Worker.
type trigger struct {
	Online  int
	Worker  int
	Message string
	Exit    bool
}

// An action is what a primary does: fork one more worker, send Message (a
// JSON value) to Worker (0: every worker), disconnect every worker (Node's
// cluster.disconnect(); paddock: scale to 0), or disconnect the newest one
// (paddock: scale down by one).
type action struct {
	Op      string // "fork", "send", "disconnect-all", "disconnect-newest"
	Worker  int
	Message string
}

func onOnline(n int) trigger                 { return trigger{Online: n} }
func onMessage(worker int, v string) trigger { return trigger{Worker: worker, Message: v} }
func onExit(worker int) trigger              { return trigger{Worker: worker, Exit: true} }
func send(worker int, v string) action       { return action{Op: "send", Worker: worker, Message: v} }

var (
	disconnectAll    = action{Op: "disconnect-all"}
	disconnectNewest = action{Op: "disconnect-newest"}
)

func exit(code int) *int { return &code }

// bigMessage is what message-large.js expects from its primary: 1 MiB of
// text in {"big": ...}.
var bigMessage = `{"big":"` + strings.Repeat("abcdefghijklmnopqrstuvwxyz012345", 32*1024) + `"}`

// variants returns c once per scheduling policy, named NAME-rr and
// NAME-none, with Script NAME.
func variants(c parityCase) []parityCase {
	var out []parityCase
	for _, p := range []string{"rr", "none"} {
		v := c
		v.Script, v.Name, v.Policy = c.Name, c.Name+"-"+p, p
		out = append(out, v)
	}
	return out
}

// script returns the case's script name.
func (c parityCase) script() string {
	if c.Script != "" {
		return c.Script
	}
	return c.Name
}

// policy returns the case's scheduling policy.
func (c parityCase) policy() string {
	if c.Policy != "" {
		return c.Policy
	}
	return "rr"
}

// instances returns how many workers start first.
func (c parityCase) instances() int {
	if c.Instances > 0 {
		return c.Instances
	}
	return 1
}

// jsonEqual says whether two JSON texts hold the same value.
func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xs, _ := json.Marshal(x)
	ys, _ := json.Marshal(y)
	return string(xs) == string(ys)
}

// allCases returns every case, in the order of the report.
func allCases() []parityCase {
	var cs []parityCase
	add := func(c ...parityCase) { cs = append(cs, c...) }

	// Workers, their identity and their messages.
	add(variants(parityCase{Name: "basic", From: "test-cluster-basic.js, test-cluster-listening-port.js"})...)
	add(parityCase{Name: "net-listen-no-port", From: "test-cluster-net-listen.js", Exit: exit(0)})
	add(parityCase{Name: "worker-init", From: "test-cluster-worker-init.js", Exit: exit(0),
		Steps: []step{{onOnline(1), send(1, `"foo"`)}, {onMessage(1, `true`), disconnectAll}}})
	add(parityCase{Name: "worker-events", From: "test-cluster-worker-events.js", Exit: exit(2),
		Steps: []step{{onOnline(1), send(1, `"SOME MESSAGE"`)}}})
	add(parityCase{Name: "message-roundtrip", From: "test-cluster-message.js, test-cluster-fork-env.js"})
	add(parityCase{Name: "message-large", From: "test-cluster-message.js (1 MiB each way)",
		Steps: []step{{onMessage(1, `"sent-big"`), send(1, bigMessage)}}})
	add(parityCase{Name: "fork-env", From: "test-cluster-fork-env.js",
		Env:        map[string]string{"cluster_test_prop": "custom", "cluster_test_overwrite": "new"},
		PrimaryEnv: map[string]string{"cluster_test_overwrite": "old"}})
	add(parityCase{Name: "cwd", From: "test-cluster-cwd.js", Cwd: "sub"})
	add(parityCase{Name: "setup-args", From: "test-cluster-setup-primary-argv.js, test-cluster-setup-primary.js",
		Args: []string{"custom", "argv"}, ExecArgv: []string{"--no-deprecation"}})
	add(parityCase{Name: "advanced-serialization", From: "test-cluster-advanced-serialization.js",
		Serialization: "advanced",
		// Issue 14, cause 9: paddock speaks JSON only.
		RefusedByPaddock: `paddock\.yaml:[0-9]+:[0-9]+: apps\.parity\.serialization: "advanced" \(V8 serialization\) is not supported: ` +
			`paddock's IPC channel speaks Node's JSON serialization only`})

	// Disconnecting, and how workers end.
	add(parityCase{Name: "worker-isconnected", From: "test-cluster-worker-isconnected.js", Exit: exit(0),
		Steps: []step{{onMessage(1, `"readyToDisconnect"`), disconnectAll}}})
	add(parityCase{Name: "kill-disconnect", From: "test-cluster-kill-disconnect.js", Instances: 2, Exit: exit(0)})
	add(parityCase{Name: "call-and-destroy", From: "test-cluster-call-and-destroy.js", Exit: exit(0)})
	add(parityCase{Name: "worker-destroy", From: "test-cluster-worker-destroy.js", Instances: 2, Exit: exit(0)})
	add(parityCase{Name: "process-disconnect", From: "test-cluster-process-disconnect.js", Exit: exit(0)})
	add(parityCase{Name: "worker-disconnect", From: "test-cluster-worker-disconnect.js", Exit: exit(42),
		Steps: []step{{onMessage(1, `"listening"`), disconnectAll}}})
	add(parityCase{Name: "disconnect-sentinel", From: "test-cluster-worker-forced-exit.js", Exit: exit(42),
		Steps: []step{{onOnline(1), disconnectAll}}})
	add(parityCase{Name: "disconnect-leak", From: "test-cluster-disconnect-leak.js", Policy: "none", Exit: exit(0),
		Steps: []step{{onOnline(1), disconnectAll}}})
	add(parityCase{Name: "disconnect-idle", From: "test-cluster-disconnect-idle-worker.js", Instances: 2, Exit: exit(0),
		Steps: []step{{onOnline(2), disconnectAll}}})
	add(parityCase{Name: "disconnect-unshared-tcp", From: "test-cluster-disconnect-unshared-tcp.js", Policy: "none",
		Instances: 2, Exit: exit(0),
		Steps: []step{{onMessage(1, `"bound"`), disconnectNewest}, {onExit(2), disconnectAll}}})
	add(parityCase{Name: "disconnect-unshared-udp", From: "test-cluster-disconnect-unshared-udp.js",
		Instances: 2, Exit: exit(0),
		Steps: []step{{onMessage(1, `"bound"`), disconnectNewest}, {onExit(2), disconnectAll}}})
	add(parityCase{Name: "wait-server-close", From: "test-cluster-worker-wait-server-close.js", Exit: exit(0),
		Steps: []step{{onMessage(1, `"connected"`), disconnectAll}}})
	add(parityCase{Name: "concurrent-disconnect", From: "test-cluster-concurrent-disconnect.js", Instances: 2, Exit: exit(0),
		Steps: []step{{onOnline(2), send(1, `"disconnect"`)}, {onOnline(2), send(2, `"destroy"`)}}})
	add(parityCase{Name: "worker-exit", From: "test-cluster-worker-exit.js", Exit: exit(42)})

	// Servers: ports, handles, addresses.
	add(parityCase{Name: "shared-leak", From: "test-cluster-shared-leak.js", Policy: "none", Instances: 2, Exit: exit(0),
		Steps: []step{{onMessage(2, `"connected"`), disconnectAll}}})
	add(variants(parityCase{Name: "server-restart", From: "test-cluster-server-restart-none.js, -rr.js",
		Instances: 2, Exit: exit(0)})...)
	add(variants(parityCase{Name: "child-index-net", From: "test-cluster-child-index-net.js", Exit: exit(0)})...)
	add(variants(parityCase{Name: "two-ports", From: "issue 14, cause 1"})...)
	add(variants(parityCase{Name: "same-port-twice", From: "issue 14, cause 1; test-cluster-bind-twice.js"})...)
	add(variants(parityCase{Name: "close-one-of-two", From: "issue 14, cause 1"})...)
	add(variants(parityCase{Name: "port-released", From: "issue 14, cause 2", Instances: 2})...)
	add(variants(parityCase{Name: "unix-released", From: "issue 14, cause 2"})...)
	add(variants(parityCase{Name: "eaddrinuse", From: "test-cluster-eaddrinuse.js, test-cluster-shared-handle-bind-error.js"})...)
	add(parityCase{Name: "ipc-throw", From: "test-cluster-ipc-throw.js", Exit: exit(0)})
	add(variants(parityCase{Name: "ipv6only", From: "test/sequential/test-cluster-net-listen-ipv6only-none.js, -rr.js",
		Instances: 3, IPv6: true})...)
	add(parityCase{Name: "ipv6only-false", From: "test-cluster-net-listen-ipv6only-false.js", Instances: 3, IPv6: true})
	add(variants(parityCase{Name: "address-default-host", From: "server.address() of listen(port)", IPv6: true})...)
	add(variants(parityCase{Name: "remote-address", From: "a connection's addresses in a worker"})...)
	add(variants(parityCase{Name: "spread", From: "every worker of a shared port serves", Instances: 2})...)
	add(variants(parityCase{Name: "host-mismatch", From: "a handle per address and port", Instances: 2})...)
	add(parityCase{Name: "exclusive-listen", From: "listen({exclusive: true}) bypasses the cluster", Instances: 2})

	// Unix sockets.
	// rr only: Node's SharedHandle ignores readableAll and writableAll, so
	// under none the socket keeps the primary's umask (Node 20).
	add(parityCase{Name: "pipe-readable-writable", From: "test-cluster-listen-pipe-readable-writable.js", Exit: exit(0)})
	add(variants(parityCase{Name: "relative-long-path", From: "test-cluster-net-listen-relative-path.js", Exit: exit(0)})...)
	add(parityCase{Name: "http-pipe", From: "test-cluster-http-pipe.js"})
	add(variants(parityCase{Name: "unix-address", From: "issue 14, cause 6"})...)
	add(variants(parityCase{Name: "unix-shared", From: "two workers on one unix socket", Instances: 2})...)

	// Round robin.
	add(parityCase{Name: "rr-domain-listen", From: "test-cluster-rr-domain-listen.js"})
	add(parityCase{Name: "rr-ref-unref", From: "test-cluster-rr-ref.js"})
	add(parityCase{Name: "rr-max-connections", From: "test-cluster-net-server-drop-connection.js", Instances: 2})
	add(parityCase{Name: "rr-stalled-worker", From: "issue 14, cause 7", Instances: 2, Slow: true})

	// Messages between workers, relayed by the primary.
	add(parityCase{Name: "relay-others", From: "issue 14, cause 8 (what @socket.io/cluster-adapter's setupPrimary() does)",
		Instances: 3, Env: map[string]string{"RELAY_PEERS": "2"}, Relay: &relayMatch{Key: "kind", Value: "relay"}})

	// Sockets a worker sends to its primary.
	add(parityCase{Name: "send-handle-twice", From: "test-cluster-send-handle-twice.js", Exit: exit(0)})
	add(parityCase{Name: "close-after-send", From: "test-cluster-net-send.js, test-cluster-send-handle-twice.js"})
	add(parityCase{Name: "getconnections-after-send", From: "issue 14, cause 3"})

	// UDP.
	add(parityCase{Name: "dgram-shared", From: "test-cluster-dgram-1.js", Instances: 4})
	add(parityCase{Name: "dgram-send", From: "test-cluster-dgram-2.js", Instances: 4})
	add(parityCase{Name: "dgram-fixed-port", From: "test-cluster-dgram-1.js, on a fixed port", Instances: 2})
	add(parityCase{Name: "dgram-reuse", From: "test-cluster-dgram-reuse.js", Exit: exit(0)})
	add(parityCase{Name: "dgram-ipv6only", From: "test-cluster-dgram-ipv6only.js", Exit: exit(0), IPv6: true})
	add(parityCase{Name: "child-index-dgram", From: "test-cluster-child-index-dgram.js", Exit: exit(0)})
	add(variants(parityCase{Name: "dgram-released", From: "issue 14, cause 4 (SharedHandle.remove)", Instances: 2})...)
	add(parityCase{Name: "dgram-string-port", From: "issue 14, cause 4: bind(process.env.PORT)", Instances: 2})
	return cs
}

// casesByName indexes cs by name.
func casesByName(cs []parityCase) map[string]parityCase {
	m := make(map[string]parityCase, len(cs))
	for _, c := range cs {
		m[c.Name] = c
	}
	return m
}

// isEcho says whether a worker's message asks to be echoed: {"echo": ...}.
func isEcho(m json.RawMessage) bool {
	var v map[string]json.RawMessage
	if json.Unmarshal(m, &v) != nil || len(v) != 1 {
		return false
	}
	_, ok := v["echo"]
	return ok && strings.HasPrefix(strings.TrimSpace(string(m)), "{")
}
