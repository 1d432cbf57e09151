// Package builtin assembles the registry of every driver pinshadow ships.
// The agent calls NewRegistry once at start-up; adding a driver means
// adding its package's Driver (or Drivers) here.
package builtin

import (
	"github.com/pinshadow/pinshadow/devices"
	"github.com/pinshadow/pinshadow/devices/ads1115"
	"github.com/pinshadow/pinshadow/devices/aht20"
	"github.com/pinshadow/pinshadow/devices/bh1750"
	"github.com/pinshadow/pinshadow/devices/bmx280"
	"github.com/pinshadow/pinshadow/devices/cputemp"
	"github.com/pinshadow/pinshadow/devices/ds18b20"
	"github.com/pinshadow/pinshadow/devices/gpio"
	"github.com/pinshadow/pinshadow/devices/ina219"
	"github.com/pinshadow/pinshadow/devices/mcp23017"
	"github.com/pinshadow/pinshadow/devices/pca9685"
	"github.com/pinshadow/pinshadow/devices/pwm"
	"github.com/pinshadow/pinshadow/devices/sht3x"
)

// Drivers returns every built-in driver.
func Drivers() []devices.Driver {
	var ds []devices.Driver
	ds = append(ds, gpio.Drivers()...)
	ds = append(ds, pwm.Drivers()...)
	ds = append(ds, bmx280.Drivers()...)
	ds = append(ds,
		sht3x.Driver(),
		bh1750.Driver(),
		ads1115.Driver(),
		pca9685.Driver(),
		mcp23017.Driver(),
		ina219.Driver(),
		aht20.Driver(),
		ds18b20.Driver(),
		cputemp.Driver(),
	)
	return ds
}

// NewRegistry returns a registry of every built-in driver.
func NewRegistry() *devices.Registry {
	r, err := devices.NewRegistry(Drivers()...)
	if err != nil {
		// Names are compile-time constants: a clash is a programming
		// error caught by this package's tests.
		panic(err)
	}
	return r
}
