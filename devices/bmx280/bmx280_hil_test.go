//go:build hil

package bmx280_test

// The BME280 driver through the real kernel I2C path (/dev/i2c-N,
// I2C_RDWR): in the HIL VM against i2c-stub-rdwr holding the datasheet's
// register map (exact values), on a real board against a BME280 at 0x76
// (plausible values). See hal/periph/hil_test.go and package hil/fixture.

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pinshadow/pinshadow/devices/bmx280"
	"github.com/pinshadow/pinshadow/hal/periph"
	"github.com/pinshadow/pinshadow/hil/fixture"
)

func TestHILBME280(t *testing.T) {
	f, ok, err := fixture.FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Skipf("%s not set: not a HIL machine", fixture.EnvFixture)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := periph.New(periph.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	bus, err := h.OpenI2C(ctx, fixture.Line(fixture.EnvI2C, "1"))
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	d, err := bmx280.New(ctx, bus, bmx280.BME280, bmx280.Options{Bus: "1", Address: fixture.AddrBME280, Oversampling: 1})
	if err != nil {
		t.Fatal(err)
	}
	r, err := d.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tc, pa, rh := r["temperature"].Number(), r["pressure"].Number(), r["humidity"].Number()
	t.Logf("read %.2f °C, %.0f Pa, %.1f %%RH", tc, pa, rh)
	if !f.Simulated() {
		if tc < -40 || tc > 85 || pa < 30000 || pa > 110000 || rh < 0 || rh > 100 {
			t.Fatalf("implausible reading %.2f °C %.0f Pa %.1f %%RH", tc, pa, rh)
		}
		return
	}
	wt, wp, wh := fixture.BME280Want()
	if strings.Contains(","+os.Getenv("PINSHADOW_HIL_BREAK")+",", ",bme280,") || os.Getenv("PINSHADOW_HIL_BREAK") == "all" {
		wt++ // show the check can fail
	}
	if tc != wt || pa != wp || rh != wh {
		t.Fatalf("read %v °C %v Pa %v %%RH, want %v °C %v Pa %v %%RH (datasheet §8.2 example)", tc, pa, rh, wt, wp, wh)
	}
}
