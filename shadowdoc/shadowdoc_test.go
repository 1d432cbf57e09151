package shadowdoc

import (
	"encoding/json"
	"testing"
)

func doc(t *testing.T, s string) map[string]any {
	t.Helper()
	v, err := Decode([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := v.(map[string]any)
	return m
}

func TestDelta(t *testing.T) {
	for _, tc := range []struct{ desired, reported, want string }{
		{`{"lights":{"color":{"r":255,"g":255}}}`, `{"lights":{"color":{"r":255,"g":0}}}`, `{"lights":{"color":{"g":255}}}`},
		{`{"l":["a"]}`, `{"l":["a","b"]}`, `{"l":["a"]}`},
		{`{"a":1,"b":100}`, `{"a":1.0,"b":1e2,"c":3}`, `{}`},
		{`{"a":{"b":1}}`, `{"a":{"b":1,"c":2}}`, `{}`},
		{`{"a":"1"}`, `{"a":1}`, `{"a":"1"}`},
		{`{"d":{}}`, `{}`, `{"d":{}}`},
	} {
		got, _ := json.Marshal(Delta(doc(t, tc.desired), doc(t, tc.reported)))
		var g, w any
		_ = json.Unmarshal(got, &g)
		_ = json.Unmarshal([]byte(tc.want), &w)
		if string(mustJSON(g)) != string(mustJSON(w)) {
			t.Errorf("Delta(%s, %s) = %s, want %s", tc.desired, tc.reported, got, tc.want)
		}
	}
	if Delta(nil, doc(t, `{"a":1}`)) != nil {
		t.Error("no desired must give no delta")
	}
}

func mustJSON(v any) []byte { b, _ := json.Marshal(v); return b }

func TestEqualExactNumbers(t *testing.T) {
	if !Equal(json.Number("12345678901234567890"), json.Number("1.234567890123456789e19")) {
		t.Error("equal big numbers differ")
	}
	if Equal(json.Number("12345678901234567890"), json.Number("12345678901234567891")) {
		t.Error("different big numbers compare equal (float rounding)")
	}
	// Go numbers (what a device computed, or read from its state file)
	// compare with received ones by value, at float64 precision.
	for _, c := range []struct {
		a, b any
		eq   bool
	}{
		{20.8, json.Number("20.8"), true},
		{json.Number("25"), 25, true},
		{map[string]any{"t": 20.5}, map[string]any{"t": json.Number("2.05e1")}, true},
		{[]any{1.0, int64(2)}, []any{json.Number("1"), json.Number("2.0")}, true},
		{20.8, json.Number("20.9"), false},
		{25.0, "25", false},
		{json.Number("1e400"), 1.0, false},
	} {
		if got := Equal(c.a, c.b); got != c.eq {
			t.Errorf("Equal(%#v, %#v) = %v, want %v", c.a, c.b, got, c.eq)
		}
		if got := Equal(c.b, c.a); got != c.eq {
			t.Errorf("Equal(%#v, %#v) = %v, want %v", c.b, c.a, got, c.eq)
		}
	}
	if _, err := Decode([]byte(`{} x`)); err == nil {
		t.Error("trailing data accepted")
	}
}
