package manifest

import "testing"

func TestPosCompare(t *testing.T) {
	for _, tc := range []struct {
		p, q Pos
		want int
	}{
		{Pos{"a.yaml", 3, 1}, Pos{"b.yaml", 1, 1}, -1},
		{Pos{"b.yaml", 1, 1}, Pos{"a.yaml", 3, 1}, 1},
		{Pos{"a.yaml", 2, 9}, Pos{"a.yaml", 3, 1}, -1},
		{Pos{"a.yaml", 3, 2}, Pos{"a.yaml", 3, 1}, 1},
		{Pos{"a.yaml", 3, 1}, Pos{"a.yaml", 3, 1}, 0},
	} {
		if got := tc.p.Compare(tc.q); got != tc.want {
			t.Errorf("%s.Compare(%s) = %d, want %d", tc.p, tc.q, got, tc.want)
		}
	}
}
