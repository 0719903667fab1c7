package manifest

import (
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/paddock-sh/paddock/internal/cpuquota"
)

// Files expands manifest paths as given on the command line into the files
// they name, in order: a file stands for itself; a directory for its *.yaml
// and *.yml files (not recursive, names starting with "." skipped), sorted by
// name. A file reached twice is read once. Paths that cannot be read are
// reported as *PathError. In a directory, a *.yaml entry that is not a
// regular file once links are followed (a FIFO, a link to a device) is
// reported as a *FileError (ErrNotRegular), not skipped: it is a mistake
// the operator must see; only subdirectories are skipped.
func Files(paths []string) ([]string, error) {
	var l errorList
	var files []string
	seen := map[string]bool{}
	addFile := func(p string) {
		abs, err := filepath.Abs(p)
		if err != nil {
			abs = p
		}
		if !seen[abs] {
			seen[abs] = true
			files = append(files, p)
		}
	}
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			l.addErr(&PathError{Path: p, Err: err})
			continue
		}
		if !fi.IsDir() {
			addFile(p)
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			l.addErr(&PathError{Path: p, Err: err})
			continue
		}
		var names []string
		for _, e := range entries {
			n := e.Name()
			if strings.HasPrefix(n, ".") || !(strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) {
				continue
			}
			// A symlink to a file counts (ConfigMap volumes are made of
			// them); a subdirectory does not; anything else is reported.
			if st, err := os.Stat(filepath.Join(p, n)); err == nil {
				if st.IsDir() {
					continue
				}
				if err := notRegular(filepath.Join(p, n), st.Mode()); err != nil {
					l.addErr(err)
					continue
				}
			}
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			addFile(filepath.Join(p, n))
		}
	}
	return files, l.err()
}

// Load reads, decodes, validates and checks the manifests at paths against
// host, and resolves `instances: auto`. On any problem it returns every
// problem found, in every file, as one error (see Errors); the Set is then
// not to be used. The Set's Files describe what was read of each file.
//
// Load reads only regular files, at most 8 MiB of each, and never blocks on
// a file's kind; a file that a process has open for writing is not read but
// reported (ErrOpenForWriting): see readFile. It can still block on a
// filesystem that does not answer.
func Load(paths []string, host Host) (*Set, error) {
	var l errorList
	files, err := Files(paths)
	for _, e := range Errors(err) {
		l.addErr(e)
	}
	var apps []*App
	var states []FileState
	var topLogs *Logs
	for _, f := range files {
		data, state, err := readFile(f)
		if err != nil {
			l.addErr(err)
			continue
		}
		states = append(states, state)
		decoded, err := DecodeFile(f, data)
		for _, e := range Errors(err) {
			l.addErr(e)
		}
		apps = append(apps, decoded.Apps...)
		switch {
		case decoded.Logs == nil:
		case topLogs != nil:
			l.addErr(topLogsError(decoded.Logs, topLogs))
		default:
			topLogs = decoded.Logs
		}
	}
	// The top-level logs: reaches the apps of every file.
	applyLogs(apps, topLogs)
	set, err := Validate(apps)
	for _, e := range Errors(err) {
		l.addErr(e)
	}
	set.Files = states
	for _, e := range Errors(CheckHost(set, host)) {
		l.addErr(e)
	}
	ResolveAuto(set, cpuquota.Available())
	if err := l.err(); err != nil {
		return nil, err
	}
	return set, nil
}

// ResolveAuto sets Instances of every `instances: auto` app to cpus.
func ResolveAuto(set *Set, cpus int) {
	for _, a := range set.Apps {
		if a.InstancesAuto {
			a.Instances = cpus
		}
	}
}
