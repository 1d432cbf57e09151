//go:build hil

package periph_test

// Hardware-in-the-loop tests: hal/periph through the real kernel ABI (GPIO
// character device, /dev/i2c-N). They run
//
//   - in the HIL VM (scripts/hil.sh), against gpio-sim and i2c-stub-rdwr,
//     with PINSHADOW_HIL_FIXTURE=gpio-sim;
//   - on a real board with loopback jumpers, e.g. GPIO17 → GPIO27 through
//     1 kΩ and a BME280 at 0x76 on bus 1:
//     PINSHADOW_HIL_FIXTURE=wired:GPIO17=GPIO27 go test -tags hil ./hal/periph
//
// Without PINSHADOW_HIL_FIXTURE every test skips. Line names come from
// PINSHADOW_HIL_OUT (GPIO17), _IN (GPIO27), _SPARE (GPIO22, nothing
// attached) and the bus from PINSHADOW_HIL_I2C (1); see package hil/fixture.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"periph.io/x/host/v3/gpioioctl"

	"github.com/pinshadow/pinshadow/hal"
	"github.com/pinshadow/pinshadow/hal/periph"
	"github.com/pinshadow/pinshadow/hil/fixture"
)

func setup(t *testing.T) (*periph.HAL, fixture.Fixture, context.Context) {
	t.Helper()
	f, ok, err := fixture.FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Skipf("%s not set: not a HIL machine", fixture.EnvFixture)
	}
	h, err := periph.New(periph.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(func() {
		cancel()
		if err := f.Release(); err != nil {
			t.Error(err)
		}
		if err := h.Close(); err != nil {
			t.Error(err)
		}
	})
	return h, f, ctx
}

var (
	outLine   = fixture.Line(fixture.EnvOut, "GPIO17")
	inLine    = fixture.Line(fixture.EnvIn, "GPIO27")
	spareLine = fixture.Line(fixture.EnvSpare, "GPIO22")
	busName   = fixture.Line(fixture.EnvI2C, "1")
)

// want is the single place a HIL check compares. PINSHADOW_HIL_BREAK, a
// comma-separated list of check names (or "all"), inverts those checks to
// show each one can fail (scripts/hil.sh HIL_BREAK=…).
func want[T comparable](t *testing.T, check string, got, w T) {
	t.Helper()
	if broken(check) {
		// Inverted: fails exactly when the real check would pass, so a
		// failure here shows the value was really observed and compared.
		if got == w {
			t.Errorf("%s: got %v, the value the check wants (inverted by PINSHADOW_HIL_BREAK)", check, got)
		}
		return
	}
	if got != w {
		t.Errorf("%s: got %v, want %v", check, got, w)
	}
}

func broken(check string) bool {
	for _, b := range strings.Split(os.Getenv("PINSHADOW_HIL_BREAK"), ",") {
		if b == check || b == "all" {
			return true
		}
	}
	return false
}

func TestHILOutputLevelsSeenOnTheLine(t *testing.T) {
	h, f, ctx := setup(t)
	out, err := h.OpenOutput(ctx, outLine, hal.OutputConfig{Initial: hal.High})
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.Observe(outLine)
	if err != nil {
		t.Fatal(err)
	}
	want(t, "output-initial-high", got, hal.High)
	for _, l := range []hal.Level{hal.Low, hal.High, hal.Low} {
		if err := out.Set(ctx, l); err != nil {
			t.Fatal(err)
		}
		got, err := f.Observe(outLine)
		if err != nil {
			t.Fatal(err)
		}
		want(t, fmt.Sprintf("output-set-%v", l), got, l)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}

	// Active low: logical High drives the wire low.
	out, err = h.OpenOutput(ctx, outLine, hal.OutputConfig{ActiveLow: true, Initial: hal.Low})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	got, err = f.Observe(outLine)
	if err != nil {
		t.Fatal(err)
	}
	want(t, "active-low-off-is-high", got, hal.High)
	if err := out.Set(ctx, hal.High); err != nil {
		t.Fatal(err)
	}
	got, err = f.Observe(outLine)
	if err != nil {
		t.Fatal(err)
	}
	want(t, "active-low-on-is-low", got, hal.Low)
	want(t, "output-level-remembered", out.Level(), hal.High)
}

func TestHILInputReadsTheWire(t *testing.T) {
	h, f, ctx := setup(t)
	if err := f.Drive(inLine, hal.High); err != nil {
		t.Fatal(err)
	}
	in, err := h.OpenInput(ctx, inLine, hal.InputConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	for _, l := range []hal.Level{hal.High, hal.Low, hal.High} {
		if err := f.Drive(inLine, l); err != nil {
			t.Fatal(err)
		}
		got, err := in.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want(t, fmt.Sprintf("input-read-%v", l), got, l)
	}
}

func TestHILBiasRequestedFromTheKernel(t *testing.T) {
	h, f, ctx := setup(t)
	for _, c := range []struct {
		pull  hal.Pull
		level hal.Level
	}{{hal.PullUp, hal.High}, {hal.PullDown, hal.Low}, {hal.PullUp, hal.High}} {
		in, err := h.OpenInput(ctx, spareLine, hal.InputConfig{Pull: c.pull})
		if err != nil {
			t.Fatal(err)
		}
		// A line with nothing attached follows its own bias, on a real
		// board as in the simulator.
		got, err := in.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want(t, fmt.Sprintf("bias-%d-level", c.pull), got, c.level)
		b, err := f.Bias(spareLine)
		switch {
		case errors.Is(err, fixture.ErrUnsupported):
		case err != nil:
			t.Fatal(err)
		default:
			want(t, fmt.Sprintf("bias-%d-seen", c.pull), b, c.pull)
		}
		if err := in.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestHILEdgesDebounced(t *testing.T) {
	h, f, ctx := setup(t)
	if err := f.Drive(inLine, hal.Low); err != nil {
		t.Fatal(err)
	}
	// A generous debounce: under TCG emulation the three writes of a
	// "bounce" below can be milliseconds apart.
	in, err := h.OpenInput(ctx, inLine, hal.InputConfig{Edge: hal.EdgeBoth, Debounce: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	for _, l := range []hal.Level{hal.High, hal.Low} {
		if err := f.Drive(inLine, l); err != nil {
			t.Fatal(err)
		}
		ev, err := in.WaitForEdge(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want(t, fmt.Sprintf("edge-%v", l), ev.Level, l)
	}
	// Contact bounce: low→high→low→high settles high: exactly one rising
	// edge, then nothing.
	for _, l := range []hal.Level{hal.High, hal.Low, hal.High} {
		if err := f.Drive(inLine, l); err != nil {
			t.Fatal(err)
		}
	}
	ev, err := in.WaitForEdge(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want(t, "bounce-settles-high", ev.Level, hal.High)
	quiet, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	ev, err = in.WaitForEdge(quiet)
	want(t, "no-edge-after-bounce", errors.Is(err, context.DeadlineExceeded), true)
	if err == nil {
		t.Errorf("spurious edge after the bounce: %+v", ev)
	}
}

// TestHILLookup opens the same line by kernel name and by chip/offset (chip
// by name and by label), and checks what is refused.
func TestHILLookup(t *testing.T) {
	h, f, ctx := setup(t)
	var chipName, chipLabel string
	off := -1
	for _, c := range gpioioctl.Chips {
		if l := c.ByName(outLine); l != nil {
			chipName, chipLabel, off = c.Name(), c.Label(), l.Number()
		}
	}
	if off < 0 {
		t.Fatalf("no GPIO chip has a line named %s", outLine)
	}
	t.Logf("%s is %s/%d (label %s)", outLine, chipName, off, chipLabel)
	for i, name := range []string{chipName + "/" + strconv.Itoa(off), chipLabel + "/" + strconv.Itoa(off)} {
		level := hal.Level(i%2 == 0)
		out, err := h.OpenOutput(ctx, name, hal.OutputConfig{Initial: level})
		if err != nil {
			t.Fatal(err)
		}
		// While open under one name, the other name is the same line.
		if _, err := h.OpenOutput(ctx, outLine, hal.OutputConfig{}); !errors.Is(err, hal.ErrBusy) {
			t.Errorf("%s open as %s, opening it by name again: %v, want ErrBusy", outLine, name, err)
		}
		got, err := f.Observe(outLine)
		if err != nil {
			t.Fatal(err)
		}
		want(t, "lookup-"+name, got, level)
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"GPIO999", chipName + "/999", "no-such-chip/1"} {
		if _, err := h.OpenOutput(ctx, name, hal.OutputConfig{}); !errors.Is(err, hal.ErrNotFound) {
			t.Errorf("open %q: %v, want ErrNotFound", name, err)
		}
	}
	if _, err := h.OpenOutput(ctx, "17", hal.OutputConfig{}); !errors.Is(err, hal.ErrInvalid) {
		t.Errorf("open bare number: %v, want ErrInvalid", err)
	}
}

// TestHILLineHeldByAnotherProcess: the kernel refuses a line another
// process holds (this test binary, re-run as a helper), and we say so with
// ErrBusy; once the other process exits the line is free again.
func TestHILLineHeldByAnotherProcess(t *testing.T) {
	h, _, ctx := setup(t)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHILHelperHoldLine$")
	cmd.Env = append(os.Environ(), "PINSHADOW_HIL_HOLD="+outLine)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "held\n" {
		t.Fatalf("helper: %q, %v", line, err)
	}
	_, err = h.OpenOutput(ctx, outLine, hal.OutputConfig{})
	t.Logf("open while held: %v", err)
	want(t, "held-elsewhere-refused", err != nil, true)
	want(t, "held-elsewhere-busy", errors.Is(err, hal.ErrBusy), true)
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	out, err := h.OpenOutput(ctx, outLine, hal.OutputConfig{})
	if err != nil {
		t.Fatalf("after the other process exited: %v", err)
	}
	out.Close()
}

// TestHILHelperHoldLine is not a test: TestHILLineHeldByAnotherProcess runs
// it in a child process to hold a line until its stdin closes.
func TestHILHelperHoldLine(t *testing.T) {
	name := os.Getenv("PINSHADOW_HIL_HOLD")
	if name == "" {
		t.Skip("helper process only")
	}
	h, err := periph.New(periph.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if _, err := h.OpenOutput(context.Background(), name, hal.OutputConfig{}); err != nil {
		t.Fatal(err)
	}
	fmt.Println("held")
	_, _ = io.Copy(io.Discard, os.Stdin)
}

func TestHILI2CReadWriteAndNACK(t *testing.T) {
	h, f, ctx := setup(t)
	bus, err := h.OpenI2C(ctx, busName)
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	id := make([]byte, 1)
	if err := bus.Tx(fixture.AddrBME280, []byte{0xD0}, id); err != nil {
		t.Fatal(err)
	}
	want(t, "bme280-chip-id", id[0], byte(0x60))

	// A burst read across registers (calibration, 26 bytes from 0x88).
	cal := make([]byte, 26)
	if err := bus.Tx(fixture.AddrBME280, []byte{0x88}, cal); err != nil {
		t.Fatal(err)
	}
	if f.Simulated() {
		regs := fixture.Chips()[0].Regs
		for i, b := range cal {
			want(t, fmt.Sprintf("bme280-calib-%#x", 0x88+i), b, byte(regs[0x88+byte(i)]))
		}
	}

	// Write then read back ctrl_hum (0xF2, osrs_h in bits 2:0): harmless on
	// a real sensor.
	for _, v := range []byte{0x05, 0x01} {
		if err := bus.Tx(fixture.AddrBME280, []byte{0xF2, v}, nil); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 1)
		if err := bus.Tx(fixture.AddrBME280, []byte{0xF2}, got); err != nil {
			t.Fatal(err)
		}
		want(t, fmt.Sprintf("ctrl_hum-%#x", v), got[0]&0x07, v)
	}

	err = bus.Tx(fixture.AddrAbsent, []byte{0}, make([]byte, 1))
	want(t, "absent-address-nack", errors.Is(err, hal.ErrNACK), true)
	t.Logf("absent address %#x: %v", fixture.AddrAbsent, err)

	if _, err := h.OpenI2C(ctx, "9"); !errors.Is(err, hal.ErrNotFound) {
		t.Errorf("open bus 9: %v, want ErrNotFound", err)
	}
}

// TestHILLoopback needs a real wire between two lines: it runs on a wired
// fixture only (gpio-sim lines are not connected to each other).
func TestHILLoopback(t *testing.T) {
	h, f, ctx := setup(t)
	if f.Simulated() {
		t.Skip("gpio-sim lines are not wired to each other: the edge test covers this in the VM")
	}
	out, err := h.OpenOutput(ctx, outLine, hal.OutputConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	in, err := h.OpenInput(ctx, inLine, hal.InputConfig{Edge: hal.EdgeBoth, Debounce: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	for _, l := range []hal.Level{hal.High, hal.Low, hal.High} {
		if err := out.Set(ctx, l); err != nil {
			t.Fatal(err)
		}
		ev, err := in.WaitForEdge(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want(t, fmt.Sprintf("loopback-edge-%v", l), ev.Level, l)
	}
}
