package importer

import (
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/paddock-sh/paddock/manifest"
)

// PM2Options are the choices of a PM2 conversion.
type PM2Options struct {
	// Env names the env_<Env> block merged over env, as `pm2 start
	// --env Env` does; empty: none (each env_* is a comment).
	Env string
}

// pm2Interpreters are the interpreters PM2 picks by a script's extension
// when the file names none.
var pm2Interpreters = map[string]string{
	".sh": "bash", ".py": "python3", ".rb": "ruby", ".php": "php", ".pl": "perl",
	".coffee": "coffee", ".ls": "lsc", ".ts": "ts-node",
}

// nodeExt are the extensions paddock runs with node by default.
var nodeExt = map[string]bool{".js": true, ".mjs": true, ".cjs": true}

// ConvertPM2 converts a decoded PM2 ecosystem (module.exports of an
// ecosystem.config.js, a process.json or process.yml, with numbers as
// json.Number) into a manifest. source names the file in comments.
func ConvertPM2(eco any, source string, opts PM2Options) (*Manifest, error) {
	m := &Manifest{Source: "pm2 " + source}
	var apps []any
	switch x := eco.(type) {
	case []any:
		apps = x
	case map[string]any:
		if _, single := x["script"]; single {
			apps = []any{x}
			break
		}
		switch a := x["apps"].(type) {
		case []any:
			apps = a
		case map[string]any:
			apps = []any{a}
		case nil:
			return nil, fmt.Errorf("%s: no apps: a PM2 ecosystem has apps: [{name, script, ...}]", source)
		default:
			return nil, fmt.Errorf("%s: apps: not a list of apps: %s", source, short(a))
		}
		for _, k := range slices.Sorted(maps.Keys(x)) {
			if k == "apps" {
				continue
			}
			m.Notes = append(m.Notes, pm2TopNote(k, x[k]))
		}
	default:
		return nil, fmt.Errorf("%s: not a PM2 ecosystem (an object with apps, or a list of apps): %s", source, short(eco))
	}
	taken := map[string]bool{}
	for i, a := range apps {
		obj, ok := a.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: apps[%d]: not an object: %s", source, i, short(a))
		}
		app, err := convertPM2App(obj, i, taken, opts)
		if err != nil {
			return nil, fmt.Errorf("%s: apps[%d]: %w", source, i, err)
		}
		m.Apps = append(m.Apps, app)
	}
	return m, nil
}

// pm2TopNote is the comment for a top-level key of an ecosystem other than
// apps.
func pm2TopNote(k string, v any) string {
	switch k {
	case "deploy":
		return "pm2 deploy: not converted: paddock does not deploy code; check out the release with your CI or git-sync,\n" +
			"  then `paddock reload` (or let paddock watch the manifests) for a rolling update."
	}
	return fmt.Sprintf("pm2 %s: %s: not converted: not an app; paddock reads only apps.", k, short(v))
}

// pm2App is one app being converted.
type pm2App struct {
	app  *App
	src  map[string]any
	done map[string]bool
	node bool     // the workers run node
	argv []string // execArgv so far
	vars *Env
	opts PM2Options
}

// pm2Handlers map PM2's app options to what converts them, in the order
// they are converted (and written). Keys not here are commented as
// unknown; log options are handled together by logs.
var pm2Handlers = []struct {
	key string
	fn  func(*pm2App, any) error
}{
	{"script", (*pm2App).script},
	{"interpreter", (*pm2App).interpreter},
	{"exec_interpreter", (*pm2App).interpreter},
	{"interpreter_args", (*pm2App).execArgv},
	{"node_args", (*pm2App).execArgv},
	{"args", (*pm2App).args},
	{"cwd", func(p *pm2App, v any) error { return p.str("cwd", "cwd", v) }},
	{"instances", (*pm2App).instances},
	{"exec_mode", (*pm2App).execMode},
	{"env", (*pm2App).env},
	{"port", (*pm2App).port},
	{"autorestart", (*pm2App).autorestart},
	{"stop_exit_codes", (*pm2App).stopExitCodes},
	{"min_uptime", func(p *pm2App, v any) error { return p.duration("min_uptime", "minReadyTime", v, 0) }},
	{"restart_delay", (*pm2App).restartDelay},
	{"exp_backoff_restart_delay", (*pm2App).expBackoff},
	{"kill_timeout", func(p *pm2App, v any) error { return p.duration("kill_timeout", "killTimeout", v, 0) }},
	{"listen_timeout", func(p *pm2App, v any) error {
		return p.duration("listen_timeout", "readyTimeout", v, 100*time.Millisecond)
	}},
	{"wait_ready", (*pm2App).waitReady},
	{"max_memory_restart", (*pm2App).maxMemory},
	{"user", func(p *pm2App, v any) error { return p.str("user", "user", v) }},
	{"uid", func(p *pm2App, v any) error { return p.str("uid", "user", v) }},
	{"gid", func(p *pm2App, v any) error { return p.str("gid", "group", v) }},
	{"autostart", (*pm2App).autostart},
}

// pm2Notes are PM2 options with no equivalent: why, and what to do.
var pm2Notes = map[string]string{
	"max_restarts":               "paddock never gives up on an app: it restarts with backoff up to backoff.max for ever. To stop everything and exit when an app cannot stay up (and let systemd or the orchestrator act), set critical: true and failAfter.",
	"watch":                      "paddock reloads manifests, not code: deploy the new code, then `paddock restart APP` (a rolling update), or use a file watcher (nodemon) in development.",
	"ignore_watch":               "see watch: paddock does not watch code.",
	"watch_options":              "see watch: paddock does not watch code.",
	"watch_delay":                "see watch: paddock does not watch code.",
	"cron_restart":               "paddock has no cron: run `paddock restart APP` from a systemd timer or cron (a rolling update, no downtime).",
	"cron":                       "paddock has no cron: run `paddock restart APP` from a systemd timer or cron.",
	"namespace":                  "paddock has no namespaces: keep the apps of one namespace in a manifest file or directory of their own.",
	"vizion":                     "paddock tracks no versioning metadata of the code.",
	"post_update":                "paddock runs no commands after a pull: run them in your deploy, then `paddock restart APP`.",
	"force":                      "paddock app names are unique: an app runs once, with its instances.",
	"source_map_support":         "paddock adds no Node flags of its own: add --enable-source-maps to execArgv.",
	"disable_source_map_support": "paddock adds no source map support; nothing to disable.",
	"treekill":                   "paddock always kills a worker's whole process group after killTimeout; it cannot be turned off.",
	"instance_var":               "pm2 sets NODE_APP_INSTANCE (0-based); paddock sets PADDOCK_WORKER_ID for each worker (and cluster.worker.id): read that instead.",
	"increment_var":              "paddock gives every worker the same env; read PADDOCK_WORKER_ID and compute the value in the program.",
	"filter_env":                 "paddock passes its own environment with env over it; start paddock with a clean environment (systemd Environment=, env -i) instead.",
	"append_env_to_name":         "paddock app names do not change with the environment.",
	"shutdown_with_message":      "paddock retires a Node cluster worker with cluster's disconnect, then killSignal: listen for 'disconnect' (or SIGTERM) instead of a 'shutdown' message.",
	"pmx":                        "Keymetrics/PM2 Plus monitoring does not apply; paddock serves Prometheus metrics (--metrics-addr).",
	"automation":                 "Keymetrics/PM2 Plus monitoring does not apply; paddock serves Prometheus metrics (--metrics-addr).",
	"trace":                      "Keymetrics/PM2 Plus tracing does not apply.",
	"disable_trace":              "Keymetrics/PM2 Plus tracing does not apply.",
	"kill_retry_time":            "paddock sends killSignal once, then SIGKILL to the process group after killTimeout.",
	"windowsHide":                "paddock runs on Linux.",
	"version":                    "paddock tracks no app version; `paddock status` shows each app's generation.",
	"node_version":               "paddock does not select Node versions: set execPath to that node's path.",
	"exec_watch":                 "see watch: paddock does not watch code.",
	"pid_file":                   "paddock writes no pid files: `paddock status -o json` lists every worker's pid.",
	"pid":                        "paddock writes no pid files: `paddock status -o json` lists every worker's pid.",
	"log_date_format":            "paddock's text log lines carry no time; `paddock run --log-format json` writes the time on every line.",
	"time":                       "paddock's text log lines carry no time; `paddock run --log-format json` writes the time on every line.",
	"log_type":                   "`paddock run --log-format json` writes every line as JSON (time, app, worker, pid, stream, line).",
	"merge_logs":                 "paddock writes one file per app, each line prefixed with its worker (app/id | line).",
	"combine_logs":               "paddock writes one file per app, each line prefixed with its worker (app/id | line).",
}

func convertPM2App(src map[string]any, i int, taken map[string]bool, opts PM2Options) (*App, error) {
	p := &pm2App{app: &App{}, src: src, done: map[string]bool{}, opts: opts}
	if _, ok := src["script"]; !ok {
		return nil, fmt.Errorf("no script: pm2 needs one, and so does paddock (exec)")
	}
	name := display(src["name"])
	if src["name"] == nil {
		s := display(src["script"])
		name = strings.TrimSuffix(path.Base(s), path.Ext(s)) // as pm2 names it
	}
	p.app.Name = appName(name, fmt.Sprintf("app-%d", i+1), taken)
	p.done["name"] = true
	if src["name"] != nil && p.app.Name != display(src["name"]) {
		p.app.Note("pm2 name: %s: renamed %s: paddock app names are lower-case letters, digits and '-'.", short(src["name"]), p.app.Name)
	}
	for _, h := range pm2Handlers {
		v, ok := src[h.key]
		if !ok || p.done[h.key] {
			continue
		}
		p.done[h.key] = true
		if v == nil {
			p.app.Note("pm2 %s: null: the default.", h.key)
			continue
		}
		if err := h.fn(p, v); err != nil {
			p.app.Note("pm2 %s: %s: not converted: %v", h.key, short(v), err)
		}
	}
	p.logs()
	for _, k := range slices.Sorted(maps.Keys(src)) {
		if p.done[k] {
			continue
		}
		p.done[k] = true
		switch {
		case strings.HasPrefix(k, "env_"):
			p.envNamed(k)
		case pm2Notes[k] != "":
			p.app.Note("pm2 %s: %s: not converted: %s", k, short(src[k]), pm2Notes[k])
		default:
			p.app.Note("pm2 %s: %s: not converted: not an option paddock import knows.", k, short(src[k]))
		}
	}
	return p.app, nil
}

func (p *pm2App) str(from, to string, v any) error {
	switch v.(type) {
	case string, json.Number:
		p.app.Set(to, display(v), "pm2 "+from)
		return nil
	}
	return fmt.Errorf("not a string")
}

func (p *pm2App) script(v any) error {
	s, ok := v.(string)
	if !ok || s == "" {
		return fmt.Errorf("not a file name")
	}
	p.app.Set("exec", s, "pm2 script")
	ext := path.Ext(s)
	p.node = nodeExt[ext]
	if _, named := p.src["interpreter"]; named {
		return nil
	}
	if _, named := p.src["exec_interpreter"]; named {
		return nil
	}
	if interp, ok := pm2Interpreters[ext]; ok {
		p.app.Set("execPath", interp, "pm2 runs "+ext+" scripts with "+interp)
	}
	return nil
}

func (p *pm2App) interpreter(v any) error {
	s, ok := v.(string)
	if !ok || s == "" {
		return fmt.Errorf("not a program name")
	}
	script := display(p.src["script"])
	key := "interpreter"
	if _, ok := p.src[key]; !ok {
		key = "exec_interpreter"
	}
	switch {
	case s == "none":
		if nodeExt[path.Ext(script)] {
			return fmt.Errorf("paddock always runs %s scripts with node; name the file otherwise (or a wrapper) to run it directly", path.Ext(script))
		}
		p.app.Note("pm2 %s: none: paddock runs exec directly (it needs a #! line or to be a binary).", key)
		return nil
	case strings.HasPrefix(s, "node@"):
		p.node = true
		p.app.Set("execPath", "node", "pm2 "+key+": "+s+": pm2 picks that version with nvm; paddock runs the node named here: give that version's path")
		return nil
	}
	if path.Base(s) == "node" || path.Base(s) == "nodejs" {
		p.node = true
	}
	p.app.Set("execPath", s, "pm2 "+key)
	return nil
}

func (p *pm2App) execArgv(v any) error {
	l, err := stringList(v)
	if err != nil {
		return err
	}
	p.argv = append(p.argv, l...)
	p.app.Set("execArgv", slices.Clone(p.argv), "pm2 interpreter_args/node_args")
	return nil
}

func (p *pm2App) args(v any) error {
	l, err := stringList(v)
	if err != nil {
		return err
	}
	c := "pm2 args"
	if op := shellLike(l); op != "" {
		c += fmt.Sprintf(": %q reaches the program as text, as under pm2: no shell interprets it", op)
	}
	p.app.Set("args", l, c)
	return nil
}

func (p *pm2App) instances(v any) error {
	var n int64
	switch x := v.(type) {
	case json.Number:
		i, err := x.Int64()
		if err != nil {
			return fmt.Errorf("not a whole number")
		}
		n = i
	case string:
		if x == "max" {
			p.app.Set("instances", "auto", "pm2 instances: max: one per CPU this process may use")
			return nil
		}
		i, err := strconv.ParseInt(x, 10, 64)
		if err != nil {
			return fmt.Errorf(`not a number or "max"`)
		}
		n = i
	default:
		return fmt.Errorf(`not a number or "max"`)
	}
	switch {
	case n == 0 || n == -1:
		p.app.Set("instances", "auto", fmt.Sprintf("pm2 instances: %d: one per CPU", n))
	case n < -1:
		p.app.Set("instances", "auto", fmt.Sprintf("pm2 instances: %d means all CPUs but %d; auto is all of them: write a number to keep CPUs free", n, -n))
	case n > 10000:
		return fmt.Errorf("more than paddock's 10000")
	default:
		p.app.Set("instances", int(n), "pm2 instances: "+short(v))
	}
	return nil
}

func (p *pm2App) execMode(v any) error {
	switch display(v) {
	case "cluster", "cluster_mode":
		if !p.node {
			return fmt.Errorf("pm2 runs cluster mode for Node scripts only; paddock starts these workers as processes that share nothing")
		}
		p.app.Note("pm2 exec_mode: cluster: paddock is the Node cluster primary: node workers get the cluster worker role (ipc: auto)")
		p.app.Note("  and share their server's port, connections handed round-robin (schedulingPolicy: rr, as pm2).")
	case "fork", "fork_mode":
		if p.node {
			p.app.Note("pm2 exec_mode: fork: paddock still gives node workers the cluster worker role (ipc: auto), so that several")
			p.app.Note("  may share a port; write ipc: off for plain processes (each must then listen on a port of its own).")
		} else {
			p.app.Note("pm2 exec_mode: fork: each worker is a process of its own, as under pm2.")
		}
	default:
		return fmt.Errorf(`not "cluster" or "fork"`)
	}
	return nil
}

// envFrom puts the variables of a PM2 env object into the app's env.
func (p *pm2App) envFrom(v any, from string) error {
	obj, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("not an object of variables")
	}
	if p.vars == nil {
		p.vars = &Env{}
	}
	var skipped []string
	for _, k := range slices.Sorted(maps.Keys(obj)) {
		switch x := obj[k].(type) {
		case string, json.Number, bool:
			p.vars.Put(k, display(x))
		case nil:
			p.vars.Put(k, "")
		default:
			skipped = append(skipped, k)
		}
	}
	c := "pm2 " + from
	if len(skipped) > 0 {
		p.app.Note("pm2 %s: %s: not converted: not strings, numbers or booleans (pm2 would pass them as JSON text).", from, strings.Join(skipped, ", "))
	}
	p.app.Set("env", p.vars, c)
	return nil
}

func (p *pm2App) env(v any) error { return p.envFrom(v, "env") }

// envNamed handles env_<name>: merged over env when name is the --env
// given, else a comment.
func (p *pm2App) envNamed(k string) {
	name := strings.TrimPrefix(k, "env_")
	if name == p.opts.Env {
		if err := p.envFrom(p.src[k], k+" (--env "+name+")"); err != nil {
			p.app.Note("pm2 %s: not converted: %v", k, err)
		}
		return
	}
	p.app.Note("pm2 %s: not applied: run `paddock import pm2 --env %s FILE` to merge it over env, as `pm2 start --env %s` does.", k, name, name)
}

func (p *pm2App) port(v any) error {
	if p.vars == nil {
		p.vars = &Env{}
	}
	p.vars.Put("PORT", display(v))
	p.app.Set("env", p.vars, "pm2 port sets PORT")
	return nil
}

func (p *pm2App) autorestart(v any) error {
	b, err := truthy(v)
	if err != nil {
		return err
	}
	if b {
		p.app.Set("restart", "always", "pm2 autorestart: true")
	} else {
		p.app.Set("restart", "never", "pm2 autorestart: false")
	}
	return nil
}

func (p *pm2App) stopExitCodes(v any) error {
	l, err := stringList(v)
	if err != nil {
		return err
	}
	if !slices.Equal(l, []string{"0"}) {
		return fmt.Errorf("paddock's restart: on-failure counts only exit 0 as expected; exit 0 from the programs where these codes mean done")
	}
	if b, err := truthy(p.src["autorestart"]); err == nil && !b {
		p.app.Note("pm2 stop_exit_codes: [0]: autorestart: false wins, as under pm2.")
		return nil
	}
	p.app.Set("restart", "on-failure", "pm2 stop_exit_codes: [0]")
	return nil
}

func (p *pm2App) duration(from, to string, v any, least time.Duration) error {
	d, err := millis(v)
	if err != nil {
		return err
	}
	c := "pm2 " + from + ": " + short(v)
	if _, isNum := v.(json.Number); isNum {
		c += " ms"
	}
	if d < least {
		c += "; raised to paddock's least, " + formatDuration(least)
		d = least
	}
	p.app.Set(to, formatDuration(d), c)
	return nil
}

// minBackoff is the least backoff.initial a manifest takes.
const minBackoff = 10 * time.Millisecond

func backoff(initial, maxDelay time.Duration) []field {
	return []field{
		{key: "initial", value: toNode(formatDuration(initial))},
		{key: "max", value: toNode(formatDuration(maxDelay))},
	}
}

func (p *pm2App) restartDelay(v any) error {
	d, err := millis(v)
	if err != nil {
		return err
	}
	c := "pm2 restart_delay: " + short(v) + " ms, a fixed delay"
	if d < minBackoff {
		d = minBackoff
		c += "; raised to paddock's least, 10ms"
	}
	p.app.Set("backoff", backoff(d, d), c)
	return nil
}

// pm2BackoffMax is where PM2 caps exp_backoff_restart_delay.
const pm2BackoffMax = 15 * time.Second

func (p *pm2App) expBackoff(v any) error {
	d, err := millis(v)
	if err != nil {
		return err
	}
	c := "pm2 exp_backoff_restart_delay: " + short(v) + " ms, doubling up to pm2's 15s"
	if _, both := p.src["restart_delay"]; both {
		c += " (it wins over restart_delay, as under pm2)"
	}
	if d < minBackoff {
		d = minBackoff
		c += "; raised to paddock's least, 10ms"
	}
	p.app.Set("backoff", backoff(d, max(d, pm2BackoffMax)), c)
	return nil
}

func (p *pm2App) waitReady(v any) error {
	b, err := truthy(v)
	if err != nil {
		return err
	}
	if !b {
		p.app.Note("pm2 wait_ready: false: the default (ready once started: readiness: online).")
		return nil
	}
	if !p.node {
		return fmt.Errorf("pm2 waits for process.send('ready'); paddock's readiness: notify waits for sd_notify READY=1 (see the README's readiness)")
	}
	p.app.Set("readiness", "listening", "pm2 wait_ready: pm2 waits for process.send('ready'); paddock for the worker's server to listen (or readiness: notify, sd_notify READY=1)")
	return nil
}

func (p *pm2App) maxMemory(v any) error {
	n, err := size(v)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("0: no limit")
	}
	p.app.Set("maxMemory", formatSize(n), "pm2 max_memory_restart: "+short(v)+" (pm2's M is MiB); replaced new first, no downtime")
	return nil
}

func (p *pm2App) autostart(v any) error {
	b, err := truthy(v)
	if err != nil {
		return err
	}
	if !b {
		p.app.Set("instances", 0, "pm2 autostart: false: start it with `paddock scale APP N`")
	}
	return nil
}

// logFile returns the file name of the first of keys set, and that key,
// marking them converted.
func (p *pm2App) logFile(keys ...string) (string, string) {
	for _, k := range keys {
		if v, ok := p.src[k]; ok {
			p.done[k] = true
			if s, ok := v.(string); ok {
				return s, k
			}
			p.app.Note("pm2 %s: %s: not converted: not a file name.", k, short(v))
		}
	}
	return "", ""
}

// logsDisabled reads disable_logs.
func (p *pm2App) logsDisabled() bool {
	v, ok := p.src["disable_logs"]
	if !ok {
		return false
	}
	p.done["disable_logs"] = true
	b, _ := truthy(v)
	return b
}

// logs converts PM2's log files into logs:.
func (p *pm2App) logs() {
	out, outKey := p.logFile("out_file", "output")
	errf, errKey := p.logFile("error_file", "err_file", "error")
	all, allKey := p.logFile("log_file", "log")
	if p.logsDisabled() || (out == "/dev/null" && errf == "/dev/null" && all == "") {
		p.app.Set("logs", false, "pm2 disable_logs or out_file/error_file: /dev/null: no files (lines still go to paddock's stdout)")
		return
	}
	switch {
	case all != "":
		p.app.Set("logs", []field{{key: "file", value: toNode(all)}}, "pm2 "+allKey+": stdout and stderr in one file")
		if out != "" || errf != "" {
			p.app.Note("pm2 %s: not converted: paddock writes one log file per app (or a pair with streams: separate); the lines are in %s.", strings.Trim(outKey+", "+errKey, ", "), all)
		}
	case out != "" && (errf == "" || errf == out):
		p.app.Set("logs", []field{{key: "file", value: toNode(out)}}, "pm2 "+outKey+": stdout and stderr in one file")
		if errf == "" {
			p.app.Note("pm2 %s without error_file: paddock writes stderr there too (pm2 wrote it to ~/.pm2/logs).", outKey)
		}
	case out != "":
		p.app.Set("logs", []field{
			{key: "file", value: toNode(out)},
			{key: "streams", value: toNode("separate")},
		}, "pm2 "+outKey+", "+errKey)
		if want := manifest.StderrPath(out); want != errf {
			p.app.Note("pm2 %s: %s: paddock names the stderr file after file: %s (.stderr before the extension).", errKey, errf, want)
		}
	case errf != "":
		p.app.Set("logs", []field{{key: "file", value: toNode(errf)}}, "pm2 "+errKey+": paddock writes stdout there too")
	}
}
