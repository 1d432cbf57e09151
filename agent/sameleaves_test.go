package agent

import "testing"

// An on_reject patch may take the mirror's newer version only when the
// patched keys still hold what Plan rejected.
func TestSameLeaves(t *testing.T) {
	seen := map[string]any{"fan": 150.0, "lights": map[string]any{"kitchen": "x"}, "heater": true}
	for _, tc := range []struct {
		name  string
		patch map[string]any
		now   map[string]any
		want  bool
	}{
		{"unchanged", map[string]any{"fan": nil}, map[string]any{"fan": 150.0, "heater": false}, true},
		{"changed by the cloud", map[string]any{"fan": nil}, map[string]any{"fan": 40.0}, false},
		{"removed by the cloud", map[string]any{"fan": nil}, map[string]any{}, false},
		{"nested unchanged", map[string]any{"lights": map[string]any{"kitchen": nil}}, map[string]any{"lights": map[string]any{"kitchen": "x", "hall": 1.0}}, true},
		{"nested changed", map[string]any{"lights": map[string]any{"kitchen": nil}}, map[string]any{"lights": map[string]any{"kitchen": "y"}}, false},
	} {
		if got := sameLeaves(tc.patch, seen, tc.now); got != tc.want {
			t.Errorf("%s: sameLeaves = %v, want %v", tc.name, got, tc.want)
		}
	}
}
