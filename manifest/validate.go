package manifest

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// Validate merges the apps decoded from every file into a Set and checks
// what a single field cannot tell: names unique across files, a known kill
// signal, the lower bounds of durations (MinBackoffInitial,
// MinReadyTimeout, failAfter above 0), backoff.max at least
// backoff.initial, fields that need each other, the IPC channel's
// serialization (json only: advanced is refused with the reason), and the
// dependencies
// between apps (dependsOn: known names, no cycle). It is pure: no file or
// user is looked up (CheckHost does that). It returns the Set even when
// there are errors, holding the first declaration of each name.
func Validate(apps []*App) (*Set, error) {
	var l errorList
	set := &Set{Apps: map[string]*App{}}
	// listeners maps a listen key to where it was first declared.
	type decl struct {
		app string
		pos Pos
	}
	listeners := map[string]decl{}
	for _, a := range apps {
		field := "apps." + a.Name
		if first, dup := set.Apps[a.Name]; dup {
			l.add(a.Source, field, "duplicate app name, first declared at %s", first.Source)
			continue
		}
		set.Apps[a.Name] = a

		if _, ok := SignalNumber(a.KillSignal); !ok {
			l.add(a.posOf("killSignal"), field+".killSignal", "unknown signal %q (use a name such as SIGTERM, SIGINT, SIGQUIT, SIGUSR2)", a.KillSignal)
		}
		if a.Backoff.Initial < MinBackoffInitial {
			l.add(a.posOf("backoff.initial"), field+".backoff.initial", "must be at least %s, got %s: a crashing worker would be forked hundreds of times a second", MinBackoffInitial, a.Backoff.Initial)
		} else if a.Backoff.Max < a.Backoff.Initial {
			l.add(a.posOf("backoff.max"), field+".backoff.max", "must be at least backoff.initial (%s), got %s", a.Backoff.Initial, a.Backoff.Max)
		}
		if a.ReadyTimeout < MinReadyTimeout {
			l.add(a.posOf("readyTimeout"), field+".readyTimeout", "must be at least %s, got %s: no worker starts and becomes ready reliably sooner", MinReadyTimeout, a.ReadyTimeout)
		}
		if a.Rollout.MaxSurge == 0 && a.Rollout.MaxUnavailable == 0 {
			l.add(a.posOf("rollout"), field+".rollout", "maxSurge and maxUnavailable cannot both be 0: a rolling update could never make progress")
		}
		if a.Group != "" && a.User == "" {
			l.add(a.posOf("group"), field+".group", "needs `user:` beside it")
		}
		for _, ln := range a.Listen {
			field := fmt.Sprintf("%s.listen[%d]", field, ln.Index)
			pos := a.posOf(fmt.Sprintf("listen[%d]", ln.Index))
			if ln.Network == "unix" && a.SchedulingPolicy == "reuseport" {
				l.add(pos, field, "schedulingPolicy reuseport needs TCP addresses; a unix socket cannot be bound once per worker")
			}
			if ln.Port() == 0 && ln.Network != "unix" {
				continue // each ephemeral port is its own socket
			}
			if first, dup := listeners[ln.Key()]; dup {
				if first.app == a.Name {
					l.add(pos, field, "%s is listed twice", ln.Raw)
				} else {
					l.add(pos, field, "%s is already the address of app %s at %s", ln.Raw, first.app, first.pos)
				}
				continue
			}
			listeners[ln.Key()] = decl{a.Name, pos}
		}
		validateWatchdog(&l, a, field)
		validateRelay(&l, a, field)
		if a.FailAfter <= 0 {
			l.add(a.posOf("failAfter"), field+".failAfter", "must be more than 0, got %s: a critical app would be given up at its first crash", a.FailAfter)
		}
		if len(a.ExecArgv) > 0 && interpreter(a) == "" {
			l.add(a.posOf("execArgv"), field+".execArgv", "interpreter arguments need an interpreter: set execPath, or use args")
		}
		validateHealth(a, &l)
		validateSerialization(&l, a, field)
	}
	validateDependsOn(set, &l)
	validateLogs(&l, apps)
	return set, l.err()
}

// SignalNumber returns the number of a signal given by name, "SIGTERM" or
// "TERM". SIGSTOP is refused: it cannot begin a stop.
func SignalNumber(name string) (unix.Signal, bool) {
	if name == "" {
		return 0, false
	}
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	sig := unix.SignalNum(name)
	if sig == 0 || sig == unix.SIGSTOP || sig == unix.SIGTSTP || sig == unix.SIGTTIN || sig == unix.SIGTTOU {
		return 0, false
	}
	return sig, true
}

// interpreter returns the interpreter an app's Exec runs under, as written
// (ExecPath, or node for JavaScript files), or "" when Exec runs directly.
func interpreter(a *App) string {
	if a.ExecPath != "" {
		return a.ExecPath
	}
	for _, ext := range []string{".js", ".mjs", ".cjs"} {
		if strings.HasSuffix(a.Exec, ext) {
			return "node"
		}
	}
	return ""
}

// filepathBase is the last element of a slash-separated path.
func filepathBase(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

// validateWatchdog checks an app's watchdog: at least MinWatchdog when set,
// and only for notify workers, which alone have a $NOTIFY_SOCKET to send
// WATCHDOG=1 to. That error points at readiness (at watchdog when
// readiness is left out).
func validateWatchdog(l *errorList, a *App, field string) {
	if a.Watchdog == 0 {
		return
	}
	if a.Watchdog < MinWatchdog {
		l.add(a.posOf("watchdog"), field+".watchdog", "must be at least %s (or 0s for none), got %s: no worker pings reliably more often, and each miss replaces it", MinWatchdog, a.Watchdog)
	}
	if a.Readiness != ReadinessNotify {
		pos := a.posOf("watchdog")
		if p, ok := a.Pos["readiness"]; ok {
			pos = p
		}
		l.add(pos, field+".readiness", "must be notify for watchdog (the worker sends WATCHDOG=1 to $NOTIFY_SOCKET), got %s", a.Readiness)
	}
}

// ChannelSerializationEnv is the variable that tells a Node child the
// serialization of its IPC channel; paddock sets it to json for a worker
// with the channel.
const ChannelSerializationEnv = "NODE_CHANNEL_SERIALIZATION_MODE"

// advancedRefusal says why paddock refuses Node's advanced serialization
// and what to do instead.
const advancedRefusal = `"advanced" (V8 serialization) is not supported: paddock's IPC channel speaks Node's JSON serialization only ` +
	`(the cluster protocol, paddock send, and message events are JSON); remove the setting, and send values JSON can carry ` +
	`(turn a Map, Set, BigInt or Date into plain values, or v8.serialize() them into a base64 string)`

// validateSerialization checks an app's serialization, and that its env
// does not choose another one behind paddock's back (Node reads
// NODE_CHANNEL_SERIALIZATION_MODE before any user code runs): json only,
// advanced refused with the reason.
func validateSerialization(l *errorList, a *App, field string) {
	switch a.Serialization {
	case SerializationJSON:
	case SerializationAdvanced:
		l.add(a.posOf("serialization"), field+".serialization", "%s", advancedRefusal)
	default:
		l.add(a.posOf("serialization"), field+".serialization", "must be json (Node's other value, advanced, is not supported), got %q", a.Serialization)
	}
	if v, ok := a.Env[ChannelSerializationEnv]; ok && v != SerializationJSON {
		key := "env." + ChannelSerializationEnv
		if v == SerializationAdvanced {
			l.add(a.posOf(key), field+"."+key, "%s", advancedRefusal)
		} else {
			l.add(a.posOf(key), field+"."+key, "is set by paddock (json) for workers with the IPC channel; remove it, got %q", v)
		}
	}
}
