//go:build hil

package periph

// Hardware-in-the-loop tests: run on a board with
//
//	PINSHADOW_HIL_OUT=GPIO17 PINSHADOW_HIL_IN=GPIO27 go test -tags hil ./hal/periph
//
// with the two lines wired together (through a 1 kΩ resistor). Optional:
// PINSHADOW_HIL_PWM=pwmchip0/0, PINSHADOW_HIL_I2C=1 with PINSHADOW_HIL_ADDR=0x76.

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/pinshadow/pinshadow/hal"
)

func hilEnv(t *testing.T, key string) string {
	v := os.Getenv(key)
	if v == "" {
		t.Skipf("%s not set", key)
	}
	return v
}

func TestHILLoopback(t *testing.T) {
	outName, inName := hilEnv(t, "PINSHADOW_HIL_OUT"), hilEnv(t, "PINSHADOW_HIL_IN")
	h, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := h.OpenOutput(ctx, outName, hal.OutputConfig{})
	if err != nil {
		t.Fatal(err)
	}
	in, err := h.OpenInput(ctx, inName, hal.InputConfig{Edge: hal.EdgeBoth, Debounce: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []hal.Level{hal.High, hal.Low, hal.High} {
		if err := out.Set(ctx, l); err != nil {
			t.Fatal(err)
		}
		ev, err := in.WaitForEdge(ctx)
		if err != nil || ev.Level != l {
			t.Fatalf("set %v: edge %+v, %v", l, ev, err)
		}
		if got, _ := in.Read(ctx); got != l {
			t.Fatalf("set %v: read %v", l, got)
		}
	}
}

func TestHILPWM(t *testing.T) {
	name := hilEnv(t, "PINSHADOW_HIL_PWM")
	h, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	p, err := h.OpenPWM(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []float64{50, 1000, 25000, 50} {
		if err := p.Set(context.Background(), 0.5, f); err != nil {
			t.Fatalf("%v Hz: %v", f, err)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestHILI2C(t *testing.T) {
	busName := hilEnv(t, "PINSHADOW_HIL_I2C")
	addr, err := strconv.ParseUint(hilEnv(t, "PINSHADOW_HIL_ADDR"), 0, 16)
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	b, err := h.OpenI2C(context.Background(), busName)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Tx(uint16(addr), []byte{0}, make([]byte, 1)); err != nil {
		t.Fatalf("device at %#x: %v", addr, err)
	}
	if err := b.Tx(0x7f, []byte{0}, make([]byte, 1)); err == nil {
		t.Log("something answered at 0x7f; NACK mapping not checked")
	}
}
