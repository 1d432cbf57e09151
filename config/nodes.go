package config

import (
	"math"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// deref follows aliases (*anchor) to the node they stand for.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && n.Alias != nil && i < 16; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	n = deref(n)
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

func kindName(n *yaml.Node) string {
	n = deref(n)
	if n == nil {
		return "nothing"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!bool":
			return "bool " + n.Value
		case "!!int", "!!float":
			return "number " + n.Value
		}
		return "string " + strconv.Quote(n.Value)
	}
	return "YAML node"
}

// kv is one key: value pair of a mapping.
type kv struct {
	name     string
	key, val *yaml.Node
}

// pairs returns a mapping's pairs whose keys are in known, reporting
// unknown keys (with a "did you mean"), duplicate keys and a node that is
// not a mapping. what names the mapping in messages ("connection").
func (fp fileParser) pairs(n *yaml.Node, what string, known []string) []kv {
	m := deref(n)
	if isNull(m) {
		return nil
	}
	if m.Kind != yaml.MappingNode {
		fp.errf(n, "%s must be a mapping (key: value lines), not a %s", what, kindName(m))
		return nil
	}
	var out []kv
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			fp.errf(k, "%s: keys must be plain names, not a %s", what, kindName(k))
			continue
		}
		if k.Value == "<<" {
			fp.errf(k, "%s: YAML merge keys (<<) are not supported; use include: for shared parts", what)
			continue
		}
		if prev, dup := seen[k.Value]; dup {
			fp.errf(k, "%s: key %q is set twice (first at line %d); keep one", what, k.Value, prev.Line)
			continue
		}
		seen[k.Value] = k
		if known != nil && !contains(known, k.Value) {
			if s := suggest(k.Value, known); s != "" {
				fp.errf(k, "unknown key %q in %s; did you mean %q?", k.Value, what, s)
			} else {
				fp.errf(k, "unknown key %q in %s; allowed: %s", k.Value, what, strings.Join(known, ", "))
			}
			continue
		}
		out = append(out, kv{name: k.Value, key: k, val: v})
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// scalar returns the scalar node n stands for, or reports what it is.
func (fp fileParser) scalar(n *yaml.Node, what string) (*yaml.Node, bool) {
	s := deref(n)
	if s == nil || s.Kind != yaml.ScalarNode {
		fp.errf(n, "%s must be a single value, not a %s", what, kindName(s))
		return nil, false
	}
	if fp.envFailed[s] {
		return nil, false // already reported
	}
	return s, true
}

// str reads a string; numbers and bools are taken as written.
func (fp fileParser) str(n *yaml.Node, what string) (string, bool) {
	s, ok := fp.scalar(n, what)
	if !ok {
		return "", false
	}
	if s.ShortTag() == "!!null" {
		fp.errf(n, "%s is empty; give a value", what)
		return "", false
	}
	return s.Value, true
}

func (fp fileParser) boolean(n *yaml.Node, what string) (bool, bool) {
	s, ok := fp.scalar(n, what)
	if !ok {
		return false, false
	}
	if s.ShortTag() != "!!bool" {
		fp.errf(n, "%s must be true or false, not %s", what, kindName(s))
		return false, false
	}
	v, err := strconv.ParseBool(strings.ToLower(s.Value))
	if err != nil {
		fp.errf(n, "%s must be true or false, not %s", what, kindName(s))
		return false, false
	}
	return v, true
}

// number reads a finite number.
func (fp fileParser) number(n *yaml.Node, what string) (float64, bool) {
	s, ok := fp.scalar(n, what)
	if !ok {
		return 0, false
	}
	if t := s.ShortTag(); t != "!!int" && t != "!!float" {
		fp.errf(n, "%s must be a number, not %s", what, kindName(s))
		return 0, false
	}
	var f float64
	if err := s.Decode(&f); err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		fp.errf(n, "%s must be a finite number, not %s", what, s.Value)
		return 0, false
	}
	return f, true
}

// integer reads a whole number within [lo, hi].
func (fp fileParser) integer(n *yaml.Node, what string, lo, hi int) (int, bool) {
	s, ok := fp.scalar(n, what)
	if !ok {
		return 0, false
	}
	var v int64
	if s.ShortTag() != "!!int" || s.Decode(&v) != nil {
		fp.errf(n, "%s must be a whole number from %d to %d, not %s", what, lo, hi, kindName(s))
		return 0, false
	}
	if v < int64(lo) || v > int64(hi) {
		fp.errf(n, "%s %d is out of range; allowed: %d to %d", what, v, lo, hi)
		return 0, false
	}
	return int(v), true
}

// duration reads a duration with a unit ("30s", "5m", "1h30m", "250ms").
func (fp fileParser) duration(n *yaml.Node, what string) (time.Duration, bool) {
	s, ok := fp.scalar(n, what)
	if !ok {
		return 0, false
	}
	d, msg := parseDuration(s)
	if msg != "" {
		fp.errf(n, "%s: %s", what, msg)
		return 0, false
	}
	return d, true
}

// parseDuration reads a scalar as a positive-or-zero duration with units;
// msg says what is wrong otherwise.
func parseDuration(s *yaml.Node) (time.Duration, string) {
	switch s.ShortTag() {
	case "!!int", "!!float":
		return 0, "a bare number " + s.Value + " has no unit; add one: " + s.Value + "s, " + s.Value + "m or " + s.Value + "ms (units: ms, s, m, h)"
	case "!!null":
		return 0, "is empty; give a duration such as 30s or 5m"
	}
	d, err := time.ParseDuration(strings.TrimSpace(s.Value))
	if err != nil {
		return 0, strconv.Quote(s.Value) + " is not a duration; write a number with a unit, such as 500ms, 30s, 5m or 1h30m"
	}
	if d < 0 {
		return 0, strconv.Quote(s.Value) + " is negative; durations must be 0 or more"
	}
	return d, ""
}

// choice reads one of a fixed set of words.
func (fp fileParser) choice(n *yaml.Node, what string, allowed []string) (string, bool) {
	s, ok := fp.str(n, what)
	if !ok {
		return "", false
	}
	if !contains(allowed, s) {
		fp.errf(n, "%s %q is not allowed; allowed: %s%s", what, s, orList(allowed), didYouMean(s, allowed))
		return "", false
	}
	return s, true
}
