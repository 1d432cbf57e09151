package fake

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/pinshadow/pinshadow/hal"
)

// OpKind names one kind of logged operation.
type OpKind string

// Operation kinds in the log.
const (
	OpOpen     OpKind = "open"     // a line, channel or bus was opened (Detail: "output", "input", "pwm", "i2c")
	OpClose    OpKind = "close"    // a handle was closed
	OpSet      OpKind = "set"      // DigitalOut.Set (Level logical, High physical after the call)
	OpRead     OpKind = "read"     // DigitalIn.Read (Level logical, High physical)
	OpEdge     OpKind = "edge"     // a debounced edge was delivered by WaitForEdge
	OpPhysical OpKind = "physical" // the electrical level of a line changed (High)
	OpDrive    OpKind = "drive"    // the test drove an input wire (SetInput; High)
	OpPWMSet   OpKind = "pwm-set"  // PWMOut.Set (Duty, Freq)
	OpI2CTx    OpKind = "i2c-tx"   // an I2C transaction (Addr, W, R, Err)
	OpSpeed    OpKind = "i2c-speed"
	OpFault    OpKind = "fault" // an injected fault took effect (Detail says which)
)

// Op is one logged operation. Fields not meaningful for a kind are zero.
type Op struct {
	Seq    int // position in the log, from 0
	Time   time.Time
	Kind   OpKind
	Name   string    // line, PWM channel or bus name
	Level  hal.Level // logical level (set, read, edge; open of an output: initial)
	High   bool      // physical (electrical) level
	Duty   float64
	Freq   float64
	Addr   uint16
	W, R   []byte // copies of the transaction buffers
	Err    error
	Detail string
}

// String renders an op for test failure messages.
func (o Op) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "#%d %s %s %q", o.Seq, o.Time.Format("15:04:05.000000"), o.Kind, o.Name)
	switch o.Kind {
	case OpSet, OpRead, OpEdge:
		fmt.Fprintf(&b, " level=%v high=%v", o.Level, o.High)
	case OpPhysical, OpDrive:
		fmt.Fprintf(&b, " high=%v", o.High)
	case OpPWMSet:
		fmt.Fprintf(&b, " duty=%g freq=%g", o.Duty, o.Freq)
	case OpI2CTx:
		fmt.Fprintf(&b, " addr=%#x w=% x r=% x", o.Addr, o.W, o.R)
	}
	if o.Detail != "" {
		fmt.Fprintf(&b, " (%s)", o.Detail)
	}
	if o.Err != nil {
		fmt.Fprintf(&b, " err=%v", o.Err)
	}
	return b.String()
}

// Log is the timestamped record of everything the fake did. It is safe
// for concurrent use. By default it keeps every op (tests read all of
// them); a long-running simulation bounds it with WithLogLimit, and then
// only the newest ops are kept while Seq keeps counting.
type Log struct {
	clock   Clock
	limit   int // 0: keep everything
	mu      sync.Mutex
	base    int // Seq of ops[0]
	ops     []Op
	changed chan struct{}
}

func newLog(clock Clock, limit int) *Log {
	return &Log{clock: clock, limit: limit, changed: make(chan struct{})}
}

func (l *Log) add(op Op) {
	op.Time = l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	op.Seq = l.base + len(l.ops)
	l.ops = append(l.ops, op)
	if l.limit > 0 && len(l.ops) > 2*l.limit {
		// Drop the oldest in one go (amortised O(1) per op) into a fresh
		// slice so the dropped ops' buffers can be collected.
		drop := len(l.ops) - l.limit
		l.ops = append(make([]Op, 0, 2*l.limit), l.ops[drop:]...)
		l.base += drop
	}
	close(l.changed)
	l.changed = make(chan struct{})
}

// Ops returns a copy of the ops kept.
func (l *Log) Ops() []Op {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Op(nil), l.ops...)
}

// Len returns the number of ops logged so far (kept or not); use it as a
// mark and match Seq >= mark to wait only for ops that happen afterwards.
func (l *Log) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.base + len(l.ops)
}

// Wait returns the first op in the log (already logged or yet to come)
// for which match returns true, or ctx's error.
func (l *Log) Wait(ctx context.Context, match func(Op) bool) (Op, error) {
	next := 0 // Seq of the next op to look at
	for {
		l.mu.Lock()
		next = max(next, l.base)
		for ; next < l.base+len(l.ops); next++ {
			if op := l.ops[next-l.base]; match(op) {
				l.mu.Unlock()
				return op, nil
			}
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ctx.Done():
			return Op{}, fmt.Errorf("fake: waiting for an op: %w", ctx.Err())
		case <-ch:
		}
	}
}

// Match is a convenience predicate for Wait: the op's kind and name equal
// kind and name ("" matches any name).
func Match(kind OpKind, name string) func(Op) bool {
	return func(o Op) bool { return o.Kind == kind && (name == "" || o.Name == name) }
}

func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}
