package config

import (
	"fmt"
	"sort"
	"strings"
)

// Position is where a value was written: file, line and column (1-based;
// Col is 0 when the YAML parser did not say).
type Position struct {
	File      string
	Line, Col int
}

// String formats the position as file:line:column (file:line without a
// column).
func (p Position) String() string {
	if p.Col == 0 {
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Problem is one thing wrong with a configuration.
type Problem struct {
	Pos Position
	// Msg says what is wrong and what is allowed, ending with a "did you
	// mean" where a close match exists.
	Msg string
}

// Error formats the problem as "file:line:column: message".
func (p Problem) Error() string { return p.Pos.String() + ": " + p.Msg }

// Errors is every problem found in a configuration, sorted by file, line
// and column. Load returns it (as error) when the configuration is invalid;
// use errors.As to get the list.
type Errors []Problem

// Error lists the problems, one per line.
func (e Errors) Error() string {
	lines := make([]string, len(e))
	for i, p := range e {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// sort orders problems by file (in the order files were read), line and
// column, and drops exact duplicates.
func (e Errors) sort(fileOrder map[string]int) Errors {
	sort.SliceStable(e, func(i, j int) bool {
		a, b := e[i].Pos, e[j].Pos
		if a.File != b.File {
			oa, oka := fileOrder[a.File]
			ob, okb := fileOrder[b.File]
			if oka && okb {
				return oa < ob
			}
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	out := e[:0]
	for _, p := range e {
		if len(out) > 0 && p == out[len(out)-1] {
			continue
		}
		out = append(out, p)
	}
	return out
}

// suggest returns the candidate closest to s (Damerau–Levenshtein, case
// folded), else the only candidate s is a prefix of, or "" when none is
// close enough to be a likely typo.
func suggest(s string, candidates []string) string {
	best, bestD := "", -1
	ls := strings.ToLower(s)
	for _, c := range candidates {
		if c == s {
			continue
		}
		d := distance(ls, strings.ToLower(c))
		if d <= maxTypo(s, c) && (bestD < 0 || d < bestD) {
			best, bestD = c, d
		}
	}
	if best != "" || len([]rune(s)) < 3 {
		return best
	}
	// A shortened name ("clim" for "climate") is a likely mistake too,
	// when only one candidate starts with it.
	for _, c := range candidates {
		if strings.HasPrefix(strings.ToLower(c), ls) {
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

// distance is the optimal-string-alignment Damerau–Levenshtein distance:
// insertions, deletions, substitutions and swaps of neighbours cost 1.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 64 || len(rb) > 64 {
		// Names this long are not typos of our keys; avoid quadratic work
		// on hostile input.
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

// didYouMean returns `; did you mean "X"?` or "".
func didYouMean(s string, candidates []string) string {
	if c := suggest(s, candidates); c != "" {
		return fmt.Sprintf("; did you mean %q?", c)
	}
	return ""
}

// orList lists names for messages: "a, b or c".
func orList(names []string) string {
	switch len(names) {
	case 0:
		return "(none)"
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}
