package agent

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// An agent stopped while it is still starting (its shadows not yet got,
// its devices not yet open) stops normally: Run returns nil and no device
// is reported faulty. A supervisor on trial would otherwise roll back a
// good configuration because of a "context canceled" open.
func TestStopWhileStartingIsNotAFault(t *testing.T) {
	r := newRig(t)
	cfg := parseConfig(t, greenhouse, r.dir)
	rec := newRecorder()
	ag, err := New(cfg, Deps{HAL: r.hal, Endpoint: "tcp://127.0.0.1:1", Events: rec.add,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)), Clock: HALClock(r.clock),
		StopTimeout: time.Second, FirstGetWait: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan error, 1)
	go func() { done <- ag.Run(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run stopped while starting: %v, want nil (a normal stop)", err)
		}
	case <-time.After(wait):
		t.Fatal("Run did not return")
	}
	for _, e := range rec.since(0) {
		if e.Kind == EventFault {
			t.Errorf("a stop while starting reported a fault: %s %s", e.Device, e.Message)
		}
	}
	if d := rec.dump(0); !strings.Contains(d, string(EventStopped)) {
		t.Errorf("no stopped event:\n%s", d)
	}
}
