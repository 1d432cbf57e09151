package shadow

import (
	"encoding/json"

	"github.com/pinshadow/pinshadow/shadowdoc"
)

// Metadata trees parallel the state trees. Internally a leaf's metadata is
// its timestamp (int64), an array's is one timestamp per element ([]int64)
// and an object's is a map[string]any of its members' metadata. Walking the
// metadata next to the state it describes keeps a user key named
// "timestamp" from being confused with a metadata leaf.

// metaOf builds the metadata for a value written at time ts.
func metaOf(v any, ts int64) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = metaOf(e, ts)
		}
		return m
	case []any:
		s := make([]int64, len(x))
		for i := range s {
			s[i] = ts
		}
		return s
	}
	return ts
}

// renderMeta turns internal metadata into AWS's wire form:
// {"timestamp":T} per leaf and per array element.
func renderMeta(m any) any {
	switch x := m.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = renderMeta(e)
		}
		return out
	case []int64:
		out := make([]any, len(x))
		for i, ts := range x {
			out[i] = map[string]any{"timestamp": ts}
		}
		return out
	case int64:
		return map[string]any{"timestamp": x}
	}
	return map[string]any{}
}

// requestMeta is update/accepted's metadata: the request's state structure
// with every leaf — null included — replaced by {"timestamp":T}.
func requestMeta(v any, ts int64) any {
	return renderMeta(metaOf(v, ts))
}

// merge applies an update section (patch) onto a stored section (doc, may
// be nil) and its metadata, returning the new section and metadata; nil
// means the section is gone. Neither input is modified.
func merge(doc, meta map[string]any, patch map[string]any, ts int64) (map[string]any, map[string]any) {
	out := make(map[string]any, len(doc)+len(patch))
	outMeta := make(map[string]any, len(doc)+len(patch))
	for k, v := range doc {
		out[k] = v // values are never mutated in place, so sharing is safe
	}
	for k, v := range meta {
		outMeta[k] = v
	}
	for _, k := range sortedKeys(patch) {
		pv := patch[k]
		switch pv := pv.(type) {
		case nil:
			delete(out, k)
			delete(outMeta, k)
		case map[string]any:
			if cur, ok := out[k].(map[string]any); ok {
				curMeta, _ := outMeta[k].(map[string]any)
				merged, mergedMeta := merge(cur, curMeta, pv, ts)
				if len(merged) == 0 && len(cur) > 0 {
					// Emptied by deletions: the object disappears, like a
					// section whose last key is deleted.
					delete(out, k)
					delete(outMeta, k)
					continue
				}
				out[k], outMeta[k] = merged, mergedMeta
				continue
			}
			// New key or a scalar/array replaced by an object: nulls inside
			// delete nothing and are not stored.
			obj, objMeta := merge(nil, nil, pv, ts)
			out[k], outMeta[k] = obj, objMeta
		default:
			out[k] = clone(pv)
			outMeta[k] = metaOf(pv, ts)
		}
	}
	if len(out) == 0 {
		return map[string]any{}, map[string]any{}
	}
	return out, outMeta
}

// delta is AWS's delta between desired and reported (shared with the
// device side).
func delta(desired, reported map[string]any) map[string]any {
	return shadowdoc.Delta(desired, reported)
}

// deltaMeta picks, for every leaf of a delta, the desired metadata at the
// same path (the time that desired value was set).
func deltaMeta(d map[string]any, desiredMeta map[string]any) map[string]any {
	out := make(map[string]any, len(d))
	for k, v := range d {
		m := desiredMeta[k]
		if sub, ok := v.(map[string]any); ok {
			subMeta, _ := m.(map[string]any)
			out[k] = deltaMeta(sub, subMeta)
			continue
		}
		out[k] = renderMeta(m)
	}
	return out
}

// sizeOf is the document size AWS limits: compact desired plus reported.
func sizeOf(desired, reported map[string]any) int {
	n := 0
	if desired != nil {
		n += len(marshal(desired))
	}
	if reported != nil {
		n += len(marshal(reported))
	}
	return n
}

// storedMeta is the on-disk form of internal metadata: a number per leaf,
// an array of numbers per array, an object per object.
func storedMeta(m any) any { return m }

// loadMeta converts decoded on-disk metadata back to the internal form.
func loadMeta(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = loadMeta(e)
		}
		return m
	case []any:
		s := make([]int64, len(x))
		for i, e := range x {
			s[i] = numInt(e)
		}
		return s
	}
	return numInt(v)
}

func numInt(v any) int64 {
	switch n := v.(type) {
	case json.Number:
		i, _ := n.Int64()
		return i
	case float64:
		return int64(n)
	}
	return 0
}
