package board_test

import (
	"context"
	"errors"
	"testing"

	"github.com/pinshadow/pinshadow/board"
	"github.com/pinshadow/pinshadow/hal"
	"github.com/pinshadow/pinshadow/hal/fake"
)

// The names a profile produces are the names the HAL opens: a fake HAL
// restricted to a profile's lines accepts resolved pins and nothing else.
func TestProfileNamesOpenOnRestrictedFake(t *testing.T) {
	p, err := board.ByName("pi4b")
	if err != nil {
		t.Fatal(err)
	}
	ch, _, err := p.PWMFor("GPIO18")
	if err != nil {
		t.Fatal(err)
	}
	h := fake.New(fake.WithPins(p.LineNames()...), fake.WithPWMs(ch.HALName()))
	defer h.Close()
	ctx := context.Background()
	pin, err := p.Resolve("pin11")
	if err != nil {
		t.Fatal(err)
	}
	out, err := h.OpenOutput(ctx, pin.HAL, hal.OutputConfig{ActiveLow: true})
	if err != nil {
		t.Fatalf("open %s: %v", pin.HAL, err)
	}
	_ = out.Close()
	if _, err := h.OpenOutput(ctx, "GPIO17", hal.OutputConfig{}); !errors.Is(err, hal.ErrNotFound) {
		t.Errorf("a name the profile never produces opened: %v", err)
	}
	pwm, err := h.OpenPWM(ctx, ch.HALName())
	if err != nil {
		t.Fatal(err)
	}
	_ = pwm.Close()
}
