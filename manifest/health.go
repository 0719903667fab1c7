package manifest

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// This file holds `healthCheck:`: its types, its decoding, its validation
// and the resolution of an exec probe's program.

// Defaults of a healthCheck's fields (Kubernetes' are the same: periodSeconds
// 10, timeoutSeconds 1, failureThreshold 3, initialDelaySeconds 0).
const (
	DefaultHealthInterval         = 10 * time.Second
	DefaultHealthTimeout          = time.Second
	DefaultHealthFailureThreshold = 3
	DefaultHealthStartPeriod      = time.Duration(0)
	DefaultHealthPath             = "/"
)

// MinHealthInterval bounds healthCheck.interval: probing faster costs
// paddock and the workers more than it tells (200 workers probed every
// 100ms are 2000 probes a second).
const MinHealthInterval = 100 * time.Millisecond

// Probe kinds: what a health check does, and the readiness modes that wait
// for its first pass.
const (
	ProbeHTTP = "http"
	ProbeTCP  = "tcp"
	ProbeExec = "exec"
)

// Where an http or tcp probe connects (ProbePort.From).
const (
	// PortListen: the app's first TCP `listen:` address. Under rr and
	// sticky, for workers with an IPC channel, paddock hands the probe's
	// connection to the worker it judges, as it hands out the address's
	// connections.
	PortListen = "listen"
	// PortWorker: a loopback socket of the worker's own that paddock
	// binds (127.0.0.1, a port the kernel chooses) and hands the worker
	// as an extra descriptor, PADDOCK_HEALTH_FD, not counted in
	// LISTEN_FDS; PADDOCK_HEALTH_ADDR names it.
	PortWorker = "worker"
)

// HealthCheck is an app's `healthCheck:`: a probe that paddock runs against
// each worker every Interval, the first StartPeriod after the worker
// started. A worker that fails FailureThreshold probes in a row is
// replaced, a new worker first (within the app's rollout.maxSurge). Exactly
// one of HTTP, TCP and Exec is set.
type HealthCheck struct {
	// HTTP probes with a GET of Path: a 2xx or 3xx status passes.
	HTTP *HTTPProbe `yaml:"http"`
	// TCP probes by connecting: the worker accepting the connection
	// passes. `tcp: true` is `tcp: {port: listen}`.
	TCP *TCPProbe `yaml:"tcp"`
	// Exec runs this program (argument vector, no shell) in the worker's
	// environment, working directory and identity, with PADDOCK_APP,
	// PADDOCK_WORKER_ID and PADDOCK_WORKER_PID: exit 0 passes.
	Exec []string `yaml:"exec"`
	// Interval is the time between the starts of two probes of a worker.
	// Default 10s; at least MinHealthInterval.
	Interval time.Duration `yaml:"interval"`
	// Timeout bounds one probe: a probe still waiting then fails (an exec
	// probe's process group gets SIGKILL). Default 1s; more than 0. A
	// worker has one probe at a time: the next starts Interval after the
	// previous one started, or when it ends if that is later.
	Timeout time.Duration `yaml:"timeout"`
	// FailureThreshold is how many probes in a row must fail for the
	// worker to be replaced. Default 3; at least 1.
	FailureThreshold int `yaml:"failureThreshold"`
	// StartPeriod is how long after its start a worker is first probed.
	// Default 0.
	StartPeriod time.Duration `yaml:"startPeriod"`

	// invalid says decoding found a problem in it (reported then):
	// Validate says nothing more of it.
	invalid bool
}

// HTTPProbe is `healthCheck.http:`.
type HTTPProbe struct {
	// Path is the request's path (and query). Default "/".
	Path string `yaml:"path"`
	// Port is where the probe connects. Default `listen`.
	Port ProbePort `yaml:"port"`
}

// TCPProbe is `healthCheck.tcp:`.
type TCPProbe struct {
	// Port is where the probe connects. Default `listen`.
	Port ProbePort `yaml:"port"`
}

// ProbePort is where an http or tcp probe connects: From is PortListen or
// PortWorker, or empty when Number, a TCP port on 127.0.0.1 (or on the
// host of the `listen:` address with that port), is fixed.
type ProbePort struct {
	From   string
	Number int
}

// String returns the port as a manifest writes it.
func (p ProbePort) String() string {
	if p.From != "" {
		return p.From
	}
	return strconv.Itoa(p.Number)
}

// Kind returns ProbeHTTP, ProbeTCP or ProbeExec; "" when no probe is set.
func (h *HealthCheck) Kind() string {
	switch {
	case h == nil:
		return ""
	case h.HTTP != nil:
		return ProbeHTTP
	case h.TCP != nil:
		return ProbeTCP
	case len(h.Exec) > 0:
		return ProbeExec
	}
	return ""
}

// Port returns where an http or tcp probe connects; the zero ProbePort
// for an exec probe.
func (h *HealthCheck) Port() ProbePort {
	switch {
	case h == nil:
		return ProbePort{}
	case h.HTTP != nil:
		return h.HTTP.Port
	case h.TCP != nil:
		return h.TCP.Port
	}
	return ProbePort{}
}

// ProbeReadiness reports whether the app's readiness waits for its
// health check's first pass (readiness http, tcp or exec).
func (a *App) ProbeReadiness() bool {
	switch a.Readiness {
	case ProbeHTTP, ProbeTCP, ProbeExec:
		return true
	}
	return false
}

// HealthListen returns the `listen:` address an http or tcp probe of a
// connects to, and true, when its port is `listen` or the port of one of
// the app's TCP `listen:` addresses: the first TCP address for `listen`.
func (a *App) HealthListen() (Listen, bool) {
	p := a.HealthCheck.Port()
	for _, ln := range a.Listen {
		if ln.Network != "tcp" {
			continue
		}
		if p.From == PortListen || (p.From == "" && p.Number != 0 && ln.Port() == p.Number) {
			return ln, true
		}
	}
	return Listen{}, false
}

// Dispatched reports whether paddock hands the connections of a's
// listening sockets to its workers itself (schedulingPolicy rr or sticky,
// workers with an IPC channel): then it can hand a probe's connection to
// the one worker the probe judges.
func (a *App) Dispatched() bool {
	return (a.SchedulingPolicy == "rr" || a.SchedulingPolicy == "sticky") && a.HasChannel()
}

// newHealthCheck returns a healthCheck with its defaults.
func newHealthCheck() *HealthCheck {
	return &HealthCheck{Interval: DefaultHealthInterval, Timeout: DefaultHealthTimeout,
		FailureThreshold: DefaultHealthFailureThreshold, StartPeriod: DefaultHealthStartPeriod}
}

// decodeHealthCheck decodes `healthCheck:`.
func decodeHealthCheck(f *fieldDecoder, n *yaml.Node) {
	if f.app.HealthCheck == nil {
		f.app.HealthCheck = newHealthCheck()
	}
	const keys = "healthCheck has http, tcp or exec, and interval, timeout, failureThreshold, startPeriod"
	before := f.d.nerrs
	defer func() { f.app.HealthCheck.invalid = f.d.nerrs > before }()
	f.mapping(n, keys, map[string]func(*fieldDecoder, *yaml.Node){
		"http":             decodeHTTPProbe,
		"tcp":              decodeTCPProbe,
		"exec":             decodeExecProbe,
		"interval":         setDuration(func(a *App) *time.Duration { return &a.HealthCheck.Interval }),
		"timeout":          setDuration(func(a *App) *time.Duration { return &a.HealthCheck.Timeout }),
		"failureThreshold": setCount(func(a *App) *int { return &a.HealthCheck.FailureThreshold }),
		"startPeriod":      setDuration(func(a *App) *time.Duration { return &a.HealthCheck.StartPeriod }),
	})
}

// probeFlag tells a probe written `true` (its defaults) from one written
// as a mapping; anything else, false included, is an error (what lists
// the mapping's keys).
func (f *fieldDecoder) probeFlag(n *yaml.Node, what string) (isTrue, isMapping bool) {
	if n.Kind == yaml.MappingNode {
		return false, true
	}
	var b bool
	if n.Kind == yaml.ScalarNode && n.Tag == "!!bool" && n.Decode(&b) == nil && b {
		return true, false
	}
	f.errorf(n, "must be true or a mapping (%s), got %s", what, kindName(n))
	return false, false
}

func decodeHTTPProbe(f *fieldDecoder, n *yaml.Node) {
	isTrue, isMapping := f.probeFlag(n, "path, port")
	if !isTrue && !isMapping {
		return
	}
	f.app.HealthCheck.HTTP = &HTTPProbe{Path: DefaultHealthPath, Port: ProbePort{From: PortListen}}
	if isTrue {
		return
	}
	f.mapping(n, "http has path and port", map[string]func(*fieldDecoder, *yaml.Node){
		"path": func(f *fieldDecoder, n *yaml.Node) {
			s, ok := f.str(n)
			if !ok {
				return
			}
			// The path goes into the request line as written.
			if !strings.HasPrefix(s, "/") || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
				f.errorf(n, "must start with / and hold no space or control character, got %q", s)
				return
			}
			f.app.HealthCheck.HTTP.Path = s
		},
		"port": func(f *fieldDecoder, n *yaml.Node) {
			if p, ok := f.probePort(n); ok {
				f.app.HealthCheck.HTTP.Port = p
			}
		},
	})
}

func decodeTCPProbe(f *fieldDecoder, n *yaml.Node) {
	isTrue, isMapping := f.probeFlag(n, "port")
	if !isTrue && !isMapping {
		return
	}
	f.app.HealthCheck.TCP = &TCPProbe{Port: ProbePort{From: PortListen}}
	if isTrue {
		return
	}
	f.mapping(n, "tcp has port", map[string]func(*fieldDecoder, *yaml.Node){
		"port": func(f *fieldDecoder, n *yaml.Node) {
			if p, ok := f.probePort(n); ok {
				f.app.HealthCheck.TCP.Port = p
			}
		},
	})
}

func decodeExecProbe(f *fieldDecoder, n *yaml.Node) {
	argv := f.strList(n)
	if n.Kind == yaml.SequenceNode && len(n.Content) == 0 {
		f.errorf(n, "must name a program: [cmd, args...]")
		return
	}
	if len(argv) > 0 && argv[0] == "" {
		f.errorf(n.Content[0], "the program must not be empty")
		return
	}
	f.app.HealthCheck.Exec = argv
}

// probePort accepts a port number from 1 to 65535, "listen" or "worker".
func (f *fieldDecoder) probePort(n *yaml.Node) (ProbePort, bool) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" && (n.Value == PortListen || n.Value == PortWorker) {
		return ProbePort{From: n.Value}, true
	}
	var i int
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&i) != nil || i < 1 || i > 65535 {
		f.errorf(n, "must be a port from 1 to 65535, %q or %q, got %s", PortListen, PortWorker, kindName(n))
		return ProbePort{}, false
	}
	return ProbePort{Number: i}, true
}

// validateHealth checks a's healthCheck and a probe readiness: one probe,
// durations and threshold in bounds, and a probe that can judge the worker
// it reaches (see the table in the README's "Health checks").
func validateHealth(a *App, l *errorList) {
	field := "apps." + a.Name
	h := a.HealthCheck
	if h != nil && h.invalid {
		return // decoding said what is wrong
	}
	if a.ProbeReadiness() && h.Kind() != a.Readiness {
		l.add(a.posOf("readiness"), field+".readiness", "readiness %s waits for the first passing probe of a healthCheck with %s:, and the app has %s",
			a.Readiness, a.Readiness, describeProbe(h))
	}
	if h == nil {
		return
	}
	field += ".healthCheck"
	pos := func(keys ...string) Pos {
		for _, k := range keys {
			if p, ok := a.Pos[k]; ok {
				return p
			}
		}
		return a.posOf("healthCheck")
	}
	n := 0
	for _, set := range []bool{h.HTTP != nil, h.TCP != nil, h.Exec != nil} {
		if set {
			n++
		}
	}
	switch {
	case n == 0:
		l.add(pos("healthCheck"), field, "needs a probe: http, tcp or exec")
		return
	case n > 1:
		l.add(pos("healthCheck"), field, "has %s: one probe per app (http, tcp or exec)", describeProbes(h))
		return
	}
	if h.Interval < MinHealthInterval {
		l.add(pos("healthCheck.interval"), field+".interval", "must be at least %s, got %s", MinHealthInterval, h.Interval)
	}
	if h.Timeout <= 0 {
		l.add(pos("healthCheck.timeout"), field+".timeout", "must be more than 0")
	}
	if h.FailureThreshold < 1 {
		l.add(pos("healthCheck.failureThreshold"), field+".failureThreshold", "must be at least 1, got %d", h.FailureThreshold)
	}
	if h.HTTP == nil && h.TCP == nil {
		return
	}
	kind, portKey := ProbeHTTP, "healthCheck.http.port"
	if h.TCP != nil {
		kind, portKey = ProbeTCP, "healthCheck.tcp.port"
	}
	ppos := pos(portKey, "healthCheck."+kind)
	pfield := field + "." + kind + ".port"
	validateProbePort(a, kind, h.Port(), ppos, pfield, l)
}

// validateProbePort checks that an http or tcp probe on port reaches the
// worker it judges, and no other (issue 17): an address the workers
// share is refused unless paddock dispatches its connections.
func validateProbePort(a *App, kind string, port ProbePort, pos Pos, field string, l *errorList) {
	const remedy = "use port: worker (each worker gets a loopback socket of its own: PADDOCK_HEALTH_FD, PADDOCK_HEALTH_ADDR) or an exec probe"
	switch {
	case port.From == PortWorker:
		if kind == ProbeTCP {
			l.add(pos, field, "a tcp probe on port worker always connects: paddock itself listens on that socket for the worker, so its backlog accepts whether the worker serves or not; use an http or exec probe")
		}
		return
	case port.From == PortListen:
		if _, ok := a.HealthListen(); !ok {
			l.add(pos, field, "port listen needs a TCP address in the app's listen: (it has none); %s", remedy)
			return
		}
	}
	ln, shared := a.HealthListen()
	switch {
	case shared && a.Dispatched():
		return // paddock hands the probe's connection to the judged worker
	case shared:
		l.add(pos, field, "%s probe on %s, an address the workers share, reaches whichever worker %s, so it cannot judge one worker; %s",
			article(kind), ln.Raw, sharedBy(a), remedy)
	case a.Dispatched():
		// A port the workers listen() on that `listen:` does not name:
		// paddock opens it on demand and dispatches it too.
	case a.Instances > 1 || a.InstancesAuto:
		n := strconv.Itoa(a.Instances)
		if a.InstancesAuto {
			n = "auto"
		}
		l.add(pos, field, "a fixed port the worker binds itself is the worker's own only with instances: 1 (the app has %s: the probe would reach whichever worker holds port %d); %s",
			n, port.Number, remedy)
	}
}

// article returns "an http" or "a tcp".
func article(kind string) string {
	if kind == ProbeHTTP {
		return "an " + kind
	}
	return "a " + kind
}

// sharedBy says who picks the worker that takes a connection to a shared
// address of a.
func sharedBy(a *App) string {
	switch a.SchedulingPolicy {
	case "none":
		return "the kernel picks under schedulingPolicy none"
	case "reuseport":
		return "the kernel picks under schedulingPolicy reuseport"
	}
	return fmt.Sprintf("the kernel picks: under schedulingPolicy %s, workers without an IPC channel (ipc: %s) share the socket", a.SchedulingPolicy, a.IPC)
}

// describeProbe names the probe h has, for errors.
func describeProbe(h *HealthCheck) string {
	if k := h.Kind(); k != "" {
		return "a healthCheck with " + k + ":"
	}
	return "no healthCheck"
}

// describeProbes lists the probes h sets: "http and tcp".
func describeProbes(h *HealthCheck) string {
	var set []string
	if h.HTTP != nil {
		set = append(set, ProbeHTTP)
	}
	if h.TCP != nil {
		set = append(set, ProbeTCP)
	}
	if h.Exec != nil {
		set = append(set, ProbeExec)
	}
	return strings.Join(set, " and ")
}

// resolveHealth finds the program of a's exec probe as its workers would
// run it: a path relative to the manifest's directory, or a bare name in
// PATH (the app's env PATH first). It returns the argument vector with
// that path first; nil when a has no exec probe or the program cannot be
// found (then l says why).
func resolveHealth(a *App, base, pathEnv string, l *errorList) []string {
	h := a.HealthCheck
	if h.Kind() != ProbeExec {
		return nil
	}
	p, err := findProgram(base, h.Exec[0], pathEnv)
	if err != nil {
		l.add(a.posOf("healthCheck.exec"), "apps."+a.Name+".healthCheck.exec[0]", "%s", err)
		return nil
	}
	if !runnable(p, binfmtMiscDir) {
		l.add(a.posOf("healthCheck.exec"), "apps."+a.Name+".healthCheck.exec[0]", "%s is not a program the kernel can run: it has no #! line; add one (e.g. #!/bin/sh)", p)
		return nil
	}
	return append([]string{p}, h.Exec[1:]...)
}
