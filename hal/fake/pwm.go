package fake

import (
	"context"
	"fmt"
	"math"
	"sync"

	"github.com/pinshadow/pinshadow/hal"
)

// pwmChan is a simulated PWM channel.
type pwmChan struct {
	name    string
	open    bool
	gen     int
	enabled bool
	duty    float64
	freq    float64
}

func (h *HAL) pwmLocked(name string) *pwmChan {
	c := h.pwms[name]
	if c == nil {
		c = &pwmChan{name: name}
		h.pwms[name] = c
	}
	return c
}

// OpenPWM opens a PWM channel; it starts disabled (duty 0).
func (h *HAL) OpenPWM(ctx context.Context, name string) (hal.PWMOut, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.checkOpenLocked("pwm", name, h.cfg.pwms); err != nil {
		return nil, err
	}
	c := h.pwmLocked(name)
	if c.open {
		return nil, fmt.Errorf("fake: open pwm %q: %w (already open)", name, hal.ErrBusy)
	}
	if err := h.errs[name]; err != nil {
		return nil, fmt.Errorf("fake: open pwm %q: %w", name, err)
	}
	c.open, c.enabled, c.duty, c.freq = true, false, 0, 0
	c.gen++
	h.log.add(Op{Kind: OpOpen, Name: name, Detail: "pwm"})
	return &pwmOut{h: h, c: c, gen: c.gen, done: make(chan struct{})}, nil
}

// PWM returns the output of channel name as the hardware would produce it:
// its duty cycle and frequency, and whether it is enabled (open and set at
// least once). A closed channel is disabled.
func (h *HAL) PWM(name string) (duty, freqHz float64, enabled bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.pwms[name]
	if c == nil || !c.open || !c.enabled {
		return 0, 0, false
	}
	return c.duty, c.freq, true
}

// effectiveDutyLocked is the duty a load sees (0 when disabled).
func (h *HAL) effectiveDutyLocked(name string) float64 {
	c := h.pwms[name]
	if c == nil || !c.open || !c.enabled {
		return 0
	}
	return c.duty
}

type pwmOut struct {
	h    *HAL
	c    *pwmChan
	gen  int
	done chan struct{}
	once sync.Once
}

// ValidatePWM checks a duty cycle and frequency the way every backend must.
func validatePWM(name string, duty, freq float64) error {
	if math.IsNaN(duty) || duty < 0 || duty > 1 {
		return fmt.Errorf("fake: pwm %q: duty %v outside 0–1: %w", name, duty, hal.ErrInvalid)
	}
	if math.IsNaN(freq) || math.IsInf(freq, 0) || freq <= 0 {
		return fmt.Errorf("fake: pwm %q: frequency %v Hz must be > 0: %w", name, freq, hal.ErrInvalid)
	}
	return nil
}

func (p *pwmOut) Set(ctx context.Context, duty, freqHz float64) error {
	if err := validatePWM(p.c.name, duty, freqHz); err != nil {
		return err
	}
	if err := p.h.delay(ctx, p.c.name, p.done); err != nil {
		return fmt.Errorf("fake: pwm set %q: %w", p.c.name, err)
	}
	h := p.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || !p.c.open || p.c.gen != p.gen {
		return fmt.Errorf("fake: pwm set %q: %w", p.c.name, hal.ErrClosed)
	}
	if e := h.errs[p.c.name]; e != nil {
		err := fmt.Errorf("fake: pwm set %q: %w", p.c.name, e)
		h.log.add(Op{Kind: OpPWMSet, Name: p.c.name, Duty: duty, Freq: freqHz, Err: err})
		return err
	}
	p.c.duty, p.c.freq, p.c.enabled = duty, freqHz, true
	h.log.add(Op{Kind: OpPWMSet, Name: p.c.name, Duty: duty, Freq: freqHz})
	return nil
}

func (p *pwmOut) Duty() float64 {
	p.h.mu.Lock()
	defer p.h.mu.Unlock()
	if p.c.gen != p.gen {
		return 0
	}
	return p.c.duty
}

func (p *pwmOut) Frequency() float64 {
	p.h.mu.Lock()
	defer p.h.mu.Unlock()
	if p.c.gen != p.gen {
		return 0
	}
	return p.c.freq
}

func (p *pwmOut) Name() string { return p.c.name }

func (p *pwmOut) Close() error {
	p.once.Do(func() { close(p.done) })
	h := p.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if !p.c.open || p.c.gen != p.gen {
		return nil
	}
	p.c.open, p.c.enabled = false, false
	h.log.add(Op{Kind: OpClose, Name: p.c.name})
	return nil
}
