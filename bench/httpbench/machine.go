package main

// The description of the machine the report starts with.

import (
	"context"
	"debug/buildinfo"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type machineInfo struct {
	rows [][2]string
}

func describeMachine(ctx context.Context, o options, b *bench) machineInfo {
	var m machineInfo
	add := func(k, v string) { m.rows = append(m.rows, [2]string{k, v}) }

	model := "unknown"
	if s, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(s), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	add("CPUs", fmt.Sprintf("%d usable (nproc), %s", runtime.NumCPU(), model))
	if s, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(s), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				f := strings.Fields(rest)
				if kb, err := strconv.ParseFloat(f[0], 64); err == nil {
					add("memory", fmt.Sprintf("%.1f GiB", kb/(1<<20)))
				}
			}
		}
	}
	var uts syscall.Utsname
	if syscall.Uname(&uts) == nil {
		add("kernel", utsString(uts.Sysname[:])+" "+utsString(uts.Release[:])+" "+utsString(uts.Machine[:]))
	}
	if s, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(s))
		if len(f) >= 3 {
			add("load average before the run", strings.Join(f[:3], " "))
		}
	}
	goVersion := runtime.Version() + " (this runner)"
	if bi, err := buildinfo.ReadFile(b.paddock); err == nil {
		goVersion = bi.GoVersion + " (paddock built with it)"
	}
	add("Go", goVersion)
	add("Node", firstLine(ctx, b.node, "--version"))
	wrkVersion, _, _ := strings.Cut(firstLine(ctx, b.wrk, "-v"), " Copyright")
	add("wrk", wrkVersion)
	add("workers", fmt.Sprintf("%d per configuration, on both sides", o.workers))
	warm := "no warm-up"
	if o.warmup > 0 {
		warm = fmt.Sprintf("after a %s keep-alive warm-up per configuration", o.warmup)
	}
	add("wrk settings", fmt.Sprintf("`wrk %s URL`, and with `-H 'Connection: close'`; %s", strings.Join(b.wrkArgs(false, o.duration), " "), warm))
	rounds := strconv.Itoa(o.rounds)
	if o.paired {
		rounds += " (-paired: every supervisor started first; each round measures each configuration in turn)"
	}
	add("rounds", rounds)
	return m
}

// addListenPaths adds how paddock's workers took their sockets, known once
// they ran.
func (m *machineInfo) addListenPaths(b *bench) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.paddockListen) == 0 {
		return
	}
	v := strings.Join(b.paddockListen, "; ")
	if b.o.paddockIPC != "" {
		v += fmt.Sprintf(" (`ipc: %s`)", b.o.paddockIPC)
	} else {
		v += " (paddock's default `ipc:`)"
	}
	m.rows = append(m.rows, [2]string{"paddock's workers", v})
}

func utsString(b []int8) string {
	var s []byte
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}

// firstLine is the first line of a version command's output (wrk -v exits
// with 1, so the exit status is ignored).
func firstLine(ctx context.Context, name string, args ...string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, name, args...).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if line == "" {
		return "unknown"
	}
	return strings.TrimSpace(line)
}
