package sim

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/pinshadow/pinshadow/agent"
)

// events records agent events and lets a test wait for one.
type events struct {
	mu   sync.Mutex
	all  []agent.Event
	more chan struct{}
}

func (e *events) add(ev agent.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.all = append(e.all, ev)
	close(e.more)
	e.more = make(chan struct{})
}

func (e *events) mark() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.all)
}

func (e *events) wait(ctx context.Context, t *testing.T, from int, what string, ok func(agent.Event) bool) agent.Event {
	t.Helper()
	for {
		e.mu.Lock()
		for _, ev := range e.all[from:] {
			if ok(ev) {
				e.mu.Unlock()
				return ev
			}
		}
		from = len(e.all)
		ch := e.more
		e.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		}
	}
}

// A console's controls drive a running simulation: a desired change from
// the cloud side reaches the hardware, an I2C fault makes the sensor fail
// until cleared, a broker restart is followed by a reconnect.
func TestControlsDriveARunningSimulation(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rec := &events{more: make(chan struct{})}
	attached := make(chan *Controls, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Config: simConfig(t), Quiet: true, Events: rec.add,
			Attach: func(c *Controls) { attached <- c }})
	}()
	var c *Controls
	select {
	case c = <-attached:
	case err := <-done:
		t.Fatalf("Run ended before attaching: %v", err)
	}
	rec.wait(ctx, t, 0, "ready", func(e agent.Event) bool { return e.Kind == agent.EventReady })

	want := map[FaultTarget]bool{{Kind: FaultI2CNACK, Device: "climate"}: false, {Kind: FaultClear, Device: "soil"}: false, {Kind: FaultRestartBroker}: false}
	for _, f := range c.Faults() {
		if _, ok := want[f]; ok {
			want[f] = true
		}
	}
	for f, seen := range want {
		if !seen {
			t.Errorf("Faults() lacks %+v: %+v", f, c.Faults())
		}
	}
	if err := c.Inject(ctx, "melt", "climate"); err == nil {
		t.Error("an unknown fault was accepted")
	}

	m := rec.mark()
	if err := c.Desired(ctx, "", map[string]any{"fan": 42}); err != nil {
		t.Fatal(err)
	}
	rec.wait(ctx, t, m, "the fan written", func(e agent.Event) bool { return e.Kind == agent.EventWrite && e.Key == "fan" })

	m = rec.mark()
	if err := c.Inject(ctx, FaultI2CNACK, "climate"); err != nil {
		t.Fatal(err)
	}
	rec.wait(ctx, t, m, "a climate read error", func(e agent.Event) bool { return e.Kind == agent.EventSensorError && e.Device == "climate" })
	if err := c.Inject(ctx, FaultClear, "climate"); err != nil {
		t.Fatal(err)
	}
	m = rec.mark()
	rec.wait(ctx, t, m, "a climate reading again", func(e agent.Event) bool { return e.Kind == agent.EventSensor && e.Device == "climate" })

	m = rec.mark()
	if err := c.Inject(ctx, FaultRestartBroker, ""); err != nil {
		t.Fatal(err)
	}
	rec.wait(ctx, t, m, "the agent back online", func(e agent.Event) bool { return e.Kind == agent.EventOnline })

	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v", err)
	}
}
