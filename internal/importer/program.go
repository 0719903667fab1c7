package importer

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/paddock-sh/paddock/manifest"
)

// programNotes say why [program:x] options have no equivalent.
var programNotes = map[string]string{
	"process_name":            "paddock names workers APP/ID (ID from 0; PADDOCK_WORKER_ID in their env).",
	"numprocs_start":          "paddock numbers workers from 0 (PADDOCK_WORKER_ID).",
	"umask":                   "workers inherit paddock's umask: set it where paddock starts (systemd UMask=), or in the program.",
	"priority":                "paddock starts apps together; where one needs another up first, give it dependsOn: [OTHER] (it then also stops first).",
	"startretries":            "paddock never gives up on an app (FATAL never happens): it restarts with backoff up to backoff.max for ever. To stop everything and exit when an app cannot stay up, set critical: true and failAfter.",
	"stdout_capture_maxbytes": "paddock has no capture mode (PROCESS_COMMUNICATION events).",
	"stderr_capture_maxbytes": "paddock has no capture mode (PROCESS_COMMUNICATION events).",
	"stdout_events_enabled":   "paddock has no event listeners; follow the lines with `paddock logs -f APP`.",
	"stderr_events_enabled":   "paddock has no event listeners; follow the lines with `paddock logs -f APP`.",
	"stdout_syslog":           "paddock writes the lines to its stdout; under systemd the journal (and syslog through it) takes them.",
	"stderr_syslog":           "paddock writes the lines to its stderr; under systemd the journal (and syslog through it) takes them.",
	"serverurl":               "SUPERVISOR_SERVER_URL is for supervisor's childutils; paddock's control socket is given by PADDOCK_SOCKET to its clients.",
	"killasgroup":             "paddock always sends the final SIGKILL to the worker's whole process group.",
	"stopasgroup":             "paddock sends killSignal to the worker itself and SIGKILL to its whole process group after killTimeout; a worker that starts children should pass killSignal on (or exec the program so that it is the worker).",
}

// programHandlers convert [program:x] options, in the order written.
var programHandlers = []struct {
	key string
	fn  func(*program, string) error
}{
	{"command", (*program).command},
	{"directory", func(p *program, v string) error { p.app.Set("cwd", v, "supervisord directory"); return nil }},
	{"numprocs", (*program).numprocs},
	{"autostart", (*program).autostart},
	{"environment", nil}, // with the global environment, below
	{"autorestart", (*program).autorestart},
	{"exitcodes", (*program).exitcodes},
	{"startsecs", func(p *program, v string) error { return p.seconds("startsecs", "minReadyTime", v) }},
	{"stopsignal", (*program).stopsignal},
	{"stopwaitsecs", func(p *program, v string) error { return p.seconds("stopwaitsecs", "killTimeout", v) }},
	{"user", func(p *program, v string) error { p.app.Set("user", v, "supervisord user"); return nil }},
}

// programLogKeys are converted together into logs:.
var programLogKeys = []string{
	"redirect_stderr", "stdout_logfile", "stdout_logfile_maxbytes", "stdout_logfile_backups",
	"stderr_logfile", "stderr_logfile_maxbytes", "stderr_logfile_backups",
}

func (p *program) convert(numprocs int, global *Env) error {
	if _, ok := p.vals["command"]; !ok {
		return fmt.Errorf("no command: supervisord needs one, and so does paddock (exec)")
	}
	for _, h := range programHandlers {
		v, ok := p.get(h.key)
		if h.key == "environment" {
			if err := p.environment(v, ok, global); err != nil {
				return err
			}
			continue
		}
		if !ok {
			continue
		}
		if err := h.fn(p, v); err != nil {
			if h.key == "command" {
				return err // no exec: no app
			}
			p.note("supervisord %s=%s: not converted: %v", h.key, short(v), err)
		}
	}
	p.logs()
	// supervisord's defaults where paddock's differ.
	if !p.app.Has("restart") {
		p.app.Set("restart", "on-failure", "supervisord's default autorestart=unexpected")
	}
	if !p.app.Has("killTimeout") {
		p.app.Set("killTimeout", "10s", "supervisord's default stopwaitsecs=10")
	}
	keys := make([]string, 0, len(p.vals))
	for k := range p.vals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if p.done[k] {
			continue
		}
		p.done[k] = true
		reason := programNotes[k]
		if reason == "" {
			reason = "not an option paddock import knows."
		}
		p.note("supervisord %s=%s: not converted: %s", k, short(p.vals[k]), reason)
	}
	return nil
}

func (p *program) command(v string) error {
	words, err := SplitWords(v)
	if err != nil {
		return fmt.Errorf("command: %w", err)
	}
	if len(words) == 0 {
		return fmt.Errorf("command: empty")
	}
	p.app.Set("exec", words[0], "supervisord command")
	if len(words) > 1 {
		p.app.Set("args", words[1:], "")
	}
	switch {
	case isShell(words[0]) && len(words) > 1 && strings.HasPrefix(words[1], "-") && strings.Contains(words[1], "c"):
		p.note("supervisord command runs a shell, as written: paddock runs it the same way (the shell is the worker;")
		p.note("  give it `exec PROGRAM` at the end so that killSignal reaches the program, or call the program directly).")
	case shellLike(words[1:]) != "":
		p.note("supervisord command has %q: supervisord ran no shell, and paddock runs none either: the program gets it as text,", shellLike(words[1:]))
		p.note("  as it did. If a shell was meant, write exec: /bin/sh, args: [-c, \"...\"] on purpose.")
	}
	return nil
}

func (p *program) numprocs(v string) error {
	n, _ := strconv.Atoi(v) // checked when the section was read
	if p.app.Has("instances") {
		return nil // autostart=false
	}
	p.app.Set("instances", n, "supervisord numprocs")
	return nil
}

func (p *program) autostart(v string) error {
	b, err := iniBool(v)
	if err != nil {
		return err
	}
	if !b {
		n := p.vals["numprocs"]
		if n == "" {
			n = "1"
		}
		p.app.Set("instances", 0, "supervisord autostart=false: start it with `paddock scale "+p.app.Name+" "+n+"`")
	}
	return nil
}

func iniBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "true", "yes", "on", "1":
		return true, nil
	case "false", "no", "off", "0":
		return false, nil
	}
	return false, fmt.Errorf("not true or false")
}

func (p *program) environment(v string, set bool, global *Env) error {
	env := &Env{}
	if global != nil {
		for _, k := range global.Keys {
			env.Put(k, global.Values[k])
		}
	}
	if set {
		own, err := parseEnvironment(v)
		if err != nil {
			return err
		}
		for _, k := range own.Keys {
			env.Put(k, own.Values[k])
		}
	}
	if len(env.Keys) == 0 {
		return nil
	}
	c := "supervisord environment"
	if global != nil {
		c += " over [supervisord] environment"
	}
	p.app.Set("env", env, c)
	return nil
}

func (p *program) autorestart(v string) error {
	switch strings.ToLower(v) {
	case "unexpected":
		p.app.Set("restart", "on-failure", "supervisord autorestart=unexpected")
	default:
		b, err := iniBool(v)
		if err != nil {
			return fmt.Errorf("not true, false or unexpected")
		}
		if b {
			p.app.Set("restart", "always", "supervisord autorestart=true")
		} else {
			p.app.Set("restart", "never", "supervisord autorestart=false")
		}
	}
	return nil
}

func (p *program) exitcodes(v string) error {
	codes := strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' })
	if len(codes) == 1 && codes[0] == "0" {
		if !p.app.Has("restart") {
			p.note("supervisord exitcodes=0: the default; paddock's restart: on-failure counts exit 0 as expected too.")
		} else {
			p.app.Set("restart", p.restartValue(), "exitcodes=0")
		}
		return nil
	}
	return fmt.Errorf("paddock's restart: on-failure counts only exit 0 as expected (and restart: always restarts after any exit); make the program exit 0 where these codes mean done")
}

func (p *program) restartValue() *yaml.Node {
	for _, f := range p.app.fields {
		if f.key == "restart" {
			return f.value
		}
	}
	return nil
}

func (p *program) seconds(from, to, v string) error {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return fmt.Errorf("not a number of seconds >= 0")
	}
	p.app.Set(to, formatDuration(time.Duration(n)*time.Second), "supervisord "+from+"="+v)
	return nil
}

func (p *program) stopsignal(v string) error {
	sig := strings.ToUpper(strings.TrimPrefix(strings.ToUpper(v), "SIG"))
	switch sig {
	case "TERM", "HUP", "INT", "QUIT", "KILL", "USR1", "USR2":
	default:
		return fmt.Errorf("not a signal supervisord takes (TERM, HUP, INT, QUIT, KILL, USR1, USR2)")
	}
	p.app.Set("killSignal", "SIG"+sig, "supervisord stopsignal")
	return nil
}

// logFile is the file a *_logfile value names, or "" for AUTO, NONE and
// paddock's own stdout or stderr.
func logFile(v string) string {
	switch u := strings.ToUpper(v); {
	case u == "", u == "AUTO", u == "NONE", strings.HasPrefix(u, "/DEV/STD"), strings.HasPrefix(u, "/DEV/FD/"), strings.HasPrefix(u, "/PROC/SELF/FD/"):
		return ""
	}
	return v
}

// explainLog comments a *_logfile value that names no file.
func (p *program) explainLog(key, v string, set bool) {
	switch u := strings.ToUpper(v); {
	case !set:
	case u == "AUTO":
		p.note("supervisord %s=AUTO: supervisord kept a file in childlogdir; paddock keeps the recent lines in memory (paddock logs %s); add logs: for files.", key, p.app.Name)
	case u == "NONE":
		p.note("supervisord %s=NONE: paddock still copies the lines to its own stdout/stderr; it writes no file.", key)
	case logFile(v) == "":
		p.note("supervisord %s=%s: paddock copies every worker's lines to its own stdout and stderr: nothing to write.", key, v)
	}
}

// logs converts supervisord's log files into logs:.
func (p *program) logs() {
	redirect := false
	if v, ok := p.get("redirect_stderr"); ok {
		b, err := iniBool(v)
		if err != nil {
			p.note("supervisord redirect_stderr=%s: not converted: not true or false.", short(v))
		}
		redirect = b
	}
	out, outSet := p.get("stdout_logfile")
	errf, errSet := p.get("stderr_logfile")
	p.explainLog("stdout_logfile", out, outSet)
	outFile, errFile := logFile(out), logFile(errf)
	var logs []field
	prefix, c := "stdout", ""
	switch {
	case outFile != "" && (redirect || errFile == "" || errFile == outFile):
		logs = []field{{key: "file", value: toNode(outFile)}}
		c = p.mergedLogs(outFile, errf, errSet, redirect)
	case outFile != "":
		logs = []field{{key: "file", value: toNode(outFile)}, {key: "streams", value: toNode("separate")}}
		c = "supervisord stdout_logfile, stderr_logfile"
		if want := manifest.StderrPath(outFile); want != errFile {
			p.note("supervisord stderr_logfile=%s: paddock names the stderr file after file: %s (.stderr before the extension).", errFile, want)
		}
	case errFile != "":
		prefix = "stderr"
		logs = []field{{key: "file", value: toNode(errFile)}}
		c = "supervisord stderr_logfile: paddock writes stdout there too"
	default:
		p.explainLog("stderr_logfile", errf, errSet)
		for _, k := range programLogKeys {
			if v, ok := p.get(k); ok && strings.HasSuffix(k, "s") {
				p.note("supervisord %s=%s: not converted: no log file.", k, short(v))
			}
		}
		return
	}
	p.app.Set("logs", p.rotation(logs, prefix), c)
}

// mergedLogs comments stderr going into stdout's file, and returns the
// comment of logs:.
func (p *program) mergedLogs(outFile, errf string, errSet, redirect bool) string {
	c := "supervisord stdout_logfile"
	switch {
	case redirect:
		c += ", redirect_stderr=true"
		if errSet {
			p.note("supervisord stderr_logfile=%s: not converted: redirect_stderr=true sends stderr to stdout's file.", short(errf))
		}
	case logFile(errf) == "":
		p.explainLog("stderr_logfile", errf, errSet)
		if !errSet || strings.ToUpper(errf) == "AUTO" {
			p.note("supervisord stderr_logfile unset: paddock writes stderr into %s too (streams: merged).", outFile)
		}
	}
	return c
}

// rotation adds maxSize and maxFiles from prefix's *_maxbytes and
// *_backups, and comments the other stream's.
func (p *program) rotation(logs []field, prefix string) []field {
	if v, ok := p.get(prefix + "_logfile_maxbytes"); ok {
		logs = p.maxBytes(logs, prefix+"_logfile_maxbytes", v)
	}
	if v, ok := p.get(prefix + "_logfile_backups"); ok {
		logs = p.backups(logs, prefix+"_logfile_backups", v)
	} else {
		logs = append(logs, field{key: "maxFiles", value: toNode(10), comment: "supervisord's default " + prefix + "_logfile_backups"})
	}
	other := "stderr"
	if prefix == "stderr" {
		other = "stdout"
	}
	for _, k := range []string{other + "_logfile_maxbytes", other + "_logfile_backups"} {
		if v, ok := p.get(k); ok {
			p.note("supervisord %s=%s: not converted: paddock rotates an app's files alike (as %s's).", k, short(v), prefix)
		}
	}
	return logs
}

func (p *program) maxBytes(logs []field, key, v string) []field {
	n, err := size(v)
	switch {
	case err != nil:
		p.note("supervisord %s=%s: not converted: %v", key, short(v), err)
	case n == 0:
		p.note("supervisord %s=0: never rotated: paddock always rotates; maxSize is left at its 50Mi (give a large one).", key)
	default:
		mi := (n + 1<<20 - 1) >> 20
		c := "supervisord " + key + "=" + v
		if mi<<20 != n {
			c += ", rounded up to whole Mi"
		}
		logs = append(logs, field{key: "maxSize", value: toNode(formatSize(mi << 20)), comment: c})
	}
	return logs
}

func (p *program) backups(logs []field, key, v string) []field {
	n, err := strconv.Atoi(v)
	switch {
	case err != nil || n < 0:
		p.note("supervisord %s=%s: not converted: not a number >= 0", key, short(v))
	case n == 0:
		logs = append(logs, field{key: "maxFiles", value: toNode(1), comment: "supervisord " + key + "=0 keeps none; paddock's 0 keeps all, 1 the fewest"})
	default:
		logs = append(logs, field{key: "maxFiles", value: toNode(n), comment: "supervisord " + key})
	}
	return logs
}
