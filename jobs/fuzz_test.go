package jobs

import (
	"context"
	"testing"
)

// FuzzReply feeds untrusted messages to the client's receive path: it must
// never panic or block, whatever the topic kind and payload.
func FuzzReply(f *testing.F) {
	for _, s := range []string{
		`{"clientToken":"x","timestamp":1700000000,"execution":{"jobId":"j","status":"QUEUED","versionNumber":"2","queuedAt":1700000000123}}`,
		`{"timestamp":"1700000000","jobs":{"IN_PROGRESS":[{"jobId":"a","versionNumber":1.0}],"QUEUED":[]}}`,
		`{"code":"VersionMismatch","executionState":{"status":"IN_PROGRESS","versionNumber":1e3}}`,
		`{"execution":{"versionNumber":1.5,"queuedAt":-1}}`,
		`[]`, `null`, ``,
	} {
		f.Add(uint8(0), []byte(s))
	}
	topics := []string{"notify", "notify-next", "get/accepted", "start-next/rejected", "j/get/accepted", "j/update/rejected", "$next/get/accepted"}
	f.Fuzz(func(t *testing.T, kind uint8, payload []byte) {
		fc := newFakeConn()
		c, err := New(context.Background(), fc, "pi", Options{NoResync: true,
			OnNotify: func(PendingJobs) {}, OnNotifyNext: func(NextJob) {}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(context.Background())
		fc.deliver(TopicPrefix("pi")+topics[int(kind)%len(topics)], payload)
	})
}
