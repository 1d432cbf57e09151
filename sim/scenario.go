package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/pinshadow/pinshadow/internal/suggest"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pinshadow/pinshadow/config"
	"github.com/pinshadow/pinshadow/devices/gpio"
)

// Scenario is what the cloud side and the world do, and when: a list of
// steps, in time order.
type Scenario struct {
	// File names the scenario in messages.
	File string
	// Steps are sorted by At (steps at the same time keep file order).
	Steps []Step
}

// End returns the time of the last step plus what it lasts (a fault's or a
// press's duration), so a run knows when the scenario is over.
func (s *Scenario) End() time.Duration {
	var end time.Duration
	for _, st := range s.Steps {
		e := st.At + st.For
		if e > end {
			end = e
		}
	}
	return end
}

// StepKind is what a step does.
type StepKind string

// Step kinds, named as in the scenario file.
const (
	// StepDesired updates desired state from the cloud side.
	StepDesired StepKind = "desired"
	// StepPress presses an input (a button) for For, then releases it.
	StepPress StepKind = "press"
	// StepFault makes an I2C device NACK (or time out) for For.
	StepFault StepKind = "fault"
	// StepRestartBroker stops the local cloud and starts it again on the
	// same address (the agent sees a disconnect and reconnects).
	StepRestartBroker StepKind = "restart_broker"
	// StepAmbient changes the simulated ambient temperature.
	StepAmbient StepKind = "ambient"
	// StepSay prints a line of narration.
	StepSay StepKind = "say"
	// StepJob creates an AWS IoT job for the device in the local cloud's
	// Jobs service (the agent runs it; the account follows its status).
	StepJob StepKind = "job"
)

// stepKinds lists the action keys in the order they are documented.
var stepKinds = []StepKind{StepDesired, StepPress, StepFault, StepRestartBroker, StepAmbient, StepSay, StepJob}

// Step is one timed action of a scenario.
type Step struct {
	// At is the time from the start of the run.
	At time.Duration
	// Kind says which of the fields below apply.
	Kind StepKind
	// Pos is where the step starts in the file.
	Pos config.Position

	// Desired is the desired patch (StepDesired), JSON-ready; Shadow is the
	// named shadow it goes to ("" = classic).
	Desired map[string]any
	Shadow  string
	// Device is the input pressed (StepPress) or the I2C device failing
	// (StepFault).
	Device string
	// Fault is "i2c_nack" or "i2c_timeout" (StepFault).
	Fault string
	// For is how long a press or a fault lasts.
	For time.Duration
	// Ambient is the new ambient temperature in °C (StepAmbient).
	Ambient float64
	// Say is the narration (StepSay).
	Say string
	// Job is the job document (StepJob), JSON-ready, with its "type";
	// JobID is the job's ID, made up from the step's position in the
	// scenario ("sim-job-1" for the first job step).
	Job   map[string]any
	JobID string
}

// Describe renders the step in a few words for the live account.
func (s Step) Describe() string {
	switch s.Kind {
	case StepDesired:
		where := ""
		if s.Shadow != "" {
			where = " (shadow " + s.Shadow + ")"
		}
		return "desired " + formatPatch(s.Desired) + where
	case StepPress:
		return fmt.Sprintf("press %s for %s", s.Device, s.For)
	case StepFault:
		return fmt.Sprintf("%s on %s for %s", s.Fault, s.Device, s.For)
	case StepRestartBroker:
		return "restart the broker"
	case StepAmbient:
		return fmt.Sprintf("ambient temperature %.1f °C", s.Ambient)
	case StepSay:
		return s.Say
	case StepJob:
		return fmt.Sprintf("job %s: %v %s", s.JobID, s.Job["type"], formatPatch(withoutType(s.Job)))
	}
	return string(s.Kind)
}

// Fault names a scenario may use.
const (
	FaultI2CNACK    = "i2c_nack"
	FaultI2CTimeout = "i2c_timeout"
)

// DefaultPress is how long a press lasts when the step gives no "for".
const DefaultPress = 300 * time.Millisecond

// ParseScenario reads a scenario: a YAML list of steps, each a mapping with
// "at" (a duration from the start) and one action:
//
//	# one step of each kind
//	- {at: 2s, desired: {fan: 40}}                   # optional: shadow: NAME
//	- {at: 5s, press: button}                        # optional: for: 300ms
//	- {at: 8s, fault: {i2c_nack: climate, for: 3s}}  # or i2c_timeout
//	- {at: 10s, restart_broker: true}
//	- {at: 12s, ambient: 5}                          # °C
//	- {at: 12s, say: "a window opens"}
//	- {at: 15s, job: {type: set-desired, desired: {fan: 20}}}  # an AWS IoT job
//
// Every problem is reported at once, as config.Errors with file:line:column.
// Device names are checked against a configuration by Check.
func ParseScenario(file string, data []byte) (*Scenario, error) {
	p := &parser{file: file}
	sc := &Scenario{File: file}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.add(1, 1, "the scenario is empty; want a list of steps such as - {at: 2s, desired: {fan: 40}}")
			return nil, p.errs
		}
		line := 1
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if n, ok := yamlErrLine(msg); ok {
			line = n
			msg = strings.TrimPrefix(msg, fmt.Sprintf("line %d: ", n))
		}
		p.add(line, 0, "not valid YAML: "+msg)
		return nil, p.errs
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.SequenceNode {
		p.addNode(root, "a scenario is a list of steps, e.g. - {at: 2s, desired: {fan: 40}}")
		return nil, p.errs
	}
	jobs := 0
	for _, n := range root.Content {
		if st, ok := p.step(n); ok {
			if st.Kind == StepJob {
				jobs++
				st.JobID = fmt.Sprintf("sim-job-%d", jobs)
			}
			sc.Steps = append(sc.Steps, st)
		}
	}
	if len(p.errs) > 0 {
		sort.SliceStable(p.errs, func(i, j int) bool {
			a, b := p.errs[i].Pos, p.errs[j].Pos
			if a.Line != b.Line {
				return a.Line < b.Line
			}
			return a.Col < b.Col
		})
		return nil, p.errs
	}
	sort.SliceStable(sc.Steps, func(i, j int) bool { return sc.Steps[i].At < sc.Steps[j].At })
	return sc, nil
}

// yamlErrLine takes the line out of a yaml.v3 syntax error ("yaml: line 3: …").
func yamlErrLine(msg string) (int, bool) {
	var n int
	if _, err := fmt.Sscanf(msg, "line %d:", &n); err == nil && n > 0 {
		return n, true
	}
	return 0, false
}

type parser struct {
	file string
	errs config.Errors
}

func (p *parser) add(line, col int, msg string) {
	p.errs = append(p.errs, config.Problem{Pos: config.Position{File: p.file, Line: line, Col: col}, Msg: msg})
}

func (p *parser) addNode(n *yaml.Node, format string, args ...any) {
	p.add(n.Line, n.Column, fmt.Sprintf(format, args...))
}

func (p *parser) pos(n *yaml.Node) config.Position {
	return config.Position{File: p.file, Line: n.Line, Col: n.Column}
}

// stepKeys are every key a step mapping may hold.
var stepKeys = []string{"at", "desired", "shadow", "press", "for", "fault", "restart_broker", "ambient", "say", "job"}

func (p *parser) step(n *yaml.Node) (Step, bool) {
	st := Step{Pos: p.pos(n)}
	if n.Kind != yaml.MappingNode {
		p.addNode(n, "a step is a mapping such as {at: 2s, desired: {fan: 40}}")
		return st, false
	}
	ok, unknown := true, false
	fields := map[string]*yaml.Node{}
	keyOf := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !slices.Contains(stepKeys, k.Value) {
			msg := fmt.Sprintf("unknown step key %q; allowed: %s", k.Value, strings.Join(stepKeys, ", "))
			if s := suggest.Closest(k.Value, stepKeys); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			}
			p.addNode(k, "%s", msg)
			ok, unknown = false, true
			continue
		}
		if _, dup := fields[k.Value]; dup {
			p.addNode(k, "%q is given twice in this step", k.Value)
			ok = false
			continue
		}
		fields[k.Value] = v
		keyOf[k.Value] = k
	}
	if at, has := fields["at"]; has {
		d, good := p.duration(at, "at")
		ok = ok && good
		st.At = d
	} else {
		p.addNode(n, "step without \"at\"; give the time from the start, e.g. at: 2s")
		ok = false
	}
	var kinds []StepKind
	for _, k := range stepKinds {
		if _, has := fields[string(k)]; has {
			kinds = append(kinds, k)
		}
	}
	switch len(kinds) {
	case 0:
		if !unknown { // else the unknown key, reported already, was meant as the action
			p.addNode(n, "step without an action; give one of %s", joinKinds(stepKinds))
		}
		return st, false
	case 1:
	default:
		p.addNode(keyOf[string(kinds[1])], "one action per step: %q and %q are in the same step; split them into two steps with the same at", kinds[0], kinds[1])
		return st, false
	}
	st.Kind = kinds[0]
	v := fields[string(st.Kind)]
	if s, has := fields["shadow"]; has && st.Kind != StepDesired {
		p.addNode(keyOf["shadow"], "\"shadow\" goes with desired only")
		ok = false
	} else if has {
		if s.Kind != yaml.ScalarNode || s.Value == "" {
			p.addNode(s, "shadow: want the name of a named shadow")
			ok = false
		}
		st.Shadow = s.Value
	}
	if f, has := fields["for"]; has {
		if st.Kind != StepPress {
			p.addNode(keyOf["for"], "\"for\" goes with press here (a fault takes it inside: fault: {i2c_nack: DEVICE, for: 3s})")
			ok = false
		} else {
			d, good := p.duration(f, "for")
			ok = ok && good
			st.For = d
		}
	}
	switch st.Kind {
	case StepDesired:
		if v.Kind != yaml.MappingNode || len(v.Content) == 0 {
			p.addNode(v, "desired: want a mapping of shadow keys to values, e.g. {fan: 40}")
			return st, false
		}
		var m map[string]any
		if err := v.Decode(&m); err != nil {
			p.addNode(v, "desired: %v", err)
			return st, false
		}
		st.Desired = m
	case StepPress:
		if v.Kind != yaml.ScalarNode || v.Value == "" {
			p.addNode(v, "press: want a device id, e.g. press: button")
			return st, false
		}
		st.Device = v.Value
		if st.For == 0 {
			st.For = DefaultPress
		}
	case StepFault:
		ok = p.fault(v, &st) && ok
	case StepRestartBroker:
		var b bool
		if v.Kind != yaml.ScalarNode || v.Decode(&b) != nil || !b {
			p.addNode(v, "restart_broker: want true")
			return st, false
		}
	case StepAmbient:
		var f float64
		if v.Kind != yaml.ScalarNode || v.Decode(&f) != nil || math.IsNaN(f) || f < -40 || f > 85 {
			p.addNode(v, "ambient: want a temperature in °C between -40 and 85, got %q", v.Value)
			return st, false
		}
		st.Ambient = f
	case StepSay:
		if v.Kind != yaml.ScalarNode {
			p.addNode(v, "say: want a line of text")
			return st, false
		}
		st.Say = v.Value
	case StepJob:
		if v.Kind != yaml.MappingNode {
			p.addNode(v, "job: want a job document such as {type: set-desired, desired: {fan: 20}}")
			return st, false
		}
		var m map[string]any
		if err := v.Decode(&m); err != nil {
			p.addNode(v, "job: %v", err)
			return st, false
		}
		if t, _ := m["type"].(string); t == "" {
			p.addNode(v, "job: the document needs a \"type\", e.g. {type: pulse, key: status_led, value: true, seconds: 2}")
			return st, false
		}
		if _, err := json.Marshal(m); err != nil {
			p.addNode(v, "job: the document does not convert to JSON: %v", err)
			return st, false
		}
		st.Job = m
	}
	return st, ok
}

// withoutType returns a job document without its "type", for descriptions.
func withoutType(doc map[string]any) map[string]any {
	out := make(map[string]any, len(doc))
	for k, v := range doc {
		if k != "type" {
			out[k] = v
		}
	}
	return out
}

func (p *parser) fault(v *yaml.Node, st *Step) bool {
	kinds := []string{FaultI2CNACK, FaultI2CTimeout}
	if v.Kind != yaml.MappingNode {
		p.addNode(v, "fault: want a mapping such as {i2c_nack: climate, for: 3s}")
		return false
	}
	ok := true
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], v.Content[i+1]
		switch {
		case k.Value == "for":
			d, good := p.duration(val, "for")
			ok = ok && good
			st.For = d
		case slices.Contains(kinds, k.Value):
			if st.Fault != "" {
				p.addNode(k, "one fault per step: %q and %q", st.Fault, k.Value)
				ok = false
				continue
			}
			if val.Kind != yaml.ScalarNode || val.Value == "" {
				p.addNode(val, "%s: want the id of an I2C device, e.g. climate", k.Value)
				ok = false
				continue
			}
			st.Fault, st.Device = k.Value, val.Value
		default:
			all := append(slices.Clone(kinds), "for")
			msg := fmt.Sprintf("unknown fault key %q; allowed: %s", k.Value, strings.Join(all, ", "))
			if s := suggest.Closest(k.Value, all); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			}
			p.addNode(k, "%s", msg)
			ok = false
		}
	}
	if ok && st.Fault == "" {
		p.addNode(v, "fault: say which, e.g. {i2c_nack: climate, for: 3s}")
		ok = false
	}
	if ok && st.For == 0 {
		p.addNode(v, "fault: say how long it lasts, e.g. for: 3s")
		ok = false
	}
	return ok
}

func (p *parser) duration(n *yaml.Node, key string) (time.Duration, bool) {
	if n.Kind != yaml.ScalarNode {
		p.addNode(n, "%s: want a duration such as 2s or 1m30s", key)
		return 0, false
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil {
		var f float64
		if _, ferr := fmt.Sscanf(n.Value, "%g", &f); ferr == nil && fmt.Sprint(f) == n.Value {
			p.addNode(n, "%s: %q has no unit; add one: %ss", key, n.Value, n.Value)
		} else {
			p.addNode(n, "%s: %q is not a duration; want e.g. 2s, 500ms or 1m30s", key, n.Value)
		}
		return 0, false
	}
	if d < 0 {
		p.addNode(n, "%s: %s is negative; times count from the start of the run", key, n.Value)
		return 0, false
	}
	return d, true
}

// Check verifies the scenario against cfg: a pressed device must be an
// input (button, switch, pir), a failing one must be on an I2C bus, a job
// needs a jobs: section. It returns every problem as config.Errors.
func (s *Scenario) Check(cfg *config.Config) error {
	var errs config.Errors
	ids := make([]string, 0, len(cfg.Devices))
	byID := map[string]config.Device{}
	for _, d := range cfg.Devices {
		ids = append(ids, d.ID)
		byID[d.ID] = d
	}
	for _, st := range s.Steps {
		if st.Kind == StepJob && (cfg.Jobs == nil || !cfg.Jobs.Enabled) {
			errs = append(errs, config.Problem{Pos: st.Pos, Msg: fmt.Sprintf("job: %s has no enabled jobs: section, so the agent would never take the job; add jobs: {} to it", cfg.Files[0])})
			continue
		}
		if st.Kind != StepPress && st.Kind != StepFault {
			continue
		}
		d, found := byID[st.Device]
		var msg string
		switch {
		case !found:
			msg = fmt.Sprintf("%s: unknown device %q; devices in %s: %s", st.Kind, st.Device, cfg.Files[0], strings.Join(ids, ", "))
			if sug := suggest.Closest(st.Device, ids); sug != "" {
				msg += fmt.Sprintf("; did you mean %q?", sug)
			}
		case st.Kind == StepPress:
			if _, in := d.Options.(*gpio.InputOptions); !in {
				msg = fmt.Sprintf("press: device %q is a %s, not an input; press a button, switch or pir", d.ID, d.Driver)
			}
		case st.Kind == StepFault:
			if d.Wiring.Bus == "" {
				msg = fmt.Sprintf("fault: device %q (%s) is not on an I2C bus; I2C faults need an I2C device", d.ID, d.Driver)
			}
		}
		if msg != "" {
			errs = append(errs, config.Problem{Pos: st.Pos, Msg: msg})
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

func joinKinds(ks []StepKind) string {
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}
