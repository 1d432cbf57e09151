package console

import (
	"encoding/json"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/pinshadow/pinshadow/agent"
)

// EventView is an agent.Event as the page sees it: generic over kinds, so a
// kind added to the agent later is shown without a change here.
type EventView struct {
	Seq       uint64    `json:"seq"`
	Time      time.Time `json:"time"`
	Kind      string    `json:"kind"`
	Shadow    string    `json:"shadow,omitempty"`
	Key       string    `json:"key,omitempty"`
	Device    string    `json:"device,omitempty"`
	Property  string    `json:"property,omitempty"`
	Value     any       `json:"value,omitempty"`
	Status    string    `json:"status,omitempty"`
	Message   string    `json:"message,omitempty"`
	LatencyMS float64   `json:"latency_ms,omitempty"`
}

// Point is one sensor reading of a history: unix milliseconds and value.
type Point [2]float64

// hub keeps the recent events and sensor histories and fans events out to
// the event streams. Publish never blocks: a stream that falls behind
// loses events and is told to resynchronise from a snapshot.
type hub struct {
	mu      sync.Mutex
	seq     uint64
	recent  []EventView // ring, oldest first once full
	next    int
	limit   int
	history map[string][]Point
	hlimit  int
	subs    map[*sub]struct{}
}

type sub struct {
	c      chan EventView
	lagged bool // set under hub.mu when an event was dropped
}

func newHub(recent, history int) *hub {
	return &hub{limit: recent, hlimit: history, history: map[string][]Point{}, subs: map[*sub]struct{}{}}
}

func (h *hub) publish(e agent.Event) {
	// One per loop iteration, at least every second: nothing to show.
	if e.Kind == agent.EventIteration {
		return
	}
	v := EventView{Time: e.Time, Kind: string(e.Kind), Shadow: e.Shadow, Key: e.Key, Device: e.Device,
		Property: e.Property, Value: jsonSafe(e.Value), Status: e.Status, Message: e.Message}
	if e.Latency > 0 {
		v.LatencyMS = float64(e.Latency.Microseconds()) / 1000
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seq++
	v.Seq = h.seq
	// Readings live in the histories: in the recent list they would push
	// out the rarer events a person is looking for.
	if e.Kind != agent.EventSensor {
		if len(h.recent) < h.limit {
			h.recent = append(h.recent, v)
		} else {
			h.recent[h.next] = v
			h.next = (h.next + 1) % h.limit
		}
	}
	if e.Kind == agent.EventSensor && e.Key != "" {
		if f, ok := number(e.Value); ok {
			pts := append(h.history[e.Key], Point{float64(e.Time.UnixMilli()), f})
			if len(pts) > h.hlimit {
				pts = append(pts[:0:0], pts[len(pts)-h.hlimit:]...)
			}
			h.history[e.Key] = pts
		}
	}
	for s := range h.subs {
		select {
		case s.c <- v:
		default:
			s.lagged = true
		}
	}
}

// events returns the recent events, oldest first.
func (h *hub) events() []EventView {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]EventView, 0, len(h.recent))
	out = append(out, h.recent[h.next:]...)
	return append(out, h.recent[:h.next]...)
}

func (h *hub) historyOf(key string) []Point {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Point(nil), h.history[key]...)
}

func (h *hub) subscribe() *sub {
	s := &sub{c: make(chan EventView, 256)}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s
}

func (h *hub) unsubscribe(s *sub) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
}

// takeLag reports and clears whether s dropped events.
func (h *hub) takeLag(s *sub) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	l := s.lagged
	s.lagged = false
	return l
}

// number reads a sensor value as a float (bools as 0/1).
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, !math.IsNaN(x) && !math.IsInf(x, 0)
	case float32:
		return number(float64(x))
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		return f, err == nil
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

// jsonSafe replaces what encoding/json cannot encode (NaN, ±Inf, values
// that fail to marshal) by a string, so one odd value never breaks a
// stream.
func jsonSafe(v any) any {
	if f, ok := v.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	if v == nil {
		return nil
	}
	if _, err := json.Marshal(v); err != nil {
		return "(unencodable value)"
	}
	return v
}
