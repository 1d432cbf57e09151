package fake

import (
	"context"
	"math"
	"sync"
	"time"
)

// TemperatureSink receives the simulated temperature; the chip models in
// hal/fake/chips (BME280, SHT3x, …) implement it.
type TemperatureSink interface {
	SetTemperature(celsius float64)
}

// ThermalConfig describes a lumped thermal model: one body at temperature T
// losing heat to the ambient air (Newton's law of cooling), warmed by a
// heater on a digital line and cooled harder by a fan on a PWM channel:
//
//	dT/dt = HeaterRate·heater − (Loss + FanLoss·duty)·(T − Ambient)
//
// Step integrates this exactly over dt, so any step size is stable.
type ThermalConfig struct {
	Ambient float64 // °C
	// Initial is the starting temperature; nil starts at Ambient.
	Initial *float64
	// HeaterPin names the digital line of the heater relay ("" = none). The
	// heater is on while the wire is high, or low if HeaterActiveLow (the
	// relay module's wiring, independent of how the agent opens the line).
	HeaterPin       string
	HeaterActiveLow bool
	// HeaterRate is the warming rate with the heater on, in °C/s (default 0.1).
	HeaterRate float64
	// FanPWM names the PWM channel of the fan ("" = none).
	FanPWM string
	// Loss is the passive loss coefficient in 1/s (default 1/300: a 5 min
	// time constant); FanLoss is added at full fan duty (default 1/60).
	Loss, FanLoss float64
}

// Thermal is a simulated temperature driven by the HAL's heater line and fan
// channel. Safe for concurrent use.
type Thermal struct {
	h   *HAL
	cfg ThermalConfig

	mu    sync.Mutex
	temp  float64
	sinks []TemperatureSink
}

// NewThermal returns a model reading h's lines; sinks get every new temperature
// (the initial one at once).
func NewThermal(h *HAL, cfg ThermalConfig, sinks ...TemperatureSink) *Thermal {
	if cfg.HeaterRate == 0 {
		cfg.HeaterRate = 0.1
	}
	if cfg.Loss == 0 {
		cfg.Loss = 1.0 / 300
	}
	if cfg.FanLoss == 0 {
		cfg.FanLoss = 1.0 / 60
	}
	t := &Thermal{h: h, cfg: cfg, temp: cfg.Ambient}
	if cfg.Initial != nil {
		t.temp = *cfg.Initial
	}
	for _, s := range sinks {
		t.Attach(s)
	}
	return t
}

// Attach adds a sink and pushes the current temperature to it.
func (t *Thermal) Attach(s TemperatureSink) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sinks = append(t.sinks, s)
	s.SetTemperature(t.temp)
}

// Temperature returns the current simulated temperature in °C.
func (t *Thermal) Temperature() float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.temp
}

// SetAmbient changes the ambient temperature (a window opens…).
func (t *Thermal) SetAmbient(celsius float64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cfg.Ambient = celsius
}

// inputs reads the heater and fan from the HAL.
func (t *Thermal) inputs() (heaterOn bool, fanDuty float64) {
	h := t.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if t.cfg.HeaterPin != "" {
		if p := h.pins[t.cfg.HeaterPin]; p != nil && p.seen {
			heaterOn = p.high != t.cfg.HeaterActiveLow
		}
	}
	if t.cfg.FanPWM != "" {
		fanDuty = h.effectiveDutyLocked(t.cfg.FanPWM)
	}
	return heaterOn, fanDuty
}

// Step advances the model by dt with the heater and fan as they are now,
// pushes the result to the sinks and returns it.
func (t *Thermal) Step(dt time.Duration) float64 {
	heaterOn, duty := t.inputs()
	t.mu.Lock()
	defer t.mu.Unlock()
	heat := 0.0
	if heaterOn {
		heat = t.cfg.HeaterRate
	}
	k := t.cfg.Loss + t.cfg.FanLoss*duty
	s := dt.Seconds()
	if k <= 0 {
		t.temp += heat * s
	} else {
		eq := t.cfg.Ambient + heat/k
		t.temp = eq + (t.temp-eq)*math.Exp(-k*s)
	}
	for _, sink := range t.sinks {
		sink.SetTemperature(t.temp)
	}
	return t.temp
}

// Run steps the model every interval of the HAL's clock until ctx is done
// (returning ctx.Err()) or the HAL is closed (returning nil). With a
// FakeClock, each Advance by interval makes one step.
func (t *Thermal) Run(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = time.Second
	}
	for {
		timer := t.h.cfg.clock.NewTimer(interval)
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-t.h.done:
			timer.Stop()
			return nil
		case <-timer.C():
			t.Step(interval)
		}
	}
}
