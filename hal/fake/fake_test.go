package fake_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pinshadow/pinshadow/hal"
	"github.com/pinshadow/pinshadow/hal/fake"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newFake(t *testing.T, opts ...fake.Option) (*fake.HAL, *fake.FakeClock) {
	t.Helper()
	clk := fake.NewFakeClock(t0)
	h := fake.New(append([]fake.Option{fake.WithClock(clk)}, opts...)...)
	t.Cleanup(func() { _ = h.Close() })
	return h, clk
}

func TestOutputInitialLevelIsTheFirstAndOnlyWireLevel(t *testing.T) {
	for _, tc := range []struct {
		name      string
		activeLow bool
		initial   hal.Level
		wantHigh  bool
	}{
		{"active-high off", false, hal.Low, false},
		{"active-high on", false, hal.High, true},
		{"active-low off", true, hal.Low, true},
		{"active-low on", true, hal.High, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := newFake(t)
			out, err := h.OpenOutput(ctxT(t), "GPIO17", hal.OutputConfig{ActiveLow: tc.activeLow, Initial: tc.initial})
			if err != nil {
				t.Fatal(err)
			}
			if got := out.Level(); got != tc.initial {
				t.Errorf("Level() = %v, want %v", got, tc.initial)
			}
			if high, ok := h.Physical("GPIO17"); !ok || high != tc.wantHigh {
				t.Errorf("Physical = %v,%v; want %v,true", high, ok, tc.wantHigh)
			}
			if hist := h.PhysicalHistory("GPIO17"); !slices.Equal(hist, []bool{tc.wantHigh}) {
				t.Errorf("wire history %v: an opposite level appeared (want only %v)", hist, tc.wantHigh)
			}
			for _, op := range h.Ops() {
				if op.Kind == fake.OpPhysical && op.High != tc.wantHigh {
					t.Errorf("glitch logged: %v", op)
				}
			}
		})
	}
}

func TestOutputSetDrivesWireWithActiveLow(t *testing.T) {
	h, _ := newFake(t)
	ctx := ctxT(t)
	out, err := h.OpenOutput(ctx, "relay", hal.OutputConfig{ActiveLow: true})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		set      hal.Level
		wantHigh bool
	}{{hal.High, false}, {hal.High, false}, {hal.Low, true}, {hal.High, false}}
	for _, s := range steps {
		if err := out.Set(ctx, s.set); err != nil {
			t.Fatal(err)
		}
		if high, _ := h.Physical("relay"); high != s.wantHigh {
			t.Fatalf("after Set(%v): wire high=%v, want %v", s.set, high, s.wantHigh)
		}
		if out.Level() != s.set || h.Level("relay") != s.set {
			t.Fatalf("after Set(%v): Level()=%v h.Level=%v", s.set, out.Level(), h.Level("relay"))
		}
	}
	// Initial Low active-low = high; then low, (same), high, low.
	if got, want := h.PhysicalHistory("relay"), []bool{true, false, true, false}; !slices.Equal(got, want) {
		t.Errorf("history %v, want %v", got, want)
	}
	var sets int
	for _, op := range h.Ops() {
		if op.Kind == fake.OpSet {
			sets++
		}
	}
	if sets != len(steps) {
		t.Errorf("logged %d sets, want %d", sets, len(steps))
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := ctxT(t)
	h, _ := newFake(t, fake.WithPins("GPIO17", "GPIO27"), fake.WithPWMs("pwmchip0/0"), fake.WithI2CBuses("1"))
	out, err := h.OpenOutput(ctx, "GPIO17", hal.OutputConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.OpenOutput(ctx, "GPIO4", hal.OutputConfig{}); !errors.Is(err, hal.ErrNotFound) {
		t.Errorf("unknown pin: %v, want ErrNotFound", err)
	}
	if _, err := h.OpenInput(ctx, "GPIO17", hal.InputConfig{}); !errors.Is(err, hal.ErrBusy) {
		t.Errorf("second open: %v, want ErrBusy", err)
	}
	if _, err := h.OpenPWM(ctx, "pwmchip0/1"); !errors.Is(err, hal.ErrNotFound) {
		t.Errorf("unknown pwm: %v, want ErrNotFound", err)
	}
	if _, err := h.OpenI2C(ctx, "/dev/i2c-2"); !errors.Is(err, hal.ErrNotFound) {
		t.Errorf("unknown bus: %v, want ErrNotFound", err)
	}
	if _, err := h.OpenI2C(ctx, "I2C1"); err != nil {
		t.Errorf("I2C1 should name bus 1: %v", err)
	}
	if err := h.SetInput("GPIO17", true); !errors.Is(err, hal.ErrBusy) {
		t.Errorf("driving an output: %v, want ErrBusy", err)
	}
	if _, err := h.OpenInput(ctx, "GPIO27", hal.InputConfig{Debounce: -1}); !errors.Is(err, hal.ErrInvalid) {
		t.Errorf("negative debounce: %v, want ErrInvalid", err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	if err := out.Set(ctx, hal.High); !errors.Is(err, hal.ErrClosed) {
		t.Errorf("Set after Close: %v, want ErrClosed", err)
	}
	again, err := h.OpenOutput(ctx, "GPIO17", hal.OutputConfig{})
	if err != nil {
		t.Fatalf("reopen after close: %v", err)
	}
	if err := out.Set(ctx, hal.High); !errors.Is(err, hal.ErrClosed) {
		t.Errorf("stale handle after reopen: %v, want ErrClosed", err)
	}
	_ = h.Close()
	if err := again.Set(ctx, hal.High); !errors.Is(err, hal.ErrClosed) {
		t.Errorf("Set after HAL Close: %v, want ErrClosed", err)
	}
	if _, err := h.OpenOutput(ctx, "GPIO27", hal.OutputConfig{}); !errors.Is(err, hal.ErrClosed) {
		t.Errorf("open after HAL Close: %v, want ErrClosed", err)
	}
}

func TestInputReadFollowsPullDriveAndActiveLow(t *testing.T) {
	h, _ := newFake(t)
	ctx := ctxT(t)
	up, err := h.OpenInput(ctx, "button", hal.InputConfig{Pull: hal.PullUp, ActiveLow: true})
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := up.Read(ctx); l != hal.Low {
		t.Errorf("pulled-up active-low button at rest reads %v, want Low (not pressed)", l)
	}
	if err := h.SetInput("button", false); err != nil {
		t.Fatal(err)
	}
	if l, _ := up.Read(ctx); l != hal.High {
		t.Errorf("pressed (wire low) reads %v, want High", l)
	}
	// Driven before open: the level is already on the wire.
	if err := h.SetInput("pir", true); err != nil {
		t.Fatal(err)
	}
	pir, err := h.OpenInput(ctx, "pir", hal.InputConfig{Pull: hal.PullDown})
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := pir.Read(ctx); l != hal.High {
		t.Errorf("pre-driven input reads %v, want High", l)
	}
}

func TestEdgesWithoutDebounceAreQueuedAndSelected(t *testing.T) {
	for _, tc := range []struct {
		edge hal.Edge
		want []hal.Level
	}{
		{hal.EdgeBoth, []hal.Level{hal.High, hal.Low, hal.High}},
		{hal.EdgeRising, []hal.Level{hal.High, hal.High}},
		{hal.EdgeFalling, []hal.Level{hal.Low}},
	} {
		h, clk := newFake(t)
		ctx := ctxT(t)
		in, err := h.OpenInput(ctx, "sw", hal.InputConfig{Edge: tc.edge})
		if err != nil {
			t.Fatal(err)
		}
		for _, lvl := range []bool{true, false, true} {
			clk.Advance(time.Millisecond)
			if err := h.SetInput("sw", lvl); err != nil {
				t.Fatal(err)
			}
		}
		var got []hal.Level
		for range tc.want {
			ev, err := in.WaitForEdge(ctx)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, ev.Level)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("edge %v: got %v, want %v", tc.edge, got, tc.want)
		}
		short, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := in.WaitForEdge(short); !errors.Is(err, context.Canceled) {
			t.Errorf("edge %v: extra edge or wrong error: %v", tc.edge, err)
		}
	}
}

func TestEdgeNoneIsInvalid(t *testing.T) {
	h, _ := newFake(t)
	in, err := h.OpenInput(ctxT(t), "sw", hal.InputConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.WaitForEdge(ctxT(t)); !errors.Is(err, hal.ErrInvalid) {
		t.Errorf("WaitForEdge with EdgeNone: %v, want ErrInvalid", err)
	}
}

func TestDebounceDropsBouncesAndReportsSettledLevel(t *testing.T) {
	h, clk := newFake(t)
	ctx := ctxT(t)
	in, err := h.OpenInput(ctx, "btn", hal.InputConfig{Pull: hal.PullUp, ActiveLow: true, Edge: hal.EdgeBoth, Debounce: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		ev  hal.EdgeEvent
		err error
	}
	res := make(chan result, 1)
	go func() {
		ev, err := in.WaitForEdge(ctx)
		res <- result{ev, err}
	}()
	// Press with contact bounce: low, high, low, high, low within 6 ms.
	for i, lvl := range []bool{false, true, false, true, false} {
		if i > 0 {
			clk.Advance(1500 * time.Microsecond)
		}
		if err := h.SetInput("btn", lvl); err != nil {
			t.Fatal(err)
		}
	}
	pressAt := clk.Now()
	// The waiter must be waiting for the settle time before time moves.
	if err := clk.BlockUntil(ctx, 1); err != nil {
		t.Fatal(err)
	}
	clk.Advance(19 * time.Millisecond)
	select {
	case r := <-res:
		t.Fatalf("edge delivered before the line settled: %+v", r)
	default:
	}
	clk.Advance(time.Millisecond)
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.ev.Level != hal.High || !r.ev.Time.Equal(pressAt) {
		t.Errorf("edge = %+v, want High at %v (the last transition)", r.ev, pressAt)
	}
	var edges int
	for _, op := range h.Ops() {
		if op.Kind == fake.OpEdge {
			edges++
		}
	}
	if edges != 1 {
		t.Errorf("%d edges logged for one bouncy press, want 1", edges)
	}
	// A glitch shorter than the debounce time produces no edge at all.
	clk.Advance(time.Second)
	_ = h.SetInput("btn", true)
	clk.Advance(5 * time.Millisecond)
	_ = h.SetInput("btn", false)
	clk.Advance(time.Second)
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if ev, err := in.WaitForEdge(short); err == nil {
		t.Errorf("glitch reported as edge %+v", ev)
	}
}

func TestWaitForEdgeUnblocksOnClose(t *testing.T) {
	h, _ := newFake(t)
	ctx := ctxT(t)
	in, err := h.OpenInput(ctx, "sw", hal.InputConfig{Edge: hal.EdgeBoth})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := in.WaitForEdge(ctx)
		errc <- err
	}()
	_ = in.Close()
	if err := <-errc; !errors.Is(err, hal.ErrClosed) {
		t.Errorf("after Close: %v, want ErrClosed", err)
	}
}

func TestStuckLines(t *testing.T) {
	h, _ := newFake(t)
	ctx := ctxT(t)
	out, err := h.OpenOutput(ctx, "relay", hal.OutputConfig{})
	if err != nil {
		t.Fatal(err)
	}
	h.Stick("relay", false)
	if err := out.Set(ctx, hal.High); err != nil {
		t.Fatalf("a stuck line cannot know it is stuck; Set must succeed: %v", err)
	}
	if high, _ := h.Physical("relay"); high {
		t.Error("stuck-low output went high")
	}
	if out.Level() != hal.High {
		t.Error("Level() must still report what was set")
	}
	if _, err := h.WaitOp(ctx, func(o fake.Op) bool {
		return o.Kind == fake.OpFault && o.Name == "relay" && o.Detail == "stuck: set ignored"
	}); err != nil {
		t.Error(err)
	}
	h.Unstick("relay")
	if high, _ := h.Physical("relay"); !high {
		t.Error("after Unstick the wire should take the last set level (high)")
	}

	in, err := h.OpenInput(ctx, "sensor", hal.InputConfig{Edge: hal.EdgeBoth})
	if err != nil {
		t.Fatal(err)
	}
	h.Stick("sensor", true)
	_ = h.SetInput("sensor", false)
	if l, _ := in.Read(ctx); l != hal.High {
		t.Errorf("stuck-high input reads %v", l)
	}
}

func TestLatencyHonoursContext(t *testing.T) {
	h, clk := newFake(t)
	ctx := ctxT(t)
	out, err := h.OpenOutput(ctx, "slow", hal.OutputConfig{})
	if err != nil {
		t.Fatal(err)
	}
	h.SetLatency("slow", time.Second)

	cctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- out.Set(cctx, hal.High) }()
	if err := clk.BlockUntil(ctx, 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled slow Set: %v, want context.Canceled", err)
	}
	if high, _ := h.Physical("slow"); high {
		t.Error("a cancelled Set changed the wire")
	}

	go func() { errc <- out.Set(ctx, hal.High) }()
	if err := clk.BlockUntil(ctx, 1); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	op, err := h.WaitOp(ctx, fake.Match(fake.OpSet, "slow"))
	if err != nil {
		t.Fatal(err)
	}
	if got := op.Time.Sub(t0); got != time.Second {
		t.Errorf("set logged at +%v, want +1s", got)
	}
}

func TestSetErrorInjection(t *testing.T) {
	h, _ := newFake(t)
	ctx := ctxT(t)
	boom := errors.New("boom")
	out, _ := h.OpenOutput(ctx, "x", hal.OutputConfig{})
	h.SetError("x", boom)
	if err := out.Set(ctx, hal.High); !errors.Is(err, boom) {
		t.Errorf("Set: %v, want boom", err)
	}
	h.SetError("x", nil)
	if err := out.Set(ctx, hal.High); err != nil {
		t.Errorf("after clearing: %v", err)
	}
}

func TestPWM(t *testing.T) {
	h, _ := newFake(t)
	ctx := ctxT(t)
	p, err := h.OpenPWM(ctx, "fan")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, on := h.PWM("fan"); on {
		t.Error("a freshly opened channel must be disabled")
	}
	for _, bad := range [][2]float64{{-0.1, 100}, {1.1, 100}, {0.5, 0}, {0.5, -1}} {
		if err := p.Set(ctx, bad[0], bad[1]); !errors.Is(err, hal.ErrInvalid) {
			t.Errorf("Set(%v, %v): %v, want ErrInvalid", bad[0], bad[1], err)
		}
	}
	if err := p.Set(ctx, 0.25, 25000); err != nil {
		t.Fatal(err)
	}
	if d, f, on := h.PWM("fan"); d != 0.25 || f != 25000 || !on {
		t.Errorf("PWM = %v %v %v", d, f, on)
	}
	if p.Duty() != 0.25 || p.Frequency() != 25000 {
		t.Errorf("Duty/Frequency = %v/%v", p.Duty(), p.Frequency())
	}
	if _, err := h.OpenPWM(ctx, "fan"); !errors.Is(err, hal.ErrBusy) {
		t.Errorf("second open: %v", err)
	}
	_ = p.Close()
	if _, _, on := h.PWM("fan"); on {
		t.Error("closed channel still enabled")
	}
	if err := p.Set(ctx, 0.5, 100); !errors.Is(err, hal.ErrClosed) {
		t.Errorf("Set after close: %v", err)
	}
}

func TestConcurrentUse(t *testing.T) {
	h := fake.New() // real clock: exercise the wall-clock paths too
	defer h.Close()
	ctx := ctxT(t)
	bus := h.Bus("1")
	bus.Attach(0x40, echo{})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := []string{"a", "b"}[i%2] + string(rune('0'+i))
			out, err := h.OpenOutput(ctx, name, hal.OutputConfig{})
			if err != nil {
				t.Error(err)
				return
			}
			defer out.Close()
			b, _ := h.OpenI2C(ctx, "1")
			defer b.Close()
			for j := range 50 {
				_ = out.Set(ctx, hal.Level(j%2 == 0))
				r := make([]byte, 1)
				if err := b.Tx(0x40, []byte{byte(j)}, r); err != nil || r[0] != byte(j) {
					t.Errorf("tx: %v %v", err, r)
				}
				_ = h.Ops()
			}
		}()
	}
	wg.Wait()
	if bus.Count() != 400 {
		t.Errorf("bus saw %d transactions, want 400", bus.Count())
	}
}

func TestWaitOpWaitsForFutureOps(t *testing.T) {
	h, _ := newFake(t)
	ctx := ctxT(t)
	mark := h.Log().Len()
	got := make(chan fake.Op, 1)
	go func() {
		op, _ := h.WaitOp(ctx, func(o fake.Op) bool { return o.Seq >= mark && o.Kind == fake.OpSet })
		got <- op
	}()
	out, _ := h.OpenOutput(ctx, "led", hal.OutputConfig{})
	_ = out.Set(ctx, hal.High)
	if op := <-got; op.Name != "led" || op.Level != hal.High {
		t.Errorf("got %v", op)
	}
	short, cancel := context.WithTimeout(ctx, time.Millisecond)
	defer cancel()
	if _, err := h.WaitOp(short, fake.Match(fake.OpEdge, "")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitOp without a match: %v", err)
	}
}
