package revision

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/paddock-sh/paddock/internal/testkit"
)

// writeFile writes content to name in the work tree dir.
func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// manifestFiles returns the *.yaml files of dir/deploy, as manifest.Files
// lists them.
func manifestFiles(t *testing.T, repo string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repo, "deploy", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// wantModified checks OfFiles of repo/deploy: HEAD's commit, and
// Modified as want, known.
func wantModified(t *testing.T, repo, want string) {
	t.Helper()
	got, err := OfFiles([]string{filepath.Join(repo, "deploy")}, manifestFiles(t, repo))
	if err != nil {
		t.Fatalf("OfFiles: %v", err)
	}
	head := testkit.Git(t, repo, "rev-parse", "HEAD")
	if got.ID != head || got.Kind != KindGit || got.Modified != want || got.ModifiedUnknown {
		t.Fatalf("OfFiles = %+v, want ID %s, Modified %q, known", got, head, want)
	}
	if want != "" && !strings.HasSuffix(got.String(), " modified: "+want) {
		t.Fatalf("String() = %q", got.String())
	}
}

// similarManifest is a manifest of many lines, of which commit n changes
// one: successive versions delta well against each other.
func similarManifest(n int) string {
	var b strings.Builder
	b.WriteString("apps:\n")
	for i := range 60 {
		fmt.Fprintf(&b, "  app%d:\n    exec: /bin/app%d --port %d\n", i, i, 8000+i)
	}
	fmt.Fprintf(&b, "# version %d\n", n)
	return b.String()
}

// TestModified: the manifest files that differ from HEAD's commit, as a
// repository's objects move from loose to packed to deltas.
func TestModified(t *testing.T) {
	repo := newRepo(t)
	for n := range 6 {
		commitFile(t, repo, "deploy/web.yaml", similarManifest(n))
	}
	// Loose objects only.
	if packs, _ := filepath.Glob(filepath.Join(repo, ".git", "objects", "pack", "*.pack")); len(packs) != 0 {
		t.Fatalf("packs before gc: %v", packs)
	}
	steps := []struct {
		name string
		do   func()
		want string
	}{
		{"clean, loose", func() {}, ""},
		{"edited in place", func() { writeFile(t, repo, "deploy/web.yaml", similarManifest(99)) }, "deploy/web.yaml"},
		{"an untracked manifest too", func() { writeFile(t, repo, "deploy/new.yaml", "apps: {}\n") }, "deploy/new.yaml,deploy/web.yaml"},
		{"committed", func() {
			testkit.Git(t, repo, "add", "-A")
			testkit.Git(t, repo, "commit", "-q", "-m", "edit")
		}, ""},
		{"clean, packed", func() { testkit.Git(t, repo, "gc", "-q") }, ""},
		{"dirty, packed", func() { writeFile(t, repo, "deploy/app.yaml", "apps: {x: {}}\n") }, "deploy/app.yaml"},
		{"clean, packed with deltas", func() {
			writeFile(t, repo, "deploy/app.yaml", "apps: {}\n")
			for n := 6; n < 12; n++ {
				commitFile(t, repo, "deploy/web.yaml", similarManifest(n))
			}
			testkit.Git(t, repo, "gc", "-q", "--aggressive", "--prune=now")
			if loose, _ := filepath.Glob(filepath.Join(repo, ".git", "objects", "??", "*")); len(loose) != 0 {
				t.Fatalf("loose objects after gc: %v", loose)
			}
			// git keeps the newest version whole and older ones as
			// deltas: an older commit is read through them.
			testkit.Git(t, repo, "checkout", "-q", "--detach", "HEAD~3")
		}, ""},
		{"dirty, packed with deltas", func() { writeFile(t, repo, "deploy/web.yaml", similarManifest(11)) }, "deploy/web.yaml"},
	}
	for _, s := range steps {
		s.do()
		t.Run(s.name, func(t *testing.T) { wantModified(t, repo, s.want) })
	}
	// The objects read for deploy/web.yaml at HEAD include a delta: the
	// blob, or a tree above it.
	deltas := deltaObjects(t, repo)
	var read []string
	for _, spec := range []string{"HEAD^{tree}", "HEAD:deploy", "HEAD:deploy/web.yaml"} {
		read = append(read, testkit.Git(t, repo, "rev-parse", spec))
	}
	found := false
	for _, id := range read {
		found = found || deltas[id]
	}
	if !found {
		t.Fatalf("none of the objects read (%v) is a delta in the pack: the delta path is not tested", read)
	}
}

// deltaObjects returns the objects stored as deltas in repo's packs, from
// `git verify-pack -v`: their lines have a depth and a base after the
// sizes and offset.
func deltaObjects(t *testing.T, repo string) map[string]bool {
	t.Helper()
	idxs, err := filepath.Glob(filepath.Join(repo, ".git", "objects", "pack", "*.idx"))
	if err != nil || len(idxs) == 0 {
		t.Fatalf("no pack: %v", err)
	}
	out := map[string]bool{}
	for _, idx := range idxs {
		for _, line := range strings.Split(testkit.Git(t, repo, "verify-pack", "-v", idx), "\n") {
			f := strings.Fields(line)
			if len(f) == 7 && isHash(f[0]) {
				out[f[0]] = true
			}
		}
	}
	return out
}

// TestModifiedLinkedWorktree: a linked worktree's objects are in the
// common directory.
func TestModifiedLinkedWorktree(t *testing.T) {
	repo := newRepo(t)
	testkit.Git(t, repo, "gc", "-q")
	wt := filepath.Join(t.TempDir(), "wt")
	testkit.Git(t, repo, "worktree", "add", "-q", "-b", "other", wt)
	wantModified(t, wt, "")
	writeFile(t, wt, "deploy/app.yaml", "apps: {edited: {}}\n")
	wantModified(t, wt, "deploy/app.yaml")
	commitFile(t, wt, "deploy/app.yaml", "apps: {edited: {}}\n")
	wantModified(t, wt, "")
	// The main work tree's own file is still that of main.
	wantModified(t, repo, "")
}

// TestModifiedAlternates: objects borrowed from another repository
// through objects/info/alternates (git clone --shared).
func TestModifiedAlternates(t *testing.T) {
	origin := newRepo(t)
	clone := filepath.Join(t.TempDir(), "clone")
	testkit.Git(t, origin, "clone", "-q", "--shared", origin, clone)
	if _, err := os.Stat(filepath.Join(clone, ".git", "objects", "info", "alternates")); err != nil {
		t.Fatal(err)
	}
	wantModified(t, clone, "")
	writeFile(t, clone, "deploy/app.yaml", "apps: {b: {}}\n")
	wantModified(t, clone, "deploy/app.yaml")
}

// TestModifiedSeveralFiles: a file given by itself, one outside any
// work tree (not compared), and files in two repositories.
func TestModifiedSeveralFiles(t *testing.T) {
	a, b := newRepo(t), newRepo(t)
	plain := filepath.Join(t.TempDir(), "plain.yaml")
	if err := os.WriteFile(plain, []byte("apps: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	writeFile(t, b, "deploy/app.yaml", "apps: {b: {}}\n")
	fa, fb := filepath.Join(a, "deploy", "app.yaml"), filepath.Join(b, "deploy", "app.yaml")
	got, err := OfFiles([]string{fa, plain, fb}, []string{fa, plain, fb, fb})
	if err != nil {
		t.Fatal(err)
	}
	if got.Source != a || got.Modified != "deploy/app.yaml" || got.ModifiedUnknown {
		t.Fatalf("OfFiles = %+v", got)
	}
	// A link revision has no Modified.
	if got, _ := OfFiles([]string{plain}, []string{plain}); !got.IsZero() {
		t.Fatalf("OfFiles outside git = %+v", got)
	}
}

// TestModifiedUnknown: a store that cannot be read, or a manifest that
// is not a regular file, makes Modified unknown, never an error, a panic
// or a read that blocks (a FIFO).
func TestModifiedUnknown(t *testing.T) {
	cases := []struct {
		name   string
		packed bool
		break_ func(t *testing.T, repo string)
	}{
		{"loose object truncated", false, func(t *testing.T, repo string) {
			corruptEach(t, repo, "objects/??/*", func(b []byte) []byte { return b[:len(b)/2] })
		}},
		{"loose object not zlib", false, func(t *testing.T, repo string) {
			corruptEach(t, repo, "objects/??/*", func(b []byte) []byte { return []byte("garbage") })
		}},
		{"loose object of another content", false, func(t *testing.T, repo string) {
			corruptEach(t, repo, "objects/??/*", func([]byte) []byte { return deflate(t, "blob 3\x00abc") })
		}},
		{"loose commit swapped for another valid commit", false, func(t *testing.T, repo string) {
			// HEAD's commit file holds the previous commit's: read
			// without checking its name, it names a tree where
			// app.yaml differs, and the answer would be a wrong
			// "modified: deploy/app.yaml".
			before := testkit.Git(t, repo, "rev-parse", "HEAD")
			if err := os.WriteFile(filepath.Join(repo, "deploy", "app.yaml"), []byte("apps: {next: {exec: /bin/true}}\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			testkit.Git(t, repo, "commit", "-q", "-am", "next")
			head := testkit.Git(t, repo, "rev-parse", "HEAD")
			prev, err := os.ReadFile(filepath.Join(repo, ".git", "objects", before[:2], before[2:]))
			if err != nil {
				t.Fatal(err)
			}
			headFile := filepath.Join(repo, ".git", "objects", head[:2], head[2:])
			if err := os.Chmod(headFile, 0o644); err != nil { // git writes objects read-only
				t.Fatal(err)
			}
			if err := os.WriteFile(headFile, prev, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"loose object missing", false, func(t *testing.T, repo string) {
			corruptEach(t, repo, "objects/??/*", nil)
		}},
		{"pack truncated", true, func(t *testing.T, repo string) {
			corruptEach(t, repo, "objects/pack/*.pack", func(b []byte) []byte { return b[:len(b)/2] })
		}},
		{"pack bytes flipped", true, func(t *testing.T, repo string) {
			corruptEach(t, repo, "objects/pack/*.pack", func(b []byte) []byte {
				for i := 12; i < len(b)-20; i += 7 {
					b[i] ^= 0x55
				}
				return b
			})
		}},
		{"index truncated", true, func(t *testing.T, repo string) {
			corruptEach(t, repo, "objects/pack/*.idx", func(b []byte) []byte { return b[:1000] })
		}},
		{"index offsets out of the pack", true, func(t *testing.T, repo string) {
			corruptEach(t, repo, "objects/pack/*.idx", func(b []byte) []byte {
				for i := len(b) - 40 - 4; i > len(b)-40-4*8 && i > 0; i -= 4 {
					copy(b[i:], []byte{0x7f, 0xff, 0xff, 0xf0})
				}
				return b
			})
		}},
		{"loose objects FIFOs", false, func(t *testing.T, repo string) {
			ids := []string{testkit.Git(t, repo, "rev-parse", "HEAD"), testkit.Git(t, repo, "rev-parse", "HEAD^{tree}")}
			corruptEach(t, repo, "objects/??/*", nil)
			for _, id := range ids {
				if err := syscall.Mkfifo(filepath.Join(repo, ".git", "objects", id[:2], id[2:]), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"manifest a FIFO", false, func(t *testing.T, repo string) {
			p := filepath.Join(repo, "deploy", "app.yaml")
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"objects directory gone", false, func(t *testing.T, repo string) {
			if err := os.RemoveAll(filepath.Join(repo, ".git", "objects")); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			repo := newRepo(t)
			if c.packed {
				testkit.Git(t, repo, "gc", "-q", "--prune=now")
			}
			c.break_(t, repo)
			got, err := OfFiles([]string{filepath.Join(repo, "deploy")}, manifestFiles(t, repo))
			if err != nil {
				t.Fatalf("OfFiles: %v", err)
			}
			if got.Kind != KindGit || !got.ModifiedUnknown || got.Modified != "" || !strings.HasSuffix(got.String(), " modified: unknown") {
				t.Fatalf("OfFiles = %+v (%s), want Modified unknown", got, got)
			}
		})
	}
}

// corruptEach replaces each file matching glob under repo/.git with
// change of its content, or removes it when change is nil.
func corruptEach(t *testing.T, repo, glob string, change func([]byte) []byte) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repo, ".git", filepath.FromSlash(glob)))
	if err != nil || len(files) == 0 {
		t.Fatalf("no %s: %v", glob, err)
	}
	for _, f := range files {
		if change == nil {
			if err := os.Remove(f); err != nil {
				t.Fatal(err)
			}
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(f, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, change(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func deflate(t testing.TB, s string) []byte {
	var b bytes.Buffer
	w := zlib.NewWriter(&b)
	if _, err := w.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
