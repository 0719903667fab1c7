package importer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// SupervisordOptions are the choices of a supervisord conversion.
type SupervisordOptions struct {
	// Environ gives %(ENV_X)s its values, as supervisord's own
	// environment did; nil: none (every ENV_ expression is an error).
	Environ []string
	// Hostname is %(host_node_name)s.
	Hostname string
}

// ImportSupervisord reads a supervisord configuration file and the files
// its [include] names, and converts them.
func ImportSupervisord(file string, opts SupervisordOptions) (*Manifest, error) {
	data, err := readSource(file)
	if err != nil {
		return nil, err
	}
	secs, err := parseINI(file, data)
	if err != nil {
		return nil, err
	}
	var all []*iniSection
	var notes []string
	for _, s := range secs {
		if s.Name != "include" {
			all = append(all, s)
			continue
		}
		inc, n, err := includes(file, s)
		if err != nil {
			return nil, err
		}
		all = append(all, inc...)
		notes = append(notes, n...)
	}
	m, err := ConvertSupervisord(all, filepath.Base(file), opts)
	if err != nil {
		return nil, err
	}
	m.Notes = append(notes, m.Notes...)
	return m, nil
}

// includes reads the files an [include] section names (files=, globs
// separated by blanks, relative to the including file's directory), in
// name order, as supervisord does. Their own [include] sections are not
// followed (supervisord does not either).
func includes(file string, s *iniSection) ([]*iniSection, []string, error) {
	var out []*iniSection
	var notes []string
	for _, k := range s.Keys {
		if k.Name != "files" {
			notes = append(notes, fmt.Sprintf("supervisord [include] %s: not converted: [include] takes only files.", k.Name))
			continue
		}
		here := filepath.Dir(file)
		val, err := expand(k.Value, map[string]string{"here": here})
		if err != nil {
			return nil, nil, fmt.Errorf("%s:%d: [include] files: %w", file, k.Line, err)
		}
		for _, pat := range strings.Fields(val) {
			if !filepath.IsAbs(pat) {
				pat = filepath.Join(here, pat)
			}
			matches, err := filepath.Glob(pat)
			if err != nil {
				return nil, nil, fmt.Errorf("%s:%d: [include] files: %q: %w", file, k.Line, pat, err)
			}
			sort.Strings(matches)
			notes = append(notes, fmt.Sprintf("supervisord [include] files: %s: %d file(s) read and converted here.", pat, len(matches)))
			for _, f := range matches {
				data, err := readSource(f)
				if err != nil {
					return nil, nil, fmt.Errorf("%s:%d: [include]: %w", file, k.Line, err)
				}
				secs, err := parseINI(f, data)
				if err != nil {
					return nil, nil, err
				}
				for _, sec := range secs {
					if sec.Name == "include" {
						notes = append(notes, fmt.Sprintf("supervisord [include] in %s: not followed: included files cannot include others (as in supervisord).", f))
						continue
					}
					out = append(out, sec)
				}
			}
		}
	}
	return out, notes, nil
}

// supervisordSectionNotes say why whole sections have no equivalent.
var supervisordSectionNotes = map[string]string{
	"unix_http_server": "paddock's control socket is a private unix socket (mode 0600, peer credentials checked): paddock run --socket PATH.",
	"inet_http_server": "paddock serves no control over TCP; a read-only status page and /metrics: paddock run --http-addr HOST:PORT.",
	"supervisorctl":    "the paddock command is the client: paddock status, restart, logs ... --socket PATH.",
	"rpcinterface":     "paddock's API is HTTP/JSON on its control socket (docs/api.md); no XML-RPC.",
	"ctlplugin":        "paddock has no client plugins.",
	"eventlistener":    "not supported: paddock has no event listener protocol on a program's stdin/stdout. Follow `paddock events --json` (or the API's event stream) from a program of your own instead.",
	"fcgi-program":     "not supported: paddock hands sockets as systemd does (listen:, LISTEN_FDS from fd 3), not on fd 0 as FastCGI programs expect; run the program with a listen: address and a wrapper that moves the socket to fd 0, or as a plain HTTP server.",
	"group":            "paddock has no groups: each program is an app (paddock restart APP acts on one); put a group's apps in a manifest file of their own.",
}

// supervisordDaemonNotes say why [supervisord]'s own settings have no
// equivalent.
var supervisordDaemonNotes = map[string]string{
	"logfile":          "paddock logs its own events on stderr (--log-format text|json); under systemd the journal keeps them.",
	"logfile_maxbytes": "see logfile.",
	"logfile_backups":  "see logfile.",
	"loglevel":         "paddock run --log-level debug|info|warn|error.",
	"pidfile":          "paddock writes no pid file; find it through its control socket (paddock status).",
	"nodaemon":         "paddock always runs in the foreground: run it under systemd (Type=notify) or as a container's entrypoint.",
	"minfds":           "paddock validate warns when the descriptor limit is too low for the manifests; raise it with systemd LimitNOFILE= or ulimit -n.",
	"minprocs":         "raise the process limit with systemd LimitNPROC= or ulimit -u.",
	"umask":            "workers inherit paddock's umask: set it where paddock starts (systemd UMask=).",
	"user":             "run paddock as that user (systemd User=), or give each app user:.",
	"identifier":       "paddock has no identifier; its control socket tells supervisors apart (--socket).",
	"directory":        "paddock does not change directory; each app's cwd defaults to its manifest's directory.",
	"nocleanup":        "paddock keeps no AUTO child log files to clean up.",
	"childlogdir":      "paddock keeps no AUTO child log files: recent lines are in memory (paddock logs APP); give an app logs: for files.",
	"strip_ansi":       "paddock writes the workers' lines as they come.",
	"silent":           "paddock writes its events on stderr; --log-level warn quietens it.",
	"environment":      "",
}

// ConvertSupervisord converts the sections of a supervisord configuration
// (with its includes) into a manifest. source names the file in comments.
func ConvertSupervisord(secs []*iniSection, source string, opts SupervisordOptions) (*Manifest, error) {
	m := &Manifest{Source: "supervisord " + source}
	var errs []error
	env := map[string]string{}
	for _, kv := range opts.Environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env["ENV_"+k] = v
		}
	}
	global, err := daemonSection(m, secs, env)
	if err != nil {
		errs = append(errs, err)
	}
	taken := map[string]bool{}
	for _, s := range secs {
		kind, name, _ := strings.Cut(s.Name, ":")
		switch kind {
		case "supervisord":
		case "program":
			apps, err := convertProgram(s, name, taken, env, global, opts.Hostname)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			m.Apps = append(m.Apps, apps)
		default:
			reason, ok := supervisordSectionNotes[kind]
			if !ok {
				reason = "not a section paddock import knows."
			}
			var keys []string
			for _, k := range s.Keys {
				keys = append(keys, k.Name)
			}
			m.Notes = append(m.Notes, fmt.Sprintf("supervisord [%s] (%s:%d) %s: not converted: %s", s.Name, filepath.Base(s.File), s.Line, strings.Join(keys, ", "), reason))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return m, nil
}

// daemonSection converts the [supervisord] sections: its environment is
// returned (for every program), its other settings become notes of m.
func daemonSection(m *Manifest, secs []*iniSection, env map[string]string) (*Env, error) {
	var global *Env
	for _, s := range secs {
		if s.Name != "supervisord" {
			continue
		}
		for _, k := range s.Keys {
			if k.Name != "environment" {
				reason, ok := supervisordDaemonNotes[k.Name]
				if !ok {
					reason = "not a setting paddock import knows."
				}
				m.Notes = append(m.Notes, fmt.Sprintf("supervisord [supervisord] %s: not converted: %s", k.Name, reason))
				continue
			}
			v, err := expand(k.Value, withHere(env, s.File))
			if err == nil {
				global, err = parseEnvironment(v)
			}
			if err != nil {
				return nil, fmt.Errorf("%s:%d: [supervisord] environment: %w", s.File, k.Line, err)
			}
			m.Notes = append(m.Notes, "supervisord [supervisord] environment: given to every app in its env (an app's own environment wins).")
		}
	}
	return global, nil
}

// sectionInt reads key of s as a whole number >= least; def when unset.
func sectionInt(s *iniSection, key string, def, least int) (int, error) {
	k := s.Get(key)
	if k == nil {
		return def, nil
	}
	n, err := strconv.Atoi(k.Value)
	if err != nil || n < least {
		return 0, fmt.Errorf("%s:%d: [%s] %s: not a number >= %d: %q", s.File, k.Line, s.Name, key, least, k.Value)
	}
	return n, nil
}

func withHere(vars map[string]string, file string) map[string]string {
	out := make(map[string]string, len(vars)+1)
	for k, v := range vars {
		out[k] = v
	}
	abs, err := filepath.Abs(filepath.Dir(file))
	if err != nil {
		abs = filepath.Dir(file)
	}
	out["here"] = abs
	return out
}

// program is one [program:x] being converted.
type program struct {
	app  *App
	sec  *iniSection
	vals map[string]string // expanded values
	done map[string]bool
}

func (p *program) note(format string, args ...any) { p.app.Note(format, args...) }

// has reports whether the section sets key, and its expanded value.
func (p *program) get(key string) (string, bool) {
	v, ok := p.vals[key]
	if ok {
		p.done[key] = true
	}
	return v, ok
}

func convertProgram(s *iniSection, name string, taken map[string]bool, env map[string]string, global *Env, host string) (*App, error) {
	p := &program{app: &App{}, sec: s, vals: map[string]string{}, done: map[string]bool{}}
	p.app.Name = appName(name, "program", taken)
	p.note("supervisord [%s] (%s:%d)", s.Name, filepath.Base(s.File), s.Line)
	if p.app.Name != name {
		p.note("supervisord [program:%s]: renamed %s: paddock app names are lower-case letters, digits and '-'.", name, p.app.Name)
	}
	vars := withHere(env, s.File)
	vars["program_name"] = name
	vars["group_name"] = name
	if host == "" {
		host, _ = os.Hostname()
	}
	vars["host_node_name"] = host
	numprocs, err := sectionInt(s, "numprocs", 1, 1)
	if err != nil {
		return nil, err
	}
	start, err := sectionInt(s, "numprocs_start", 0, 0)
	if err != nil {
		return nil, err
	}
	vars["numprocs"] = strconv.Itoa(numprocs)
	vars["process_num"] = strconv.Itoa(start)
	for _, k := range s.Keys {
		v, err := expand(k.Value, vars)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: [%s] %s: %w", s.File, k.Line, s.Name, k.Name, err)
		}
		if strings.Contains(k.Value, "process_num)") && numprocs > 1 && k.Name != "process_name" {
			p.note("supervisord %s: uses %%(process_num): paddock gives every worker the same %s; %%(process_num) was expanded to %d (the first). Each worker can read its number in PADDOCK_WORKER_ID instead.", k.Name, k.Name, start)
		}
		if strings.Contains(k.Value, "%(ENV_") {
			p.note("supervisord %s: %%(ENV_...)s expanded from the environment of paddock import, as supervisord did from its own at start.", k.Name)
		}
		p.vals[k.Name] = v
	}
	if err := p.convert(numprocs, global); err != nil {
		return nil, fmt.Errorf("%s:%d: [%s] %w", s.File, s.Line, s.Name, err)
	}
	return p.app, nil
}
