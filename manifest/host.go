package manifest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Host is what CheckHost needs to know of the machine the workers will run
// on.
type Host struct {
	// Euid is the supervisor's effective user id; `user:` needs 0.
	Euid int
	// Environ is the supervisor's environment; its PATH finds programs
	// unless an app's env sets PATH.
	Environ []string
}

// CurrentHost describes this process.
func CurrentHost() Host {
	return Host{Euid: os.Geteuid(), Environ: os.Environ()}
}

// CheckHost resolves each app of set against the machine, as a worker would
// be started: the interpreter (when there is one) must exist and be
// executable, the script must exist and be readable; without an interpreter
// Exec must be executable; the working directory must be a directory; the
// user and group must exist and the supervisor must be root to use them. It
// fills in App.Resolved for every app that passes.
func CheckHost(set *Set, host Host) error {
	var l errorList
	for _, name := range set.Names() {
		a := set.Apps[name]
		if a.Exec == "" {
			continue // already reported
		}
		r, ok := resolve(a, host, &l)
		if ok {
			a.Resolved = r
		}
	}
	return l.err()
}

func resolve(a *App, host Host, l *errorList) (Resolved, bool) {
	field := "apps." + a.Name
	base := manifestDir(a)
	pathEnv := lookupEnv(host.Environ, "PATH")
	if p, ok := a.Env["PATH"]; ok {
		pathEnv = p
	}
	ok := true
	var r Resolved

	r.Dir = base
	if a.Cwd != "" {
		r.Dir = absFrom(base, a.Cwd)
	}
	if fi, err := os.Stat(r.Dir); err != nil {
		l.add(a.posOf("cwd"), field+".cwd", "%s", describe(r.Dir, err))
		ok = false
	} else if !fi.IsDir() {
		l.add(a.posOf("cwd"), field+".cwd", "%s is not a directory", r.Dir)
		ok = false
	}

	if interp := interpreter(a); interp != "" {
		ip, err := findProgram(base, interp, pathEnv)
		if err != nil {
			l.add(a.posOf("execPath"), field+".execPath", "%s", err)
			ok = false
		}
		script := absFrom(base, a.Exec)
		if err := readable(script); err != nil {
			l.add(a.posOf("exec"), field+".exec", "%s", err)
			ok = false
		}
		r.Path = ip
		r.Argv = append(append(append([]string{ip}, a.ExecArgv...), script), a.Args...)
	} else {
		p, err := findProgram(base, a.Exec, pathEnv)
		if err != nil {
			l.add(a.posOf("exec"), field+".exec", "%s", err)
			ok = false
		}
		r.Path = p
		r.Argv = append([]string{p}, a.Args...)
	}

	if a.User != "" {
		if host.Euid != 0 {
			l.add(a.posOf("user"), field+".user", "running workers as another user needs the supervisor to run as root (it runs as uid %d)", host.Euid)
			ok = false
		} else if c, err := lookupCredential(a.User, a.Group); err != nil {
			var ge groupError
			if errors.As(err, &ge) {
				l.add(a.posOf("group"), field+".group", "%s", err)
			} else {
				l.add(a.posOf("user"), field+".user", "%s", err)
			}
			ok = false
		} else {
			r.Credential = c
		}
	}
	return r, ok
}

// manifestDir is the absolute directory of the file that declares a.
func manifestDir(a *App) string {
	dir, err := filepath.Abs(filepath.Dir(a.Source.File))
	if err != nil {
		return filepath.Dir(a.Source.File)
	}
	return dir
}

func absFrom(base, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(base, p)
}

func lookupEnv(environ []string, key string) string {
	for i := len(environ) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(environ[i], key+"="); ok {
			return v
		}
	}
	return ""
}

// findProgram resolves a program as the worker will run it: a name with a
// slash is a path relative to base; a bare name is looked up in pathEnv
// (relative PATH entries are skipped, as os/exec refuses them). The result
// must be an executable regular file.
func findProgram(base, name, pathEnv string) (string, error) {
	if strings.Contains(name, "/") {
		p := absFrom(base, name)
		return p, executable(p)
	}
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" || !filepath.IsAbs(dir) {
			continue
		}
		p := filepath.Join(dir, name)
		if executable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%q not found in PATH (write ./%s for a file beside the manifest)", name, name)
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return errors.New(describe(p, err))
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", p)
	}
	if fi.Mode().Perm()&0o111 == 0 || unix.Access(p, unix.X_OK) != nil {
		return fmt.Errorf("%s is not executable", p)
	}
	return nil
}

func readable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return errors.New(describe(p, err))
	}
	if fi.IsDir() {
		return fmt.Errorf("%s is a directory", p)
	}
	if unix.Access(p, unix.R_OK) != nil {
		return fmt.Errorf("%s is not readable", p)
	}
	return nil
}

func describe(p string, err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Sprintf("%s does not exist", p)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Sprintf("%s: permission denied", p)
	}
	return err.Error()
}

// groupError marks a problem with `group:` rather than `user:`.
type groupError struct{ error }

// lookupCredential finds the uid, primary gid and supplementary groups of
// name (a user name or a uid). A numeric uid with no passwd entry is taken
// as is, with the gid of the same number and no supplementary groups.
// group, when set, replaces the primary gid.
func lookupCredential(name, group string) (*Credential, error) {
	c := &Credential{}
	u, err := user.Lookup(name)
	if err != nil {
		if id, convErr := strconv.ParseUint(name, 10, 32); convErr == nil {
			u, err = user.LookupId(name)
			if err != nil {
				c.Uid, c.Gid = uint32(id), uint32(id)
				u = nil
			}
		} else {
			return nil, fmt.Errorf("unknown user %q", name)
		}
	}
	if u != nil {
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("user %q has a non-numeric id", name)
		}
		c.Uid, c.Gid = uint32(uid), uint32(gid)
		if ids, err := u.GroupIds(); err == nil {
			for _, s := range ids {
				if g, err := strconv.ParseUint(s, 10, 32); err == nil {
					c.Groups = append(c.Groups, uint32(g))
				}
			}
		}
	}
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			if id, convErr := strconv.ParseUint(group, 10, 32); convErr == nil {
				if g, err = user.LookupGroupId(group); err != nil {
					c.Gid = uint32(id)
					return c, nil
				}
			} else {
				return nil, groupError{fmt.Errorf("unknown group %q", group)}
			}
		}
		gid, err := strconv.ParseUint(g.Gid, 10, 32)
		if err != nil {
			return nil, groupError{fmt.Errorf("group %q has a non-numeric id", group)}
		}
		c.Gid = uint32(gid)
	}
	return c, nil
}
