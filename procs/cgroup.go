package procs

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// cgroupEmptyTimeout bounds how long Remove waits for the processes killed
// in a cgroup to leave it.
const cgroupEmptyTimeout = 10 * time.Second

// Cgroup is a cgroup v2 that a supervisor created, as a child of its own,
// for its workers: every process started into it, and every descendant,
// stays in it whatever process group or session it moves to, so that
// killing the cgroup ends them all.
type Cgroup struct {
	// Path is the cgroup's directory.
	Path string
	dir  *os.File
}

// CreateCgroup creates the cgroup "paddock-<pid>" below this process's own cgroup v2 (the "0::" line of /proc/self/cgroup, on the
// cgroup2 mount found in /proc/self/mountinfo), and checks that a process
// can be started into it. The error says why not, when it cannot: no
// cgroup2 mount, a read-only or foreign one, a kernel without
// CLONE_INTO_CGROUP (Linux 5.7).
func CreateCgroup() (*Cgroup, error) {
	mount, root, err := cgroup2Mount()
	if err != nil {
		return nil, err
	}
	own, err := ownCgroup()
	if err != nil {
		return nil, err
	}
	rel, err := filepath.Rel(root, own)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return nil, fmt.Errorf("this process's cgroup %s is outside the cgroup2 mount at %s", own, mount)
	}
	path := filepath.Join(mount, rel, "paddock-"+strconv.Itoa(os.Getpid()))
	err = os.Mkdir(path, 0o755)
	if errors.Is(err, os.ErrExist) && unix.Rmdir(path) == nil {
		// Left, empty, by an earlier process with this pid.
		err = os.Mkdir(path, 0o755)
	}
	if err != nil {
		return nil, fmt.Errorf("create cgroup: %w", err)
	}
	dir, err := os.OpenFile(path, os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		_ = unix.Rmdir(path)
		return nil, fmt.Errorf("open cgroup: %w", err)
	}
	c := &Cgroup{Path: path, dir: dir}
	if err := c.probe(); err != nil {
		dir.Close()
		_ = unix.Rmdir(path)
		return nil, fmt.Errorf("start a process in cgroup %s: %w", path, err)
	}
	return c, nil
}

// probe starts this binary into the cgroup, as Start will start workers; it
// exits at once (ExecShim).
func (c *Cgroup) probe() error {
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer devnull.Close()
	p, err := os.StartProcess("/proc/self/exe", []string{"paddock-cgroup-probe"}, &os.ProcAttr{
		Env:   []string{probeEnv + "=1", noRaceExitSleep},
		Files: []*os.File{devnull, devnull, devnull},
		Sys:   &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: c.fd(), Pdeathsig: unix.SIGKILL},
	})
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return pe.Err
		}
		return err
	}
	// A Reaper running in this process may reap it first: either way it
	// started, which is all that is asked.
	_, _ = p.Wait()
	return nil
}

func (c *Cgroup) fd() int { return int(c.dir.Fd()) }

// Kill sends SIGKILL to every process in the cgroup (cgroup.kill, Linux
// 5.14; before, each process listed in cgroup.procs until none is left) and
// returns how many there were.
func (c *Cgroup) Kill() (int, error) {
	return killCgroup(c.Path)
}

// Remove waits (a bounded time) until the cgroup is empty, removes it and
// releases its descriptor. Kill what is in it first.
func (c *Cgroup) Remove() error {
	defer c.dir.Close()
	return removeCgroup(c.Path)
}

// killCgroup is Cgroup.Kill on a path, for the watchdog too.
func killCgroup(path string) (int, error) {
	pids, err := cgroupProcs(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, nil
		}
		return 0, err
	}
	if len(pids) == 0 {
		return 0, nil
	}
	if err := os.WriteFile(filepath.Join(path, "cgroup.kill"), []byte("1"), 0); err == nil {
		return len(pids), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return len(pids), fmt.Errorf("kill cgroup %s: %w", path, err)
	}
	// No cgroup.kill: a process forking meanwhile is caught by a later
	// round.
	deadline := time.Now().Add(cgroupEmptyTimeout)
	for len(pids) > 0 && time.Now().Before(deadline) {
		for _, pid := range pids {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		time.Sleep(10 * time.Millisecond)
		if pids, err = cgroupProcs(path); err != nil {
			break
		}
	}
	return len(pids), nil
}

// removeCgroup waits until cgroup path has no process left (zombies do not
// count), then removes it. A cgroup that is gone is not an error.
func removeCgroup(path string) error {
	deadline := time.Now().Add(cgroupEmptyTimeout)
	for {
		err := unix.Rmdir(path)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return fmt.Errorf("remove cgroup %s: %w", path, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// cgroupProcs lists the processes in cgroup path.
func cgroupProcs(path string) ([]int, error) {
	b, err := os.ReadFile(filepath.Join(path, "cgroup.procs"))
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// cgroup2Mount finds the cgroup2 mount in /proc/self/mountinfo: its mount
// point and the cgroup path it shows (its root).
func cgroup2Mount() (mount, root string, err error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 5 || sep+1 >= len(fields) || fields[sep+1] != "cgroup2" {
			continue
		}
		return unescapeMount(fields[4]), unescapeMount(fields[3]), nil
	}
	if err := sc.Err(); err != nil {
		return "", "", err
	}
	return "", "", errors.New("no cgroup2 file system is mounted")
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ownCgroup returns this process's cgroup v2 path, from the "0::" line of
// /proc/self/cgroup.
func ownCgroup() (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			if strings.HasSuffix(p, " (deleted)") {
				return "", fmt.Errorf("this process's cgroup %s was removed", p)
			}
			return p, nil
		}
	}
	return "", errors.New("this process is in no cgroup v2 hierarchy")
}
