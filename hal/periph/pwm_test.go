package periph

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pinshadow/pinshadow/hal"
)

type chipSpec = struct {
	dev  string
	npwm int
}

// pi5Sysfs looks like a Pi 5 on kernel 6.6: the fan PWM is pwmchip0 and the
// header's RP1 PWM0 is pwmchip2.
func pi5Sysfs(t *testing.T) *fakeKernel {
	return newFakeSysfs(t, map[string]chipSpec{
		"pwmchip0": {"107d517a80.pwm", 2},
		"pwmchip2": {"1f00098000.pwm", 4},
	})
}

func newPWMHAL(t *testing.T, k *fakeKernel) *HAL {
	t.Helper()
	h, err := New(Options{SysfsRoot: k.root, fs: k, FindLine: noLines, OpenI2C: noBuses, ExportTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

func TestParsePWMName(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    PWMName
		wantErr bool
	}{
		{"pwmchip0/1", PWMName{Chip: "pwmchip0", Channel: 1}, false},
		{"pwmchip12/0", PWMName{Chip: "pwmchip12", Channel: 0}, false},
		{"1f00098000.pwm/2", PWMName{Device: "1f00098000.pwm", Channel: 2}, false},
		{"pwmchipX/2", PWMName{Device: "pwmchipX", Channel: 2}, false},
		{"pwmchip0", PWMName{}, true},
		{"pwmchip0/", PWMName{}, true},
		{"/1", PWMName{}, true},
		{"pwmchip0/-1", PWMName{}, true},
		{"pwmchip0/1/2", PWMName{}, true},
		{"GPIO18", PWMName{}, true},
	} {
		got, err := ParsePWMName(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParsePWMName(%q) = %+v, %v; want %+v, err=%v", tc.in, got, err, tc.want, tc.wantErr)
		}
		if err != nil && !errors.Is(err, hal.ErrInvalid) {
			t.Errorf("ParsePWMName(%q) error %v does not wrap ErrInvalid", tc.in, err)
		}
	}
}

func TestPWMTiming(t *testing.T) {
	for _, tc := range []struct {
		duty, freq     float64
		period, dutyNs int64
		wantErr        bool
	}{
		{0.5, 50, 20_000_000, 10_000_000, false},  // servo frame
		{0.075, 50, 20_000_000, 1_500_000, false}, // servo centre, 1.5 ms
		{1, 25_000, 40_000, 40_000, false},        // PC fan at full
		{0, 1000, 1_000_000, 0, false},            // off
		{1.0 / 3, 3, 333_333_333, 111_111_111, false},
		{0.5, 1e9, 1, 1, false}, // rounds to 1 ns (0.5 → 1)
		{0.5, 3e9, 0, 0, true},  // period rounds to 0
		{0.5, 0.1, 0, 0, true},  // 10 s period overflows 32-bit sysfs
		{-0.01, 50, 0, 0, true},
		{1.01, 50, 0, 0, true},
		{0.5, 0, 0, 0, true},
	} {
		p, d, err := PWMTiming(tc.duty, tc.freq)
		if (err != nil) != tc.wantErr || p != tc.period || d != tc.dutyNs {
			t.Errorf("PWMTiming(%v, %v) = %d, %d, %v; want %d, %d, err=%v", tc.duty, tc.freq, p, d, err, tc.period, tc.dutyNs, tc.wantErr)
		}
		if err != nil && !errors.Is(err, hal.ErrInvalid) {
			t.Errorf("PWMTiming(%v, %v): %v does not wrap ErrInvalid", tc.duty, tc.freq, err)
		}
	}
}

func TestPWMExportSetAndClose(t *testing.T) {
	k := pi5Sysfs(t)
	k.lagWrites = 3 // udev is slow
	h := newPWMHAL(t, k)
	ctx := context.Background()
	p, err := h.OpenPWM(ctx, "1f00098000.pwm/2") // by device: lands on pwmchip2
	if err != nil {
		t.Fatal(err)
	}
	if !k.exported("pwmchip2", 2) {
		t.Fatal("channel not exported")
	}
	if err := p.Set(ctx, 0.25, 1000); err != nil {
		t.Fatal(err)
	}
	want := []string{"pwmchip2/export=2", "pwm2/period=1000000", "pwm2/duty_cycle=250000", "pwm2/enable=1"}
	if got := k.log(); !slices.Equal(got, want) {
		t.Errorf("writes %q, want %q", got, want)
	}
	if p.Duty() != 0.25 || p.Frequency() != 1000 {
		t.Errorf("Duty/Frequency = %v/%v", p.Duty(), p.Frequency())
	}
	// Only the duty changes: one write.
	if err := p.Set(ctx, 0.5, 1000); err != nil {
		t.Fatal(err)
	}
	if got := k.log()[4:]; !slices.Equal(got, []string{"pwm2/duty_cycle=500000"}) {
		t.Errorf("duty change wrote %q", got)
	}
	// Frequency up: the new period (100 µs) is below the old duty (500 µs),
	// so the duty cycle must go first or the kernel refuses.
	if err := p.Set(ctx, 0.5, 10000); err != nil {
		t.Fatalf("raising the frequency: %v", err)
	}
	if got := k.log()[5:]; !slices.Equal(got, []string{"pwm2/duty_cycle=50000", "pwm2/period=100000"}) {
		t.Errorf("frequency change wrote %q", got)
	}
	if k.file("pwmchip2", 2, "period") != "100000" || k.file("pwmchip2", 2, "duty_cycle") != "50000" {
		t.Errorf("kernel has period %s duty %s", k.file("pwmchip2", 2, "period"), k.file("pwmchip2", 2, "duty_cycle"))
	}
	if err := p.Set(ctx, 2, 10000); !errors.Is(err, hal.ErrInvalid) {
		t.Errorf("duty 2: %v, want ErrInvalid", err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if got := k.log()[7:]; !slices.Equal(got, []string{"pwm2/enable=0", "pwmchip2/unexport=2"}) {
		t.Errorf("close wrote %q", got)
	}
	if k.exported("pwmchip2", 2) {
		t.Error("channel still exported after Close")
	}
	if err := p.Set(ctx, 0.1, 100); !errors.Is(err, hal.ErrClosed) {
		t.Errorf("Set after Close: %v", err)
	}
}

func TestPWMAlreadyExportedIsUsedAndLeftExported(t *testing.T) {
	k := newFakeSysfs(t, map[string]chipSpec{"pwmchip0": {"fe20c000.pwm", 2}})
	must(t, k.WriteFile(filepath.Join(k.root, "class/pwm/pwmchip0/export"), []byte("1")))
	must(t, k.WriteFile(filepath.Join(k.root, "class/pwm/pwmchip0/pwm1/period"), []byte("20000000")))
	must(t, k.WriteFile(filepath.Join(k.root, "class/pwm/pwmchip0/pwm1/duty_cycle"), []byte("15000000")))
	h := newPWMHAL(t, k)
	ctx := context.Background()
	p, err := h.OpenPWM(ctx, "pwmchip0/1")
	if err != nil {
		t.Fatalf("EBUSY on export must mean 'already exported': %v", err)
	}
	// Old duty 15 ms > new period 1 ms: duty goes first.
	if err := p.Set(ctx, 0.5, 1000); err != nil {
		t.Fatal(err)
	}
	_ = p.Close()
	if !k.exported("pwmchip0", 1) {
		t.Error("a channel exported by someone else was unexported")
	}
}

func TestPWMOpenErrors(t *testing.T) {
	ctx := context.Background()
	k := pi5Sysfs(t)
	h := newPWMHAL(t, k)
	for _, tc := range []struct {
		name    string
		want    error
		mention string
	}{
		{"pwmchip2/4", hal.ErrNotFound, "channels 0–3"},
		{"pwmchip7/0", hal.ErrNotFound, "pwmchip2 (1f00098000.pwm, 4 channels)"},
		{"fe20c000.pwm/0", hal.ErrNotFound, "chips present"},
		{"GPIO18", hal.ErrInvalid, "pwmchipN/CHANNEL"},
	} {
		_, err := h.OpenPWM(ctx, tc.name)
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("OpenPWM(%q) = %v; want %v mentioning %q", tc.name, err, tc.want, tc.mention)
		}
	}
	p, err := h.OpenPWM(ctx, "pwmchip2/0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.OpenPWM(ctx, "1f00098000.pwm/0"); !errors.Is(err, hal.ErrBusy) {
		t.Errorf("same channel by device name: %v, want ErrBusy", err)
	}
	_ = p.Close()

	empty := newFakeSysfs(t, nil)
	_ = os.RemoveAll(filepath.Join(empty.root, "class"))
	h2 := newPWMHAL(t, empty)
	if _, err := h2.OpenPWM(ctx, "pwmchip0/0"); !errors.Is(err, hal.ErrNotFound) || !strings.Contains(err.Error(), "dtoverlay=pwm") {
		t.Errorf("no /sys/class/pwm: %v; want ErrNotFound with the overlay hint", err)
	}
}

func TestPWMExportNeverWritable(t *testing.T) {
	k := pi5Sysfs(t)
	k.neverOK = true
	h, err := New(Options{SysfsRoot: k.root, fs: k, FindLine: noLines, OpenI2C: noBuses, ExportTimeout: 30 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	_, err = h.OpenPWM(context.Background(), "pwmchip2/1")
	if !errors.Is(err, hal.ErrTimeout) || !strings.Contains(err.Error(), "udev") {
		t.Errorf("got %v; want ErrTimeout with a udev hint", err)
	}
	if k.exported("pwmchip2", 1) {
		t.Error("failed open left the channel exported")
	}
	// Cancelled while waiting: returns with the context's error long before
	// the export timeout.
	h2, err := New(Options{SysfsRoot: k.root, fs: k, FindLine: noLines, OpenI2C: noBuses, ExportTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := h2.OpenPWM(ctx, "pwmchip2/1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("deadline while waiting for udev: %v", err)
	}
	if k.exported("pwmchip2", 1) {
		t.Error("cancelled open left the channel exported")
	}
}

func TestHALCloseReleasesPWM(t *testing.T) {
	k := pi5Sysfs(t)
	h := newPWMHAL(t, k)
	p, err := h.OpenPWM(context.Background(), "pwmchip2/3")
	if err != nil {
		t.Fatal(err)
	}
	_ = p.Set(context.Background(), 0.5, 50)
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if k.exported("pwmchip2", 3) {
		t.Error("HAL.Close left the channel exported")
	}
	if _, err := h.OpenPWM(context.Background(), "pwmchip2/3"); !errors.Is(err, hal.ErrClosed) {
		t.Errorf("open after Close: %v", err)
	}
}
