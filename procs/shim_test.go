package procs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/paddock-sh/paddock/internal/testkit"
)

// TestStartErrorNamesProgram: a program that cannot be started gives a
// *StartError that names it, by path and argv[0], never the supervisor's
// binary that the exec shim re-executes, and wraps the cause, with or
// without the shim: a missing program, one that is not executable, and a
// user that cannot be switched to (uid 4294967295 is (uid_t)-1, which
// setuid refuses).
func TestStartErrorNamesProgram(t *testing.T) {
	sock, _ := testkit.ListenerFile(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "no-such-program")
	plain := filepath.Join(dir, "not-executable")
	if err := os.WriteFile(plain, []byte("#!/bin/sh\nexit 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	badUser := &syscall.Credential{Uid: 1<<32 - 1, Gid: 65534}
	for _, tc := range []struct {
		name  string
		path  string
		cred  *syscall.Credential
		cause error
		text  string // the error's text after the program's name
	}{
		{"missing", missing, nil, fs.ErrNotExist, "no such file or directory"},
		{"not executable", plain, nil, fs.ErrPermission, "permission denied"},
		{"bad user", "/bin/true", badUser, syscall.EINVAL, "invalid argument"},
	} {
		for _, shim := range []bool{false, true} {
			op, text := "fork/exec", tc.text
			if shim {
				op = "exec"
				if tc.cred != nil {
					text = "setuid 4294967295: " + text
				}
			}
			t.Run(fmt.Sprintf("%s/shim=%v", tc.name, shim), func(t *testing.T) {
				if tc.cred != nil && os.Geteuid() != 0 {
					t.Skip("needs root: setgroups comes before setuid")
				}
				s := Spec{Path: tc.path, Argv: []string{"prog", "arg"}, Dir: "/", Credential: tc.cred}
				if shim {
					s.ExtraFiles, s.ListenNames = []*os.File{sock}, []string{"web"}
				}
				err := startErr(t, s, shim)
				var se *StartError
				if !errors.As(err, &se) || se.Op != op || se.Path != tc.path || se.Argv0 != "prog" || !errors.Is(err, tc.cause) {
					t.Fatalf("Start = %v (%#v), want a *StartError %q for %s, argv[0] prog, wrapping %v", err, err, op, tc.path, tc.cause)
				}
				if want := op + " " + tc.path + ` (argv[0] "prog"): ` + text; err.Error() != want {
					t.Errorf("error %q, want %q", err, want)
				}
			})
		}
	}
}

// startErr starts s with a Reaper of its own and returns its start error:
// Start's, or, through the exec shim, the one its exit carries (the shim
// reports it without holding Start up, and exits 127).
func startErr(t *testing.T, s Spec, shim bool) error {
	t.Helper()
	r := &Reaper{}
	p, err := r.Start(s)
	if !shim || err != nil {
		if shim {
			t.Fatalf("Start through the shim = %v, want the error with the exit", err)
		}
		return err
	}
	defer p.Release()
	ex := reapUntil(t, r, p.Pid)
	if ex.Status.ExitStatus() != 127 {
		t.Errorf("the shim exited with %v, want status 127", ex)
	}
	return ex.StartErr
}

// TestShimDropsPrivileges: as root, the shim runs as root (the worker's user
// may not be allowed to execute the supervisor's binary) and drops to the
// worker's credentials just before it executes the program, which sees
// LISTEN_PID equal to its pid; a program that user cannot execute, or a
// working directory it cannot enter, is a start error naming the program.
func TestShimDropsPrivileges(t *testing.T) {
	testkit.NeedRoot(t, "to drop privileges")
	if os.Getenv("PROCS_TEST_RERUN") != t.Name() {
		// Run from a copy only root may execute, in a directory only
		// root may search, as `go install` leaves paddock in
		// /root/go/bin under umask 077.
		private := filepath.Join(t.TempDir(), "private")
		if err := os.Mkdir(private, 0o700); err != nil {
			t.Fatal(err)
		}
		bin := filepath.Join(private, "procs.test")
		testkit.CopyBinary(t, bin, 0o700)
		rerun(t, "from "+bin, bin, nil)
		return
	}
	if fi, err := os.Stat(os.Args[0]); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("the test binary has mode %v (%v), want 0700", fi.Mode(), err)
	}
	sock, _ := testkit.ListenerFile(t)
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534}

	rd, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	r := &Reaper{}
	p, err := r.Start(Spec{
		Path: "/bin/sh", Argv: []string{"sh", "-c", `echo "$(id -u) $(id -g) $LISTEN_PID $$ $LISTEN_FDS"`}, Dir: "/",
		Stdout: w, ExtraFiles: []*os.File{sock}, ListenNames: []string{"web"}, Credential: nobody,
	})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release()
	out, err := io.ReadAll(rd)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("65534 65534 %d %d 1\n", p.Pid, p.Pid)
	if string(out) != want {
		t.Errorf("the worker says %q, want %q (uid gid LISTEN_PID pid LISTEN_FDS)", out, want)
	}
	if ex := reapUntil(t, r, p.Pid); !ex.Success() {
		t.Errorf("worker %v", ex)
	}

	private := filepath.Join(t.TempDir(), "prog") // in a 0700 directory
	if err := os.WriteFile(private, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	err = startErr(t, Spec{Path: private, Argv: []string{"prog"}, Dir: "/",
		ExtraFiles: []*os.File{sock}, ListenNames: []string{"web"}, Credential: nobody}, true)
	var se *StartError
	if !errors.As(err, &se) || se.Path != private || !errors.Is(err, fs.ErrPermission) || strings.Contains(err.Error(), "/proc/self/exe") {
		t.Errorf("Start = %v, want a *StartError naming %s, permission denied", err, private)
	}

	closed := t.TempDir() // 0700
	err = startErr(t, Spec{Path: "/bin/sh", Argv: []string{"sh", "-c", "exit 0"}, Dir: closed,
		ExtraFiles: []*os.File{sock}, ListenNames: []string{"web"}, Credential: nobody}, true)
	if want := "exec /bin/sh: chdir " + closed + ": permission denied"; err == nil || err.Error() != want {
		t.Errorf("Start = %v, want %q", err, want)
	}
}

// TestShimSetsPIDEnv: the variables of Spec.PIDEnv hold the program's own
// pid, set by the exec shim (also without sockets, and then without
// LISTEN_PID or LISTEN_FDS), replacing any value the environment had; with
// sockets, LISTEN_PID is the pid too.
func TestShimSetsPIDEnv(t *testing.T) {
	t.Parallel()
	sock, _ := testkit.ListenerFile(t)
	for _, tt := range []struct {
		name    string
		sockets bool
		want    func(pid int) string
	}{
		{"without sockets", false, func(pid int) string { return fmt.Sprintf("%d %d unset unset\n", pid, pid) }},
		{"with sockets", true, func(pid int) string { return fmt.Sprintf("%d %d %d 1\n", pid, pid, pid) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rd, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer rd.Close()
			spec := Spec{
				Path: "/bin/sh", Argv: []string{"sh", "-c", `echo "$WATCHDOG_PID $$ ${LISTEN_PID-unset} ${LISTEN_FDS-unset}"`}, Dir: "/",
				Env: []string{"WATCHDOG_PID=1", "PATH=/usr/bin:/bin"}, Stdout: w, PIDEnv: []string{"WATCHDOG_PID"},
			}
			if tt.sockets {
				spec.ExtraFiles, spec.ListenNames = []*os.File{sock}, []string{"web"}
			}
			r := &Reaper{OwnChildrenOnly: true}
			p, err := r.Start(spec)
			w.Close()
			if err != nil {
				t.Fatal(err)
			}
			defer p.Release()
			out, err := io.ReadAll(rd)
			if err != nil {
				t.Fatal(err)
			}
			if want := tt.want(p.Pid); string(out) != want {
				t.Errorf("the program says %q, want %q (WATCHDOG_PID, pid, LISTEN_PID, LISTEN_FDS)", out, want)
			}
			if ex := reapUntil(t, r, p.Pid); !ex.Success() {
				t.Errorf("program %v", ex)
			}
		})
	}
}
