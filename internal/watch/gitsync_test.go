package watch

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestGitSyncLinkSwap: the layout git-sync (v4) keeps in its --root, with
// paddock given the link it maintains (deploy/kubernetes/
// deployment-git-sync.yaml):
//
//	root/paddock -> .worktrees/<hash>
//
// Each sync checks out a new worktree, points a new link at it, renames
// the link over the old one and removes the old worktree. Every sync is a
// change, the second one too (the watch survives the first swap).
func TestGitSyncLinkSwap(t *testing.T) {
	root := t.TempDir()
	link := filepath.Join(root, "paddock")
	checkout := func(hash, content string) {
		wt := filepath.Join(root, ".worktrees", hash)
		if err := os.MkdirAll(wt, 0o755); err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(wt, "paddock.yaml"), content)
		write(t, filepath.Join(wt, "README.md"), "not a manifest")
	}
	swap := func(hash string) {
		old, _ := os.Readlink(link)
		tmp := filepath.Join(root, "tmp-link")
		if err := os.Symlink(filepath.Join(".worktrees", hash), tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, link); err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(filepath.Join(root, old)); err != nil {
			t.Fatal(err)
		}
	}
	checkout("aaaa", "v1")
	if err := os.Symlink(filepath.Join(".worktrees", "aaaa"), link); err != nil {
		t.Fatal(err)
	}
	changes := watching(t, filepath.Join(link, "paddock.yaml"), link)
	for _, c := range []struct{ hash, content string }{{"bbbb", "v2"}, {"cccc", "v3"}} {
		begun := time.Now()
		checkout(c.hash, c.content)
		swap(c.hash)
		expectEdited(t, changes, c.content, time.Since(begun))
	}
}
