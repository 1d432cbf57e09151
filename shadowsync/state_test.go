package shadowsync

import (
	"encoding/json"
	"testing"
)

func obj(t *testing.T, s string) map[string]any {
	t.Helper()
	if s == "" {
		return nil
	}
	v, err := decodeJSON([]byte(s))
	if err != nil {
		t.Fatalf("bad test JSON %s: %v", s, err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("test JSON %s is not an object", s)
	}
	return m
}

func js(v any) string {
	if m, ok := v.(map[string]any); ok && m == nil {
		return "null"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func TestApplyPatchFollowsAWSMergeRules(t *testing.T) {
	cases := []struct{ name, doc, patch, want string }{
		{"new keys", `{"a":1}`, `{"b":2}`, `{"a":1,"b":2}`},
		{"scalar replaced", `{"a":1}`, `{"a":"x"}`, `{"a":"x"}`},
		{"objects merge", `{"c":{"r":255,"g":255}}`, `{"c":{"g":0}}`, `{"c":{"g":0,"r":255}}`},
		{"null deletes", `{"a":1,"b":2}`, `{"a":null}`, `{"b":2}`},
		{"nested null deletes", `{"a":{"x":1,"y":2}}`, `{"a":{"x":null}}`, `{"a":{"y":2}}`},
		{"emptied object disappears", `{"a":{"x":1},"b":1}`, `{"a":{"x":null}}`, `{"b":1}`},
		{"last key deleted: section gone", `{"a":1}`, `{"a":null}`, ``},
		{"delete missing key is a no-op", `{"a":1}`, `{"z":null}`, `{"a":1}`},
		{"arrays replace", `{"a":[1,2]}`, `{"a":[3]}`, `{"a":[3]}`},
		{"scalar to object replaces", `{"c":3}`, `{"c":{"d":3}}`, `{"c":{"d":3}}`},
		{"object to scalar replaces", `{"c":{"d":3}}`, `{"c":3}`, `{"c":3}`},
		{"empty object merges nothing", `{"c":{"d":3}}`, `{"c":{}}`, `{"c":{"d":3}}`},
		{"new empty object is stored", `{"a":1}`, `{"d":{}}`, `{"a":1,"d":{}}`},
		{"nulls inside a new object are not stored", ``, `{"a":{"b":null,"c":1}}`, `{"a":{"c":1}}`},
		{"onto nothing", ``, `{"a":1}`, `{"a":1}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc, patch := obj(t, tc.doc), obj(t, tc.patch)
			docBefore := js(doc)
			got := applyPatch(doc, patch)
			want := obj(t, tc.want)
			if !equal(anyOf(got), anyOf(want)) {
				t.Errorf("applyPatch(%s, %s) = %s, want %s", tc.doc, tc.patch, js(got), js(want))
			}
			if js(doc) != docBefore {
				t.Errorf("input modified: %s → %s", docBefore, js(doc))
			}
		})
	}
}

func TestComposePatchesIsExactOrRefuses(t *testing.T) {
	// Stored sections the composition must be exact against.
	docs := []string{``, `{"a":1}`, `{"a":{"x":1,"y":2}}`, `{"a":[1],"b":{"c":{"d":1}}}`, `{"b":"s","c":{}}`,
		`{"b":{}}`, `{"b":{"c":{}}}`, `{"b":{"d":5,"x":0}}`}
	cases := []struct {
		name, a, b string
		ok         bool
	}{
		{"disjoint keys", `{"a":1}`, `{"b":2}`, true},
		{"latest value per key", `{"a":1}`, `{"a":2}`, true},
		{"nested merge", `{"a":{"x":1}}`, `{"a":{"y":3}}`, true},
		{"nested latest wins", `{"a":{"x":1}}`, `{"a":{"x":5}}`, true},
		{"delete after set", `{"a":{"x":1}}`, `{"a":null}`, true},
		{"scalar after object", `{"a":{"x":1}}`, `{"a":7}`, true},
		{"nested delete after nested set cannot be one patch", `{"b":{"c":{"d":2}}}`, `{"b":{"c":{"d":null}}}`, false},
		{"nested object deleted after nested set cannot be one patch", `{"b":{"c":{"d":2}}}`, `{"b":{"c":null}}`, false},
		{"nested delete of a key not set before", `{"b":{"x":1}}`, `{"b":{"d":null}}`, true},
		{"object after delete cannot be one patch", `{"a":null}`, `{"a":{"z":1}}`, false},
		{"object after scalar cannot be one patch", `{"a":3}`, `{"a":{"z":1}}`, false},
		{"object after array cannot be one patch", `{"a":[1]}`, `{"a":{"z":1}}`, false},
		{"set after delete", `{"a":null}`, `{"a":4}`, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, b := obj(t, tc.a), obj(t, tc.b)
			got, ok := composePatches(a, b)
			if ok != tc.ok {
				t.Fatalf("composePatches(%s, %s) ok = %v, want %v", tc.a, tc.b, ok, tc.ok)
			}
			if !ok {
				return
			}
			for _, d := range docs {
				doc := obj(t, d)
				seq := applyPatch(applyPatch(doc, a), b)
				one := applyPatch(doc, got)
				if !equal(anyOf(seq), anyOf(one)) {
					t.Errorf("on %s: a then b = %s, composed %s gives %s", d, js(seq), js(got), js(one))
				}
			}
		})
	}
}

func TestDeltaOfMatchesAWS(t *testing.T) {
	cases := []struct{ name, desired, reported, want string }{
		{"no desired", ``, `{"a":1}`, ``},
		{"no reported: all desired", `{"a":1,"o":{}}`, ``, `{"a":1,"o":{}}`},
		{"in sync", `{"a":1}`, `{"a":1,"b":2}`, ``},
		{"numbers compare by value", `{"a":1}`, `{"a":1.0}`, ``},
		{"differs", `{"a":1,"b":2}`, `{"a":1,"b":3}`, `{"b":2}`},
		{"nested keeps path", `{"l":{"c":{"r":255,"g":255}}}`, `{"l":{"c":{"r":255,"g":0}}}`, `{"l":{"c":{"g":255}}}`},
		{"arrays whole", `{"a":["x"]}`, `{"a":["x","y"]}`, `{"a":["x"]}`},
		{"type change", `{"a":{"b":1}}`, `{"a":1}`, `{"a":{"b":1}}`},
		{"reported-only keys ignored", `{"a":1}`, `{"a":1,"z":9}`, ``},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := deltaOf(obj(t, tc.desired), obj(t, tc.reported))
			if want := obj(t, tc.want); !equal(anyOf(got), anyOf(want)) {
				t.Errorf("deltaOf(%s, %s) = %s, want %s", tc.desired, tc.reported, js(got), tc.want)
			}
		})
	}
}

func TestNormalizeTurnsGoValuesIntoJSONValues(t *testing.T) {
	got, err := normalizeObject(map[string]any{"i": 3, "f": 2.5, "s": "x", "n": nil, "m": map[string]int{"k": 1}})
	if err != nil {
		t.Fatal(err)
	}
	if want := obj(t, `{"i":3,"f":2.5,"s":"x","n":null,"m":{"k":1}}`); !equal(got, want) {
		t.Errorf("normalizeObject = %s, want %s", js(got), js(want))
	}
	if _, err := normalizeObject(map[string]any{"ch": make(chan int)}); err == nil {
		t.Error("a value that does not marshal to JSON was accepted")
	}
}
