package periph

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/pinshadow/pinshadow/hal"
)

// errEdgeBroken is returned when periph's WaitForEdge keeps returning at
// once without an edge, which would otherwise spin a CPU.
var errEdgeBroken = errors.New("edge detection is not working on this line (WaitForEdge returns at once)")

// OpenInput requests the line as an input. Whatever edges are selected, the
// kernel is asked for both: debounce and active-low are done here, and the
// settled level decides which edge it was.
func (h *HAL) OpenInput(ctx context.Context, name string, cfg hal.InputConfig) (hal.DigitalIn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if cfg.Debounce < 0 {
		return nil, fmt.Errorf("periph: open input %q: debounce %v: %w", name, cfg.Debounce, hal.ErrInvalid)
	}
	p, err := h.resolve(name)
	if err != nil {
		return nil, err
	}
	in := &input{name: name, line: p, cfg: cfg, slice: h.opts.EdgeSlice}
	key := lineKey(p)
	if err := h.claim(key, "input "+strconv.Quote(name), in.Close); err != nil {
		return nil, err
	}
	in.release = func() { h.release(key) }
	edge := gpio.NoEdge
	if cfg.Edge != hal.EdgeNone {
		edge = gpio.BothEdges
	}
	if err := p.In(pull(cfg.Pull), edge); err != nil {
		h.release(key)
		_ = releaseLine(p)
		return nil, lineErr("open input", name, err)
	}
	in.reported = logical(p.Read(), cfg.ActiveLow)
	return in, nil
}

func pull(p hal.Pull) gpio.Pull {
	switch p {
	case hal.PullUp:
		return gpio.PullUp
	case hal.PullDown:
		return gpio.PullDown
	}
	return gpio.Float
}

type input struct {
	name    string
	line    gpio.PinIO
	cfg     hal.InputConfig
	slice   time.Duration
	release func()

	waitMu   sync.Mutex // one waiter at a time; Close waits for it to leave
	reported hal.Level  // guarded by waitMu

	mu     sync.Mutex
	closed bool
}

func (in *input) isClosed() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.closed
}

// Read returns the current logical level.
func (in *input) Read(ctx context.Context) (hal.Level, error) {
	if err := ctx.Err(); err != nil {
		return hal.Low, err
	}
	if in.isClosed() {
		return hal.Low, fmt.Errorf("periph: read %q: %w", in.name, hal.ErrClosed)
	}
	return logical(in.line.Read(), in.cfg.ActiveLow), nil
}

// WaitForEdge waits for the next debounced edge. periph's WaitForEdge is
// only ever called with a positive timeout (gpioioctl treats -1 as "already
// expired" and 0 as "forever", periph/host#78), in slices, so ctx and Close
// are noticed within EdgeSlice. After a kernel edge the line must stay quiet
// for Debounce; then the level is read, and an edge is reported only if it
// differs from the last one reported. periph does not say which edge the
// kernel saw, so a pulse shorter than the time to read the line back can go
// unreported: the level, not the event count, is what this reports.
func (in *input) WaitForEdge(ctx context.Context) (hal.EdgeEvent, error) {
	if in.cfg.Edge == hal.EdgeNone {
		return hal.EdgeEvent{}, fmt.Errorf("periph: wait for edge on %q: opened with EdgeNone: %w", in.name, hal.ErrInvalid)
	}
	in.waitMu.Lock()
	defer in.waitMu.Unlock()
	fast := 0
	for {
		if err := in.check(ctx); err != nil {
			return hal.EdgeEvent{}, err
		}
		start := time.Now()
		slice := in.slice
		if dl, ok := ctx.Deadline(); ok {
			if left := time.Until(dl); left < slice {
				slice = max(left, time.Millisecond)
			}
		}
		if !in.line.WaitForEdge(slice) {
			// A timeout takes about a slice; returning much sooner means
			// periph is failing (it only logs why). Give up after a few.
			if time.Since(start) < slice/4 && !in.isClosed() {
				if fast++; fast >= 3 {
					return hal.EdgeEvent{}, fmt.Errorf("periph: wait for edge on %q: %w", in.name, errEdgeBroken)
				}
			} else {
				fast = 0
			}
			continue
		}
		fast = 0
		if in.cfg.Debounce > 0 {
			// Every further edge restarts the quiet window; waits stay in
			// slices so ctx and Close are still noticed.
			quietUntil := time.Now().Add(in.cfg.Debounce)
			for left := in.cfg.Debounce; left > 0; left = time.Until(quietUntil) {
				if in.line.WaitForEdge(min(left, in.slice)) {
					quietUntil = time.Now().Add(in.cfg.Debounce)
				}
				if err := in.check(ctx); err != nil {
					return hal.EdgeEvent{}, err
				}
			}
		}
		l := logical(in.line.Read(), in.cfg.ActiveLow)
		if l == in.reported {
			continue
		}
		in.reported = l
		if selected(in.cfg.Edge, l) {
			return hal.EdgeEvent{Level: l, Time: time.Now()}, nil
		}
	}
}

func (in *input) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("periph: wait for edge on %q: %w", in.name, err)
	}
	if in.isClosed() {
		return fmt.Errorf("periph: wait for edge on %q: %w", in.name, hal.ErrClosed)
	}
	return nil
}

func selected(e hal.Edge, l hal.Level) bool {
	switch e {
	case hal.EdgeBoth:
		return true
	case hal.EdgeRising:
		return l == hal.High
	case hal.EdgeFalling:
		return l == hal.Low
	}
	return false
}

func (in *input) Name() string { return in.name }

// Close interrupts a waiter (Halt), waits for it to leave and gives the
// line back to the kernel.
func (in *input) Close() error {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return nil
	}
	in.closed = true
	in.mu.Unlock()
	_ = in.line.Halt()
	in.waitMu.Lock() // the waiter sees closed within one EdgeSlice
	defer in.waitMu.Unlock()
	in.release()
	return releaseLine(in.line)
}
