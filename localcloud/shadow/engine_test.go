package shadow

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

const T0 = 1730482794

// step is one request and what the service must publish in answer. want
// maps a topic suffix ("update/accepted", …) to the exact expected JSON
// document (compared semantically); a suffix absent from want must not be
// published.
type step struct {
	op    Op
	at    int64 // seconds after T0
	req   string
	want  map[string]string
	code  int // expected Result.Code
	check func(t *testing.T, s *Shadow)
}

func run(t *testing.T, e *Engine, k Key, steps []step) *Shadow {
	t.Helper()
	var cur *Shadow
	for i, s := range steps {
		op := s.op
		if op == "" {
			op = OpUpdate
		}
		r := e.Handle(k, op, cur, []byte(s.req), time.Unix(T0+s.at, 0))
		if r.Code != s.code {
			t.Fatalf("step %d %s %s: code %d, want %d; messages %s", i, op, s.req, r.Code, s.code, dump(r.Messages))
		}
		got := map[string][]byte{}
		for _, m := range r.Messages {
			suffix, ok := strings.CutPrefix(m.Topic, k.Prefix()+"/")
			if !ok {
				t.Fatalf("step %d: message on foreign topic %q", i, m.Topic)
			}
			got[suffix] = m.Payload
		}
		if s.want != nil {
			for suffix, want := range s.want {
				g, ok := got[suffix]
				if !ok {
					t.Fatalf("step %d %s: no message on %s; got %s", i, s.req, suffix, dump(r.Messages))
				}
				jsonEq(t, fmt.Sprintf("step %d %s", i, suffix), g, want)
			}
			for suffix := range got {
				if _, ok := s.want[suffix]; !ok {
					t.Fatalf("step %d %s: unexpected message on %s: %s", i, s.req, suffix, got[suffix])
				}
			}
		}
		if r.Code != 0 && r.Next != cur {
			t.Fatalf("step %d: rejected request changed the stored shadow", i)
		}
		cur = r.Next
		if s.check != nil {
			s.check(t, cur)
		}
	}
	return cur
}

func dump(ms []Message) string {
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "\n  %s %s", m.Topic, m.Payload)
	}
	return b.String()
}

func jsonEq(t *testing.T, what string, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: output is not JSON: %v: %s", what, err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("%s: bad expectation %v: %s", what, err, want)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("%s:\n got  %s\n want %s", what, got, want)
	}
}

// ts renders {"timestamp":T0+d}.
func ts(d int64) string { return fmt.Sprintf(`{"timestamp":%d}`, T0+d) }

// sub replaces $T (T0), $T1.. (T0+n) in a template.
func sub(s string) string {
	for i := 9; i >= 1; i-- {
		s = strings.ReplaceAll(s, fmt.Sprintf("$T%d", i), fmt.Sprint(T0+int64(i)))
	}
	return strings.ReplaceAll(s, "$T", fmt.Sprint(T0))
}

func w(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = sub(kv[i+1])
	}
	return m
}

var classic = Key{Thing: "thing1"}

func TestUpdateAcceptedDeltaDocuments(t *testing.T) {
	// The reference's first update/accepted example, with its delta and
	// documents messages.
	run(t, New(Options{}), classic, []step{{
		req: `{"state":{"desired":{"Color":"red"}},"clientToken":"35624091"}`,
		want: w(
			"update/accepted", `{"state":{"desired":{"Color":"red"}},"metadata":{"desired":{"Color":{"timestamp":$T}}},"version":1,"timestamp":$T,"clientToken":"35624091"}`,
			"update/delta", `{"state":{"Color":"red"},"metadata":{"Color":{"timestamp":$T}},"version":1,"timestamp":$T,"clientToken":"35624091"}`,
			"update/documents", `{"previous":null,"current":{"state":{"desired":{"Color":"red"}},"metadata":{"desired":{"Color":{"timestamp":$T}}},"version":1},"timestamp":$T,"clientToken":"35624091"}`,
		),
	}, {
		// Reported-only update that leaves keys out of sync: the full delta
		// again, with this update's token and the desired leaf's own (older)
		// timestamp.
		at:  9,
		req: `{"state":{"reported":{"Color":"blue","Status":"Awful"}},"clientToken":"af54adca"}`,
		want: w(
			"update/accepted", `{"state":{"reported":{"Color":"blue","Status":"Awful"}},"metadata":{"reported":{"Color":{"timestamp":$T9},"Status":{"timestamp":$T9}}},"version":2,"timestamp":$T9,"clientToken":"af54adca"}`,
			"update/delta", `{"state":{"Color":"red"},"metadata":{"Color":{"timestamp":$T}},"version":2,"timestamp":$T9,"clientToken":"af54adca"}`,
			"update/documents", `{"previous":{"state":{"desired":{"Color":"red"}},"metadata":{"desired":{"Color":{"timestamp":$T}}},"version":1},
			  "current":{"state":{"desired":{"Color":"red"},"reported":{"Color":"blue","Status":"Awful"}},"metadata":{"desired":{"Color":{"timestamp":$T}},"reported":{"Color":{"timestamp":$T9},"Status":{"timestamp":$T9}}},"version":2},
			  "timestamp":$T9,"clientToken":"af54adca"}`,
		),
	}, {
		// Brought into sync: no delta; no token → none echoed.
		at:  9,
		req: `{"state":{"reported":{"Color":"red"}}}`,
		want: w(
			"update/accepted", `{"state":{"reported":{"Color":"red"}},"metadata":{"reported":{"Color":{"timestamp":$T9}}},"version":3,"timestamp":$T9}`,
			"update/documents", `{"previous":{"state":{"desired":{"Color":"red"},"reported":{"Color":"blue","Status":"Awful"}},"metadata":{"desired":{"Color":{"timestamp":$T}},"reported":{"Color":{"timestamp":$T9},"Status":{"timestamp":$T9}}},"version":2},
			  "current":{"state":{"desired":{"Color":"red"},"reported":{"Color":"red","Status":"Awful"}},"metadata":{"desired":{"Color":{"timestamp":$T}},"reported":{"Color":{"timestamp":$T9},"Status":{"timestamp":$T9}}},"version":3},"timestamp":$T9}`,
		),
	}, {
		op: OpGet, at: 20, req: `{"clientToken":"g1"}`,
		want: w("get/accepted", `{"state":{"desired":{"Color":"red"},"reported":{"Color":"red","Status":"Awful"}},
		  "metadata":{"desired":{"Color":{"timestamp":$T}},"reported":{"Color":{"timestamp":$T9},"Status":{"timestamp":$T9}}},
		  "version":3,"timestamp":`+fmt.Sprint(T0+20)+`,"clientToken":"g1"}`),
	}})
}

func TestAcceptedEchoesRequestStateAsSent(t *testing.T) {
	run(t, New(Options{}), classic, []step{
		{req: `{"state":{"desired":{"a":1,"list":["x",{"o":1}]},"reported":{"a":1}}}`},
		{
			// nulls kept in the echo; "desired": null → one timestamp.
			req: `{"state":{"reported":{"color":"green","a":null},"desired":null}}`,
			want: w(
				"update/accepted", `{"state":{"reported":{"color":"green","a":null},"desired":null},"metadata":{"reported":{"color":{"timestamp":$T},"a":{"timestamp":$T}},"desired":{"timestamp":$T}},"version":2,"timestamp":$T}`,
				"update/documents", `{"previous":{"state":{"desired":{"a":1,"list":["x",{"o":1}]},"reported":{"a":1}},"metadata":{"desired":{"a":{"timestamp":$T},"list":[{"timestamp":$T},{"timestamp":$T}]},"reported":{"a":{"timestamp":$T}}},"version":1},
				  "current":{"state":{"reported":{"color":"green"}},"metadata":{"reported":{"color":{"timestamp":$T}}},"version":2},"timestamp":$T}`,
			),
		},
		{
			// {"state": null}: accepted with state null, shadow still exists.
			req: `{"state":null,"clientToken":"c"}`,
			want: w(
				"update/accepted", `{"state":null,"metadata":{"timestamp":$T},"version":3,"timestamp":$T,"clientToken":"c"}`,
				"update/documents", `{"previous":{"state":{"reported":{"color":"green"}},"metadata":{"reported":{"color":{"timestamp":$T}}},"version":2},"current":{"state":{},"metadata":{},"version":3},"timestamp":$T,"clientToken":"c"}`,
			),
		},
		{op: OpGet, want: w("get/accepted", `{"state":{},"metadata":{},"version":3,"timestamp":$T}`)},
	})
}

// stateAfter applies the updates in order and returns get's state and
// metadata.
func stateAfter(t *testing.T, e *Engine, updates ...string) (state, meta map[string]any, version float64) {
	t.Helper()
	var cur *Shadow
	for i, u := range updates {
		r := e.Handle(classic, OpUpdate, cur, []byte(u), time.Unix(T0+int64(i), 0))
		if r.Code != 0 {
			t.Fatalf("update %d %s rejected: %s", i, u, dump(r.Messages))
		}
		cur = r.Next
	}
	r := e.Handle(classic, OpGet, cur, nil, time.Unix(T0+100, 0))
	if r.Code != 0 {
		t.Fatalf("get rejected: %s", dump(r.Messages))
	}
	var doc struct {
		State    map[string]any
		Metadata map[string]any
		Version  float64
	}
	if err := json.Unmarshal(r.Messages[0].Payload, &doc); err != nil {
		t.Fatal(err)
	}
	return doc.State, doc.Metadata, doc.Version
}

func TestMergeRules(t *testing.T) {
	tests := []struct {
		name    string
		updates []string
		state   string // expected get state (incl. delta)
	}{
		{"objects merge recursively",
			[]string{`{"state":{"desired":{"color":{"r":255,"g":255}}}}`, `{"state":{"desired":{"color":{"g":0}}}}`},
			`{"desired":{"color":{"r":255,"g":0}},"delta":{"color":{"r":255,"g":0}}}`},
		{"only fields present change",
			[]string{`{"state":{"reported":{"a":1,"b":2}}}`, `{"state":{"reported":{"b":3}}}`},
			`{"reported":{"a":1,"b":3}}`},
		{"arrays replace whole",
			[]string{`{"state":{"reported":{"l":[1,2,3]}}}`, `{"state":{"reported":{"l":[4]}}}`},
			`{"reported":{"l":[4]}}`},
		{"objects inside arrays are opaque",
			[]string{`{"state":{"reported":{"l":[{"a":1,"b":2}]}}}`, `{"state":{"reported":{"l":[{"a":3}]}}}`},
			`{"reported":{"l":[{"a":3}]}}`},
		{"scalar to object replaces",
			[]string{`{"state":{"desired":{"c":3}}}`, `{"state":{"desired":{"c":{"d":3}}}}`},
			`{"desired":{"c":{"d":3}},"delta":{"c":{"d":3}}}`},
		{"object to scalar replaces",
			[]string{`{"state":{"reported":{"c":{"d":3}}}}`, `{"state":{"reported":{"c":"x"}}}`},
			`{"reported":{"c":"x"}}`},
		{"null deletes at any depth",
			[]string{`{"state":{"reported":{"a":{"b":{"c":1,"d":2}},"e":1}}}`, `{"state":{"reported":{"a":{"b":{"c":null}}}}}`},
			`{"reported":{"a":{"b":{"d":2}},"e":1}}`},
		{"deleting an absent key is a no-op",
			[]string{`{"state":{"reported":{"a":1}}}`, `{"state":{"reported":{"zz":null}}}`},
			`{"reported":{"a":1}}`},
		{"section whose last key is deleted disappears",
			[]string{`{"state":{"desired":{"foo":1},"reported":{"x":1}}}`, `{"state":{"desired":{"foo":null}}}`},
			`{"reported":{"x":1}}`},
		{"object emptied by deletes disappears",
			[]string{`{"state":{"reported":{"a":{"b":1},"x":1}}}`, `{"state":{"reported":{"a":{"b":null}}}}`},
			`{"reported":{"x":1}}`},
		{"desired null removes the section",
			[]string{`{"state":{"desired":{"a":1,"b":2},"reported":{"a":1}}}`, `{"state":{"desired":null}}`},
			`{"reported":{"a":1}}`},
		{"reported null removes the section",
			[]string{`{"state":{"desired":{"a":1},"reported":{"a":1}}}`, `{"state":{"reported":null}}`},
			`{"desired":{"a":1},"delta":{"a":1}}`},
		{"state null clears both",
			[]string{`{"state":{"desired":{"a":1},"reported":{"b":1}}}`, `{"state":null}`},
			`{}`},
		{"empty desired creates nothing",
			[]string{`{"state":{"desired":{}}}`},
			`{}`},
		{"empty state changes nothing",
			[]string{`{"state":{"reported":{"a":1}}}`, `{"state":{}}`},
			`{"reported":{"a":1}}`},
		{"new key with {} is stored and in the delta",
			[]string{`{"state":{"desired":{"d":{}}}}`},
			`{"desired":{"d":{}},"delta":{"d":{}}}`},
		{"{} onto an object merges nothing",
			[]string{`{"state":{"reported":{"c":{"x":1}}}}`, `{"state":{"reported":{"c":{}}}}`},
			`{"reported":{"c":{"x":1}}}`},
		{"{} onto a scalar replaces it",
			[]string{`{"state":{"reported":{"c":3}}}`, `{"state":{"reported":{"c":{}}}}`},
			`{"reported":{"c":{}}}`},
		{"extra top-level keys are ignored, not stored",
			[]string{`{"state":{"reported":{"a":1}},"extra":{"b":2},"timestamp":5}`},
			`{"reported":{"a":1}}`},
		{"numbers echoed as sent",
			[]string{`{"state":{"reported":{"f":1.50,"big":12345678901234567890,"e":1e3}}}`},
			`{"reported":{"f":1.50,"big":12345678901234567890,"e":1e3}}`},
		{"unicode and escapes survive",
			[]string{`{"state":{"reported":{"s":"<&> é \u0000 😀","k\"q":"v"}}}`},
			`{"reported":{"s":"<&> é \u0000 😀","k\"q":"v"}}`},
		{"both sections in one request",
			[]string{`{"state":{"desired":{"a":2},"reported":{"a":1,"b":1}}}`},
			`{"desired":{"a":2},"reported":{"a":1,"b":1},"delta":{"a":2}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state, _, _ := stateAfter(t, New(Options{}), tt.updates...)
			b, _ := json.Marshal(state)
			jsonEq(t, "state", b, tt.state)
		})
	}
}

func TestMetadataTimestamps(t *testing.T) {
	// Untouched fields keep their timestamps; arrays get one per element;
	// a replaced subtree's metadata is replaced; deleted leaves lose theirs.
	_, meta, v := stateAfter(t, New(Options{}),
		`{"state":{"reported":{"a":1,"o":{"x":1,"y":2},"l":[1,2,3],"z":1}}}`, // T0
		`{"state":{"reported":{"a":2,"o":{"y":3}}}}`,                         // T0+1
		`{"state":{"reported":{"l":["p"],"z":null}}}`,                        // T0+2
	)
	b, _ := json.Marshal(meta)
	jsonEq(t, "metadata", b, sub(`{"reported":{"a":{"timestamp":$T1},"o":{"x":{"timestamp":$T},"y":{"timestamp":$T1}},"l":[{"timestamp":$T2}]}}`))
	if v != 3 {
		t.Fatalf("version %v after 3 updates, want 3", v)
	}
}

func TestDelta(t *testing.T) {
	tests := []struct {
		name               string
		desired, reported  string
		delta              string // "" = no delta published
		desiredMetaUpdates []string
	}{
		{"nested difference keeps the path from the root",
			`{"lights":{"color":{"r":255,"g":255,"b":255}}}`, `{"lights":{"color":{"r":255,"g":0,"b":255}}}`,
			`{"lights":{"color":{"g":255}}}`, nil},
		{"equal nested objects omitted",
			`{"a":{"b1":{"c":"d"},"b2":"sth"}}`, `{"a":{"b1":{"c":"d"}}}`,
			`{"a":{"b2":"sth"}}`, nil},
		{"arrays compare whole",
			`{"l":["value_1"]}`, `{"l":["value_1","value_2"]}`, `{"l":["value_1"]}`, nil},
		{"equal arrays omitted",
			`{"l":[1,{"a":[2]}],"x":1}`, `{"l":[1,{"a":[2]}]}`, `{"x":1}`, nil},
		{"keys only in reported ignored",
			`{"a":1}`, `{"a":1,"b":2}`, "", nil},
		{"desired subset of reported object: no delta",
			`{"a":{"b":1}}`, `{"a":{"b":1,"c":2}}`, "", nil},
		{"type change is a difference",
			`{"a":{"b":1}}`, `{"a":1}`, `{"a":{"b":1}}`, nil},
		{"string vs number differ",
			`{"a":"1"}`, `{"a":1}`, `{"a":"1"}`, nil},
		{"numbers compare by value",
			`{"a":1,"b":100}`, `{"a":1.0,"b":1e2}`, "", nil},
		{"bool vs null-less absent",
			`{"on":false}`, `{}`, `{"on":false}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := New(Options{})
			r1 := e.Handle(classic, OpUpdate, nil, []byte(`{"state":{"desired":`+tt.desired+`}}`), time.Unix(T0, 0))
			r2 := e.Handle(classic, OpUpdate, r1.Next, []byte(`{"state":{"reported":`+tt.reported+`}}`), time.Unix(T0+1, 0))
			if r2.Code != 0 {
				t.Fatalf("rejected: %s", dump(r2.Messages))
			}
			var got []byte
			for _, m := range r2.Messages {
				if strings.HasSuffix(m.Topic, "/update/delta") {
					got = m.Payload
				}
			}
			if tt.delta == "" {
				if got != nil {
					t.Fatalf("delta published, want none: %s", got)
				}
				return
			}
			if got == nil {
				t.Fatalf("no delta published, want %s", tt.delta)
			}
			var d struct{ State json.RawMessage }
			_ = json.Unmarshal(got, &d)
			jsonEq(t, "delta", d.State, tt.delta)
		})
	}
}

func TestDeltaPublication(t *testing.T) {
	run(t, New(Options{}), classic, []step{
		{req: `{"state":{"desired":{"a":1,"b":[1,2]},"reported":{"a":1,"b":[1,2]}}}`,
			want: w("update/accepted", `{"state":{"desired":{"a":1,"b":[1,2]},"reported":{"a":1,"b":[1,2]}},"metadata":{"desired":{"a":{"timestamp":$T},"b":[{"timestamp":$T},{"timestamp":$T}]},"reported":{"a":{"timestamp":$T},"b":[{"timestamp":$T},{"timestamp":$T}]}},"version":1,"timestamp":$T}`,
				"update/documents", `{"previous":null,"current":{"state":{"desired":{"a":1,"b":[1,2]},"reported":{"a":1,"b":[1,2]}},"metadata":{"desired":{"a":{"timestamp":$T},"b":[{"timestamp":$T},{"timestamp":$T}]},"reported":{"a":{"timestamp":$T},"b":[{"timestamp":$T},{"timestamp":$T}]}},"version":1},"timestamp":$T}`)},
		// A reported key deleted: its desired counterpart re-enters the delta,
		// with the desired array's per-element metadata.
		{at: 5, req: `{"state":{"reported":{"b":null}},"clientToken":"t"}`, check: func(t *testing.T, s *Shadow) {}},
		// Deleting the desired keys so nothing differs publishes no delta.
		{at: 6, req: `{"state":{"desired":{"b":null}}}`,
			want: w("update/accepted", `{"state":{"desired":{"b":null}},"metadata":{"desired":{"b":{"timestamp":$T6}}},"version":3,"timestamp":$T6}`,
				"update/documents", `{"previous":{"state":{"desired":{"a":1,"b":[1,2]},"reported":{"a":1}},"metadata":{"desired":{"a":{"timestamp":$T},"b":[{"timestamp":$T},{"timestamp":$T}]},"reported":{"a":{"timestamp":$T}}},"version":2},
				  "current":{"state":{"desired":{"a":1},"reported":{"a":1}},"metadata":{"desired":{"a":{"timestamp":$T}},"reported":{"a":{"timestamp":$T}}},"version":3},"timestamp":$T6}`)},
	})
	// The second step's delta, checked on its own.
	e := New(Options{})
	r1 := e.Handle(classic, OpUpdate, nil, []byte(`{"state":{"desired":{"a":1,"b":[1,2]},"reported":{"a":1,"b":[1,2]}}}`), time.Unix(T0, 0))
	r2 := e.Handle(classic, OpUpdate, r1.Next, []byte(`{"state":{"reported":{"b":null}},"clientToken":"t"}`), time.Unix(T0+5, 0))
	if len(r2.Messages) != 3 {
		t.Fatalf("want accepted, delta, documents; got %s", dump(r2.Messages))
	}
	jsonEq(t, "delta", r2.Messages[1].Payload, sub(`{"state":{"b":[1,2]},"metadata":{"b":[{"timestamp":$T},{"timestamp":$T}]},"version":2,"timestamp":$T5,"clientToken":"t"}`))
}

func TestVersionsAndLocking(t *testing.T) {
	run(t, New(Options{}), classic, []step{
		{req: `{"state":{"reported":{"a":1}},"version":5,"clientToken":"v"}`, code: 409,
			want: w("update/rejected", `{"code":409,"message":"Version conflict","clientToken":"v"}`)},
		{req: `{"state":{"reported":{"a":1}}}`, check: wantVersion(1)},
		{req: `{"state":{"reported":{"a":2}},"version":1}`, check: wantVersion(2)},
		{req: `{"state":{"reported":{"a":3}},"version":1,"clientToken":"old"}`, code: 409,
			want: w("update/rejected", `{"code":409,"message":"Version conflict","clientToken":"old"}`), check: wantVersion(2)},
		{req: `{"state":{"reported":{"a":3}},"version":3}`, code: 409, check: wantVersion(2)},
		{req: `{"state":{}}`, check: wantVersion(3)},
		{req: `{"state":{"reported":{"a":3}},"version":null}`, check: wantVersion(4)},
	})
}

func wantVersion(v int64) func(*testing.T, *Shadow) {
	return func(t *testing.T, s *Shadow) {
		t.Helper()
		if s.Version() != v {
			t.Fatalf("version %d, want %d", s.Version(), v)
		}
	}
}

func TestDeleteAndRecreate(t *testing.T) {
	for _, tt := range []struct {
		name    string
		opts    Options
		at      int64
		version int64
	}{
		{"default continues at N+2", Options{}, 10, 4},
		{"N+1", Options{Recreate: RecreateNext}, 10, 3},
		{"reset", Options{Recreate: RecreateReset}, 10, 1},
		{"forgotten after the window", Options{ForgetDeletedAfter: 48 * time.Hour}, 48*3600 + 1, 1},
		{"within the window", Options{ForgetDeletedAfter: 48 * time.Hour}, 48 * 3600, 4},
	} {
		t.Run(tt.name, func(t *testing.T) {
			run(t, New(tt.opts), classic, []step{
				{op: OpDelete, req: `{"clientToken":"d0"}`, code: 404,
					want: w("delete/rejected", `{"code":404,"message":"No shadow exists with name: 'thing1'","clientToken":"d0"}`)},
				{req: `{"state":{"reported":{"a":1}}}`},
				{req: `{"state":{"reported":{"a":2}}}`},
				{op: OpDelete, at: 1, req: `{"clientToken":"d1"}`,
					want: w("delete/accepted", `{"version":2,"timestamp":$T1,"clientToken":"d1"}`)},
				{op: OpGet, at: 2, code: 404, want: w("get/rejected", `{"code":404,"message":"No shadow exists with name: 'thing1'"}`)},
				{op: OpDelete, at: 2, code: 404, want: w("delete/rejected", `{"code":404,"message":"No shadow exists with name: 'thing1'"}`)},
				{at: 1 + tt.at, req: `{"state":{"desired":{"b":1}},"version":` + fmt.Sprint(tt.version-1) + `}`,
					want: w("update/accepted", `{"state":{"desired":{"b":1}},"metadata":{"desired":{"b":`+ts(1+tt.at)+`}},"version":`+fmt.Sprint(tt.version)+`,"timestamp":`+fmt.Sprint(T0+1+tt.at)+`}`,
						"update/delta", `{"state":{"b":1},"metadata":{"b":`+ts(1+tt.at)+`},"version":`+fmt.Sprint(tt.version)+`,"timestamp":`+fmt.Sprint(T0+1+tt.at)+`}`,
						// previous is null: the old document does not come back.
						"update/documents", `{"previous":null,"current":{"state":{"desired":{"b":1}},"metadata":{"desired":{"b":`+ts(1+tt.at)+`}},"version":`+fmt.Sprint(tt.version)+`},"timestamp":`+fmt.Sprint(T0+1+tt.at)+`}`)},
			})
		})
	}
}

func TestNamedShadowMessages(t *testing.T) {
	k := Key{Thing: "thing1", Name: "simShadow1"}
	run(t, New(Options{}), k, []step{
		{op: OpGet, req: `{"clientToken":"x"}`, code: 404,
			want: w("get/rejected", `{"code":404,"message":"No shadow exists with name: 'simShadow1'","clientToken":"x"}`)},
		{req: `{"state":{"reported":{"a":1}}}`, check: wantVersion(1)},
	})
	if got := k.Prefix(); got != "$aws/things/thing1/shadow/name/simShadow1" {
		t.Fatalf("prefix %q", got)
	}
}

func TestErrors(t *testing.T) {
	long := strings.Repeat("x", 65)
	ok64 := strings.Repeat("x", 64)
	nest := func(n int) string { // n nested levels under desired
		return `{"state":{"desired":` + strings.Repeat(`{"k":`, n) + `1` + strings.Repeat(`}`, n) + `}}`
	}
	tests := []struct {
		name, req string
		code      int
		want      string // rejected document; "" = accepted
	}{
		{"invalid JSON", `{"state":`, 400, `{"code":400,"message":"Payload contains invalid json"}`},
		{"not an object", `[1,2]`, 400, `{"code":400,"message":"Payload contains invalid json"}`},
		{"empty payload", ``, 400, `{"code":400,"message":"Payload contains invalid json"}`},
		{"trailing garbage", `{"state":{}} x`, 400, `{"code":400,"message":"Payload contains invalid json"}`},
		{"invalid UTF-8", "{\"state\":{\"reported\":{\"a\":\"\xff\"}}}", 415, `{"code":415,"message":"Unsupported documented encoding; supported encoding is UTF-8"}`},
		{"missing state echoes token", `{"clientToken":"empty"}`, 400, `{"code":400,"message":"Missing required node: state","clientToken":"empty"}`},
		{"state not an object", `{"state":"x","clientToken":"c"}`, 400, `{"code":400,"message":"State node must be an object","clientToken":"c"}`},
		{"state array", `{"state":[]}`, 400, `{"code":400,"message":"State node must be an object"}`},
		{"desired not an object", `{"state":{"desired":5}}`, 400, `{"code":400,"message":"Desired node must be an object"}`},
		{"reported not an object", `{"state":{"reported":"on"}}`, 400, `{"code":400,"message":"Reported node must be an object"}`},
		{"delta node", `{"state":{"delta":{"a":1}},"clientToken":"c"}`, 400, `{"code":400,"message":"State contains an invalid node: 'delta'","clientToken":"c"}`},
		{"unknown node", `{"state":{"desired":{},"foo":1}}`, 400, `{"code":400,"message":"State contains an invalid node: 'foo'"}`},
		{"clientToken over 64 bytes", `{"state":{},"clientToken":"` + long + `"}`, 400, `{"code":400,"message":"Invalid clientToken"}`},
		{"clientToken of 64 bytes", `{"state":{},"clientToken":"` + ok64 + `"}`, 0, ""},
		{"clientToken not a string", `{"state":{},"clientToken":5}`, 400, `{"code":400,"message":"Invalid clientToken"}`},
		{"version a string", `{"state":{},"version":"1"}`, 400, `{"code":400,"message":"Invalid version"}`},
		{"version fractional", `{"state":{},"version":1.5,"clientToken":"c"}`, 400, `{"code":400,"message":"Invalid version","clientToken":"c"}`},
		{"depth 6 accepted", nest(6), 0, ""},
		{"depth 7 rejected", nest(7), 400, `{"code":400,"message":"JSON contains too many levels of nesting; maximum is 6"}`},
		{"array counts as a level", `{"state":{"reported":{"1":{"2":{"3":{"4":{"5":{"6":[1]}}}}}}}}`, 400, `{"code":400,"message":"JSON contains too many levels of nesting; maximum is 6"}`},
		{"empty object at level 6", `{"state":{"reported":{"1":{"2":{"3":{"4":{"5":{"6":{}}}}}}}}}`, 0, ""},
		{"null in array", `{"state":{"desired":{"c":[null,"RED","GREEN"]}}}`, 400, `{"code":400,"message":"Invalid JSON: arrays must not contain null values"}`},
		{"null nested in array", `{"state":{"desired":{"c":[{"a":null}]}}}`, 400, `{"code":400,"message":"Invalid JSON: arrays must not contain null values"}`},
		{"document over 8 KB", `{"state":{"reported":{"s":"` + strings.Repeat("a", 8192) + `"}}}`, 413, `{"code":413,"message":"The payload exceeds the maximum size allowed"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := New(Options{}).Handle(classic, OpUpdate, nil, []byte(tt.req), time.Unix(T0, 0))
			if r.Code != tt.code {
				t.Fatalf("code %d, want %d: %s", r.Code, tt.code, dump(r.Messages))
			}
			if tt.code == 0 {
				if r.Next.Version() != 1 {
					t.Fatalf("accepted but version %d", r.Next.Version())
				}
				return
			}
			if len(r.Messages) != 1 || r.Messages[0].Topic != "$aws/things/thing1/shadow/update/rejected" {
				t.Fatalf("want one rejected message, got %s", dump(r.Messages))
			}
			jsonEq(t, "rejected", r.Messages[0].Payload, tt.want)
			if r.Next != nil {
				t.Fatal("rejected update created a shadow")
			}
		})
	}
}

func TestSizeLimitIsOnMergedDocument(t *testing.T) {
	half := strings.Repeat("a", 4100)
	e := New(Options{})
	r1 := e.Handle(classic, OpUpdate, nil, []byte(`{"state":{"desired":{"a":"`+half+`"}}}`), time.Unix(T0, 0))
	if r1.Code != 0 {
		t.Fatalf("first half rejected: %d", r1.Code)
	}
	// Each request is small; together desired+reported exceed 8192 bytes.
	r2 := e.Handle(classic, OpUpdate, r1.Next, []byte(`{"state":{"reported":{"a":"`+half+`"}}}`), time.Unix(T0, 0))
	if r2.Code != 413 || r2.Next != r1.Next {
		t.Fatalf("code %d, want 413 and no change", r2.Code)
	}
	// Deleting brings it back under: accepted.
	r3 := e.Handle(classic, OpUpdate, r1.Next, []byte(`{"state":{"desired":{"a":null},"reported":{"a":"`+half+`"}}}`), time.Unix(T0, 0))
	if r3.Code != 0 {
		t.Fatalf("code %d, want accepted", r3.Code)
	}
	// The boundary: exactly the limit is accepted, one more byte is not.
	small := New(Options{Limits: Limits{MaxDocumentBytes: 20}})
	for _, tc := range []struct {
		doc  string // compact {"s":"..."} is 8 bytes + len
		code int
	}{{`{"s":"` + strings.Repeat("b", 12) + `"}`, 0}, {`{"s":"` + strings.Repeat("b", 13) + `"}`, 413}} {
		r := small.Handle(classic, OpUpdate, nil, []byte(`{"state":{"reported":`+tc.doc+`}}`), time.Unix(T0, 0))
		if r.Code != tc.code {
			t.Fatalf("%s: code %d, want %d", tc.doc, r.Code, tc.code)
		}
	}
}

func TestConfigurableLimits(t *testing.T) {
	e := New(Options{Limits: Limits{MaxDepth: 2, MaxClientTokenBytes: 4}})
	for _, tc := range []struct {
		req  string
		code int
	}{
		{`{"state":{"reported":{"a":{"b":1}}}}`, 0},
		{`{"state":{"reported":{"a":{"b":{"c":1}}}}}`, 400},
		{`{"state":{},"clientToken":"abcd"}`, 0},
		{`{"state":{},"clientToken":"abcde"}`, 400},
	} {
		if r := e.Handle(classic, OpUpdate, nil, []byte(tc.req), time.Unix(T0, 0)); r.Code != tc.code {
			t.Errorf("%s: code %d, want %d", tc.req, r.Code, tc.code)
		}
	}
	if msg := string(e.Handle(classic, OpUpdate, nil, []byte(`{"state":{"reported":{"a":{"b":{"c":1}}}}}`), time.Unix(T0, 0)).Messages[0].Payload); !strings.Contains(msg, "maximum is 2") {
		t.Errorf("depth message does not state the configured limit: %s", msg)
	}
}

func TestGetDeleteTokens(t *testing.T) {
	e := New(Options{})
	r := e.Handle(classic, OpUpdate, nil, []byte(`{"state":{"reported":{"a":1}}}`), time.Unix(T0, 0))
	cur := r.Next
	for _, tc := range []struct {
		name, payload, want string
		code                int
	}{
		{"empty payload: no token", ``, `{"state":{"reported":{"a":1}},"metadata":{"reported":{"a":{"timestamp":$T}}},"version":1,"timestamp":$T}`, 0},
		{"token echoed", `{"clientToken":"abc"}`, `{"state":{"reported":{"a":1}},"metadata":{"reported":{"a":{"timestamp":$T}}},"version":1,"timestamp":$T,"clientToken":"abc"}`, 0},
		{"content otherwise ignored", `not json`, `{"state":{"reported":{"a":1}},"metadata":{"reported":{"a":{"timestamp":$T}}},"version":1,"timestamp":$T}`, 0},
		{"token too long", `{"clientToken":"` + strings.Repeat("y", 65) + `"}`, `{"code":400,"message":"Invalid clientToken"}`, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.Handle(classic, OpGet, cur, []byte(tc.payload), time.Unix(T0, 0))
			if r.Code != tc.code {
				t.Fatalf("code %d", r.Code)
			}
			jsonEq(t, "get", r.Messages[0].Payload, sub(tc.want))
		})
	}
	// Reject (used by the service for 429/500) echoes a valid token.
	rj := e.Reject(classic, OpUpdate, []byte(`{"state":{},"clientToken":"q"}`), 429, "Too Many Requests")
	if rj.Code != 429 || rj.Messages[0].Topic != "$aws/things/thing1/shadow/update/rejected" {
		t.Fatalf("reject: %+v", rj)
	}
	jsonEq(t, "reject", rj.Messages[0].Payload, `{"code":429,"message":"Too Many Requests","clientToken":"q"}`)
}

func TestParseTopic(t *testing.T) {
	long := strings.Repeat("a", 128)
	for _, tc := range []struct {
		topic string
		key   Key
		op    Op
		ok    bool
	}{
		{"$aws/things/thing1/shadow/update", Key{Thing: "thing1"}, OpUpdate, true},
		{"$aws/things/t:1_-A/shadow/get", Key{Thing: "t:1_-A"}, OpGet, true},
		{"$aws/things/t/shadow/delete", Key{Thing: "t"}, OpDelete, true},
		{"$aws/things/t/shadow/name/n-1/update", Key{Thing: "t", Name: "n-1"}, OpUpdate, true},
		{"$aws/things/" + long + "/shadow/get", Key{Thing: long}, OpGet, true},
		{"$aws/things/" + long + "a/shadow/get", Key{}, "", false},
		{"$aws/things/t/shadow/name/" + strings.Repeat("n", 64) + "/get", Key{Thing: "t", Name: strings.Repeat("n", 64)}, OpGet, true},
		{"$aws/things/t/shadow/name/" + strings.Repeat("n", 65) + "/get", Key{}, "", false},
		{"$aws/things/t.x/shadow/get", Key{}, "", false},
		{"$aws/things/t/shadow/name/a$b/get", Key{}, "", false},
		{"$aws/things//shadow/get", Key{}, "", false},
		{"$aws/things/t/shadow/name//get", Key{}, "", false},
		{"$aws/things/t/shadow/update/accepted", Key{}, "", false},
		{"$aws/things/t/shadow/update/delta", Key{}, "", false},
		{"$aws/things/t/shadow/list", Key{}, "", false},
		{"$aws/things/t/shadow/name/n/update/documents", Key{}, "", false},
		{"things/t/shadow/get", Key{}, "", false},
		{"$aws/things/t/jobs/get", Key{}, "", false},
	} {
		k, op, ok := ParseTopic(tc.topic)
		if k != tc.key || op != tc.op || ok != tc.ok {
			t.Errorf("ParseTopic(%q) = %+v %q %v, want %+v %q %v", tc.topic, k, op, ok, tc.key, tc.op, tc.ok)
		}
		if ok && k.RequestTopic(op) != tc.topic {
			t.Errorf("RequestTopic round trip: %q", k.RequestTopic(op))
		}
	}
}

func TestPersistRoundTrip(t *testing.T) {
	e := New(Options{})
	var cur *Shadow
	for i, u := range []string{
		`{"state":{"desired":{"timestamp":{"timestamp":1},"l":[{"a":1},2]},"reported":{"x":1.0}}}`,
		`{"state":{"reported":{"timestamp":5}}}`,
	} {
		cur = e.Handle(classic, OpUpdate, cur, []byte(u), time.Unix(T0+int64(i), 0)).Next
	}
	b, err := cur.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var back Shadow
	if err := back.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	g1 := e.Handle(classic, OpGet, cur, nil, time.Unix(T0+9, 0)).Messages[0].Payload
	g2 := e.Handle(classic, OpGet, &back, nil, time.Unix(T0+9, 0)).Messages[0].Payload
	if !bytes.Equal(g1, g2) {
		t.Fatalf("reloaded shadow differs:\n %s\n %s", g1, g2)
	}
	// Continue from the reloaded one: metadata of untouched keys survives.
	r := e.Handle(classic, OpUpdate, &back, []byte(`{"state":{"desired":{"l":null}}}`), time.Unix(T0+9, 0))
	g3 := e.Handle(classic, OpGet, r.Next, nil, time.Unix(T0+9, 0)).Messages[0].Payload
	jsonEq(t, "after reload", g3, sub(`{"state":{"desired":{"timestamp":{"timestamp":1}},"reported":{"x":1.0,"timestamp":5},"delta":{"timestamp":{"timestamp":1}}},
	  "metadata":{"desired":{"timestamp":{"timestamp":{"timestamp":$T}}},"reported":{"x":{"timestamp":$T},"timestamp":{"timestamp":$T1}}},"version":3,"timestamp":$T9}`))

	// A deletion record round-trips too, and keeps the re-create version.
	del := e.Handle(classic, OpDelete, r.Next, nil, time.Unix(T0+10, 0)).Next
	b, _ = del.MarshalBinary()
	var delBack Shadow
	if err := delBack.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if delBack.Exists() || delBack.Version() != 3 {
		t.Fatalf("deletion record: exists=%v version=%d", delBack.Exists(), delBack.Version())
	}
	if v := e.Handle(classic, OpUpdate, &delBack, []byte(`{"state":{}}`), time.Unix(T0+11, 0)).Next.Version(); v != 5 {
		t.Fatalf("re-created at %d, want 5", v)
	}
	if err := new(Shadow).UnmarshalBinary([]byte("garbage")); err == nil {
		t.Fatal("garbage decoded without error")
	}
}

func TestInputNotMutated(t *testing.T) {
	e := New(Options{})
	cur := e.Handle(classic, OpUpdate, nil, []byte(`{"state":{"desired":{"o":{"a":1,"b":2}},"reported":{"o":{"a":1}}}}`), time.Unix(T0, 0)).Next
	before, _ := cur.MarshalBinary()
	e.Handle(classic, OpUpdate, cur, []byte(`{"state":{"desired":{"o":{"a":null,"c":3}},"reported":null}}`), time.Unix(T0+1, 0))
	after, _ := cur.MarshalBinary()
	if !bytes.Equal(before, after) {
		t.Fatalf("Handle modified its input shadow:\n%s\n%s", before, after)
	}
}
