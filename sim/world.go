package sim

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pinshadow/pinshadow/config"
	"github.com/pinshadow/pinshadow/devices/cputemp"
	"github.com/pinshadow/pinshadow/devices/ds18b20"
	"github.com/pinshadow/pinshadow/devices/gpio"
	"github.com/pinshadow/pinshadow/devices/pwm"
	"github.com/pinshadow/pinshadow/hal"
	"github.com/pinshadow/pinshadow/hal/fake"
	"github.com/pinshadow/pinshadow/hal/fake/chips"
)

// WorldOptions shape the simulated greenhouse. The zero value gives a cool
// room, a heater that warms it noticeably within seconds, and soil that
// dries slowly.
type WorldOptions struct {
	// Ambient is the outside temperature in °C (default 12); Initial the
	// starting temperature of the room (default 16).
	Ambient, Initial float64
	// HeaterRate is how fast the heater warms the room in °C/s (default
	// 0.25, quicker than a real greenhouse so a short run shows it).
	HeaterRate float64
	// SoilStart is the soil probe's starting voltage (default 1.6 V, moist)
	// and SoilDrying how fast it rises towards 2.8 V, dry (default
	// 0.01 V/s).
	SoilStart, SoilDrying float64
	// Step is the physics time step (default 200 ms).
	Step time.Duration
	// SysRoot, if set, is a directory where NewWorld lays out the sysfs
	// files the Linux-sysfs drivers read (give the agent the same
	// directory as its SysRoot): the CPU's thermal zone, and a 1-wire
	// thermometer that follows the room temperature.
	SysRoot string
	// OnChange is called for every output change the agent makes on the
	// simulated hardware (from the agent's goroutine; it must not block).
	OnChange func(Change)
}

// Change is an output change made through the World's HAL.
type Change struct {
	Time time.Time
	// Device is the configured device using the line or channel.
	Device string
	// Line is the line or PWM channel as the configuration wrote it
	// ("GPIO17"), HAL its HAL name.
	Line, HAL string
	// PWM is true for a PWM channel (Duty, Freq); otherwise Level is the
	// logical level set and Physical the wire level.
	PWM       bool
	Duty      float64
	Freq      float64
	Level     bool
	Physical  bool
	ActiveLow bool
	// Open is true when the change is the line's initial state at open.
	Open bool
}

// World is the simulated hardware of a configuration: a fake HAL with a
// chip model at every configured I2C address, thermal physics linking the
// heater and the fan to the temperature sensors, a soil probe that dries,
// and inputs the scenario can press. Create it with NewWorld, drive the
// physics with Run, hand HAL to the agent.
type World struct {
	opts    WorldOptions
	fake    *fake.HAL
	hal     hal.HAL
	thermal *fake.Thermal

	byHAL  map[string]config.Device // line/channel HAL name → device
	inputs map[string]inputLine     // device id → its line
	i2c    map[string]i2cDevice     // device id → where it sits
	soil   []*chips.ADS1115

	mu     sync.Mutex
	faults map[string]string // device id → active fault kind
	volts  float64
}

type inputLine struct {
	hal       string
	activeLow bool
}

type i2cDevice struct {
	bus  *fake.Bus
	addr uint16
}

// humidSink is a chip that also senses relative humidity.
type humidSink interface {
	SetTemperature(celsius float64)
	SetHumidity(rh float64)
}

// climateSink follows the room temperature and lets relative humidity fall
// as the air warms (the same water in warmer air), so both readings move.
type climateSink struct {
	chip    humidSink
	ambient func() float64
}

// simLogLimit bounds the fake HAL's op log: a simulation runs for hours,
// and nothing in it reads more than the latest ops.
const simLogLimit = 4096

func (c climateSink) SetTemperature(t float64) {
	c.chip.SetTemperature(t)
	rh := 60 - 2.5*(t-c.ambient())
	c.chip.SetHumidity(math.Max(20, math.Min(95, rh)))
}

// NewWorld builds the simulated hardware for cfg. Every I2C device of a
// driver with a chip model gets the model at its address; the heater is the
// first relay or LED whose id mentions "heat", the fan the first "fan"
// device; every temperature chip follows the thermal model; every ADS1115
// input reads the soil probe.
func NewWorld(cfg *config.Config, o WorldOptions) (*World, error) {
	if o.Ambient == 0 {
		o.Ambient = 12
	}
	if o.Initial == 0 {
		o.Initial = 16
	}
	if o.HeaterRate == 0 {
		o.HeaterRate = 0.25
	}
	if o.SoilStart == 0 {
		o.SoilStart = 1.6
	}
	if o.SoilDrying == 0 {
		o.SoilDrying = 0.01
	}
	if o.Step <= 0 {
		o.Step = 200 * time.Millisecond
	}
	w := &World{
		opts:   o,
		fake:   fake.New(fake.WithLogLimit(simLogLimit)),
		byHAL:  map[string]config.Device{},
		inputs: map[string]inputLine{},
		i2c:    map[string]i2cDevice{},
		faults: map[string]string{},
		volts:  o.SoilStart,
	}
	initial := o.Initial
	tc := fake.ThermalConfig{Ambient: o.Ambient, Initial: &initial, HeaterRate: o.HeaterRate}
	var sinks []fake.TemperatureSink
	for _, d := range cfg.Devices {
		switch opt := d.Options.(type) {
		case *gpio.OutputOptions:
			w.byHAL[opt.Pin] = d
			if tc.HeaterPin == "" && strings.Contains(strings.ToLower(d.ID), "heat") {
				// The relay module switches on a low input when the
				// configuration says active_low: that is its wiring.
				tc.HeaterPin, tc.HeaterActiveLow = opt.Pin, opt.ActiveLow
			}
		case *gpio.InputOptions:
			w.byHAL[opt.Pin] = d
			w.inputs[d.ID] = inputLine{hal: opt.Pin, activeLow: opt.ActiveLow}
			// At rest the input sits at its inactive level (a pulled-up
			// button to ground reads high).
			if err := w.fake.SetInput(opt.Pin, opt.ActiveLow); err != nil {
				return nil, fmt.Errorf("sim: idle level of %s on %s: %w", d.ID, opt.Pin, err)
			}
		case *pwm.DutyOptions:
			w.byHAL[opt.Channel] = d
			if tc.FanPWM == "" && d.Driver == "fan" {
				tc.FanPWM = opt.Channel
			}
		}
		if o.SysRoot != "" {
			sink, err := w.sysfs(d)
			if err != nil {
				return nil, err
			}
			if sink != nil {
				sinks = append(sinks, sink)
			}
		}
		if d.Wiring.Bus == "" {
			continue
		}
		bus := w.fake.Bus(d.Wiring.Bus)
		if bus == nil {
			return nil, fmt.Errorf("sim: device %s: no simulated I2C bus %q", d.ID, d.Wiring.Bus)
		}
		w.i2c[d.ID] = i2cDevice{bus: bus, addr: d.Wiring.Address}
		chip, sink := w.model(d)
		if chip == nil {
			continue // no model: the agent will report the device as failing
		}
		bus.Attach(d.Wiring.Address, chip)
		if sink != nil {
			sinks = append(sinks, sink)
		}
	}
	w.thermal = fake.NewThermal(w.fake, tc, sinks...)
	w.hal = &observedHAL{HAL: w.fake, w: w}
	w.setSoil(o.SoilStart)
	return w, nil
}

// model returns the chip model for d and, if it senses temperature, the
// sink the thermal model pushes into.
func (w *World) model(d config.Device) (fake.Device, fake.TemperatureSink) {
	ambient := w.Ambient
	switch d.Driver {
	case "bme280":
		c := chips.NewBME280(chips.DatasheetCalibration())
		c.SetPressure(101325)
		return c, climateSink{chip: c, ambient: ambient}
	case "bmp280":
		c := chips.NewBMP280(chips.DatasheetCalibration())
		c.SetPressure(101325)
		return c, c
	case "sht3x":
		c := chips.NewSHT3x()
		return c, climateSink{chip: c, ambient: ambient}
	case "aht20":
		c := chips.NewAHT20()
		return c, climateSink{chip: c, ambient: ambient}
	case "bh1750":
		c := chips.NewBH1750()
		c.SetLux(350)
		return c, nil
	case "ads1115":
		c := chips.NewADS1115()
		w.soil = append(w.soil, c) // every input reads the probe (setSoil)
		return c, nil
	case "ina219":
		return chips.NewINA219(0.1), nil
	case "mcp23017":
		return chips.NewMCP23017(), nil
	case "pca9685":
		return chips.NewPCA9685(), nil
	}
	return nil, nil
}

// sysfs lays out the files d's driver reads under WorldOptions.SysRoot.
func (w *World) sysfs(d config.Device) (fake.TemperatureSink, error) {
	var file, value string
	var sink fake.TemperatureSink
	switch o := d.Options.(type) {
	case *cputemp.Options:
		file = filepath.Join(w.opts.SysRoot, "sys/class/thermal", "thermal_zone"+strconv.Itoa(o.Zone), "temp")
		value = "48312\n" // a Pi at rest, in millidegrees
	case *ds18b20.Options:
		id := o.ID
		if id == "" {
			id = "28-000000000001"
		}
		file = filepath.Join(w.opts.SysRoot, "sys/bus/w1/devices", id, "temperature")
		sink = fileSink(file)
		value = "16000\n"
	default:
		return nil, nil
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return nil, fmt.Errorf("sim: simulated sysfs for %s: %w", d.ID, err)
	}
	if err := os.WriteFile(file, []byte(value), 0o644); err != nil {
		return nil, fmt.Errorf("sim: simulated sysfs for %s: %w", d.ID, err)
	}
	return sink, nil
}

// fileSink writes the temperature to a sysfs-style file in millidegrees.
type fileSink string

func (f fileSink) SetTemperature(c float64) {
	// Written whole and renamed, so a reader never sees half a number.
	tmp := string(f) + ".tmp"
	if os.WriteFile(tmp, []byte(strconv.Itoa(int(math.Round(c*1000)))+"\n"), 0o644) == nil {
		_ = os.Rename(tmp, string(f))
	}
}

// HAL returns the simulated hardware for the agent. Output changes made
// through it are passed to WorldOptions.OnChange.
func (w *World) HAL() hal.HAL { return w.hal }

// Fake returns the underlying fake HAL (its operation log, levels, PWM).
func (w *World) Fake() *fake.HAL { return w.fake }

// Temperature returns the simulated room temperature in °C.
func (w *World) Temperature() float64 { return w.thermal.Temperature() }

// Ambient returns the outside temperature in °C.
func (w *World) Ambient() float64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.opts.Ambient
}

// SetAmbient changes the outside temperature.
func (w *World) SetAmbient(c float64) {
	w.mu.Lock()
	w.opts.Ambient = c
	w.mu.Unlock()
	w.thermal.SetAmbient(c)
}

// SoilVolts returns the soil probe's voltage.
func (w *World) SoilVolts() float64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.volts
}

func (w *World) setSoil(v float64) {
	w.mu.Lock()
	w.volts = v
	w.mu.Unlock()
	for _, c := range w.soil {
		for ch := 0; ch < 4; ch++ {
			c.SetVoltage(ch, v)
		}
	}
}

// Run steps the physics every WorldOptions.Step until ctx is done: the
// thermal model (heater, fan, temperature and humidity chips) and the soil
// drying towards 2.8 V. It returns ctx's error.
func (w *World) Run(ctx context.Context) error {
	t := time.NewTicker(w.opts.Step)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case now := <-t.C:
			w.step(now.Sub(last))
			last = now
		}
	}
}

// step advances the physics by dt.
func (w *World) step(dt time.Duration) {
	w.thermal.Step(dt)
	if v := w.SoilVolts(); v < 2.8 {
		w.setSoil(math.Min(2.8, v+w.opts.SoilDrying*dt.Seconds()))
	}
}

// SetPressed presses (true) or releases an input device.
func (w *World) SetPressed(device string, pressed bool) error {
	in, ok := w.inputs[device]
	if !ok {
		return fmt.Errorf("sim: %q is not an input device of the configuration", device)
	}
	// Pressed is the active level: low on an active-low input.
	if err := w.fake.SetInput(in.hal, pressed != in.activeLow); err != nil {
		return fmt.Errorf("sim: pressing %s: %w", device, err)
	}
	return nil
}

// SetFault starts (kind "i2c_nack" or "i2c_timeout") or, with kind "",
// ends the fault of an I2C device.
func (w *World) SetFault(device, kind string) error {
	d, ok := w.i2c[device]
	if !ok {
		return fmt.Errorf("sim: %q is not an I2C device of the configuration", device)
	}
	switch kind {
	case "", FaultI2CNACK, FaultI2CTimeout:
	default:
		return fmt.Errorf("sim: unknown fault %q; want %s or %s", kind, FaultI2CNACK, FaultI2CTimeout)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if kind == "" {
		delete(w.faults, device)
	} else {
		w.faults[device] = kind
	}
	// A bus keeps a list of rules and clears them all at once: rebuild the
	// bus's rules from the faults still active.
	d.bus.ClearFaults()
	for id, k := range w.faults {
		o := w.i2c[id]
		if o.bus != d.bus {
			continue
		}
		fk := fake.FaultNACK
		if k == FaultI2CTimeout {
			fk = fake.FaultTimeout
		}
		d.bus.InjectFault(fake.I2CFault{Kind: fk, Addrs: []uint16{o.addr}, Rate: 1})
	}
	return nil
}

// Close closes the simulated hardware.
func (w *World) Close() error { return w.fake.Close() }

// observedHAL passes output changes to the World's OnChange.
type observedHAL struct {
	hal.HAL
	w *World
}

func (o *observedHAL) OpenOutput(ctx context.Context, name string, cfg hal.OutputConfig) (hal.DigitalOut, error) {
	out, err := o.HAL.OpenOutput(ctx, name, cfg)
	if err != nil {
		return nil, err
	}
	l := &observedOut{DigitalOut: out, w: o.w, activeLow: cfg.ActiveLow}
	l.emit(cfg.Initial, true)
	return l, nil
}

func (o *observedHAL) OpenPWM(ctx context.Context, name string) (hal.PWMOut, error) {
	p, err := o.HAL.OpenPWM(ctx, name)
	if err != nil {
		return nil, err
	}
	return &observedPWM{PWMOut: p, w: o.w}, nil
}

type observedOut struct {
	hal.DigitalOut
	w         *World
	activeLow bool
}

func (l *observedOut) Set(ctx context.Context, v hal.Level) error {
	if err := l.DigitalOut.Set(ctx, v); err != nil {
		return err
	}
	l.emit(v, false)
	return nil
}

func (l *observedOut) emit(v hal.Level, open bool) {
	if l.w.opts.OnChange == nil {
		return
	}
	name := l.Name()
	phys, _ := l.w.fake.Physical(name)
	d := l.w.byHAL[name]
	l.w.opts.OnChange(Change{Time: time.Now(), Device: d.ID, Line: written(d, name), HAL: name,
		Level: bool(v), Physical: phys, ActiveLow: l.activeLow, Open: open})
}

type observedPWM struct {
	hal.PWMOut
	w *World
}

func (p *observedPWM) Set(ctx context.Context, duty, freq float64) error {
	if err := p.PWMOut.Set(ctx, duty, freq); err != nil {
		return err
	}
	if p.w.opts.OnChange != nil {
		name := p.Name()
		d := p.w.byHAL[name]
		p.w.opts.OnChange(Change{Time: time.Now(), Device: d.ID, Line: written(d, name), HAL: name,
			PWM: true, Duty: duty, Freq: freq})
	}
	return nil
}

// written is the line as the configuration wrote it, else its HAL name.
func written(d config.Device, hal string) string {
	if d.Wiring.Written != "" {
		return d.Wiring.Written
	}
	return hal
}

// percent renders a duty cycle 0–1 as a percentage.
func percent(duty float64) string {
	return strconv.FormatFloat(math.Round(duty*1000)/10, 'f', -1, 64) + " %"
}
