package shadow

import (
	"strings"
	"testing"
	"time"
)

// FuzzUpdate feeds arbitrary payloads to update, on a fresh shadow and on
// an existing one, and checks the invariants every accepted update keeps:
// no panic, version +1, delta keys ⊆ desired keys, the stored document
// within the size and depth limits, and a rejection leaving state alone.
func FuzzUpdate(f *testing.F) {
	for _, s := range []string{
		`{"state":{"desired":{"a":1}}}`,
		`{"state":{"reported":{"a":{"b":[1,2,{"c":null}]}}}}`,
		`{"state":null}`,
		`{"state":{"desired":null,"reported":{"x":"y"}},"version":1,"clientToken":"t"}`,
		`{"state":{"delta":{}}}`,
		`{"state":{"desired":{"o":{"a":null,"b":{}}}}}`,
		`{"state":{"desired":{"1":{"2":{"3":{"4":{"5":{"6":{"7":1}}}}}}}}}`,
		`{"state":{"reported":{"n":1e400}}}`,
		"{\"state\":{\"reported\":{\"\xff\":1}}}",
		`[]`,
		``,
	} {
		f.Add([]byte(s))
	}
	e := New(Options{Limits: Limits{MaxDocumentBytes: 1024}})
	base := e.Handle(classic, OpUpdate, nil, []byte(`{"state":{"desired":{"a":1,"o":{"x":[1,2],"y":"s"}},"reported":{"a":2,"o":{"x":[1]}}}}`), time.Unix(T0, 0)).Next
	f.Fuzz(func(t *testing.T, payload []byte) {
		for _, cur := range []*Shadow{nil, base} {
			r := e.Handle(classic, OpUpdate, cur, payload, time.Unix(T0+1, 0))
			if r.Code != 0 {
				if r.Next != cur || r.Changed {
					t.Fatalf("rejected (%d) but state changed", r.Code)
				}
				if len(r.Messages) != 1 || !strings.HasSuffix(r.Messages[0].Topic, "/update/rejected") {
					t.Fatalf("rejection without exactly one rejected message: %v", r.Messages)
				}
				continue
			}
			n := r.Next
			if n.Version() != cur.Version()+1 {
				t.Fatalf("version %d after %d", n.Version(), cur.Version())
			}
			if sz := sizeOf(n.desired, n.reported); sz > 1024 {
				t.Fatalf("accepted document of %d bytes over the 1024 limit", sz)
			}
			if depth(n.desired) > 6 || depth(n.reported) > 6 {
				t.Fatal("accepted document deeper than 6")
			}
			if nullInArray(n.desired, false) || nullInArray(n.reported, false) || hasNull(n.desired) || hasNull(n.reported) {
				t.Fatal("stored document holds a null")
			}
			for _, m := range r.Messages {
				if _, err := decodeJSON(m.Payload); err != nil {
					t.Fatalf("%s is not JSON: %v", m.Topic, err)
				}
				if strings.HasSuffix(m.Topic, "/update/delta") {
					v, _ := decodeJSON(m.Payload)
					d, _ := v.(map[string]any)["state"].(map[string]any)
					if !keysWithin(d, n.desired) {
						t.Fatalf("delta %v has keys outside desired %v", d, n.desired)
					}
				}
			}
			// The stored form reloads to the same document.
			b, err := n.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var back Shadow
			if err := back.UnmarshalBinary(b); err != nil {
				t.Fatalf("stored shadow does not reload: %v", err)
			}
			g1 := e.Handle(classic, OpGet, n, nil, time.Unix(T0, 0)).Messages[0].Payload
			g2 := e.Handle(classic, OpGet, &back, nil, time.Unix(T0, 0)).Messages[0].Payload
			if string(g1) != string(g2) {
				t.Fatalf("reload differs:\n%s\n%s", g1, g2)
			}
		}
	})
}

func hasNull(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case map[string]any:
		for _, e := range x {
			if hasNull(e) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if hasNull(e) {
				return true
			}
		}
	}
	return false
}

// keysWithin reports whether every key path of d exists in desired.
func keysWithin(d, desired map[string]any) bool {
	for k, v := range d {
		dv, ok := desired[k]
		if !ok {
			return false
		}
		if sub, isMap := v.(map[string]any); isMap {
			dsub, _ := dv.(map[string]any)
			if dsub == nil || !keysWithin(sub, dsub) {
				return false
			}
		}
	}
	return true
}
