// Package manifest decodes, defaults and validates paddock manifests: YAML
// files that declare which apps to run, how many workers each has, and how
// they are supervised.
//
// The order is always the same: Decode (strict, every value keeps its source
// position) → defaults → Validate (pure) → CheckHost (paths, users). Load does
// all of it for the paths given on the command line. Errors name the file,
// line, column and field of the value at fault, and every problem in every
// file is reported at once.
package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Defaults applied to fields a manifest leaves out.
const (
	DefaultInstances        = 1
	DefaultSchedulingPolicy = "rr"
	DefaultRestart          = RestartAlways
	DefaultBackoffInitial   = 100 * time.Millisecond
	DefaultBackoffMax       = 10 * time.Second
	DefaultKillSignal       = "SIGTERM"
	DefaultKillTimeout      = 5 * time.Second
	DefaultReadiness        = ReadinessOnline
	DefaultReadyTimeout     = 30 * time.Second
	DefaultMinReadyTime     = time.Second
	DefaultMaxSurge         = 1
	DefaultMaxUnavailable   = 0
	DefaultOnStall          = OnStallKeep
	DefaultIPC              = IPCAuto
	DefaultSerialization    = SerializationJSON
	DefaultFailAfter        = 5 * time.Minute
)

// Lower bounds of durations, below which a value is nonsense that costs the
// machine dearly or cannot be met: Validate refuses them.
const (
	// MinBackoffInitial bounds backoff.initial: a crashing worker is
	// forked at most about a hundred times a second, not thousands (1ms
	// made 2100 forks in 13 s, with paddock busy and slow to answer).
	MinBackoffInitial = 10 * time.Millisecond
	// MinReadyTimeout bounds readyTimeout: no worker forks, starts and
	// reports ready reliably sooner, so a rollout would always stall.
	MinReadyTimeout = 100 * time.Millisecond
	// MinWatchdog bounds watchdog (when not 0): no worker pings reliably
	// more often, and each miss replaces it.
	MinWatchdog = 100 * time.Millisecond
)

// HasChannel reports whether the app's workers get an IPC channel.
func (a *App) HasChannel() bool {
	switch a.IPC {
	case IPCNode:
		return true
	case IPCOff:
		return false
	}
	return filepathBase(interpreter(a)) == "node"
}

// Readiness modes: when a new worker counts as ready to serve.
const (
	// ReadinessOnline: as soon as its process has started.
	ReadinessOnline = "online"
	// ReadinessListening: once it reported listening (cluster protocol);
	// a worker without an IPC channel is ready once started.
	ReadinessListening = "listening"
	// ReadinessNotify: once it sent READY=1 to $NOTIFY_SOCKET (sd_notify).
	ReadinessNotify = "notify"
	// ReadinessHTTP, ReadinessTCP, ReadinessExec: at the first pass of
	// the app's healthCheck, which must be of that kind.
	ReadinessHTTP = ProbeHTTP
	ReadinessTCP  = ProbeTCP
	ReadinessExec = ProbeExec
)

// ReadinessModes lists the accepted values of App.Readiness.
var ReadinessModes = []string{ReadinessOnline, ReadinessListening, ReadinessNotify, ReadinessHTTP, ReadinessTCP, ReadinessExec}

// Restart policies.
const (
	RestartAlways    = "always"
	RestartOnFailure = "on-failure"
	RestartNever     = "never"
)

// SchedulingPolicies lists the accepted values of App.SchedulingPolicy.
var SchedulingPolicies = []string{"rr", "none", "reuseport", "sticky"}

// IPC modes: whether workers get Node's IPC channel (NODE_CHANNEL_FD) and
// take the cluster worker role (NODE_UNIQUE_ID).
const (
	IPCAuto = "auto" // on when the interpreter is node
	IPCNode = "node" // always
	IPCOff  = "off"  // never
)

// IPCModes lists the accepted values of App.IPC.
var IPCModes = []string{IPCAuto, IPCNode, IPCOff}

// Serializations of the IPC channel, the values of Node's `serialization`
// option (cluster.setupPrimary, child_process.fork). paddock speaks JSON
// only: Validate refuses SerializationAdvanced, V8's structured clone
// format, and says why.
const (
	SerializationJSON     = "json"
	SerializationAdvanced = "advanced"
)

// Serializations lists the accepted values of App.Serialization.
var Serializations = []string{SerializationJSON}

// RestartPolicies lists the accepted values of App.Restart.
var RestartPolicies = []string{RestartAlways, RestartOnFailure, RestartNever}

// Set is the merged content of every manifest file given to paddock: the apps
// by name.
type Set struct {
	// Apps maps an app name to its spec. Names are unique across all files.
	Apps map[string]*App
	// Files describes each file Load read, in order; nil for a set made
	// otherwise. A reload compares them to tell a file that stayed the
	// same from one that changed.
	Files []FileState
}

// Names returns the app names in sorted order.
func (s *Set) Names() []string {
	names := make([]string, 0, len(s.Apps))
	for n := range s.Apps {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Workers returns the number of workers the set declares.
func (s *Set) Workers() int {
	n := 0
	for _, a := range s.Apps {
		n += a.Instances
	}
	return n
}

// App is one app of a manifest: a program run as Instances workers. The yaml
// tags list the manifest keys; a key not listed here is an error. Unless a
// field says otherwise, changing it replaces the app's workers (a new
// generation); changing Instances only scales.
type App struct {
	// Name is the app's key under `apps:`.
	Name string `yaml:"-"`

	// Exec is the program or script to run (required). A relative path is
	// resolved against the directory of the manifest file; without an
	// interpreter, a bare name (no slash) is looked up in PATH.
	Exec string `yaml:"exec"`
	// ExecPath is the interpreter that runs Exec, looked up in PATH. Default:
	// node for .js/.mjs/.cjs scripts, none otherwise.
	ExecPath string `yaml:"execPath"`
	// ExecArgv are the interpreter's own arguments, placed before Exec.
	ExecArgv []string `yaml:"execArgv"`
	// Args are the arguments after Exec.
	Args []string `yaml:"args"`
	// Cwd is the workers' working directory. Default: the directory of the
	// manifest file; a relative path is resolved against it.
	Cwd string `yaml:"cwd"`
	// Env is set over the supervisor's own environment. Values are never
	// logged.
	Env map[string]string `yaml:"env"`
	// Silent says how the supervisor copies the lines it reads from the
	// workers' stdout and stderr to its own: false, exactly as written;
	// true, every line prefixed with "app/id | ".
	Silent bool `yaml:"silent"`
	// Instances is the number of workers. "auto" in a manifest means the CPUs
	// this process may use (affinity and cgroup CPU quota). Default 1.
	// Changing it only scales.
	Instances int `yaml:"instances"`
	// InstancesAuto records that Instances came from "auto".
	InstancesAuto bool `yaml:"-"`
	// SchedulingPolicy is how workers share listening ports: rr, none,
	// reuseport or sticky. Default rr. It concerns TCP and unix addresses:
	// a UDP socket (a "udp:" address, a Node worker's dgram bind) is one
	// socket shared by every worker under every policy.
	SchedulingPolicy string `yaml:"schedulingPolicy"`
	// Restart says which exits are followed by a new worker: always,
	// on-failure (exit code other than 0, or a signal) or never. Default
	// always. A worker retired on purpose is never restarted.
	Restart string `yaml:"restart"`
	// Backoff is the delay before consecutive restarts.
	Backoff Backoff `yaml:"backoff"`
	// KillSignal begins a graceful stop. Default SIGTERM.
	KillSignal string `yaml:"killSignal"`
	// KillTimeout is how long a graceful stop may take before SIGKILL goes to
	// the worker's whole process group. Default 5s. 0 is allowed: SIGKILL
	// follows killSignal at once (no grace).
	KillTimeout time.Duration `yaml:"killTimeout"`
	// User runs the workers as this user (name or uid) and its primary
	// group. Only when the supervisor runs as root.
	User string `yaml:"user"`
	// Group overrides User's primary group (name or gid). Requires User.
	Group string `yaml:"group"`
	// Readiness says when a new worker counts as ready: online (its
	// process started), listening (it reported listening), notify (it
	// sent READY=1 to $NOTIFY_SOCKET), or http, tcp or exec (its
	// healthCheck, of that kind, passed once). Default online. Rolling updates wait
	// for readiness before retiring an old worker.
	Readiness string `yaml:"readiness"`
	// ReadyTimeout is how long a new worker of a rolling update may take to
	// become ready before the rollout is reported stalled. Default 30s; at
	// least MinReadyTimeout.
	ReadyTimeout time.Duration `yaml:"readyTimeout"`
	// MinReadyTime is how long a new worker must stay ready, without
	// exiting, before it counts as available (Kubernetes' minReadySeconds,
	// PM2's min_uptime): a rolling update retires old workers only against
	// available new ones, and a new worker that exits before it is
	// available stalls the update. Default 1s; 0 makes a worker available
	// as soon as it is ready.
	MinReadyTime time.Duration `yaml:"minReadyTime"`
	// Rollout bounds a rolling update.
	Rollout Rollout `yaml:"rollout"`
	// IPC says whether workers get Node's IPC channel and speak the cluster
	// protocol with the supervisor: auto (when the interpreter is node),
	// node or off. Default auto. In a manifest, `ipc:` is this mode, or a
	// mapping whose `mode:` it is, beside `relay:` (Relay).
	IPC string `yaml:"ipc"`
	// Serialization is the IPC channel's serialization, as Node's
	// setupPrimary names it: json, the only one paddock speaks (workers
	// get NODE_CHANNEL_SERIALIZATION_MODE=json). Node's advanced (V8
	// serialization) is refused with the reason, so that a program written
	// for it fails at validation rather than by losing what JSON cannot
	// carry. Default json. It does not replace the workers: it has one
	// value (not part of the generation).
	Serialization string `yaml:"serialization"`
	// Relay is `ipc.relay`: the rules by which paddock forwards a
	// worker's messages (process.send) to other workers of the app, as a
	// Node primary's cluster.on('message') relay does, instead of
	// reporting them as message events. Written as a preset name
	// ("socket.io", for @socket.io/cluster-adapter), or a list of presets
	// and rules ({match: {PATH: VALUE, ...}, to: others | all | {worker:
	// PATH} | {alias: PATH}, alias: PATH}); presets are expanded here.
	// Nil: no message is relayed. It needs the IPC channel. Changing it
	// does not replace the workers: the running ones relay by the new
	// rules at once.
	Relay []RelayRule `yaml:"-"`
	// Listen lists the addresses the supervisor listens on for the app's
	// workers, kept open across restarts and rolling updates and handed to
	// workers as LISTEN_FDS descriptors (3, 4, ...) in this order (see
	// ParseListen for how each is written). A "udp:" address is a
	// SOCK_DGRAM socket, systemd's ListenDatagram=: one socket shared by
	// every worker of the app whatever SchedulingPolicy says, as Node's
	// primary shares UDP sockets under every policy (datagrams are not
	// connections to hand out, and a SO_REUSEPORT group of UDP sockets
	// cannot be kept to the ready workers).
	Listen []Listen `yaml:"listen"`
	// DependsOn lists the apps, by name, that this app's workers need: its
	// workers start (first start, scale-up, restarts, the new workers of a
	// rolling update) only while each of them is available, and when apps
	// are removed, or paddock stops, its workers stop before theirs. A
	// running worker is never stopped because a dependency went down.
	// Names may be those of apps in other files of the set; an unknown
	// name, the app itself, a name listed twice and a cycle are errors.
	// Changing it does not replace the workers: it is not part of the
	// generation.
	DependsOn []string `yaml:"dependsOn"`
	// MaxMemory is the most resident memory, in bytes, that a worker's
	// process group (the worker and every process it started that stayed
	// in its group) may use: a worker found above it in two samples in a
	// row (read from /proc every 5s while an app sets it) is replaced new
	// first, as a rolling update replaces it, then stopped gracefully.
	// Written in bytes or with a unit Ki, Mi or Gi (512Mi); more than 0.
	// Default 0: no limit.
	MaxMemory int64 `yaml:"maxMemory"`
	// Watchdog is systemd's WatchdogSec= for workers of `readiness:
	// notify`: they get WATCHDOG_USEC (and WATCHDOG_PID) and must send
	// WATCHDOG=1 to $NOTIFY_SOCKET at least this often once ready, or be
	// replaced new first. A worker may change its own period with
	// WATCHDOG_USEC=, and ask to be replaced with WATCHDOG=trigger.
	// Default 0: none. At least MinWatchdog when set; needs readiness
	// notify.
	Watchdog time.Duration `yaml:"watchdog"`
	// Critical says the app must stay up for paddock to be of use: when
	// it has been failing for FailAfter (crash-looping, its restart delay
	// at backoff.max, and not one of its workers up and ready), paddock
	// stops every app and `paddock run` exits with a code of its own, so
	// that a container's orchestrator learns it and acts. Default false:
	// paddock retries the app for ever. Changing it does not replace the
	// workers (it is not part of the generation).
	Critical bool `yaml:"critical"`
	// FailAfter is how long a critical app may be failing before paddock
	// gives up on it (see Critical). Default 5m; more than 0. It does
	// nothing unless the app is critical (or `paddock run
	// --exit-on-failed`). Changing it does not replace the workers.
	FailAfter time.Duration `yaml:"failAfter"`
	// HealthCheck, when set, probes every worker while it runs, and
	// replaces one that fails too many probes in a row (a new worker
	// first). A readiness of http, tcp or exec waits for its first pass.
	// Nil: no probe.
	HealthCheck *HealthCheck `yaml:"healthCheck"`
	// Logs, when set, is where the workers' output is also written on
	// disk, with rotation: the app's own `logs:`, or the set's top-level
	// one (`logs: false` in an app: none). Nil: no file. Changing it does
	// not replace the workers: the running ones write where it says from
	// the moment it is applied (it is not part of the generation).
	Logs *Logs `yaml:"logs"`

	// Resolved holds what CheckHost derived from the fields above: the
	// program to execute and the credentials. It is zero until CheckHost
	// succeeds.
	Resolved Resolved `yaml:"-"`

	// Source is where the app is declared; Pos maps a field path relative to
	// the app ("instances", "backoff.max", "env.FOO") to where its value is.
	Source Pos            `yaml:"-"`
	Pos    map[string]Pos `yaml:"-"`
}

// Backoff is the delay before the n-th consecutive restart of a worker:
// min(Initial * 2^(n-1), Max). The count resets once a worker has stayed up
// for Max.
type Backoff struct {
	// Initial is the delay before the first restart. Default 100ms; at
	// least MinBackoffInitial.
	Initial time.Duration `yaml:"initial"`
	// Max caps the delay, and is how long a worker must stay up for the
	// count to reset. Default 10s.
	Max time.Duration `yaml:"max"`
}

// Delay returns the delay before the n-th consecutive restart (n >= 1).
func (b Backoff) Delay(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	d := b.Initial
	if d <= 0 {
		return 0 // no growth: do not loop n times
	}
	for i := 1; i < n; i++ {
		if d >= b.Max/2 {
			return b.Max
		}
		d *= 2
	}
	return min(d, b.Max)
}

// Listen is one address of `listen:`.
type Listen struct {
	// Network is "tcp", "udp" or "unix".
	Network string
	// Address is "host:port" for tcp and udp, with an empty host for
	// every interface (IPv4 and IPv6, like Node), or the absolute socket
	// path for unix.
	Address string
	// Mode is the permission of a unix socket file. Default 0660.
	Mode uint32
	// Raw is the address as written in the manifest.
	Raw string
	// Index is the entry's place in the manifest's list (invalid entries
	// included), for error positions.
	Index int `json:"-"`
}

// DefaultUnixMode is the permission of a unix socket unless `?mode=` says
// otherwise.
const DefaultUnixMode = 0o660

// Key identifies the socket: two apps may not share a key, and the same key
// across reloads is the same socket.
func (l Listen) Key() string { return l.Network + ":" + l.Address }

// Port returns the TCP or UDP port (0 for unix sockets or an ephemeral
// port).
func (l Listen) Port() int {
	if l.Network != "tcp" && l.Network != "udp" {
		return 0
	}
	_, p, _ := strings.Cut(l.Address[strings.LastIndexByte(l.Address, ']')+1:], ":")
	n, _ := strconv.Atoi(p)
	return n
}

// Rollout bounds a rolling update, with Kubernetes' semantics: during the
// update there are at most Instances+MaxSurge workers, and at least
// Instances-MaxUnavailable of them are ready.
type Rollout struct {
	// MaxSurge is how many workers may run above Instances. Default 1.
	MaxSurge int `yaml:"maxSurge"`
	// MaxUnavailable is how many workers may be missing from Instances
	// ready ones. Default 0.
	MaxUnavailable int `yaml:"maxUnavailable"`
	// OnStall says what happens when the update stalls (a new worker not
	// ready within readyTimeout, or exited before it was available): keep
	// (the old workers keep serving, the new ones keep trying, until a
	// later change) or rollback (the app returns, as a rolling update of
	// its own, to the last generation whose workers were all available,
	// until the manifest changes the app again or `paddock restart`
	// retries it). Default keep. Like every field but instances, changing
	// it rolls the workers.
	OnStall string `yaml:"onStall"`
}

// What a stalled rolling update does (Rollout.OnStall).
const (
	OnStallKeep     = "keep"
	OnStallRollback = "rollback"
)

// OnStallModes lists the accepted values of Rollout.OnStall.
var OnStallModes = []string{OnStallKeep, OnStallRollback}

// Resolved is the host-specific part of an app, filled in by CheckHost.
type Resolved struct {
	// Path is the absolute path of the program to execute: the interpreter
	// when there is one, else Exec.
	Path string
	// Argv is the full argument vector, Argv[0] included.
	Argv []string
	// Dir is the absolute working directory.
	Dir string
	// Credential is set when User is: the uid, gid and supplementary groups
	// to run as.
	Credential *Credential
	// HealthExec is the argument vector of the app's exec probe, its
	// program resolved as Path is; nil without an exec probe.
	HealthExec []string
}

// Credential is a user identity to run workers as.
type Credential struct {
	Uid, Gid uint32
	Groups   []uint32
}

// posOf returns the position of field (relative to the app), falling back to
// the app's own position.
func (a *App) posOf(field string) Pos {
	if p, ok := a.Pos[field]; ok {
		return p
	}
	return a.Source
}

// Generation returns a short hash of everything in the spec that, when
// changed, requires new workers: every field but Instances, DependsOn and
// the supervision policy that does not reach the workers (Critical,
// FailAfter, Relay) and where their output is written (Logs). Two apps with the same generation run identical workers.
func (a *App) Generation() string {
	// Everything but the name, the worker count, where it was written and
	// what paddock does when the app fails.
	spec := *a
	spec.Name, spec.Instances, spec.InstancesAuto = "", 0, false
	spec.Source, spec.Pos = Pos{}, nil
	// What a worker runs does not depend on the order apps start in.
	spec.DependsOn = nil
	spec.Critical, spec.FailAfter = false, 0
	spec.Serialization = ""
	// Relaying and writing the output to files are the supervisor's
	// part, read live.
	spec.Relay = nil
	spec.Logs = nil
	h := sha256.New()
	// encoding/json sorts map keys, so the encoding is canonical.
	_ = json.NewEncoder(h).Encode(&spec)
	return hex.EncodeToString(h.Sum(nil))[:8]
}
