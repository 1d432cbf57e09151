package reconcile

import (
	"fmt"
	"sort"
	"time"

	"github.com/pinshadow/pinshadow/devices"
	"github.com/pinshadow/pinshadow/filter"
)

// Sensors is the reporter's pure core: for every ReportedKey its filter
// chain, its read schedule and its failures, and the coalesced reported
// patch built from the readings given to it. It does no I/O and reads no
// clock; it is not safe for concurrent use (the daemon's loop owns it).
//
// One loop iteration: Due(now) names the devices to read; the daemon reads
// each (devices.Device.Read) and hands the result to Read; then Patch()
// returns one reported patch per shadow covering every change since the
// last Patch, and Telemetry() the readings to stream. Next() says when to
// wake for the next read.
//
// Number readings go through the key's filters and rounding and are
// reported when the chain says so (deadband, throttle, heartbeat). Bool
// and enum readings (buttons, PIR, modes) are reported when they change. A
// failed read reports the device's keys as null with a fault status in
// reported._status.<key> (once per distinct error), retries after
// Backoff.Delay(consecutive failures) instead of the key's interval, and
// does not delay other devices; the first good reading afterwards is
// reported at once and the status removed.
type Sensors struct {
	keys    []sensorKey
	backoff filter.Backoff
	patch   map[string]map[string]any
	tele    []Telemetry
}

type sensorKey struct {
	k     ReportedKey
	chain *filter.Chain

	nextRead   time.Time // zero: read at the first Due
	failures   int
	failMsg    string // error currently reported ("" none)
	last       devices.Value
	hasLast    bool
	lastPub    time.Time
	hasLastPub bool
}

// Telemetry is one reading to publish to a telemetry topic (ReportedKey.
// Publish), unfiltered.
type Telemetry struct {
	Topic string
	QoS   byte
	Key   KeyPath
	Value any // bool, float64 or string
	At    time.Time
}

// NewSensors builds the reporter state for spec's reported keys. It fails
// when a key's filters are invalid (config validation should have caught
// it; the error names the key).
func NewSensors(spec *Spec, backoff filter.Backoff) (*Sensors, error) {
	s := &Sensors{backoff: backoff, patch: map[string]map[string]any{}}
	for _, k := range spec.Reported {
		chain, err := Chain(k)
		if err != nil {
			return nil, err
		}
		s.keys = append(s.keys, sensorKey{k: k, chain: chain})
	}
	return s, nil
}

// Chain builds the filter chain of a reported key from its Filters and
// Round.
func Chain(k ReportedKey) (*filter.Chain, error) {
	var steps []filter.Step
	for i, f := range k.Filters {
		var st filter.Step
		set := 0
		if f.Offset != nil {
			st, set = filter.Offset(*f.Offset), set+1
		}
		if f.Multiply != nil {
			st, set = filter.Multiply(*f.Multiply), set+1
		}
		if len(f.Calibrate) > 0 {
			pts := make([]filter.Point, len(f.Calibrate))
			for j, p := range f.Calibrate {
				pts[j] = filter.Point{From: p.From, To: p.To}
			}
			c, err := filter.Calibrate(pts)
			if err != nil {
				return nil, fmt.Errorf("reported key %s, filter %d: %w", k.Key, i+1, err)
			}
			st, set = c, set+1
		}
		if f.Clamp != nil {
			st, set = filter.Clamp(f.Clamp.Min, f.Clamp.Max), set+1
		}
		if f.Median != 0 {
			st, set = filter.Median(f.Median), set+1
		}
		if f.MovingAverage != 0 {
			st, set = filter.MovingAverage(f.MovingAverage), set+1
		}
		if f.Delta != nil {
			st, set = filter.Delta(*f.Delta), set+1
		}
		if f.Throttle != 0 {
			st, set = filter.Throttle(f.Throttle), set+1
		}
		if f.Heartbeat != 0 {
			st, set = filter.Heartbeat(f.Heartbeat), set+1
		}
		if set != 1 {
			return nil, fmt.Errorf("reported key %s, filter %d: %w: it sets %d kinds of filter; set exactly one per list item", k.Key, i+1, filter.ErrInvalid, set)
		}
		steps = append(steps, st)
	}
	c, err := filter.New(k.Round, steps...)
	if err != nil {
		return nil, fmt.Errorf("reported key %s: %w", k.Key, err)
	}
	return c, nil
}

// Due returns the devices (sorted, each once) with a key whose read is
// due at now.
func (s *Sensors) Due(now time.Time) []string {
	seen := map[string]bool{}
	var out []string
	for i := range s.keys {
		sk := &s.keys[i]
		if !now.Before(sk.nextRead) && !seen[sk.k.Device] {
			seen[sk.k.Device] = true
			out = append(out, sk.k.Device)
		}
	}
	sort.Strings(out)
	return out
}

// Next returns the earliest time a read falls due (zero: no sensors).
func (s *Sensors) Next() time.Time {
	var t time.Time
	for i := range s.keys {
		if i == 0 || s.keys[i].nextRead.Before(t) {
			t = s.keys[i].nextRead
		}
	}
	return t
}

// Read records the result of reading device at now: its readings, or the
// error the read returned.
func (s *Sensors) Read(device string, r devices.Readings, err error, now time.Time) {
	for i := range s.keys {
		sk := &s.keys[i]
		if sk.k.Device != device {
			continue
		}
		if err != nil {
			s.fail(sk, fmt.Sprintf("reading %s failed: %v", device, err), now)
			continue
		}
		v, ok := r[sk.k.Property]
		if !ok || v.Type() == 0 {
			s.fail(sk, fmt.Sprintf("%s returned no value for %q (the sensor has no valid measurement yet)", device, sk.k.Property), now)
			continue
		}
		s.good(sk, v, now)
	}
}

func (s *Sensors) fail(sk *sensorKey, msg string, now time.Time) {
	sk.failures++
	sk.nextRead = now.Add(s.backoff.Delay(sk.failures))
	sk.chain.Fail()
	sk.hasLast = false
	if sk.failMsg == msg {
		return // already reported
	}
	sk.failMsg = msg
	s.put(sk.k.Key, nil)
	r := Result{Status: Fault, Code: CodeFault, Message: msg + "; retrying with backoff", At: now}
	d := r.Doc()
	delete(d, "version") // a sensor answers no desired version
	s.putStatus(sk.k.Key, d)
}

func (s *Sensors) good(sk *sensorKey, v devices.Value, now time.Time) {
	interval := sk.k.Interval
	if interval <= 0 {
		interval = time.Minute
	}
	sk.nextRead = now.Add(interval)
	sk.failures = 0
	recovered := sk.failMsg != ""
	if recovered {
		sk.failMsg = ""
		s.putStatus(sk.k.Key, nil)
	}
	if p := sk.k.Publish; p != nil && (!sk.hasLastPub || now.Sub(sk.lastPub) >= p.Interval) {
		sk.lastPub, sk.hasLastPub = now, true
		s.tele = append(s.tele, Telemetry{Topic: p.Topic, QoS: p.QoS, Key: sk.k.Key, Value: v.Any(), At: now})
	}
	if v.Type() != devices.TypeNumber {
		if !sk.hasLast || v != sk.last {
			sk.last, sk.hasLast = v, true
			s.put(sk.k.Key, v.Any())
		}
		return
	}
	if out, report := sk.chain.Push(v.Number(), now); report {
		s.put(sk.k.Key, out)
	}
}

func (s *Sensors) put(k KeyPath, v any) {
	if s.patch[k.Shadow] == nil {
		s.patch[k.Shadow] = map[string]any{}
	}
	setPath(s.patch[k.Shadow], k.Path, v)
}

func (s *Sensors) putStatus(k KeyPath, v any) {
	if s.patch[k.Shadow] == nil {
		s.patch[k.Shadow] = map[string]any{}
	}
	st, ok := s.patch[k.Shadow][StatusKey].(map[string]any)
	if !ok {
		st = map[string]any{}
		s.patch[k.Shadow][StatusKey] = st
	}
	st[k.Path] = v
}

// Patch returns the coalesced reported patch per shadow for everything
// that changed since the last call (nil when nothing did), and starts a
// new one.
func (s *Sensors) Patch() map[string]map[string]any {
	if len(s.patch) == 0 {
		return nil
	}
	p := s.patch
	s.patch = map[string]map[string]any{}
	return p
}

// Telemetry returns the readings to publish since the last call.
func (s *Sensors) Telemetry() []Telemetry {
	t := s.tele
	s.tele = nil
	return t
}
