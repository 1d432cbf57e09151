package config

import (
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pinshadow/pinshadow/board"
	"github.com/pinshadow/pinshadow/devices"
)

// parsedDevice is a Device plus what validation of the mappings needs.
type parsedDevice struct {
	Device
	fp      fileParser
	idNode  *yaml.Node
	options map[string]kv // option key → its pair, for positions
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

var durationType = reflect.TypeOf(time.Duration(0))

// deviceKeys are the entry keys that are not driver options. options: holds
// options whose names clash with them (the ds18b20's id).
var deviceKeys = []string{"id", "driver", "options"}

func (l *loader) parseDevices(profile board.Profile) []*parsedDevice {
	var out []*parsedDevice
	byID := map[string]*parsedDevice{}
	for _, s := range l.devices {
		d := l.file(s.file).device(s, l.opts.Registry)
		if d == nil {
			continue
		}
		if first, dup := byID[d.ID]; dup {
			d.fp.errf(d.idNode, "device id %q is already used at %s; give each device its own id", d.ID, first.Pos)
			continue
		}
		byID[d.ID] = d
		out = append(out, d)
	}
	l.wire(profile, out)
	return out
}

func (fp fileParser) device(s src, reg *devices.Registry) *parsedDevice {
	entry := deref(s.val)
	if entry == nil || entry.Kind != yaml.MappingNode {
		fp.errf(s.val, "each device must be a mapping with id, driver and the driver's options, not a %s", kindName(entry))
		return nil
	}
	all := fp.pairs(entry, "device", nil) // duplicates only; unknown keys below
	f := map[string]kv{}
	for _, p := range all {
		f[p.name] = p
	}
	d := &parsedDevice{fp: fp, options: map[string]kv{}}
	d.Pos = posOf(fp.file, entry)
	id, idOK := f["id"]
	if !idOK {
		fp.errf(entry, "device: id is missing; add id: NAME (used by the shadow mappings)")
		return nil
	}
	d.idNode = id.val
	v, ok := fp.str(id.val, "device id")
	if !ok {
		return nil
	}
	if !idPattern.MatchString(v) {
		fp.errf(id.val, "device id %q is not allowed; use 1–64 of a-z A-Z 0-9 _ -", v)
		return nil
	}
	d.ID = v
	what := fmt.Sprintf("device %q", d.ID)
	dr, ok := f["driver"]
	if !ok {
		fp.errf(id.val, "%s: driver is missing; add driver: one of %s", what, strings.Join(reg.Names(), ", "))
		return nil
	}
	name, ok := fp.str(dr.val, what+" driver")
	if !ok {
		return nil
	}
	drv, err := reg.Lookup(name)
	if err != nil {
		fp.errf(dr.val, "%s: unknown driver %q; allowed: %s%s", what, name, strings.Join(reg.Names(), ", "), didYouMean(name, reg.Names()))
		return nil
	}
	d.Driver = name
	what = fmt.Sprintf("device %q (%s)", d.ID, name)

	opts := drv.NewOptions()
	fields := map[string]reflect.Type{}
	if t := reflect.TypeOf(opts); t != nil && t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct {
		fields = structFields(t.Elem())
	}
	known := append([]string{}, deviceKeys...)
	for _, k := range sortedKeys(fields) {
		if !contains(known, k) {
			known = append(known, k)
		}
	}
	var optPairs []kv
	for _, p := range all {
		switch {
		case p.name == "id" || p.name == "driver":
		case p.name == "options":
			for _, q := range fp.pairs(p.val, what+" options", sortedKeys(fields)) {
				if prev, dup := d.options[q.name]; dup {
					fp.errf(q.key, "%s: option %q is set both here and at line %d; keep one", what, q.name, prev.key.Line)
					continue
				}
				d.options[q.name] = q
				optPairs = append(optPairs, q)
			}
		case !contains(known, p.name):
			if sg := suggest(p.name, known); sg != "" {
				fp.errf(p.key, "unknown key %q in %s; did you mean %q?", p.name, what, sg)
			} else {
				fp.errf(p.key, "unknown key %q in %s; allowed: %s", p.name, what, strings.Join(known, ", "))
			}
		default:
			if prev, dup := d.options[p.name]; dup {
				fp.errf(p.key, "%s: option %q is set both here and at line %d; keep one", what, p.name, prev.key.Line)
				continue
			}
			d.options[p.name] = p
			optPairs = append(optPairs, p)
		}
	}
	ok = true
	for _, p := range optPairs {
		if !fp.checkValue(p.val, fields[p.name], what+" "+p.name) {
			ok = false
		}
	}
	if !ok {
		return nil
	}
	m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for _, p := range optPairs {
		m.Content = append(m.Content, p.key, p.val)
	}
	if err := m.Decode(opts); err != nil {
		fp.errf(dr.val, "%s: %s", what, strings.TrimPrefix(err.Error(), "yaml: "))
		return nil
	}
	props, err := drv.Properties(opts)
	if err != nil {
		msg := err.Error()
		if i := strings.Index(msg, devices.ErrInvalidOptions.Error()+": "); i >= 0 {
			msg = msg[i+len(devices.ErrInvalidOptions.Error())+2:]
		}
		fp.errf(d.optionNode(msg, dr.val), "%s: %s", what, msg)
		return nil
	}
	d.Options, d.Properties = opts, props
	return d
}

// optionNode finds the option a driver's Validate message is about (its
// messages start with the option's name: "address 0x50 is not…") so the
// problem points at that value; else at fallback.
func (d *parsedDevice) optionNode(msg string, fallback *yaml.Node) *yaml.Node {
	words := strings.FieldsFunc(msg, func(r rune) bool { return r == ' ' || r == ':' || r == '[' })
	for i, w := range words {
		if i > 2 {
			break
		}
		if p, ok := d.options[w]; ok {
			return p.val
		}
	}
	return fallback
}

// structFields maps yaml names to field types, following ",inline".
func structFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, rest, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(rest, "inline") && f.Type.Kind() == reflect.Struct {
			for k, v := range structFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// checkValue checks that n can be decoded into a value of type t, with a
// message for the user where it cannot (yaml.v3's own errors lack the
// column and the option's name).
func (fp fileParser) checkValue(n *yaml.Node, t reflect.Type, what string) bool {
	s := deref(n)
	if t == durationType {
		if s == nil || s.Kind != yaml.ScalarNode {
			fp.errf(n, "%s must be a duration such as 20ms or 5s, not a %s", what, kindName(s))
			return false
		}
		_, ok := fp.duration(n, what)
		return ok
	}
	switch t.Kind() {
	case reflect.Pointer:
		if isNull(s) {
			return true
		}
		return fp.checkValue(n, t.Elem(), what)
	case reflect.String:
		_, ok := fp.str(n, what)
		return ok
	case reflect.Bool:
		_, ok := fp.boolean(n, what)
		return ok
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		sc, ok := fp.scalar(n, what)
		if !ok {
			return false
		}
		if sc.ShortTag() != "!!int" {
			fp.errf(n, "%s must be a whole number (0x76 style hex is fine), not %s", what, kindName(sc))
			return false
		}
		v := reflect.New(t)
		if err := sc.Decode(v.Interface()); err != nil {
			fp.errf(n, "%s %s is out of range for this option", what, sc.Value)
			return false
		}
		return true
	case reflect.Float32, reflect.Float64:
		_, ok := fp.number(n, what)
		return ok
	case reflect.Slice:
		if isNull(s) {
			return true
		}
		if s.Kind != yaml.SequenceNode {
			fp.errf(n, "%s must be a list, not a %s", what, kindName(s))
			return false
		}
		ok := true
		for i, it := range s.Content {
			if !fp.checkValue(it, t.Elem(), fmt.Sprintf("%s[%d]", what, i)) {
				ok = false
			}
		}
		return ok
	case reflect.Struct:
		fields := structFields(t)
		ok := true
		if s == nil || s.Kind != yaml.MappingNode {
			if isNull(s) {
				return true
			}
			fp.errf(n, "%s must be a mapping, not a %s", what, kindName(s))
			return false
		}
		before := len(fp.probs)
		for _, p := range fp.pairs(s, what, sortedKeys(fields)) {
			if !fp.checkValue(p.val, fields[p.name], what+" "+p.name) {
				ok = false
			}
		}
		return ok && len(fp.probs) == before
	}
	return true
}

// wire resolves every device's pin, PWM channel and I2C bus on the
// profile, rewrites the options to the HAL's names, and reports pins used
// twice, pins reserved by an enabled bus, PWM on a pin without it and I2C
// addresses used twice on one bus.
func (l *loader) wire(p board.Profile, devs []*parsedDevice) {
	type claim struct {
		id  string
		pos Position
	}
	claims := map[string]claim{}
	take := func(d *parsedDevice, resource string, n *yaml.Node, hint string) bool {
		if c, ok := claims[resource]; ok {
			d.fp.errf(n, "%s is already used by device %q (%s); %s", resource, c.id, c.pos, hint)
			return false
		}
		claims[resource] = claim{d.ID, posOf(d.fp.file, n)}
		return true
	}
	// Which buses are on follows from the devices: an I2C device on the
	// header bus means GPIO2/3 are SDA/SCL.
	var enabled []board.Bus
	i2cUser := ""
	for _, d := range devs {
		if bus, ok := stringField(d.Options, "bus"); ok && bus != "" {
			if b, err := p.I2CBus(bus); err == nil && b.SDA >= 0 {
				enabled, i2cUser = []board.Bus{board.BusI2C}, d.ID
				break
			}
		}
	}
	for _, d := range devs {
		if v, ok := stringField(d.Options, "pin"); ok && v != "" {
			n := d.options["pin"].val
			pin, err := p.Resolve(v)
			if err != nil {
				d.fp.errf(n, "device %q: %v", d.ID, err)
				continue
			}
			if err := p.CheckReserved(pin, enabled); err != nil {
				d.fp.errf(n, "device %q: %v (device %q uses I2C bus 1)", d.ID, err, i2cUser)
				continue
			}
			if !take(d, pin.String(), n, "give each device its own pin") {
				continue
			}
			d.Wiring.Pin, d.Wiring.Written = &pin, v
			setStringField(d.Options, "pin", pin.HAL)
		}
		if v, ok := stringField(d.Options, "channel"); ok && v != "" {
			n := d.options["channel"].val
			ch, pin, err := p.PWMFor(v)
			if err != nil {
				d.fp.errf(n, "device %q: %v", d.ID, err)
				continue
			}
			if pin.GPIO >= 0 {
				if err := p.CheckReserved(pin, enabled); err != nil {
					d.fp.errf(n, "device %q: %v (device %q uses I2C bus 1)", d.ID, err, i2cUser)
					continue
				}
				if !take(d, pin.String(), n, "give each device its own pin") {
					continue
				}
			}
			if !take(d, "PWM channel "+ch.HALName(), n, "each hardware PWM channel drives one output (GPIO12/18 share channel 0, GPIO13/19 channel 1 on Pi 0–4)") {
				continue
			}
			d.Wiring.PWM, d.Wiring.Written = &ch, v
			if pin.GPIO >= 0 {
				d.Wiring.Pin = &pin
			}
			setStringField(d.Options, "channel", ch.HALName())
		}
		if v, ok := stringField(d.Options, "bus"); ok && v != "" {
			n := d.options["bus"].val
			b, err := p.I2CBus(v)
			if err != nil {
				if n == nil {
					n = d.idNode
				}
				d.fp.errf(n, "device %q: %v", d.ID, err)
				continue
			}
			addr, _ := uintField(d.Options, "address")
			an := d.options["address"].val
			if an == nil {
				an = d.options["bus"].val
			}
			res := fmt.Sprintf("I2C address 0x%02x on bus %s", addr, b.Name)
			if !take(d, res, an, "two chips on one bus need different addresses: change one chip's address pins, or move it to another bus") {
				continue
			}
			d.Wiring.Bus, d.Wiring.Address = b.Name, uint16(addr)
			setStringField(d.Options, "bus", b.Name)
		}
	}
}

// field returns the top-level struct field of opts (a pointer to a struct)
// whose yaml name is name.
func field(opts devices.Options, name string) (reflect.Value, bool) {
	v := reflect.ValueOf(opts)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return reflect.Value{}, false
	}
	v = v.Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if tag == name {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

func stringField(opts devices.Options, name string) (string, bool) {
	f, ok := field(opts, name)
	if !ok || f.Kind() != reflect.String {
		return "", false
	}
	return f.String(), true
}

func setStringField(opts devices.Options, name, v string) {
	if f, ok := field(opts, name); ok && f.Kind() == reflect.String && f.CanSet() {
		f.SetString(v)
	}
}

func uintField(opts devices.Options, name string) (uint64, bool) {
	f, ok := field(opts, name)
	if !ok {
		return 0, false
	}
	switch f.Kind() {
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return f.Uint(), true
	}
	return 0, false
}
