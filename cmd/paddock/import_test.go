package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/paddock-sh/paddock/internal/testkit"
)

// TestImportValidates converts a PM2 ecosystem file (PM2's cluster-http
// example, evaluated by the real node) and a supervisord configuration,
// writes each manifest beside its source, and checks that paddock
// validate, with its host checks, accepts it.
func TestImportValidates(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node is needed (make npm-deps installs what the tests need): %v", err)
	}
	dir := t.TempDir()
	files := map[string]string{
		"ecosystem.config.js": `module.exports = {
  apps : [{
    name   : 'clustered_http',
    script : './http.js',
    instances : 'max',
    exec_mode : 'cluster',
    max_memory_restart: '200M',
    env : { PORT : 8002 }
  }, {
    name : 'forked_app',
    script : './http.js',
    kill_timeout: 3000,
    env : { PORT : 8001 }
  }]
}
`,
		"http.js": "require('http').createServer((q, s) => s.end('ok\\n')).listen(process.env.PORT);\n",
		"supervisord.conf": `[supervisord]
nodaemon=true

[program:cat]
command=/bin/cat
directory=%(here)s
numprocs=2
environment=A="1, 2",B=x
stdout_logfile=%(here)s/logs/cat.log
`,
	}
	for name, data := range files {
		if err := testkit.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"import", "pm2", filepath.Join(dir, "ecosystem.config.js")}, "ok: 2 apps"},
		{[]string{"import", "supervisord", filepath.Join(dir, "supervisord.conf")}, "ok: 1 app, 2 workers"},
	} {
		stdout, stderr, code := runCommand(t, exec.Command(paddockBin, tc.args...))
		if code != 0 || stderr != "" {
			t.Fatalf("paddock %s: exit %d, stderr:\n%s", strings.Join(tc.args, " "), code, stderr)
		}
		m := filepath.Join(dir, tc.args[1]+".yaml")
		if err := testkit.WriteFile(m, []byte(stdout), 0o644); err != nil {
			t.Fatal(err)
		}
		vout, verr, code := runCommand(t, exec.Command(paddockBin, "validate", m))
		if code != 0 || !strings.HasPrefix(vout, tc.want) {
			t.Errorf("paddock validate on the output of %s: exit %d, stdout %q, stderr:\n%s\nthe manifest:\n%s", tc.args[1], code, vout, verr, stdout)
		}
	}
}

// TestImportErrors checks the exit codes and messages of what cannot be
// converted.
func TestImportErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	eco := filepath.Join(dir, "ecosystem.config.js")
	if err := testkit.WriteFile(eco, []byte("module.exports = {apps: [{script: 'a.js'}]}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := testkit.WriteFile(filepath.Join(dir, "x.toml"), []byte("[apps]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"import", "pm2", "--node", filepath.Join(dir, "no-node"), eco}, 1, "node is not installed"},
		{[]string{"import", "pm2", filepath.Join(dir, "missing.js")}, 2, "no such file"},
		{[]string{"import", "pm2", filepath.Join(dir, "x.toml")}, 1, "name it .js, .cjs, .mjs, .json, .yaml or .yml"},
		{[]string{"import", "supervisord"}, 2, "accepts 1 arg"},
		{[]string{"import"}, 2, "Usage:"},
	} {
		stdout, stderr, code := runCommand(t, exec.Command(paddockBin, tc.args...))
		if code != tc.code || stdout != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("paddock %s: exit %d, stdout %q, stderr %q; want exit %d and %q", strings.Join(tc.args, " "), code, stdout, stderr, tc.code, tc.want)
		}
	}
}
