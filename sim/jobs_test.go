package sim

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

// watchOut collects the account and signals each write.
type watchOut struct {
	mu      sync.Mutex
	b       strings.Builder
	changed chan struct{}
}

func (w *watchOut) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b.Write(p)
	close(w.changed)
	w.changed = make(chan struct{})
	return len(p), nil
}

// waitFor returns once the account contains text, or fails at the deadline.
func (w *watchOut) waitFor(t *testing.T, text string, deadline <-chan time.Time) {
	t.Helper()
	for {
		w.mu.Lock()
		ok, ch, all := strings.Contains(w.b.String(), text), w.changed, w.b.String()
		w.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("the account never said %q:\n%s", text, all)
		}
	}
}

// A reboot job in the simulation restarts the simulated device (never this
// machine): the agent comes back with a new boot id and the job SUCCEEDED.
func TestRebootJobRebootsTheSimulatedDevice(t *testing.T) {
	sc, err := ParseScenario("s.yaml", []byte("- {at: 0s, job: {type: reboot}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	out := &watchOut{changed: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, Options{Config: simConfig(t), Scenario: sc, Out: out, Quiet: true}) }()
	deadline := time.After(20 * time.Second)
	out.waitFor(t, "the device reboots (simulated): the agent starts again with boot id sim-boot-2", deadline)
	out.waitFor(t, "job sim-job-1 SUCCEEDED (boot_id=sim-boot-2, previous_boot_id=sim-boot-1)", deadline)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestJobStepNeedsAJobsSection(t *testing.T) {
	sc, err := ParseScenario("s.yaml", []byte("- {at: 1s, job: {type: pulse, key: status_led, value: true}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := simConfig(t)
	if err := sc.Check(cfg); err != nil {
		t.Fatalf("with jobs: %v", err)
	}
	cfg.Jobs = nil
	err = sc.Check(cfg)
	if err == nil || !strings.Contains(err.Error(), "s.yaml:1:3: job: configs/sim.yaml has no enabled jobs: section") {
		t.Fatalf("without jobs: %v", err)
	}
}
