// Package display writes status values for people, the same way in every
// view paddock has (the status table, paddock top): CPU shares, sizes and
// ages, short as top and ps write them, and text from workers made safe for
// a terminal.
package display

import (
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/paddock-sh/paddock/internal/bytesize"
)

// CPU writes a CPU percentage in at most four characters, as top does:
// 0.3%, 12%, 150%; "-" when there is none.
func CPU(p *float64) string {
	switch {
	case p == nil:
		return "-"
	case *p < 10:
		return fmt.Sprintf("%.1f%%", *p)
	}
	return fmt.Sprintf("%.0f%%", *p)
}

// Mem writes a size in bytes as bytesize.Format does (8.4Mi, 84Mi); "-"
// when there is none.
func Mem(n *int64) string {
	if n == nil {
		return "-"
	}
	return bytesize.Format(*n)
}

// Age writes a duration the way ps and kubectl do: 45s, 3m12s, 2h5m, 4d3h;
// a negative one as 0s.
func Age(d time.Duration) string {
	d = max(d, 0)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

// Printable returns s with every control character but the tab (C0, DEL,
// C1: what would move a terminal's cursor or change its colours) replaced
// by U+FFFD, so that a worker's output printed in a view cannot rewrite it.
func Printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r != '\t' && unicode.IsControl(r) {
			return unicode.ReplacementChar
		}
		return r
	}, s)
}
