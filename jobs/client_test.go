package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeConn records publishes and lets the test deliver messages.
type fakeConn struct {
	mu        sync.Mutex
	handler   func(topic string, payload []byte)
	filters   []string
	published chan published
}

type published struct {
	topic string
	body  map[string]any
}

func newFakeConn() *fakeConn { return &fakeConn{published: make(chan published, 16)} }

func (f *fakeConn) Publish(_ context.Context, topic string, _ byte, payload []byte) error {
	var m map[string]any
	d := json.NewDecoder(strings.NewReader(string(payload)))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		return err
	}
	f.published <- published{topic, m}
	return nil
}

func (f *fakeConn) Subscribe(_ context.Context, filters []string, _ byte, h func(string, []byte)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.filters, f.handler = filters, h
	return nil
}

func (f *fakeConn) Unsubscribe(context.Context, ...string) error { return nil }

func (f *fakeConn) deliver(topic string, payload []byte) {
	f.mu.Lock()
	h := f.handler
	f.mu.Unlock()
	h(topic, payload)
}

func (f *fakeConn) request(t *testing.T) published {
	t.Helper()
	select {
	case p := <-f.published:
		return p
	case <-time.After(wait):
		t.Fatal("no request published")
		return published{}
	}
}

func TestRequestWireFormatAndCorrelation(t *testing.T) {
	fc := newFakeConn()
	c, err := New(context.Background(), fc, "pi", Options{NoResync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if want := replyFilters("pi"); strings.Join(fc.filters, " ") != strings.Join(want, " ") {
		t.Fatalf("subscribed %v", fc.filters)
	}
	type result struct {
		r   *UpdateResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := c.Update(context.Background(), "j1", Update{
			Status: StatusInProgress, StatusDetails: map[string]string{"a": "b"}, ExpectedVersion: 3,
			ExecutionNumber: 7, IncludeJobExecutionState: true, IncludeJobDocument: true, StepTimeoutInMinutes: 4,
		})
		done <- result{r, err}
	}()
	req := fc.request(t)
	if req.topic != "$aws/things/pi/jobs/j1/update" {
		t.Fatalf("topic %s", req.topic)
	}
	// Numbers go as JSON numbers, not strings.
	for k, want := range map[string]string{"expectedVersion": "3", "executionNumber": "7", "stepTimeoutInMinutes": "4"} {
		if n, ok := req.body[k].(json.Number); !ok || string(n) != want {
			t.Errorf("%s = %#v, want the number %s", k, req.body[k], want)
		}
	}
	if req.body["status"] != "IN_PROGRESS" || req.body["includeJobExecutionState"] != true || req.body["includeJobDocument"] != true {
		t.Errorf("request = %v", req.body)
	}
	token, _ := req.body["clientToken"].(string)
	if token == "" || len(token) > 64 {
		t.Fatalf("clientToken %q", token)
	}
	// Replies for other tokens, other operations or other jobs are not
	// this request's.
	fc.deliver("$aws/things/pi/jobs/j1/update/accepted", []byte(`{"clientToken":"someone-else"}`))
	fc.deliver("$aws/things/pi/jobs/j2/update/accepted", []byte(`{"clientToken":"`+token+`"}`))
	fc.deliver("$aws/things/pi/jobs/j1/get/accepted", []byte(`{"clientToken":"`+token+`"}`))
	// Strings for numbers (v1 SDK style) and millisecond timestamps parse.
	fc.deliver("$aws/things/pi/jobs/j1/update/accepted", []byte(`{"clientToken":"`+token+`","timestamp":1700000000123,
		"executionState":{"status":"IN_PROGRESS","versionNumber":"4","statusDetails":{"a":"b"}},"jobDocument":{"d":1}}`))
	r := recv(t, done, "update result")
	if r.err != nil || r.r.ExecutionState.VersionNumber != 4 || string(r.r.JobDocument) != `{"d":1}` || r.r.Timestamp.UnixMilli() != 1700000000123 {
		t.Fatalf("update = %+v, %v", r.r, r.err)
	}
}

func TestRequestTimeoutAndClose(t *testing.T) {
	fc := newFakeConn()
	c, err := New(context.Background(), fc, "pi", Options{NoResync: true, Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.GetPending(context.Background())
	var te *TimeoutError
	if !errors.Is(err, ErrTimeout) || !errors.As(err, &te) || te.Op != OpGetPending || te.Cause != nil {
		t.Fatalf("no reply: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Describe(ctx, "j1", DescribeOptions{}); !errors.Is(err, context.Canceled) || !errors.Is(err, ErrTimeout) {
		t.Fatalf("cancelled context: %v", err)
	}
	if _, err := c.Describe(context.Background(), "bad id", DescribeOptions{}); err == nil {
		t.Fatal("invalid job ID accepted")
	}
	if _, err := c.Update(context.Background(), "j1", Update{Status: "DONE"}); err == nil {
		t.Fatal("invalid status accepted")
	}
	c.Close(context.Background())
	if _, err := c.StartNext(context.Background(), StartNextOptions{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
	if _, err := New(context.Background(), fc, "bad/thing", Options{}); err == nil {
		t.Fatal("invalid thing name accepted")
	}
}

// TestNotificationsLatestWins blocks the callback and checks that a newer
// notify-next replaces an undelivered older one.
func TestNotificationsLatestWins(t *testing.T) {
	fc := newFakeConn()
	got := make(chan NextJob, 8)
	release := make(chan struct{})
	c, err := New(context.Background(), fc, "pi", Options{NoResync: true, OnNotifyNext: func(n NextJob) {
		got <- n
		<-release
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	defer close(release)
	next := func(id string) string {
		return `{"timestamp":1700000000,"execution":{"jobId":"` + id + `","status":"QUEUED","versionNumber":1,"executionNumber":1,"queuedAt":1700000000,"jobDocument":{}}}`
	}
	fc.deliver("$aws/things/pi/jobs/notify-next", []byte(next("a")))
	if n := recv(t, got, "first"); n.Execution.JobID != "a" {
		t.Fatalf("first = %+v", n)
	}
	// The callback is blocked on "a": b is replaced by c.
	fc.deliver("$aws/things/pi/jobs/notify-next", []byte(next("b")))
	fc.deliver("$aws/things/pi/jobs/notify-next", []byte(next("c")))
	fc.deliver("$aws/things/pi/jobs/notify-next", []byte(`{"timestamp":1700000001}`))
	release <- struct{}{}
	if n := recv(t, got, "latest"); n.Execution != nil || n.Timestamp.Unix() != 1700000001 {
		t.Fatalf("after the block = %+v, want the newest (no execution)", n)
	}
	select {
	case n := <-got:
		t.Fatalf("an older notify-next was delivered too: %+v", n)
	default:
	}
}
