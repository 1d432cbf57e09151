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
	if _, err := Decode([]byte(`{} x`)); err == nil {
		t.Error("trailing data accepted")
	}
}
