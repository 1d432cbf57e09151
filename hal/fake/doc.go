// Package fake is an in-memory implementation of hal.HAL for tests and the
// agent's simulation mode. It behaves like hardware that tells no lies:
// what the code under test did is observable, and the ways real hardware
// fails can be injected, deterministically.
//
// # What it simulates
//
//   - Digital lines by any name (or only those given to WithPins, e.g. a
//     board profile's names). An output's electrical level is observable
//     (Physical, Level, PhysicalHistory); active-low is applied; the initial
//     level is the first level the wire ever takes, so a test can prove no
//     opposite level appeared. Inputs are driven by the test (SetInput) and
//     deliver debounced edges through WaitForEdge with a context.
//   - PWM channels (PWM reports duty, frequency and whether enabled).
//   - I2C buses implementing periph's i2c.BusCloser, so periph.io device
//     drivers run on them unchanged. Simulated chips are attached by address
//     (Bus.Attach with a Device: one Tx(w, r) method; the register-level
//     models in hal/fake/chips implement it). A transaction to an empty
//     address fails with an error wrapping hal.ErrNACK.
//   - A Thermal model: a heater line warms and a fan PWM cools a body whose
//     temperature is pushed into anything with SetTemperature (chip models).
//
// # Observing
//
// Every operation (open, close, set, read, edge, wire level change, test
// drive, PWM set, I2C transaction with address and bytes, injected fault) is
// appended to a Log with a timestamp from the HAL's Clock. Tests read it
// with Ops, or block until an op appears with WaitOp(ctx, match), which is
// how to synchronise with another goroutine without sleeping.
//
// # Faults
//
//   - I2C: Bus.InjectFault with NACK or timeout at a Rate (seeded RNG, see
//     WithSeed: the same seed and traffic give the same failures), for the
//     Next N transactions, or for transactions From..To; Bus.SetLatency.
//   - Lines and PWM channels: Stick (stuck at a level), SetLatency (honours
//     the context), SetError (every operation fails).
//
// # Time
//
// Nothing in the package sleeps on the wall clock unless asked to: inject a
// FakeClock (WithClock) and move time with Advance. FakeClock.BlockUntil
// waits until a goroutine is waiting on the clock, so an Advance is never
// lost.
//
// # Adding a simulated chip
//
// Implement Device (and TemperatureSink if it senses temperature) in
// hal/fake/chips, model the registers the datasheet describes, and attach
// it with Bus.Attach. Faults on the wire are the Bus's job, not the chip's.
package fake
