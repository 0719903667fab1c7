package procs

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// The variables that carry a shim's instructions from Start to the
// re-executed supervisor binary; none reaches the program.
const (
	// shimEnv names the program the shim is to become.
	shimEnv = "PADDOCK_EXEC_SHIM"
	// shimErrFDEnv is the descriptor of the pipe the shim reports a
	// failure on; it is close-on-exec, so a successful exec closes it.
	shimErrFDEnv = "PADDOCK_EXEC_SHIM_ERRFD"
	// shimParentEnv is the supervisor's pid, which the shim checks is
	// still its parent after re-arming the parent-death signal.
	shimParentEnv = "PADDOCK_EXEC_SHIM_PARENT"
	// shimCredEnv is "uid:gid:group,group...", the identity to drop to.
	shimCredEnv = "PADDOCK_EXEC_SHIM_CRED"
	// shimDirEnv is the working directory, entered again once the
	// identity changed, so that a directory the user may not enter is an
	// error as it is without the shim.
	shimDirEnv = "PADDOCK_EXEC_SHIM_DIR"
	// shimPIDEnv lists, comma-separated, the variables the shim sets to
	// its own pid, which execve keeps: LISTEN_PID with sockets, and
	// Spec.PIDEnv.
	shimPIDEnv = "PADDOCK_EXEC_SHIM_PIDENV"
	// probeEnv makes the binary exit 0 at once (CreateCgroup's test of
	// starting a process into the cgroup).
	probeEnv = "PADDOCK_CGROUP_PROBE"
)

// supervisorEnvName is the variable Start adds to every process's
// environment: "<supervisor pid>-<its start time in clock ticks after
// boot>", unique to this supervisor process on this machine. Descendants
// inherit it, so that the watchdog can find those that left their worker's
// process group when the supervisor is killed without a cgroup.
const supervisorEnvName = "PADDOCK_SUPERVISOR"

// supervisorEnv returns this process's PADDOCK_SUPERVISOR value.
var supervisorEnv = sync.OnceValue(func() string {
	pid := os.Getpid()
	return strconv.Itoa(pid) + "-" + strconv.FormatUint(startTime(pid), 10)
})

// startTime returns the start time of process pid in clock ticks after boot
// (field 22 of /proc/PID/stat), or 0 when it cannot be read.
func startTime(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); field 22 is f[19].
	if len(f) < 20 {
		return 0
	}
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v
}

// withSupervisorEnv returns env with PADDOCK_SUPERVISOR set to this
// supervisor's value (replacing one inherited from an outer supervisor).
func withSupervisorEnv(env []string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, supervisorEnvName+"=") {
			out = append(out, kv)
		}
	}
	return append(out, supervisorEnvName+"="+supervisorEnv())
}

// ExecShim runs the roles this binary plays for its own supervisor when it
// re-executes itself, and otherwise returns at once. Call it first thing in
// main (and in TestMain of tests that start workers): it must run before
// anything opens a descriptor without close-on-exec.
//
// As a worker's shim (Spec.ListenNames), it drops to the worker's
// credentials, re-arms the parent-death signal the change cleared, and
// executes the program with LISTEN_PID set to its own pid, which execve
// keeps; a failure is reported to Start and the shim exits 127, as a shell
// does for a program it cannot run. It sets WATCHDOG_PID (Spec.PIDEnv) the
// same way. As the watchdog (StartWatchdog) it
// watches the supervisor until it exits. It never returns in either role.
func ExecShim() {
	if _, ok := os.LookupEnv(watchdogEnv); ok {
		runWatchdog()
		os.Exit(0)
	}
	if _, ok := os.LookupEnv(probeEnv); ok {
		os.Exit(0)
	}
	if target, ok := os.LookupEnv(shimEnv); ok {
		runShim(target)
	}
}

// runShim is ExecShim's worker shim: it becomes target, or exits 127 after
// it reported why it could not. It never returns.
func runShim(target string) {
	// The parent-death signal and execve are per thread: arm it on the
	// thread that executes the program.
	runtime.LockOSThread()
	errFD, err := strconv.Atoi(os.Getenv(shimErrFDEnv))
	if err != nil || errFD < 3 {
		errFD = -1
	} else {
		unix.CloseOnExec(errFD)
	}
	fail := func(stage string, err error) {
		errno, ok := err.(syscall.Errno)
		if !ok {
			errno = syscall.EINVAL
		}
		if errFD >= 0 {
			_, _ = unix.Write(errFD, []byte(stage+" "+strconv.Itoa(int(errno))))
		} else {
			fmt.Fprintf(os.Stderr, "paddock: %s %s: %v\n", stage, target, err)
		}
		os.Exit(127)
	}
	parent, _ := strconv.Atoi(os.Getenv(shimParentEnv))
	pidVars := strings.Split(os.Getenv(shimPIDEnv), ",")
	env := make([]string, 0, len(os.Environ())+len(pidVars))
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(kv, shimEnv) && !slices.Contains(pidVars, name) {
			env = append(env, kv)
		}
	}
	pid := strconv.Itoa(os.Getpid())
	for _, name := range pidVars {
		if name != "" {
			env = append(env, name+"="+pid)
		}
	}
	if v, ok := os.LookupEnv(shimCredEnv); ok {
		if stage, err := becomeUser(v, os.Getenv(shimDirEnv)); err != nil {
			fail(stage, err)
		}
	}
	// Always re-armed on this thread: a credential change clears it, and
	// only the thread the supervisor forked had it.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		fail("prctl", err)
	}
	if parent > 0 && os.Getppid() != parent {
		os.Exit(127) // the supervisor died: nobody is there to run for
	}
	err = syscall.Exec(target, os.Args, env)
	fail("exec", err)
}

// becomeUser switches the calling thread to the credential cred
// (formatCredential's encoding) and enters dir, when not empty, as that
// user. On failure it returns the step that failed, as the shim reports it.
func becomeUser(cred, dir string) (stage string, err error) {
	uid, gid, groups, err := parseCredential(cred)
	if err != nil {
		return "credential", syscall.EINVAL
	}
	if err := syscall.Setgroups(groups); err != nil {
		return "setgroups", err
	}
	if err := syscall.Setgid(gid); err != nil {
		return "setgid", err
	}
	if err := syscall.Setuid(uid); err != nil {
		return "setuid", err
	}
	if dir != "" {
		if err := syscall.Chdir(dir); err != nil {
			return "chdir", err
		}
	}
	return "", nil
}

// shimEnvOf returns the variables that tell the exec shim how to start s:
// the socket activation variables but LISTEN_PID, when s has sockets; the
// variables the shim sets to its pid (LISTEN_PID then, and s.PIDEnv); the
// program, the descriptor of the pipe it reports a failure on (errFD), the
// supervisor's pid and, when s has one, the credential and directory to
// enter.
func shimEnvOf(s *Spec, errFD int) []string {
	var env []string
	pidVars := s.PIDEnv
	if len(s.ListenNames) > 0 {
		env = append(env,
			"LISTEN_FDS="+strconv.Itoa(len(s.ListenNames)),
			"LISTEN_FDNAMES="+strings.Join(s.ListenNames, ":"))
		pidVars = append([]string{"LISTEN_PID"}, pidVars...)
	}
	env = append(env,
		shimPIDEnv+"="+strings.Join(pidVars, ","),
		shimEnv+"="+s.Path,
		shimErrFDEnv+"="+strconv.Itoa(errFD),
		shimParentEnv+"="+strconv.Itoa(os.Getpid()))
	if c := s.Credential; c != nil {
		env = append(env, shimCredEnv+"="+formatCredential(c), shimDirEnv+"="+s.Dir)
	}
	return env
}

// formatCredential encodes c for shimCredEnv.
func formatCredential(c *syscall.Credential) string {
	groups := make([]string, len(c.Groups))
	for i, g := range c.Groups {
		groups[i] = strconv.FormatUint(uint64(g), 10)
	}
	return fmt.Sprintf("%d:%d:%s", c.Uid, c.Gid, strings.Join(groups, ","))
}

// parseCredential decodes formatCredential's encoding.
func parseCredential(s string) (uid, gid int, groups []int, err error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return 0, 0, nil, fmt.Errorf("bad credential %q", s)
	}
	if uid, err = strconv.Atoi(parts[0]); err != nil {
		return 0, 0, nil, err
	}
	if gid, err = strconv.Atoi(parts[1]); err != nil {
		return 0, 0, nil, err
	}
	groups = []int{}
	if parts[2] != "" {
		for _, g := range strings.Split(parts[2], ",") {
			n, err := strconv.Atoi(g)
			if err != nil {
				return 0, 0, nil, err
			}
			groups = append(groups, n)
		}
	}
	return uid, gid, groups, nil
}

// decodeShimError turns the shim's report ("setuid 1") into an error that
// says which step failed for what: the user or group of s.Credential, the
// working directory s.Dir; the execve of s.Path is the bare errno.
func decodeShimError(msg string, s *Spec) error {
	stage, num, ok := strings.Cut(msg, " ")
	n, err := strconv.Atoi(num)
	if !ok || err != nil {
		return fmt.Errorf("exec shim: %q", msg)
	}
	errno := syscall.Errno(n)
	c := s.Credential
	switch {
	case stage == "exec":
		return errno
	case stage == "chdir":
		return fmt.Errorf("chdir %s: %w", s.Dir, errno)
	case stage == "setuid" && c != nil:
		return fmt.Errorf("setuid %d: %w", c.Uid, errno)
	case stage == "setgid" && c != nil:
		return fmt.Errorf("setgid %d: %w", c.Gid, errno)
	case stage == "setgroups" && c != nil:
		return fmt.Errorf("setgroups %v: %w", c.Groups, errno)
	}
	return fmt.Errorf("%s: %w", stage, errno)
}
