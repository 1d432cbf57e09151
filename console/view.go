package console

import (
	"net/url"
	"time"

	"github.com/pinshadow/pinshadow/agent"
	"github.com/pinshadow/pinshadow/devices"
)

// Snapshot is what GET /api/status returns and the "status" stream event
// carries. It is built field by field from the agent's status: nothing of
// the configuration (certificates, keys, credentials, paths) is copied.
type Snapshot struct {
	Mode     string    `json:"mode"`
	Thing    string    `json:"thing"`
	Write    bool      `json:"write"`
	Attached bool      `json:"attached"`
	Running  bool      `json:"running"`
	Ready    bool      `json:"ready"`
	Now      time.Time `json:"now"`
	// Connection is the MQTT connection's state.
	Connection Connection             `json:"connection"`
	LastError  string                 `json:"last_error,omitempty"`
	LastAt     time.Time              `json:"last_error_at,omitzero"`
	Shadows    []agent.ShadowDocument `json:"shadows"`
	Keys       []Key                  `json:"keys"`
	Sensors    []Sensor               `json:"sensors"`
	// CanSetDesired and Faults say what the page may offer (both need
	// Write).
	CanSetDesired bool    `json:"can_set_desired"`
	Faults        []Fault `json:"faults,omitempty"`
	// Full is set on the first snapshot of a stream (and after it fell
	// behind): Events and the sensors' History are then complete and
	// replace what the page has.
	Full bool `json:"full"`
	// Events are the recent events, oldest first (full snapshots only).
	Events []EventView `json:"events,omitempty"`
}

// Connection is the connection part of a Snapshot.
type Connection struct {
	State     string    `json:"state"`
	Endpoint  string    `json:"endpoint"`
	Since     time.Time `json:"since,omitzero"`
	Connects  uint64    `json:"connects"`
	Drops     uint64    `json:"drops"`
	LastError string    `json:"last_error,omitempty"`
	LastAt    time.Time `json:"last_error_at,omitzero"`
	Queued    int       `json:"queued"`
}

// Key is one desired key: its contract, last result and the output.
type Key struct {
	Key      string `json:"key"` // "path" or "shadow/path"
	Shadow   string `json:"shadow"`
	Path     string `json:"path"`
	Device   string `json:"device"`
	Property string `json:"property"`
	// Type is bool, number or enum; Unit, Min/Max and Choices the contract.
	Type    string   `json:"type,omitempty"`
	Unit    string   `json:"unit,omitempty"`
	Min     *float64 `json:"min,omitempty"`
	Max     *float64 `json:"max,omitempty"`
	Choices []string `json:"choices,omitempty"`
	// Value is the last applied shadow value, Hardware what the output
	// holds (level or duty, device terms).
	Value     any       `json:"value,omitempty"`
	Hardware  any       `json:"hardware,omitempty"`
	Status    string    `json:"status,omitempty"`
	Message   string    `json:"message,omitempty"`
	At        time.Time `json:"at,omitzero"`
	LatencyMS float64   `json:"latency_ms,omitempty"`
}

// Sensor is one reported key: its last value and recent history.
type Sensor struct {
	Key      string    `json:"key"`
	Device   string    `json:"device"`
	Property string    `json:"property"`
	Value    any       `json:"value,omitempty"`
	Error    string    `json:"error,omitempty"`
	At       time.Time `json:"at,omitzero"`
	History  []Point   `json:"history,omitempty"`
}

// snapshot builds the page's view; full adds histories and recent events.
func (s *Server) snapshot(full bool) Snapshot {
	src := s.source()
	snap := Snapshot{Mode: src.Mode, Write: s.o.Write, Now: time.Now(), Shadows: []agent.ShadowDocument{}, Keys: []Key{}, Sensors: []Sensor{}}
	if full {
		snap.Full, snap.Events = true, s.hub.events()
	}
	if src.Agent == nil {
		snap.Connection.State = "starting"
		return snap
	}
	snap.Attached = true
	st := src.Agent.Status()
	snap.Thing, snap.Running, snap.Ready, snap.Now = st.Thing, st.Running, st.Ready, st.Now
	snap.LastError, snap.LastAt = st.LastError, st.LastErrorAt
	c := st.Connection
	snap.Connection = Connection{State: c.State, Endpoint: safeEndpoint(c.Endpoint), Since: c.Since, Connects: c.Connects,
		Drops: c.Drops, LastError: c.LastError, LastAt: c.LastErrorAt, Queued: c.Queued}
	if docs := src.Agent.ShadowDocuments(); docs != nil {
		snap.Shadows = docs
	}
	results := map[string]agent.KeyStatus{}
	for _, k := range st.Keys {
		results[k.Key] = k
	}
	if cfg := src.Agent.Config(); cfg != nil {
		spec := cfg.Spec()
		for _, d := range spec.Desired {
			k := Key{Key: d.Key.String(), Shadow: d.Key.Shadow, Path: d.Key.Path, Device: d.Device, Property: d.Property,
				Unit: d.Unit, Choices: d.Choices}
			if d.Type != 0 {
				k.Type = d.Type.String()
			}
			if d.Type == devices.TypeNumber && d.Range != nil {
				lo, hi := d.Range.Min, d.Range.Max
				k.Min, k.Max = &lo, &hi
			}
			if r, ok := results[k.Key]; ok {
				k.Value, k.Hardware, k.Status, k.Message, k.At = jsonSafe(r.Value), jsonSafe(r.Hardware), r.Status, r.Message, r.At
				k.LatencyMS = float64(r.Latency.Microseconds()) / 1000
			}
			snap.Keys = append(snap.Keys, k)
		}
	}
	for _, r := range st.Sensors {
		v := Sensor{Key: r.Key, Device: r.Device, Property: r.Property, Value: jsonSafe(r.Value), Error: r.Error, At: r.At}
		if full {
			v.History = s.hub.historyOf(r.Key)
		}
		snap.Sensors = append(snap.Sensors, v)
	}
	snap.CanSetDesired = s.o.Write && src.Desired != nil
	if s.o.Write && src.Faults != nil {
		snap.Faults = src.Faults.List()
	}
	return snap
}

// safeEndpoint keeps the scheme, host and port of an endpoint and drops
// anything that could carry a credential (user info, query, path).
func safeEndpoint(e string) string {
	u, err := url.Parse(e)
	if err != nil || u.Host == "" {
		return "(endpoint not shown)"
	}
	return u.Scheme + "://" + u.Host
}
