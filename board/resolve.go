package board

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Errors callers act on; the concrete errors below wrap them.
var (
	ErrUnknown   = errors.New("board: unknown name")
	ErrAmbiguous = errors.New("board: ambiguous pin name")
	ErrNotGPIO   = errors.New("board: header pin is not a GPIO")
	ErrNoPWM     = errors.New("board: no hardware PWM on this pin")
	ErrReserved  = errors.New("board: pin reserved by an enabled bus")
	ErrConflict  = errors.New("board: used twice")
)

// UnknownError: a board, pin, bus or PWM name that does not exist.
type UnknownError struct {
	Kind    string // "board", "pin", "i2c bus", "pwm"
	Name    string
	Suggest string   // "did you mean", when one is cheap to find
	Known   []string // the valid names, when short enough to list
	Reason  string
}

func (e *UnknownError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "unknown %s %q", e.Kind, e.Name)
	if e.Reason != "" {
		b.WriteString(": " + e.Reason)
	}
	if e.Suggest != "" {
		fmt.Fprintf(&b, "; did you mean %q?", e.Suggest)
	}
	if len(e.Known) > 0 {
		fmt.Fprintf(&b, " (known: %s)", strings.Join(e.Known, ", "))
	}
	return b.String()
}

func (e *UnknownError) Unwrap() error { return ErrUnknown }

// PinError: a name that resolves to something that is not usable as asked.
type PinError struct {
	Name   string
	Reason string
	Err    error // ErrAmbiguous, ErrNotGPIO or ErrNoPWM
}

func (e *PinError) Error() string { return fmt.Sprintf("pin %q: %s", e.Name, e.Reason) }
func (e *PinError) Unwrap() error { return e.Err }

// ReservedError: the pin belongs to an enabled bus.
type ReservedError struct {
	Pin Pin
	Bus Bus
}

func (e *ReservedError) Error() string {
	return fmt.Sprintf("%s is reserved while %s is enabled (pins %s); choose another pin or disable %s", e.Pin, e.Bus, gpioList(reserved()[e.Bus]), e.Bus)
}

func (e *ReservedError) Unwrap() error { return ErrReserved }

// ConflictError: one resource claimed by two users.
type ConflictError struct {
	Resource      string
	First, Second string
}

func (e *ConflictError) Error() string {
	if e.First == e.Second {
		return fmt.Sprintf("%s is used twice by %s", e.Resource, e.First)
	}
	return fmt.Sprintf("%s is used by both %s and %s", e.Resource, e.First, e.Second)
}

func (e *ConflictError) Unwrap() error { return ErrConflict }

// Pin is a resolved line.
type Pin struct {
	GPIO     int    // GPIO number, -1 when the board has no map (generic)
	Physical int    // header pin, 0 when not on the header
	Line     string // kernel line name on Raspberry Pi OS ("GPIO17"), or the name given (generic)
	// HAL is the name to open with hal.HAL: "pinctrl-bcm2711/17" on a Pi
	// (the chip label survives chip renumbering and differing line names),
	// the name as given on generic.
	HAL string
}

// String names the pin for messages: "GPIO17 (pin 11)".
func (p Pin) String() string {
	if p.Physical > 0 {
		return fmt.Sprintf("%s (pin %d)", p.Line, p.Physical)
	}
	return p.Line
}

// key identifies the pin for claims, whatever name it was given by.
func (p Pin) key() string {
	if p.GPIO >= 0 {
		return "GPIO" + strconv.Itoa(p.GPIO)
	}
	return p.HAL
}

// Resolve turns a user's pin name into a line. Accepted, case-insensitive:
//
//   - "GPIO17", "BCM17": the Broadcom (RP1 on a Pi 5) GPIO number;
//   - "pin11", "P1_11", "P1-11": the physical header pin;
//   - "gpiochip0/17" or "pinctrl-bcm2711/17": chip/offset, as on any board;
//   - on generic, also any kernel line name.
//
// A bare number ("17") is refused: half the tutorials mean the GPIO number,
// the other half the header pin, and guessing wrong drives the wrong wire.
func (p Profile) Resolve(name string) (Pin, error) {
	s := strings.TrimSpace(name)
	if s == "" {
		return Pin{}, &UnknownError{Kind: "pin", Name: name, Reason: "empty name"}
	}
	if n, err := strconv.Atoi(s); err == nil {
		reason := fmt.Sprintf("a bare number is ambiguous: write GPIO%d for the GPIO number or pin%d for the header pin", n, n)
		if hp, ok := p.header(n); ok && hp.GPIO >= 0 && !p.Generic() {
			reason += fmt.Sprintf(" (pin%d is GPIO%d)", n, hp.GPIO)
		}
		return Pin{}, &PinError{Name: name, Reason: reason, Err: ErrAmbiguous}
	}
	if chip, off, ok := strings.Cut(s, "/"); ok {
		return p.resolveChipOffset(name, chip, off)
	}
	u := strings.ToUpper(strings.ReplaceAll(s, " ", ""))
	for _, prefix := range []string{"GPIO", "BCM"} {
		if rest, ok := strings.CutPrefix(u, prefix); ok {
			if n, err := strconv.Atoi(rest); err == nil && n >= 0 {
				return p.byGPIO(name, n)
			}
		}
	}
	for _, prefix := range []string{"PIN", "P1_", "P1-", "PHYSICAL"} {
		if rest, ok := strings.CutPrefix(u, prefix); ok {
			if n, err := strconv.Atoi(rest); err == nil {
				return p.byPhysical(name, n)
			}
		}
	}
	if p.Generic() {
		return Pin{GPIO: -1, Line: s, HAL: s}, nil
	}
	return Pin{}, &UnknownError{Kind: "pin", Name: name, Suggest: p.suggestPin(u),
		Reason: "name pins as GPIO17, pin11 (header) or chip/offset"}
}

func (p Profile) header(physical int) (HeaderPin, bool) {
	i := slices.IndexFunc(p.Header, func(h HeaderPin) bool { return h.Physical == physical })
	if i < 0 {
		return HeaderPin{}, false
	}
	return p.Header[i], true
}

func (p Profile) physicalOf(gpio int) int {
	for _, h := range p.Header {
		if h.GPIO == gpio {
			return h.Physical
		}
	}
	return 0
}

func (p Profile) pin(gpio int) Pin {
	return Pin{GPIO: gpio, Physical: p.physicalOf(gpio), Line: "GPIO" + strconv.Itoa(gpio), HAL: p.Chip + "/" + strconv.Itoa(gpio)}
}

func (p Profile) byGPIO(name string, n int) (Pin, error) {
	if p.Generic() {
		return Pin{}, &UnknownError{Kind: "pin", Name: name,
			Reason: "the generic profile has no GPIO numbering; use the kernel line name or chip/offset (see gpioinfo), or set the board"}
	}
	if p.physicalOf(n) > 0 || slices.Contains(p.ExtraGPIOs, n) {
		return p.pin(n), nil
	}
	return Pin{}, &UnknownError{Kind: "pin", Name: name,
		Reason: fmt.Sprintf("%s has no GPIO%d on its header (GPIO0–27)", p.Title, n)}
}

func (p Profile) byPhysical(name string, n int) (Pin, error) {
	if p.Generic() {
		return Pin{}, &UnknownError{Kind: "pin", Name: name, Reason: "the generic profile has no header map; set the board or use chip/offset"}
	}
	hp, ok := p.header(n)
	if !ok {
		return Pin{}, &UnknownError{Kind: "pin", Name: name, Reason: "the header has pins 1–40"}
	}
	if hp.GPIO < 0 {
		return Pin{}, &PinError{Name: name, Reason: fmt.Sprintf("header pin %d is %s, not a GPIO", n, hp.Label), Err: ErrNotGPIO}
	}
	return p.pin(hp.GPIO), nil
}

// resolveChipOffset maps chip/offset on the header chip to its GPIO so that
// claims see "gpiochip0/17" and "GPIO17" as one line. gpiochip0 is the
// header chip on Pi 0–4 only; on a Pi 5 it depends on the kernel, so only
// the label counts there.
func (p Profile) resolveChipOffset(name, chip, off string) (Pin, error) {
	n, err := strconv.Atoi(off)
	if chip == "" || err != nil || n < 0 {
		return Pin{}, &UnknownError{Kind: "pin", Name: name, Reason: "chip/offset wants a chip name or label and a number, like gpiochip0/17"}
	}
	header := chip == p.Chip || (chip == "gpiochip0" && p.Chip != "" && p.Chip != "pinctrl-rp1")
	if !header {
		return Pin{GPIO: -1, Line: name, HAL: name}, nil
	}
	return p.byGPIO(name, n)
}

// suggestPin offers a fix for an unrecognised name: "GPI17" → "GPIO17".
func (p Profile) suggestPin(u string) string {
	digits := strings.TrimLeftFunc(u, func(r rune) bool { return r < '0' || r > '9' })
	if n, err := strconv.Atoi(digits); err == nil {
		if strings.HasPrefix(u, "P") && !strings.HasPrefix(u, "PWM") {
			return "pin" + strconv.Itoa(n)
		}
		return "GPIO" + strconv.Itoa(n)
	}
	return ""
}

// PWMFor resolves name and returns the hardware PWM channel on it. On
// generic, name may only be a PWM name itself ("pwmchip0/0"); on a Pi a
// PWM name is accepted too, as an expert's escape hatch.
func (p Profile) PWMFor(name string) (PWMChannel, Pin, error) {
	if c, ok := parsePWM(name); ok {
		return c, Pin{GPIO: -1, Line: name, HAL: name}, nil
	}
	pin, err := p.Resolve(name)
	if err != nil {
		return PWMChannel{}, Pin{}, err
	}
	if c, ok := p.pwmByGPIO(pin.GPIO); ok {
		return c, pin, nil
	}
	var pins []string
	for _, c := range p.PWM {
		pins = append(pins, p.pin(c.GPIO).String())
	}
	reason := "no hardware PWM on " + pin.String()
	if len(pins) > 0 {
		reason += "; PWM pins on " + p.Title + ": " + strings.Join(pins, ", ")
	} else {
		reason += "; name the PWM channel itself (pwmchipN/CHANNEL, see ls /sys/class/pwm)"
	}
	return PWMChannel{}, pin, &PinError{Name: name, Reason: reason, Err: ErrNoPWM}
}

// parsePWM recognises "pwmchipN/C" and "DEVICE.pwm/C" style names.
func parsePWM(name string) (PWMChannel, bool) {
	dev, ch, ok := strings.Cut(name, "/")
	n, err := strconv.Atoi(ch)
	if !ok || err != nil || n < 0 || dev == "" {
		return PWMChannel{}, false
	}
	if rest, isChip := strings.CutPrefix(dev, "pwmchip"); isChip {
		if _, err := strconv.Atoi(rest); err == nil {
			return PWMChannel{GPIO: -1, Chip: dev, Channel: n}, true
		}
	}
	if strings.Contains(dev, "pwm") {
		return PWMChannel{GPIO: -1, Device: dev, Channel: n}, true
	}
	return PWMChannel{}, false
}

// CheckReserved fails with a *ReservedError if pin belongs to one of the
// enabled buses.
func (p Profile) CheckReserved(pin Pin, enabled []Bus) error {
	for _, b := range enabled {
		if slices.Contains(p.Reserved[b], pin.GPIO) {
			return &ReservedError{Pin: pin, Bus: b}
		}
	}
	return nil
}

// I2CBus finds a bus by "1", "I2C1", "i2c-1" or "/dev/i2c-1". Generic
// accepts any number.
func (p Profile) I2CBus(name string) (I2CBus, error) {
	n := strings.TrimPrefix(strings.TrimSpace(name), "/dev/")
	for _, pre := range []string{"i2c-", "I2C", "i2c"} {
		n = strings.TrimPrefix(n, pre)
	}
	num, err := strconv.Atoi(n)
	var known []string
	for _, b := range p.I2C {
		known = append(known, b.Name)
		if err == nil && b.Name == strconv.Itoa(num) {
			return b, nil
		}
	}
	if err == nil && num >= 0 && p.Generic() {
		return I2CBus{Name: n, Device: "/dev/i2c-" + n, SDA: -1, SCL: -1}, nil
	}
	return I2CBus{}, &UnknownError{Kind: "i2c bus", Name: name, Known: known,
		Reason: "the header bus is 1 (/dev/i2c-1, GPIO2/3)"}
}

// LineNames lists the HAL names of every GPIO the profile knows, e.g. to
// restrict hal/fake with fake.WithPins. Empty on generic.
func (p Profile) LineNames() []string {
	var out []string
	for _, h := range p.Header {
		if h.GPIO >= 0 {
			out = append(out, p.pin(h.GPIO).HAL)
		}
	}
	for _, g := range p.ExtraGPIOs {
		out = append(out, p.pin(g).HAL)
	}
	sort.Strings(out)
	return out
}

func gpioList(gpios []int) string {
	var s []string
	for _, g := range gpios {
		s = append(s, "GPIO"+strconv.Itoa(g))
	}
	return strings.Join(s, ", ")
}
