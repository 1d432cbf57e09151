package iot

import (
	"context"
	"testing"
	"time"
)

func TestCallOnOnlineCallsOnlyForOnlineAndStops(t *testing.T) {
	events := make(chan Event, 4)
	events <- Event{Type: EventOffline}
	events <- Event{Type: EventOnline}
	events <- Event{Type: EventConnectFailed}
	events <- Event{Type: EventOnline}
	calls := make(chan struct{}, 4)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		CallOnOnline(ctx, events, func() { calls <- struct{}{} })
	}()
	for i := 0; i < 2; i++ {
		select {
		case <-calls:
		case <-time.After(5 * time.Second):
			t.Fatalf("f called %d times for two EventOnline", i)
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("CallOnOnline did not return after its context ended")
	}
	if len(calls) != 0 {
		t.Errorf("f called %d more times for events that were not EventOnline", len(calls))
	}

	// A closed Watch channel ends it too.
	closed := make(chan Event)
	close(closed)
	CallOnOnline(context.Background(), closed, func() { t.Error("f called on a closed channel") })
}
