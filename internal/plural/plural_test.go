package plural

import "testing"

func TestCount(t *testing.T) {
	for _, tt := range []struct {
		n    int
		want string
	}{{0, "0 apps"}, {1, "1 app"}, {2, "2 apps"}, {-1, "-1 apps"}} {
		if got := Count(tt.n, "app"); got != tt.want {
			t.Errorf("Count(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestCountAfterSibilants(t *testing.T) {
	for _, tt := range []struct {
		n          int
		noun, want string
	}{{1, "process", "1 process"}, {2, "process", "2 processes"}, {3, "match", "3 matches"}, {2, "line", "2 lines"}} {
		if got := Count(tt.n, tt.noun); got != tt.want {
			t.Errorf("Count(%d, %q) = %q, want %q", tt.n, tt.noun, got, tt.want)
		}
	}
}
