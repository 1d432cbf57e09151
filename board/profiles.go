package board

import (
	"fmt"
	"github.com/pinshadow/pinshadow/internal/suggest"
	"slices"
)

// Bus is an on-board peripheral whose pins are reserved while it is enabled.
type Bus string

// Buses whose pins collide with header GPIOs.
const (
	BusI2C  Bus = "i2c"  // i2c-1 (dtparam=i2c_arm=on): GPIO2/3
	BusUART Bus = "uart" // serial console / uart0 (enable_uart=1): GPIO14/15
	BusSPI0 Bus = "spi0" // spidev0.x (dtparam=spi=on): GPIO7–11
)

// HeaderPin is one pin of the 40-pin header.
type HeaderPin struct {
	Physical int // 1–40
	GPIO     int // Broadcom/RP1 GPIO number, -1 for power and ground
	Label    string
}

// I2CBus is an I2C bus the board exposes.
type I2CBus struct {
	Name     string // the HAL name: "1"
	Device   string // "/dev/i2c-1"
	SDA, SCL int    // GPIO numbers
	Enable   string // how to turn it on
}

// PWMChannel is a hardware PWM output reachable from a GPIO.
type PWMChannel struct {
	GPIO    int
	Chip    string // "pwmchip0" where the number is stable; "" when it must be discovered
	Device  string // basename of /sys/class/pwm/pwmchipN/device
	Channel int
	// Overlay is the config.txt line that routes this channel to the GPIO.
	Overlay string
}

// HALName is the name hal/periph's OpenPWM takes: the device form when the
// chip number is not stable, else pwmchipN/CHANNEL.
func (c PWMChannel) HALName() string {
	if c.Chip == "" {
		return fmt.Sprintf("%s/%d", c.Device, c.Channel)
	}
	return fmt.Sprintf("%s/%d", c.Chip, c.Channel)
}

// Profile describes one board. Profiles are values: each call of Profiles
// or ByName builds fresh ones, so callers may not corrupt each other's.
type Profile struct {
	Name    string   // key used in configuration: "pi4b"
	Title   string   // "Raspberry Pi 4 Model B"
	Aliases []string // other accepted names
	// Chip is the label of the GPIO chip whose line offsets are the GPIO
	// numbers ("pinctrl-bcm2711"). hal/periph finds chips by label, which
	// survives both chip renumbering (Pi 5: gpiochip4 → gpiochip0) and
	// kernels that name lines differently (mainline calls GPIO2 "SDA1").
	// Empty on generic.
	Chip string
	// Header is the 40-pin header; nil on generic.
	Header []HeaderPin
	// ExtraGPIOs are GPIOs usable without a header pin (CM4 module lines).
	ExtraGPIOs []int
	I2C        []I2CBus
	PWM        []PWMChannel
	Reserved   map[Bus][]int
	Notes      []string
}

// Generic reports whether p is the generic profile (no header map).
func (p Profile) Generic() bool { return p.Header == nil }

// names returns the profile's name and aliases.
func (p Profile) names() []string { return append([]string{p.Name}, p.Aliases...) }

// header40 is the Raspberry Pi 40-pin header, identical on every model
// since the B+ (Zero, 3, 4, 400, 5, and the CM4 IO board).
func header40() []HeaderPin {
	pwr := func(n int, l string) HeaderPin { return HeaderPin{Physical: n, GPIO: -1, Label: l} }
	g := func(n, gpio int, l string) HeaderPin { return HeaderPin{Physical: n, GPIO: gpio, Label: l} }
	return []HeaderPin{
		pwr(1, "3V3"), pwr(2, "5V"),
		g(3, 2, "SDA1"), pwr(4, "5V"),
		g(5, 3, "SCL1"), pwr(6, "GND"),
		g(7, 4, "GPCLK0"), g(8, 14, "TXD"),
		pwr(9, "GND"), g(10, 15, "RXD"),
		g(11, 17, ""), g(12, 18, "PWM0"),
		g(13, 27, ""), pwr(14, "GND"),
		g(15, 22, ""), g(16, 23, ""),
		pwr(17, "3V3"), g(18, 24, ""),
		g(19, 10, "SPI0 MOSI"), pwr(20, "GND"),
		g(21, 9, "SPI0 MISO"), g(22, 25, ""),
		g(23, 11, "SPI0 SCLK"), g(24, 8, "SPI0 CE0"),
		pwr(25, "GND"), g(26, 7, "SPI0 CE1"),
		g(27, 0, "ID_SD (HAT EEPROM)"), g(28, 1, "ID_SC (HAT EEPROM)"),
		g(29, 5, ""), pwr(30, "GND"),
		g(31, 6, ""), g(32, 12, "PWM0"),
		g(33, 13, "PWM1"), pwr(34, "GND"),
		g(35, 19, "PWM1"), g(36, 16, ""),
		g(37, 26, ""), g(38, 20, ""),
		pwr(39, "GND"), g(40, 21, ""),
	}
}

func reserved() map[Bus][]int {
	return map[Bus][]int{
		BusI2C:  {2, 3},
		BusUART: {14, 15},
		BusSPI0: {7, 8, 9, 10, 11},
	}
}

func headerI2C() []I2CBus {
	return []I2CBus{{Name: "1", Device: "/dev/i2c-1", SDA: 2, SCL: 3, Enable: "dtparam=i2c_arm=on in config.txt (or raspi-config → Interface Options → I2C)"}}
}

// bcmPWM is the BCM2835/2837/2711 PWM block: two channels, each reachable
// on two GPIOs (12/18 → channel 0, 13/19 → channel 1), as pwmchip0 once an
// overlay enables it. The device names follow the block's ARM address
// (0x2020c000, 0x3f20c000, 0xfe20c000); they are informational here (the
// HAL name uses pwmchip0) and not yet confirmed on every model.
func bcmPWM(device string) []PWMChannel {
	ov := func(pin, fn int) string {
		return fmt.Sprintf("dtoverlay=pwm,pin=%d,func=%d (or pwm-2chan for two)", pin, fn)
	}
	return []PWMChannel{
		{GPIO: 12, Chip: "pwmchip0", Device: device, Channel: 0, Overlay: ov(12, 4)},
		{GPIO: 18, Chip: "pwmchip0", Device: device, Channel: 0, Overlay: ov(18, 2)},
		{GPIO: 13, Chip: "pwmchip0", Device: device, Channel: 1, Overlay: ov(13, 4)},
		{GPIO: 19, Chip: "pwmchip0", Device: device, Channel: 1, Overlay: ov(19, 2)},
	}
}

const bcmPWMNote = "GPIO12 and GPIO18 share PWM channel 0, GPIO13 and GPIO19 channel 1: only one pin of each pair can carry it. The analog audio jack (Pi 3/4/400) uses the same PWM block: set dtparam=audio=off when using hardware PWM."

func bcmProfile(name, title, chip, pwmDevice string, aliases ...string) Profile {
	return Profile{
		Name: name, Title: title, Aliases: aliases, Chip: chip,
		Header: header40(), I2C: headerI2C(), PWM: bcmPWM(pwmDevice), Reserved: reserved(),
		Notes: []string{bcmPWMNote},
	}
}

// Profiles returns every known board, generic last.
func Profiles() []Profile {
	zero := bcmProfile("zero", "Raspberry Pi Zero / Zero W", "pinctrl-bcm2835", "2020c000.pwm", "zerow", "pi0", "pi0w")
	zero2 := bcmProfile("zero2w", "Raspberry Pi Zero 2 W", "pinctrl-bcm2835", "3f20c000.pwm", "zero2", "pi02w")
	pi3 := bcmProfile("pi3b", "Raspberry Pi 3 Model B / B+", "pinctrl-bcm2835", "3f20c000.pwm", "pi3", "pi3b+")
	pi4 := bcmProfile("pi4b", "Raspberry Pi 4 Model B", "pinctrl-bcm2711", "fe20c000.pwm", "pi4")
	pi4.Notes = append(pi4.Notes, "Buses i2c-20 and i2c-21 (HDMI) also exist: always name the header bus, \"1\".")
	pi400 := bcmProfile("pi400", "Raspberry Pi 400", "pinctrl-bcm2711", "fe20c000.pwm")
	pi400.Notes = append(pi400.Notes, "The 40-pin header is at the back of the keyboard.")
	cm4 := bcmProfile("cm4", "Raspberry Pi Compute Module 4", "pinctrl-bcm2711", "fe20c000.pwm", "cm4io")
	cm4.ExtraGPIOs = []int{28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45}
	cm4.Notes = append(cm4.Notes, "The header map is the CM4 IO board's; GPIO28–45 are on the module connector only (no header pin).",
		"i2c-10 (camera/display) and i2c-20/21 (HDMI) also exist: always name the header bus, \"1\".")

	pi5 := Profile{
		Name: "pi5", Title: "Raspberry Pi 5", Aliases: []string{"pi5b"}, Chip: "pinctrl-rp1",
		Header: header40(), I2C: headerI2C(), Reserved: reserved(),
		PWM: []PWMChannel{
			// RP1 PWM0. Its pwmchip number is not stable (pwmchip2 on kernel
			// 6.6, pwmchip0 since 6.12; raspberrypi/linux#6818), so it is
			// found by its device link.
			{GPIO: 12, Device: "1f00098000.pwm", Channel: 0, Overlay: "dtoverlay=pwm,pin=12,func=4 (or pwm-2chan,pin=12,func=4,pin2=13,func2=4)"},
			{GPIO: 13, Device: "1f00098000.pwm", Channel: 1, Overlay: "dtoverlay=pwm,pin=13,func=4 (or pwm-2chan,pin=12,func=4,pin2=13,func2=4)"},
			{GPIO: 18, Device: "1f00098000.pwm", Channel: 2, Overlay: "dtoverlay=pwm,pin=18 with the func for PWM0 channel 2 (see /boot/firmware/overlays/README)"},
			{GPIO: 19, Device: "1f00098000.pwm", Channel: 3, Overlay: "dtoverlay=pwm,pin=19 with the func for PWM0 channel 3 (see /boot/firmware/overlays/README)"},
		},
		Notes: []string{
			"The RP1 PWM0 has four independent channels (GPIO12/13/18/19 → 0/1/2/3); the fan uses a different PWM (1f0009c000.pwm).",
			"The header GPIO chip is pinctrl-rp1: gpiochip4 on early kernels, gpiochip0 now.",
		},
	}
	generic := Profile{
		Name: "generic", Title: "Generic Linux board", Aliases: []string{"linux", "none"},
		Notes: []string{"No header map: name lines by chip/offset (gpiochip0/17, or the chip label) or by kernel line name, PWM as pwmchipN/CHANNEL or DEVICE/CHANNEL, I2C buses by number. See gpioinfo and ls /sys/class/pwm."},
	}
	return []Profile{zero, zero2, pi3, pi4, pi400, cm4, pi5, generic}
}

// Names lists the profile names, for messages.
func Names() []string {
	var out []string
	for _, p := range Profiles() {
		out = append(out, p.Name)
	}
	return out
}

// ByName returns the profile called name (or one of its aliases, any case).
func ByName(name string) (Profile, error) {
	key := normalizeBoard(name)
	var all []string
	for _, p := range Profiles() {
		for _, n := range p.names() {
			all = append(all, n)
			if normalizeBoard(n) == key {
				return p, nil
			}
		}
	}
	return Profile{}, &UnknownError{Kind: "board", Name: name, Suggest: suggest.ClosestBy(key, all, normalizeBoard), Known: Names()}
}

// pwmByGPIO returns the PWM channel wired to gpio, if any.
func (p Profile) pwmByGPIO(gpio int) (PWMChannel, bool) {
	i := slices.IndexFunc(p.PWM, func(c PWMChannel) bool { return c.GPIO == gpio })
	if i < 0 {
		return PWMChannel{}, false
	}
	return p.PWM[i], true
}
