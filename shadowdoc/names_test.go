package shadowdoc

import (
	"strings"
	"testing"
)

func TestNames(t *testing.T) {
	for _, tc := range []struct {
		name          string
		thing, shadow bool
	}{
		{"pi-1", true, true},
		{"Greenhouse_01:a", true, true},
		{"", false, false},
		{"has space", false, false},
		{"slash/y", false, false},
		{"plus+", false, false},
		{"hash#", false, false},
		{"é", false, false},
		{strings.Repeat("a", 64), true, true},
		{strings.Repeat("a", 65), true, false},
		{strings.Repeat("a", 128), true, false},
		{strings.Repeat("a", 129), false, false},
	} {
		if got := ValidThingName(tc.name); got != tc.thing {
			t.Errorf("ValidThingName(%q) = %v", tc.name, got)
		}
		if got := ValidShadowName(tc.name); got != tc.shadow {
			t.Errorf("ValidShadowName(%q) = %v", tc.name, got)
		}
	}
	if got := TopicPrefix("t1", ""); got != "$aws/things/t1/shadow" {
		t.Errorf("classic prefix %q", got)
	}
	if got := TopicPrefix("t1", "cfg"); got != "$aws/things/t1/shadow/name/cfg" {
		t.Errorf("named prefix %q", got)
	}
}
