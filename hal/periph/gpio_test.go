package periph

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
	"periph.io/x/conn/v3/i2c"

	"github.com/pinshadow/pinshadow/hal"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func noLines(name string) (gpio.PinIO, error) {
	return nil, fmt.Errorf("test: line %q: %w", name, hal.ErrNotFound)
}

func noBuses(name string) (i2c.BusCloser, error) {
	return nil, fmt.Errorf("test: no bus %q", name)
}

// recLine is periph's gpiotest.Pin plus a record of the calls the backend
// made, to prove what it never does (Read an output) and what it does once
// (the initial Out).
type recLine struct {
	*gpiotest.Pin
	mu     sync.Mutex
	calls  []string
	outErr error
	closed int
}

func (r *recLine) rec(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, s)
}

func (r *recLine) Out(l gpio.Level) error {
	r.rec(fmt.Sprintf("Out(%v)", l))
	if r.outErr != nil {
		return r.outErr
	}
	return r.Pin.Out(l)
}

func (r *recLine) In(p gpio.Pull, e gpio.Edge) error {
	r.rec(fmt.Sprintf("In(%v,%v)", p, e))
	return r.Pin.In(p, e)
}

func (r *recLine) Read() gpio.Level {
	r.rec("Read")
	return r.Pin.Read()
}

func (r *recLine) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed++
}

func (r *recLine) log() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

// lines is an injected FindLine over a fixed set (the same line may be
// reachable under two names, like GPIO17 and gpiochip0/17).
func lines(m map[string]*recLine) func(string) (gpio.PinIO, error) {
	return func(name string) (gpio.PinIO, error) {
		if l, ok := m[name]; ok {
			return l, nil
		}
		return nil, fmt.Errorf("test: line %q: %w", name, hal.ErrNotFound)
	}
}

func newLine(name string) *recLine {
	return &recLine{Pin: &gpiotest.Pin{N: name, EdgesChan: make(chan gpio.Level, 16)}}
}

func newGPIOHAL(t *testing.T, m map[string]*recLine) *HAL {
	t.Helper()
	h, err := New(Options{FindLine: lines(m), OpenI2C: noBuses, EdgeSlice: 10 * time.Millisecond, SysfsRoot: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

func TestParseLineName(t *testing.T) {
	for _, tc := range []struct {
		in     string
		co     ChipOffset
		isChip bool
		err    bool
	}{
		{"GPIO17", ChipOffset{}, false, false},
		{"ID_SDA", ChipOffset{}, false, false},
		{"gpiochip0/17", ChipOffset{"gpiochip0", 17}, true, false},
		{"pinctrl-rp1/4", ChipOffset{"pinctrl-rp1", 4}, true, false},
		{"17", ChipOffset{}, false, true},
		{"", ChipOffset{}, false, true},
		{"gpiochip0/", ChipOffset{}, false, true},
		{"gpiochip0/x", ChipOffset{}, false, true},
		{"gpiochip0/-1", ChipOffset{}, false, true},
		{"/3", ChipOffset{}, false, true},
		{"a/1/2", ChipOffset{}, false, true},
	} {
		co, ok, err := ParseLineName(tc.in)
		if co != tc.co || ok != tc.isChip || (err != nil) != tc.err {
			t.Errorf("ParseLineName(%q) = %+v, %v, %v", tc.in, co, ok, err)
		}
		if err != nil && !errors.Is(err, hal.ErrInvalid) {
			t.Errorf("ParseLineName(%q): %v does not wrap ErrInvalid", tc.in, err)
		}
	}
	if _, _, err := ParseLineName("17"); err == nil || !strings.Contains(err.Error(), "GPIO17") {
		t.Errorf("bare number error should suggest GPIO17: %v", err)
	}
}

func TestOutputInitialLevelAndNoReadBack(t *testing.T) {
	for _, tc := range []struct {
		activeLow bool
		initial   hal.Level
		wantOut   string
	}{
		{false, hal.Low, "Out(Low)"},
		{false, hal.High, "Out(High)"},
		{true, hal.Low, "Out(High)"}, // active-low relay kept off: line high
		{true, hal.High, "Out(Low)"},
	} {
		l := newLine("GPIO17")
		h := newGPIOHAL(t, map[string]*recLine{"GPIO17": l})
		ctx := context.Background()
		out, err := h.OpenOutput(ctx, "GPIO17", hal.OutputConfig{ActiveLow: tc.activeLow, Initial: tc.initial})
		if err != nil {
			t.Fatal(err)
		}
		if got := l.log(); len(got) != 1 || got[0] != tc.wantOut {
			t.Errorf("activeLow=%v initial=%v: open made %q, want exactly [%s]", tc.activeLow, tc.initial, got, tc.wantOut)
		}
		if out.Level() != tc.initial {
			t.Errorf("Level() = %v, want %v", out.Level(), tc.initial)
		}
		for _, lv := range []hal.Level{hal.High, hal.Low, hal.High} {
			if err := out.Set(ctx, lv); err != nil {
				t.Fatal(err)
			}
			if out.Level() != lv || l.Pin.L != physical(lv, tc.activeLow) {
				t.Errorf("after Set(%v): Level=%v wire=%v", lv, out.Level(), l.Pin.L)
			}
		}
		for _, c := range l.log() {
			if c == "Read" || strings.HasPrefix(c, "In(") {
				t.Errorf("the backend touched an output with %s: %q", c, l.log())
			}
		}
		_ = out.Close()
		if l.closed != 1 {
			t.Errorf("line released %d times, want 1", l.closed)
		}
		if err := out.Set(ctx, hal.High); !errors.Is(err, hal.ErrClosed) {
			t.Errorf("Set after Close: %v", err)
		}
	}
}

func TestOpenLineErrors(t *testing.T) {
	l := newLine("GPIO17")
	busy := newLine("GPIO22")
	busy.outErr = fmt.Errorf("GPIOLine.Out(): line_request ioctl: %w", syscall.EBUSY)
	h := newGPIOHAL(t, map[string]*recLine{"GPIO17": l, "gpiochip0/17": l, "GPIO22": busy})
	ctx := context.Background()
	out, err := h.OpenOutput(ctx, "GPIO17", hal.OutputConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.OpenInput(ctx, "gpiochip0/17", hal.InputConfig{}); !errors.Is(err, hal.ErrBusy) {
		t.Errorf("same line by chip/offset: %v, want ErrBusy", err)
	}
	if _, err := h.OpenOutput(ctx, "GPIO4", hal.OutputConfig{}); !errors.Is(err, hal.ErrNotFound) || !strings.Contains(err.Error(), "GPIO4") {
		t.Errorf("missing line: %v, want ErrNotFound naming GPIO4", err)
	}
	if _, err := h.OpenOutput(ctx, "GPIO22", hal.OutputConfig{}); !errors.Is(err, hal.ErrBusy) || !strings.Contains(err.Error(), "gpioinfo") {
		t.Errorf("line held by another process: %v, want ErrBusy with a gpioinfo hint", err)
	}
	busy.outErr = nil // the other process let go: the failed open left no claim
	if o, err := h.OpenOutput(ctx, "GPIO22", hal.OutputConfig{}); err != nil {
		t.Errorf("after the other process let go: %v", err)
	} else {
		_ = o.Close()
	}
	_ = out.Close()
	if o, err := h.OpenOutput(ctx, "gpiochip0/17", hal.OutputConfig{}); err != nil {
		t.Errorf("reopen after close: %v", err)
	} else {
		_ = o.Close()
	}
	if _, err := h.OpenInput(ctx, "GPIO17", hal.InputConfig{Debounce: -time.Second}); !errors.Is(err, hal.ErrInvalid) {
		t.Errorf("negative debounce: %v", err)
	}
}

func TestDefaultLookupWithoutChips(t *testing.T) {
	if m, _ := filepath.Glob("/dev/gpiochip*"); len(m) > 0 {
		t.Skip("this machine has GPIO chips; the hil tests cover it")
	}
	_, err := findLine("GPIO17")
	if !errors.Is(err, hal.ErrNotFound) || !strings.Contains(err.Error(), `"GPIO17"`) || !strings.Contains(err.Error(), "group gpio") {
		t.Errorf("findLine without chips: %v; want ErrNotFound naming the line with a hint", err)
	}
	if _, err := findLine("17"); !errors.Is(err, hal.ErrInvalid) {
		t.Errorf("bare number: %v, want ErrInvalid", err)
	}
}

func TestNewWithoutHardware(t *testing.T) {
	if _, err := os.Stat("/dev/i2c-1"); err == nil {
		t.Skip("this machine has /dev/i2c-1")
	}
	h, err := New(Options{SysfsRoot: t.TempDir()})
	if err != nil {
		t.Fatalf("New must work on a machine without GPIO: %v", err)
	}
	defer h.Close()
	if h.Drivers() == nil {
		t.Error("Drivers() is nil after driverreg.Init")
	}
	_, err = h.OpenI2C(context.Background(), "/dev/i2c-1")
	if !errors.Is(err, hal.ErrNotFound) || !strings.Contains(err.Error(), "i2c_arm=on") {
		t.Errorf("OpenI2C without the bus: %v; want ErrNotFound with the dtparam hint", err)
	}
}

type edgeResult struct {
	ev  hal.EdgeEvent
	err error
}

func waitEdge(in hal.DigitalIn, ctx context.Context) <-chan edgeResult {
	ch := make(chan edgeResult, 1)
	go func() {
		ev, err := in.WaitForEdge(ctx)
		ch <- edgeResult{ev, err}
	}()
	return ch
}

func TestInputEdgesActiveLowAndSelection(t *testing.T) {
	l := newLine("GPIO27")
	h := newGPIOHAL(t, map[string]*recLine{"GPIO27": l})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// A button to ground with the pull-up: pressed = wire low = logical High.
	in, err := h.OpenInput(ctx, "GPIO27", hal.InputConfig{Pull: hal.PullUp, ActiveLow: true, Edge: hal.EdgeRising})
	if err != nil {
		t.Fatal(err)
	}
	if got := l.log(); got[0] != "In(PullUp,BothEdges)" {
		t.Errorf("input requested as %q; want both edges from the kernel", got[0])
	}
	if lv, _ := in.Read(ctx); lv != hal.Low {
		t.Errorf("at rest reads %v, want Low", lv)
	}
	res := waitEdge(in, ctx)
	l.EdgesChan <- gpio.Low // press
	r := <-res
	if r.err != nil || r.ev.Level != hal.High {
		t.Fatalf("press: %+v", r)
	}
	res = waitEdge(in, ctx)
	l.EdgesChan <- gpio.High // release: falling, not selected
	l.EdgesChan <- gpio.Low  // press again
	if r := <-res; r.err != nil || r.ev.Level != hal.High {
		t.Fatalf("second press: %+v", r)
	}
	// Cancelling a waiter returns promptly.
	cctx, ccancel := context.WithCancel(ctx)
	res = waitEdge(in, cctx)
	ccancel()
	if r := <-res; !errors.Is(r.err, context.Canceled) {
		t.Errorf("cancelled wait: %+v", r)
	}
	// Close unblocks a waiter.
	res = waitEdge(in, ctx)
	_ = in.Close()
	if r := <-res; !errors.Is(r.err, hal.ErrClosed) {
		t.Errorf("wait during Close: %+v", r)
	}
	if _, err := in.Read(ctx); !errors.Is(err, hal.ErrClosed) {
		t.Errorf("Read after Close: %v", err)
	}
}

func TestInputDebounceReportsSettledLevel(t *testing.T) {
	l := newLine("GPIO5")
	h := newGPIOHAL(t, map[string]*recLine{"GPIO5": l})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	in, err := h.OpenInput(ctx, "GPIO5", hal.InputConfig{Pull: hal.PullDown, Edge: hal.EdgeBoth, Debounce: 30 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	res := waitEdge(in, ctx)
	// Bounce: five kernel edges ending high, then quiet.
	for _, lv := range []gpio.Level{gpio.High, gpio.Low, gpio.High, gpio.Low, gpio.High} {
		l.EdgesChan <- lv
	}
	r := <-res
	if r.err != nil || r.ev.Level != hal.High {
		t.Fatalf("bouncy rise: %+v", r)
	}
	// A glitch that ends where it started reports nothing.
	l.EdgesChan <- gpio.Low
	l.EdgesChan <- gpio.High
	short, scancel := context.WithTimeout(ctx, 150*time.Millisecond)
	defer scancel()
	if ev, err := in.WaitForEdge(short); err == nil {
		t.Errorf("glitch reported as %+v", ev)
	}
	if _, err := (&input{cfg: hal.InputConfig{Edge: hal.EdgeNone}}).WaitForEdge(ctx); !errors.Is(err, hal.ErrInvalid) {
		t.Errorf("EdgeNone: %v", err)
	}
}

// brokenEdges returns false at once, as gpioioctl does when the line is
// misconfigured (it only logs why).
type brokenEdges struct{ *recLine }

func (brokenEdges) WaitForEdge(time.Duration) bool { return false }

func TestInputBrokenEdgeDetectionFailsInsteadOfSpinning(t *testing.T) {
	l := newLine("GPIO6")
	h, err := New(Options{
		FindLine:  func(string) (gpio.PinIO, error) { return brokenEdges{l}, nil },
		OpenI2C:   noBuses,
		EdgeSlice: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	in, err := h.OpenInput(context.Background(), "GPIO6", hal.InputConfig{Edge: hal.EdgeBoth})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := in.WaitForEdge(ctx); !errors.Is(err, errEdgeBroken) {
		t.Errorf("got %v, want errEdgeBroken", err)
	}
}

func TestHALCloseReleasesLinesAndUnblocksWaiters(t *testing.T) {
	out, in := newLine("GPIO17"), newLine("GPIO27")
	h, err := New(Options{FindLine: lines(map[string]*recLine{"GPIO17": out, "GPIO27": in}), OpenI2C: noBuses, EdgeSlice: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	o, err := h.OpenOutput(ctx, "GPIO17", hal.OutputConfig{})
	if err != nil {
		t.Fatal(err)
	}
	i, err := h.OpenInput(ctx, "GPIO27", hal.InputConfig{Edge: hal.EdgeBoth})
	if err != nil {
		t.Fatal(err)
	}
	res := waitEdge(i, ctx)
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if r := <-res; !errors.Is(r.err, hal.ErrClosed) {
		t.Errorf("waiter after HAL.Close: %+v", r)
	}
	if out.closed != 1 || in.closed != 1 {
		t.Errorf("lines released %d and %d times, want 1 each", out.closed, in.closed)
	}
	if err := o.Set(ctx, hal.High); !errors.Is(err, hal.ErrClosed) {
		t.Errorf("Set after HAL.Close: %v", err)
	}
	if _, err := h.OpenOutput(ctx, "GPIO17", hal.OutputConfig{}); !errors.Is(err, hal.ErrClosed) {
		t.Errorf("open after HAL.Close: %v", err)
	}
}
