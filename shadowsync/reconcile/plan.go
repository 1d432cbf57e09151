package reconcile

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pinshadow/pinshadow/devices"
	"github.com/pinshadow/pinshadow/filter"
	"github.com/pinshadow/pinshadow/shadowdoc"
)

// Shadow is what the reconciler needs of one shadow: the mirror's desired
// and reported sections (decoded JSON, numbers as float64 or json.Number)
// and the document version they belong to.
type Shadow struct {
	Version  int64
	Desired  map[string]any
	Reported map[string]any
}

// Input is everything one decision depends on. Nothing else is read: the
// same Input always gives the same Decision.
type Input struct {
	Spec *Spec
	// Shadows by name ("" = classic). A shadow missing here is not known
	// yet (before the first get): its keys are restored from State or set
	// to their boot values, and nothing is reported to it.
	Shadows map[string]Shadow
	// Observed is what each output was last set to or read back as, in
	// device terms. A missing output is unknown: it is written whatever
	// its target, and for interlocks it may be on.
	Observed map[Output]devices.Value
	// Props optionally gives the device properties: a device value that
	// fails Property.Check is rejected before any write, and a number
	// invert mirrors within the device range.
	Props map[Output]devices.Property
	// State is the previous Outcome's State (zero State at first start).
	State State
	// Offline is how long the connection has been down (0 when online).
	Offline time.Duration
	// Now is the time of the decision.
	Now time.Time
	// FaultBackoff is the retry schedule for failed writes (zero: 1 s
	// doubling to 5 min).
	FaultBackoff filter.Backoff
}

// Write is one hardware write the daemon must make.
type Write struct {
	Key    KeyPath
	Output Output
	// Value is the device-side value (after transforms).
	Value devices.Value
	// Shadow is the shadow-side value it serves.
	Shadow devices.Value
	// Why: "desired", "failsafe", "boot" or "restore".
	Why string
	// Needs lists indexes of earlier writes (interlocked partners switching
	// off) that must have succeeded before this one is made; see
	// Decision.Ready.
	Needs []int
}

// Decision is Plan's answer: the writes to make, in order, and each key's
// provisional result (as if every write succeeds). Pass it, with what
// happened, to Outcome.
type Decision struct {
	Writes []Write
	// Results holds each desired key's provisional result and each unknown
	// key's rejection; keys with nothing to say are absent.
	Results map[KeyPath]Result
	// Wake is when Plan must be called again even if nothing else happens
	// (a deferred toggle or a fault retry falls due); zero: no timer.
	Wake time.Time

	in      Input
	keys    []keyPlan
	unknown []unknownKey
}

type targetKind int

const (
	targetNone targetKind = iota
	targetDesired
	targetFailsafe
	targetBoot
	targetRestore
)

func (t targetKind) String() string {
	return [...]string{"none", "desired", "failsafe", "boot", "restore"}[t]
}

type action int

const (
	actNone    action = iota // target met, or no target
	actWrite                 // write in Decision.Writes[write]
	actPending               // deferred until applyAt (or indefinitely)
	actRetry                 // waiting for a fault retry
)

// keyPlan is the decision for one desired key.
type keyPlan struct {
	k   *DesiredKey
	out Output
	tr  transform
	ks  KeyState

	raw     any
	present bool
	rejectR *Result // validation / interlock rejection

	kind      targetKind
	target    devices.Value // shadow side
	targetDev devices.Value // device side

	obs     devices.Value
	haveObs bool

	act     action
	write   int
	applyAt time.Time
	waitMsg string

	result *Result // provisional result; nil: keep the previous one
	drop   bool    // forget the previous result (and remove its status)
}

type unknownKey struct {
	key KeyPath
	raw any
}

// Plan decides, for every desired key in the spec and every unknown key
// in the desired documents, what to write and what to report. It is pure
// and level-triggered: it compares the target of each output (desired,
// failsafe, boot or restored value) with what the output holds, so calling
// it again with the same Input gives the same Decision and calling it when
// nothing changed gives no writes.
func Plan(in Input) Decision {
	d := Decision{in: in, Results: map[KeyPath]Result{}}
	if in.Spec == nil {
		return d
	}
	for i := range in.Spec.Desired {
		d.keys = append(d.keys, planKey(in, &in.Spec.Desired[i]))
	}
	d.interlocks()
	d.schedule()
	d.findUnknown()
	for i := range d.keys {
		kp := &d.keys[i]
		d.decideResult(kp)
		if kp.result != nil {
			d.Results[kp.k.Key] = *kp.result
		} else if kp.ks.Result != nil && !kp.drop {
			d.Results[kp.k.Key] = *kp.ks.Result
		}
		if (kp.act == actPending || kp.act == actRetry) && !kp.applyAt.IsZero() {
			d.Wake = earliest(d.Wake, kp.applyAt)
		}
	}
	for _, u := range d.unknown {
		d.Results[u.key] = d.unknownResult(u)
	}
	return d
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// planKey validates the key's desired value and picks its target.
func planKey(in Input, k *DesiredKey) keyPlan {
	kp := keyPlan{k: k, out: Output{k.Device, k.Property}, ks: in.State.Keys[k.Key]}
	var prop *devices.Property
	if p, ok := in.Props[kp.out]; ok {
		prop = &p
	}
	kp.obs, kp.haveObs = in.Observed[kp.out]
	if kp.haveObs && kp.obs.Type() == 0 {
		kp.haveObs = false
	}
	tr, trErr := newTransform(k, prop)
	kp.tr = tr
	sh, known := in.Shadows[k.Key.Shadow]
	if known {
		kp.raw, kp.present = lookup(sh.Desired, k.Key.Path)
	}

	// The device-side value of a shadow value, checked against the device.
	toDev := func(v devices.Value) (devices.Value, error) {
		if trErr != nil {
			return devices.Value{}, trErr
		}
		dv := tr.toDevice(v)
		if prop != nil {
			if err := prop.Check(dv); err != nil {
				return devices.Value{}, fmt.Errorf("%s: %v maps to %v on %s, which the device refuses (%w)", k.Key.Path, v, dv, kp.out, err)
			}
		} else if dv.Type() == devices.TypeNumber && !finite(dv.Number()) {
			return devices.Value{}, fmt.Errorf("%s: %v maps to %v on %s, not a finite number; check the key's transform", k.Key.Path, v, dv, kp.out)
		}
		return dv, nil
	}

	var want devices.Value
	var wantDev devices.Value
	desiredOK := false
	if kp.present {
		v, err := parse(k, kp.raw)
		if err == nil {
			wantDev, err = toDev(v)
		}
		if err != nil {
			kp.rejectR = &Result{Status: Rejected, Code: CodeInvalid, Message: err.Error()}
		} else {
			want, desiredOK = v, true
		}
	}

	set := func(kind targetKind, v devices.Value) bool {
		if !checkShadow(k, v) {
			return false
		}
		dv, err := toDev(v)
		if err != nil {
			return false
		}
		kp.kind, kp.target, kp.targetDev = kind, v, dv
		return true
	}
	failsafe := k.Safety.FailsafeAfter > 0 && in.Offline >= k.Safety.FailsafeAfter
	switch {
	case failsafe && set(targetFailsafe, k.Safety.Failsafe):
	case desiredOK:
		kp.kind, kp.target, kp.targetDev = targetDesired, want, wantDev
	case known && kp.ks.FailsafeAt.IsZero():
		// Nothing (valid) desired: leave the output as it is.
	default:
		// Before the shadow is known (start-up), or back from a failsafe
		// with nothing valid desired: the value last applied, else the
		// boot value.
		if kp.ks.Applied != nil {
			if v, ok := fromAny(kp.ks.Applied, k.Type); ok && set(targetRestore, v) {
				break
			}
		}
		set(targetBoot, k.Safety.Boot)
	}
	return kp
}

func finite(x float64) bool { return x == x && x-x == 0 }

// met reports whether the output already holds the key's target.
func (kp *keyPlan) met() bool {
	if kp.kind == targetNone {
		return true
	}
	if !kp.haveObs {
		return false
	}
	if sameValue(kp.obs, kp.targetDev) {
		return true
	}
	// The hardware holds the value in its own resolution: the target is
	// the value last applied and the output still reads as it did right
	// after that write.
	if kp.kind == targetDesired || kp.kind == targetRestore {
		if kp.ks.Applied != nil && shadowdoc.Equal(kp.ks.Applied, kp.target.Any()) {
			if rb, ok := fromAny(kp.ks.ReadBack, kp.obs.Type()); ok && sameValue(rb, kp.obs) {
				return true
			}
		}
	}
	return false
}

// currentOn: whether the output is on now, in shadow terms; unknown
// outputs count as possibly on.
func (kp *keyPlan) currentOn() (on, known bool) {
	if !kp.haveObs {
		return false, false
	}
	return isOn(kp.tr.toShadow(kp.obs)), true
}

// interlocks rejects keys asked to switch on while a partner in their
// group is, or is asked to be, on: the newcomers lose (all of them when
// none of the group is on yet); the key already on keeps its state.
func (d *Decision) interlocks() {
	byKey := map[KeyPath]int{}
	for i := range d.keys {
		byKey[d.keys[i].k.Key] = i
	}
	for _, g := range d.in.Spec.Interlocks {
		var members []int
		for _, key := range g.Keys {
			if i, ok := byKey[key]; ok && !slices.Contains(members, i) {
				members = append(members, i)
			}
		}
		finalOn := func(i int) bool {
			kp := &d.keys[i]
			if kp.kind != targetNone {
				return isOn(kp.target)
			}
			on, _ := kp.currentOn()
			return on
		}
		var onKeys, newcomers []int
		for _, i := range members {
			if finalOn(i) {
				onKeys = append(onKeys, i)
				if on, _ := d.keys[i].currentOn(); !on {
					newcomers = append(newcomers, i)
				}
			}
		}
		if len(onKeys) < 2 {
			continue
		}
		for _, i := range newcomers {
			kp := &d.keys[i]
			var others []string
			for _, j := range onKeys {
				if j != i {
					others = append(others, d.keys[j].k.Key.Path)
				}
			}
			if kp.kind == targetDesired {
				kp.rejectR = &Result{Status: Rejected, Code: CodeConflict, Message: fmt.Sprintf(
					"%s: interlock %q allows one key on at a time and %s %s on or asked on; switch %s off first",
					kp.k.Key.Path, g.Name, strings.Join(others, " and "), isAre(len(others)), strings.Join(others, " and "))}
			}
			kp.kind = targetNone
		}
	}
}

func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}

// schedule turns targets into writes, deferrals and retries, and orders
// the writes so that nothing in an interlock group switches on before its
// partners are off.
func (d *Decision) schedule() {
	now := d.in.Now
	for i := range d.keys {
		kp := &d.keys[i]
		if kp.met() {
			continue
		}
		if kp.ks.Faults > 0 && kp.ks.Result != nil && kp.ks.Result.Status == Fault && now.Before(kp.ks.Result.ApplyAt) {
			if tried, ok := fromAny(kp.ks.Tried, kp.targetDev.Type()); ok && sameValue(tried, kp.targetDev) {
				kp.act, kp.applyAt = actRetry, kp.ks.Result.ApplyAt
				continue
			}
		}
		if mt := kp.k.Safety.MinToggleInterval; mt > 0 {
			last := d.in.State.Outputs[kp.out].LastChange
			if !last.IsZero() && now.Sub(last) < mt {
				kp.act, kp.applyAt = actPending, last.Add(mt)
				kp.waitMsg = fmt.Sprintf("min_toggle_interval %v: %s changed at %s", mt, kp.out, last.UTC().Format(time.RFC3339))
				continue
			}
		}
		kp.act = actWrite
	}

	// Interlock sequencing: a key switching on waits for every partner that
	// is (or may be) on to be switched off in this batch.
	groups := d.groupsOf()
	for i := range d.keys {
		kp := &d.keys[i]
		if kp.act != actWrite || !isOn(kp.target) {
			continue
		}
		for _, j := range groups[i] {
			p := &d.keys[j]
			on, known := p.currentOn()
			if known && !on {
				continue
			}
			if p.act == actWrite && !isOn(p.target) {
				continue // switched off first, see Needs below
			}
			kp.act = actPending
			switch {
			case p.act == actPending || p.act == actRetry:
				kp.applyAt = p.applyAt
				kp.waitMsg = fmt.Sprintf("interlock: waits for %s to switch off", p.k.Key.Path)
			case !known:
				kp.waitMsg = fmt.Sprintf("interlock: waits until the state of %s (%s) is known", p.k.Key.Path, p.out)
			default:
				kp.waitMsg = fmt.Sprintf("interlock: waits for %s to switch off", p.k.Key.Path)
			}
			break
		}
	}

	// Order: everything that does not switch on first, then what switches
	// on; spec order within each.
	var order []int
	for pass := 0; pass < 2; pass++ {
		for i := range d.keys {
			if d.keys[i].act == actWrite && isOn(d.keys[i].target) == (pass == 1) {
				order = append(order, i)
			}
		}
	}
	for _, i := range order {
		kp := &d.keys[i]
		kp.write = len(d.Writes)
		d.Writes = append(d.Writes, Write{Key: kp.k.Key, Output: kp.out, Value: kp.targetDev, Shadow: kp.target, Why: kp.kind.String()})
	}
	for _, i := range order {
		kp := &d.keys[i]
		if !isOn(kp.target) {
			continue
		}
		for _, j := range groups[i] {
			p := &d.keys[j]
			if p.act == actWrite && !isOn(p.target) {
				if on, known := p.currentOn(); on || !known {
					d.Writes[kp.write].Needs = append(d.Writes[kp.write].Needs, p.write)
				}
			}
		}
		sort.Ints(d.Writes[kp.write].Needs)
	}
}

// groupsOf lists, per key index, the indexes of its interlock partners.
func (d *Decision) groupsOf() map[int][]int {
	byKey := map[KeyPath]int{}
	for i := range d.keys {
		byKey[d.keys[i].k.Key] = i
	}
	out := map[int][]int{}
	for _, g := range d.in.Spec.Interlocks {
		for _, a := range g.Keys {
			ia, ok := byKey[a]
			if !ok {
				continue
			}
			for _, b := range g.Keys {
				if ib, ok := byKey[b]; ok && ib != ia && !slices.Contains(out[ia], ib) {
					out[ia] = append(out[ia], ib)
				}
			}
		}
	}
	return out
}

// Ready reports whether write i may be made: every write it needs
// (an interlocked partner switching off) was made and succeeded. done
// holds the outcomes of writes 0…i-1 as the daemon made them.
func (d Decision) Ready(i int, done []Done) bool {
	for _, j := range d.Writes[i].Needs {
		if j >= len(done) || done[j].Skipped || done[j].Err != nil {
			return false
		}
	}
	return true
}

// version is the desired version a result for kp answers.
func (d *Decision) version(key KeyPath, raw any, prev KeyState) int64 {
	if prev.Result != nil && shadowdoc.Equal(prev.Answers, answer(raw)) {
		return prev.Result.Version
	}
	return d.in.Shadows[key.Shadow].Version
}

// stick keeps the previous result's time when nothing else changed.
func stick(r Result, prev *Result, now time.Time) *Result {
	if prev != nil && r.same(*prev) {
		r.At = prev.At
	} else {
		r.At = now
	}
	return &r
}

// decideResult sets kp.result: the provisional result, assuming writes
// succeed.
func (d *Decision) decideResult(kp *keyPlan) {
	prev := kp.ks.Result
	ver := d.version(kp.k.Key, kp.raw, kp.ks)
	var r Result
	switch {
	case kp.kind == targetFailsafe:
		r = Result{Status: Failsafe, Code: CodeFailsafe, Message: fmt.Sprintf(
			"offline for longer than %v: output held at its failsafe value %v", kp.k.Safety.FailsafeAfter, kp.target)}
		r.FailsafeAt = kp.ks.FailsafeAt
		if r.FailsafeAt.IsZero() {
			r.FailsafeAt = d.in.Now
		}
		if kp.act == actPending || kp.act == actRetry {
			r.Message += fmt.Sprintf(" (deferred: %s)", kp.waitMsg)
			r.ApplyAt = kp.applyAt
		}
	case kp.rejectR != nil:
		r = *kp.rejectR
	case kp.kind != targetDesired && prev != nil && prev.Status == Failsafe && kp.kind != targetNone:
		// back online with nothing (valid) desired: the output returns to
		// the value in force before the failsafe.
		r = Result{Status: Applied, Code: CodeApplied, FailsafeAt: prev.FailsafeAt, Message: fmt.Sprintf(
			"failsafe ended: output back at its %s value %v", kp.kind, kp.target)}
	case kp.kind == targetNone && !kp.present && prev != nil && (prev.Status == Pending || prev.Status == Fault):
		// desired was withdrawn while its change waited or failed: there
		// is nothing left to answer, so the status goes.
		kp.result, kp.drop = nil, true
		return
	case kp.kind != targetDesired:
		kp.result = nil // nothing new to say about desired
		return
	case kp.act == actRetry:
		kp.result = prev
		return
	case kp.act == actPending:
		r = Result{Status: Pending, Code: CodePending, ApplyAt: kp.applyAt}
		if kp.applyAt.IsZero() {
			r.Message = kp.waitMsg
		} else {
			r.Message = fmt.Sprintf("%s; applies at %s", kp.waitMsg, kp.applyAt.UTC().Format(time.RFC3339))
		}
	default:
		if kp.act == actNone && prev != nil && prev.Status == Rejected && kp.k.OnReject == Revert && shadowdoc.Equal(kp.ks.Applied, kp.raw) {
			// desired was reverted to the value in force: the rejection
			// stays the explanation.
			kp.result = prev
			return
		}
		r = Result{Status: Applied, Code: CodeApplied, FailsafeAt: kp.ks.FailsafeAt}
		if r.FailsafeAt.IsZero() && prev != nil && prev.Status == Applied && shadowdoc.Equal(kp.ks.Answers, answer(kp.raw)) {
			r.FailsafeAt = prev.FailsafeAt
		}
		if !r.FailsafeAt.IsZero() {
			r.Message = "applied; while offline the output was held at its failsafe value from " + r.FailsafeAt.UTC().Format(time.RFC3339)
		}
	}
	r.Version = ver
	kp.result = stick(r, prev, d.in.Now)
}

// findUnknown walks every desired document for keys no DesiredKey maps.
func (d *Decision) findUnknown() {
	mapped := map[string]map[string]bool{}   // shadow → path
	prefixes := map[string]map[string]bool{} // shadow → path prefix
	for _, k := range d.in.Spec.Desired {
		if mapped[k.Key.Shadow] == nil {
			mapped[k.Key.Shadow], prefixes[k.Key.Shadow] = map[string]bool{}, map[string]bool{}
		}
		mapped[k.Key.Shadow][k.Key.Path] = true
		parts := strings.Split(k.Key.Path, ".")
		for i := 1; i < len(parts); i++ {
			prefixes[k.Key.Shadow][strings.Join(parts[:i], ".")] = true
		}
	}
	names := make([]string, 0, len(d.in.Shadows))
	for name := range d.in.Shadows {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		var walk func(m map[string]any, prefix string)
		walk = func(m map[string]any, prefix string) {
			ks := make([]string, 0, len(m))
			for k := range m {
				ks = append(ks, k)
			}
			sort.Strings(ks)
			for _, k := range ks {
				v := m[k]
				p := k
				if prefix != "" {
					p = prefix + "." + k
				}
				if v == nil || mapped[name][p] {
					continue
				}
				if sub, ok := v.(map[string]any); ok && prefixes[name][p] {
					walk(sub, p)
					continue
				}
				d.unknown = append(d.unknown, unknownKey{key: KeyPath{Shadow: name, Path: p}, raw: v})
			}
		}
		walk(d.in.Shadows[name].Desired, "")
	}
}

func (d *Decision) unknownResult(u unknownKey) Result {
	prev := d.in.State.Keys[u.key]
	where := "the classic shadow"
	if u.key.Shadow != "" {
		where = fmt.Sprintf("shadow %q", u.key.Shadow)
	}
	r := Result{Status: Rejected, Code: CodeUnknown, Message: fmt.Sprintf(
		"%s: no desired key %q is configured in %s; nothing was changed (check the spelling, or map it in the config)", u.key.Path, u.key.Path, where)}
	r.Version = d.version(u.key, u.raw, prev)
	return *stick(r, prev.Result, d.in.Now)
}
