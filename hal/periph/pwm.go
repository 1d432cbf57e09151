package periph

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pinshadow/pinshadow/hal"
)

// sysfs is the little file API the PWM code needs. osFS is the real one;
// tests wrap it with a fake kernel that reacts to export and unexport.
type sysfs interface {
	ReadFile(path string) ([]byte, error)
	WriteFile(path string, data []byte) error
	// CanWrite reports whether path can be opened for writing (without writing).
	CanWrite(path string) error
	Readlink(path string) (string, error)
	ReadDir(path string) ([]fs.DirEntry, error)
}

type osFS struct{}

func (osFS) ReadFile(p string) ([]byte, error) { return os.ReadFile(p) }

// WriteFile writes data in one write(2), as sysfs attributes require.
func (osFS) WriteFile(p string, data []byte) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (osFS) CanWrite(p string) error {
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	return f.Close()
}

func (osFS) Readlink(p string) (string, error)       { return os.Readlink(p) }
func (osFS) ReadDir(p string) ([]fs.DirEntry, error) { return os.ReadDir(p) }

// PWMName is a parsed PWM channel name: "pwmchip0/1" (Chip set) or
// "1f00098000.pwm/2" (Device set: the basename of the chip's device link,
// stable across kernels while pwmchip numbers are not).
type PWMName struct {
	Chip    string
	Device  string
	Channel int
}

// ParsePWMName parses "pwmchipN/C" or "DEVICE/C".
func ParsePWMName(name string) (PWMName, error) {
	chip, ch, ok := strings.Cut(name, "/")
	n, err := strconv.Atoi(ch)
	if !ok || chip == "" || err != nil || n < 0 || strings.Contains(ch, "/") {
		return PWMName{}, fmt.Errorf("periph: pwm %q: want pwmchipN/CHANNEL (pwmchip0/1) or DEVICE/CHANNEL (1f00098000.pwm/2): %w", name, hal.ErrInvalid)
	}
	if rest, isChip := strings.CutPrefix(chip, "pwmchip"); isChip {
		if _, err := strconv.Atoi(rest); err == nil {
			return PWMName{Chip: chip, Channel: n}, nil
		}
	}
	return PWMName{Device: chip, Channel: n}, nil
}

type pwmChip struct {
	name   string // pwmchipN
	device string // basename of the device link
	npwm   int
}

// pwmChips lists /sys/class/pwm with each chip's device and channel count.
func (h *HAL) pwmChips() ([]pwmChip, error) {
	dir := filepath.Join(h.opts.SysfsRoot, "class", "pwm")
	ents, err := h.opts.fs.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var chips []pwmChip
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "pwmchip") {
			continue
		}
		c := pwmChip{name: e.Name()}
		if link, err := h.opts.fs.Readlink(filepath.Join(dir, e.Name(), "device")); err == nil {
			c.device = filepath.Base(link)
		}
		if b, err := h.opts.fs.ReadFile(filepath.Join(dir, e.Name(), "npwm")); err == nil {
			c.npwm, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		chips = append(chips, c)
	}
	sort.Slice(chips, func(i, j int) bool { return chips[i].name < chips[j].name })
	return chips, nil
}

const pwmHint = "enable hardware PWM with a device-tree overlay, e.g. dtoverlay=pwm-2chan (Pi 0–4: GPIO18/19) or dtoverlay=pwm-2chan,pin=12,func=4,pin2=13,func2=4 (Pi 5), then reboot"

// findPWM resolves a parsed name to a chip directory.
func (h *HAL) findPWM(name string, pn PWMName) (pwmChip, error) {
	chips, err := h.pwmChips()
	if errors.Is(err, fs.ErrNotExist) || (err == nil && len(chips) == 0) {
		return pwmChip{}, fmt.Errorf("periph: pwm %q: %w: no PWM chip in %s/class/pwm; %s", name, hal.ErrNotFound, h.opts.SysfsRoot, pwmHint)
	}
	if err != nil {
		return pwmChip{}, fmt.Errorf("periph: pwm %q: listing chips: %w", name, err)
	}
	var have []string
	for _, c := range chips {
		have = append(have, fmt.Sprintf("%s (%s, %d channels)", c.name, c.device, c.npwm))
		if c.name != pn.Chip && (pn.Device == "" || c.device != pn.Device) {
			continue
		}
		if pn.Channel >= c.npwm {
			return pwmChip{}, fmt.Errorf("periph: pwm %q: %w: %s has channels 0–%d", name, hal.ErrNotFound, c.name, c.npwm-1)
		}
		return c, nil
	}
	return pwmChip{}, fmt.Errorf("periph: pwm %q: %w: chips present: %s", name, hal.ErrNotFound, strings.Join(have, "; "))
}

// OpenPWM exports a channel of /sys/class/pwm (periph has no sysfs PWM
// driver). The channel starts as the kernel has it; Set enables it.
func (h *HAL) OpenPWM(ctx context.Context, name string) (hal.PWMOut, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	pn, err := ParsePWMName(name)
	if err != nil {
		return nil, err
	}
	chip, err := h.findPWM(name, pn)
	if err != nil {
		return nil, err
	}
	chipDir := filepath.Join(h.opts.SysfsRoot, "class", "pwm", chip.name)
	p := &pwmOut{
		name: name, fs: h.opts.fs, chipDir: chipDir, channel: pn.Channel,
		dir: filepath.Join(chipDir, "pwm"+strconv.Itoa(pn.Channel)),
	}
	key := "pwm:" + p.dir
	if err := h.claim(key, "pwm "+strconv.Quote(name), p.Close); err != nil {
		return nil, err
	}
	p.release = func() { h.release(key) }
	if err := p.export(ctx, h.opts.ExportTimeout); err != nil {
		h.release(key)
		return nil, err
	}
	return p, nil
}

type pwmOut struct {
	name    string
	fs      sysfs
	chipDir string
	dir     string
	channel int
	release func()

	mu        sync.Mutex
	exported  bool // by us: unexport on Close
	closed    bool
	enabled   bool
	periodNs  int64
	dutyNs    int64
	duty      float64
	freq      float64
	readState bool
}

// export asks the kernel for the channel and waits until udev has made its
// files writable. EBUSY means it is already exported (by a boot-time udev
// rule or a previous run): we use it and leave it exported on Close.
func (p *pwmOut) export(ctx context.Context, timeout time.Duration) error {
	err := p.fs.WriteFile(filepath.Join(p.chipDir, "export"), []byte(strconv.Itoa(p.channel)))
	switch {
	case err == nil:
		p.exported = true
	case errors.Is(err, syscall.EBUSY):
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("periph: pwm %q: export: %w: %w (add a udev rule giving group gpio access to /sys/class/pwm, or run as root)", p.name, hal.ErrBusy, err)
	default:
		return fmt.Errorf("periph: pwm %q: export: %w", p.name, err)
	}
	// Poll: the kernel creates pwmN at once, but udev changes its group and
	// mode asynchronously, so the first writes can fail with EACCES.
	deadline := time.Now().Add(timeout)
	wait := 5 * time.Millisecond
	for {
		var last error
		for _, f := range []string{"period", "duty_cycle", "enable"} {
			if err := p.fs.CanWrite(filepath.Join(p.dir, f)); err != nil {
				last = err
				break
			}
		}
		if last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			p.unexportIfOurs()
			return fmt.Errorf("periph: pwm %q: %s not writable %v after export: %w: %w (is the udev rule for /sys/class/pwm installed?)", p.name, p.dir, timeout, hal.ErrTimeout, last)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			p.unexportIfOurs()
			return fmt.Errorf("periph: pwm %q: waiting for export: %w", p.name, ctx.Err())
		case <-t.C:
		}
		wait = min(wait*2, 100*time.Millisecond)
	}
}

func (p *pwmOut) unexportIfOurs() error {
	if !p.exported {
		return nil
	}
	p.exported = false
	return p.fs.WriteFile(filepath.Join(p.chipDir, "unexport"), []byte(strconv.Itoa(p.channel)))
}

func (p *pwmOut) write(file string, v int64) error {
	err := p.fs.WriteFile(filepath.Join(p.dir, file), []byte(strconv.FormatInt(v, 10)))
	if errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("periph: pwm %q: write %s=%d: %w: %w", p.name, file, v, hal.ErrInvalid, err)
	}
	if err != nil {
		return fmt.Errorf("periph: pwm %q: write %s=%d: %w", p.name, file, v, err)
	}
	return nil
}

func (p *pwmOut) readInt(file string) int64 {
	b, err := p.fs.ReadFile(filepath.Join(p.dir, file))
	if err != nil {
		return 0
	}
	v, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return v
}

// PWMTiming converts duty (0–1) and frequency (Hz) to the period and duty
// cycle in nanoseconds that sysfs takes.
func PWMTiming(duty, freqHz float64) (periodNs, dutyNs int64, err error) {
	if math.IsNaN(duty) || duty < 0 || duty > 1 {
		return 0, 0, fmt.Errorf("duty %v outside 0–1: %w", duty, hal.ErrInvalid)
	}
	if math.IsNaN(freqHz) || math.IsInf(freqHz, 0) || freqHz <= 0 {
		return 0, 0, fmt.Errorf("frequency %v Hz must be > 0: %w", freqHz, hal.ErrInvalid)
	}
	period := math.Round(1e9 / freqHz)
	if period < 1 || period > math.MaxInt32 {
		// The sysfs attributes are unsigned ints on 32-bit kernels.
		return 0, 0, fmt.Errorf("frequency %v Hz gives a period of %v ns, outside 1 ns–%d ns: %w", freqHz, period, math.MaxInt32, hal.ErrInvalid)
	}
	return int64(period), int64(math.Round(duty * period)), nil
}

// Set writes period and duty cycle (in that order, unless the new period is
// shorter than the duty cycle the kernel has now, which it would reject)
// and enables the channel.
func (p *pwmOut) Set(ctx context.Context, duty, freqHz float64) error {
	periodNs, dutyNs, err := PWMTiming(duty, freqHz)
	if err != nil {
		return fmt.Errorf("periph: pwm %q: %w", p.name, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return fmt.Errorf("periph: pwm %q: %w", p.name, hal.ErrClosed)
	}
	if !p.readState {
		// The channel may have been left configured (EBUSY export).
		p.periodNs, p.dutyNs = p.readInt("period"), p.readInt("duty_cycle")
		p.enabled = p.readInt("enable") == 1
		p.readState = true
	}
	if periodNs < p.dutyNs {
		if err := p.write("duty_cycle", dutyNs); err != nil {
			return err
		}
		p.dutyNs = dutyNs
	}
	if periodNs != p.periodNs {
		if err := p.write("period", periodNs); err != nil {
			return err
		}
		p.periodNs = periodNs
	}
	if dutyNs != p.dutyNs {
		if err := p.write("duty_cycle", dutyNs); err != nil {
			return err
		}
		p.dutyNs = dutyNs
	}
	if !p.enabled {
		if err := p.write("enable", 1); err != nil {
			return err
		}
		p.enabled = true
	}
	p.duty, p.freq = duty, freqHz
	return nil
}

func (p *pwmOut) Duty() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.duty
}

func (p *pwmOut) Frequency() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.freq
}

func (p *pwmOut) Name() string { return p.name }

// Close disables the channel and unexports it if we exported it.
func (p *pwmOut) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	p.release()
	var errs []error
	if p.enabled {
		errs = append(errs, p.write("enable", 0))
	}
	errs = append(errs, p.unexportIfOurs())
	return errors.Join(errs...)
}
