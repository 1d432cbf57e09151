package jobs

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// harness drives an engine with a fake clock.
type harness struct {
	t   *testing.T
	e   *Engine
	now time.Time
}

func newHarness(t *testing.T) *harness {
	return &harness{t: t, e: New(Options{}), now: t0}
}

// do publishes one request and returns the messages by topic (the last
// one wins) in order.
func (h *harness) do(topic, payload string) (Result, map[string]map[string]any) {
	h.t.Helper()
	res, ok := h.e.Handle(topic, []byte(payload), h.now)
	if !ok {
		h.t.Fatalf("%s: not handled", topic)
	}
	return res, byTopic(h.t, res)
}

func byTopic(t *testing.T, res Result) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, m := range res.Messages {
		var v map[string]any
		if err := json.Unmarshal(m.Payload, &v); err != nil {
			t.Fatalf("%s: payload %s is not a JSON object: %v", m.Topic, m.Payload, err)
		}
		out[m.Topic] = v
	}
	return out
}

// accepted runs a request that must be accepted and returns the reply.
func (h *harness) accepted(topic, payload string) map[string]any {
	h.t.Helper()
	_, msgs := h.do(topic, payload)
	r, ok := msgs[topic+"/accepted"]
	if !ok {
		h.t.Fatalf("%s %s: want accepted, got %v", topic, payload, msgs)
	}
	return r
}

// rejected runs a request that must be rejected with code.
func (h *harness) rejected(topic, payload, code string) map[string]any {
	h.t.Helper()
	res, msgs := h.do(topic, payload)
	r, ok := msgs[topic+"/rejected"]
	if !ok || r["code"] != code {
		h.t.Fatalf("%s %s: want rejected %s, got %v", topic, payload, code, msgs)
	}
	if len(res.Changed) != 0 || len(res.Messages) != 1 {
		h.t.Fatalf("%s %s: a rejection changed %v / sent %d messages", topic, payload, res.Changed, len(res.Messages))
	}
	return r
}

func (h *harness) create(id string, things []string, extra string) map[string]map[string]any {
	h.t.Helper()
	targets, _ := json.Marshal(things)
	body := fmt.Sprintf(`{"clientToken":"c","jobId":%q,"targets":%s,"document":{"op":%q}%s}`, id, targets, id, extra)
	_, msgs := h.do(ManagementPrefix+OpCreate, body)
	if _, ok := msgs[ManagementPrefix+OpCreate+"/accepted"]; !ok {
		h.t.Fatalf("create %s: %v", id, msgs)
	}
	return msgs
}

const thing = "dev1"

func dt(rest string) string { return deviceTopic(thing, rest) }

func execOf(t *testing.T, reply map[string]any) map[string]any {
	t.Helper()
	x, ok := reply["execution"].(map[string]any)
	if !ok {
		t.Fatalf("reply has no execution: %v", reply)
	}
	return x
}

func TestCreateNotifiesEveryTarget(t *testing.T) {
	h := newHarness(t)
	msgs := h.create("j1", []string{"a", "b", "a"}, "")
	for _, th := range []string{"a", "b"} {
		n := msgs[deviceTopic(th, "notify")]
		q := n["jobs"].(map[string]any)["QUEUED"].([]any)
		if len(q) != 1 || q[0].(map[string]any)["jobId"] != "j1" || q[0].(map[string]any)["versionNumber"] != 1.0 {
			t.Errorf("%s notify = %v", th, n)
		}
		nn := msgs[deviceTopic(th, "notify-next")]
		x := execOf(t, nn)
		if x["jobId"] != "j1" || x["status"] != "QUEUED" || x["jobDocument"].(map[string]any)["op"] != "j1" {
			t.Errorf("%s notify-next = %v", th, nn)
		}
	}
	h.rejected(ManagementPrefix+OpCreate, `{"jobId":"j1","targets":["a"],"document":{}}`, CodeResourceAlreadyExists)
}

func TestCreateRejections(t *testing.T) {
	big := `{"x":"` + strings.Repeat("a", DefaultMaxDocumentBytes) + `"}`
	for name, body := range map[string]string{
		"bad id":          `{"jobId":"a b","targets":["a"],"document":{}}`,
		"no targets":      `{"jobId":"j","targets":[],"document":{}}`,
		"bad thing":       `{"jobId":"j","targets":["a/b"],"document":{}}`,
		"array document":  `{"jobId":"j","targets":["a"],"document":[1]}`,
		"no document":     `{"jobId":"j","targets":["a"]}`,
		"big document":    `{"jobId":"j","targets":["a"],"document":` + big + `}`,
		"timeout 0":       `{"jobId":"j","targets":["a"],"document":{},"timeoutConfig":{"inProgressTimeoutInMinutes":0}}`,
		"timeout too big": `{"jobId":"j","targets":["a"],"document":{},"timeoutConfig":{"inProgressTimeoutInMinutes":10081}}`,
	} {
		t.Run(name, func(t *testing.T) {
			newHarness(t).rejected(ManagementPrefix+OpCreate, body, CodeInvalidRequest)
		})
	}
	t.Run("bad json", func(t *testing.T) {
		newHarness(t).rejected(ManagementPrefix+OpCreate, `{"jobId":`, CodeInvalidJSON)
	})
	t.Run("unknown field", func(t *testing.T) {
		newHarness(t).rejected(ManagementPrefix+OpCreate, `{"job":"j","targets":["a"],"document":{}}`, CodeInvalidJSON)
	})
	t.Run("unknown op", func(t *testing.T) {
		newHarness(t).rejected(ManagementPrefix+"delete", `{}`, CodeInvalidTopic)
	})
}

// TestUpdateTransitions covers every status a device may ask for from
// every status an execution can be in.
func TestUpdateTransitions(t *testing.T) {
	all := []Status{Queued, InProgress, Succeeded, Failed, TimedOut, Rejected, Removed, Canceled}
	// setup brings the execution of j1 on thing into status from.
	setup := func(h *harness, from Status) {
		h.create("j1", []string{thing}, `,"timeoutConfig":{"inProgressTimeoutInMinutes":5}`)
		switch from {
		case InProgress, Succeeded, Failed, Rejected:
			h.accepted(dt("start-next"), `{}`)
			if from != InProgress {
				h.accepted(dt("j1/update"), fmt.Sprintf(`{"status":%q}`, from))
			}
		case TimedOut:
			h.accepted(dt("start-next"), `{}`)
			h.now = h.now.Add(5 * time.Minute)
			h.e.Tick(h.now)
		case Canceled:
			h.accepted(ManagementPrefix+OpCancel, `{"jobId":"j1"}`)
		case Removed:
			h.accepted(ManagementPrefix+OpRemove, `{"jobId":"j1","thingName":"`+thing+`"}`)
		}
		if got := h.e.things[thing]["j1"].Status; got != from {
			t.Fatalf("setup: status %s, want %s", got, from)
		}
	}
	for _, from := range all {
		for _, to := range all {
			t.Run(fmt.Sprintf("%s→%s", from, to), func(t *testing.T) {
				h := newHarness(t)
				setup(h, from)
				v := h.e.things[thing]["j1"].VersionNumber
				body := fmt.Sprintf(`{"status":%q,"clientToken":"tok","includeJobExecutionState":true}`, to)
				var want string
				switch {
				case from.Terminal():
					want = CodeTerminalStateReached
				case to == InProgress || to == Succeeded || to == Failed || to == Rejected:
					want = ""
				default:
					want = CodeInvalidStateTransition
				}
				if want != "" {
					r := h.rejected(dt("j1/update"), body, want)
					st := r["executionState"].(map[string]any)
					if r["clientToken"] != "tok" || st["status"] != string(from) || st["versionNumber"] != float64(v) {
						t.Errorf("rejection = %v", r)
					}
					return
				}
				r := h.accepted(dt("j1/update"), body)
				st := r["executionState"].(map[string]any)
				if r["clientToken"] != "tok" || st["status"] != string(to) || st["versionNumber"] != float64(v+1) {
					t.Errorf("reply = %v, want %s at version %d", r, to, v+1)
				}
				if _, ok := r["jobDocument"]; ok {
					t.Errorf("reply has a job document without includeJobDocument: %v", r)
				}
			})
		}
	}
}

func TestStartNextAndDescribe(t *testing.T) {
	h := newHarness(t)
	// Nothing pending: accepted with no execution.
	if r := h.accepted(dt("start-next"), `{"clientToken":"x"}`); r["execution"] != nil || r["clientToken"] != "x" {
		t.Fatalf("empty start-next = %v", r)
	}
	if r := h.accepted(dt("$next/get"), `{}`); r["execution"] != nil {
		t.Fatalf("empty $next = %v", r)
	}
	h.rejected(dt("nope/get"), `{}`, CodeResourceNotFound)
	h.create("j1", []string{thing}, "")
	h.now = h.now.Add(time.Second)
	h.create("j2", []string{thing}, "")

	r := h.accepted(dt("$next/get"), `{"includeJobDocument":false}`)
	if x := execOf(t, r); x["jobId"] != "j1" || x["jobDocument"] != nil {
		t.Fatalf("$next = %v", r)
	}
	res, msgs := h.do(dt("start-next"), `{"statusDetails":{"step":"download"},"stepTimeoutInMinutes":2}`)
	x := execOf(t, msgs[dt("start-next/accepted")])
	if x["jobId"] != "j1" || x["status"] != "IN_PROGRESS" || x["versionNumber"] != 2.0 || x["startedAt"] != float64(h.now.Unix()) ||
		x["statusDetails"].(map[string]any)["step"] != "download" || x["approximateSecondsBeforeTimedOut"] != 120.0 || x["jobDocument"] == nil {
		t.Fatalf("start-next = %v", x)
	}
	// The pending list changed (j1 moved to IN_PROGRESS); $next did not.
	if _, ok := msgs[dt("notify")]; !ok {
		t.Errorf("no notify after start: %v", msgs)
	}
	if _, ok := msgs[dt("notify-next")]; ok {
		t.Errorf("notify-next although $next is still j1: %v", msgs)
	}
	if len(res.Changed) != 1 || res.Changed[0] != "j1" {
		t.Errorf("changed = %v", res.Changed)
	}
	// A second start-next returns the IN_PROGRESS one unchanged.
	res, msgs = h.do(dt("start-next"), `{"statusDetails":{"step":"other"}}`)
	if x := execOf(t, msgs[dt("start-next/accepted")]); x["jobId"] != "j1" || x["versionNumber"] != 2.0 || len(res.Changed) != 0 {
		t.Fatalf("repeated start-next = %v, changed %v", x, res.Changed)
	}
	// get lists both.
	r = h.accepted(dt("get"), `{}`)
	ip, q := r["inProgressJobs"].([]any), r["queuedJobs"].([]any)
	if len(ip) != 1 || len(q) != 1 || ip[0].(map[string]any)["jobId"] != "j1" || q[0].(map[string]any)["jobId"] != "j2" {
		t.Fatalf("get = %v", r)
	}
	// Describe by execution number.
	x = execOf(t, h.accepted(dt("j2/get"), `{"executionNumber":2}`))
	if x["jobId"] != "j2" || x["jobDocument"].(map[string]any)["op"] != "j2" {
		t.Fatalf("describe j2 = %v", x)
	}
	h.rejected(dt("j2/get"), `{"executionNumber":1}`, CodeResourceNotFound)
	// Finishing j1 makes j2 next: notify-next carries j2 with its document.
	_, msgs = h.do(dt("j1/update"), `{"status":"SUCCEEDED","expectedVersion":2,"includeJobDocument":true}`)
	if msgs[dt("j1/update/accepted")]["jobDocument"] == nil {
		t.Errorf("update reply without the document: %v", msgs)
	}
	if x := execOf(t, msgs[dt("notify-next")]); x["jobId"] != "j2" || x["jobDocument"] == nil {
		t.Errorf("notify-next = %v", msgs[dt("notify-next")])
	}
	n := msgs[dt("notify")]["jobs"].(map[string]any)
	if n["IN_PROGRESS"] != nil || len(n["QUEUED"].([]any)) != 1 {
		t.Errorf("notify = %v", n)
	}
	// Finishing j2 empties the list: notify {"jobs":{}} and notify-next
	// without an execution.
	h.accepted(dt("start-next"), `{}`)
	_, msgs = h.do(dt("j2/update"), `{"status":"FAILED"}`)
	if n := msgs[dt("notify")]; len(n["jobs"].(map[string]any)) != 0 {
		t.Errorf("final notify = %v", n)
	}
	if nn, ok := msgs[dt("notify-next")]; !ok || nn["execution"] != nil || nn["timestamp"] == nil {
		t.Errorf("final notify-next = %v (present %v)", nn, ok)
	}
	if got := h.e.jobs["j2"].Status; got != JobCompleted {
		t.Errorf("job j2 is %s after its only execution ended, want COMPLETED", got)
	}
}

func TestVersionAndExecutionNumberChecks(t *testing.T) {
	h := newHarness(t)
	h.create("j1", []string{thing}, "")
	h.accepted(dt("start-next"), `{}`) // version 2
	r := h.rejected(dt("j1/update"), `{"status":"IN_PROGRESS","expectedVersion":1}`, CodeVersionMismatch)
	if st := r["executionState"].(map[string]any); st["versionNumber"] != 2.0 {
		t.Errorf("mismatch state = %v", st)
	}
	// Strings as the v1 Python SDK sent them. A progress update changes
	// neither the pending list nor $next: no notify, no notify-next.
	res, msgs := h.do(dt("j1/update"), `{"status":"IN_PROGRESS","expectedVersion":"2","executionNumber":"1","statusDetails":{"pct":"50"}}`)
	if _, ok := msgs[dt("j1/update/accepted")]; !ok || len(res.Messages) != 1 || len(res.Changed) != 1 {
		t.Fatalf("progress update: %v, changed %v", msgs, res.Changed)
	}
	if x := h.e.things[thing]["j1"]; x.VersionNumber != 3 || x.StatusDetails["pct"] != "50" {
		t.Fatalf("after progress update: %+v", x)
	}
	h.rejected(dt("j1/update"), `{"status":"IN_PROGRESS","executionNumber":7}`, CodeResourceNotFound)
	h.rejected(dt("nojob/update"), `{"status":"IN_PROGRESS"}`, CodeResourceNotFound)
}

func TestDeviceRequestRejections(t *testing.T) {
	h := newHarness(t)
	h.create("j1", []string{thing}, "")
	for _, c := range []struct{ topic, body, code string }{
		{dt("j1/update"), `{"status":`, CodeInvalidJSON},
		{dt("j1/update"), `[1]`, CodeInvalidJSON},
		{dt("j1/update"), `{}`, CodeInvalidRequest},
		{dt("j1/update"), `{"status":"DONE"}`, CodeInvalidRequest},
		{dt("j1/update"), `{"status":"IN_PROGRESS","expectedVersion":"x"}`, CodeInvalidRequest},
		{dt("j1/update"), `{"status":"IN_PROGRESS","expectedVersion":1.5}`, CodeInvalidRequest},
		{dt("j1/update"), `{"status":"IN_PROGRESS","expectedVersion":-1}`, CodeInvalidRequest},
		{dt("j1/update"), `{"status":"IN_PROGRESS","stepTimeoutInMinutes":10081}`, CodeInvalidRequest},
		{dt("j1/update"), `{"status":"IN_PROGRESS","statusDetails":{"a":1}}`, CodeInvalidRequest},
		{dt("j1/update"), `{"status":"IN_PROGRESS","statusDetails":{"a b":"x"}}`, CodeInvalidRequest},
		{dt("j1/update"), `{"status":"IN_PROGRESS","statusDetails":{"a":""}}`, CodeInvalidRequest},
		{dt("j1/update"), `{"status":"IN_PROGRESS","clientToken":"` + strings.Repeat("t", 65) + `"}`, CodeInvalidRequest},
		{dt("start-next"), `{"stepTimeoutInMinutes":-1}`, CodeInvalidRequest},
		{dt("j1/get"), `{"includeJobDocument":"maybe"}`, CodeInvalidRequest},
		{dt("bad.id/get"), `{}`, CodeInvalidTopic},
		{dt("$next/update"), `{"status":"IN_PROGRESS"}`, CodeInvalidTopic},
	} {
		h.rejected(c.topic, c.body, c.code)
	}
	if _, ok := h.e.Handle("$aws/things/dev1/jobs/notify", []byte(`{}`), h.now); ok {
		t.Error("a publish on notify was handled as a request")
	}
	if _, ok := h.e.Handle("$aws/things/dev1/shadow/get", nil, h.now); ok {
		t.Error("a shadow topic was handled")
	}
}

func TestTimeouts(t *testing.T) {
	t.Run("step", func(t *testing.T) {
		h := newHarness(t)
		h.create("j1", []string{thing}, "")
		h.accepted(dt("start-next"), `{"stepTimeoutInMinutes":2}`)
		if d, ok := h.e.NextDeadline(); !ok || !d.Equal(t0.Add(2*time.Minute)) {
			t.Fatalf("deadline %v %v", d, ok)
		}
		h.now = t0.Add(90 * time.Second)
		if res := h.e.Tick(h.now); len(res.Messages) != 0 {
			t.Fatalf("tick before the deadline sent %v", res.Messages)
		}
		// Renew the step timer: 3 more minutes from now.
		h.accepted(dt("j1/update"), `{"status":"IN_PROGRESS","stepTimeoutInMinutes":3}`)
		h.now = t0.Add(4 * time.Minute)
		if res := h.e.Tick(h.now); len(res.Messages) != 0 {
			t.Fatalf("renewed timer expired early: %v", res.Messages)
		}
		h.now = t0.Add(90*time.Second + 3*time.Minute)
		res := h.e.Tick(h.now)
		msgs := byTopic(t, res)
		if x := h.e.things[thing]["j1"]; x.Status != TimedOut || len(res.Changed) != 1 {
			t.Fatalf("after the step timeout: %s, changed %v", x.Status, res.Changed)
		}
		if nn, ok := msgs[dt("notify-next")]; !ok || nn["execution"] != nil {
			t.Errorf("notify-next = %v", msgs)
		}
		h.rejected(dt("j1/update"), `{"status":"SUCCEEDED"}`, CodeTerminalStateReached)
		if _, ok := h.e.NextDeadline(); ok {
			t.Error("a deadline is left after the timeout")
		}
	})
	t.Run("step timer cancelled", func(t *testing.T) {
		h := newHarness(t)
		h.create("j1", []string{thing}, "")
		h.accepted(dt("start-next"), `{"stepTimeoutInMinutes":1}`)
		h.accepted(dt("j1/update"), `{"status":"IN_PROGRESS","stepTimeoutInMinutes":-1}`)
		h.now = t0.Add(time.Hour)
		h.e.Tick(h.now)
		if s := h.e.things[thing]["j1"].Status; s != InProgress {
			t.Errorf("status %s after the step timer was cancelled", s)
		}
	})
	t.Run("in progress", func(t *testing.T) {
		h := newHarness(t)
		h.create("j1", []string{thing}, `,"timeoutConfig":{"inProgressTimeoutInMinutes":10}`)
		h.now = t0.Add(time.Hour) // QUEUED executions do not time out
		h.e.Tick(h.now)
		start := h.now
		h.accepted(dt("start-next"), `{"stepTimeoutInMinutes":60}`)
		h.now = start.Add(9 * time.Minute)
		// Updates do not extend the in-progress timer.
		x := execOf(t, h.accepted(dt("j1/get"), `{}`))
		if x["approximateSecondsBeforeTimedOut"] != 60.0 {
			t.Errorf("seconds before timeout = %v", x["approximateSecondsBeforeTimedOut"])
		}
		h.now = start.Add(10 * time.Minute)
		// A request at or after the deadline sees the timeout first: the
		// timeout's notifications go out with the rejection.
		_, msgs := h.do(dt("j1/update"), `{"status":"SUCCEEDED"}`)
		if r := msgs[dt("j1/update/rejected")]; r["code"] != CodeTerminalStateReached {
			t.Errorf("update after the deadline: %v", msgs)
		}
		if nn, ok := msgs[dt("notify-next")]; !ok || nn["execution"] != nil {
			t.Errorf("no empty notify-next with the timeout: %v", msgs)
		}
		if s := h.e.things[thing]["j1"].Status; s != TimedOut {
			t.Errorf("status %s", s)
		}
	})
}

func TestCancelAndRemove(t *testing.T) {
	h := newHarness(t)
	h.create("j1", []string{"a", "b", "c"}, "")
	h.accepted(deviceTopic("a", "start-next"), `{}`)
	h.accepted(deviceTopic("b", "start-next"), `{}`)
	h.accepted(deviceTopic("b", "j1/update"), `{"status":"SUCCEEDED"}`)

	// Cancelling one IN_PROGRESS execution needs force.
	h.rejected(ManagementPrefix+OpCancel, `{"jobId":"j1","thingName":"a"}`, CodeInvalidStateTransition)
	h.rejected(ManagementPrefix+OpCancel, `{"jobId":"j1","thingName":"b"}`, CodeInvalidStateTransition)
	h.rejected(ManagementPrefix+OpCancel, `{"jobId":"j1","thingName":"a","force":true,"expectedVersion":9}`, CodeVersionMismatch)
	h.rejected(ManagementPrefix+OpCancel, `{"jobId":"nope"}`, CodeResourceNotFound)
	h.rejected(ManagementPrefix+OpCancel, `{"jobId":"j1","thingName":"zz"}`, CodeResourceNotFound)

	// Cancelling the job without force: c (QUEUED) is cancelled, a keeps
	// running.
	_, msgs := h.do(ManagementPrefix+OpCancel, `{"jobId":"j1","comment":"stop"}`)
	if st := h.e.things["c"]["j1"].Status; st != Canceled {
		t.Fatalf("c is %s", st)
	}
	if st := h.e.things["a"]["j1"].Status; st != InProgress {
		t.Fatalf("a is %s", st)
	}
	if nn, ok := msgs[deviceTopic("c", "notify-next")]; !ok || nn["execution"] != nil {
		t.Errorf("c's notify-next = %v", msgs)
	}
	if _, ok := msgs[deviceTopic("a", "notify")]; ok {
		t.Errorf("a was notified although its list did not change")
	}
	h.rejected(ManagementPrefix+OpCancel, `{"jobId":"j1"}`, CodeInvalidStateTransition)
	// Force cancels the running one.
	h.accepted(ManagementPrefix+OpCancel, `{"jobId":"j1","force":true}`)
	if st := h.e.things["a"]["j1"].Status; st != Canceled {
		t.Fatalf("a is %s after force", st)
	}
	h.rejected(deviceTopic("a", "j1/update"), `{"status":"SUCCEEDED"}`, CodeTerminalStateReached)
	h.rejected(ManagementPrefix+OpCancel, `{"jobId":"j1","force":true}`, CodeInvalidStateTransition)

	// Remove.
	h.create("j2", []string{"a"}, "")
	h.rejected(ManagementPrefix+OpRemove, `{"jobId":"j2"}`, CodeInvalidRequest)
	h.accepted(ManagementPrefix+OpRemove, `{"jobId":"j2","thingName":"a"}`)
	if st := h.e.things["a"]["j2"].Status; st != Removed {
		t.Fatalf("j2 on a is %s", st)
	}
	if st := h.e.jobs["j2"].Status; st != JobCompleted {
		t.Errorf("j2 is %s with every execution ended", st)
	}
	h.rejected(ManagementPrefix+OpCancel, `{"jobId":"j2"}`, CodeInvalidStateTransition)
}

func TestListAndDescribe(t *testing.T) {
	h := newHarness(t)
	h.create("j1", []string{"a", "b"}, `,"description":"first"`)
	h.now = h.now.Add(time.Second)
	h.create("j2", []string{"a"}, "")
	h.accepted(deviceTopic("a", "start-next"), `{}`)

	var rep Reply
	decode := func(m map[string]any) {
		b, _ := json.Marshal(m)
		rep = Reply{}
		if err := json.Unmarshal(b, &rep); err != nil {
			t.Fatal(err)
		}
	}
	decode(h.accepted(ManagementPrefix+OpList, `{"clientToken":"l"}`))
	if len(rep.Jobs) != 2 || rep.Jobs[0].JobID != "j1" || rep.Jobs[0].ExecutionCounts[InProgress] != 1 || rep.Jobs[0].ExecutionCounts[Queued] != 1 || rep.ClientToken != "l" {
		t.Fatalf("list = %+v", rep)
	}
	decode(h.accepted(ManagementPrefix+OpList, `{"thingName":"a"}`))
	if len(rep.Executions) != 2 || rep.Executions[0].JobID != "j1" || rep.Executions[0].Status != InProgress {
		t.Fatalf("list a = %+v", rep)
	}
	decode(h.accepted(ManagementPrefix+OpList, `{"thingName":"a","status":"QUEUED"}`))
	if len(rep.Executions) != 1 || rep.Executions[0].JobID != "j2" {
		t.Fatalf("list a QUEUED = %+v", rep)
	}
	h.rejected(ManagementPrefix+OpList, `{"thingName":"zz"}`, CodeResourceNotFound)
	decode(h.accepted(ManagementPrefix+OpDescribe, `{"jobId":"j1"}`))
	if rep.Job == nil || rep.Job.Description != "first" || string(rep.Job.Document) != `{"op":"j1"}` || len(rep.Job.Executions) != 2 {
		t.Fatalf("describe j1 = %+v", rep.Job)
	}
	decode(h.accepted(ManagementPrefix+OpDescribe, `{"jobId":"j1","thingName":"b"}`))
	if rep.Execution == nil || rep.Execution.Status != Queued || string(rep.Execution.JobDocument) != `{"op":"j1"}` {
		t.Fatalf("describe j1/b = %+v", rep.Execution)
	}
	h.rejected(ManagementPrefix+OpDescribe, `{"jobId":"zz"}`, CodeResourceNotFound)
}

func TestPersistRoundTrip(t *testing.T) {
	h := newHarness(t)
	h.create("j1", []string{"a", "b"}, `,"timeoutConfig":{"inProgressTimeoutInMinutes":3}`)
	h.accepted(deviceTopic("a", "start-next"), `{"statusDetails":{"k":"v"},"stepTimeoutInMinutes":2}`)
	rec, ok := h.e.MarshalJob("j1")
	if !ok {
		t.Fatal("no record")
	}
	e2 := New(Options{})
	if err := e2.Load(rec); err != nil {
		t.Fatal(err)
	}
	h2 := &harness{t: t, e: e2, now: h.now}
	x := execOf(t, h2.accepted(deviceTopic("a", "j1/get"), `{}`))
	if x["status"] != "IN_PROGRESS" || x["statusDetails"].(map[string]any)["k"] != "v" || x["versionNumber"] != 2.0 || x["approximateSecondsBeforeTimedOut"] != 120.0 {
		t.Fatalf("after load: %v", x)
	}
	// Loading sends nothing and a no-op change sends no notify.
	if _, msgs := h2.do(deviceTopic("a", "start-next"), `{}`); len(msgs) != 1 {
		t.Errorf("messages after load: %v", msgs)
	}
	// New executions get fresh numbers after a load.
	h2.create("j2", []string{"a"}, "")
	if n := e2.things["a"]["j2"].ExecutionNumber; n != 3 {
		t.Errorf("execution number after load = %d, want 3", n)
	}
	// Timers survive.
	h2.now = t0.Add(2 * time.Minute)
	h2.e.Tick(h2.now)
	if s := e2.things["a"]["j1"].Status; s != TimedOut {
		t.Errorf("status %s after the stored step timer ran out", s)
	}
	for _, bad := range []string{`{`, `{"jobId":"x y","executions":{}}`, `{"jobId":"x"}`, `{"jobId":"x","executions":{"a":{"jobId":"x","thingName":"b","status":"QUEUED"}}}`} {
		if err := New(Options{}).Load([]byte(bad)); err == nil {
			t.Errorf("Load(%s) succeeded", bad)
		}
	}
}
