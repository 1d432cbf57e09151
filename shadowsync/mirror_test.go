package shadowsync

import "testing"

func TestDeltaGate(t *testing.T) {
	type msg struct {
		kind    string // "delta", "accepted", "get", "gone"
		version int64
		state   string // delta state, or update state for accepted
		deliver bool   // for deltas: expected decision
	}
	cases := []struct {
		name string
		msgs []msg
	}{
		{"delta sharing its version with an update reply is delivered", []msg{
			{kind: "get", version: 4, state: `{}`},
			{kind: "accepted", version: 5, state: `{"reported":{"x":1}}`},
			{kind: "delta", version: 5, state: `{"x":2}`, deliver: true},
		}},
		{"older delta is dropped", []msg{
			{kind: "delta", version: 7, state: `{"x":2}`, deliver: true},
			{kind: "delta", version: 6, state: `{"x":1}`, deliver: false},
		}},
		{"delta older than an update reply is dropped", []msg{
			{kind: "get", version: 4, state: `{}`},
			{kind: "accepted", version: 6, state: `{"reported":{"x":1}}`},
			{kind: "delta", version: 5, state: `{"x":2}`, deliver: false},
		}},
		{"duplicate (same version, same content) is dropped", []msg{
			{kind: "delta", version: 3, state: `{"x":2}`, deliver: true},
			{kind: "delta", version: 3, state: `{"x":2}`, deliver: false},
		}},
		{"same version, different content is delivered", []msg{
			{kind: "delta", version: 3, state: `{"x":2}`, deliver: true},
			{kind: "delta", version: 3, state: `{"x":2,"y":1}`, deliver: true},
		}},
		{"newer delta with the same content is delivered", []msg{
			{kind: "delta", version: 3, state: `{"x":2}`, deliver: true},
			{kind: "delta", version: 4, state: `{"x":2}`, deliver: true},
		}},
		{"versions restart after a delete", []msg{
			{kind: "delta", version: 9, state: `{"x":2}`, deliver: true},
			{kind: "gone"},
			{kind: "delta", version: 1, state: `{"x":2}`, deliver: true},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var m mirror
			for i, ms := range tc.msgs {
				switch ms.kind {
				case "delta":
					if got := m.onDelta(ms.version, obj(t, ms.state)); got != ms.deliver {
						t.Errorf("message %d: delta v%d %s delivered = %v, want %v", i, ms.version, ms.state, got, ms.deliver)
					}
				case "get":
					m.onDocument(ms.version, nil, nil, nil)
				case "accepted":
					st := obj(t, ms.state)
					r, has := st["reported"]
					rm, _ := r.(map[string]any)
					m.onAccepted(ms.version, update{hasReported: has, reported: rm})
				case "gone":
					m.onGone()
				}
			}
		})
	}
}

func TestMirrorFollowsUpdatesAndDeltas(t *testing.T) {
	var m mirror
	m.onDocument(3, obj(t, `{"led":"on","fan":1}`), obj(t, `{"led":"off","fan":1}`), obj(t, `{"led":"on"}`))
	if s := m.snapshot(); s.Version != 3 || s.InSync || js(s.Delta) != `{"led":"on"}` {
		t.Fatalf("after get: %+v", s)
	}
	m.onAccepted(4, update{hasReported: true, reported: obj(t, `{"led":"on"}`)})
	if s := m.snapshot(); s.Version != 4 || !s.InSync || s.Delta != nil || js(s.Reported) != `{"fan":1,"led":"on"}` {
		t.Fatalf("after reported led=on: %+v", s)
	}
	if m.needGet {
		t.Fatal("contiguous versions asked for a get")
	}
	m.onAccepted(6, update{hasDesired: true, desired: obj(t, `{"fan":2}`)})
	if s := m.snapshot(); s.Version != 6 || s.InSync || js(s.Delta) != `{"fan":2}` {
		t.Fatalf("after desired fan=2 at v6: %+v", s)
	}
	if !m.needGet {
		t.Error("a skipped version (5) did not ask for a get")
	}
	m.onAccepted(7, update{stateNull: true})
	if s := m.snapshot(); !s.InSync || s.Desired != nil || s.Reported != nil {
		t.Fatalf("after state null: %+v", s)
	}
	// A delta newer than the document patches desired.
	if !m.onDelta(8, obj(t, `{"fan":3}`)) {
		t.Fatal("newer delta not delivered")
	}
	if s := m.snapshot(); js(s.Desired) != `{"fan":3}` || s.InSync {
		t.Fatalf("after delta v8: %+v", s)
	}
	// A get answered before a newer delta arrived is out of date: it does
	// not overwrite the newer desired, and asks for another get.
	m.onDocument(7, nil, nil, nil)
	if s := m.snapshot(); js(s.Desired) != `{"fan":3}` || !m.needGet {
		t.Fatalf("after an overtaken get: %+v needGet=%v", s, m.needGet)
	}
	m.onDocument(8, obj(t, `{"fan":3}`), obj(t, `{"fan":3}`), nil)
	if s := m.snapshot(); !s.InSync || s.Version != 8 || m.needGet {
		t.Fatalf("after a current get: %+v needGet=%v", s, m.needGet)
	}
	m.onGone()
	if s := m.snapshot(); !s.Known || s.Exists || s.Version != 0 {
		t.Fatalf("after delete: %+v", s)
	}
}
