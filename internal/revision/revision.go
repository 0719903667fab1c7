// Package revision tells which revision of a GitOps source the manifests
// are: the commit HEAD names when they are in a git work tree, or the
// target of the link a git-sync sidecar or a Kubernetes ConfigMap volume
// swaps (`current -> rev-abc123`, `..data -> ..2026_12_02_12_00_00.123`).
//
// It reads `.git` itself (HEAD, loose refs, packed-refs, the `.git` file
// of a linked worktree or submodule, `commondir`): no git binary is needed
// where paddock runs, and no library that would read the object store. The
// revision is HEAD's commit; whether the work tree has uncommitted changes
// is not computed (that needs the index and a hash of every file).
package revision

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Kinds of Revision.
const (
	KindGit  = "git"  // HEAD's commit of the git work tree holding the manifests
	KindLink = "link" // the target of a git-sync link or a ConfigMap ..data link
)

// Revision is the revision of the manifests' source. The zero Revision
// means none was found: the manifests are in no git work tree and under no
// swapped link.
type Revision struct {
	// ID is the commit's hash (KindGit) or the link target's name
	// (KindLink): "3f2c…" or "rev-abc123" or "..2026_12_02_12_00_00.123".
	ID string
	// Kind is KindGit or KindLink.
	Kind string
	// Source is the work tree's directory or the link's path.
	Source string
}

// IsZero reports whether r is the zero Revision (none found).
func (r Revision) IsZero() bool { return r == Revision{} }

// String returns "git 3f2c… (/srv/repo)", or "none".
func (r Revision) String() string {
	if r.IsZero() {
		return "none"
	}
	return fmt.Sprintf("%s %s (%s)", r.Kind, r.ID, r.Source)
}

// Of returns the revision of the manifest paths: the revision of each path
// (see OfPath), the first found; when paths have different revisions,
// their IDs joined by "+" in path order (the kind and source of the
// first). An error reading one path's `.git` is returned with the
// revisions of the others.
func Of(paths []string) (Revision, error) {
	var out Revision
	var errs []error
	for _, p := range paths {
		r, err := OfPath(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		switch {
		case r.IsZero():
		case out.IsZero():
			out = r
		case !containsID(out.ID, r.ID):
			out.ID += "+" + r.ID
		}
	}
	return out, errors.Join(errs...)
}

func containsID(joined, id string) bool {
	for _, s := range strings.Split(joined, "+") {
		if s == id {
			return true
		}
	}
	return false
}

// OfPath returns the revision of the manifest file or directory path:
//
//   - git: the nearest directory at or above path (its own directory for a
//     file) that holds `.git`, a directory or a file "gitdir: DIR" (a
//     linked worktree, a submodule, git-sync's worktrees); the revision is
//     the commit HEAD names, directly (detached) or through a branch, loose
//     or packed.
//   - link: else, a directory at or above path that holds a `..data`
//     symlink (a ConfigMap or Secret volume), or the nearest symlink at or
//     above path whose target is a relative name inside its own directory
//     (git-sync's `--link`): the revision is the target's last element.
//     Symlinks to absolute paths or with ".." (/var/run -> /run) are not
//     revisions.
//
// It returns the zero Revision and no error when neither is found, and an
// error naming the file when a `.git` exists but cannot be read as a
// repository (HEAD to an unborn branch, a reftable repository).
func OfPath(path string) (Revision, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return Revision{}, err
	}
	dir := abs
	if fi, err := os.Stat(abs); err == nil && !fi.IsDir() {
		dir = filepath.Dir(abs)
	}
	for d := dir; ; d = filepath.Dir(d) {
		dotgit := filepath.Join(d, ".git")
		if _, err := os.Stat(dotgit); err == nil {
			id, err := gitHead(dotgit)
			if err != nil {
				return Revision{}, fmt.Errorf("revision of %s: %w", path, err)
			}
			return Revision{ID: id, Kind: KindGit, Source: d}, nil
		}
		if d == filepath.Dir(d) {
			break
		}
	}
	return linkRevision(abs), nil
}

// linkRevision returns the link revision of abs (see OfPath), or the zero
// Revision.
func linkRevision(abs string) Revision {
	// A ConfigMap's ..data first: its files are links too (app.yaml ->
	// ..data/app.yaml), which are not the revision.
	for p := abs; ; p = filepath.Dir(p) {
		data := filepath.Join(p, "..data")
		if target, err := os.Readlink(data); err == nil {
			return Revision{ID: filepath.Base(target), Kind: KindLink, Source: data}
		}
		if p == filepath.Dir(p) {
			break
		}
	}
	for p := abs; ; p = filepath.Dir(p) {
		if target, err := os.Readlink(p); err == nil && swappedLink(target) {
			return Revision{ID: filepath.Base(target), Kind: KindLink, Source: p}
		}
		if p == filepath.Dir(p) {
			return Revision{}
		}
	}
}

// swappedLink reports whether a symlink's target is a relative name inside
// the link's own directory, as the links git-sync swaps are ("rev-abc",
// ".worktrees/abc").
func swappedLink(target string) bool {
	if target == "" || filepath.IsAbs(target) {
		return false
	}
	for _, el := range strings.Split(filepath.ToSlash(target), "/") {
		if el == ".." || el == "." {
			return false
		}
	}
	return true
}

// maxRefFile bounds what is read of HEAD, a loose ref, a `.git` file or
// commondir: each is one line.
const maxRefFile = 4096

// maxSymrefDepth bounds a chain of symbolic refs (git's own limit is 5).
const maxSymrefDepth = 5

// gitHead returns the commit HEAD names in the repository whose `.git`
// (directory or file) is dotgit.
func gitHead(dotgit string) (string, error) {
	gitDir, err := resolveGitDir(dotgit)
	if err != nil {
		return "", err
	}
	commonDir := gitDir
	if b, err := readSmall(filepath.Join(gitDir, "commondir")); err == nil {
		c := strings.TrimSpace(b)
		if !filepath.IsAbs(c) {
			c = filepath.Join(gitDir, c)
		}
		commonDir = filepath.Clean(c)
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	ref := "HEAD"
	for range maxSymrefDepth {
		val, err := readRef(gitDir, commonDir, ref)
		if err != nil {
			return "", err
		}
		target, symbolic := strings.CutPrefix(val, "ref: ")
		if !symbolic {
			if !isHash(val) {
				return "", fmt.Errorf("%s: %s is %q, not a commit hash", gitDir, ref, val)
			}
			return val, nil
		}
		if target == "refs/heads/.invalid" {
			return "", fmt.Errorf("%s: a reftable repository (extensions.refStorage), which is not read", gitDir)
		}
		ref = strings.TrimSpace(target)
	}
	return "", fmt.Errorf("%s: HEAD: more than %d symbolic refs in a row", gitDir, maxSymrefDepth)
}

// resolveGitDir returns the git directory of dotgit: dotgit itself, or
// the directory its "gitdir: DIR" line names (relative to dotgit's
// directory).
func resolveGitDir(dotgit string) (string, error) {
	fi, err := os.Stat(dotgit)
	if err != nil {
		return "", err
	}
	if fi.IsDir() {
		return dotgit, nil
	}
	b, err := readSmall(dotgit)
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(b, "\n")
	dir, ok := strings.CutPrefix(strings.TrimSpace(line), "gitdir:")
	if !ok {
		return "", fmt.Errorf("%s: not a \"gitdir: DIR\" file", dotgit)
	}
	dir = strings.TrimSpace(dir)
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(filepath.Dir(dotgit), dir)
	}
	return filepath.Clean(dir), nil
}

// readRef returns the content of the ref named name: HEAD and the
// per-worktree refs from gitDir, the others from commonDir, loose first,
// then packed-refs.
func readRef(gitDir, commonDir, name string) (string, error) {
	if !validRefName(name) {
		return "", fmt.Errorf("%s: invalid ref name %q", gitDir, name)
	}
	dirs := []string{gitDir}
	if commonDir != gitDir {
		dirs = append(dirs, commonDir)
	}
	for _, d := range dirs {
		b, err := readSmall(filepath.Join(d, filepath.FromSlash(name)))
		if err == nil {
			return strings.TrimSpace(b), nil
		}
		if !errors.Is(err, os.ErrNotExist) && !isDirErr(err) {
			return "", err
		}
	}
	if name == "HEAD" {
		return "", fmt.Errorf("%s: no HEAD", gitDir)
	}
	id, err := packedRef(filepath.Join(commonDir, "packed-refs"), name)
	if err != nil {
		return "", err
	}
	if id == "" {
		return "", fmt.Errorf("%s: %s has no commit yet", gitDir, name)
	}
	return id, nil
}

// isDirErr reports whether err is reading a directory as a file (a ref
// name that is a prefix of others: refs/heads/team for refs/heads/team/x).
func isDirErr(err error) bool { return errors.Is(err, syscall.EISDIR) }

// packedRef returns the hash packed-refs gives name, "" when it lists
// none or does not exist.
func packedRef(file, name string) (string, error) {
	f, err := os.Open(file)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), 64*1024)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || line[0] == '^' {
			continue
		}
		hash, ref, ok := strings.Cut(line, " ")
		if ok && strings.TrimSpace(ref) == name && isHash(hash) {
			return hash, nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("%s: %w", file, err)
	}
	return "", nil
}

// validRefName reports whether name may be looked up as a file: HEAD or
// refs/..., with no "..", no empty element and no backslash.
func validRefName(name string) bool {
	if name == "HEAD" {
		return true
	}
	if !strings.HasPrefix(name, "refs/") || strings.Contains(name, "\\") {
		return false
	}
	for _, el := range strings.Split(name, "/") {
		if el == "" || el == "." || el == ".." {
			return false
		}
	}
	return true
}

// isHash reports whether s is a SHA-1 or SHA-256 object name in lower-case
// hex.
func isHash(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// readSmall reads file, at most maxRefFile bytes.
func readSmall(file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxRefFile))
	return string(b), err
}
