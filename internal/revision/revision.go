// Package revision tells which revision of a GitOps source the manifests
// are: the commit HEAD names when they are in a git work tree, or the
// target of the link a git-sync sidecar or a Kubernetes ConfigMap volume
// swaps (`current -> rev-abc123`, `..data -> ..2026_12_02_12_00_00.123`).
//
// It reads `.git` itself (HEAD, loose refs, packed-refs, the `.git` file
// of a linked worktree or submodule, `commondir`, and the object store:
// loose objects, packfiles and their deltas, alternates): no git binary is
// needed where paddock runs, and no library. For a git revision it also
// tells which of the manifest files read differ from HEAD's commit
// (Revision.Modified): each file's blob id, hashed as git does, against
// the blob at its path in HEAD's tree; a file not in the tree is modified
// too. Only the manifest files are compared, not the rest of the work
// tree, and without git's index or its filters (a `.gitattributes` that
// converts line endings makes such a file look modified). When the store
// cannot be read (a SHA-256 repository, a corrupt or truncated object, a
// pack index of another version), Revision.ModifiedUnknown says so: the
// revision is informational and never fails a reload.
package revision

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
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
// swapped link. It is comparable: the supervisor compares two readings
// with == to tell whether the source moved while the files were read.
type Revision struct {
	// ID is the commit's hash (KindGit) or the link target's name
	// (KindLink): "3f2c…" or "rev-abc123" or "..2026_12_02_12_00_00.123".
	ID string
	// Kind is KindGit or KindLink.
	Kind string
	// Source is the work tree's directory or the link's path.
	Source string
	// Modified, for KindGit, lists the manifest files read that differ
	// from HEAD's commit (edited, or not in it), slash-separated and
	// relative to their work tree, sorted, joined by ","; empty when
	// they all match HEAD, or when that could not be told (see
	// ModifiedUnknown). Always empty for KindLink.
	Modified string
	// ModifiedUnknown, for KindGit, is set when whether the manifest
	// files differ from HEAD's commit could not be told (the object
	// store could not be read): Modified is then empty but means nothing.
	ModifiedUnknown bool
}

// IsZero reports whether r is the zero Revision (none found).
func (r Revision) IsZero() bool { return r == Revision{} }

// String returns "git 3f2c… (/srv/repo)", or "none"; followed by
// " modified: a.yaml,b.yaml" when manifest files differ from the commit,
// or " modified: unknown" when that could not be told.
func (r Revision) String() string {
	if r.IsZero() {
		return "none"
	}
	s := fmt.Sprintf("%s %s (%s)", r.Kind, r.ID, r.Source)
	if m := r.ModifiedText(); m != "" {
		s += " modified: " + m
	}
	return s
}

// ModifiedText returns what is said of the manifest files against the
// commit: Modified, "unknown" when ModifiedUnknown, "" when they match
// (or the revision is not a git one).
func (r Revision) ModifiedText() string {
	if r.ModifiedUnknown {
		return "unknown"
	}
	return r.Modified
}

// Of returns the revision of the manifest paths: the revision of each path
// (see OfPath), the first found; when paths have different revisions,
// their IDs joined by "+" in path order (the kind and source of the
// first). An error reading one path's `.git` is returned with the
// revisions of the others. Modified is not computed: see OfFiles.
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

// OfFiles is Of(paths) with, for a git revision, Modified computed over
// files: the manifest files read from paths (manifest.Files(paths)). Each
// file is compared with HEAD's commit of the work tree it is in; one in no
// git work tree is not compared. Whatever keeps a file from being compared
// sets ModifiedUnknown, never an error.
func OfFiles(paths, files []string) (Revision, error) {
	rev, err := Of(paths)
	if rev.Kind != KindGit {
		return rev, err
	}
	modified, ok := modifiedFiles(files)
	rev.Modified = strings.Join(modified, ",")
	rev.ModifiedUnknown = !ok
	if !ok {
		rev.Modified = ""
	}
	return rev, err
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
// repository (HEAD to an unborn branch, a reftable repository). Modified
// is not computed: see OfFiles.
func OfPath(path string) (Revision, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return Revision{}, err
	}
	if workTree, dotgit, ok := findGit(abs); ok {
		id, _, err := gitHead(dotgit)
		if err != nil {
			return Revision{}, fmt.Errorf("revision of %s: %w", path, err)
		}
		return Revision{ID: id, Kind: KindGit, Source: workTree}, nil
	}
	return linkRevision(abs), nil
}

// findGit returns the work tree holding abs (a file or a directory) and
// its `.git`: the nearest directory at or above abs (its own directory for
// a file) that holds `.git`.
func findGit(abs string) (workTree, dotgit string, ok bool) {
	dir := abs
	if fi, err := os.Stat(abs); err == nil && !fi.IsDir() {
		dir = filepath.Dir(abs)
	}
	for d := dir; ; d = filepath.Dir(d) {
		dotgit := filepath.Join(d, ".git")
		if _, err := os.Stat(dotgit); err == nil {
			return d, dotgit, true
		}
		if d == filepath.Dir(d) {
			return "", "", false
		}
	}
}

// modifiedFiles returns the files that differ from HEAD's commit of their
// work tree, relative to it, sorted; ok false when one could not be
// compared.
func modifiedFiles(files []string) (modified []string, ok bool) {
	type repo struct {
		head  objectID
		store *store
		err   error
	}
	repos := map[string]*repo{} // by work tree
	defer func() {
		for _, r := range repos {
			if r.store != nil {
				r.store.close()
			}
		}
	}()
	seen := map[string]bool{}
	ok = true
	for _, f := range files {
		abs, err := filepath.Abs(f)
		if err != nil {
			ok = false
			continue
		}
		workTree, dotgit, found := findGit(abs)
		if !found {
			continue
		}
		r := repos[workTree]
		if r == nil {
			r = &repo{}
			repos[workTree] = r
			var id, commonDir string
			id, commonDir, r.err = gitHead(dotgit)
			if r.err == nil {
				r.head, r.err = parseID(id) // a SHA-256 repository is not read
			}
			if r.err == nil {
				r.store, r.err = openStore(commonDir)
			}
		}
		if r.err != nil {
			ok = false
			continue
		}
		rel, err := filepath.Rel(workTree, abs)
		if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			ok = false
			continue
		}
		rel = filepath.ToSlash(rel)
		differs, err := fileDiffers(r.store, r.head, abs, rel)
		if err != nil {
			ok = false
			continue
		}
		if differs && !seen[rel] {
			seen[rel] = true
			modified = append(modified, rel)
		}
	}
	sort.Strings(modified)
	return modified, ok
}

// fileDiffers reports whether the work tree's file abs differs from the
// blob at rel in the tree of commit head: its content (a symlink's target
// for a symlink) hashed as a blob against the tree's blob id.
func fileDiffers(s *store, head objectID, abs, rel string) (bool, error) {
	want, mode, found, err := s.blobAt(head, rel)
	if err != nil {
		return false, err
	}
	if !found {
		return true, nil // untracked
	}
	var content []byte
	fi, err := os.Lstat(abs)
	if err != nil {
		return false, err
	}
	if fi.Mode()&os.ModeSymlink != 0 && mode == "120000" {
		target, err := os.Readlink(abs)
		if err != nil {
			return false, err
		}
		content = []byte(target)
	} else {
		f, err := openRegular(abs)
		if err != nil {
			return false, err
		}
		content, err = io.ReadAll(io.LimitReader(f, maxObjectSize+1))
		f.Close()
		if err != nil {
			return false, err
		}
		if len(content) > maxObjectSize {
			return false, fmt.Errorf("%s: more than %d bytes", abs, maxObjectSize)
		}
	}
	return hashObject("blob", content) != want, nil
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
// (directory or file) is dotgit, and the repository's common directory
// (where the objects are: a linked worktree's `commondir`).
func gitHead(dotgit string) (id, commonDir string, err error) {
	gitDir, err := resolveGitDir(dotgit)
	if err != nil {
		return "", "", err
	}
	commonDir = gitDir
	if b, err := readSmall(filepath.Join(gitDir, "commondir")); err == nil {
		c := strings.TrimSpace(b)
		if !filepath.IsAbs(c) {
			c = filepath.Join(gitDir, c)
		}
		commonDir = filepath.Clean(c)
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", "", err
	}
	ref := "HEAD"
	for range maxSymrefDepth {
		val, err := readRef(gitDir, commonDir, ref)
		if err != nil {
			return "", "", err
		}
		target, symbolic := strings.CutPrefix(val, "ref: ")
		if !symbolic {
			if !isHash(val) {
				return "", "", fmt.Errorf("%s: %s is %q, not a commit hash", gitDir, ref, val)
			}
			return val, commonDir, nil
		}
		if target == "refs/heads/.invalid" {
			return "", "", fmt.Errorf("%s: a reftable repository (extensions.refStorage), which is not read", gitDir)
		}
		ref = strings.TrimSpace(target)
	}
	return "", "", fmt.Errorf("%s: HEAD: more than %d symbolic refs in a row", gitDir, maxSymrefDepth)
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
	f, err := openRegular(file)
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

// readSmall reads file, at most maxRefFile bytes; a file that is not
// regular (a FIFO) is an error, not a read that blocks.
func readSmall(file string) (string, error) {
	f, err := openRegular(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxRefFile))
	return string(b), err
}
