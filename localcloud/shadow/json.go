package shadow

import (
	"bytes"
	"encoding/json"
	"sort"

	"github.com/pinshadow/pinshadow/shadowdoc"
)

// Values are held as decoded by encoding/json with UseNumber:
// map[string]any, []any, json.Number, string, bool and nil. Numbers stay
// json.Number so they are echoed exactly as sent (1.0 stays 1.0).

// decodeJSON parses exactly one JSON value, keeping numbers exact.
func decodeJSON(b []byte) (any, error) { return shadowdoc.Decode(b) }

// marshal encodes v as compact JSON without HTML escaping (AWS does not
// escape <, > and &, and the size limit is measured on the real bytes).
func marshal(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only values this package built are marshalled; they always encode.
		panic("shadow: marshal: " + err.Error())
	}
	b := buf.Bytes()
	return b[:len(b)-1] // Encode appends a newline
}

// equal compares JSON values by the shared document rules.
func equal(a, b any) bool { return shadowdoc.Equal(a, b) }

// clone deep-copies a JSON value.
func clone(v any) any { return shadowdoc.Clone(v) }

// depth counts nesting levels: a non-empty object or array is one level
// more than its deepest member; scalars and empty containers add none. The
// desired (or reported) object itself is level 1, so its keys sit at level 1
// and desired.1.2.3.4.5.6 = value has depth 6.
func depth(v any) int {
	d := 0
	switch x := v.(type) {
	case map[string]any:
		for _, e := range x {
			d = max(d, depth(e))
		}
		if len(x) > 0 {
			d++
		}
	case []any:
		for _, e := range x {
			d = max(d, depth(e))
		}
		if len(x) > 0 {
			d++
		}
	}
	return d
}

// nullInArray reports whether any array inside v holds a null, however
// deeply nested.
func nullInArray(v any, inArray bool) bool {
	switch x := v.(type) {
	case nil:
		return inArray
	case map[string]any:
		for _, e := range x {
			if nullInArray(e, inArray) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if nullInArray(e, true) {
				return true
			}
		}
	}
	return false
}

// sortedKeys returns m's keys in order, for deterministic processing.
func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
