package manifest

import (
	"math"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// sizeUnits are the units a size may be written with, binary multiples
// of a byte.
var sizeUnits = []struct {
	suffix string
	bytes  int64
}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}}

// sizeHelp says how a size is written, for errors.
const sizeHelp = "a size in bytes, or with a unit Ki, Mi or Gi such as 512Mi"

// ParseSize parses a size written as manifests write it: a number of
// bytes, or a number with a unit Ki, Mi or Gi ("512Mi"). It returns false
// for anything else, a size above what an int64 holds included; 0 is
// parsed (the callers refuse it).
func ParseSize(s string) (int64, bool) {
	n, ok, _ := parseSize(s)
	return n, ok
}

// parseSize is ParseSize, also saying whether s is well formed but too
// large.
func parseSize(s string) (n int64, ok, tooLarge bool) {
	mult := int64(1)
	for _, u := range sizeUnits {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = num, u.bytes
			break
		}
	}
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false, false // digits only: no sign, no fraction, no space
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, false, true
	}
	return n * mult, true, false
}

// FormatSize writes n bytes in the largest unit of ParseSize that divides
// it ("512Mi"), else in bytes.
func FormatSize(n int64) string {
	for i := len(sizeUnits) - 1; i >= 0; i-- {
		if u := sizeUnits[i]; n != 0 && n%u.bytes == 0 {
			return strconv.FormatInt(n/u.bytes, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// size accepts a size above 0: an integer number of bytes, or a string
// that ParseSize takes.
func (f *fieldDecoder) size(n *yaml.Node) (int64, bool) {
	var v int64
	switch {
	case n.Kind == yaml.ScalarNode && n.Tag == "!!int":
		if n.Decode(&v) != nil {
			f.errorf(n, "must be %s, got %s: too large", sizeHelp, kindName(n))
			return 0, false
		}
	case n.Kind == yaml.ScalarNode && n.Tag == "!!str":
		var ok, tooLarge bool
		if v, ok, tooLarge = parseSize(n.Value); tooLarge {
			f.errorf(n, "must be %s, got %q: too large", sizeHelp, n.Value)
			return 0, false
		} else if !ok {
			f.errorf(n, "must be %s, got %q%s", sizeHelp, n.Value, sizeHint(n.Value))
			return 0, false
		}
	default:
		f.errorf(n, "must be %s, got %s", sizeHelp, kindName(n))
		return 0, false
	}
	if v <= 0 {
		f.errorf(n, "must be more than 0, got %s (leave it out for no limit)", n.Value)
		return 0, false
	}
	return v, true
}

// sizeHint suggests the binary unit for a size written with a decimal
// or a lower-case one ("512M", "512MB", "512mi").
func sizeHint(s string) string {
	num := strings.TrimRight(s, "KMGkmgBbIi")
	unit := strings.ToUpper(strings.TrimPrefix(s, num))
	if num == "" || strings.TrimLeft(num, "0123456789") != "" || unit == "" {
		return ""
	}
	switch unit[0] {
	case 'K', 'M', 'G':
		return " (did you mean " + num + unit[:1] + "i?)"
	}
	return ""
}
