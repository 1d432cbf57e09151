package reconcile

import (
	"fmt"
	"sort"
	"time"

	"github.com/pinshadow/pinshadow/devices"
	"github.com/pinshadow/pinshadow/shadowdoc"
)

// Done is what happened to one Write.
type Done struct {
	// Skipped: the write was not made (Ready was false, or the daemon
	// stopped before it).
	Skipped bool
	// Err is the write's error (nil: written).
	Err error
	// ReadBack is what the device read back as after the write (zero
	// Value: the device cannot tell; the written value is assumed).
	ReadBack devices.Value
}

// Report is the complete result of one reconcile step.
type Report struct {
	// State to persist and pass to the next Plan.
	State State
	// Observed is Input.Observed updated with the writes made; pass it to
	// the next Plan.
	Observed map[Output]devices.Value
	// Reported holds, per shadow, the reported patch to send: only keys
	// whose value or status differs from the shadow's reported document.
	// A shadow with nothing to send is absent.
	Reported map[string]map[string]any
	// Desired holds, per shadow, the desired patch on_reject asks for
	// (clear_desired: the key set to null; revert: the last applied
	// value). Absent when there is nothing to change.
	Desired map[string]map[string]any
	// Results holds every key's current result (for agent status).
	Results map[KeyPath]Result
	// Wake is when Plan must run again (zero: only on the next delta,
	// reconnect or sensor tick).
	Wake time.Time
}

// StatusKey is the reported object holding per-key results:
// reported._status["lights.kitchen"] (the key's dotted path as one flat
// name, in the key's own shadow).
const StatusKey = "_status"

// Outcome completes a Decision with what happened to its writes (done[i]
// is the outcome of d.Writes[i]; missing entries count as skipped) and
// returns the new state, the patches to send and every key's result. It is
// pure: call it even when Plan asked for no writes.
func (d Decision) Outcome(done []Done) Report {
	in := d.in
	now := in.Now
	rep := Report{
		State:    in.State.clone(),
		Observed: make(map[Output]devices.Value, len(in.Observed)),
		Results:  map[KeyPath]Result{},
	}
	for o, v := range in.Observed {
		rep.Observed[o] = v
	}
	outcome := func(i int) Done {
		if i < len(done) {
			return done[i]
		}
		return Done{Skipped: true}
	}

	for i := range d.keys {
		kp := &d.keys[i]
		ks := kp.ks
		result := kp.result
		if kp.act == actWrite {
			od := outcome(kp.write)
			switch {
			case od.Skipped:
				if kp.kind != targetFailsafe && kp.rejectR == nil {
					// Nothing happened; the next Plan tries again. The
					// previous result stays, answering what it answered.
					result = nil
				}
				if !d.Ready(kp.write, done) {
					// a partner failed to switch off: wait for its retry.
					rep.Wake = earliest(rep.Wake, now)
				}
			case od.Err != nil:
				ks.Faults++
				ks.Tried = kp.targetDev.Any()
				delay := in.FaultBackoff.Delay(ks.Faults)
				r := Result{Status: Fault, Code: CodeFault, ApplyAt: now.Add(delay), Message: fmt.Sprintf(
					"writing %v to %s failed: %v; retrying in %v", kp.targetDev, kp.out, od.Err, delay)}
				r.Version = d.version(kp.k.Key, kp.raw, kp.ks)
				if kp.kind != targetDesired && kp.kind != targetFailsafe {
					// a boot or restore write failed: say so, answering
					// whatever desired holds.
					r.Message = fmt.Sprintf("writing the %s value %v to %s failed: %v; retrying in %v", kp.kind, kp.targetDev, kp.out, od.Err, delay)
				}
				if kp.rejectR != nil {
					r.Message = kp.rejectR.Message + "; also " + r.Message
				}
				r.At = now
				result = &r
				rep.Wake = earliest(rep.Wake, r.ApplyAt)
			default:
				got := od.ReadBack
				if got.Type() == 0 {
					got = kp.targetDev
				}
				if prev, ok := in.Observed[kp.out]; !ok || !sameValue(prev, got) {
					rep.State.Outputs[kp.out] = OutputState{LastChange: now}
				}
				rep.Observed[kp.out] = got
				ks.Faults, ks.Tried = 0, nil
				switch kp.kind {
				case targetDesired, targetRestore:
					ks.Applied, ks.ReadBack = kp.target.Any(), got.Any()
					ks.FailsafeAt = time.Time{}
				case targetBoot:
					ks.FailsafeAt = time.Time{}
				case targetFailsafe:
					if ks.FailsafeAt.IsZero() {
						ks.FailsafeAt = now
					}
				}
			}
		} else {
			if kp.kind == targetFailsafe && ks.FailsafeAt.IsZero() {
				ks.FailsafeAt = now // already at the failsafe value
			}
			if kp.kind == targetDesired && kp.act == actNone && ks.Applied == nil {
				ks.Applied = kp.target.Any() // already held: count it as applied
				ks.ReadBack = kp.obs.Any()
			}
			if kp.kind != targetFailsafe && kp.kind != targetNone && kp.act == actNone {
				ks.FailsafeAt = time.Time{} // out of failsafe, at its target
			}
		}
		if kp.drop {
			ks.Result, ks.Answers, ks.Faults, ks.Tried = nil, nil, 0, nil
		}
		if result != nil && result.Status == Applied && kp.kind == targetDesired {
			ks.AppliedVersion = result.Version
		}
		if result != nil {
			ks.Result = result
			ks.Answers = answer(kp.raw)
			rep.Results[kp.k.Key] = *result
		} else if ks.Result != nil {
			rep.Results[kp.k.Key] = *ks.Result
		}
		rep.State.Keys[kp.k.Key] = ks
		if (kp.act == actPending || kp.act == actRetry) && !kp.applyAt.IsZero() {
			rep.Wake = earliest(rep.Wake, kp.applyAt)
		}
	}

	// Unknown keys: remember their rejection; forget those no longer asked.
	current := map[KeyPath]bool{}
	for _, u := range d.unknown {
		current[u.key] = true
		r := d.Results[u.key]
		rep.State.Keys[u.key] = KeyState{Result: &r, Answers: answer(u.raw)}
		rep.Results[u.key] = r
	}
	mapped := map[KeyPath]bool{}
	for _, k := range in.Spec.Desired {
		mapped[k.Key] = true
	}
	for _, k := range in.Spec.Reported {
		mapped[k.Key] = true
	}
	for key := range rep.State.Keys {
		if !mapped[key] && !current[key] {
			delete(rep.State.Keys, key)
		}
	}

	rep.Reported = d.reportedPatches(rep, mapped)
	rep.Desired = d.desiredPatches(rep)
	return rep
}

// reportedPatches compares what the shadows should report with what they
// do report.
func (d Decision) reportedPatches(rep Report, mapped map[KeyPath]bool) map[string]map[string]any {
	out := map[string]map[string]any{}
	put := func(shadow, path string, v any) {
		if out[shadow] == nil {
			out[shadow] = map[string]any{}
		}
		setPath(out[shadow], path, v)
	}
	putStatus := func(shadow, path string, v any) {
		if out[shadow] == nil {
			out[shadow] = map[string]any{}
		}
		st, ok := out[shadow][StatusKey].(map[string]any)
		if !ok {
			st = map[string]any{}
			out[shadow][StatusKey] = st
		}
		st[path] = v
	}
	for i := range d.keys {
		kp := &d.keys[i]
		sh, known := d.in.Shadows[kp.k.Key.Shadow]
		if !known {
			continue
		}
		if obs, ok := rep.Observed[kp.out]; ok && obs.Type() != 0 {
			want := reportValue(kp, obs, rep.State.Keys[kp.k.Key])
			if cur, ok := lookup(sh.Reported, kp.k.Key.Path); !ok || !shadowdoc.Equal(cur, want) {
				put(kp.k.Key.Shadow, kp.k.Key.Path, want)
			}
		}
		if r, ok := rep.Results[kp.k.Key]; ok {
			if p, change := statusPatch(statusOf(sh.Reported, kp.k.Key.Path), r.Doc()); change {
				putStatus(kp.k.Key.Shadow, kp.k.Key.Path, p)
			}
		} else if kp.drop && statusOf(sh.Reported, kp.k.Key.Path) != nil {
			putStatus(kp.k.Key.Shadow, kp.k.Key.Path, nil)
		}
	}
	for _, u := range d.unknown {
		sh := d.in.Shadows[u.key.Shadow]
		if p, change := statusPatch(statusOf(sh.Reported, u.key.Path), rep.Results[u.key].Doc()); change {
			putStatus(u.key.Shadow, u.key.Path, p)
		}
	}
	// Statuses of keys neither mapped nor still asked for are removed.
	names := make([]string, 0, len(d.in.Shadows))
	for name := range d.in.Shadows {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		st, _ := d.in.Shadows[name].Reported[StatusKey].(map[string]any)
		for path, v := range st {
			key := KeyPath{Shadow: name, Path: path}
			if v == nil || mapped[key] {
				continue
			}
			if _, still := rep.Results[key]; !still {
				putStatus(name, path, nil)
			}
		}
	}
	return out
}

// statusPatch returns the patch turning the reported status cur into
// want. The shadow service merges objects, so fields of cur that want does
// not have (an old message, a retry_at) are set to null explicitly.
func statusPatch(cur any, want map[string]any) (map[string]any, bool) {
	if shadowdoc.Equal(cur, want) {
		return nil, false
	}
	p := make(map[string]any, len(want))
	for k, v := range want {
		p[k] = v
	}
	if m, ok := cur.(map[string]any); ok {
		for k := range m {
			if _, keep := want[k]; !keep {
				p[k] = nil
			}
		}
	}
	return p, true
}

func statusOf(reported map[string]any, path string) any {
	st, _ := reported[StatusKey].(map[string]any)
	return st[path]
}

// reportValue is what the hardware has, in shadow terms. When it is the
// device value of the last applied desired value (within float noise) the
// applied value is reported exactly, so transforms never leave a spurious
// delta; otherwise the inverse transform of the hardware's value.
func reportValue(kp *keyPlan, obs devices.Value, ks KeyState) any {
	if ks.Applied != nil && ks.FailsafeAt.IsZero() {
		if v, ok := fromAny(ks.Applied, kp.k.Type); ok && sameValue(kp.tr.toDevice(v), obs) {
			return v.Any()
		}
	}
	v := kp.tr.toShadow(obs)
	if v.Type() == devices.TypeNumber {
		return tidy(v.Number())
	}
	return v.Any()
}

// desiredPatches applies on_reject to rejected keys whose desired value
// is still the rejected one.
func (d Decision) desiredPatches(rep Report) map[string]map[string]any {
	out := map[string]map[string]any{}
	for i := range d.keys {
		kp := &d.keys[i]
		if kp.rejectR == nil || !kp.present || kp.k.OnReject == Keep {
			continue
		}
		var v any // clear_desired, or revert with nothing applied yet
		if kp.k.OnReject == Revert {
			v = rep.State.Keys[kp.k.Key].Applied
		}
		if out[kp.k.Key.Shadow] == nil {
			out[kp.k.Key.Shadow] = map[string]any{}
		}
		setPath(out[kp.k.Key.Shadow], kp.k.Key.Path, v)
	}
	return out
}
