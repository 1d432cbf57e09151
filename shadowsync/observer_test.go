package shadowsync

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// recordingObserver keeps what an Observer was told.
type recordingObserver struct {
	mu       sync.Mutex
	inFlight int
	maxIn    int
	done     []string // "op code"
}

func (r *recordingObserver) RequestStarted(string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inFlight++
	r.maxIn = max(r.maxIn, r.inFlight)
}

func (r *recordingObserver) RequestDone(op string, code int, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inFlight--
	r.done = append(r.done, fmt.Sprintf("%s %d", op, code))
}

// The observer hears each request's end with the code the cloud answered,
// so metrics can count accepted and rejected requests by code.
func TestObserverSeesEveryRequestWithItsCode(t *testing.T) {
	cloud := newFakeCloud(t)
	obs := &recordingObserver{}
	c, _ := newTestClient(t, cloud, Options{Observer: obs})
	ctx := ctxT(t)
	s := open(t, c, Key{Thing: "thing1"}, ShadowOptions{NoAutoSync: true})

	_, _ = s.Get(ctx) // 404: no shadow yet
	if _, err := s.Update(ctx, UpdateRequest{Desired: map[string]any{"a": 1}}); err != nil {
		t.Fatal(err)
	}
	_, _ = s.Update(ctx, UpdateRequest{Desired: map[string]any{"a": 2}, Version: 7}) // 409
	obs.mu.Lock()
	defer obs.mu.Unlock()
	want := []string{"get 404", "update 200", "update 409"}
	if fmt.Sprint(obs.done) != fmt.Sprint(want) {
		t.Errorf("observed %v, want %v", obs.done, want)
	}
	if obs.inFlight != 0 || obs.maxIn != 1 {
		t.Errorf("in flight now %d (max %d), want 0 (max 1)", obs.inFlight, obs.maxIn)
	}
}

// DesiredAge times a desired change from the first message that brought
// it, so the agent's apply latency starts at the arrival, not at the moment
// its loop noticed the delta.
func TestMirrorDesiredAgeStartsAtArrival(t *testing.T) {
	cloud := newFakeCloud(t)
	clock := newFakeClock()
	c, _ := newTestClient(t, cloud, Options{Clock: clock})
	s := open(t, c, Key{Thing: "thing1"}, ShadowOptions{})
	if age := s.Mirror().DesiredAge; age != 0 {
		t.Fatalf("DesiredAge before any desired: %v", age)
	}
	app, _ := newTestClient(t, cloud, Options{})
	as := open(t, app, Key{Thing: "thing1"}, ShadowOptions{NoAutoSync: true})
	if _, err := as.Update(ctxT(t), UpdateRequest{Desired: map[string]any{"a": 1}}); err != nil {
		t.Fatal(err)
	}
	nextDelta(t, s)
	if age := s.Mirror().DesiredAge; age != 0 {
		t.Fatalf("DesiredAge right after the delta = %v, want 0 (the clock did not move)", age)
	}
	clock.Advance(1500 * time.Millisecond)
	if age := s.Mirror().DesiredAge; age != 1500*time.Millisecond {
		t.Errorf("DesiredAge = %v, want 1.5s", age)
	}
}
