package reconcile

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/pinshadow/pinshadow/devices"
	"github.com/pinshadow/pinshadow/filter"
	"github.com/pinshadow/pinshadow/shadowdoc"
)

// JSON values handled here are what encoding/json decodes into any, with or
// without UseNumber: map[string]any, []any, string, bool, nil, and numbers
// as float64 or json.Number. Values this package produces use float64,
// int64, bool, string and map[string]any.

// answer is the form in which a desired value is remembered (KeyState.
// Answers): JSON-encodable and stable through a JSON round trip. A number
// too large for float64 (1e400) is kept as its text.
func answer(v any) any {
	switch x := v.(type) {
	case json.Number:
		if f, ok := shadowdoc.Number(x); ok {
			return f
		}
		return "number " + string(x)
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = answer(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = answer(e)
		}
		return out
	}
	return v
}

// lookup returns the value at a dotted path in a decoded document; a JSON
// null counts as absent (AWS deletes keys set to null).
func lookup(doc map[string]any, path string) (any, bool) {
	var cur any = doc
	for _, part := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		cur, ok = m[part]
		if !ok {
			return nil, false
		}
	}
	return cur, cur != nil
}

// setPath sets v at a dotted path in doc, creating nested objects.
func setPath(doc map[string]any, path string, v any) {
	parts := strings.Split(path, ".")
	m := doc
	for _, part := range parts[:len(parts)-1] {
		next, ok := m[part].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[part] = next
		}
		m = next
	}
	m[parts[len(parts)-1]] = v
}

// describe names a JSON value's type for messages.
func describe(v any) string {
	if _, ok := shadowdoc.Number(v); ok {
		return "a number"
	}
	switch v.(type) {
	case string:
		return "a string"
	case bool:
		return "a bool"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case nil:
		return "null"
	}
	return fmt.Sprintf("a %T", v)
}

// show renders a JSON value for a message.
func show(v any) string {
	if f, ok := shadowdoc.Number(v); ok {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	s := string(b)
	if len(s) > 64 {
		s = s[:61] + "..."
	}
	return s
}

// parse checks a desired JSON value against the key's shadow-side contract
// and returns it as a Value. There is no coercion: a bool key takes JSON
// true/false only (not "true", not 1), a number key a JSON number only
// (not "21"), an enum key one of its choices as a string.
func parse(k *DesiredKey, raw any) (devices.Value, error) {
	name := k.Key.Path
	switch k.Type {
	case devices.TypeBool:
		b, ok := raw.(bool)
		if !ok {
			return devices.Value{}, fmt.Errorf("%s: %s is %s; this key takes true or false (JSON booleans, without quotes)", name, show(raw), describe(raw))
		}
		return devices.Bool(b), nil
	case devices.TypeNumber:
		f, ok := shadowdoc.Number(raw)
		if !ok {
			if _, isNum := raw.(json.Number); isNum {
				return devices.Value{}, fmt.Errorf("%s: %s is not a finite number", name, show(raw))
			}
			return devices.Value{}, fmt.Errorf("%s: %s is %s; this key takes a JSON number%s", name, show(raw), describe(raw), rangeHint(k))
		}
		if k.Range != nil && (f < k.Range.Min || f > k.Range.Max) {
			return devices.Value{}, fmt.Errorf("%s: %v%s is outside %v…%v%s", name, f, unit(k.Unit), k.Range.Min, k.Range.Max, unit(k.Unit))
		}
		return devices.Number(f), nil
	case devices.TypeEnum:
		s, ok := raw.(string)
		if !ok {
			return devices.Value{}, fmt.Errorf("%s: %s is %s; this key takes one of %s", name, show(raw), describe(raw), quoteAll(k.Choices))
		}
		if !slices.Contains(k.Choices, s) {
			return devices.Value{}, fmt.Errorf("%s: %q is not one of %s", name, s, quoteAll(k.Choices))
		}
		return devices.Enum(s), nil
	}
	return devices.Value{}, fmt.Errorf("%s: the configuration gives this key no type (%v); fix the config", name, k.Type)
}

// checkShadow checks a configured value (boot, failsafe, last applied)
// against the key's contract.
func checkShadow(k *DesiredKey, v devices.Value) bool {
	if v.Type() != k.Type {
		return false
	}
	_, err := parse(k, v.Any())
	return err == nil
}

func rangeHint(k *DesiredKey) string {
	if k.Range == nil {
		return ""
	}
	return fmt.Sprintf(" from %v to %v%s", k.Range.Min, k.Range.Max, unit(k.Unit))
}

func unit(u string) string {
	if u == "" {
		return ""
	}
	return " " + u
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

// fromAny converts a stored JSON value (KeyState) back to a Value of type t.
func fromAny(v any, t devices.Type) (devices.Value, bool) {
	switch t {
	case devices.TypeBool:
		b, ok := v.(bool)
		return devices.Bool(b), ok
	case devices.TypeNumber:
		f, ok := shadowdoc.Number(v)
		return devices.Number(f), ok
	case devices.TypeEnum:
		s, ok := v.(string)
		return devices.Enum(s), ok
	}
	return devices.Value{}, false
}

// sameValue compares two values; numbers are equal within a relative
// 1e-9 so float noise from transforms is not a change.
func sameValue(a, b devices.Value) bool {
	if a.Type() != b.Type() || a.Type() == 0 {
		return false
	}
	if a.Type() == devices.TypeNumber {
		x, y := a.Number(), b.Number()
		return x == y || math.Abs(x-y) <= 1e-9*max(1, math.Abs(x), math.Abs(y))
	}
	return a == b
}

// isOn is the interlock notion of "on": true, or a number > 0.
func isOn(v devices.Value) bool {
	switch v.Type() {
	case devices.TypeBool:
		return v.Bool()
	case devices.TypeNumber:
		return v.Number() > 0
	}
	return false
}

// transform is a key's Transform made ready to use.
type transform struct {
	scale, offset float64
	lin           *filter.Linear
	invert        bool
	lo, hi        float64 // device range for a number invert
	hasRange      bool
}

// newTransform prepares k's transform. prop, when known, gives the device
// range a number invert mirrors in.
func newTransform(k *DesiredKey, prop *devices.Property) (transform, error) {
	t := transform{scale: k.Transform.Scale, offset: k.Transform.Offset, invert: k.Transform.Invert}
	if t.scale == 0 {
		t.scale = 1
	}
	if math.IsNaN(t.scale) || math.IsInf(t.scale, 0) || math.IsNaN(t.offset) || math.IsInf(t.offset, 0) {
		return t, fmt.Errorf("%s: scale %v / offset %v are not finite; fix the config", k.Key.Path, t.scale, t.offset)
	}
	if len(k.Transform.Calibrate) > 0 {
		pts := make([]filter.Point, len(k.Transform.Calibrate))
		for i, p := range k.Transform.Calibrate {
			pts[i] = filter.Point{From: p.From, To: p.To}
		}
		l, err := filter.Fit(pts)
		if err != nil {
			return t, fmt.Errorf("%s: %w; fix the config", k.Key.Path, err)
		}
		t.lin = &l
	}
	if t.invert && k.Type == devices.TypeNumber {
		switch {
		case prop != nil && prop.Range != nil:
			t.lo, t.hi, t.hasRange = prop.Range.Min, prop.Range.Max, true
		case k.Range != nil:
			a, b := t.forward(k.Range.Min), t.forward(k.Range.Max)
			t.lo, t.hi, t.hasRange = min(a, b), max(a, b), true
		}
	}
	return t, nil
}

// forward is the number map before the invert.
func (t transform) forward(x float64) float64 {
	x = x*t.scale + t.offset
	if t.lin != nil {
		x = t.lin.Apply(x)
	}
	return x
}

// toDevice maps a shadow value to the device value.
func (t transform) toDevice(v devices.Value) devices.Value {
	switch v.Type() {
	case devices.TypeBool:
		return devices.Bool(v.Bool() != t.invert)
	case devices.TypeNumber:
		x := t.forward(v.Number())
		if t.invert && t.hasRange {
			x = t.hi + t.lo - x
		}
		return devices.Number(tidy(x))
	}
	return v
}

// toShadow maps a device value back to shadow terms.
func (t transform) toShadow(v devices.Value) devices.Value {
	switch v.Type() {
	case devices.TypeBool:
		return devices.Bool(v.Bool() != t.invert)
	case devices.TypeNumber:
		x := v.Number()
		if t.invert && t.hasRange {
			x = t.hi + t.lo - x
		}
		if t.lin != nil {
			x = t.lin.Invert(x)
		}
		return devices.Number((x - t.offset) / t.scale)
	}
	return v
}

// tidy strips float noise from a number computed by an inverse transform
// (21.000000000000004 → 21) so reports do not carry it.
func tidy(x float64) float64 {
	f, err := strconv.ParseFloat(strconv.FormatFloat(x, 'g', 12, 64), 64)
	if err != nil {
		return x
	}
	return f
}

// ToDevice maps a shadow value of key k to the value its device property
// gets, with exactly the transforms Plan applies (config validation uses it
// to check boot and failsafe values against the device). prop gives the
// device range a number invert mirrors in; nil when unknown.
func ToDevice(k DesiredKey, prop *devices.Property, v devices.Value) (devices.Value, error) {
	t, err := newTransform(&k, prop)
	if err != nil {
		return v, err
	}
	dv := t.toDevice(v)
	if dv.Type() == devices.TypeNumber && (math.IsNaN(dv.Number()) || math.IsInf(dv.Number(), 0)) {
		return v, fmt.Errorf("%s: %v does not give a finite number after the transforms", k.Key.Path, v)
	}
	return dv, nil
}
