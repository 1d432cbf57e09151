package config

import (
	"fmt"
	suggest_ "github.com/pinshadow/pinshadow/internal/suggest"
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

// suggest returns the likely intended candidate for a misspelt s, or "".
func suggest(s string, candidates []string) string { return suggest_.Closest(s, candidates) }

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
