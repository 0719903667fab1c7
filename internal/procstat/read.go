// Package procstat reads the resource use of process groups from /proc: the
// resident memory and the CPU time of every process of a group, summed, in
// one pass over /proc per reading, whatever the number of groups.
//
// Scanner reads; Sampler reads at an interval, in one goroutine, while
// something needs it, and keeps the last sample of each group with the CPU
// use over the interval before it.
package procstat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Usage is the resource use of one process group, read at one time.
type Usage struct {
	// Procs counts the group's processes, zombies included.
	Procs int
	// RSS is the resident memory of the group's processes, summed, in
	// bytes. A page that several of them share (after a fork, or a shared
	// library) counts once per process, as ps and top count it.
	RSS int64
	// CPU is the CPU time, user and system, that the group's live
	// processes used, each with that of the children it reaped (utime,
	// stime, cutime and cstime summed). A process of the group reaped by
	// another of the group moves its time to its reaper's, so the sum
	// stays; the time of one reaped from outside the group (an orphan
	// re-parented to a subreaper) leaves the sum with it.
	CPU time.Duration
}

// Scanner reads the usage of process groups from a proc file system. The
// zero value reads /proc. A Scanner keeps its buffers from one Scan to the
// next; it is not safe for concurrent use.
type Scanner struct {
	// Dir is where proc is mounted; "" means /proc.
	Dir string

	dirents []byte
	stat    []byte
	path    []byte
	tick    time.Duration
	page    int64
}

// ErrNoProc is returned (wrapped) by Scan when the proc file system cannot
// be read at all.
var ErrNoProc = errors.New("cannot read the proc file system")

// Scan reads the usage of each process group in groups, by pgid, in one
// pass over the processes of the system: it lists the proc directory once
// and reads each process's stat file once, so that its cost grows with the
// number of processes on the system, not with the number of groups. A group
// without a live process is left out of the result. A process that exits
// during the pass is skipped. Scan blocks on the file system (procfs: no
// disk) and allocates little after its first call.
func (s *Scanner) Scan(groups map[int]bool) (map[int]Usage, error) {
	s.init()
	out := make(map[int]Usage, len(groups))
	if len(groups) == 0 {
		return out, nil
	}
	dir := s.Dir
	if dir == "" {
		dir = "/proc"
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %w", ErrNoProc, dir, err)
	}
	defer unix.Close(fd)
	for {
		n, err := unix.Getdents(fd, s.dirents)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%w: read %s: %w", ErrNoProc, dir, err)
		}
		if n <= 0 {
			return out, nil
		}
		for b := s.dirents[:n]; len(b) >= 19; {
			// struct linux_dirent64: ino 8, off 8, reclen 2, type 1, name.
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			if reclen < 19 || reclen > len(b) {
				break
			}
			name := b[19:reclen]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			if pid, ok := parsePID(name); ok {
				s.readProcess(fd, pid, groups, out)
			}
			b = b[reclen:]
		}
	}
}

// init sets the buffers and the system's units once.
func (s *Scanner) init() {
	if s.dirents != nil {
		return
	}
	s.dirents = make([]byte, 32<<10)
	s.stat = make([]byte, 1024)
	s.path = make([]byte, 0, 32)
	s.tick = clockTick()
	s.page = int64(os.Getpagesize())
}

// readProcess adds process pid to the usage of its group in out, when its
// group is one of groups. dirfd is the open proc directory.
func (s *Scanner) readProcess(dirfd, pid int, groups map[int]bool, out map[int]Usage) {
	s.path = strconv.AppendInt(s.path[:0], int64(pid), 10)
	s.path = append(s.path, "/stat"...)
	fd, err := unix.Openat(dirfd, string(s.path), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return // it exited since the listing
	}
	n, err := readFull(fd, s.stat)
	unix.Close(fd)
	if err != nil || n == 0 {
		return
	}
	st, ok := parseStat(s.stat[:n])
	if !ok || !groups[st.pgrp] {
		return
	}
	u := out[st.pgrp]
	u.Procs++
	u.RSS += st.rss * s.page
	u.CPU += time.Duration(st.ticks) * s.tick
	out[st.pgrp] = u
}

// readFull reads what fd holds into buf, up to its size (a stat line is
// under 400 bytes).
func readFull(fd int, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := unix.Read(fd, buf[n:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			break
		}
		n += m
	}
	return n, nil
}

// parsePID returns the pid a proc directory entry names, if it names one.
func parsePID(name []byte) (int, bool) {
	if len(name) == 0 || len(name) > 10 {
		return 0, false
	}
	pid := 0
	for _, c := range name {
		if c < '0' || c > '9' {
			return 0, false
		}
		pid = pid*10 + int(c-'0')
	}
	return pid, pid > 0
}

// stat is what Scan needs of a /proc/PID/stat line.
type stat struct {
	pgrp  int
	ticks int64 // utime + stime + cutime + cstime
	rss   int64 // pages
}

// parseStat parses a /proc/PID/stat line (proc(5)). The command name, in
// parentheses, may hold spaces and parentheses itself: the fields that
// follow are counted from the last ')'.
func parseStat(b []byte) (stat, bool) {
	var st stat
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return st, false
	}
	// Fields from 3 (state) on; field k is at index k-3.
	const (
		fPgrp   = 5 - 3
		fUtime  = 14 - 3
		fCstime = 17 - 3
		fRSS    = 24 - 3
	)
	rest := b[i+1:]
	field := 0
	for field <= fRSS {
		rest = bytes.TrimLeft(rest, " ")
		if len(rest) == 0 {
			return st, false
		}
		end := bytes.IndexByte(rest, ' ')
		if end < 0 {
			end = len(rest)
		}
		tok := bytes.TrimRight(rest[:end], "\n")
		switch {
		case field == fPgrp:
			v, ok := parseInt(tok)
			if !ok {
				return st, false
			}
			st.pgrp = int(v)
		case field >= fUtime && field <= fCstime:
			v, ok := parseInt(tok)
			if !ok {
				return st, false
			}
			st.ticks += v
		case field == fRSS:
			v, ok := parseInt(tok)
			if !ok {
				return st, false
			}
			st.rss = max(v, 0)
		}
		rest = rest[end:]
		field++
	}
	return st, true
}

// parseInt parses a decimal integer, signed, without allocating.
func parseInt(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg, b = true, b[1:]
	}
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return v, true
}

// atClkTck is the auxiliary vector's key for the clock tick rate.
const atClkTck = 17

// clockTick returns the unit of the times in /proc/PID/stat: one tick of
// the kernel's USER_HZ, which the kernel passes every process in its
// auxiliary vector (AT_CLKTCK). It is 100 Hz on every architecture Linux
// runs Go on; that is the fallback.
func clockTick() time.Duration {
	b, err := os.ReadFile("/proc/self/auxv")
	word := strconv.IntSize / 8 // each entry is a key and a value of a word each
	for ; err == nil && len(b) >= 2*word; b = b[2*word:] {
		key, val := auxWord(b[:word]), auxWord(b[word:2*word])
		if key == atClkTck && val > 0 && val <= uint64(time.Second) {
			return time.Second / time.Duration(val)
		}
	}
	return 10 * time.Millisecond
}

// auxWord decodes one word of the auxiliary vector, 4 or 8 bytes.
func auxWord(b []byte) uint64 {
	if len(b) == 4 {
		return uint64(binary.NativeEndian.Uint32(b))
	}
	return binary.NativeEndian.Uint64(b)
}
