package sim

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pinshadow/pinshadow/agent"
	"github.com/pinshadow/pinshadow/config"
	"github.com/pinshadow/pinshadow/shadowsync/reconcile"
)

// Line kinds of the live account, in the order a desired change travels.
const (
	KindCloud    = "cloud"    // the local cloud and how to reach it
	KindScenario = "scenario" // a scenario step (narration, press, fault, restart)
	KindDesired  = "desired"  // desired state changed in the cloud
	KindPin      = "pin"      // a GPIO output changed
	KindPWM      = "pwm"      // a PWM channel changed
	KindReported = "reported" // the shadow accepted a reported value of a desired key
	KindInSync   = "in-sync"  // desired and reported agree: the delta is cleared
	KindReport   = "report"   // the shadow accepted sensor readings
	KindRejected = "rejected" // the agent refused a desired value, and why
	KindOnReject = "on_reject"
	KindStatus   = "status"  // a key is pending or in failsafe
	KindFault    = "fault"   // a read or write failed
	KindOnline   = "online"  // the agent (re)connected
	KindOffline  = "offline" // the agent lost the connection
	KindReady    = "ready"   // the agent's first convergence
	KindJob      = "job"     // an AWS IoT job's execution changed status
	KindSummary  = "summary"
)

// quietKinds are the lines --quiet keeps.
var quietKinds = map[string]bool{KindCloud: true, KindScenario: true, KindDesired: true, KindInSync: true,
	KindRejected: true, KindOnReject: true, KindFault: true, KindOnline: true, KindOffline: true, KindJob: true, KindSummary: true}

// Account prints the live account of a simulation: one line per event,
// timestamped from the start. It correlates what it sees — a desired
// change published, the output that changed for it, the reported value
// the shadow accepted — to print each step's latency. Safe for concurrent
// use.
type Account struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
	json  bool
	quiet bool

	desiredDev map[string]string   // shadow key (shadow\x00path) → device
	patches    map[string]bool     // keys whose on_reject patches desired
	devKeys    map[string][]string // device → shadow keys it serves
	sensorKeys map[string]bool

	pending      map[string]*pend // desired changes not yet in sync
	desired      map[string]any   // last desired value seen per key
	lastFault    map[string]string
	rejectedKeys map[string]bool // keys rejected whose on_reject patch may follow

	rejected, cleared int
	latencies         []time.Duration
	jobsEnded         map[string]int // terminal job status → count
}

type pend struct {
	since time.Time
	wrote bool
}

// AccountOptions configure NewAccount.
type AccountOptions struct {
	// Start is time zero of the timestamps.
	Start time.Time
	// JSON prints one JSON object per line instead of text.
	JSON bool
	// Quiet leaves out output changes and sensor reports.
	Quiet bool
}

// NewAccount returns an account printing to w for the keys of cfg.
func NewAccount(w io.Writer, cfg *config.Config, o AccountOptions) *Account {
	a := &Account{w: w, start: o.Start, json: o.JSON, quiet: o.Quiet,
		desiredDev: map[string]string{}, patches: map[string]bool{}, devKeys: map[string][]string{}, sensorKeys: map[string]bool{},
		pending: map[string]*pend{}, desired: map[string]any{}, lastFault: map[string]string{}, rejectedKeys: map[string]bool{},
		jobsEnded: map[string]int{}}
	if a.start.IsZero() {
		a.start = time.Now()
	}
	spec := cfg.Spec()
	for _, k := range spec.Desired {
		id := pkey(k.Key.Shadow, k.Key.Path)
		a.desiredDev[id] = k.Device
		a.patches[id] = k.OnReject != reconcile.Keep
		a.devKeys[k.Device] = append(a.devKeys[k.Device], id)
	}
	for _, k := range spec.Reported {
		a.sensorKeys[pkey(k.Key.Shadow, k.Key.Path)] = true
	}
	return a
}

func pkey(shadow, path string) string { return shadow + "\x00" + path }

func showKey(id string) string {
	shadow, path, _ := strings.Cut(id, "\x00")
	if shadow == "" {
		return path
	}
	return shadow + ":" + path
}

// Printf prints one line of the given kind.
func (a *Account) Printf(kind, format string, args ...any) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.line(time.Now(), kind, fmt.Sprintf(format, args...), nil)
}

// line prints; the caller holds mu.
func (a *Account) line(t time.Time, kind, text string, fields map[string]any) {
	if a.quiet && !quietKinds[kind] {
		return
	}
	sec := t.Sub(a.start).Seconds()
	if sec < 0 {
		sec = 0
	}
	if a.json {
		m := map[string]any{"t": math.Round(sec*1e6) / 1e6, "kind": kind, "text": text}
		for k, v := range fields {
			m[k] = v
		}
		b, err := json.Marshal(m)
		if err != nil {
			b, _ = json.Marshal(map[string]any{"t": sec, "kind": kind, "text": text})
		}
		fmt.Fprintf(a.w, "%s\n", b)
		return
	}
	fmt.Fprintf(a.w, "%8.3fs  %-9s %s\n", sec, kind, text)
}

// Step prints a scenario step as it is carried out.
func (a *Account) Step(s Step) {
	if s.Kind == StepDesired {
		return // printed by Sent with what the cloud side sends
	}
	a.Printf(KindScenario, "%s", s.Describe())
}

// Sent records a desired change the cloud side is about to publish.
func (a *Account) Sent(shadow string, patch map[string]any, t time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	where := ""
	if shadow != "" {
		where = " (shadow " + shadow + ")"
	}
	a.line(t, KindDesired, formatPatch(patch)+where, map[string]any{"shadow": shadow, "desired": patch})
	for path, v := range flatten("", patch) {
		id := pkey(shadow, path)
		a.desired[id] = v
		if _, known := a.desiredDev[id]; known {
			a.pending[id] = &pend{since: t}
		}
	}
}

// Change prints an output change made by the agent on the simulated
// hardware, with the time since the desired change it serves.
func (a *Account) Change(c Change) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var text string
	kind := KindPin
	fields := map[string]any{"device": c.Device, "line": c.Line}
	if c.PWM {
		kind = KindPWM
		text = fmt.Sprintf("%s %s → %s at %s", c.Device, c.Line, percent(c.Duty), hertz(c.Freq))
		fields["duty"] = c.Duty
	} else {
		state := "off"
		if c.Level {
			state = "on"
		}
		wire := "low"
		if c.Physical {
			wire = "high"
		}
		if c.ActiveLow {
			wire += ", active-low"
		}
		verb := "→"
		if c.Open {
			verb = "opened"
		}
		text = fmt.Sprintf("%s %s %s %s (wire %s)", c.Device, c.Line, verb, state, wire)
		fields["on"] = c.Level
	}
	for _, id := range a.devKeys[c.Device] {
		if p := a.pending[id]; p != nil && !p.wrote && !c.Open {
			p.wrote = true
			lat := c.Time.Sub(p.since)
			text += fmt.Sprintf("  [%s after desired]", ms(lat))
			fields["latency_ms"] = float64(lat.Microseconds()) / 1000
		}
	}
	a.line(c.Time, kind, text, fields)
}

// Document takes an update/documents message from the cloud side: desired
// changes made by others, reported values accepted, deltas cleared.
func (a *Account) Document(shadow string, d Documents, mine bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	v := d.Current.Version
	prevD, curD := flatten("", d.Previous.State.Desired), flatten("", d.Current.State.Desired)
	prevR, curR := flatten("", d.Previous.State.Reported), flatten("", d.Current.State.Reported)
	changedD := diff(prevD, curD)
	if len(changedD) > 0 && !mine {
		patch := map[string]any{}
		who := "the agent's on_reject"
		for _, k := range changedD {
			patch[k] = curD[k]
			if !a.rejectedKeys[pkey(shadow, k)] {
				who = "another client"
			}
		}
		if who != "another client" {
			for _, k := range changedD {
				delete(a.rejectedKeys, pkey(shadow, k))
			}
		}
		a.line(d.Received, KindDesired, fmt.Sprintf("%s (v%d, from %s)", formatFlat(patch, changedD), v, who),
			map[string]any{"shadow": shadow, "desired": patch, "version": v})
	}
	for _, k := range changedD {
		id := pkey(shadow, k)
		a.desired[id] = curD[k]
		if _, known := a.desiredDev[id]; !known {
			continue
		}
		if _, still := curD[k]; !still {
			delete(a.pending, id)
			continue
		}
		if p := a.pending[id]; p == nil || !mine {
			a.pending[id] = &pend{since: d.Received}
		}
	}
	var outs, sensors []string
	for _, k := range diff(prevR, curR) {
		if strings.HasPrefix(k, "_status") {
			continue
		}
		if curR[k] != nil {
			delete(a.lastFault, pkey(shadow, k)) // a value again: a new fault is news
		}
		if _, isOut := a.desiredDev[pkey(shadow, k)]; isOut {
			outs = append(outs, k)
		} else {
			sensors = append(sensors, k)
		}
	}
	if len(outs) > 0 {
		a.line(d.Received, KindReported, fmt.Sprintf("%s (v%d)", formatFlat(pick(curR, outs), outs), v),
			map[string]any{"shadow": shadow, "reported": pick(curR, outs), "version": v})
	}
	if len(sensors) > 0 {
		a.line(d.Received, KindReport, fmt.Sprintf("%s (v%d)", formatFlat(pick(curR, sensors), sensors), v),
			map[string]any{"shadow": shadow, "reported": pick(curR, sensors), "version": v})
	}
	ids := make([]string, 0, len(a.pending))
	for id := range a.pending {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		sh, path, _ := strings.Cut(id, "\x00")
		if sh != shadow {
			continue
		}
		dv, inD := curD[path]
		rv, inR := curR[path]
		if !inD || !inR || !jsonEqual(dv, rv) {
			continue
		}
		lat := d.Received.Sub(a.pending[id].since)
		delete(a.pending, id)
		if lat == 0 {
			// Desired moved to what was already reported (an on_reject
			// revert): nothing travelled, so there is no latency to tell.
			a.line(d.Received, KindInSync, fmt.Sprintf("%s=%s: desired matches reported again (v%d)", showKey(id), jsonText(dv), v),
				map[string]any{"key": showKey(id), "value": dv})
			continue
		}
		a.cleared++
		a.latencies = append(a.latencies, lat)
		a.line(d.Received, KindInSync, fmt.Sprintf("%s=%s: delta cleared %s after desired (v%d)", showKey(id), jsonText(dv), ms(lat), v),
			map[string]any{"key": showKey(id), "value": dv, "latency_ms": float64(lat.Microseconds()) / 1000})
	}
}

// Rejected prints an update the shadow service refused.
func (a *Account) Rejected(shadow string, code int, msg string) {
	a.Printf(KindRejected, "the shadow service refused the update: %d %s", code, msg)
}

// Agent prints what matters of the agent's own events: rejections and
// their on_reject patches, faults, statuses, connection changes.
func (a *Account) Agent(e agent.Event) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t := e.Time
	if t.IsZero() {
		t = time.Now()
	}
	// The agent names a key of a named shadow "name/path".
	id := pkey(e.Shadow, strings.TrimPrefix(e.Key, e.Shadow+"/"))
	key := showKey(id)
	fields := map[string]any{"key": key, "status": e.Status, "message": e.Message}
	switch e.Kind {
	case agent.EventReject:
		a.rejected++
		if a.patches[id] {
			a.rejectedKeys[id] = true
		}
		val := ""
		if v, ok := a.desired[id]; ok {
			val = "=" + jsonText(v)
			fields["value"] = v
		}
		a.line(t, KindRejected, fmt.Sprintf("%s%s not applied, hardware untouched: %s", key, val, e.Message), fields)
	case agent.EventDesiredPatch:
		patch, _ := e.Value.(map[string]any)
		fields["desired"] = e.Value
		if e.Message != "" {
			a.line(t, KindOnReject, fmt.Sprintf("desired %s not sent yet: %s (the agent tries again)", formatPatch(patch), e.Message), fields)
			return
		}
		a.line(t, KindOnReject, fmt.Sprintf("the agent sets desired %s", formatPatch(patch)), fields)
	case agent.EventResult:
		if e.Status == "pending" || e.Status == "failsafe" {
			a.line(t, KindStatus, fmt.Sprintf("%s %s: %s", key, e.Status, e.Message), fields)
		}
	case agent.EventFault, agent.EventSensorError, agent.EventStateError:
		what := key
		if e.Key == "" {
			what = e.Device
		}
		if a.lastFault[id] == e.Message {
			return // retried with backoff and failed the same way
		}
		a.lastFault[id] = e.Message
		if what != "" {
			what += ": "
		}
		a.line(t, KindFault, what+e.Message, fields)
	case agent.EventFailsafe:
		a.line(t, KindStatus, fmt.Sprintf("%s failsafe %s: %s", key, jsonText(e.Value), e.Message), fields)
	case agent.EventOnline:
		a.line(t, KindOnline, "the agent is connected to "+e.Message, fields)
	case agent.EventOffline:
		a.line(t, KindOffline, "the agent lost the connection ("+e.Message+"); it reconnects with backoff", fields)
	case agent.EventReady:
		a.line(t, KindReady, "the agent has converged with its shadows", fields)
	case agent.EventReloadRefused:
		a.line(t, KindFault, "reload refused: "+e.Message, fields)
	}
}

// Job prints a job execution's new status as the cloud side sees it, with
// its statusDetails.
func (a *Account) Job(u JobUpdate) {
	a.mu.Lock()
	defer a.mu.Unlock()
	text := "job " + u.JobID + " " + u.Status
	if len(u.Details) > 0 {
		keys := make([]string, 0, len(u.Details))
		for k := range u.Details {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + "=" + u.Details[k]
		}
		text += " (" + strings.Join(parts, ", ") + ")"
	}
	switch u.Status {
	case "SUCCEEDED", "FAILED", "REJECTED", "TIMED_OUT", "CANCELED", "REMOVED":
		a.jobsEnded[u.Status]++
	}
	a.line(time.Now(), KindJob, text, map[string]any{"job": u.JobID, "status": u.Status, "details": u.Details})
}

// Summary prints the totals: applied, rejected, deltas cleared and their
// median latency.
func (a *Account) Summary() {
	a.mu.Lock()
	defer a.mu.Unlock()
	lat := append([]time.Duration(nil), a.latencies...)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	med := "-"
	if len(lat) > 0 {
		med = ms(lat[len(lat)/2])
	}
	text := fmt.Sprintf("%d deltas cleared (median %s after desired), %d values rejected", a.cleared, med, a.rejected)
	if len(a.jobsEnded) > 0 {
		sts := make([]string, 0, len(a.jobsEnded))
		for st := range a.jobsEnded {
			sts = append(sts, st)
		}
		sort.Strings(sts)
		for _, st := range sts {
			text += fmt.Sprintf(", %d job(s) %s", a.jobsEnded[st], st)
		}
	}
	a.line(time.Now(), KindSummary, text, map[string]any{"cleared": a.cleared, "rejected": a.rejected, "jobs": a.jobsEnded})
}

// flatten returns the leaves of m as dotted paths.
func flatten(prefix string, m map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		if sub, ok := v.(map[string]any); ok && len(sub) > 0 {
			for sk, sv := range flatten(p, sub) {
				out[sk] = sv
			}
			continue
		}
		out[p] = v
	}
	return out
}

// diff returns the sorted paths whose value differs between a and b
// (present in one only, or not equal as JSON).
func diff(a, b map[string]any) []string {
	var ks []string
	for k, bv := range b {
		if av, ok := a[k]; !ok || !jsonEqual(av, bv) {
			ks = append(ks, k)
		}
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			ks = append(ks, k)
		}
	}
	sort.Strings(ks)
	return ks
}

func pick(m map[string]any, keys []string) map[string]any {
	out := make(map[string]any, len(keys))
	for _, k := range keys {
		out[k] = m[k]
	}
	return out
}

func jsonEqual(a, b any) bool { return jsonText(a) == jsonText(b) }

func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// formatPatch renders a patch as k=v pairs in key order (nested keys
// dotted).
func formatPatch(p map[string]any) string {
	f := flatten("", p)
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return formatFlat(f, keys)
}

func formatFlat(f map[string]any, keys []string) string {
	parts := make([]string, len(keys))
	for i, k := range keys {
		v, ok := f[k]
		if !ok {
			parts[i] = k + "=null"
			continue
		}
		parts[i] = k + "=" + jsonText(v)
	}
	return strings.Join(parts, " ")
}

// ms renders a latency with a precision that suits it.
func ms(d time.Duration) string {
	switch {
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000)
	case d < time.Second:
		return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
	}
	return d.Round(time.Millisecond).String()
}

func hertz(f float64) string {
	if f >= 1000 {
		return fmt.Sprintf("%g kHz", f/1000)
	}
	return fmt.Sprintf("%g Hz", f)
}
