package config

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pinshadow/pinshadow/devices"
	"github.com/pinshadow/pinshadow/filter"
	"github.com/pinshadow/pinshadow/shadowsync/reconcile"
)

// PlanRow is one line of `agent plan`: a shadow key and what it drives or
// reads.
type PlanRow struct {
	// Key is the shadow key as the user sees it: "heater", or
	// "config:heater" for a key of the named shadow "config".
	Key string
	// Device and Property are what the key drives or reads.
	Device   string
	Property string
	// Wiring is the device's Wiring.String().
	Wiring string
	// Direction is "desired" or "reported".
	Direction string
	// Interval is how often a reported key is read ("on change" for desired
	// keys, which are applied when the shadow changes).
	Interval string
}

// Plan returns the shadow key → device table, desired keys first, in
// configuration order.
func (c *Config) Plan() []PlanRow { return append([]PlanRow(nil), c.rows...) }

var (
	shadowNamePattern = regexp.MustCompile(`^[a-zA-Z0-9:_-]{1,64}$`)
	keySegment        = regexp.MustCompile(`^[A-Za-z0-9_:-]{1,128}$`)
)

var (
	shadowKeys   = []string{"name", "desired", "reported"}
	desiredKeys  = []string{"device", "property", "type", "unit", "range", "enum", "scale", "offset", "invert", "calibrate_linear", "boot", "failsafe", "min_toggle_interval", "interlock", "on_reject"}
	reportedKeys = []string{"device", "property", "update_interval", "filters", "round", "publish"}
	filterNames  = []string{"offset", "multiply", "calibrate_linear", "clamp", "median", "moving_average", "delta", "throttle", "heartbeat"}
	onRejects    = map[string]reconcile.OnReject{"keep": reconcile.Keep, "clear_desired": reconcile.ClearDesired, "revert": reconcile.Revert}
)

// mapped is a shadow key already mapped, for "mapped twice" messages.
type mapped struct {
	pos              Position
	device, property string
}

type interlockMember struct {
	key reconcile.KeyPath
	fp  fileParser
	n   *yaml.Node
}

// shadowState collects what is checked across keys and shadows.
type shadowState struct {
	devs       map[string]*parsedDevice
	ids        []string
	shadows    map[string]int // shadow name → index in Config.Shadows
	desired    map[reconcile.KeyPath]mapped
	reported   map[reconcile.KeyPath]mapped
	outputs    map[string]string // device.property → desired key (display)
	outputPos  map[string]Position
	interlocks map[string][]interlockMember
	groupOrder []string
}

func displayKey(k reconcile.KeyPath) string {
	if k.Shadow == "" {
		return k.Path
	}
	return k.Shadow + ":" + k.Path
}

func (l *loader) parseShadows(cfg *Config, devs []*parsedDevice) {
	st := &shadowState{
		devs: map[string]*parsedDevice{}, shadows: map[string]int{},
		desired: map[reconcile.KeyPath]mapped{}, reported: map[reconcile.KeyPath]mapped{},
		outputs: map[string]string{}, outputPos: map[string]Position{}, interlocks: map[string][]interlockMember{},
	}
	for _, d := range devs {
		st.devs[d.ID] = d
		st.ids = append(st.ids, d.ID)
	}
	// Devices that failed validation are not in devs; mappings to them are
	// not reported again as unknown.
	broken := map[string]bool{}
	for _, s := range l.devices {
		if e := deref(s.val); e != nil && e.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(e.Content); i += 2 {
				if e.Content[i].Value == "id" && deref(e.Content[i+1]).Kind == yaml.ScalarNode {
					if _, ok := st.devs[deref(e.Content[i+1]).Value]; !ok {
						broken[deref(e.Content[i+1]).Value] = true
					}
				}
			}
		}
	}
	var reportedRows []PlanRow
	for _, s := range l.shadows {
		fp := l.file(s.file)
		f := map[string]kv{}
		for _, p := range fp.pairs(s.val, "shadow entry", shadowKeys) {
			f[p.name] = p
		}
		sh := Shadow{}
		label := "the classic shadow"
		if p, ok := f["name"]; ok {
			v, ok := fp.str(p.val, "shadow name")
			if !ok {
				continue
			}
			if !shadowNamePattern.MatchString(v) {
				fp.errf(p.val, "shadow name %q is not allowed; use 1–64 of a-z A-Z 0-9 : _ - (leave name out for the classic shadow)", v)
				continue
			}
			sh.Name, label = v, fmt.Sprintf("shadow %q", v)
		}
		// A shadow may be listed more than once (say one entry per
		// included file); its keys are merged and checked for repeats.
		idx, seen := st.shadows[sh.Name]
		if !seen {
			idx = len(cfg.Shadows)
			st.shadows[sh.Name] = idx
			cfg.Shadows = append(cfg.Shadows, sh)
		}
		if p, ok := f["desired"]; ok {
			for _, e := range fp.pairs(p.val, "desired keys of "+label, nil) {
				key, ok := fp.keyPath(sh.Name, e.key, st.desired, "desired")
				if !ok {
					continue
				}
				dk, dev, ok := fp.desiredKey(key, e, st, broken)
				if !ok {
					continue
				}
				if r, clash := st.reported[key]; clash && (r.device != dk.Device || r.property != dk.Property) {
					fp.errf(e.key, "desired key %q is also the reported key at %s, mapped to %s.%s; the agent reports a desired key's applied value under the same name: rename one of them", key.Path, r.pos, r.device, r.property)
					continue
				}
				st.desired[key] = mapped{pos: posOf(fp.file, e.key), device: dk.Device, property: dk.Property}
				cfg.Shadows[idx].Desired = append(cfg.Shadows[idx].Desired, key.Path)
				cfg.spec.Desired = append(cfg.spec.Desired, dk)
				cfg.rows = append(cfg.rows, PlanRow{Key: displayKey(key), Device: dk.Device, Property: dk.Property,
					Wiring: dev.Wiring.String(), Direction: "desired", Interval: "on change"})
			}
		}
		if p, ok := f["reported"]; ok {
			for _, e := range fp.pairs(p.val, "reported keys of "+label, nil) {
				key, ok := fp.keyPath(sh.Name, e.key, st.reported, "reported")
				if !ok {
					continue
				}
				rk, dev, ok := fp.reportedKey(key, e, st, broken)
				if !ok {
					continue
				}
				if d, clash := st.desired[key]; clash && (d.device != rk.Device || d.property != rk.Property) {
					fp.errf(e.key, "reported key %q is also the desired key at %s, mapped to %s.%s; the agent reports a desired key's applied value under the same name: rename this reported key", key.Path, d.pos, d.device, d.property)
					continue
				}
				st.reported[key] = mapped{pos: posOf(fp.file, e.key), device: rk.Device, property: rk.Property}
				cfg.Shadows[idx].Reported = append(cfg.Shadows[idx].Reported, key.Path)
				cfg.spec.Reported = append(cfg.spec.Reported, rk)
				reportedRows = append(reportedRows, PlanRow{Key: displayKey(key), Device: rk.Device, Property: rk.Property,
					Wiring: dev.Wiring.String(), Direction: "reported", Interval: rk.Interval.String()})
			}
		}
	}
	cfg.rows = append(cfg.rows, reportedRows...)
	for _, name := range st.groupOrder {
		members := st.interlocks[name]
		if len(members) == 1 {
			others := make([]string, 0, len(st.groupOrder))
			for _, g := range st.groupOrder {
				if g != name {
					others = append(others, g)
				}
			}
			m := members[0]
			m.fp.errf(m.n, "interlock group %q has only %s; a group needs two or more desired keys (give the other key interlock: %s too)%s", name, displayKey(m.key), name, didYouMean(name, others))
			continue
		}
		il := reconcile.Interlock{Name: name}
		for _, m := range members {
			il.Keys = append(il.Keys, m.key)
		}
		cfg.spec.Interlocks = append(cfg.spec.Interlocks, il)
	}
	if !l.hasShadows && !l.syntaxErr {
		l.problem(Position{File: l.files[0], Line: 1, Col: 1}, "shadows is missing; add shadows: with at least one entry mapping desired or reported keys to devices")
	}
}

// keyPath checks a shadow key ("heater", "lights.kitchen") and that it
// neither repeats nor nests inside another key of the same section.
func (fp fileParser) keyPath(shadow string, n *yaml.Node, seen map[reconcile.KeyPath]mapped, section string) (reconcile.KeyPath, bool) {
	k := reconcile.KeyPath{Shadow: shadow, Path: n.Value}
	for _, seg := range strings.Split(n.Value, ".") {
		if !keySegment.MatchString(seg) {
			fp.errf(n, "%s key %q is not allowed; use names of a-z A-Z 0-9 _ : - joined by dots for nested keys (lights.kitchen)", section, n.Value)
			return k, false
		}
	}
	if prev, dup := seen[k]; dup {
		fp.errf(n, "%s key %q is already mapped at %s (to %s.%s); map each key once", section, displayKey(k), prev.pos, prev.device, prev.property)
		return k, false
	}
	keys := make([]reconcile.KeyPath, 0, len(seen))
	for o := range seen {
		keys = append(keys, o)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].Path < keys[j].Path })
	for _, o := range keys {
		if o.Shadow != shadow {
			continue
		}
		if strings.HasPrefix(n.Value, o.Path+".") || strings.HasPrefix(o.Path, n.Value+".") {
			fp.errf(n, "%s key %q overlaps %q (%s): a key cannot be both a value and an object holding other keys; rename one", section, n.Value, o.Path, seen[o].pos)
			return k, false
		}
	}
	return k, true
}

// target reads device and property of a mapping entry (long form, or the
// short form "device" / "device.property") and finds them.
func (fp fileParser) target(what string, e kv, f map[string]kv, st *shadowState, broken map[string]bool, want func(devices.Property) bool, wantWord string) (*parsedDevice, devices.Property, bool) {
	var devName, propName string
	var devNode, propNode *yaml.Node
	if s := deref(e.val); s != nil && s.Kind == yaml.ScalarNode {
		v, ok := fp.str(e.val, what)
		if !ok {
			return nil, devices.Property{}, false
		}
		devName, propName, _ = strings.Cut(v, ".")
		devNode, propNode = e.val, e.val
	} else {
		p, ok := f["device"]
		if !ok {
			if len(st.ids) == 0 {
				fp.errf(e.key, "%s: device is missing; add device: ID, naming a device defined under devices:", what)
			} else {
				fp.errf(e.key, "%s: device is missing; add device: ID (one of %s)", what, orList(st.ids))
			}
			return nil, devices.Property{}, false
		}
		if devName, ok = fp.str(p.val, what+" device"); !ok {
			return nil, devices.Property{}, false
		}
		devNode = p.val
		if q, ok := f["property"]; ok {
			if propName, ok = fp.str(q.val, what+" property"); !ok {
				return nil, devices.Property{}, false
			}
			propNode = q.val
		}
	}
	d, ok := st.devs[devName]
	if !ok {
		switch {
		case broken[devName]:
		case len(st.ids) == 0 && len(broken) == 0:
			fp.errf(devNode, "%s: unknown device %q; no devices are defined: add it under devices: (id, driver and its wiring)", what, devName)
		default:
			fp.errf(devNode, "%s: unknown device %q; allowed: %s%s", what, devName, orList(st.ids), didYouMean(devName, st.ids))
		}
		return nil, devices.Property{}, false
	}
	var names, fitting []string
	for _, p := range d.Properties {
		names = append(names, p.Name)
		if want(p) {
			fitting = append(fitting, p.Name)
		}
	}
	if propName == "" {
		switch {
		case len(fitting) == 0 && wantWord == "writable":
			fp.errf(devNode, "%s: device %q (%s) has no writable property (%s: read-only); map it under reported instead", what, d.ID, d.Driver, orList(names))
			return nil, devices.Property{}, false
		case len(fitting) == 0:
			fp.errf(devNode, "%s: device %q (%s) has no readable property (%s: write-only); map it under desired instead", what, d.ID, d.Driver, orList(names))
			return nil, devices.Property{}, false
		case len(fitting) > 1:
			fp.errf(devNode, "%s: device %q has %d %s properties (%s); name one with property: or write %s.PROPERTY", what, d.ID, len(fitting), wantWord, orList(fitting), d.ID)
			return nil, devices.Property{}, false
		}
		propName = fitting[0]
	}
	prop, err := devices.FindProperty(d.Properties, propName)
	if err != nil {
		fp.errf(propNode, "%s: device %q (%s) has no property %q; allowed: %s%s", what, d.ID, d.Driver, propName, orList(names), didYouMean(propName, names))
		return nil, devices.Property{}, false
	}
	return d, prop, true
}

func (fp fileParser) entryFields(e kv, what string, known []string) map[string]kv {
	f := map[string]kv{}
	if s := deref(e.val); s != nil && s.Kind == yaml.ScalarNode && !isNull(s) {
		return f
	}
	if isNull(e.val) {
		fp.errf(e.key, "%s is empty; give device: ID (and property: NAME), or write %s: DEVICE.PROPERTY", what, e.key.Value)
		return nil
	}
	if m := deref(e.val); m == nil || m.Kind != yaml.MappingNode {
		fp.errf(e.val, "%s must be DEVICE.PROPERTY or a mapping with device: (and property:, …), not a %s", what, kindName(m))
		return nil
	}
	for _, p := range fp.pairs(e.val, what, known) {
		f[p.name] = p
	}
	return f
}

func (fp fileParser) desiredKey(key reconcile.KeyPath, e kv, st *shadowState, broken map[string]bool) (reconcile.DesiredKey, *parsedDevice, bool) {
	what := fmt.Sprintf("desired key %q", displayKey(key))
	f := fp.entryFields(e, what, desiredKeys)
	if f == nil {
		return reconcile.DesiredKey{}, nil, false
	}
	d, prop, ok := fp.target(what, e, f, st, broken, func(p devices.Property) bool { return p.Writable }, "writable")
	if !ok {
		fp.checkUntargeted(what, f, []string{"min_toggle_interval"}, nil)
		return reconcile.DesiredKey{}, nil, false
	}
	if !prop.Writable {
		var w []string
		for _, p := range d.Properties {
			if p.Writable {
				w = append(w, p.Name)
			}
		}
		n := e.val
		if p, ok := f["property"]; ok {
			n = p.val
		}
		fp.errf(n, "%s maps to %s.%s, which is read-only; desired keys need a writable property (writable on %q: %s); map it under reported instead", what, d.ID, prop.Name, d.ID, orList(w))
		return reconcile.DesiredKey{}, nil, false
	}
	output := d.ID + "." + prop.Name
	if first, dup := st.outputs[output]; dup {
		fp.errf(e.key, "%s drives %s, which desired key %q (%s) already drives; one desired key per output", what, output, first, st.outputPos[output])
		return reconcile.DesiredKey{}, nil, false
	}
	st.outputs[output], st.outputPos[output] = displayKey(key), posOf(fp.file, e.key)

	dk := reconcile.DesiredKey{Key: key, Device: d.ID, Property: prop.Name, Type: prop.Type, Unit: prop.Unit, Choices: prop.Choices, OnReject: reconcile.Keep}
	ok = true
	bad := func() { ok = false }
	if p, has := f["type"]; has {
		if v, good := fp.choice(p.val, what+" type", []string{"bool", "number", "enum"}); good && v != prop.Type.String() {
			fp.errf(p.val, "%s: type %s does not match %s.%s, which is a %s; allowed: %s (or leave type out)", what, v, d.ID, prop.Name, prop.Type, prop.Type)
			bad()
		}
	}
	if p, has := f["unit"]; has {
		if v, good := fp.str(p.val, what+" unit"); good {
			dk.Unit = v
		}
	}
	numberOnly := func(name string) bool {
		p, has := f[name]
		if has && prop.Type != devices.TypeNumber {
			fp.errf(p.key, "%s: %s is for number properties; %s.%s is a %s", what, name, d.ID, prop.Name, prop.Type)
			bad()
			return false
		}
		return has
	}
	transformed := false
	if numberOnly("scale") {
		if v, good := fp.number(f["scale"].val, what+" scale"); good {
			if v == 0 {
				fp.errf(f["scale"].val, "%s: scale 0 would send every value as the offset; allowed: any number but 0", what)
				bad()
			}
			dk.Transform.Scale, transformed = v, true
		} else {
			bad()
		}
	}
	if numberOnly("offset") {
		if v, good := fp.number(f["offset"].val, what+" offset"); good {
			dk.Transform.Offset, transformed = v, true
		} else {
			bad()
		}
	}
	if numberOnly("calibrate_linear") {
		if pts, good := fp.calPoints(f["calibrate_linear"].val, what+" calibrate_linear"); good {
			dk.Transform.Calibrate, transformed = pts, true
		} else {
			bad()
		}
	}
	if p, has := f["invert"]; has {
		if v, good := fp.boolean(p.val, what+" invert"); good && v {
			switch {
			case prop.Type == devices.TypeEnum:
				fp.errf(p.val, "%s: invert is for bool and number properties; %s.%s is an enum", what, d.ID, prop.Name)
				bad()
			case prop.Type == devices.TypeNumber && prop.Range == nil:
				fp.errf(p.val, "%s: invert on a number needs the property's range, and %s.%s has none; use scale: -1 and offset instead", what, d.ID, prop.Name)
				bad()
			}
			dk.Transform.Invert, transformed = true, true
		} else if !good {
			bad()
		}
	}
	if prop.Range != nil && !transformed {
		r := *prop.Range
		dk.Range = &r
	}
	if numberOnly("range") {
		if r, good := fp.rangeOf(f["range"].val, what+" range"); good {
			if pr := prop.Range; pr != nil && !transformed && (r.Min < pr.Min || r.Max > pr.Max) {
				fp.errf(f["range"].val, "%s: range %v…%v goes beyond what %s.%s accepts; allowed: within %v…%v%s", what, r.Min, r.Max, d.ID, prop.Name, pr.Min, pr.Max, prop.Unit)
				bad()
			}
			dk.Range = &r
		} else {
			bad()
		}
	}
	if p, has := f["enum"]; has {
		if prop.Type != devices.TypeEnum {
			fp.errf(p.key, "%s: enum is for enum properties; %s.%s is a %s", what, d.ID, prop.Name, prop.Type)
			bad()
		} else if cs, good := fp.choices(p.val, what, prop); good {
			dk.Choices = cs
		} else {
			bad()
		}
	}
	check := func(n *yaml.Node, label string) (devices.Value, bool) {
		v, good := fp.value(n, what+" "+label, prop.Type)
		if !good {
			return v, false
		}
		if msg := contractProblem(dk, v); msg != "" {
			fp.errf(n, "%s: %s %s %s", what, label, v, msg)
			return v, false
		}
		if dv, err := reconcile.ToDevice(dk, &prop, v); err != nil {
			fp.errf(n, "%s: %s %s does not give a finite number after the transforms", what, label, v)
			return v, false
		} else if err := prop.Check(dv); err != nil {
			fp.errf(n, "%s: %s %s becomes %s on %s.%s, which it does not accept (%s)", what, label, v, dv, d.ID, prop.Name, strings.TrimPrefix(err.Error(), devices.ErrInvalidValue.Error()+": "))
			return v, false
		}
		return v, true
	}
	if ok {
		if p, has := f["boot"]; has {
			if v, good := check(p.val, "boot"); good {
				dk.Safety.Boot = v
			} else {
				bad()
			}
		}
		if p, has := f["failsafe"]; has {
			ff := map[string]kv{}
			for _, q := range fp.pairs(p.val, what+" failsafe", []string{"value", "after"}) {
				ff[q.name] = q
			}
			if deref(p.val) != nil && deref(p.val).Kind == yaml.MappingNode {
				for _, need := range []string{"value", "after"} {
					if _, has := ff[need]; !has {
						fp.errf(p.key, "%s: failsafe needs value and after (failsafe: {value: …, after: 10m}); %s is missing", what, need)
						bad()
					}
				}
			}
			if q, has := ff["value"]; has {
				if v, good := check(q.val, "failsafe value"); good {
					dk.Safety.Failsafe = v
				} else {
					bad()
				}
			}
			if q, has := ff["after"]; has {
				if dur, good := fp.duration(q.val, what+" failsafe after"); good {
					if dur == 0 {
						fp.errf(q.val, "%s: failsafe after 0s would fire at every disconnect; allowed: more than 0 (such as 10m)", what)
						bad()
					}
					dk.Safety.FailsafeAfter = dur
				} else {
					bad()
				}
			}
		}
	}
	if p, has := f["min_toggle_interval"]; has {
		if dur, good := fp.duration(p.val, what+" min_toggle_interval"); good {
			dk.Safety.MinToggleInterval = dur
		} else {
			bad()
		}
	}
	if p, has := f["on_reject"]; has {
		if v, good := fp.choice(p.val, what+" on_reject", []string{"keep", "clear_desired", "revert"}); good {
			dk.OnReject = onRejects[v]
		} else {
			bad()
		}
	}
	if p, has := f["interlock"]; has {
		if v, good := fp.str(p.val, what+" interlock"); good {
			switch {
			case !idPattern.MatchString(v):
				fp.errf(p.val, "%s: interlock group %q is not allowed; use 1–64 of a-z A-Z 0-9 _ -", what, v)
				bad()
			case prop.Type == devices.TypeEnum:
				fp.errf(p.val, "%s: interlock needs a bool or number property (on = true or above 0); %s.%s is an enum", what, d.ID, prop.Name)
				bad()
			default:
				if _, seen := st.interlocks[v]; !seen {
					st.groupOrder = append(st.groupOrder, v)
				}
				st.interlocks[v] = append(st.interlocks[v], interlockMember{key: key, fp: fp, n: p.val})
			}
		} else {
			bad()
		}
	}
	return dk, d, ok
}

// checkUntargeted checks what does not depend on the device of an entry
// whose device or property could not be found, so those problems are
// reported now and not after the first fix: the on_reject word and the
// given durations, plus more.
func (fp fileParser) checkUntargeted(what string, f map[string]kv, durations []string, more func()) {
	if p, has := f["on_reject"]; has {
		fp.choice(p.val, what+" on_reject", []string{"keep", "clear_desired", "revert"})
	}
	for _, name := range durations {
		if p, has := f[name]; has {
			fp.duration(p.val, what+" "+name)
		}
	}
	if more != nil {
		more()
	}
}

// contractProblem checks v against the shadow-side contract of dk (range,
// choices); "" when it fits.
func contractProblem(dk reconcile.DesiredKey, v devices.Value) string {
	switch v.Type() {
	case devices.TypeNumber:
		if r := dk.Range; r != nil && (v.Number() < r.Min || v.Number() > r.Max) {
			return fmt.Sprintf("is out of range; allowed: %v…%v%s", r.Min, r.Max, dk.Unit)
		}
	case devices.TypeEnum:
		if !contains(dk.Choices, v.Enum()) {
			return fmt.Sprintf("is not one of the choices; allowed: %s%s", orList(dk.Choices), didYouMean(v.Enum(), dk.Choices))
		}
	}
	return ""
}

func toFilterPoints(pts []reconcile.CalPoint) []filter.Point {
	out := make([]filter.Point, len(pts))
	for i, p := range pts {
		out[i] = filter.Point{From: p.From, To: p.To}
	}
	return out
}

// value reads a boot or failsafe value of the given type.
func (fp fileParser) value(n *yaml.Node, what string, t devices.Type) (devices.Value, bool) {
	s, ok := fp.scalar(n, what)
	if !ok {
		return devices.Value{}, false
	}
	switch t {
	case devices.TypeBool:
		if s.ShortTag() != "!!bool" {
			fp.errf(n, "%s must be true or false (the property is a bool), not %s", what, kindName(s))
			return devices.Value{}, false
		}
		b, _ := fp.boolean(n, what)
		return devices.Bool(b), true
	case devices.TypeNumber:
		if tg := s.ShortTag(); tg != "!!int" && tg != "!!float" {
			fp.errf(n, "%s must be a number (the property is a number), not %s", what, kindName(s))
			return devices.Value{}, false
		}
		f, ok := fp.number(n, what)
		return devices.Number(f), ok
	case devices.TypeEnum:
		if s.ShortTag() != "!!str" {
			fp.errf(n, "%s must be one of the property's choices (a word), not %s", what, kindName(s))
			return devices.Value{}, false
		}
		return devices.Enum(s.Value), true
	}
	return devices.Value{}, false
}

func (fp fileParser) choices(n *yaml.Node, what string, prop devices.Property) ([]string, bool) {
	s := deref(n)
	if s == nil || s.Kind != yaml.SequenceNode || len(s.Content) == 0 {
		fp.errf(n, "%s: enum must be a list of choices, such as [auto, manual]; allowed: %s", what, strings.Join(prop.Choices, ", "))
		return nil, false
	}
	var out []string
	ok := true
	for _, it := range s.Content {
		v, good := fp.str(it, what+" enum")
		if !good {
			ok = false
			continue
		}
		if !contains(prop.Choices, v) {
			fp.errf(it, "%s: %q is not a choice of %s; allowed: %s%s", what, v, prop.Name, strings.Join(prop.Choices, ", "), didYouMean(v, prop.Choices))
			ok = false
			continue
		}
		out = append(out, v)
	}
	return out, ok
}

// rangeOf reads [min, max] or {min: …, max: …}.
func (fp fileParser) rangeOf(n *yaml.Node, what string) (devices.Range, bool) {
	s := deref(n)
	var lo, hi *yaml.Node
	switch {
	case s != nil && s.Kind == yaml.SequenceNode && len(s.Content) == 2:
		lo, hi = s.Content[0], s.Content[1]
	case s != nil && s.Kind == yaml.MappingNode:
		for _, p := range fp.pairs(s, what, []string{"min", "max"}) {
			if p.name == "min" {
				lo = p.val
			} else {
				hi = p.val
			}
		}
		if lo == nil || hi == nil {
			fp.errf(n, "%s needs both min and max", what)
			return devices.Range{}, false
		}
	default:
		fp.errf(n, "%s must be [min, max] or {min: …, max: …}, not a %s", what, kindName(s))
		return devices.Range{}, false
	}
	a, ok1 := fp.number(lo, what+" min")
	b, ok2 := fp.number(hi, what+" max")
	if !ok1 || !ok2 {
		return devices.Range{}, false
	}
	if a >= b {
		fp.errf(n, "%s: min %v must be below max %v", what, a, b)
		return devices.Range{}, false
	}
	return devices.Range{Min: a, Max: b}, true
}

var calArrow = regexp.MustCompile(`^\s*(\S+)\s*->\s*(\S+)\s*$`)

// calPoints reads calibrate_linear: a list of "measured -> true" strings
// (ESPHome's form) or [measured, true] pairs; at least two distinct
// measured values.
func (fp fileParser) calPoints(n *yaml.Node, what string) ([]reconcile.CalPoint, bool) {
	s := deref(n)
	if s == nil || s.Kind != yaml.SequenceNode {
		fp.errf(n, "%s must be a list of points such as [\"0.0 -> 0\", \"2.5 -> 100\"], not a %s", what, kindName(s))
		return nil, false
	}
	var pts []reconcile.CalPoint
	for _, it := range s.Content {
		e := deref(it)
		switch {
		case e != nil && e.Kind == yaml.SequenceNode && len(e.Content) == 2:
			a, ok1 := fp.number(e.Content[0], what+" point")
			b, ok2 := fp.number(e.Content[1], what+" point")
			if !ok1 || !ok2 {
				return nil, false
			}
			pts = append(pts, reconcile.CalPoint{From: a, To: b})
		case e != nil && e.Kind == yaml.ScalarNode:
			m := calArrow.FindStringSubmatch(e.Value)
			var a, b float64
			_, err1 := fmt.Sscan(safeIdx(m, 1), &a)
			_, err2 := fmt.Sscan(safeIdx(m, 2), &b)
			if m == nil || err1 != nil || err2 != nil || math.IsNaN(a) || math.IsNaN(b) || math.IsInf(a, 0) || math.IsInf(b, 0) {
				fp.errf(it, "%s: point %q must read \"MEASURED -> TRUE\", such as \"2.5 -> 100\"", what, e.Value)
				return nil, false
			}
			pts = append(pts, reconcile.CalPoint{From: a, To: b})
		default:
			fp.errf(it, "%s: each point is \"MEASURED -> TRUE\" or [MEASURED, TRUE], not a %s", what, kindName(e))
			return nil, false
		}
	}
	sort.SliceStable(pts, func(i, j int) bool { return pts[i].From < pts[j].From })
	// The reconciler and the filters fit the same line: refuse here what
	// they would refuse at run time.
	if _, err := filter.Fit(toFilterPoints(pts)); err != nil {
		fp.errf(n, "%s: %s", what, strings.TrimPrefix(err.Error(), filter.ErrInvalid.Error()+": "))
		return nil, false
	}
	return pts, true
}

func safeIdx(m []string, i int) string {
	if i < len(m) {
		return m[i]
	}
	return ""
}

func (fp fileParser) reportedKey(key reconcile.KeyPath, e kv, st *shadowState, broken map[string]bool) (reconcile.ReportedKey, *parsedDevice, bool) {
	what := fmt.Sprintf("reported key %q", displayKey(key))
	f := fp.entryFields(e, what, reportedKeys)
	if f == nil {
		return reconcile.ReportedKey{}, nil, false
	}
	d, prop, ok := fp.target(what, e, f, st, broken, func(p devices.Property) bool { return p.Readable }, "readable")
	if !ok {
		fp.checkUntargeted(what, f, []string{"update_interval"}, func() {
			if p, has := f["publish"]; has {
				fp.publish(p.val, what)
			}
		})
		return reconcile.ReportedKey{}, nil, false
	}
	if !prop.Readable {
		n := e.val
		if p, ok := f["property"]; ok {
			n = p.val
		}
		fp.errf(n, "%s maps to %s.%s, which is write-only; reported keys need a readable property", what, d.ID, prop.Name)
		return reconcile.ReportedKey{}, nil, false
	}
	rk := reconcile.ReportedKey{Key: key, Device: d.ID, Property: prop.Name, Interval: DefaultUpdateInterval, Round: -1}
	ok = true
	if p, has := f["update_interval"]; has {
		if dur, good := fp.duration(p.val, what+" update_interval"); good {
			if dur < 100*time.Millisecond {
				fp.errf(p.val, "%s: update_interval %v is too short; allowed: 100ms or more", what, dur)
				ok = false
			}
			rk.Interval = dur
		} else {
			ok = false
		}
	}
	if p, has := f["round"]; has {
		if prop.Type != devices.TypeNumber {
			fp.errf(p.key, "%s: round is for number properties; %s.%s is a %s", what, d.ID, prop.Name, prop.Type)
			ok = false
		} else if v, good := fp.integer(p.val, what+" round", 0, 10); good {
			rk.Round = v
		} else {
			ok = false
		}
	}
	if p, has := f["filters"]; has {
		fs, good := fp.filters(p.val, what, d, prop)
		rk.Filters = fs
		ok = ok && good
	}
	if p, has := f["publish"]; has {
		pub, good := fp.publish(p.val, what)
		rk.Publish = pub
		ok = ok && good
	}
	return rk, d, ok
}

func (fp fileParser) filters(n *yaml.Node, what string, d *parsedDevice, prop devices.Property) ([]reconcile.Filter, bool) {
	s := deref(n)
	if isNull(s) {
		return nil, true
	}
	if s.Kind != yaml.SequenceNode {
		fp.errf(n, "%s: filters must be a list, one \"- name: argument\" per filter, applied in order; allowed: %s", what, strings.Join(filterNames, ", "))
		return nil, false
	}
	var out []reconcile.Filter
	ok := true
	var throttle, heartbeat *yaml.Node
	var throttleD, heartbeatD time.Duration
	for _, it := range s.Content {
		e := deref(it)
		var name string
		var key, val *yaml.Node
		switch {
		case e != nil && e.Kind == yaml.MappingNode && len(e.Content) == 2:
			key, val = e.Content[0], e.Content[1]
			name = key.Value
		case e != nil && e.Kind == yaml.ScalarNode:
			fp.errf(it, "%s: filter %q needs an argument (such as - median: 5); allowed: %s%s", what, e.Value, strings.Join(filterNames, ", "), didYouMean(e.Value, filterNames))
			ok = false
			continue
		default:
			fp.errf(it, "%s: each filter is one \"name: argument\" pair (start another list item for the next filter)", what)
			ok = false
			continue
		}
		if !contains(filterNames, name) {
			fp.errf(key, "%s: unknown filter %q; allowed: %s%s", what, name, strings.Join(filterNames, ", "), didYouMean(name, filterNames))
			ok = false
			continue
		}
		fw := what + " filter " + name
		if name != "throttle" && name != "heartbeat" && prop.Type != devices.TypeNumber {
			fp.errf(key, "%s: filter %s is for number properties; %s.%s is a %s (allowed here: throttle, heartbeat)", what, name, d.ID, prop.Name, prop.Type)
			ok = false
			continue
		}
		var f reconcile.Filter
		good := true
		switch name {
		case "offset", "multiply", "delta":
			v, g := fp.number(val, fw)
			good = g
			if g && name == "delta" && v <= 0 {
				fp.errf(val, "%s: %v must be more than 0 (the change that is worth a report)", fw, v)
				good = false
			}
			switch name {
			case "offset":
				f.Offset = &v
			case "multiply":
				f.Multiply = &v
			default:
				f.Delta = &v
			}
		case "calibrate_linear":
			f.Calibrate, good = fp.calPoints(val, fw)
		case "clamp":
			var r devices.Range
			r, good = fp.rangeOf(val, fw)
			f.Clamp = &r
		case "median", "moving_average":
			var w int
			w, good = fp.integer(val, fw+" window", 1, 1000)
			if name == "median" {
				f.Median = w
			} else {
				f.MovingAverage = w
			}
		case "throttle", "heartbeat":
			var dur time.Duration
			dur, good = fp.duration(val, fw)
			if good && dur == 0 {
				fp.errf(val, "%s must be more than 0", fw)
				good = false
			}
			if name == "throttle" {
				f.Throttle, throttle, throttleD = dur, val, dur
			} else {
				f.Heartbeat, heartbeat, heartbeatD = dur, val, dur
			}
		}
		if !good {
			ok = false
			continue
		}
		out = append(out, f)
	}
	if throttle != nil && heartbeat != nil && ok && throttleD > heartbeatD {
		fp.errf(throttle, "%s: throttle %v is longer than heartbeat %v (line %d), so the heartbeat could never be sent on time; make throttle at most the heartbeat", what, throttleD, heartbeatD, heartbeat.Line)
		ok = false
	}
	return out, ok
}

func (fp fileParser) publish(n *yaml.Node, what string) (*reconcile.Publish, bool) {
	pub := &reconcile.Publish{}
	ok, hasTopic := true, false
	for _, p := range fp.pairs(n, what+" publish", []string{"topic", "qos", "interval"}) {
		switch p.name {
		case "topic":
			hasTopic = true
			v, good := fp.str(p.val, what+" publish topic")
			switch {
			case !good:
				ok = false
			case v == "" || strings.ContainsAny(v, "+#"):
				fp.errf(p.val, "%s: publish topic %q must be a topic without the wildcards + and #, such as greenhouse/telemetry/temperature", what, v)
				ok = false
			case strings.HasPrefix(v, "$"):
				fp.errf(p.val, "%s: publish topic %q starts with $, which AWS IoT reserves ($aws/…); choose your own topic", what, v)
				ok = false
			default:
				pub.Topic = v
			}
		case "qos":
			v, good := fp.integer(p.val, what+" publish qos", 0, 1)
			pub.QoS, ok = byte(v), ok && good
		case "interval":
			v, good := fp.duration(p.val, what+" publish interval")
			pub.Interval, ok = v, ok && good
		}
	}
	if d := deref(n); !hasTopic && d != nil && d.Kind == yaml.MappingNode {
		fp.errf(n, "%s: publish needs topic", what)
		ok = false
	}
	return pub, ok
}
