package board

import (
	"os"
	"path/filepath"
	"sync"
)

// Claims records who uses which line, PWM channel or bus, so a
// configuration that wires two devices to one pin fails with both names.
// Safe for concurrent use; the zero value is ready.
type Claims struct {
	mu sync.Mutex
	by map[string]string // resource → user
}

// Claim records user on resource, or returns a *ConflictError naming the
// user already there (even if it is the same user: a device using one pin
// twice is a mistake too).
func (c *Claims) Claim(resource, user string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.by == nil {
		c.by = map[string]string{}
	}
	if first, ok := c.by[resource]; ok {
		return &ConflictError{Resource: resource, First: first, Second: user}
	}
	c.by[resource] = user
	return nil
}

// Release forgets resource if user holds it.
func (c *Claims) Release(resource, user string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.by[resource] == user {
		delete(c.by, resource)
	}
}

// User returns who holds resource.
func (c *Claims) User(resource string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	u, ok := c.by[resource]
	return u, ok
}

// ClaimPin resolves name, checks it is not reserved by an enabled bus and
// claims it for user. "GPIO17", "pin11" and "pinctrl-bcm2711/17" are one line.
func (p Profile) ClaimPin(c *Claims, name, user string, enabled []Bus) (Pin, error) {
	pin, err := p.Resolve(name)
	if err != nil {
		return Pin{}, err
	}
	if err := p.CheckReserved(pin, enabled); err != nil {
		return Pin{}, err
	}
	if err := c.Claim(pin.String(), user); err != nil {
		return Pin{}, err
	}
	return pin, nil
}

// ClaimPWM is ClaimPin for a PWM output: it claims the pin and the PWM
// channel, so GPIO12 and GPIO18 (one channel on Pi 0–4) cannot both be used.
func (p Profile) ClaimPWM(c *Claims, name, user string, enabled []Bus) (PWMChannel, Pin, error) {
	ch, pin, err := p.PWMFor(name)
	if err != nil {
		return PWMChannel{}, Pin{}, err
	}
	if err := p.CheckReserved(pin, enabled); err != nil {
		return PWMChannel{}, Pin{}, err
	}
	if err := c.Claim(pin.String(), user); err != nil {
		return PWMChannel{}, Pin{}, err
	}
	if err := c.Claim("PWM channel "+ch.HALName(), user); err != nil {
		c.Release(pin.String(), user)
		return PWMChannel{}, Pin{}, err
	}
	return ch, pin, nil
}

// EnabledBuses guesses which buses are on from the device nodes under devDir
// ("/dev" if empty): /dev/i2c-1, /dev/spidev0.*, /dev/serial0. The agent's
// configuration can state them instead.
func EnabledBuses(devDir string) []Bus {
	if devDir == "" {
		devDir = "/dev"
	}
	var out []Bus
	if _, err := os.Stat(filepath.Join(devDir, "i2c-1")); err == nil {
		out = append(out, BusI2C)
	}
	if m, _ := filepath.Glob(filepath.Join(devDir, "spidev0.*")); len(m) > 0 {
		out = append(out, BusSPI0)
	}
	if _, err := os.Lstat(filepath.Join(devDir, "serial0")); err == nil {
		out = append(out, BusUART)
	}
	return out
}
