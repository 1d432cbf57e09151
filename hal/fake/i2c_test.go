package fake_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"periph.io/x/conn/v3/i2c"

	"github.com/pinshadow/pinshadow/hal"
	"github.com/pinshadow/pinshadow/hal/fake"
)

// echo returns the last byte written, repeated.
type echo struct{}

func (echo) Tx(w, r []byte) error {
	for i := range r {
		r[i] = w[len(w)-1]
	}
	return nil
}

// regs is a tiny register-file device: first written byte selects the
// register, further bytes are written, reads continue from the pointer.
type regs struct{ mem [256]byte }

func (d *regs) Tx(w, r []byte) error {
	if len(w) == 0 {
		return nil
	}
	p := w[0]
	for _, b := range w[1:] {
		d.mem[p] = b
		p++
	}
	for i := range r {
		r[i] = d.mem[p]
		p++
	}
	return nil
}

func TestI2CTransactionsReachAttachedDevice(t *testing.T) {
	h, _ := newFake(t)
	ctx := ctxT(t)
	dev := &regs{}
	h.Bus("/dev/i2c-1").Attach(0x76, dev)
	bus, err := h.OpenI2C(ctx, "1")
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	if bus.String() != "I2C1" {
		t.Errorf("String() = %q", bus.String())
	}
	// Through periph's i2c.Dev, as periph device drivers use it.
	d := i2c.Dev{Bus: bus, Addr: 0x76}
	if _, err := d.Write([]byte{0xF4, 0x27}); err != nil {
		t.Fatal(err)
	}
	r := make([]byte, 1)
	if err := d.Tx([]byte{0xF4}, r); err != nil {
		t.Fatal(err)
	}
	if r[0] != 0x27 {
		t.Errorf("read back %#x, want 0x27", r[0])
	}
	op, err := h.WaitOp(ctx, func(o fake.Op) bool { return o.Kind == fake.OpI2CTx && len(o.R) == 1 })
	if err != nil {
		t.Fatal(err)
	}
	if op.Addr != 0x76 || !bytes.Equal(op.W, []byte{0xF4}) || !bytes.Equal(op.R, []byte{0x27}) || op.Name != "1" {
		t.Errorf("logged %v", op)
	}
}

func TestI2CEmptyAddressNACKs(t *testing.T) {
	b := fake.NewBus("1")
	err := b.Tx(0x23, []byte{0x10}, nil)
	if !errors.Is(err, hal.ErrNACK) {
		t.Fatalf("got %v, want ErrNACK", err)
	}
	b.Attach(0x23, echo{})
	if err := b.Tx(0x23, []byte{0x10}, nil); err != nil {
		t.Fatal(err)
	}
	b.Detach(0x23)
	if err := b.Tx(0x23, []byte{0x10}, nil); !errors.Is(err, hal.ErrNACK) {
		t.Fatalf("after Detach: %v, want ErrNACK", err)
	}
}

// failures runs n transactions and returns which (1-based) failed.
func failures(b *fake.Bus, addr uint16, n int) (nacks, timeouts []int) {
	for i := 1; i <= n; i++ {
		err := b.Tx(addr, []byte{1}, make([]byte, 1))
		switch {
		case errors.Is(err, hal.ErrNACK):
			nacks = append(nacks, i)
		case errors.Is(err, hal.ErrTimeout):
			timeouts = append(timeouts, i)
		}
	}
	return nacks, timeouts
}

func TestI2CFaultSchedules(t *testing.T) {
	b := fake.NewBus("1")
	b.Attach(0x40, echo{})
	b.Attach(0x41, echo{})
	b.InjectFault(fake.I2CFault{Kind: fake.FaultNACK, Next: 2})
	b.InjectFault(fake.I2CFault{Kind: fake.FaultTimeout, From: 5, To: 6})
	nacks, timeouts := failures(b, 0x40, 8)
	if want := []int{1, 2}; !equalInts(nacks, want) {
		t.Errorf("NACKs at %v, want %v", nacks, want)
	}
	if want := []int{5, 6}; !equalInts(timeouts, want) {
		t.Errorf("timeouts at %v, want %v", timeouts, want)
	}
	b.ClearFaults()
	b.InjectFault(fake.I2CFault{Kind: fake.FaultNACK, Next: 1, Addrs: []uint16{0x41}})
	if err := b.Tx(0x40, []byte{1}, nil); err != nil {
		t.Errorf("fault for 0x41 hit 0x40: %v", err)
	}
	if err := b.Tx(0x41, []byte{1}, nil); !errors.Is(err, hal.ErrNACK) {
		t.Errorf("0x41: %v, want NACK", err)
	}
	if b.Count() != 10 {
		t.Errorf("Count = %d, want 10", b.Count())
	}
}

func TestI2CFaultRateIsSeededAndDeterministic(t *testing.T) {
	run := func(seed uint64) []int {
		b := fake.NewBus("1", fake.WithSeed(seed))
		b.Attach(0x40, echo{})
		b.InjectFault(fake.I2CFault{Kind: fake.FaultNACK, Rate: 0.3})
		n, _ := failures(b, 0x40, 1000)
		return n
	}
	a, again, other := run(7), run(7), run(8)
	if !equalInts(a, again) {
		t.Error("same seed, different failures")
	}
	if equalInts(a, other) {
		t.Error("different seeds, identical failures")
	}
	if len(a) < 250 || len(a) > 350 {
		t.Errorf("%d failures in 1000 at rate 0.3", len(a))
	}
}

func TestI2CLatencyAndClose(t *testing.T) {
	clk := fake.NewFakeClock(t0)
	b := fake.NewBus("1", fake.WithClock(clk))
	b.Attach(0x40, echo{})
	b.SetLatency(10 * time.Millisecond)
	ctx := ctxT(t)
	errc := make(chan error, 1)
	go func() { errc <- b.Tx(0x40, []byte{1}, nil) }()
	if err := clk.BlockUntil(ctx, 1); err != nil {
		t.Fatal(err)
	}
	clk.Advance(10 * time.Millisecond)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	op, _ := b.Log().Wait(ctx, fake.Match(fake.OpI2CTx, "1"))
	if op.Time.Sub(t0) != 10*time.Millisecond {
		t.Errorf("tx at +%v, want +10ms", op.Time.Sub(t0))
	}
	go func() { errc <- b.Tx(0x40, []byte{1}, nil) }()
	if err := clk.BlockUntil(ctx, 1); err != nil {
		t.Fatal(err)
	}
	_ = b.Close()
	if err := <-errc; !errors.Is(err, hal.ErrClosed) {
		t.Errorf("Tx blocked in latency when bus closed: %v, want ErrClosed", err)
	}
}

func TestI2CHandleCloseLeavesBus(t *testing.T) {
	h, _ := newFake(t)
	ctx := ctxT(t)
	h.Bus("1").Attach(0x40, echo{})
	a, _ := h.OpenI2C(ctx, "1")
	b, _ := h.OpenI2C(ctx, "I2C1")
	_ = a.Close()
	if err := a.Tx(0x40, []byte{1}, nil); !errors.Is(err, hal.ErrClosed) {
		t.Errorf("closed handle: %v", err)
	}
	if err := b.Tx(0x40, []byte{1}, nil); err != nil {
		t.Errorf("other handle broken by Close: %v", err)
	}
	_ = h.Close()
	if err := b.Tx(0x40, []byte{1}, nil); !errors.Is(err, hal.ErrClosed) {
		t.Errorf("after HAL close: %v", err)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
