package manifest_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/paddock-sh/paddock/manifest"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1", 1, true},
		{"1048576", 1 << 20, true},
		{"0", 0, true},
		{"1Ki", 1 << 10, true},
		{"512Mi", 512 << 20, true},
		{"2Gi", 2 << 30, true},
		{"007Mi", 7 << 20, true},
		{"8589934591Gi", 8589934591 << 30, true},
		{"8589934592Gi", 0, false}, // 2^63: beyond int64
		{"9223372036854775807", math.MaxInt64, true},
		{"9223372036854775808", 0, false},
		{"", 0, false},
		{"Mi", 0, false},
		{"-1Mi", 0, false},
		{"+1Mi", 0, false},
		{"1.5Gi", 0, false},
		{"512M", 0, false},
		{"512MB", 0, false},
		{"512mi", 0, false},
		{"512 Mi", 0, false},
		{"1Ti", 0, false},
		{"1KiMi", 0, false},
	}
	for _, tt := range tests {
		got, ok := manifest.ParseSize(tt.in)
		if ok != tt.ok || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
	for _, n := range []int64{1, 1023, 1 << 10, 3 << 20, 512 << 20, 1 << 30, 3<<30 + 1, math.MaxInt64} {
		s := manifest.FormatSize(n)
		if back, ok := manifest.ParseSize(s); !ok || back != n {
			t.Errorf("FormatSize(%d) = %q, which parses as %d, %v", n, s, back, ok)
		}
	}
	if s := manifest.FormatSize(512 << 20); s != "512Mi" {
		t.Errorf("FormatSize(512Mi) = %q", s)
	}
}

// TestDecodeMaxMemory: maxMemory takes bytes or Ki/Mi/Gi, more than 0, and
// says how to write it otherwise, at the value's position.
func TestDecodeMaxMemory(t *testing.T) {
	for _, tt := range []struct {
		value string
		want  int64
		err   string
	}{
		{"512Mi", 512 << 20, ""},
		{"1Gi", 1 << 30, ""},
		{"4096", 4096, ""},
		{"0x1000", 4096, ""},
		{`"2048"`, 2048, ""},
		{"0", 0, "m.yaml:4:16: apps.web.maxMemory: must be more than 0, got 0 (leave it out for no limit)"},
		{"0Mi", 0, "must be more than 0, got 0Mi"},
		{"-5", 0, "must be more than 0, got -5"},
		{"512M", 0, `must be a size in bytes, or with a unit Ki, Mi or Gi such as 512Mi, got "512M" (did you mean 512Mi?)`},
		{"512mb", 0, `got "512mb" (did you mean 512Mi?)`},
		{"1kb", 0, `(did you mean 1Ki?)`},
		{"1.5Gi", 0, `got "1.5Gi"`},
		{"1.5", 0, "got 1.5"},
		{"lots", 0, `got "lots"`},
		{"[1]", 0, "got a list"},
		{"true", 0, "got true"},
		{"99999999999999999999", 0, "got 99999999999999999999"},
		{"18446744073709551615", 0, "got 18446744073709551615: too large"},
	} {
		apps, err := manifest.Decode("m.yaml", []byte("apps:\n  web:\n    exec: x\n    maxMemory: "+tt.value+"\n"))
		if tt.err == "" {
			if err != nil || len(apps) != 1 || apps[0].MaxMemory != tt.want {
				t.Errorf("maxMemory: %s: %v, %v; want %d", tt.value, err, apps, tt.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), "apps.web.maxMemory") {
			t.Errorf("maxMemory: %s: error %v, want one with %q", tt.value, err, tt.err)
		}
		if len(apps) == 1 && apps[0].MaxMemory != 0 {
			t.Errorf("maxMemory: %s: kept %d", tt.value, apps[0].MaxMemory)
		}
	}
}

// TestValidateWatchdog: a watchdog needs readiness notify (the error points
// at readiness, or at watchdog when readiness is left out) and is at least
// MinWatchdog; 0s is none.
func TestValidateWatchdog(t *testing.T) {
	for _, tt := range []struct {
		fields string
		want   time.Duration
		errs   []string
	}{
		{"    readiness: notify\n    watchdog: 10s\n", 10 * time.Second, nil},
		{"    readiness: notify\n    watchdog: 100ms\n", 100 * time.Millisecond, nil},
		{"    watchdog: 0s\n", 0, nil},
		{"    readiness: notify\n    watchdog: 99ms\n", 0, []string{"m.yaml:5:15: apps.web.watchdog: must be at least 100ms (or 0s for none), got 99ms"}},
		{"    readiness: online\n    watchdog: 10s\n", 0, []string{"m.yaml:4:16: apps.web.readiness: must be notify for watchdog (the worker sends WATCHDOG=1 to $NOTIFY_SOCKET), got online"}},
		{"    watchdog: 10s\n", 0, []string{"m.yaml:4:15: apps.web.readiness: must be notify for watchdog"}},
		{"    watchdog: 10\n", 0, []string{"m.yaml:4:15: apps.web.watchdog: must be a duration"}},
	} {
		src := "apps:\n  web:\n    exec: x\n" + tt.fields
		apps, err := manifest.Decode("m.yaml", []byte(src))
		if err == nil {
			var set *manifest.Set
			set, err = manifest.Validate(apps)
			if err == nil && set.Apps["web"].Watchdog != tt.want {
				t.Errorf("%s: Watchdog = %s, want %s", src, set.Apps["web"].Watchdog, tt.want)
			}
		}
		var got []string
		for _, e := range manifest.Errors(err) {
			got = append(got, e.Error())
		}
		if len(got) != len(tt.errs) {
			t.Errorf("%s: errors %q, want %q", src, got, tt.errs)
			continue
		}
		for i := range got {
			if !strings.HasPrefix(got[i], tt.errs[i]) {
				t.Errorf("%s: error %q, want %q", src, got[i], tt.errs[i])
			}
		}
	}
}
