// Package bytesize writes a size in bytes for a person to read, the one way
// paddock shows sizes everywhere (status, events, logs): binary units
// written as manifests write them (Ki, Mi, Gi, Ti), in at most four figures.
package bytesize

import (
	"math/bits"
	"strconv"
)

// units are the binary units Format uses, each 1024 times the one before.
var units = [...]string{"Ki", "Mi", "Gi", "Ti", "Pi", "Ei"}

// Format writes n bytes in the largest binary unit that keeps a figure of
// at least 1: "512B", "1.5Ki", "8.4Mi", "84Mi", "1.2Gi". A whole number of
// its unit is written without a fraction ("512Mi", "1Gi"), as a manifest
// writes it, so a limit shows as it was written; otherwise the figure has
// one decimal below 10 and none above. A negative n is written in bytes.
func Format(n int64) string {
	if n < 1024 {
		return strconv.FormatInt(n, 10) + "B"
	}
	// u: the index of the largest unit that n reaches (1024^(u+1) <= n).
	u := (63-bits.LeadingZeros64(uint64(n)))/10 - 1
	div := int64(1) << (10 * (u + 1))
	if n%div == 0 {
		return strconv.FormatInt(n/div, 10) + units[u]
	}
	v := float64(n) / float64(div)
	prec := 0
	if v < 9.95 {
		prec = 1
	}
	s := strconv.FormatFloat(v, 'f', prec, 64)
	if s == "1024" && u+1 < len(units) {
		// 1023.6Mi rounds up to the next unit's 1.0.
		return "1.0" + units[u+1]
	}
	return s + units[u]
}
