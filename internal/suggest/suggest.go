// Package suggest finds the "did you mean" candidate for a misspelt name:
// config keys, drivers, pins, board models, scenario steps. One rule
// everywhere, so every error message in pinshadow suggests the same way.
package suggest

import "strings"

// Closest returns the candidate closest to s (Damerau–Levenshtein, case
// folded) when it is close enough to be a typo, else the only candidate s
// is a prefix of ("clim" for "climate"), else "".
func Closest(s string, candidates []string) string {
	return ClosestBy(s, candidates, strings.ToLower)
}

// ClosestBy is Closest comparing norm(s) with norm(candidate) (for names
// with spelling variants, e.g. "Pi 4" and "pi4b"); it returns the
// candidate as given.
func ClosestBy(s string, candidates []string, norm func(string) string) string {
	best, bestD := "", -1
	ns := norm(s)
	for _, c := range candidates {
		if c == s {
			continue
		}
		nc := norm(c)
		d := Distance(ns, nc)
		if d <= maxTypo(ns, nc) && (bestD < 0 || d < bestD) {
			best, bestD = c, d
		}
	}
	if best != "" || len([]rune(ns)) < 3 {
		return best
	}
	// A shortened name is a likely mistake too, when only one candidate
	// starts with it.
	for _, c := range candidates {
		if strings.HasPrefix(norm(c), ns) {
			if best != "" {
				return ""
			}
			best = c
		}
	}
	return best
}

// maxTypo is the largest edit distance still read as a misspelling: one
// edit for short words, two from five letters, three from twelve.
func maxTypo(a, b string) int {
	n := min(len([]rune(a)), len([]rune(b)))
	switch {
	case n >= 12:
		return 3
	case n >= 5:
		return 2
	case n >= 2:
		return 1
	}
	return 0
}

// Distance is the optimal-string-alignment Damerau–Levenshtein distance:
// insertions, deletions, substitutions and swaps of neighbours cost 1.
// Names over 64 runes are never typos of ours: they compare as far apart
// (no quadratic work on hostile input).
func Distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 64 || len(rb) > 64 {
		if a == b {
			return 0
		}
		return 1 << 20
	}
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
