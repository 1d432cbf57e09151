package fake_test

import (
	"math"
	"sync"
	"testing"
	"time"

	"github.com/pinshadow/pinshadow/hal"
	"github.com/pinshadow/pinshadow/hal/fake"
)

// sensor is a TemperatureSink test double.
type sensor struct {
	mu   sync.Mutex
	got  []float64
	last float64
}

func (s *sensor) SetTemperature(c float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, c)
	s.last = c
}

func (s *sensor) value() (float64, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, len(s.got)
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestThermalHeaterWarmsFanCools(t *testing.T) {
	h, _ := newFake(t)
	ctx := ctxT(t)
	s := &sensor{}
	th := fake.NewThermal(h, fake.ThermalConfig{
		Ambient: 20, HeaterPin: "heater", HeaterActiveLow: true, HeaterRate: 0.1,
		FanPWM: "fan", Loss: 0.01, FanLoss: 0.09,
	}, s)
	if v, n := s.value(); v != 20 || n != 1 {
		t.Fatalf("sink got %v (%d pushes), want the initial 20 at once", v, n)
	}
	// Heater relay is active-low on the wire; the agent opens it active-low too.
	heater, err := h.OpenOutput(ctx, "heater", hal.OutputConfig{ActiveLow: true, Initial: hal.Low})
	if err != nil {
		t.Fatal(err)
	}
	if got := th.Step(time.Minute); !near(got, 20) {
		t.Fatalf("heater off: %v, want ambient 20", got)
	}
	_ = heater.Set(ctx, hal.High)
	// Exact solution: eq = 20 + 0.1/0.01 = 30; T = 30 - 10·e^(-0.01·100).
	want := 30 - 10*math.Exp(-1)
	if got := th.Step(100 * time.Second); !near(got, want) {
		t.Fatalf("after 100 s heating: %v, want %v", got, want)
	}
	if v, _ := s.value(); !near(v, want) {
		t.Errorf("sink has %v, want %v", v, want)
	}
	// Same total time in small steps gives the same answer (exact integration).
	th2 := fake.NewThermal(h, fake.ThermalConfig{Ambient: 20, HeaterPin: "heater", HeaterActiveLow: true, HeaterRate: 0.1, Loss: 0.01})
	for range 100 {
		th2.Step(time.Second)
	}
	if got := th2.Temperature(); !near(got, want) {
		t.Errorf("100×1 s: %v, want %v", got, want)
	}
	// Fan at full duty: k = 0.1, eq = 21.
	fan, _ := h.OpenPWM(ctx, "fan")
	_ = fan.Set(ctx, 1, 25000)
	for range 10 {
		th.Step(time.Minute)
	}
	if got := th.Temperature(); math.Abs(got-21) > 0.01 {
		t.Errorf("heater+fan settle at %v, want ≈21", got)
	}
	_ = heater.Set(ctx, hal.Low)
	for range 10 {
		th.Step(time.Minute)
	}
	if got := th.Temperature(); math.Abs(got-20) > 0.01 {
		t.Errorf("fan only: %v, want ≈20 (ambient)", got)
	}
}

func TestThermalRunFollowsClock(t *testing.T) {
	h, clk := newFake(t)
	ctx := ctxT(t)
	init := 30.0
	th := fake.NewThermal(h, fake.ThermalConfig{Ambient: 20, Initial: &init, Loss: 0.1})
	done := make(chan error, 1)
	go func() { done <- th.Run(ctx, time.Second) }()
	for range 3 {
		if err := clk.BlockUntil(ctx, 1); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Second)
	}
	// After the third step the loop may not yet have stored the result; the
	// next timer registration proves the step finished.
	if err := clk.BlockUntil(ctx, 1); err != nil {
		t.Fatal(err)
	}
	want := 20 + 10*math.Exp(-0.3)
	if got := th.Temperature(); !near(got, want) {
		t.Errorf("after 3 s: %v, want %v", got, want)
	}
	_ = h.Close()
	if err := <-done; err != nil {
		t.Errorf("Run after HAL close: %v", err)
	}
}
