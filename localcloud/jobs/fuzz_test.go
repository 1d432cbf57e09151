package jobs

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// FuzzHandle feeds untrusted request payloads (and job IDs in topics) to
// an engine holding a queued and a running job: it must never panic,
// must answer every request with exactly one valid JSON reply, and must
// keep every execution's status valid and its version from going back.
func FuzzHandle(f *testing.F) {
	for _, s := range []struct {
		op      uint8
		jobID   string
		payload string
	}{
		{0, "", `{}`},
		{1, "", `{"statusDetails":{"a":"b"},"stepTimeoutInMinutes":5}`},
		{2, "$next", `{"includeJobDocument":false,"executionNumber":"1"}`},
		{3, "run", `{"status":"SUCCEEDED","expectedVersion":"2","includeJobExecutionState":true,"includeJobDocument":"true"}`},
		{3, "queued", `{"status":"IN_PROGRESS","stepTimeoutInMinutes":-1,"clientToken":"t"}`},
		{4, "", `{"jobId":"new","targets":["dev"],"document":{"a":1},"timeoutConfig":{"inProgressTimeoutInMinutes":1}}`},
		{5, "", `{"jobId":"run","thingName":"dev","force":true}`},
		{3, "run", `{"status":1e400}`},
		{3, "run", "\xff"},
	} {
		f.Add(s.op, s.jobID, []byte(s.payload))
	}
	f.Fuzz(func(t *testing.T, op uint8, jobID string, payload []byte) {
		e := New(Options{})
		now := time.Unix(1_700_000_000, 0)
		for _, b := range []string{
			`{"jobId":"queued","targets":["dev"],"document":{}}`,
			`{"jobId":"run","targets":["dev"],"document":{"x":1}}`,
		} {
			e.Handle(ManagementPrefix+OpCreate, []byte(b), now)
		}
		e.Handle(deviceTopic("dev", "start-next"), []byte(`{"stepTimeoutInMinutes":1}`), now)
		versions := map[string]int64{}
		for id, x := range e.things["dev"] {
			versions[id] = x.VersionNumber
		}
		topics := []string{
			deviceTopic("dev", "get"), deviceTopic("dev", "start-next"),
			deviceTopic("dev", jobID+"/get"), deviceTopic("dev", jobID+"/update"),
			ManagementPrefix + OpCreate, ManagementPrefix + OpCancel, ManagementPrefix + OpList, ManagementPrefix + OpDescribe,
		}
		topic := topics[int(op)%len(topics)]
		res, ok := e.Handle(topic, payload, now.Add(time.Duration(op)*time.Second))
		if !ok {
			if strings.Contains(jobID, "/") || strings.ContainsAny(jobID, "+#") || jobID == "" {
				return // not a request topic at all
			}
			t.Fatalf("%s not handled", topic)
		}
		replies := 0
		for _, m := range res.Messages {
			if !json.Valid(m.Payload) {
				t.Fatalf("%s: invalid JSON %q", m.Topic, m.Payload)
			}
			if strings.HasSuffix(m.Topic, "/accepted") || strings.HasSuffix(m.Topic, "/rejected") {
				replies++
			}
		}
		if replies != 1 {
			t.Fatalf("%s: %d replies in %v", topic, replies, res.Messages)
		}
		for id, x := range e.things["dev"] {
			if !x.Status.valid() || x.VersionNumber < versions[id] {
				t.Fatalf("execution %s: status %q version %d (was %d)", id, x.Status, x.VersionNumber, versions[id])
			}
		}
	})
}
