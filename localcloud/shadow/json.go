package shadow

import (
	"bytes"
	"encoding/json"
	"math/big"
	"sort"
)

// Values are held as decoded by encoding/json with UseNumber:
// map[string]any, []any, json.Number, string, bool and nil. Numbers stay
// json.Number so they are echoed exactly as sent (1.0 stays 1.0).

// decodeJSON parses exactly one JSON value.
func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errTrailing
	}
	// Decode stops after the first value; anything but whitespace after it
	// is an error.
	if _, err := dec.Token(); err == nil {
		return nil, errTrailing
	}
	return v, nil
}

type jsonError string

func (e jsonError) Error() string { return string(e) }

const errTrailing = jsonError("trailing data after JSON value")

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

// equal compares two JSON values; numbers compare by value (1 == 1.0).
func equal(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, ok := y[k]
			if !ok || !equal(xv, yv) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equal(x[i], y[i]) {
				return false
			}
		}
		return true
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		if x == y {
			return true
		}
		rx, okx := new(big.Rat).SetString(string(x))
		ry, oky := new(big.Rat).SetString(string(y))
		return okx && oky && rx.Cmp(ry) == 0
	case string:
		y, ok := b.(string)
		return ok && x == y
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case nil:
		return b == nil
	}
	return false
}

// clone deep-copies a JSON value.
func clone(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = clone(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = clone(e)
		}
		return s
	}
	return v
}

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
