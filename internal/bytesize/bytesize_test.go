package bytesize

import (
	"math"
	"testing"
)

func TestFormat(t *testing.T) {
	for _, tt := range []struct {
		n    int64
		want string
	}{
		{-5, "-5B"},
		{0, "0B"},
		{512, "512B"},
		{1023, "1023B"},
		{1024, "1Ki"},
		{1536, "1.5Ki"},
		{10_188, "9.9Ki"},
		{10_189, "10Ki"}, // 9.95Ki and more round to 10, not "10.0"
		{8_800_000, "8.4Mi"},
		{88_080_384, "84Mi"},
		{88_080_385, "84Mi"},
		{512 << 20, "512Mi"},
		{1<<20 - 1, "1.0Mi"}, // 1023.999Ki rounds up to the next unit
		{1288490188, "1.2Gi"},
		{1 << 30, "1Gi"},
		{3 << 40, "3Ti"},
		{3<<40 + 1<<39, "3.5Ti"},
		{math.MaxInt64, "8.0Ei"},
	} {
		if got := Format(tt.n); got != tt.want {
			t.Errorf("Format(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}
