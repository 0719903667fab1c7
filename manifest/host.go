package manifest

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
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
// Exec must be executable; the program executed (interpreter or Exec) must
// be one the kernel can run (see runnable); the working directory must be a
// directory; the user and group must exist and the supervisor must be root
// to use them; no two unix `listen:` paths may lead to one socket file
// through a symbolic link. It fills in App.Resolved for every app that
// passes.
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
	checkSocketPaths(set, &l)
	return l.err()
}

// checkSocketPaths reports two unix `listen:` paths that name one socket
// file through a symbolic link (unix:/var/run/web.sock and
// unix:/run/web.sock where /var/run links to /run): Validate, which reads
// no file, compares the paths as written (made absolute and cleaned), and
// the second bind would fail at run time. A directory that does not exist
// yet is compared as written.
func checkSocketPaths(set *Set, l *errorList) {
	type decl struct {
		app string
		ln  Listen
		pos Pos
	}
	var all []decl
	for _, name := range set.Names() {
		a := set.Apps[name]
		for _, ln := range a.Listen {
			if ln.Network == "unix" {
				all = append(all, decl{name, ln, a.posOf(fmt.Sprintf("listen[%d]", ln.Index))})
			}
		}
	}
	// The first declaration in the files is the one the others repeat.
	slices.SortStableFunc(all, func(a, b decl) int { return a.pos.Compare(b.pos) })
	seen := map[string]decl{}
	for _, d := range all {
		real := d.ln.Address
		if dir, err := filepath.EvalSymlinks(filepath.Dir(real)); err == nil {
			real = filepath.Join(dir, filepath.Base(real))
		}
		first, dup := seen[real]
		if !dup {
			seen[real] = d
			continue
		}
		if first.ln.Key() == d.ln.Key() {
			continue // the same path as written: Validate reported it
		}
		field := fmt.Sprintf("apps.%s.listen[%d]", d.app, d.ln.Index)
		l.add(d.pos, field, "%s is the socket %s of app %s at %s: both paths lead to %s",
			d.ln.Raw, first.ln.Raw, first.app, first.pos, real)
	}
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
		} else if !runnable(ip, binfmtMiscDir) {
			l.add(a.posOf("execPath"), field+".execPath", "%s is not a program the kernel can run: it has no #! line; add one (e.g. #!/bin/sh)", ip)
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
		} else if !runnable(p, binfmtMiscDir) {
			// It would fail every start with ENOEXEC, "exec format
			// error", and crash-loop.
			l.add(a.posOf("exec"), field+".exec", "%s is not a program the kernel can run: it has no #! line; add one (e.g. #!/bin/sh) or set execPath", p)
			ok = false
		}
		r.Path = p
		r.Argv = append([]string{p}, a.Args...)
	}

	if r.HealthExec = resolveHealth(a, base, pathEnv, l); a.HealthCheck.Kind() == ProbeExec && r.HealthExec == nil {
		ok = false
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

// binfmtMiscDir is where the kernel lists the program formats registered
// with binfmt_misc, when it is mounted.
const binfmtMiscDir = "/proc/sys/fs/binfmt_misc"

// headSize is how much of a file the kernel reads to choose how to run it
// (BINPRM_BUF_SIZE).
const headSize = 256

// runnable reports whether the kernel can execute the file at p, an
// executable regular file: an ELF binary, a script whose first line starts
// with "#!", or a format registered with binfmt_misc (listed in binfmtDir).
// Anything else fails execve with ENOEXEC. It reads at most the first
// headSize bytes, from a descriptor opened without blocking (a FIFO put at
// p since it was checked cannot hang it). A file it cannot open or read,
// or that is no longer a regular file, is left for exec to judge: true.
func runnable(p, binfmtDir string) bool {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return true // execute-only, or gone: exec will tell
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return true
	}
	head := make([]byte, headSize)
	n := 0
	for n < len(head) {
		m, err := unix.Read(fd, head[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return true
		}
		if m == 0 {
			break
		}
		n += m
	}
	if n >= 4 && string(head[:4]) == "\x7fELF" || n >= 2 && string(head[:2]) == "#!" {
		return true
	}
	// The kernel compares binfmt_misc magic with its buffer, zeros past
	// the end of the file: head is as it is.
	return binfmtMatch(binfmtDir, p, head)
}

// binfmtMatch reports whether an enabled binfmt_misc format in dir matches
// the file at path, whose first headSize bytes (zeros past its end) are
// head: by its extension (what follows the last '.' of path), or by its
// magic bytes at their offset, under their mask. It reads the entries as
// the kernel shows them:
//
//	enabled
//	interpreter /usr/bin/qemu-aarch64-static
//	flags: OCF
//	offset 0
//	magic 7f454c46...
//	mask ffffffff...
//
// or "extension .jar" in place of offset, magic and mask. With binfmt_misc
// disabled or not mounted, nothing matches.
func binfmtMatch(dir, path string, head []byte) bool {
	status, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil || strings.TrimSpace(string(status)) != "enabled" {
		return false
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	ext := ""
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		ext = path[i+1:]
	}
	for _, e := range entries {
		if name := e.Name(); name == "status" || name == "register" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		lines := strings.Split(string(data), "\n")
		if len(lines) == 0 || lines[0] != "enabled" {
			continue
		}
		var offset int
		var magic, mask []byte
		var hasExt, hasMagic bool
		bad := false
		for _, line := range lines[1:] {
			k, v, _ := strings.Cut(line, " ")
			switch k {
			case "extension":
				if x, ok := strings.CutPrefix(v, "."); ok && x == ext && ext != "" {
					hasExt = true
				}
			case "offset":
				offset, err = strconv.Atoi(v)
				bad = bad || err != nil
			case "magic":
				magic, err = hex.DecodeString(v)
				bad = bad || err != nil
				hasMagic = true
			case "mask":
				mask, err = hex.DecodeString(v)
				bad = bad || err != nil
			}
		}
		if hasExt {
			return true
		}
		if !hasMagic || bad || offset < 0 || offset+len(magic) > len(head) || (mask != nil && len(mask) != len(magic)) {
			continue
		}
		match := true
		for j, m := range magic {
			diff := head[offset+j] ^ m
			if mask != nil {
				diff &= mask[j]
			}
			if diff != 0 {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
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
