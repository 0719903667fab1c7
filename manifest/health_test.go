package manifest_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/paddock-sh/paddock/manifest"
)

func TestDecodeHealthCheck(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want manifest.HealthCheck
	}{
		{"http defaults", "http: {}", manifest.HealthCheck{
			HTTP:     &manifest.HTTPProbe{Path: "/", Port: manifest.ProbePort{From: manifest.PortListen}},
			Interval: 10 * time.Second, Timeout: time.Second, FailureThreshold: 3,
		}},
		{"http true", "http: true", manifest.HealthCheck{
			HTTP:     &manifest.HTTPProbe{Path: "/", Port: manifest.ProbePort{From: manifest.PortListen}},
			Interval: 10 * time.Second, Timeout: time.Second, FailureThreshold: 3,
		}},
		{"http every field", "http: {path: \"/healthz?x=1\", port: 8080}\n      interval: 2s\n      timeout: 500ms\n      failureThreshold: 5\n      startPeriod: 30s",
			manifest.HealthCheck{
				HTTP:     &manifest.HTTPProbe{Path: "/healthz?x=1", Port: manifest.ProbePort{Number: 8080}},
				Interval: 2 * time.Second, Timeout: 500 * time.Millisecond, FailureThreshold: 5, StartPeriod: 30 * time.Second,
			}},
		{"http port worker", "http: {port: worker}", manifest.HealthCheck{
			HTTP:     &manifest.HTTPProbe{Path: "/", Port: manifest.ProbePort{From: manifest.PortWorker}},
			Interval: 10 * time.Second, Timeout: time.Second, FailureThreshold: 3,
		}},
		{"tcp true", "tcp: true", manifest.HealthCheck{
			TCP:      &manifest.TCPProbe{Port: manifest.ProbePort{From: manifest.PortListen}},
			Interval: 10 * time.Second, Timeout: time.Second, FailureThreshold: 3,
		}},
		{"tcp port", "tcp: {port: 9000}", manifest.HealthCheck{
			TCP:      &manifest.TCPProbe{Port: manifest.ProbePort{Number: 9000}},
			Interval: 10 * time.Second, Timeout: time.Second, FailureThreshold: 3,
		}},
		{"exec", "exec: [check, --quick, 1]", manifest.HealthCheck{
			Exec:     []string{"check", "--quick", "1"},
			Interval: 10 * time.Second, Timeout: time.Second, FailureThreshold: 3,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := decodeOne(t, "apps:\n  web:\n    exec: x\n    healthCheck:\n      "+tt.src+"\n")
			got := a.HealthCheck
			if got == nil {
				t.Fatal("no healthCheck")
			}
			if !equalHealth(*got, tt.want) {
				t.Errorf("got %+v (http %+v, tcp %+v), want %+v", *got, got.HTTP, got.TCP, tt.want)
			}
		})
	}
	if a := decodeOne(t, "apps:\n  web:\n    exec: x\n    healthCheck: null\n"); a.HealthCheck != nil {
		t.Errorf("healthCheck: null gives %+v, want none", a.HealthCheck)
	}
	if a := decodeOne(t, "apps:\n  web:\n    exec: x\n"); a.HealthCheck != nil {
		t.Errorf("no healthCheck gives %+v", a.HealthCheck)
	}
}

func equalHealth(a, b manifest.HealthCheck) bool {
	if (a.HTTP == nil) != (b.HTTP == nil) || (a.TCP == nil) != (b.TCP == nil) {
		return false
	}
	if a.HTTP != nil && *a.HTTP != *b.HTTP || a.TCP != nil && *a.TCP != *b.TCP {
		return false
	}
	return slices.Equal(a.Exec, b.Exec) && a.Interval == b.Interval && a.Timeout == b.Timeout &&
		a.FailureThreshold == b.FailureThreshold && a.StartPeriod == b.StartPeriod
}

// TestHealthProbeReachesItsWorker is the table of probe kind × scheduling
// policy of the README (issue 17): a probe of an address the workers share
// is refused; a dispatched one (rr, sticky with an IPC channel) or one on
// a socket of each worker's own is accepted.
func TestHealthProbeReachesItsWorker(t *testing.T) {
	tests := []struct {
		policy, ipc, probe string
		instances          string
		ok                 bool
		why                string
	}{
		{"rr", "node", "http: {port: listen}", "4", true, ""},
		{"sticky", "node", "http: {port: 8000}", "4", true, ""},
		{"rr", "node", "tcp: true", "4", true, ""},
		{"rr", "node", "http: {port: 9999}", "4", true, ""}, // opened on demand, dispatched
		{"rr", "off", "http: {port: listen}", "4", false, "workers without an IPC channel (ipc: off) share the socket"},
		{"sticky", "off", "tcp: true", "2", false, "share the socket"},
		{"none", "node", "http: {port: listen}", "2", false, "the kernel picks under schedulingPolicy none"},
		{"none", "off", "http: {port: 8000}", "1", false, "the kernel picks under schedulingPolicy none"},
		{"reuseport", "off", "tcp: {port: 8000}", "2", false, "under schedulingPolicy reuseport"},
		{"none", "node", "http: {port: worker}", "2", true, ""},
		{"reuseport", "off", "http: {port: worker}", "2", true, ""},
		{"rr", "off", "http: {port: worker}", "2", true, ""},
		{"rr", "node", "tcp: {port: worker}", "2", false, "always connects"},
		{"none", "off", "http: {port: 9999}", "1", true, ""},
		{"none", "off", "http: {port: 9999}", "2", false, "only with instances: 1 (the app has 2"},
		{"reuseport", "off", "tcp: {port: 9999}", "auto", false, "only with instances: 1 (the app has auto"},
		{"none", "off", "exec: [/bin/true]", "2", true, ""},
		{"reuseport", "off", "exec: [/bin/true]", "2", true, ""},
		{"rr", "off", "exec: [/bin/true]", "2", true, ""},
	}
	for _, tt := range tests {
		src := "apps:\n  web:\n    exec: x\n    listen: [8000]\n    schedulingPolicy: " + tt.policy + "\n    ipc: " + tt.ipc +
			"\n    instances: " + tt.instances + "\n    healthCheck:\n      " + tt.probe + "\n"
		apps, err := manifest.Decode("m.yaml", []byte(src))
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		_, err = manifest.Validate(apps)
		if tt.ok != (err == nil) {
			t.Errorf("%s, ipc %s, %s, instances %s: error %v, want ok=%v", tt.policy, tt.ipc, tt.probe, tt.instances, err, tt.ok)
			continue
		}
		if err != nil && !strings.Contains(err.Error(), tt.why) {
			t.Errorf("%s, ipc %s, %s: error %q does not say %q", tt.policy, tt.ipc, tt.probe, err, tt.why)
		}
		if err != nil && !strings.Contains(err.Error(), "exec probe") && !strings.Contains(err.Error(), "http or exec") {
			t.Errorf("%s, ipc %s, %s: error %q points at no remedy", tt.policy, tt.ipc, tt.probe, err)
		}
	}
}

// TestResolveHealthExec: an exec probe's program is found as exec's is,
// and its arguments follow it.
func TestResolveHealthExec(t *testing.T) {
	set, err := manifest.Load([]string{"testdata/valid/health.yaml"}, testHost)
	if err != nil {
		t.Fatal(err)
	}
	got := set.Apps["batch"].Resolved.HealthExec
	want := []string{"/bin/sh", "-c", `kill -0 "$PADDOCK_WORKER_PID"`}
	if !slices.Equal(got, want) {
		t.Errorf("HealthExec = %q, want %q", got, want)
	}
	if h := set.Apps["web"].Resolved.HealthExec; h != nil {
		t.Errorf("an http probe has HealthExec %q", h)
	}
}
