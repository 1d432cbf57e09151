// Package shadowdoc holds the value rules of AWS IoT shadow documents that
// both sides share: the local cloud's engine (localcloud/shadow) and the
// device's shadow client (shadowsync) decode, compare, copy and diff
// desired and reported state with exactly these functions, so the device
// computes a delta the way the service does.
//
// Values are what encoding/json produces with UseNumber: map[string]any,
// []any, json.Number, string, bool and nil. Numbers stay json.Number so they
// are echoed exactly as sent (1.0 stays 1.0) and compare by value.
package shadowdoc

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"math/big"
)

// ErrTrailing reports data after the one JSON value of a document.
var ErrTrailing = errors.New("trailing data after JSON value")

// Decode parses exactly one JSON value, keeping numbers exact.
func Decode(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, ErrTrailing
	}
	return v, nil
}

// Equal compares two JSON values as AWS compares desired and reported:
// objects by keys, arrays whole and in order, numbers by value (1 == 1.0 ==
// 1e0, exactly, however large). Values may also hold Go numbers (float64,
// int, …: what the device computed or read from its state file); those
// compare with any number at float64 precision.
func Equal(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, ok := y[k]
			if !ok || !Equal(xv, yv) {
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
			if !Equal(x[i], y[i]) {
				return false
			}
		}
		return true
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return floatEqual(a, b)
		}
		if x == y {
			return true
		}
		rx, okx := new(big.Rat).SetString(string(x))
		ry, oky := new(big.Rat).SetString(string(y))
		return okx && oky && rx.Cmp(ry) == 0
	case float64, float32, int, int64, int32, uint64:
		return floatEqual(a, b)
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

// floatEqual compares two numbers of which at least one is a Go number
// (a value the device computed or read back from a Go-encoded file), at
// float64 precision: 20.8 computed equals "20.8" received. Two json.Numbers
// never come here; they compare exactly.
func floatEqual(a, b any) bool {
	fa, oka := Number(a)
	fb, okb := Number(b)
	return oka && okb && fa == fb
}

// Number returns a JSON number's value: json.Number (finite), float64,
// float32 or a Go integer type (documents built by hand).
func Number(v any) (float64, bool) {
	switch x := v.(type) {
	case json.Number:
		f, err := x.Float64()
		return f, err == nil && !math.IsInf(f, 0) && !math.IsNaN(f)
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case int32:
		return float64(x), true
	case uint64:
		return float64(x), true
	}
	return 0, false
}

// Clone deep-copies a JSON value.
func Clone(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = Clone(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = Clone(e)
		}
		return s
	}
	return v
}

// Delta computes what differs between desired and reported, as AWS does:
// keys only in reported are ignored, objects recurse keeping the path from
// the root, everything else (scalars, arrays, type changes) compares whole
// with Equal. With no reported section the delta is all of desired. The
// result is empty or nil when in sync; it shares subtrees with desired, so
// callers that keep it must not modify either (or Clone it).
func Delta(desired, reported map[string]any) map[string]any {
	if desired == nil {
		return nil
	}
	if reported == nil {
		return desired
	}
	out := map[string]any{}
	for k, dv := range desired {
		rv, ok := reported[k]
		if !ok {
			out[k] = dv
			continue
		}
		dm, dIsObj := dv.(map[string]any)
		rm, rIsObj := rv.(map[string]any)
		if dIsObj && rIsObj {
			if sub := Delta(dm, rm); len(sub) > 0 {
				out[k] = sub
			}
			continue
		}
		if !Equal(dv, rv) {
			out[k] = dv
		}
	}
	return out
}
