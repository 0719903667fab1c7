package cpuquota

import (
	"os"
	"path/filepath"
	"testing"
)

func write(t *testing.T, root, rel, content string) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestAvailable(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		cpus  int
		want  int
	}{
		{"no cgroup file", nil, 8, 8},
		{"v2 unlimited", map[string]string{
			"proc/self/cgroup":          "0::/app\n",
			"sys/fs/cgroup/app/cpu.max": "max 100000\n",
		}, 48, 48},
		{"v2 two cpus on a big host", map[string]string{
			"proc/self/cgroup":          "0::/app\n",
			"sys/fs/cgroup/app/cpu.max": "200000 100000\n",
		}, 48, 2},
		{"v2 fractional rounds up", map[string]string{
			"proc/self/cgroup":          "0::/app\n",
			"sys/fs/cgroup/app/cpu.max": "150000 100000\n",
		}, 48, 2},
		{"v2 quota on a parent", map[string]string{
			"proc/self/cgroup":              "0::/pod/app\n",
			"sys/fs/cgroup/pod/cpu.max":     "300000 100000\n",
			"sys/fs/cgroup/pod/app/cpu.max": "max 100000\n",
		}, 48, 3},
		{"quota above the cpus", map[string]string{
			"proc/self/cgroup":          "0::/app\n",
			"sys/fs/cgroup/app/cpu.max": "800000 100000\n",
		}, 2, 2},
		{"tiny quota is still one", map[string]string{
			"proc/self/cgroup":          "0::/app\n",
			"sys/fs/cgroup/app/cpu.max": "10000 100000\n",
		}, 4, 1},
		{"v1", map[string]string{
			"proc/self/cgroup": "4:cpu,cpuacct:/docker/x\n",
			"sys/fs/cgroup/cpu,cpuacct/docker/x/cpu.cfs_quota_us":  "400000\n",
			"sys/fs/cgroup/cpu,cpuacct/docker/x/cpu.cfs_period_us": "100000\n",
		}, 48, 4},
		{"v1 unlimited", map[string]string{
			"proc/self/cgroup": "4:cpu,cpuacct:/docker/x\n",
			"sys/fs/cgroup/cpu,cpuacct/docker/x/cpu.cfs_quota_us":  "-1\n",
			"sys/fs/cgroup/cpu,cpuacct/docker/x/cpu.cfs_period_us": "100000\n",
		}, 6, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for rel, c := range tt.files {
				write(t, root, rel, c)
			}
			if got := available(tt.cpus, root); got != tt.want {
				t.Errorf("available(%d) = %d, want %d", tt.cpus, got, tt.want)
			}
		})
	}
}

func TestAvailableOnThisMachine(t *testing.T) {
	if n := Available(); n < 1 {
		t.Fatalf("Available() = %d", n)
	}
}
