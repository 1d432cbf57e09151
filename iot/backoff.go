package iot

import (
	"fmt"
	"strings"
	"time"
)

// Jitter selects how a backoff wait is randomised so a fleet does not
// reconnect in lockstep after a broker outage.
type Jitter int

const (
	// JitterFull waits a uniformly random time in [0, w] (the default).
	JitterFull Jitter = iota
	// JitterNone waits exactly w.
	JitterNone
	// JitterEqual waits a uniformly random time in [w/2, w].
	JitterEqual
)

// String returns "full", "none" or "equal".
func (j Jitter) String() string {
	switch j {
	case JitterFull:
		return "full"
	case JitterNone:
		return "none"
	case JitterEqual:
		return "equal"
	}
	return fmt.Sprintf("Jitter(%d)", int(j))
}

// ParseJitter parses "none", "full" or "equal" ("" means full).
func ParseJitter(s string) (Jitter, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "full":
		return JitterFull, nil
	case "none":
		return JitterNone, nil
	case "equal":
		return JitterEqual, nil
	}
	return 0, &ConfigError{Field: "backoff.jitter", Value: s, Reason: `must be "none", "full" or "equal"`}
}

// BackoffConfig is the reconnect policy: the wait before reconnecting starts
// at Base, doubles after every failed attempt or short-lived connection up
// to Max, and returns to Base only after a connection stayed up for at least
// Stable. It mirrors the v1 SDK's configureAutoReconnectBackoffTime(base,
// max, stable), plus jitter.
type BackoffConfig struct {
	Base   time.Duration // first wait; default 1 s
	Max    time.Duration // longest wait; default 32 s
	Stable time.Duration // uptime after which the wait returns to Base; default 20 s
	Jitter Jitter        // default JitterFull
}

func (b BackoffConfig) withDefaults() BackoffConfig {
	if b.Base == 0 {
		b.Base = time.Second
	}
	if b.Max == 0 {
		b.Max = 32 * time.Second
		if b.Max < b.Base {
			b.Max = b.Base
		}
	}
	if b.Stable == 0 {
		b.Stable = 20 * time.Second
		if b.Stable <= b.Base {
			b.Stable = 2 * b.Base
		}
	}
	return b
}

func (b BackoffConfig) validate() error {
	switch {
	case b.Base <= 0:
		return &ConfigError{Field: "backoff.base", Value: b.Base.String(), Reason: "must be positive"}
	case b.Max < b.Base:
		return &ConfigError{Field: "backoff.max", Value: b.Max.String(), Reason: "must be at least backoff.base (" + b.Base.String() + ")"}
	case b.Stable <= b.Base:
		return &ConfigError{Field: "backoff.stable", Value: b.Stable.String(), Reason: "must be longer than backoff.base (" + b.Base.String() + ")"}
	case b.Jitter < JitterFull || b.Jitter > JitterEqual:
		return &ConfigError{Field: "backoff.jitter", Value: b.Jitter.String(), Reason: `must be "none", "full" or "equal"`}
	}
	return nil
}

// Backoff is the pure reconnect-wait calculator: no clock, no sleeping. The
// caller reports connection times and failures and gets the wait to apply.
// It is not safe for concurrent use (the connection loop owns it).
type Backoff struct {
	cfg       BackoffConfig
	rand      func() float64
	next      time.Duration // un-jittered wait for the next failure
	connected time.Time     // when the current connection came up; zero if none
}

// NewBackoff returns a Backoff for cfg (zero fields get the defaults).
// rand returns uniformly distributed values in [0, 1); it is only used for
// jitter and may be nil with JitterNone.
func NewBackoff(cfg BackoffConfig, rand func() float64) *Backoff {
	cfg = cfg.withDefaults()
	return &Backoff{cfg: cfg, rand: rand, next: cfg.Base}
}

// Connected records that a connection came up at t.
func (b *Backoff) Connected(t time.Time) { b.connected = t }

// Disconnected records that the connection that came up at the last
// Connected call was lost at t, and returns how long to wait before
// reconnecting. A connection that stayed up at least Stable resets the wait
// to Base first.
func (b *Backoff) Disconnected(t time.Time) time.Duration {
	if !b.connected.IsZero() && t.Sub(b.connected) >= b.cfg.Stable {
		b.next = b.cfg.Base
	}
	b.connected = time.Time{}
	return b.step()
}

// Failed records a connection attempt that did not come up and returns how
// long to wait before the next one.
func (b *Backoff) Failed() time.Duration {
	b.connected = time.Time{}
	return b.step()
}

func (b *Backoff) step() time.Duration {
	w := b.next
	b.next *= 2
	if b.next > b.cfg.Max || b.next <= 0 { // <= 0: overflow guard
		b.next = b.cfg.Max
	}
	return b.jitter(w)
}

func (b *Backoff) jitter(w time.Duration) time.Duration {
	if b.rand == nil {
		return w
	}
	switch b.cfg.Jitter {
	case JitterFull:
		return time.Duration(b.rand() * float64(w))
	case JitterEqual:
		return w/2 + time.Duration(b.rand()*float64(w-w/2))
	}
	return w
}
