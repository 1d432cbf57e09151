// Package chips holds register-level models of the I2C chips pinshadow
// supports, for tests and simulation. Each model implements exactly
// Tx(w, r []byte) error, the bus transaction seen from the chip: w is what
// the controller wrote (register pointer or command, then data), r is
// filled with what the chip answers. The fake HAL's bus attaches models with
// bus.Attach(addr, chip); Bus in this package is a minimal router for
// tests that need no more.
//
// A model behaves like the datasheet says (register map, reset values,
// auto-increment, command set, CRC), produces the raw values the real chip
// would report for a physical quantity set with SetTemperature,
// SetHumidity, SetPressure, SetLux, SetVoltage, … and has fault knobs
// (Faults: fail the next transaction or every one; CorruptNextCRC on chips
// with a CRC). Every model is safe for concurrent use.
//
// # Adding a model
//
// Write a type with a mutex, the register file or command state, the
// physical inputs and an embedded Faults; its Tx calls Faults.take first.
// Cite the datasheet sections implemented in the type's doc. Test it
// against the driver in devices/<chip> and, where one exists, against an
// independent implementation (periph.io's driver) or the datasheet's worked
// example.
package chips

import (
	"fmt"
	"sync"

	"periph.io/x/conn/v3/physic"

	"github.com/pinshadow/pinshadow/hal"
)

// Chip is a device model attached to a bus at an address.
type Chip interface {
	Tx(w, r []byte) error
}

// Faults is embedded in every model: it makes the next transactions fail.
// The zero value injects nothing.
type Faults struct {
	mu     sync.Mutex
	err    error
	count  int // transactions left to fail; <0: all
	failed int
}

// FailNext makes the next n transactions return err (typically hal.ErrNACK
// or hal.ErrTimeout) without touching the chip's state.
func (f *Faults) FailNext(n int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err, f.count = err, n
}

// Fail makes every transaction return err until Heal.
func (f *Faults) Fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err, f.count = err, -1
}

// Heal stops injected failures.
func (f *Faults) Heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err, f.count = nil, 0
}

// Failed returns how many transactions were failed on purpose.
func (f *Faults) Failed() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed
}

// take returns the error the current transaction must fail with, if any.
func (f *Faults) take() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil || f.count == 0 {
		return nil
	}
	if f.count > 0 {
		f.count--
	}
	f.failed++
	return f.err
}

// Bus is a minimal i2c.Bus routing transactions to attached models; an
// address with no model NACKs (hal.ErrNACK). The fake HAL's bus adds an
// operation log, latency and scheduled faults; use this one in driver unit
// tests.
type Bus struct {
	mu    sync.Mutex
	chips map[uint16]Chip
	txs   int
}

// NewBus returns an empty bus.
func NewBus() *Bus { return &Bus{chips: map[uint16]Chip{}} }

// Attach puts c at addr, replacing any model there.
func (b *Bus) Attach(addr uint16, c Chip) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.chips[addr] = c
}

// Detach removes the model at addr; the address NACKs afterwards.
func (b *Bus) Detach(addr uint16) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.chips, addr)
}

// Tx implements i2c.Bus.
func (b *Bus) Tx(addr uint16, w, r []byte) error {
	b.mu.Lock()
	c := b.chips[addr]
	b.txs++
	b.mu.Unlock()
	if c == nil {
		return fmt.Errorf("i2c address 0x%02x: %w", addr, hal.ErrNACK)
	}
	return c.Tx(w, r)
}

// Transactions returns how many transactions the bus carried.
func (b *Bus) Transactions() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.txs
}

// String implements i2c.Bus.
func (b *Bus) String() string { return "chips.Bus" }

// SetSpeed implements i2c.Bus; the model bus has no speed.
func (b *Bus) SetSpeed(physic.Frequency) error { return nil }

// Close implements i2c.BusCloser.
func (b *Bus) Close() error { return nil }

// SensirionCRC8 is the CRC Sensirion and Aosong sensors append to every
// 16-bit word (SHT3x datasheet §4.12: polynomial 0x31, init 0xFF, no
// reflection, no final XOR; CRC(0xBEEF) = 0x92).
func SensirionCRC8(data []byte) byte {
	crc := byte(0xFF)
	for _, b := range data {
		crc ^= b
		for i := 0; i < 8; i++ {
			if crc&0x80 != 0 {
				crc = crc<<1 ^ 0x31
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// fill copies src into r and pads with 0xFF, what a released SDA line reads.
func fill(r, src []byte) {
	n := copy(r, src)
	for i := n; i < len(r); i++ {
		r[i] = 0xFF
	}
}

// closest returns the raw value in [lo, hi] for which f is closest to
// target, f being monotonic (either direction) on that interval.
func closest(lo, hi int64, f func(int64) float64, target float64) int64 {
	inc := f(hi) >= f(lo)
	a, b := lo, hi
	for b-a > 1 {
		m := a + (b-a)/2
		if (f(m) < target) == inc {
			a = m
		} else {
			b = m
		}
	}
	if abs(f(a)-target) <= abs(f(b)-target) {
		return a
	}
	return b
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
