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
