package suggest

import (
	"strings"
	"testing"
)

func TestClosest(t *testing.T) {
	cands := []string{"climate", "heater", "update_interval", "temperature", "fan"}
	for _, tc := range []struct{ in, want string }{
		{"heatr", "heater"},  // deletion
		{"haeter", "heater"}, // neighbour swap costs one
		{"HEATER", "heater"}, // wrong case
		{"Heatre", "heater"}, // case folded
		{"update_intervall", "update_interval"},
		{"clim", "climate"},            // unique prefix
		{"fn", "fan"},                  // short word, one edit
		{"x", ""},                      // too short to guess
		{"pressure", ""},               // nothing close
		{strings.Repeat("a", 100), ""}, // hostile length
	} {
		if got := Closest(tc.in, cands); got != tc.want {
			t.Errorf("Closest(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	norm := func(s string) string { return strings.ReplaceAll(strings.ToLower(s), " ", "") }
	if got := ClosestBy("Pi 4B", []string{"pi4b", "pi5"}, norm); got != "pi4b" {
		t.Errorf("ClosestBy = %q", got)
	}
	if d := Distance("ab", "ba"); d != 1 {
		t.Errorf("Distance(ab, ba) = %d, want 1", d)
	}
}
