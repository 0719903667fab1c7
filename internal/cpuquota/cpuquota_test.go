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

// podSlice is the cgroup of a burstable pod as the kubelet's systemd
// driver names it.
const podSlice = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod5f1c2b7e_9d4a_4c1e_8f3b_2a6d0e7c9b1f.slice"

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
		// Kubernetes (cgroup v2): limits.cpu becomes the container's
		// cpu.max, requests.cpu only its cpu.weight. Inside the
		// container's cgroup namespace (the default) the process sees
		// its own cgroup as the root.
		{"kubernetes limits.cpu 2, cgroup namespace", map[string]string{
			"proc/self/cgroup":      "0::/\n",
			"sys/fs/cgroup/cpu.max": "200000 100000\n",
		}, 48, 2},
		{"kubernetes limits.cpu 500m", map[string]string{
			"proc/self/cgroup":      "0::/\n",
			"sys/fs/cgroup/cpu.max": "50000 100000\n",
		}, 48, 1},
		{"kubernetes requests.cpu only: no limit", map[string]string{
			"proc/self/cgroup":         "0::/\n",
			"sys/fs/cgroup/cpu.max":    "max 100000\n",
			"sys/fs/cgroup/cpu.weight": "79\n",
		}, 48, 48},
		{"kubernetes limits.cpu 2, host's view of the pod", map[string]string{
			"proc/self/cgroup":                                                    "0::" + podSlice + "/cri-containerd-0123abcd.scope\n",
			"sys/fs/cgroup/kubepods.slice/cpu.max":                                "max 100000\n",
			"sys/fs/cgroup/kubepods.slice/kubepods-burstable.slice/cpu.max":       "max 100000\n",
			"sys/fs/cgroup" + podSlice + "/cpu.max":                               "400000 100000\n",
			"sys/fs/cgroup" + podSlice + "/cri-containerd-0123abcd.scope/cpu.max": "200000 100000\n",
		}, 48, 2},
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
