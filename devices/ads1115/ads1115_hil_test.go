//go:build hil

package ads1115_test

// The ADS1115 driver through the real kernel I2C path: in the HIL VM the
// i2c-stub-rdwr chip at 0x48 holds 16-bit registers (conversion 0x4000 =
// 2.048 V at ±4.096 V; the config register keeps OS=1, "not converting",
// so a single-shot conversion is done at once). On a real board an ADS1115
// at 0x48 with A0 tied to GND must read near 0 V (PINSHADOW_HIL_ADS_A0=gnd)
// or anything in range.

import (
	"context"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pinshadow/pinshadow/devices/ads1115"
	"github.com/pinshadow/pinshadow/hal/periph"
	"github.com/pinshadow/pinshadow/hil/fixture"
)

func TestHILADS1115(t *testing.T) {
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
	d, err := ads1115.New(ctx, bus, ads1115.Options{Bus: "1", Address: fixture.AddrADS1115, DataRate: 860,
		Channels: []ads1115.Channel{{Name: "a0", Input: "0", FullScale: 4.096}}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := d.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v := r["a0"].Number()
	t.Logf("a0 = %v V", v)
	want := 2.048
	switch {
	case !f.Simulated() && os.Getenv("PINSHADOW_HIL_ADS_A0") == "gnd":
		want = 0
	case !f.Simulated():
		if v < -4.096 || v > 4.096 {
			t.Fatalf("a0 = %v V, outside ±4.096 V", v)
		}
		return
	}
	if strings.Contains(","+os.Getenv("PINSHADOW_HIL_BREAK")+",", ",ads1115,") || os.Getenv("PINSHADOW_HIL_BREAK") == "all" {
		want = -want // show the check can fail
	}
	if math.Abs(v-want) > 0.01 {
		t.Fatalf("a0 = %v V, want %v V", v, want)
	}
}
