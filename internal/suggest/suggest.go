// Package suggest finds, for a misspelt word, the closest of the words it
// could have meant: "did you mean" for manifest fields and CLI commands.
package suggest

import "strings"

// Closest returns the candidate closest to word by edit distance (case
// ignored), if it is within maxDist edits; ties go to the candidate first
// in lexical order. It returns "" when none is close enough.
func Closest(word string, candidates []string, maxDist int) string {
	best, bestDist := "", maxDist+1
	w := strings.ToLower(word)
	for _, c := range candidates {
		if d := Distance(w, strings.ToLower(c)); d < bestDist || (d == bestDist && c < best) {
			best, bestDist = c, d
		}
	}
	return best
}

// Distance is the Levenshtein distance between a and b, in bytes.
func Distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
