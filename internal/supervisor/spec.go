package supervisor

import (
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/paddock-sh/paddock/manifest"
	"github.com/paddock-sh/paddock/procs"
)

// specSocket is a listening socket handed to a worker, with the name it
// gets in LISTEN_FDNAMES.
type specSocket struct {
	File *os.File
	Name string
}

// workerSpec returns what worker id of app is started with: the app's
// program, arguments, directory and identity, and the environment of
// workerEnv over environ; NOTIFY_SOCKET=notifyPath for an app whose
// readiness is notify, with WATCHDOG_USEC and WATCHDOG_PID when it has a
// watchdog; sockets as descriptors 3, 4, ... handed over as
// systemd's socket activation does; and channel, when not nil, as the next
// descriptor, Node's IPC channel (NODE_CHANNEL_FD and its companions).
// Stdout and Stderr are left to the caller. It only builds a value: it
// opens, closes and changes nothing.
func workerSpec(app *manifest.App, id int, environ []string, notifyPath string, sockets []specSocket, channel *os.File) procs.Spec {
	spec := procs.Spec{
		Path: app.Resolved.Path,
		Argv: app.Resolved.Argv,
		Dir:  app.Resolved.Dir,
		Env:  workerEnv(environ, app, id),
	}
	if app.Readiness == manifest.ReadinessNotify {
		spec.Env = append(spec.Env, "NOTIFY_SOCKET="+notifyPath)
		if app.Watchdog > 0 {
			// As systemd's WatchdogSec=: the period, and the pid it is
			// for (set by the exec shim), so that the worker's children
			// do not take it for theirs.
			spec.Env = append(spec.Env, "WATCHDOG_USEC="+strconv.FormatInt(app.Watchdog.Microseconds(), 10))
			spec.PIDEnv = []string{"WATCHDOG_PID"}
		}
	}
	for _, s := range sockets {
		spec.ExtraFiles = append(spec.ExtraFiles, s.File)
		spec.ListenNames = append(spec.ListenNames, s.Name)
	}
	if c := app.Resolved.Credential; c != nil {
		spec.Credential = &syscall.Credential{Uid: c.Uid, Gid: c.Gid, Groups: c.Groups}
	}
	if channel != nil {
		spec.ExtraFiles = append(spec.ExtraFiles, channel)
		// Node reads the first of a name twice in its environment:
		// the channel's variables are paddock's alone (an app's env
		// cannot switch the channel to advanced serialization).
		spec.Env = slices.DeleteFunc(spec.Env, func(kv string) bool {
			k, _, _ := strings.Cut(kv, "=")
			return channelVars[k]
		})
		spec.Env = append(spec.Env,
			"NODE_CHANNEL_FD="+strconv.Itoa(2+len(spec.ExtraFiles)),
			"NODE_CHANNEL_SERIALIZATION_MODE=json",
			"NODE_UNIQUE_ID="+strconv.Itoa(id))
	}
	return spec
}

// inheritedForSupervisor are variables addressed to paddock itself by its
// own parent (systemd socket activation and readiness): workers never
// inherit them.
var inheritedForSupervisor = []string{"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"}

// channelVars are the variables of Node's IPC channel and cluster role,
// which paddock sets for a worker with a channel. Inherited by paddock from
// its own parent they describe that parent's channel, never a worker's:
// workers never inherit them.
var channelVars = map[string]bool{"NODE_CHANNEL_FD": true, "NODE_CHANNEL_SERIALIZATION_MODE": true, "NODE_UNIQUE_ID": true}

// paddockVars are the variables paddock sets for a worker (or its exec
// probe) alone: never inherited (paddock may run under paddock), nor set
// by an app's env.
var paddockVars = map[string]bool{"PADDOCK_APP": true, "PADDOCK_WORKER_ID": true,
	HealthFDEnv: true, HealthAddrEnv: true, WorkerPIDEnv: true}

// workerEnv returns the environment of worker id of app: base without the
// supervisor's own activation and IPC channel variables, then the app's
// env, then
// PADDOCK_APP and PADDOCK_WORKER_ID. Each name appears once.
func workerEnv(base []string, app *manifest.App, id int) []string {
	drop := map[string]bool{}
	for k := range paddockVars {
		drop[k] = true
	}
	for _, k := range inheritedForSupervisor {
		drop[k] = true
	}
	for k := range channelVars {
		drop[k] = true
	}
	for k := range app.Env {
		drop[k] = true
	}
	env := make([]string, 0, len(base)+len(app.Env)+2)
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] {
			env = append(env, kv)
		}
	}
	keys := make([]string, 0, len(app.Env))
	for k := range app.Env {
		// PADDOCK_APP and PADDOCK_WORKER_ID are paddock's: an app's env
		// does not set them (with both, a worker's getenv would return
		// the app's, the first).
		if !paddockVars[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+app.Env[k])
	}
	return append(env, "PADDOCK_APP="+app.Name, "PADDOCK_WORKER_ID="+strconv.Itoa(id))
}
