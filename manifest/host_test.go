package manifest_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/paddock-sh/paddock/manifest"
)

// TestCheckHostRunnable: a program the kernel cannot run (an executable
// script without a #! line, which would fail every start with "exec format
// error") is an error at the value that names it, with the remedy; an ELF
// binary, a #! script, or the same script run by an interpreter is fine.
// The fixtures are made here: the repository tracks no executable without
// a #! line.
func TestCheckHostRunnable(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write("no-shebang.sh", "echo no #! line\n")
	write("empty", "")
	write("shebang.sh", "#!/bin/sh\necho hi\n")
	write("script.py", "print('hi')\n")
	tests := []struct {
		fields string
		err    string // "line:col: field: message", or "" for none
	}{
		{"exec: ./no-shebang.sh", "3:11: apps.web.exec: $DIR/no-shebang.sh is not a program the kernel can run: it has no #! line; add one (e.g. #!/bin/sh) or set execPath"},
		{"exec: ./empty", "3:11: apps.web.exec: $DIR/empty is not a program the kernel can run: it has no #! line; add one (e.g. #!/bin/sh) or set execPath"},
		{"exec: script.py\n    execPath: ./no-shebang.sh", "4:15: apps.web.execPath: $DIR/no-shebang.sh is not a program the kernel can run: it has no #! line; add one (e.g. #!/bin/sh)"},
		{"exec: ./shebang.sh", ""},
		{"exec: /bin/sh", ""},
		{"exec: sh", ""},
		{"exec: ./no-shebang.sh\n    execPath: sh", ""},
	}
	for i, tt := range tests {
		m := filepath.Join(dir, "m.yaml")
		if err := os.WriteFile(m, []byte("apps:\n  web:\n    "+tt.fields+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := manifest.Load([]string{m}, testHost)
		want := ""
		if tt.err != "" {
			want = m + ":" + strings.ReplaceAll(tt.err, "$DIR", dir)
		}
		if got := errText(err); got != want {
			t.Errorf("%d: %q:\n got: %s\nwant: %s", i, tt.fields, got, want)
		}
	}
}
