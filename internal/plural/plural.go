// Package plural writes counts of things in English: "1 app", "2 apps".
package plural

import "strconv"

// Count returns n followed by noun, with an "s" added unless n is 1. It
// fits the regular nouns paddock counts (app, worker, error, line).
func Count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
