package main

// Measurements of the system: the workers' request counts, RSS, and the
// CPU time of other processes.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// workerCount is what a worker wrote: the requests it answered and the
// connections it accepted so far.
type workerCount struct{ requests, conns int64 }

// readCounts reads the counts of every worker that wrote them: file name
// pid, content "requests connections".
func readCounts(dir string) (map[int]workerCount, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := map[int]workerCount{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue // a .tmp file being written
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, err
		}
		var n workerCount
		if _, err := fmt.Sscan(string(b), &n.requests, &n.conns); err != nil {
			return nil, fmt.Errorf("count file %s: %q: %v", e.Name(), b, err)
		}
		out[pid] = n
	}
	return out, nil
}

// sampleRSS samples the VmRSS of pid every 50 ms until stop is closed and
// returns the largest, in bytes.
func sampleRSS(pid int, stop <-chan struct{}) int64 {
	var hi int64
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if v := rss(pid); v > hi {
			hi = v
		}
		select {
		case <-stop:
			return hi
		case <-t.C:
		}
	}
}

func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n * 1024
			}
		}
	}
	return 0
}

// clockTick is the unit of the CPU times in /proc: USER_HZ, 100 on Linux.
const clockTick = 10 * time.Millisecond

// systemBusy is the CPU time all CPUs have spent running processes (user,
// nice and system; not interrupts, idle or steal) since boot.
func systemBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 4 || f[0] != "cpu" {
		return 0
	}
	var ticks int64
	for _, v := range f[1:4] {
		n, _ := strconv.ParseInt(v, 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * clockTick
}

// processCPU is the CPU time (user and system) the processes pids have used.
func processCPU(pids []int) time.Duration {
	var ticks int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		// After the command name: state is field 3; utime and stime are 14 and 15.
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 13 {
			continue
		}
		for _, v := range f[11:13] {
			n, _ := strconv.ParseInt(v, 10, 64)
			ticks += n
		}
	}
	return time.Duration(ticks) * clockTick
}

// loadAverage is the machine's load average over 1, 5 and 15 minutes, as
// /proc/loadavg has it ("" when it cannot be read).
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
