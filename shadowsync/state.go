package shadowsync

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/pinshadow/pinshadow/shadowdoc"
)

// Shadow state values are what encoding/json produces with UseNumber:
// map[string]any, []any, json.Number, string, bool and nil. Numbers stay
// json.Number so values are echoed exactly as the cloud sent them.

// decodeJSON parses exactly one JSON value, keeping numbers exact.
func decodeJSON(b []byte) (any, error) { return shadowdoc.Decode(b) }

// normalize converts any JSON-marshalable value into the decoded form
// (map[string]any, json.Number, …) so that merging and comparison see one
// representation whatever the caller passed (int, float64, structs).
func normalize(v any) (any, error) {
	switch v.(type) {
	case nil, string, bool, json.Number:
		return v, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return decodeJSON(b)
}

// normalizeObject is normalize for a state section.
func normalizeObject(m map[string]any) (map[string]any, error) {
	if m == nil {
		return nil, nil
	}
	v, err := normalize(m)
	if err != nil {
		return nil, err
	}
	out, _ := v.(map[string]any)
	return out, nil
}

// clone deep-copies a JSON value.
func clone(v any) any { return shadowdoc.Clone(v) }

// cloneMap deep-copies an object; nil stays nil.
func cloneMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	return shadowdoc.Clone(m).(map[string]any)
}

// equal compares JSON values as AWS compares desired and reported.
func equal(a, b any) bool { return shadowdoc.Equal(a, b) }

// applyPatch applies an update section (patch) to a stored section (doc,
// may be nil) the way AWS does: objects merge recursively, scalars, arrays
// and type changes replace, null deletes a key at any depth, an empty
// object merges nothing into an existing object. Neither input is
// modified; the result is nil when no key is left.
func applyPatch(doc, patch map[string]any) map[string]any {
	out := cloneMap(doc)
	if out == nil {
		out = map[string]any{}
	}
	for k, pv := range patch {
		switch p := pv.(type) {
		case nil:
			delete(out, k)
		case map[string]any:
			if cur, ok := out[k].(map[string]any); ok {
				merged := applyPatch(cur, p)
				switch {
				case merged != nil:
					out[k] = merged
				case len(cur) > 0:
					// Emptied by deletions: the object disappears, like a
					// section whose last key is deleted.
					delete(out, k)
				default:
					out[k] = map[string]any{} // {} merged into {} stays {}
				}
			} else {
				out[k] = stripNulls(p)
			}
		default:
			out[k] = clone(pv)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// stripNulls copies a new object value: nulls inside it delete nothing
// (there is nothing below them yet) and are not stored.
func stripNulls(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		switch t := v.(type) {
		case nil:
		case map[string]any:
			out[k] = stripNulls(t)
		default:
			out[k] = clone(v)
		}
	}
	return out
}

// composePatches returns one patch with the same effect as applying a and
// then b to any stored section, and ok=false when no single patch can
// express that:
//   - b merges an object into a key that a set to a non-object (a scalar,
//     an array or null): in sequence the object replaces that value, sent
//     alone it would merge into whatever the cloud holds;
//   - b deletes, below the top level, a key a had set: in sequence an object
//     emptied that way disappears, sent alone the deletion may leave an
//     empty object behind.
//
// Neither input is modified.
func composePatches(a, b map[string]any) (map[string]any, bool) {
	return composeAt(a, b, 0)
}

func composeAt(a, b map[string]any, depth int) (map[string]any, bool) {
	out := cloneMap(a)
	if out == nil {
		out = map[string]any{}
	}
	for k, bv := range b {
		av, had := out[k]
		if bv == nil && had && av != nil && depth > 0 {
			return nil, false
		}
		bm, bIsObj := bv.(map[string]any)
		if !bIsObj || !had {
			out[k] = clone(bv)
			continue
		}
		am, aIsObj := av.(map[string]any)
		if !aIsObj {
			return nil, false
		}
		sub, ok := composeAt(am, bm, depth+1)
		if !ok {
			return nil, false
		}
		out[k] = sub
	}
	return out, true
}

// deltaOf computes what AWS puts in state.delta (the same function the
// local cloud's engine uses), as a copy the mirror may keep; nil when
// everything is in sync.
func deltaOf(desired, reported map[string]any) map[string]any {
	d := shadowdoc.Delta(desired, reported)
	if len(d) == 0 {
		return nil
	}
	return cloneMap(d)
}

// setPath sets a dotted key ("a.b.c") in m, creating objects on the way;
// an existing non-object on the way is replaced by an object.
func setPath(m map[string]any, path []string, v any) {
	for _, p := range path[:len(path)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	m[path[len(path)-1]] = v
}

// sortedKeys returns m's keys in order.
func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// asObject returns v as a state section, with an error naming what when
// it is neither an object nor null.
func asObject(what string, v any) (map[string]any, error) {
	switch t := v.(type) {
	case nil:
		return nil, nil
	case map[string]any:
		return t, nil
	}
	return nil, fmt.Errorf("%s is %T, want a JSON object", what, v)
}
