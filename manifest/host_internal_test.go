package manifest

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRunnable: which files the kernel can execute, as runnable judges them
// from their first bytes and the binfmt_misc formats of a directory laid
// out as the kernel shows them.
func TestRunnable(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	binfmt := filepath.Join(dir, "binfmt")
	if err := os.Mkdir(binfmt, 0o755); err != nil {
		t.Fatal(err)
	}
	entry := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(binfmt, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	entry("status", "enabled\n")
	entry("register", "")
	entry("jar", "enabled\ninterpreter /usr/bin/jexec\nflags: \nextension .jar\n")
	entry("off", "disabled\ninterpreter /usr/bin/off\nflags: \nextension .off\n")
	// "MZ" at 0, and a masked magic at offset 4: "ab?d" (bit 0x20 free).
	entry("mz", "enabled\ninterpreter /usr/bin/wine\nflags: \noffset 0\nmagic 4d5a\n")
	entry("masked", "enabled\ninterpreter /usr/bin/x\nflags: F\noffset 4\nmagic 61626364\nmask ffffdfff\n")
	entry("garbage", "enabled\nmagic zz\n")

	elf := string([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0})
	tests := []struct {
		name, content string
		want          bool
	}{
		{"elf", elf, true},
		{"script.sh", "#!/bin/sh\necho hi\n", true},
		{"bare-shebang", "#!", true},
		{"no-shebang.sh", "echo hi\n", false},
		{"space-shebang.sh", " #!/bin/sh\n", false},
		{"empty", "", false},
		{"short-elf", "\x7fEL", false},
		{"app.jar", "PK\x03\x04", true},
		{"app.off", "text", false},
		{"jar", "no dot before jar", false},
		{"prog.exe", "MZ\x90\x00", true},
		{"masked1", "....abcd", true},
		{"masked2", "....abCd", true},
		{"masked3", "....abxd", false},
		{"masked-short", "....ab", false},
	}
	for _, tt := range tests {
		p := write(tt.name, tt.content)
		if got := runnable(p, binfmt); got != tt.want {
			t.Errorf("runnable(%s) = %v, want %v", tt.name, got, tt.want)
		}
	}

	// With binfmt_misc disabled, or not mounted, only ELF and #! run.
	jar := filepath.Join(dir, "app.jar")
	if runnable(jar, filepath.Join(dir, "nowhere")) {
		t.Error("app.jar runnable without binfmt_misc")
	}
	entry("status", "disabled\n")
	if runnable(jar, binfmt) {
		t.Error("app.jar runnable with binfmt_misc disabled")
	}

	// What it cannot judge is left to exec: a FIFO put in place of the
	// file (opened without blocking, so the check does not hang), a file
	// gone.
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o755); err != nil {
		t.Fatal(err)
	}
	if !runnable(fifo, binfmt) {
		t.Error("a FIFO is judged not runnable")
	}
	if !runnable(filepath.Join(dir, "gone"), binfmt) {
		t.Error("a missing file is judged not runnable")
	}
}
