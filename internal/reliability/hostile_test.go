package reliability

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/paddock-sh/paddock/internal/testkit"
)

// hostile is a manifest file made to hurt its reader: make creates it in
// dir and returns the name an error must mention.
type hostile struct {
	name string
	make func(t *testing.T, dir string) string
}

var hostiles = []hostile{
	{"huge file (9 MiB)", func(t *testing.T, dir string) string {
		writeFile(t, filepath.Join(dir, "huge.yaml"), "apps:\n"+strings.Repeat("# padding padding padding padding\n", 9<<20/34))
		return "huge.yaml"
	}},
	{"deep nesting (100000 [)", func(t *testing.T, dir string) string {
		writeFile(t, filepath.Join(dir, "deep.yaml"), "apps: "+strings.Repeat("[", 100000))
		return "deep.yaml"
	}},
	{"deep block nesting (1000 levels)", func(t *testing.T, dir string) string {
		var b strings.Builder
		b.WriteString("apps:\n")
		for i := range 1000 {
			fmt.Fprintf(&b, "%sk%d:\n", strings.Repeat(" ", i+1), i)
		}
		writeFile(t, filepath.Join(dir, "block.yaml"), b.String())
		return "block.yaml"
	}},
	{"YAML bomb (aliases, 10^9 nodes)", func(t *testing.T, dir string) string {
		var b strings.Builder
		b.WriteString("x-a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
		for i := 1; i < 9; i++ {
			p := fmt.Sprintf("*a%d", i-1)
			fmt.Fprintf(&b, "x-a%d: &a%d [%s]\n", i, i, strings.Repeat(p+", ", 9)+p)
		}
		b.WriteString("apps:\n  bomb:\n    exec: /bin/true\n    args: *a8\n")
		writeFile(t, filepath.Join(dir, "bomb.yaml"), b.String())
		return "bomb.yaml"
	}},
	{"binary (64 KiB of random bytes)", func(t *testing.T, dir string) string {
		r := rand.New(rand.NewPCG(1, 2))
		b := make([]byte, 64<<10)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		writeFile(t, filepath.Join(dir, "binary.yaml"), string(b))
		return "binary.yaml"
	}},
	{"a FIFO nobody writes", func(t *testing.T, dir string) string {
		if err := syscall.Mkfifo(filepath.Join(dir, "fifo.yaml"), 0o644); err != nil {
			t.Fatal(err)
		}
		return "fifo.yaml"
	}},
	{"a symlink loop", func(t *testing.T, dir string) string {
		if err := os.Symlink("loop2.yaml", filepath.Join(dir, "loop1.yaml")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("loop1.yaml", filepath.Join(dir, "loop2.yaml")); err != nil {
			t.Fatal(err)
		}
		return "loop1.yaml"
	}},
	{"a link to /dev/zero", func(t *testing.T, dir string) string {
		if err := os.Symlink("/dev/zero", filepath.Join(dir, "zero.yaml")); err != nil {
			t.Fatal(err)
		}
		return "zero.yaml"
	}},
	{"many files (2000 short, 10000 long), one app each, all on one port", func(t *testing.T, dir string) string {
		defer testkit.HoldForks()()
		for i := range size(2000, 10000) {
			content := fmt.Sprintf("apps:\n  many%d:\n    exec: /bin/sleep\n    args: [\"100000\"]\n    listen: [\"127.0.0.1:1\"]\n", i)
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("many%05d.yaml", i)), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return "many0"
	}},
}

// TestHostileManifests: paddock runs a directory of manifests with one
// healthy app; each hostile file is put beside it in turn. `paddock
// reload` must reject it with an error naming it, the running app keep
// its worker, and, once the file is removed, a reload succeed (reload is
// not wedged).
func TestHostileManifests(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "good.yaml"), "apps:\n  steady:\n    exec: /bin/sleep\n    args: [\"100000\"]\n")
	s := startPaddock(t, nil, dir)
	steady := s.waitRunning("steady", 1)
	for _, h := range hostiles {
		t.Run(h.name, func(t *testing.T) {
			s.t = t
			lost := "nothing"
			var errLine string
			record(t, func() (string, string, string) {
				return h.name, fmt.Sprintf("rejected (%s); the running worker kept its pid; the next reload applied", errLine), lost
			})
			name := h.make(t, dir)
			out, code := s.cli("reload")
			errLine = strings.ReplaceAll(firstLine(out, name), dir+"/", "")
			if code != 1 || errLine == "" {
				lost = fmt.Sprintf("reload: exit %d, %.300q", code, out)
				t.Errorf("the hostile file was not rejected by name: %s", lost)
			}
			if now := s.pids("steady"); fmt.Sprint(now) != fmt.Sprint(steady) {
				lost = fmt.Sprintf("the running worker changed: %v, then %v", steady, now)
				t.Error(lost)
			}
			removeAllBut(t, dir, "good.yaml")
			if out, code := s.cli("reload"); code != 0 {
				lost = fmt.Sprintf("reload after removing it: exit %d, %.300q", code, out)
				t.Error(lost)
			}
		})
	}
	s.t = t
	kill(t, s.pid(), syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(testkit.Patience):
		t.Fatal("paddock did not stop on SIGTERM after the hostile files")
	}
}

// firstLine returns the first line of out that mentions name, shortened.
func firstLine(out, name string) string {
	for line := range strings.SplitSeq(out, "\n") {
		if strings.Contains(line, name) {
			if len(line) > 120 {
				line = line[:120] + "…"
			}
			return strings.TrimSpace(line)
		}
	}
	return ""
}

// removeAllBut removes every entry of dir but keep.
func removeAllBut(t *testing.T, dir, keep string) {
	t.Helper()
	for _, name := range testkit.DirNames(t, dir) {
		if name != keep {
			if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
}
