// Package plural writes counts of things in English: "1 app", "2 apps".
package plural

import (
	"strconv"
	"strings"
)

// Count returns n followed by noun, with an "s" added unless n is 1 ("es"
// after s, x, ch and sh). It fits the regular nouns paddock counts (app,
// worker, error, line, process).
func Count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	suffix := "s"
	for _, end := range []string{"s", "x", "ch", "sh"} {
		if strings.HasSuffix(noun, end) {
			suffix = "es"
			break
		}
	}
	return strconv.Itoa(n) + " " + noun + suffix
}
