package discovery

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzParse: Parse never panics, and whatever it accepts survives a round
// trip through its own encoding unchanged, with helpers agreeing on sizes.
func FuzzParse(f *testing.F) {
	f.Add([]byte(v1Fixture()))
	f.Add([]byte(`{"GGGroups":[]}`))
	f.Add([]byte(`{"GGGroups":[{"GGGroupId":"g","Cores":[{"thingArn":"a","Connectivity":[{"Id":"1","HostAddress":"h","PortNumber":8883}]}],"CAs":["x"]}]}`))
	f.Add([]byte(`[1,2]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := Parse(body)
		if err != nil {
			return
		}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		again, err := Parse(b)
		if err != nil {
			t.Fatalf("re-parse %s: %v", b, err)
		}
		if !reflect.DeepEqual(normal(r), normal(again)) {
			t.Fatalf("round trip changed %+v into %+v", r, again)
		}
		n := 0
		for _, c := range r.Cores() {
			n += len(c.Core.Connectivity)
		}
		if len(r.Candidates()) != n {
			t.Fatalf("%d candidates for %d entries", len(r.Candidates()), n)
		}
	})
}

// normal maps empty slices to nil: omitempty-free encoding keeps both as
// "null" or "[]" and that difference does not matter.
func normal(r *Response) *Response {
	b, _ := json.Marshal(r)
	var m any
	_ = json.Unmarshal(b, &m)
	out, _ := json.Marshal(m)
	var again Response
	_ = json.Unmarshal(out, &again)
	return &again
}
