package metrics

import (
	"strings"
	"testing"
)

// FuzzParse: Parse never panics, and what it accepts survives a second
// parse of the same text with the same samples.
func FuzzParse(f *testing.F) {
	f.Add("# HELP x_total h\n# TYPE x_total counter\nx_total{a=\"b\\n\"} 1\n")
	f.Add("# HELP h h\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1.5\nh_count 2\n")
	f.Fuzz(func(t *testing.T, text string) {
		s, err := Parse(strings.NewReader(text))
		if err != nil {
			return
		}
		s2, err := Parse(strings.NewReader(text))
		if err != nil || len(s2) != len(s) {
			t.Fatalf("second parse differs: %v", err)
		}
	})
}
