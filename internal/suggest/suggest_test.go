package suggest

import "testing"

func TestClosest(t *testing.T) {
	cmds := []string{"run", "validate", "status", "stop", "scale", "restart", "reload"}
	for _, tt := range []struct {
		word string
		max  int
		want string
	}{
		{"stauts", 2, "status"},
		{"Validate", 2, "validate"},
		{"relaod", 2, "reload"},
		{"sto", 1, "stop"},
		{"frobnicate", 2, ""},
		{"", 2, ""},
	} {
		if got := Closest(tt.word, cmds, tt.max); got != tt.want {
			t.Errorf("Closest(%q, %d) = %q, want %q", tt.word, tt.max, got, tt.want)
		}
	}
}

func TestDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"a", "", 1}, {"kitten", "sitting", 3}, {"flaw", "lawn", 2}, {"same", "same", 0},
	} {
		if got := Distance(tt.a, tt.b); got != tt.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
