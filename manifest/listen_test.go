package manifest_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/paddock-sh/paddock/manifest"
)

// TestValidateOneAddressPerSocket: two apps may not declare one socket, nor
// may one app list it twice, however the address is written: a unix path
// relative or absolute, with "./", "..", or doubled slashes; a TCP host as
// IPv6 or IPv4-mapped, the port alone or with the "every interface" host.
// Different sockets are fine, and so is port 0 (each a port of its own).
func TestValidateOneAddressPerSocket(t *testing.T) {
	dir := t.TempDir() // the manifest's directory, for relative unix paths
	tests := []struct {
		name   string
		web    string // listen: of app web (declared first)
		api    string // listen: of app api; "" for no app api
		errors []string
	}{
		{"unix path twice", `["unix:/run/p.sock"]`, `["unix:/run/p.sock"]`,
			[]string{`8:14: apps.api.listen[0]: unix:/run/p.sock is already the address of app web at $M:4:14`}},
		{"unix relative and absolute", `["unix:p.sock"]`, `["unix:$DIR/p.sock"]`,
			[]string{`8:14: apps.api.listen[0]: unix:$DIR/p.sock is already the address of app web at $M:4:14`}},
		{"unix dot slash", `["unix:./p.sock"]`, `["unix:p.sock"]`,
			[]string{`8:14: apps.api.listen[0]: unix:p.sock is already the address of app web at $M:4:14`}},
		{"unix dot dot and slashes", `["unix:/run/x/../p.sock"]`, `["unix:/run//p.sock"]`,
			[]string{`8:14: apps.api.listen[0]: unix:/run//p.sock is already the address of app web at $M:4:14`}},
		{"unix mode differs", `["unix:/run/p.sock?mode=0600"]`, `["unix:/run/p.sock"]`,
			[]string{`8:14: apps.api.listen[0]: unix:/run/p.sock is already the address of app web at $M:4:14`}},
		{"unix path listed twice by one app", `["unix:p.sock", "unix:./p.sock"]`, "",
			[]string{`4:29: apps.web.listen[1]: unix:./p.sock is listed twice`}},
		{"tcp address twice", `["127.0.0.1:8000"]`, `["127.0.0.1:8000"]`,
			[]string{`8:14: apps.api.listen[0]: 127.0.0.1:8000 is already the address of app web at $M:4:14`}},
		{"tcp port and every interface", `[8000]`, `[":8000"]`,
			[]string{`8:14: apps.api.listen[0]: :8000 is already the address of app web at $M:4:14`}},
		{"tcp port and [::]", `[8000]`, `["[::]:8000"]`,
			[]string{`8:14: apps.api.listen[0]: [::]:8000 is already the address of app web at $M:4:14`}},
		{"tcp IPv4-mapped", `["127.0.0.1:8000"]`, `["[::ffff:127.0.0.1]:8000"]`,
			[]string{`8:14: apps.api.listen[0]: [::ffff:127.0.0.1]:8000 is already the address of app web at $M:4:14`}},
		{"tcp IPv6 written long", `["[::1]:8000"]`, `["[0:0::1]:8000"]`,
			[]string{`8:14: apps.api.listen[0]: [0:0::1]:8000 is already the address of app web at $M:4:14`}},
		{"tcp listed twice by one app", `[8000, "8000"]`, "",
			[]string{`4:20: apps.web.listen[1]: 8000 is listed twice`}},
		{"different unix paths", `["unix:/run/p.sock"]`, `["unix:/run/q.sock"]`, nil},
		{"different tcp hosts", `["127.0.0.1:8000"]`, `["127.0.0.2:8000"]`, nil},
		{"different tcp ports", `[8000]`, `[8001]`, nil},
		{"unix path and tcp port", `["unix:/run/8000"]`, `[8000]`, nil},
		{"ephemeral ports", `[0, "127.0.0.1:0"]`, `[0]`, nil},
		{"udp address twice", `["udp:5353"]`, `["udp:[::]:5353"]`,
			[]string{`8:14: apps.api.listen[0]: udp:[::]:5353 is already the address of app web at $M:4:14`}},
		{"udp listed twice by one app", `["udp:53", "udp::53"]`, "",
			[]string{`4:24: apps.web.listen[1]: udp::53 is listed twice`}},
		{"tcp and udp on one port", `[53, "udp:53"]`, `["127.0.0.1:5353"]`, nil},
		{"udp ephemeral ports", `["udp:0", "udp:127.0.0.1:0"]`, `["udp:0"]`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := filepath.Join(dir, "m.yaml")
			r := strings.NewReplacer("$DIR", dir, "$M", m)
			src := "apps:\n  web:\n    exec: x\n    listen: " + r.Replace(tt.web) + "\n"
			if tt.api != "" {
				src += "  api:\n    exec: x\n    # the same\n    listen: " + r.Replace(tt.api) + "\n"
			}
			apps, err := manifest.Decode(m, []byte(src))
			if err != nil {
				t.Fatalf("Decode:\n%v", err)
			}
			_, err = manifest.Validate(apps)
			var want []string
			for _, e := range tt.errors {
				want = append(want, m+":"+r.Replace(e))
			}
			if got := errText(err); got != strings.Join(want, "\n") {
				t.Errorf("manifest:\n%s\n got: %s\nwant: %s", src, got, strings.Join(want, "\n"))
			}
		})
	}
}

// TestCheckHostSocketPathThroughLink: two unix paths that lead to one
// socket file through a link to a directory (unix:/var/run/web.sock and
// unix:/run/web.sock where /var/run links to /run) are reported by the
// host check, at the second path, naming the first; paths in different
// directories, or in a directory not created yet, are fine.
func TestCheckHostSocketPathThroughLink(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "run"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("run", filepath.Join(dir, "var-run")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "other"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		web, api string
		err      string // "line:col: field: message", or "" for none
	}{
		{"through a link", "unix:run/p.sock", "unix:var-run/p.sock",
			"8:14: apps.api.listen[0]: unix:var-run/p.sock is the socket unix:run/p.sock of app web at $M:4:14: both paths lead to $DIR/run/p.sock"},
		{"link first", "unix:$DIR/var-run/p.sock", "unix:run/p.sock",
			"8:14: apps.api.listen[0]: unix:run/p.sock is the socket unix:$DIR/var-run/p.sock of app web at $M:4:14: both paths lead to $DIR/run/p.sock"},
		{"different directories", "unix:run/p.sock", "unix:other/p.sock", ""},
		{"different files", "unix:run/p.sock", "unix:var-run/q.sock", ""},
		{"directory not there yet", "unix:missing/p.sock", "unix:missing/q.sock", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := filepath.Join(dir, "m.yaml")
			r := strings.NewReplacer("$DIR", dir, "$M", m)
			src := "apps:\n  web:\n    exec: /bin/sh\n    listen: [\"" + r.Replace(tt.web) + "\"]\n" +
				"  api:\n    exec: /bin/sh\n    # the same\n    listen: [\"" + r.Replace(tt.api) + "\"]\n"
			if err := os.WriteFile(m, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := manifest.Load([]string{m}, testHost)
			want := ""
			if tt.err != "" {
				want = m + ":" + r.Replace(tt.err)
			}
			if got := errText(err); got != want {
				t.Errorf("manifest:\n%s\n got: %s\nwant: %s", src, got, want)
			}
		})
	}
}
