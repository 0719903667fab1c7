package revision

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/paddock-sh/paddock/internal/testkit"
)

// newRepo makes a repository with one commit holding deploy/app.yaml and
// returns its directory.
func newRepo(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("these tests need the git binary (test time only): apt-get install git")
	}
	dir := t.TempDir()
	testkit.Git(t, dir, "init", "-q", "-b", "main")
	commitFile(t, dir, "deploy/app.yaml", "apps: {}\n")
	return dir
}

// commitFile writes name in the work tree dir and commits it.
func commitFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	writeFile(t, dir, name, content)
	testkit.Git(t, dir, "add", name)
	testkit.Git(t, dir, "commit", "-q", "-m", "change "+name)
	return testkit.Git(t, dir, "rev-parse", "HEAD")
}

func wantRev(t *testing.T, path string, want Revision) {
	t.Helper()
	got, err := OfPath(path)
	if err != nil {
		t.Fatalf("OfPath(%s): %v", path, err)
	}
	if got != want {
		t.Fatalf("OfPath(%s) = %+v, want %+v", path, got, want)
	}
}

func TestGitBranchLooseAndPacked(t *testing.T) {
	repo := newRepo(t)
	head := testkit.Git(t, repo, "rev-parse", "HEAD")
	want := Revision{ID: head, Kind: KindGit, Source: repo}
	// A directory, a file, and the work tree itself.
	wantRev(t, filepath.Join(repo, "deploy"), want)
	wantRev(t, filepath.Join(repo, "deploy", "app.yaml"), want)
	wantRev(t, repo, want)

	// The branch packed: no loose ref file any more.
	testkit.Git(t, repo, "pack-refs", "--all")
	if _, err := os.Stat(filepath.Join(repo, ".git", "refs", "heads", "main")); !os.IsNotExist(err) {
		t.Fatalf("refs/heads/main still loose after pack-refs: %v", err)
	}
	wantRev(t, filepath.Join(repo, "deploy"), want)

	// A new commit makes a loose ref that wins over the packed one.
	next := commitFile(t, repo, "deploy/app.yaml", "apps: {}\n# 2\n")
	if next == head {
		t.Fatal("no new commit")
	}
	wantRev(t, filepath.Join(repo, "deploy"), Revision{ID: next, Kind: KindGit, Source: repo})
}

func TestGitBranchWithSlashes(t *testing.T) {
	repo := newRepo(t)
	testkit.Git(t, repo, "checkout", "-q", "-b", "team/release")
	id := commitFile(t, repo, "deploy/app.yaml", "apps: {}\n# release\n")
	wantRev(t, repo, Revision{ID: id, Kind: KindGit, Source: repo})
	testkit.Git(t, repo, "pack-refs", "--all")
	wantRev(t, repo, Revision{ID: id, Kind: KindGit, Source: repo})
}

func TestGitDetachedHead(t *testing.T) {
	repo := newRepo(t)
	first := testkit.Git(t, repo, "rev-parse", "HEAD")
	commitFile(t, repo, "deploy/app.yaml", "apps: {}\n# 2\n")
	testkit.Git(t, repo, "checkout", "-q", "--detach", first)
	wantRev(t, filepath.Join(repo, "deploy"), Revision{ID: first, Kind: KindGit, Source: repo})
}

func TestGitLinkedWorktree(t *testing.T) {
	repo := newRepo(t)
	wt := filepath.Join(t.TempDir(), "wt")
	testkit.Git(t, repo, "worktree", "add", "-q", "-b", "other", wt)
	id := commitFile(t, wt, "deploy/app.yaml", "apps: {}\n# other\n")
	if fi, err := os.Stat(filepath.Join(wt, ".git")); err != nil || fi.IsDir() {
		t.Fatalf("the worktree's .git is not a file: %v", err)
	}
	wantRev(t, filepath.Join(wt, "deploy"), Revision{ID: id, Kind: KindGit, Source: wt})
	// The main work tree keeps its own HEAD.
	wantRev(t, repo, Revision{ID: testkit.Git(t, repo, "rev-parse", "main"), Kind: KindGit, Source: repo})
	// Its branch packed in the common directory.
	testkit.Git(t, repo, "pack-refs", "--all")
	wantRev(t, filepath.Join(wt, "deploy"), Revision{ID: id, Kind: KindGit, Source: wt})
}

func TestGitSubmodule(t *testing.T) {
	sub := newRepo(t)
	subHead := testkit.Git(t, sub, "rev-parse", "HEAD")
	super := newRepo(t)
	testkit.Git(t, super, "-c", "protocol.file.allow=always", "submodule", "add", "-q", sub, "manifests")
	testkit.Git(t, super, "commit", "-q", "-m", "add submodule")
	dir := filepath.Join(super, "manifests", "deploy")
	// The submodule's .git is a file pointing into the superproject's .git/modules.
	wantRev(t, dir, Revision{ID: subHead, Kind: KindGit, Source: filepath.Join(super, "manifests")})
}

func TestGitUnbornBranchIsAnError(t *testing.T) {
	dir := t.TempDir()
	testkit.Git(t, dir, "init", "-q", "-b", "main")
	if _, err := OfPath(dir); err == nil || !strings.Contains(err.Error(), "refs/heads/main has no commit yet") {
		t.Fatalf("OfPath of an empty repository: %v", err)
	}
}

// TestGitSyncLayout is git-sync's: a link `current` swapped atomically
// (rename over it) from one checkout directory to the next.
func TestGitSyncLayout(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"rev-abc123/deploy", "rev-def456/deploy"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(root, "current")
	if err := os.Symlink("rev-abc123", link); err != nil {
		t.Fatal(err)
	}
	wantRev(t, filepath.Join(link, "deploy"), Revision{ID: "rev-abc123", Kind: KindLink, Source: link})
	wantRev(t, link, Revision{ID: "rev-abc123", Kind: KindLink, Source: link})

	tmp := filepath.Join(root, "tmp-link")
	if err := os.Symlink("rev-def456", tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}
	wantRev(t, filepath.Join(link, "deploy"), Revision{ID: "rev-def456", Kind: KindLink, Source: link})
}

// TestGitSyncV4Layout: git-sync v4 links to .worktrees/HASH, a git linked
// worktree: the commit comes from git, in full.
func TestGitSyncV4Layout(t *testing.T) {
	repo := newRepo(t)
	head := testkit.Git(t, repo, "rev-parse", "HEAD")
	wtDir := filepath.Join(repo, ".worktrees", head)
	testkit.Git(t, repo, "worktree", "add", "-q", "--detach", wtDir, head)
	link := filepath.Join(repo, "current")
	if err := os.Symlink(filepath.Join(".worktrees", head), link); err != nil {
		t.Fatal(err)
	}
	wantRev(t, filepath.Join(link, "deploy"), Revision{ID: head, Kind: KindGit, Source: link})
}

// TestConfigMapLayout is a ConfigMap volume's: each file a link into
// ..data, itself a link to a timestamped directory swapped on update.
func TestConfigMapLayout(t *testing.T) {
	dir := t.TempDir()
	ts := "..2026_12_02_11_00_00.123456789"
	if err := os.MkdirAll(filepath.Join(dir, ts), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ts, "app.yaml"), []byte("apps: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(ts, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..data/app.yaml", filepath.Join(dir, "app.yaml")); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "..data")
	wantRev(t, dir, Revision{ID: ts, Kind: KindLink, Source: data})
	wantRev(t, filepath.Join(dir, "app.yaml"), Revision{ID: ts, Kind: KindLink, Source: data})

	ts2 := "..2026_12_02_11_05_00.987654321"
	if err := os.MkdirAll(filepath.Join(dir, ts2), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(ts2, filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), data); err != nil {
		t.Fatal(err)
	}
	wantRev(t, dir, Revision{ID: ts2, Kind: KindLink, Source: data})
}

func TestNoRevision(t *testing.T) {
	dir := t.TempDir()
	// A link to an absolute path, or one with "..", is no revision.
	if err := os.Mkdir(filepath.Join(dir, "real"), 0o755); err != nil {
		t.Fatal(err)
	}
	abs := filepath.Join(dir, "abs")
	if err := os.Symlink(filepath.Join(dir, "real"), abs); err != nil {
		t.Fatal(err)
	}
	up := filepath.Join(dir, "real", "up")
	if err := os.Symlink("../real", up); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, abs, up, filepath.Join(dir, "missing.yaml")} {
		wantRev(t, p, Revision{})
	}
}

func TestOfSeveralPaths(t *testing.T) {
	a, b := newRepo(t), newRepo(t)
	ha, hb := testkit.Git(t, a, "rev-parse", "HEAD"), testkit.Git(t, b, "rev-parse", "HEAD")
	plain := t.TempDir()
	got, err := Of([]string{plain, a, filepath.Join(a, "deploy"), b})
	if err != nil {
		t.Fatal(err)
	}
	want := Revision{ID: ha + "+" + hb, Kind: KindGit, Source: a}
	if ha == hb {
		want.ID = ha
	}
	if got != want {
		t.Fatalf("Of = %+v, want %+v", got, want)
	}
}

func TestBrokenGitDir(t *testing.T) {
	cases := map[string]string{
		"not a gitdir file": "hello\n",
		"gitdir missing":    "gitdir: /nonexistent/paddock-test\n",
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, ".git"), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := OfPath(dir); err == nil {
				t.Fatal("no error")
			}
		})
	}
	t.Run("HEAD not a hash", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, ".git"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, ".git", "HEAD"), []byte("../../etc/passwd\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := OfPath(dir); err == nil || !strings.Contains(err.Error(), "not a commit hash") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("symbolic ref outside refs", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, ".git"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, ".git", "HEAD"), []byte("ref: ../../../etc/passwd\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := OfPath(dir); err == nil || !strings.Contains(err.Error(), "invalid ref name") {
			t.Fatalf("err = %v", err)
		}
	})
}

// FuzzGitDir: whatever HEAD, a loose ref, packed-refs and a .git file
// hold, OfPath returns a commit hash or an error, and never reads outside
// the repository's directories.
func FuzzGitDir(f *testing.F) {
	f.Add("ref: refs/heads/main\n", "", "# pack-refs with: peeled fully-peeled sorted \n0123456789abcdef0123456789abcdef01234567 refs/heads/main\n", false)
	f.Add("ref: refs/heads/x\n", "ref: refs/heads/x\n", "", false)
	f.Add("0123456789abcdef0123456789abcdef01234567\n", "", "", true)
	f.Add("ref: refs/heads/../../../x\n", "", "^0123\n", false)
	f.Fuzz(func(t *testing.T, head, loose, packed string, gitFile bool) {
		dir := t.TempDir()
		gitDir := filepath.Join(dir, ".git")
		if gitFile {
			gitDir = filepath.Join(dir, "real-gitdir")
			if err := os.WriteFile(filepath.Join(dir, ".git"), []byte("gitdir: real-gitdir\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.MkdirAll(filepath.Join(gitDir, "refs", "heads"), 0o755); err != nil {
			t.Fatal(err)
		}
		for name, content := range map[string]string{"HEAD": head, "refs/heads/x": loose, "packed-refs": packed} {
			if err := os.WriteFile(filepath.Join(gitDir, filepath.FromSlash(name)), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		r, err := OfPath(dir)
		if err != nil {
			return
		}
		if r.Kind != KindGit || !isHash(r.ID) || r.Source != dir {
			t.Fatalf("OfPath = %+v", r)
		}
	})
}
