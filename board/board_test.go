package board

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func mustProfile(t *testing.T, name string) Profile {
	t.Helper()
	p, err := ByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func writeModel(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "model")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDetectFromDeviceTreeModel(t *testing.T) {
	for _, tc := range []struct {
		model, want string
	}{
		{"Raspberry Pi 4 Model B Rev 1.4\x00", "pi4b"},
		{"Raspberry Pi 5 Model B Rev 1.0\x00", "pi5"},
		{"Raspberry Pi Zero W Rev 1.1\x00", "zero"},
		{"Raspberry Pi Zero Rev 1.3\x00", "zero"},
		{"Raspberry Pi Zero 2 W Rev 1.0\x00", "zero2w"},
		{"Raspberry Pi Compute Module 4 Rev 1.0\x00", "cm4"},
		{"Raspberry Pi 400 Rev 1.0\x00", "pi400"},
		{"Raspberry Pi 3 Model B Plus Rev 1.3\x00", "pi3b"},
		{"Raspberry Pi 3 Model B Rev 1.2\x00", "pi3b"},
		{"Raspberry Pi 4 Model B Rev 1.5", "pi4b"}, // no NUL
		{"Raspberry Pi 4 Model B Rev 1.4\x00garbage", "pi4b"},
	} {
		d := Detect(writeModel(t, tc.model))
		if d.Profile.Name != tc.want || d.Source != "device-tree" || d.Note != "" {
			t.Errorf("%q → %s (%s, note %q), want %s", tc.model, d.Profile.Name, d.Source, d.Note, tc.want)
		}
		if strings.ContainsRune(d.Model, 0) {
			t.Errorf("%q: model keeps the NUL", tc.model)
		}
	}
}

func TestDetectFallsBackToGenericWithANote(t *testing.T) {
	for _, tc := range []struct {
		model   string
		mention []string
	}{
		{"Raspberry Pi Compute Module 4S Rev 1.0\x00", []string{"unknown board", "generic", "pi4b"}},
		{"Raspberry Pi Compute Module 5 Rev 1.0\x00", []string{"unknown board", "pi5"}},
		{"Raspberry Pi 3 Model A Plus Rev 1.0\x00", []string{"pi3b"}},
		{"Radxa ROCK 5B\x00", []string{"unknown board", "Radxa ROCK 5B", "chip/offset"}},
	} {
		d := Detect(writeModel(t, tc.model))
		if d.Profile.Name != "generic" || d.Source != "fallback" {
			t.Errorf("%q → %s (%s), want generic fallback", tc.model, d.Profile.Name, d.Source)
		}
		for _, m := range tc.mention {
			if !strings.Contains(d.Note, m) {
				t.Errorf("%q: note %q does not mention %q", tc.model, d.Note, m)
			}
		}
	}
	d := Detect(filepath.Join(t.TempDir(), "missing"))
	if d.Profile.Name != "generic" || !strings.Contains(d.Note, "not a device-tree board") {
		t.Errorf("missing model file: %+v", d)
	}
}

func TestSelectOverride(t *testing.T) {
	pi4 := writeModel(t, "Raspberry Pi 4 Model B Rev 1.4\x00")
	for _, tc := range []struct {
		override, want, source string
		noteHas                string
	}{
		{"", "pi4b", "device-tree", ""},
		{"auto", "pi4b", "device-tree", ""},
		{"pi4b", "pi4b", "override", ""},
		{"Pi 5", "pi5", "override", "although the device tree says"},
		{"raspberry-pi-3b+", "pi3b", "override", "although"},
		{"GENERIC", "generic", "override", "although"},
	} {
		d, err := Select(tc.override, pi4)
		if err != nil {
			t.Errorf("Select(%q): %v", tc.override, err)
			continue
		}
		if d.Profile.Name != tc.want || d.Source != tc.source || !strings.Contains(d.Note, tc.noteHas) {
			t.Errorf("Select(%q) = %s/%s note %q", tc.override, d.Profile.Name, d.Source, d.Note)
		}
	}
	_, err := Select("pi4", pi4)
	if err != nil {
		t.Errorf("alias pi4: %v", err)
	}
	_, err = Select("pi6", pi4)
	var ue *UnknownError
	if !errors.As(err, &ue) || !errors.Is(err, ErrUnknown) || ue.Suggest == "" || !strings.Contains(err.Error(), "did you mean") {
		t.Errorf("unknown override: %v; want *UnknownError with a suggestion", err)
	}
	if _, err := Select("banana", pi4); !errors.Is(err, ErrUnknown) || !strings.Contains(err.Error(), "pi4b") {
		t.Errorf("unknown override should list the boards: %v", err)
	}
}

func TestProfilesAreWellFormed(t *testing.T) {
	seen := map[string]bool{}
	for _, p := range Profiles() {
		for _, n := range p.names() {
			k := normalizeBoard(n)
			if seen[k] {
				t.Errorf("name %q is used twice", n)
			}
			seen[k] = true
		}
		if p.Generic() {
			continue
		}
		if len(p.Header) != 40 || p.Chip == "" {
			t.Errorf("%s: %d header pins, chip %q", p.Name, len(p.Header), p.Chip)
		}
		gpios := map[int]bool{}
		for i, h := range p.Header {
			if h.Physical != i+1 {
				t.Errorf("%s: header entry %d is pin %d", p.Name, i, h.Physical)
			}
			if h.GPIO >= 0 {
				if gpios[h.GPIO] {
					t.Errorf("%s: GPIO%d on two pins", p.Name, h.GPIO)
				}
				gpios[h.GPIO] = true
			}
		}
		if len(gpios) != 28 {
			t.Errorf("%s: %d GPIOs on the header, want 28 (GPIO0–27)", p.Name, len(gpios))
		}
		for bus, pins := range p.Reserved {
			for _, g := range pins {
				if !gpios[g] {
					t.Errorf("%s: %s reserves GPIO%d, not on the header", p.Name, bus, g)
				}
			}
		}
		if len(p.PWM) != 4 || len(p.I2C) != 1 || p.I2C[0].SDA != 2 || p.I2C[0].SCL != 3 {
			t.Errorf("%s: PWM %v I2C %v", p.Name, p.PWM, p.I2C)
		}
	}
	// Fresh copies: editing one does not change the next.
	a := mustProfile(t, "pi4b")
	a.Header[10].GPIO = 99
	a.Reserved[BusI2C][0] = 99
	if b := mustProfile(t, "pi4b"); b.Header[10].GPIO != 17 || b.Reserved[BusI2C][0] != 2 {
		t.Error("profiles share state")
	}
}

func TestResolvePinNames(t *testing.T) {
	pi4 := mustProfile(t, "pi4b")
	pi5 := mustProfile(t, "pi5")
	generic := mustProfile(t, "generic")
	cm4 := mustProfile(t, "cm4")
	for _, tc := range []struct {
		p        Profile
		in       string
		gpio     int
		physical int
		hal      string
		err      error
	}{
		{pi4, "GPIO17", 17, 11, "pinctrl-bcm2711/17", nil},
		{pi4, "gpio17", 17, 11, "pinctrl-bcm2711/17", nil},
		{pi4, "BCM17", 17, 11, "pinctrl-bcm2711/17", nil},
		{pi4, "GPIO 17", 17, 11, "pinctrl-bcm2711/17", nil},
		{pi4, "pin11", 17, 11, "pinctrl-bcm2711/17", nil},
		{pi4, "PIN11", 17, 11, "pinctrl-bcm2711/17", nil},
		{pi4, "P1_11", 17, 11, "pinctrl-bcm2711/17", nil},
		{pi4, "P1-12", 18, 12, "pinctrl-bcm2711/18", nil},
		{pi4, "pin3", 2, 3, "pinctrl-bcm2711/2", nil},
		{pi4, "gpiochip0/17", 17, 11, "pinctrl-bcm2711/17", nil},
		{pi4, "pinctrl-bcm2711/27", 27, 13, "pinctrl-bcm2711/27", nil},
		{pi4, "gpiochip1/3", -1, 0, "gpiochip1/3", nil}, // another chip: passed through
		{pi5, "GPIO17", 17, 11, "pinctrl-rp1/17", nil},
		{pi5, "pinctrl-rp1/4", 4, 7, "pinctrl-rp1/4", nil},
		{pi5, "gpiochip0/4", -1, 0, "gpiochip0/4", nil}, // kernel-dependent on a Pi 5: not mapped
		{cm4, "GPIO40", 40, 0, "pinctrl-bcm2711/40", nil},
		{generic, "gpiochip1/5", -1, 0, "gpiochip1/5", nil},
		{generic, "PA7", -1, 0, "PA7", nil},
		{pi4, "17", 0, 0, "", ErrAmbiguous},
		{generic, "17", 0, 0, "", ErrAmbiguous},
		{pi4, "pin2", 0, 0, "", ErrNotGPIO},
		{pi4, "pin41", 0, 0, "", ErrUnknown},
		{pi4, "GPIO28", 0, 0, "", ErrUnknown},
		{pi4, "GPI17", 0, 0, "", ErrUnknown},
		{pi4, "", 0, 0, "", ErrUnknown},
		{pi4, "gpiochip0/x", 0, 0, "", ErrUnknown},
		{generic, "pin11", 0, 0, "", ErrUnknown},
		{generic, "GPIO17", 0, 0, "", ErrUnknown},
	} {
		got, err := tc.p.Resolve(tc.in)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("%s Resolve(%q) = %+v, %v; want %v", tc.p.Name, tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got.GPIO != tc.gpio || got.Physical != tc.physical || got.HAL != tc.hal {
			t.Errorf("%s Resolve(%q) = %+v, %v; want GPIO%d pin %d %q", tc.p.Name, tc.in, got, err, tc.gpio, tc.physical, tc.hal)
		}
	}
}

func TestResolveMessagesHelp(t *testing.T) {
	pi4 := mustProfile(t, "pi4b")
	for _, tc := range []struct{ in, want string }{
		{"17", "GPIO17 for the GPIO number or pin17 for the header pin"},
		{"11", "(pin11 is GPIO17)"},
		{"GPI17", `did you mean "GPIO17"`},
		{"Pn11", `did you mean "pin11"`},
		{"pin6", "header pin 6 is GND"},
		{"GPIO30", "no GPIO30 on its header"},
	} {
		_, err := pi4.Resolve(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Resolve(%q) error %v; want it to say %q", tc.in, err, tc.want)
		}
	}
}

func TestPWMFor(t *testing.T) {
	pi4 := mustProfile(t, "pi4b")
	pi5 := mustProfile(t, "pi5")
	zero := mustProfile(t, "zero")
	generic := mustProfile(t, "generic")
	for _, tc := range []struct {
		p       Profile
		in      string
		halName string
		err     error
	}{
		{pi4, "GPIO12", "pwmchip0/0", nil},
		{pi4, "GPIO18", "pwmchip0/0", nil},
		{pi4, "pin33", "pwmchip0/1", nil},
		{pi4, "GPIO19", "pwmchip0/1", nil},
		{zero, "GPIO18", "pwmchip0/0", nil},
		{pi5, "GPIO12", "1f00098000.pwm/0", nil},
		{pi5, "GPIO13", "1f00098000.pwm/1", nil},
		{pi5, "GPIO18", "1f00098000.pwm/2", nil},
		{pi5, "pin35", "1f00098000.pwm/3", nil},
		{pi4, "pwmchip0/1", "pwmchip0/1", nil},
		{generic, "pwmchip3/0", "pwmchip3/0", nil},
		{generic, "ff807000.pwm/1", "ff807000.pwm/1", nil},
		{pi4, "GPIO17", "", ErrNoPWM},
		{pi5, "pin11", "", ErrNoPWM},
		{generic, "gpiochip0/18", "", ErrNoPWM},
		{pi4, "pin1", "", ErrNotGPIO},
	} {
		ch, _, err := tc.p.PWMFor(tc.in)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("%s PWMFor(%q) = %+v, %v; want %v", tc.p.Name, tc.in, ch, err, tc.err)
			}
			continue
		}
		if err != nil || ch.HALName() != tc.halName {
			t.Errorf("%s PWMFor(%q) = %q, %v; want %q", tc.p.Name, tc.in, ch.HALName(), err, tc.halName)
		}
	}
	_, _, err := pi4.PWMFor("GPIO17")
	if err == nil || !strings.Contains(err.Error(), "GPIO12 (pin 32)") {
		t.Errorf("no-PWM error should list the PWM pins: %v", err)
	}
	for _, c := range pi5.PWM {
		if c.Chip != "" {
			t.Errorf("pi5 PWM GPIO%d hard-codes %s; the number changed between kernels", c.GPIO, c.Chip)
		}
	}
}

func TestReservedPins(t *testing.T) {
	pi4 := mustProfile(t, "pi4b")
	all := []Bus{BusI2C, BusUART, BusSPI0}
	for _, tc := range []struct {
		pin     string
		enabled []Bus
		bus     Bus
	}{
		{"GPIO2", all, BusI2C}, {"pin5", all, BusI2C},
		{"GPIO14", all, BusUART}, {"pin10", all, BusUART},
		{"GPIO7", all, BusSPI0}, {"GPIO8", all, BusSPI0}, {"GPIO9", all, BusSPI0}, {"GPIO10", all, BusSPI0}, {"GPIO11", all, BusSPI0},
		{"GPIO2", []Bus{BusUART}, ""},
		{"GPIO17", all, ""},
		{"GPIO12", all, ""},
	} {
		pin, err := pi4.Resolve(tc.pin)
		if err != nil {
			t.Fatal(err)
		}
		err = pi4.CheckReserved(pin, tc.enabled)
		var re *ReservedError
		switch {
		case tc.bus == "" && err != nil:
			t.Errorf("%s with %v: %v, want free", tc.pin, tc.enabled, err)
		case tc.bus != "" && (!errors.As(err, &re) || re.Bus != tc.bus || !errors.Is(err, ErrReserved)):
			t.Errorf("%s with %v: %v, want reserved by %s", tc.pin, tc.enabled, err, tc.bus)
		}
	}
	pin, _ := pi4.Resolve("GPIO3")
	err := pi4.CheckReserved(pin, all)
	if err == nil || !strings.Contains(err.Error(), "GPIO3 (pin 5) is reserved while i2c is enabled (pins GPIO2, GPIO3)") {
		t.Errorf("message: %v", err)
	}
}

func TestClaimsReportBothUsers(t *testing.T) {
	pi4 := mustProfile(t, "pi4b")
	var c Claims
	if _, err := pi4.ClaimPin(&c, "GPIO17", "relay", nil); err != nil {
		t.Fatal(err)
	}
	for _, other := range []string{"pin11", "gpiochip0/17", "pinctrl-bcm2711/17", "bcm17"} {
		_, err := pi4.ClaimPin(&c, other, "led", nil)
		var ce *ConflictError
		if !errors.As(err, &ce) || ce.First != "relay" || ce.Second != "led" || !errors.Is(err, ErrConflict) {
			t.Errorf("%s after GPIO17: %v; want a conflict naming relay and led", other, err)
		}
	}
	_, err := pi4.ClaimPin(&c, "GPIO17", "relay", nil)
	if err == nil || !strings.Contains(err.Error(), "used twice by relay") {
		t.Errorf("same user twice: %v", err)
	}
	// PWM: GPIO12 and GPIO18 are one channel on a Pi 4.
	if _, _, err := pi4.ClaimPWM(&c, "GPIO12", "fan", nil); err != nil {
		t.Fatal(err)
	}
	_, _, err = pi4.ClaimPWM(&c, "GPIO18", "dimmer", nil)
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "PWM channel pwmchip0/0 is used by both fan and dimmer") {
		t.Errorf("shared channel: %v", err)
	}
	if _, ok := c.User("GPIO18 (pin 12)"); ok {
		t.Error("a failed PWM claim kept its pin")
	}
	if _, err := pi4.ClaimPin(&c, "GPIO18", "button", nil); err != nil {
		t.Errorf("GPIO18 as plain GPIO after the failed PWM claim: %v", err)
	}
	// On a Pi 5 the four channels are independent.
	pi5 := mustProfile(t, "pi5")
	var c5 Claims
	for _, pin := range []string{"GPIO12", "GPIO13", "GPIO18", "GPIO19"} {
		if _, _, err := pi5.ClaimPWM(&c5, pin, "user-"+pin, nil); err != nil {
			t.Errorf("pi5 %s: %v", pin, err)
		}
	}
	// Reserved pins are refused before claiming.
	if _, err := pi4.ClaimPin(&c, "GPIO2", "sensor", []Bus{BusI2C}); !errors.Is(err, ErrReserved) {
		t.Errorf("GPIO2 with i2c: %v", err)
	}
	c.Release("GPIO17 (pin 11)", "relay")
	if _, err := pi4.ClaimPin(&c, "pin11", "led", nil); err != nil {
		t.Errorf("after release: %v", err)
	}
}

func TestI2CBus(t *testing.T) {
	pi4 := mustProfile(t, "pi4b")
	for _, in := range []string{"1", "I2C1", "i2c-1", "/dev/i2c-1"} {
		if b, err := pi4.I2CBus(in); err != nil || b.Device != "/dev/i2c-1" {
			t.Errorf("I2CBus(%q) = %+v, %v", in, b, err)
		}
	}
	if _, err := pi4.I2CBus("20"); !errors.Is(err, ErrUnknown) || !strings.Contains(err.Error(), "header bus is 1") {
		t.Errorf("i2c-20 on a Pi 4: %v", err)
	}
	g := mustProfile(t, "generic")
	if b, err := g.I2CBus("/dev/i2c-3"); err != nil || b.Name != "3" {
		t.Errorf("generic: %+v, %v", b, err)
	}
}

func TestLineNamesAndEnabledBuses(t *testing.T) {
	names := mustProfile(t, "pi5").LineNames()
	if len(names) != 28 || names[0] != "pinctrl-rp1/0" {
		t.Errorf("pi5 LineNames = %v", names)
	}
	if n := len(mustProfile(t, "cm4").LineNames()); n != 46 {
		t.Errorf("cm4 has %d lines, want 46", n)
	}
	if n := mustProfile(t, "generic").LineNames(); n != nil {
		t.Errorf("generic LineNames = %v", n)
	}
	dev := t.TempDir()
	for _, f := range []string{"i2c-1", "spidev0.0"} {
		if err := os.WriteFile(filepath.Join(dev, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got := EnabledBuses(dev)
	if len(got) != 2 || got[0] != BusI2C || got[1] != BusSPI0 {
		t.Errorf("EnabledBuses = %v", got)
	}
}
