package main

// The files under deploy/ checked against paddock itself: what a
// Kubernetes cluster would run must be what paddock accepts and serves.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/paddock-sh/paddock/internal/healthz"
	"github.com/paddock-sh/paddock/manifest"
)

// deployDir is the repository's deploy/ directory, from cmd/paddock.
const deployDir = "../../deploy"

// imageEntrypoint is the image's ENTRYPOINT (issue 16's contract; the
// Dockerfile's, when there is one, is checked against it).
var imageEntrypoint = []string{"paddock", "run", "/etc/paddock"}

// stopMargin is how much longer than the longest stop paddock can take
// (the preStop sleep, then the longest chain of killTimeouts) a pod's
// terminationGracePeriodSeconds must be: time for paddock's own exit and
// for a worker that is still starting when SIGTERM comes.
const stopMargin = 5 * time.Second

// k8sDoc is what the tests read of a Kubernetes object. Decoding is not
// strict: only these fields are checked.
type k8sDoc struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Data      map[string]string `yaml:"data"`
	Resources []string          `yaml:"resources"` // a Kustomization's
	Spec      struct {
		Template struct {
			Spec podSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`

	file string
}

type podSpec struct {
	TerminationGracePeriodSeconds *int            `yaml:"terminationGracePeriodSeconds"`
	SecurityContext               securityContext `yaml:"securityContext"`
	InitContainers                []container     `yaml:"initContainers"`
	Containers                    []container     `yaml:"containers"`
	Volumes                       []struct {
		Name      string `yaml:"name"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
		EmptyDir any `yaml:"emptyDir"`
	} `yaml:"volumes"`
}

type securityContext struct {
	RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
	RunAsUser                *int  `yaml:"runAsUser"`
	ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
	AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
}

type container struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	Ports   []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Resources struct {
		Limits   map[string]string `yaml:"limits"`
		Requests map[string]string `yaml:"requests"`
	} `yaml:"resources"`
	StartupProbe   *probe `yaml:"startupProbe"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	Lifecycle      struct {
		PreStop *struct {
			Sleep *struct {
				Seconds int `yaml:"seconds"`
			} `yaml:"sleep"`
		} `yaml:"preStop"`
	} `yaml:"lifecycle"`
	SecurityContext securityContext `yaml:"securityContext"`
	VolumeMounts    []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

type probe struct {
	HTTPGet *struct {
		Path string    `yaml:"path"`
		Port yaml.Node `yaml:"port"`
	} `yaml:"httpGet"`
	TimeoutSeconds int `yaml:"timeoutSeconds"`
}

// readDeploy parses every YAML file under deploy/, each document of each.
func readDeploy(t *testing.T) []k8sDoc {
	t.Helper()
	var docs []k8sDoc
	err := filepath.WalkDir(deployDir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || (filepath.Ext(p) != ".yaml" && filepath.Ext(p) != ".yml") {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for i := 1; ; i++ {
			var doc k8sDoc
			if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return fmt.Errorf("%s: document %d: %w", p, i, err)
			}
			doc.file = p
			if doc.Kind == "" || doc.APIVersion == "" {
				return fmt.Errorf("%s: document %d has no kind or apiVersion", p, i)
			}
			docs = append(docs, doc)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return docs
}

// TestDeployKubernetes checks every Deployment under deploy/ that runs
// paddock against paddock: its command line parses with paddock run's own
// flags; its manifests path is the ConfigMap's mount (the ENTRYPOINT's
// directory) or the link git-sync keeps; the ConfigMap's manifests pass
// paddock's validation; the probes hit endpoints paddock serves, on
// --health-addr's port, with a timeout above paddock's own bound; the
// grace period outlasts the preStop sleep and the longest stop; the
// container runs as non-root on a read-only root filesystem.
func TestDeployKubernetes(t *testing.T) {
	docs := readDeploy(t)
	configMaps := map[string]k8sDoc{}
	for _, d := range docs {
		if d.Kind == "ConfigMap" {
			configMaps[d.Metadata.Name] = d
		}
	}
	deployments := 0
	for _, d := range docs {
		if d.Kind != "Deployment" {
			continue
		}
		deployments++
		t.Run(filepath.Base(d.file)+"/"+d.Metadata.Name, func(t *testing.T) {
			checkDeployment(t, d, configMaps)
		})
	}
	if deployments < 2 {
		t.Errorf("%d Deployments under %s, want the ConfigMap one and the git-sync one", deployments, deployDir)
	}
}

// checkDeployment checks one Deployment's pod (see TestDeployKubernetes).
func checkDeployment(t *testing.T, d k8sDoc, configMaps map[string]k8sDoc) {
	pod := d.Spec.Template.Spec
	var pc *container
	for i, c := range pod.Containers {
		if c.Name == "paddock" {
			pc = &pod.Containers[i]
		}
	}
	if pc == nil {
		t.Fatalf("no container named paddock")
	}
	healthAddr, paths := paddockArgs(t, *pc)
	if len(paths) != 1 {
		t.Fatalf("paddock run reads %q; want one manifest directory", paths)
	}
	healthPort := checkProbes(t, *pc, healthAddr)
	preStop := checkPreStop(t, *pc)
	stop := checkManifestSource(t, pod, *pc, paths[0], healthPort, configMaps)
	if pod.TerminationGracePeriodSeconds == nil {
		t.Fatal("no terminationGracePeriodSeconds")
	}
	grace := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
	if need := preStop + stop + stopMargin; grace < need {
		t.Errorf("terminationGracePeriodSeconds %s < preStop %s + longest stop %s + margin %s", grace, preStop, stop, stopMargin)
	}
	checkSecurity(t, pod, *pc)
}

// checkManifestSource checks where the container's manifests (at p) come
// from, a ConfigMap mounted at p or an emptyDir above it where git-sync
// keeps its link, and returns the longest stop of their apps.
func checkManifestSource(t *testing.T, pod podSpec, pc container, p, healthPort string, configMaps map[string]k8sDoc) time.Duration {
	t.Helper()
	var stop time.Duration
	mount, rel := mountOf(t, pc, p)
	vol := volumeOf(t, pod, mount.Name)
	switch {
	case vol.ConfigMap != nil:
		if rel != "" {
			t.Errorf("paddock reads %s, a directory inside the ConfigMap's mount %s; want the mount itself", p, mount.MountPath)
		}
		if p != imageEntrypoint[2] {
			t.Errorf("the ConfigMap is mounted at %s, want the image's ENTRYPOINT directory %s", p, imageEntrypoint[2])
		}
		cm, ok := configMaps[vol.ConfigMap.Name]
		if !ok {
			t.Fatalf("ConfigMap %q is not defined under %s", vol.ConfigMap.Name, deployDir)
		}
		set := validateConfigMap(t, cm)
		stop = stopBound(set)
		checkAutoHasCPULimit(t, set, pc)
		for _, a := range set.Apps {
			for _, l := range a.Listen {
				if port := l.Port(); port != 0 && strconv.Itoa(port) == healthPort {
					t.Errorf("app %s listens on %s, --health-addr's port", a.Name, l.Raw)
				}
			}
		}
	case vol.EmptyDir != nil:
		checkGitSync(t, pod, mount.Name, mount.MountPath, rel)
		// The manifests are the repository's: the default killTimeout
		// is the least the grace period must outlast.
		stop = manifest.DefaultKillTimeout
	default:
		t.Fatalf("volume %q of the manifests is neither a ConfigMap nor an emptyDir", mount.Name)
	}
	if !mount.ReadOnly {
		t.Errorf("the manifests' mount %s is writable by paddock; want readOnly", mount.MountPath)
	}
	return stop
}

// checkSecurity: non-root, read-only root filesystem, no privilege
// escalation, requests and a memory limit.
func checkSecurity(t *testing.T, pod podSpec, pc container) {
	t.Helper()
	if nonRoot := pc.SecurityContext.RunAsNonRoot; !isTrue(nonRoot) && !isTrue(pod.SecurityContext.RunAsNonRoot) {
		t.Error("runAsNonRoot is not set: paddock must not run as root")
	}
	if !isTrue(pc.SecurityContext.ReadOnlyRootFilesystem) {
		t.Error("paddock's root filesystem is writable; want readOnlyRootFilesystem: true")
	}
	if p := pc.SecurityContext.AllowPrivilegeEscalation; p == nil || *p {
		t.Error("allowPrivilegeEscalation is not false")
	}
	if pc.Resources.Limits["memory"] == "" || pc.Resources.Requests["cpu"] == "" || pc.Resources.Requests["memory"] == "" {
		t.Errorf("resources %+v: want requests (cpu, memory) and a memory limit", pc.Resources)
	}
}

func isTrue(b *bool) bool { return b != nil && *b }

// paddockArgs returns the container's --health-addr and manifest paths, as
// paddock run's own flags parse its command line: the ENTRYPOINT and args,
// or its command and args.
func paddockArgs(t *testing.T, c container) (healthAddr string, paths []string) {
	t.Helper()
	argv := append(slices.Clone(imageEntrypoint), c.Args...)
	if len(c.Command) > 0 {
		argv = append(slices.Clone(c.Command), c.Args...)
	}
	if len(argv) < 2 || argv[0] != "paddock" || argv[1] != "run" {
		t.Fatalf("the container runs %q, want paddock run", argv)
	}
	cmd := newRunCmd(io.Discard, io.Discard)
	if err := cmd.ParseFlags(argv[2:]); err != nil {
		t.Fatalf("paddock run %q: %v", argv[2:], err)
	}
	healthAddr, _ = cmd.Flags().GetString("health-addr")
	if healthAddr == "" {
		t.Fatalf("paddock run %q has no --health-addr: the probes have nothing to ask", argv[2:])
	}
	return healthAddr, cmd.Flags().Args()
}

// checkProbes checks the three probes and returns --health-addr's port.
func checkProbes(t *testing.T, c container, healthAddr string) string {
	t.Helper()
	host, port, err := net.SplitHostPort(healthAddr)
	if err != nil {
		t.Fatalf("--health-addr %q: %v", healthAddr, err)
	}
	if host != "" && host != "0.0.0.0" && host != "::" {
		t.Errorf("--health-addr %q: the kubelet probes the pod's address; want :PORT", healthAddr)
	}
	for _, p := range []struct {
		kind, path string
		probe      *probe
	}{
		{"startupProbe", "/healthz", c.StartupProbe},
		{"readinessProbe", "/readyz", c.ReadinessProbe},
		{"livenessProbe", "/livez", c.LivenessProbe},
	} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("no %s httpGet", p.kind)
			continue
		}
		u, err := url.Parse(p.probe.HTTPGet.Path)
		if err != nil || !slices.Contains(healthz.Paths, u.Path) || u.Path != p.path {
			t.Errorf("%s asks %q; want %s (paddock serves %q)", p.kind, p.probe.HTTPGet.Path, p.path, healthz.Paths)
		}
		if got := containerPort(t, c, p.probe.HTTPGet.Port); got != port {
			t.Errorf("%s probes port %s, --health-addr listens on %s", p.kind, got, port)
		}
		if p.probe.TimeoutSeconds <= int(healthz.DefaultTimeout/time.Second) {
			t.Errorf("%s timeoutSeconds %d: want more than paddock's own bound (%s), so that its answer carries the reason",
				p.kind, p.probe.TimeoutSeconds, healthz.DefaultTimeout)
		}
	}
	return port
}

// containerPort resolves a probe's port, a number or a port's name.
func containerPort(t *testing.T, c container, n yaml.Node) string {
	t.Helper()
	if _, err := strconv.Atoi(n.Value); err == nil {
		return n.Value
	}
	for _, p := range c.Ports {
		if p.Name == n.Value {
			return strconv.Itoa(p.ContainerPort)
		}
	}
	t.Errorf("port %q is not a port of container %s", n.Value, c.Name)
	return ""
}

// checkPreStop returns the preStop sleep (the drain), which must be there.
func checkPreStop(t *testing.T, c container) time.Duration {
	t.Helper()
	if c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil || c.Lifecycle.PreStop.Sleep.Seconds <= 0 {
		t.Error("no preStop sleep: the pod would stop serving before the endpoints drop it")
		return 0
	}
	return time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
}

type volumeMount = struct {
	Name      string `yaml:"name"`
	MountPath string `yaml:"mountPath"`
	ReadOnly  bool   `yaml:"readOnly"`
}

// mountOf returns the container's mount that holds p, and p relative to
// it ("" when p is the mount itself).
func mountOf(t *testing.T, c container, p string) (volumeMount, string) {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if rel, err := filepath.Rel(m.MountPath, p); err == nil && !strings.HasPrefix(rel, "..") {
			if rel == "." {
				rel = ""
			}
			return m, rel
		}
	}
	t.Fatalf("paddock reads %s, which no volume of the container holds", p)
	return volumeMount{}, ""
}

type podVolume = struct {
	Name      string `yaml:"name"`
	ConfigMap *struct {
		Name string `yaml:"name"`
	} `yaml:"configMap"`
	EmptyDir any `yaml:"emptyDir"`
}

func volumeOf(t *testing.T, pod podSpec, name string) podVolume {
	t.Helper()
	for _, v := range pod.Volumes {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no volume %q in the pod", name)
	return podVolume{}
}

// checkGitSync checks that a git-sync container of pod keeps its link
// where paddock reads: the volume mounted at its --root is the one paddock
// mounts at mountPath, and --link is rel; and that a first sync runs
// before paddock starts (an init container with --one-time).
func checkGitSync(t *testing.T, pod podSpec, volume, mountPath, rel string) {
	t.Helper()
	syncs, oneTime := 0, false
	for i, c := range append(slices.Clone(pod.InitContainers), pod.Containers...) {
		if !strings.Contains(c.Image, "git-sync") {
			continue
		}
		flags := map[string]string{}
		for _, a := range c.Args {
			k, v, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
			flags[k] = v
		}
		root := flags["root"]
		var at string
		for _, m := range c.VolumeMounts {
			if m.Name == volume {
				at = m.MountPath
			}
		}
		if at == "" || at != root {
			t.Errorf("git-sync %s: --root %q, the volume %s mounted at %q", c.Name, root, volume, at)
		}
		if link := flags["link"]; path.Clean(link) != rel || path.IsAbs(link) {
			t.Errorf("git-sync %s: --link %q; paddock reads %s, so want %q", c.Name, link, path.Join(mountPath, rel), rel)
		}
		if _, ok := flags["one-time"]; ok && i < len(pod.InitContainers) {
			oneTime = true
		}
		syncs++
	}
	if syncs < 2 || !oneTime {
		t.Errorf("%d git-sync containers (one-time init container: %v); want a first sync before paddock starts and one that keeps syncing", syncs, oneTime)
	}
}

// validateConfigMap passes the ConfigMap's manifests (its *.yaml and *.yml
// keys) through paddock's decoding and validation, as paddock would read
// them from the mounted directory; the checks of the host (programs,
// users) are the image's, not this machine's.
func validateConfigMap(t *testing.T, cm k8sDoc) *manifest.Set {
	t.Helper()
	var apps []*manifest.App
	var errs []error
	for key, data := range cm.Data {
		if ext := filepath.Ext(key); ext != ".yaml" && ext != ".yml" {
			continue
		}
		f, err := manifest.DecodeFile(filepath.Join(imageEntrypoint[2], key), []byte(data))
		errs = append(errs, err)
		apps = append(apps, f.Apps...)
	}
	if len(apps) == 0 {
		t.Fatalf("ConfigMap %s (%s) holds no app", cm.Metadata.Name, cm.file)
	}
	set, err := manifest.Validate(apps)
	if err := errors.Join(append(errs, err)...); err != nil {
		t.Fatalf("ConfigMap %s (%s): %v", cm.Metadata.Name, cm.file, err)
	}
	return set
}

// stopBound is the longest paddock can take to stop the apps of set
// gracefully: every app's workers stop together, each within its
// killTimeout, and an app only after the apps that depend on it, so the
// longest chain of dependencies adds up.
func stopBound(set *manifest.Set) time.Duration {
	memo := map[string]time.Duration{}
	// after returns how long the app's stop may take, counting the apps
	// that depend on it (which stop first).
	var after func(name string) time.Duration
	after = func(name string) time.Duration {
		if d, ok := memo[name]; ok {
			return d
		}
		memo[name] = 0 // validation refuses cycles; this ends one anyway
		var longest time.Duration
		for _, other := range set.Names() {
			if slices.Contains(set.Apps[other].DependsOn, name) {
				longest = max(longest, after(other))
			}
		}
		memo[name] = longest + set.Apps[name].KillTimeout
		return memo[name]
	}
	var bound time.Duration
	for _, name := range set.Names() {
		bound = max(bound, after(name))
	}
	return bound
}

// checkAutoHasCPULimit: an app with instances: auto in a container with no
// CPU limit would start a worker per CPU of the node.
func checkAutoHasCPULimit(t *testing.T, set *manifest.Set, c container) {
	t.Helper()
	for _, name := range set.Names() {
		if set.Apps[name].InstancesAuto && c.Resources.Limits["cpu"] == "" {
			t.Errorf("app %s has instances: auto and the container no limits.cpu: one worker per CPU of the node", name)
		}
	}
}

// TestStopBound: the grace period check adds killTimeouts along
// dependsOn chains.
func TestStopBound(t *testing.T) {
	app := func(name string, kill time.Duration, deps ...string) *manifest.App {
		return &manifest.App{Name: name, KillTimeout: kill, DependsOn: deps}
	}
	set := &manifest.Set{Apps: map[string]*manifest.App{
		"db":    app("db", 10*time.Second),
		"api":   app("api", 5*time.Second, "db"),
		"web":   app("web", 3*time.Second, "api"),
		"batch": app("batch", 15*time.Second),
	}}
	if got, want := stopBound(set), 18*time.Second; got != want {
		t.Errorf("stopBound = %s, want %s (web, then api, then db)", got, want)
	}
}

// TestDeployKustomization: each kustomization.yaml under deploy/ lists
// files that exist; with kubectl installed, `kubectl kustomize` renders it
// offline.
func TestDeployKustomization(t *testing.T) {
	found := 0
	for _, d := range readDeploy(t) {
		if d.Kind != "Kustomization" {
			continue
		}
		found++
		dir := filepath.Dir(d.file)
		for _, r := range d.Resources {
			if _, err := os.Stat(filepath.Join(dir, r)); err != nil {
				t.Errorf("%s: resource %s: %v", d.file, r, err)
			}
		}
		kubectl, err := exec.LookPath("kubectl")
		if err != nil {
			t.Logf("%s: kubectl is not installed: not rendered", d.file)
			continue
		}
		out, err := exec.Command(kubectl, "kustomize", dir).CombinedOutput()
		if err != nil {
			t.Errorf("kubectl kustomize %s: %v\n%s", dir, err, out)
		}
	}
	if found == 0 {
		t.Errorf("no kustomization.yaml under %s", deployDir)
	}
}

// TestDeployEntrypoint: every ENTRYPOINT of the Dockerfile (each target's)
// is the one deploy/ counts on: paddock run /etc/paddock, exec form.
func TestDeployEntrypoint(t *testing.T) {
	data, err := os.ReadFile("../../Dockerfile")
	if errors.Is(err, os.ErrNotExist) {
		t.Skip("no Dockerfile in this tree")
	}
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for i, line := range strings.Split(string(data), "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "ENTRYPOINT")
		if !ok {
			continue
		}
		found++
		var argv []string
		if err := yaml.Unmarshal([]byte(rest), &argv); err != nil || !slices.Equal(argv, imageEntrypoint) {
			t.Errorf("Dockerfile:%d: ENTRYPOINT%s; want the exec form %q", i+1, rest, imageEntrypoint)
		}
	}
	if found == 0 {
		t.Error("the Dockerfile has no ENTRYPOINT")
	}
}
