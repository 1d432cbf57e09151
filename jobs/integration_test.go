package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pinshadow/pinshadow/iot"
	"github.com/pinshadow/pinshadow/localcloud"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const wait = 10 * time.Second

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

// startCloud runs a local cloud on addr ("127.0.0.1:0" = a free port) with
// jobs stored in dir ("" = memory) and returns it with its address.
func startCloud(t *testing.T, addr, dir string) (*localcloud.Server, string) {
	t.Helper()
	o := localcloud.DefaultOptions()
	o.Listen, o.DataDir = addr, dir
	s, err := localcloud.New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctxT(t)); err != nil {
		s.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, s.Endpoints()[0].Addr.String()
}

// connectIOT opens a connection that reconnects quickly.
func connectIOT(t *testing.T, addr, id string) *iot.Client {
	t.Helper()
	ic, err := iot.New(iot.Config{
		Endpoint: addr, Transport: iot.TransportTCP, ClientID: id,
		Backoff:        iot.BackoffConfig{Base: 20 * time.Millisecond, Max: 200 * time.Millisecond, Stable: time.Second, Jitter: iot.JitterNone},
		Queue:          iot.QueueConfig{Disabled: true},
		ConnectTimeout: wait, OperationTimeout: wait,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		ic.Close(ctx)
	})
	if err := ic.Connect(ctxT(t)); err != nil {
		t.Fatalf("connect %s: %v", addr, err)
	}
	return ic
}

// manager returns a Manager on its own connection.
func manager(t *testing.T, addr string) *Manager {
	t.Helper()
	ic := connectIOT(t, addr, fmt.Sprintf("mgr-%d", time.Now().UnixNano()))
	m, err := NewManager(ctxT(t), IOT(ic), wait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return m
}

// device is a jobs client whose notifications land on channels.
type device struct {
	*Client
	next chan NextJob
	list chan PendingJobs
}

func newDevice(t *testing.T, ic *iot.Client, thing string) *device {
	t.Helper()
	d := &device{next: make(chan NextJob, 64), list: make(chan PendingJobs, 64)}
	c, err := NewIOT(ctxT(t), ic, thing, Options{
		Timeout:      wait,
		OnNotify:     func(p PendingJobs) { d.list <- p },
		OnNotifyNext: func(n NextJob) { d.next <- n },
	})
	if err != nil {
		t.Fatal(err)
	}
	d.Client = c
	t.Cleanup(func() { c.Close(context.Background()) })
	return d
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(wait):
		t.Fatalf("no %s within %v", what, wait)
		var zero T
		return zero
	}
}

// nextUntil reads notify-next messages until one satisfies ok.
func nextUntil(t *testing.T, d *device, what string, ok func(NextJob) bool) NextJob {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case n := <-d.next:
			if ok(n) {
				return n
			}
		case <-deadline:
			t.Fatalf("no notify-next with %s within %v", what, wait)
		}
	}
}

func jobIs(id string) func(NextJob) bool {
	return func(n NextJob) bool { return n.Execution != nil && n.Execution.JobID == id }
}

func TestClientAgainstLocalCloud(t *testing.T) {
	_, addr := startCloud(t, "127.0.0.1:0", "")
	m := manager(t, addr)
	ctx := ctxT(t)
	if _, err := m.Create(ctx, CreateRequest{JobID: "j1", Targets: []string{"pi"}, Document: json.RawMessage(`{"operation":"reboot"}`)}); err != nil {
		t.Fatal(err)
	}
	_, err := m.Create(ctx, CreateRequest{JobID: "j1", Targets: []string{"pi"}, Document: json.RawMessage(`{}`)})
	var rej *RejectedError
	if !errors.Is(err, ErrAlreadyExists) || !errors.As(err, &rej) || rej.Op != "create" {
		t.Fatalf("duplicate create: %v", err)
	}

	d := newDevice(t, connectIOT(t, addr, "pi"), "pi")
	// New resyncs: the next job arrives without any notify-next message.
	if n := recv(t, d.next, "resync"); !n.Resync || n.Execution == nil || n.Execution.JobID != "j1" || string(n.Execution.JobDocument) != `{"operation":"reboot"}` {
		t.Fatalf("resync next = %+v", n)
	}
	if p := recv(t, d.list, "resync list"); len(p.Queued) != 1 || p.Queued[0].JobID != "j1" {
		t.Fatalf("resync list = %+v", p)
	}

	// Describe, $next, pending.
	x, err := d.Describe(ctx, "j1", DescribeOptions{OmitJobDocument: true})
	if err != nil || x.Status != StatusQueued || x.JobDocument != nil || x.VersionNumber != 1 || x.ExecutionNumber < 1 || x.QueuedAt.IsZero() || x.ThingName != "pi" {
		t.Fatalf("describe j1 = %+v, %v", x, err)
	}
	if _, err := d.Describe(ctx, "nope", DescribeOptions{}); !errors.Is(err, ErrResourceNotFound) {
		t.Fatalf("describe unknown job: %v", err)
	}
	// Start it.
	x, err = d.StartNext(ctx, StartNextOptions{StatusDetails: map[string]string{"step": "1"}, StepTimeoutInMinutes: 5})
	if err != nil || x.JobID != "j1" || x.Status != StatusInProgress || x.StatusDetails["step"] != "1" || x.VersionNumber != 2 ||
		x.StartedAt.IsZero() || x.ApproximateSecondsBeforeTimedOut != 300 || x.JobDocument == nil {
		t.Fatalf("start-next = %+v, %v", x, err)
	}
	if p := recv(t, d.list, "notify after start"); len(p.InProgress) != 1 || len(p.Queued) != 0 || p.Timestamp.IsZero() {
		t.Fatalf("notify = %+v", p)
	}
	if _, err := m.Create(ctx, CreateRequest{JobID: "j2", Targets: []string{"pi", "other"}, Document: json.RawMessage(`{"operation":"second"}`)}); err != nil {
		t.Fatal(err)
	}
	p, err := d.GetPending(ctx)
	if err != nil || len(p.InProgress) != 1 || p.InProgress[0].JobID != "j1" || len(p.Queued) != 1 || p.Queued[0].JobID != "j2" {
		t.Fatalf("pending = %+v, %v", p, err)
	}

	// Rejections.
	_, err = d.Update(ctx, "j1", Update{Status: StatusSucceeded, ExpectedVersion: 1})
	if !errors.Is(err, ErrVersionMismatch) || !errors.As(err, &rej) || rej.ExecutionState == nil || rej.ExecutionState.VersionNumber != 2 || rej.JobID != "j1" || rej.Thing != "pi" {
		t.Fatalf("stale update: %v (%+v)", err, rej)
	}
	if _, err := d.Update(ctx, "j1", Update{Status: StatusQueued}); !errors.Is(err, ErrInvalidStateTransition) {
		t.Fatalf("update to QUEUED: %v", err)
	}
	if _, err := d.Update(ctx, "nope", Update{Status: StatusInProgress}); !errors.Is(err, ErrResourceNotFound) {
		t.Fatalf("update unknown job: %v", err)
	}

	// Progress, then finish j1: j2 becomes next (a notify-next message).
	res, err := d.Update(ctx, "j1", Update{Status: StatusInProgress, StatusDetails: map[string]string{"step": "2"}, ExpectedVersion: 2, IncludeJobExecutionState: true})
	if err != nil || res.ExecutionState == nil || res.ExecutionState.VersionNumber != 3 || res.ExecutionState.StatusDetails["step"] != "2" || res.JobDocument != nil {
		t.Fatalf("progress update = %+v, %v", res, err)
	}
	res, err = d.Update(ctx, "j1", Update{Status: StatusSucceeded, IncludeJobDocument: true, ExecutionNumber: x.ExecutionNumber})
	if err != nil || string(res.JobDocument) != `{"operation":"reboot"}` || res.ExecutionState != nil {
		t.Fatalf("final update = %+v, %v", res, err)
	}
	if n := nextUntil(t, d, "j2", jobIs("j2")); n.Resync || string(n.Execution.JobDocument) != `{"operation":"second"}` {
		t.Fatalf("notify-next = %+v", n)
	}
	if _, err := d.Update(ctx, "j1", Update{Status: StatusFailed}); !errors.Is(err, ErrTerminalStateReached) {
		t.Fatalf("update after success: %v", err)
	}

	// Force-cancelling j2 while it runs: the device's next update fails
	// with TerminalStateReached and notify-next says nothing is left.
	if _, err := d.StartNext(ctx, StartNextOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Cancel(ctx, CancelRequest{JobID: "j2", ThingName: "pi"}); !errors.Is(err, ErrInvalidStateTransition) {
		t.Fatalf("cancel IN_PROGRESS without force: %v", err)
	}
	rep, err := m.Cancel(ctx, CancelRequest{JobID: "j2", Force: true})
	if err != nil || rep.Job == nil || rep.Job.Status != "CANCELED" {
		t.Fatalf("force cancel = %+v, %v", rep, err)
	}
	nextUntil(t, d, "no execution", func(n NextJob) bool { return n.Execution == nil && !n.Resync })
	if _, err := d.Update(ctx, "j2", Update{Status: StatusSucceeded}); !errors.As(err, &rej) || rej.Code != CodeTerminalStateReached || rej.ExecutionState.Status != StatusCanceled {
		t.Fatalf("update after cancel: %v", err)
	}
	if x, err := d.StartNext(ctx, StartNextOptions{}); err != nil || x != nil {
		t.Fatalf("start-next with nothing pending = %+v, %v", x, err)
	}
	if x, err := d.Describe(ctx, NextJobID, DescribeOptions{}); err != nil || x != nil {
		t.Fatalf("$next with nothing pending = %+v, %v", x, err)
	}

	// Management views.
	rep, err = m.List(ctx, ListRequest{ThingName: "pi"})
	if err != nil || len(rep.Executions) != 2 || rep.Executions[0].Status != "SUCCEEDED" || rep.Executions[1].Status != "CANCELED" {
		t.Fatalf("list pi = %+v, %v", rep, err)
	}
	rep, err = m.Describe(ctx, DescribeRequest{JobID: "j2"})
	if err != nil || rep.Job.ExecutionCounts["CANCELED"] != 2 || !rep.Job.ForceCanceled {
		t.Fatalf("describe j2 = %+v, %v", rep.Job, err)
	}
	if _, err := m.List(ctx, ListRequest{ThingName: "ghost"}); !errors.Is(err, ErrResourceNotFound) {
		t.Fatalf("list unknown thing: %v", err)
	}
}

// TestReconnectKeepsSubscriptions restarts the cloud under a connected
// device: after the reconnect the client resyncs, and a job created later
// reaches it as a notify-next message on the restored subscription.
func TestReconnectKeepsSubscriptions(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s1, _ := startCloud(t, addr, dir)
	d := newDevice(t, connectIOT(t, addr, "pi"), "pi")
	if n := recv(t, d.next, "initial resync"); !n.Resync || n.Execution != nil {
		t.Fatalf("initial resync = %+v", n)
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	startCloud(t, addr, dir)
	// The reconnect resyncs ($next is still empty).
	if n := recv(t, d.next, "resync after reconnect"); !n.Resync || n.Execution != nil {
		t.Fatalf("resync after reconnect = %+v", n)
	}
	m := manager(t, addr)
	if _, err := m.Create(ctxT(t), CreateRequest{JobID: "after", Targets: []string{"pi"}, Document: json.RawMessage(`{"x":1}`)}); err != nil {
		t.Fatal(err)
	}
	if n := nextUntil(t, d, "the new job", jobIs("after")); n.Resync {
		t.Fatalf("the new job came from a resync, not from notify-next: %+v", n)
	}
}
