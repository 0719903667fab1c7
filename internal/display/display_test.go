package display_test

import (
	"testing"
	"time"

	"github.com/paddock-sh/paddock/internal/display"
)

func TestValues(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	n := func(v int64) *int64 { return &v }
	for _, tt := range []struct {
		got, want string
	}{
		{display.CPU(nil), "-"},
		{display.CPU(f(0)), "0.0%"},
		{display.CPU(f(0.26)), "0.3%"},
		{display.CPU(f(9.94)), "9.9%"},
		{display.CPU(f(12.4)), "12%"},
		{display.CPU(f(150.2)), "150%"},
		{display.Mem(nil), "-"},
		{display.Mem(n(512)), "512B"},
		{display.Mem(n(88_080_384)), "84Mi"}, // the cases are bytesize.Format's
		{display.Age(-time.Second), "0s"},
		{display.Age(45 * time.Second), "45s"},
		{display.Age(3*time.Minute + 12*time.Second), "3m12s"},
		{display.Age(2*time.Hour + 5*time.Minute), "2h5m"},
		{display.Age(47*time.Hour + 59*time.Minute), "47h59m"},
		{display.Age(4*24*time.Hour + 3*time.Hour), "4d3h"},
		{display.Printable("ok\tthen"), "ok\tthen"},
		{display.Printable("a\x1b[2Jb\rc\x7fd\u0085e"), "a\ufffd[2Jb\ufffdc\ufffdd\ufffde"},
		{display.Printable("héllo ✓"), "héllo ✓"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}
