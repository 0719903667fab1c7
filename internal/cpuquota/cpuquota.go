// Package cpuquota tells how many CPUs this process may use: the CPUs in its
// affinity mask, lowered to its cgroup's CPU bandwidth quota when there is
// one (rounded up), as Go's runtime does for GOMAXPROCS. A container limited
// to 2 CPUs on a 48-core host gets 2, not 48.
package cpuquota

import (
	"bufio"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// Available returns the number of CPUs this process may use, at least 1.
func Available() int {
	return available(runtime.NumCPU(), "/")
}

// available is Available with the CPU count and filesystem root given, so
// tests can point it at a fake /proc and /sys.
func available(cpus int, root string) int {
	if q, ok := quota(root); ok && q < float64(cpus) {
		cpus = int(math.Ceil(q))
	}
	return max(cpus, 1)
}

// quota returns the tightest CPU bandwidth limit over this process's cgroup
// and its ancestors, in CPUs, and false when there is none.
func quota(root string) (float64, bool) {
	f, err := os.Open(filepath.Join(root, "proc/self/cgroup"))
	if err != nil {
		return 0, false
	}
	defer f.Close()
	best, found := 0.0, false
	consider := func(q float64) {
		if q > 0 && (!found || q < best) {
			best, found = q, true
		}
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// hierarchy-ID:controller-list:cgroup-path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "": // cgroup v2
			for dir := parts[2]; ; dir = filepath.Dir(dir) {
				consider(readV2(filepath.Join(root, "sys/fs/cgroup", dir, "cpu.max")))
				if dir == "/" || dir == "." {
					break
				}
			}
		case hasController(parts[1], "cpu"): // cgroup v1
			for dir := parts[2]; ; dir = filepath.Dir(dir) {
				base := filepath.Join(root, "sys/fs/cgroup/cpu,cpuacct", dir)
				if _, err := os.Stat(base); err != nil {
					base = filepath.Join(root, "sys/fs/cgroup/cpu", dir)
				}
				consider(readV1(base))
				if dir == "/" || dir == "." {
					break
				}
			}
		}
	}
	return best, found
}

func hasController(list, name string) bool {
	for _, c := range strings.Split(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}

// readV2 parses cgroup v2's cpu.max: "max 100000" or "200000 100000".
func readV2(path string) float64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(b))
	if len(fields) != 2 || fields[0] == "max" {
		return 0
	}
	return ratio(fields[0], fields[1])
}

// readV1 reads cgroup v1's cpu.cfs_quota_us and cpu.cfs_period_us.
func readV1(dir string) float64 {
	q, err1 := os.ReadFile(filepath.Join(dir, "cpu.cfs_quota_us"))
	p, err2 := os.ReadFile(filepath.Join(dir, "cpu.cfs_period_us"))
	if err1 != nil || err2 != nil {
		return 0
	}
	return ratio(strings.TrimSpace(string(q)), strings.TrimSpace(string(p)))
}

func ratio(quota, period string) float64 {
	q, err1 := strconv.ParseFloat(quota, 64)
	p, err2 := strconv.ParseFloat(period, 64)
	if err1 != nil || err2 != nil || q <= 0 || p <= 0 {
		return 0
	}
	return q / p
}
